/* guestclock — the guest's wall clock after a restore.
 *
 * A restored guest's clock continues from the moment of the save: a
 * snapshot saved an hour ago restores an hour behind the host. After every
 * restore (start --restore, run --restore, snapshot restore) qqmgr sets it,
 * through ssh when the VM has an ssh port and the guest logs in, in one ssh
 * command (through the master when one is up; else it is the login that
 * brings the master up), a short dialog:
 *   1. the guest prints its time (bash's $EPOCHREALTIME, else
 *      `date +%s.%N`; busybox: whole seconds): how far behind it is;
 *   2. qqmgr answers on the command's stdin with the host's time when the
 *      answer reaches the guest, and the guest runs `date -u -s @SECONDS.mmm`
 *      (GNU date takes the fraction; where that fails, busybox,
 *      `date -u -s @SECONDS` rounded to the second);
 *   3. the guest prints its new time: the offset left.
 * The answer travels one way over an open session, so the guest lands
 * within a few milliseconds of the host (GNU date), or within about half a
 * second (busybox: whole seconds), however long the login took. Where the
 * guest cannot be reached in time (no ssh port, no login, no sshd), nothing
 * is set and the caller says how far behind the clock is (estimated from the
 * snapshot's date). The same command is a readiness check: a guest that
 * answered it logged in through ssh.
 *
 * A VM with `guest_agent = true` (guestagent.h) is asked first, through its
 * agent, bounded by 3 s: guest-get-time (how far behind), guest-set-time
 * with the host's time in nanoseconds, guest-get-time again (how far off
 * now). No login happens then (r->reached stays false: ssh readiness is
 * still to be seen). An agent that does not answer leaves it to ssh.
 */
#ifndef QQ_GUESTCLOCK_H
#define QQ_GUESTCLOCK_H

#include <stdbool.h>

#include "config.h"

typedef struct guestclock_result {
    bool tried;           /* a restore happened: the clock was looked at */
    bool reached;         /* ssh logged in and the guest said its time (not set by the agent) */
    bool set;             /* the guest clock was set */
    double behind_s;      /* how far the guest clock was behind the host (measured, or estimated) */
    double after_s;       /* set: how far behind it is now (whole seconds of the guest's time) */
    char how[256];        /* what was done, or why nothing was */
    char agent[200];      /* the VM has a guest agent channel, but it was not used: why ("" else) */
} guestclock_result;

/* Set VM vm's clock to the host's through ssh, by deadline_ms (clock_ms()).
 * 0 with r->set, or -1 with r->how saying why not (r->reached and
 * r->behind_s when the guest said its time but could not set it). */
int guestclock_sync(const config *c, const char *vm, long long deadline_ms, guestclock_result *r);

#endif
