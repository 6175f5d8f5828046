/* guestclock — the guest's wall clock after a restore.
 *
 * A restored guest's clock continues from the moment of the save: a
 * snapshot saved an hour ago restores an hour behind the host. After every
 * restore (start --restore, run --restore, snapshot restore) qqmgr sets it,
 * through ssh when the VM has an ssh port and the guest logs in. With the
 * ssh master up (the readiness wait brings it) that is one command through
 * it: the guest's `date +%s`, then `date -u -s @SECONDS.mmm` with the host's
 * time when the command reaches the guest (GNU date takes the fraction;
 * where that fails, busybox, `date -u -s @SECONDS` rounded to the second),
 * then `date +%s` again: the offset before and the one left. Without a
 * master (the user turned sharing off) the first `date +%s` is a command of
 * its own, whose round trip estimates when the second one arrives.
 * The guest is then within the command's latency estimate of the host
 * (GNU date), or within about half a second (busybox: whole seconds). Where the guest cannot be reached in time (no ssh port, no
 * login, no sshd), nothing is set and the caller says how far behind the
 * clock is (estimated from the snapshot's date).
 */
#ifndef QQ_GUESTCLOCK_H
#define QQ_GUESTCLOCK_H

#include <stdbool.h>

#include "config.h"

typedef struct guestclock_result {
    bool tried;           /* a restore happened: the clock was looked at */
    bool set;             /* the guest clock was set */
    double behind_s;      /* how far the guest clock was behind the host (measured, or estimated) */
    double after_s;       /* set: how far behind it is now (whole seconds of the guest's `date`) */
    char how[256];        /* what was done, or why nothing was */
} guestclock_result;

/* Set VM vm's clock to the host's through ssh, by deadline_ms (clock_ms()).
 * 0 with r->set, or -1 with r->how saying why not (r->behind_s then 0). */
int guestclock_sync(const config *c, const char *vm, long long deadline_ms, guestclock_result *r);

#endif
