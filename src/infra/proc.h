/* proc — spawn a program without a shell, and wait for processes with pidfds.
 *
 * proc_spawn() runs argv[0] (searched in PATH) with stdin /dev/null and
 * stdout/stderr appended to, or truncated into, the given files (NULL: inherit),
 * in the given cwd, optionally in a new session (setsid) so it outlives the
 * terminal and qqmgr. When stdout_path and stderr_path name the same file it
 * is opened once and shared (one file offset: neither stream overwrites the
 * other). die_with_parent: the child gets SIGKILL when the calling thread
 * exits, even by kill -9 (PR_SET_PDEATHSIG; for helpers such as the image
 * build QEMU that must never outlive qqmgr). The child has descriptors 0, 1
 * and 2 only: nothing else of ours, open or not close-on-exec, reaches it (a
 * QEMU holding a pipe qqmgr inherited would keep `qqmgr start VM 5>&1 | cat`
 * waiting as long as the VM runs). Exec failures (no such program)
 * and unopenable output files are reported by proc_spawn itself. Returns the
 * child's pid, or -1 with err filled.
 *
 * A pidfd (proc_pidfd) refers to one process for good, so waiting on it and
 * signalling it cannot hit a reused pid; it works for processes that are not
 * our children (a QEMU started by an earlier qqmgr). Descriptors are O_CLOEXEC.
 */
#ifndef QQ_PROC_H
#define QQ_PROC_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../base/err.h"
#include "../base/sbuf.h"

typedef struct proc_opts {
    const char *cwd;           /* NULL: ours */
    const char *stdout_path;   /* NULL: inherit */
    const char *stderr_path;   /* NULL: inherit */
    bool truncate;             /* truncate the output files (else append) */
    bool new_session;          /* setsid() in the child */
    bool die_with_parent;      /* SIGKILL the child when we exit (PR_SET_PDEATHSIG) */
} proc_opts;

pid_t proc_spawn(char *const argv[], const proc_opts *o, qq_err *err);

/* proc_run() runs argv[0] (PATH searched) to its end, without a shell:
 *   cwd        NULL: ours
 *   in         text written to its stdin, which is then closed; NULL: stdin
 *              is /dev/null (null_stdio) or ours
 *   out, err   capture stdout / stderr into these buffers (appended); NULL:
 *              /dev/null (null_stdio) or ours
 *   timeout_ms > 0: the child gets SIGKILL when it has not ended by then
 *              (r->timed_out); pipes still held open by its own children
 *              are not waited for past the deadline either
 *   own_group  the child leads a process group of its own, and SIGKILL at
 *              the deadline goes to the whole group (a script's children
 *              too); a terminal's Ctrl-C then reaches only us
 *   stop       when *stop becomes non-zero (a caught signal: sig_flag())
 *              the child gets SIGKILL as at the deadline (r->stopped), so a
 *              Ctrl-C does not wait for a slow child
 *   answer     a dialog (with out): stdin is a pipe kept open and unwritten
 *              until answer(out, answer_arg), called each time stdout grows,
 *              returns a text: that is written, then stdin is closed (the
 *              text must live until proc_run returns); in is then ignored
 * Returns 0 when it ran (r->status is the wait status), -1 with e filled
 * (QQ_EXIT_FAIL "cannot run X[ in DIR]: why"; errno kept, ENOENT: no such
 * program) when it could not be started. Like proc_spawn, the child gets
 * descriptors 0-2 only. SIGPIPE is ignored while writing
 * `in`; the child starts with default signal dispositions. */
typedef struct proc_run_opts {
    const char *cwd;
    const char *in;
    sbuf *out, *err;
    bool null_stdio;
    int timeout_ms;
    bool own_group;
    const char *(*answer)(const sbuf *out, void *arg);
    void *answer_arg;
    const volatile sig_atomic_t *stop;
} proc_run_opts;

typedef struct proc_result {
    int status;                /* as waitpid() reports it */
    bool timed_out;            /* killed at the deadline */
    bool stopped;              /* killed because *stop was set */
} proc_result;

int proc_run(char *const argv[], const proc_run_opts *o, proc_result *r, qq_err *e);

/* The last non-empty line of text (trailing newlines cut in place), without
 * an "Error: " prefix: the words of a tool that failed. */
const char *proc_last_line(char *text);

/* Run a tool to its end (proc_run, stdio /dev/null, bounded by 10 min):
 * bin ARGS. 0 with its stdout in *out (caller frees; out may be NULL), or -1
 * with err "NAME ARGS[0]: its last stderr line" ("Error: " dropped),
 * QQ_EXIT_FAIL. */
int proc_tool(const char *bin, const char *name, char *const *args, char **out, qq_err *err);

/* pidfd_open(pid); -1 with err (ESRCH: no such process). */
int proc_pidfd(pid_t pid, qq_err *err);

/* Wait until the process behind pidfd ends: 1 ended, 0 timeout, -1 error.
 * timeout_ms < 0 waits forever. */
int proc_wait_pidfd(int pidfd, int timeout_ms);

/* Send a signal through a pidfd; 0 or -1 (errno set; ESRCH = already gone). */
int proc_signal(int pidfd, int sig);

/* Reap our own child without blocking: 1 reaped (status filled), 0 still running. */
int proc_reap(pid_t pid, int *status);

/* proc_echo() prints the "+ ARGV..." line of --debug (report_line) for a
 * program about to run, each word shell-quoted (copy-pasteable into a shell,
 * like `show`). proc_exec() echoes argv so when echo is set, flushes
 * stdio and replaces qqmgr by argv[0] (PATH searched); it returns only when
 * that failed: -1 with e filled ("cannot run ARGV0: why"). */
void proc_echo(char *const argv[]);
int proc_exec(char *const argv[], bool echo, qq_err *e);

/* Is pid ancestor itself, or its child, grandchild, … (from /proc's parent
 * pids; a process under a wrapper such as strace -f descends from it)? */
bool proc_descends_from(pid_t pid, pid_t ancestor);

#endif
