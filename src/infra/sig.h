/* sig — the one catcher of SIGINT, SIGTERM and SIGHUP for long operations
 * (start, stop, snapshot save and restore, throwaway copies, run, img build,
 * lock waits): the three are handled alike, so Ctrl-C, kill and a closed
 * terminal all leave nothing half-done.
 *
 *   sig_scope s;
 *   sig_catch(&s);            from here the three signals are caught
 *   … long work; poll sig_caught() between steps and wherever it waits …
 *   sig_release(&s);          the dispositions before sig_catch are back
 *
 * The handler only records the signal (no SA_RESTART, so a blocking call it
 * interrupts returns EINTR and the caller looks at sig_caught()), and, when
 * set, sends SIGTERM to one process (sig_forward_to: a QEMU that has to end
 * at once so the wait on it returns). Scopes nest: an inner sig_catch keeps
 * what the outer one caught; the outermost sig_release forgets it. Not for
 * threads: the scope is the process's.
 *
 * sig_caught() is 0 when no signal arrived (or no scope is active), else the
 * signal's number. A command that was interrupted says so and exits 1
 * (qq_fail … "interrupted").
 */
#ifndef QQ_SIG_H
#define QQ_SIG_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct sig_scope {
    struct sigaction old[3];
    bool outer;
} sig_scope;

void sig_catch(sig_scope *s);
void sig_release(sig_scope *s);

/* Is a scope active (someone catches the three now)? A step that catches
 * them only "when nobody else does" asks this, not the dispositions: a
 * process started in the background has SIGINT ignored, not default. */
bool sig_active(void);

/* The signal caught in the current scope, or 0. */
int sig_caught(void);

/* The flag behind sig_caught(), for code that polls a flag rather than
 * calling (copy_sparse_until's stop): non-zero once a signal was caught. */
const volatile sig_atomic_t *sig_flag(void);

/* While pid > 0, a caught signal is also sent to pid as SIGTERM (0: none). */
void sig_forward_to(pid_t pid);

#endif
