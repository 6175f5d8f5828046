/* err — one error, formatted once where it happens, printed once at the top.
 *
 * Functions that can fail take a `qq_err *` and return -1 (or NULL) after
 * filling it with qq_fail(); on success they leave it untouched. The code is the
 * process exit status the error maps to: QQ_EXIT_FAIL (1) for failures of the
 * world (QEMU died, a download failed), QQ_EXIT_USAGE (2) for usage and config
 * errors, QQ_EXIT_NOT_READY (75, sysexits' EX_TEMPFAIL) for `run` when the VM
 * never became ready (start, restore or the ssh wait failed: a retry may help). Messages are one line, without a trailing newline or the program name;
 * they start with a location when one exists ("qqmgr.toml:12:7: vm.test.cmd[1]: …").
 */
#ifndef QQ_ERR_H
#define QQ_ERR_H

#include <stdarg.h>

enum { QQ_EXIT_OK = 0, QQ_EXIT_FAIL = 1, QQ_EXIT_USAGE = 2, QQ_EXIT_NOT_READY = 75 };

typedef struct qq_err {
    int code;        /* exit status: QQ_EXIT_FAIL, QQ_EXIT_USAGE (or QQ_EXIT_NOT_READY); 0 = no error */
    char msg[2048];
} qq_err;

/* Fill e (if not NULL) with code and a printf-style message; always returns -1. */
int qq_fail(qq_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int qq_vfail(qq_err *e, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* qq_fail with QQ_EXIT_FAIL and the message "FMT...: strerror(errno)";
 * errno is kept as it was (callers may look at it after the -1). */
int qq_fail_errno(qq_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Put "prefix: " in front of an existing message (adds context on the way up). */
void qq_err_prefix(qq_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
