#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int qq_vfail(qq_err *e, int code, const char *fmt, va_list ap)
{
    if (e) {
        e->code = code;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return -1;
}

int qq_fail(qq_err *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qq_vfail(e, code, fmt, ap);
    va_end(ap);
    return -1;
}

int qq_fail_errno(qq_err *e, const char *fmt, ...)
{
    int saved = errno;
    if (e) {
        char what[sizeof e->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        qq_fail(e, QQ_EXIT_FAIL, "%s: %s", what, strerror(saved));
    }
    errno = saved;
    return -1;
}

void qq_err_prefix(qq_err *e, const char *fmt, ...)
{
    if (!e)
        return;
    char pre[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t n = strlen(pre);
    if (n > sizeof e->msg - 3)
        n = sizeof e->msg - 3;
    memcpy(e->msg, pre, n);
    memcpy(e->msg + n, ": ", 2);
    size_t rest = sizeof e->msg - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(e->msg + n + 2, old, m);
    e->msg[n + 2 + m] = '\0';
}
