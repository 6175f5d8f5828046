#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void grow(sbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->buf, cap);
    if (!p)
        abort();
    b->buf = p;
    b->cap = cap;
}

void sbuf_add(sbuf *b, const void *data, size_t len)
{
    grow(b, len);
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
    grow(b, 64);
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->buf[b->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        grow(b, (size_t)n);
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
