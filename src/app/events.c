/* events — see events.h. */
#include "events.h"

#include <stdlib.h>
#include <string.h>

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "../infra/proc.h"
#include "../infra/qmp.h"
#include "running.h"
#include "layout.h"

/* Deliver the kept events; 1 when fn asked to stop. */
static int deliver(qmp *q, events_fn fn, void *data, size_t *seen)
{
    _cleanup_json_ json_t *ev = qmp_take_events(q);
    size_t i;
    json_t *v;
    json_array_foreach(ev, i, v) {
        (*seen)++;
        if (fn(v, data) != 0)
            return 1;
    }
    return 0;
}

/* After the events stream ended: did the VM's QEMU end? (after an EOF, a QEMU
 * that closed its monitors while quitting is given 2 s to be gone) */
static bool vm_ended(const char *dir, pid_t pid, bool eof)
{
    _cleanup_close_ int pfd = eof ? proc_pidfd(pid, NULL) : -1;
    if (pfd >= 0)
        proc_wait_pidfd(pfd, 2000);
    return layout_pid_holder(dir) != pid;
}

int events_watch(const config *cfg, const char *name, bool follow, int timeout_ms, events_fn fn, void *data,
                 qq_err *err)
{
    _cleanup_free_ char *dir = NULL;
    pid_t pid;
    if (running_require(cfg, name, &pid, &dir, err) < 0)
        return -1;
    _cleanup_free_ char *sock = layout_path(dir, LAYOUT_EVENTS_SOCKET);
    if (!fs_exists(sock))
        return qq_fail(err, QQ_EXIT_FAIL, "%s has no events socket (%s): it was started by an older qqmgr; restart it",
                       name, sock);
    qq_err e = { 0 };
    qmp *q = qmp_open(sock, 3000, &e);
    if (!q) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: %s%s", name, e.msg,
                strstr(e.msg, "greeting") ? " (is another `qqmgr events` following this VM?)" : "");
        return -1;
    }
    if (fn(NULL, data) != 0) {
        qmp_close(q);
        return 0;
    }
    long long deadline = timeout_ms < 0 ? -1 : clock_ms() + timeout_ms;
    size_t seen = 0;
    int rc = 0;
    for (;;) {
        long long left = deadline < 0 ? 1000 : deadline - clock_ms();
        int w = qmp_wait_event(q, left > 1000 ? 1000 : (int)(left > 0 ? left : 0), &e);
        if (deliver(q, fn, data, &seen) || (!follow && seen > 0))
            break;
        if (w < 0) {
            /* QEMU closed the monitor because it ended; or the stream broke
             * (a malformed or over-long message) while it runs: an error */
            if (!vm_ended(dir, pid, strstr(e.msg, "closed the connection") != NULL))
                rc = qq_fail(err, QQ_EXIT_FAIL, "%s: the events stream broke while the VM runs: %s", name, e.msg);
            else if (!follow && seen == 0)
                rc = qq_fail(err, QQ_EXIT_FAIL, "%s stopped before an event came", name);
            break;
        }
        if (deadline >= 0 && clock_ms() >= deadline) {
            if (!follow)
                rc = qq_fail(err, QQ_EXIT_FAIL, "%s: no event within %d s", name, timeout_ms / 1000);
            break;
        }
    }
    qmp_close(q);
    return rc;
}
