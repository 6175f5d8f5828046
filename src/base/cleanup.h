/* cleanup — GCC/clang cleanup attributes, so every return path frees.
 *
 *   _cleanup_free_ char *s = NULL;        free(s) at scope exit
 *   _cleanup_json_ json_t *v = NULL;      json_decref(v)
 *   _cleanup_close_ int fd = -1;          close(fd) if >= 0
 *   _cleanup_fclose_ FILE *f = NULL;      fclose(f) if not NULL
 *   _cleanup_sbuf_ sbuf b = SBUF_INIT;    sbuf_free(&b)
 * TAKE_PTR(p) returns p and sets it to NULL (ownership handed on).
 */
#ifndef QQ_CLEANUP_H
#define QQ_CLEANUP_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sbuf.h"

static inline void qq_freep(void *p) { free(*(void **)p); }
static inline void qq_json_decrefp(json_t **p) { if (*p) json_decref(*p); }
static inline void qq_closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void qq_fclosep(FILE **f) { if (*f) fclose(*f); }
static inline void qq_sbuf_freep(sbuf *b) { sbuf_free(b); }

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(qq_freep)
#define _cleanup_json_ _cleanup_(qq_json_decrefp)
#define _cleanup_close_ _cleanup_(qq_closep)
#define _cleanup_fclose_ _cleanup_(qq_fclosep)
#define _cleanup_sbuf_ _cleanup_(qq_sbuf_freep)

#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })

#endif
