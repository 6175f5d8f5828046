#include "sbuf.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sbuf_budget_take(sbuf_budget *b, size_t n)
{
    if (!b)
        return 0;
    if (b->over || n > b->left) {
        b->over = 1;
        return -1;
    }
    b->left -= n;
    return 0;
}

/* Room for extra more bytes (and the NUL): false when the budget refuses. */
static bool grow(sbuf *b, size_t extra)
{
    if (b->budget && b->budget->over)
        return false;
    if (extra < SIZE_MAX - 1 - b->len && b->len + extra + 1 <= b->cap)
        return true;
    if (extra >= SIZE_MAX / 2 - b->len)
        abort();
    size_t need = b->len + extra + 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    if (b->budget) {
        /* near the end of the budget, take what is needed rather than double */
        if (cap - b->cap > b->budget->left && need - b->cap <= b->budget->left)
            cap = b->cap + b->budget->left;
        if (sbuf_budget_take(b->budget, cap - b->cap) < 0)
            return false;
    }
    char *p = realloc(b->buf, cap);
    if (!p)
        abort();
    b->buf = p;
    b->cap = cap;
    return true;
}

void sbuf_add(sbuf *b, const void *data, size_t len)
{
    if (!grow(b, len))
        return;
    if (len)
        memcpy(b->buf + b->len, data, len);
    b->len += len;
    b->buf[b->len] = '\0';
}

void sbuf_adds(sbuf *b, const char *s) { sbuf_add(b, s, strlen(s)); }

void sbuf_addc(sbuf *b, char c) { sbuf_add(b, &c, 1); }

void sbuf_addf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    if (!grow(b, 64))
        return;
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->buf[b->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        if (!grow(b, (size_t)n)) {
            b->buf[b->len] = '\0';
            return;
        }
        va_start(ap, fmt);
        vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void sbuf_reset(sbuf *b)
{
    b->len = 0;
    if (b->buf)
        b->buf[0] = '\0';
}

void sbuf_free(sbuf *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}

char *sbuf_steal(sbuf *b)
{
    char *s = b->buf ? b->buf : strdup("");
    if (!s)
        abort();
    b->buf = NULL;
    b->len = b->cap = 0;
    return s;
}

const char *sbuf_str(const sbuf *b) { return b->buf ? b->buf : ""; }

void sbuf_add_shell_quoted(sbuf *b, const char *s)
{
    if (*s && *s != '=' && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789_-+=.,:/@%^") == strlen(s)) {
        sbuf_adds(b, s);
        return;
    }
    sbuf_addc(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            sbuf_adds(b, "'\\''");
        else
            sbuf_addc(b, *p);
    }
    sbuf_addc(b, '\'');
}
