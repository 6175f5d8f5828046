/* xalloc — allocation that cannot fail (abort on out-of-memory), and
 * NULL-terminated string vectors (strv), the one copy every module uses.
 *
 *   char *p = xasprintf("%s/%s", dir, name);     never NULL
 *   char *q = xstrdup(s);                        never NULL (s must not be NULL)
 *   char **v = NULL; size_t n = 0;
 *   strv_push(&v, &n, xstrdup("-m"));            takes ownership, keeps v NULL-terminated
 *   strv_free(v);                                frees every string and the array
 *   _cleanup_strv_ char **w = NULL;              strv_free at scope exit
 */
#ifndef QQ_XALLOC_H
#define QQ_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Append s (owned) to the NULL-terminated vector *v of *n strings. */
void strv_push(char ***v, size_t *n, char *s);
/* A deep copy (NULL → NULL). */
char **strv_dup(char *const *v);
size_t strv_len(char *const *v);
void strv_free(char **v);
static inline void strv_freep(char ***v) { strv_free(*v); }
#define _cleanup_strv_ __attribute__((cleanup(strv_freep)))

#endif
