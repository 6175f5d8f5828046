/* proc — spawn a program without a shell, and wait for processes with pidfds.
 *
 * proc_spawn() runs argv[0] (searched in PATH) with stdin /dev/null and
 * stdout/stderr appended to, or truncated into, the given files (NULL: inherit),
 * in the given cwd, optionally in a new session (setsid) so it outlives the
 * terminal and qqmgr. When stdout_path and stderr_path name the same file it
 * is opened once and shared (one file offset: neither stream overwrites the
 * other). die_with_parent: the child gets SIGKILL when the calling thread
 * exits, even by kill -9 (PR_SET_PDEATHSIG; for helpers such as the image
 * build QEMU that must never outlive qqmgr). Exec failures (no such program)
 * and unopenable output files are reported by proc_spawn itself. Returns the
 * child's pid, or -1 with err filled.
 *
 * A pidfd (proc_pidfd) refers to one process for good, so waiting on it and
 * signalling it cannot hit a reused pid; it works for processes that are not
 * our children (a QEMU started by an earlier qqmgr). Descriptors are O_CLOEXEC.
 */
#ifndef QQ_PROC_H
#define QQ_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "../base/err.h"

typedef struct proc_opts {
    const char *cwd;           /* NULL: ours */
    const char *stdout_path;   /* NULL: inherit */
    const char *stderr_path;   /* NULL: inherit */
    bool truncate;             /* truncate the output files (else append) */
    bool new_session;          /* setsid() in the child */
    bool die_with_parent;      /* SIGKILL the child when we exit (PR_SET_PDEATHSIG) */
} proc_opts;

pid_t proc_spawn(char *const argv[], const proc_opts *o, qq_err *err);

/* pidfd_open(pid); -1 with err (ESRCH: no such process). */
int proc_pidfd(pid_t pid, qq_err *err);

/* Wait until the process behind pidfd ends: 1 ended, 0 timeout, -1 error.
 * timeout_ms < 0 waits forever. */
int proc_wait_pidfd(int pidfd, int timeout_ms);

/* Send a signal through a pidfd; 0 or -1 (errno set; ESRCH = already gone). */
int proc_signal(int pidfd, int sig);

/* Reap our own child without blocking: 1 reaped (status filled), 0 still running. */
int proc_reap(pid_t pid, int *status);

/* Milliseconds on the monotonic clock. */
long long proc_now_ms(void);

#endif
