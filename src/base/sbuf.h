/* sbuf — a growable byte buffer, always NUL-terminated.
 *
 * A zero-initialised sbuf (SBUF_INIT) is empty and valid. Appends abort() on
 * out-of-memory (a CLI has no better answer). sbuf_free() releases the memory
 * and leaves the buffer empty; sbuf_steal() hands the string to the caller
 * (free() it) and leaves the buffer empty.
 */
#ifndef QQ_SBUF_H
#define QQ_SBUF_H

#include <stddef.h>

/* A byte budget that buffers can share (sbuf.budget): every time a buffer
 * grows, the memory it takes is charged to the budget before it is taken,
 * and never given back (one budget bounds all the text made for one job,
 * such as resolving a config). An append that does not fit takes nothing,
 * leaves the buffer as it was and sets over; appends after that take nothing
 * either. The owner checks over when the job ends (or earlier, to stop). */
typedef struct sbuf_budget {
    size_t left;    /* bytes that may still be taken */
    int over;       /* an append was refused */
} sbuf_budget;

/* Take n bytes of b outside any buffer (a copy the caller is about to make):
 * 0, or -1 with over set when they do not fit. A NULL budget always fits. */
int sbuf_budget_take(sbuf_budget *b, size_t n);

typedef struct sbuf {
    char *buf;
    size_t len, cap;
    sbuf_budget *budget;   /* NULL: unbounded; kept by sbuf_free, sbuf_steal, sbuf_reset */
} sbuf;

#define SBUF_INIT { 0 }

void sbuf_add(sbuf *b, const void *data, size_t len);
void sbuf_adds(sbuf *b, const char *s);
void sbuf_addc(sbuf *b, char c);
void sbuf_addf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_reset(sbuf *b);               /* length 0, memory kept */
void sbuf_free(sbuf *b);
char *sbuf_steal(sbuf *b);              /* never NULL: "" for an empty buffer */
const char *sbuf_str(const sbuf *b);    /* never NULL */

/* Append s as one word of a POSIX shell (bash, dash, zsh): as is when it only
 * holds characters no shell treats specially (and does not start with '=',
 * which zsh expands), else in '…' (a ' inside becomes '\''). */
void sbuf_add_shell_quoted(sbuf *b, const char *s);

#endif
