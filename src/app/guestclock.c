/* guestclock — see guestclock.h. */
#include "guestclock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "../base/cleanup.h"
#include "../base/clock.h"
#include "../base/sbuf.h"
#include "../infra/proc.h"
#include "ssh.h"

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One remote shell line through the VM's ssh config; the guest's last
 * `date +%s` (seconds since the epoch) in *guest, and the host's wall time
 * halfway through in *host. -1 with why when it did not run. */
static int remote(const ssh_target *t, const char *line, long long deadline, double *guest, double *host,
                  char *why, size_t whylen)
{
    int left = clock_left_ms(deadline, 0, 60000);
    if (left <= 0) {
        snprintf(why, whylen, "no time left");
        return -1;
    }
    char cto[64];
    snprintf(cto, sizeof cto, "ConnectTimeout=%d", left / 1000 > 1 ? left / 1000 : 1);
    char *av[] = { "ssh", "-F", (char *)t->conf, "-o", "BatchMode=yes", "-o", cto, (char *)t->alias, "--",
                   (char *)line, NULL };
    _cleanup_sbuf_ sbuf out = SBUF_INIT, err = SBUF_INIT;
    proc_run_opts po = { .out = &out, .err = &err, .null_stdio = true, .timeout_ms = left, .own_group = true };
    proc_result pr;
    double t0 = wall_now();
    if (proc_run(av, &po, &pr, NULL) < 0) {
        snprintf(why, whylen, "cannot run ssh");
        return -1;
    }
    double t1 = wall_now();
    if (pr.timed_out || !WIFEXITED(pr.status) || WEXITSTATUS(pr.status) != 0) {
        const char *e = sbuf_str(&err);
        size_t n = strlen(e);
        while (n && (e[n - 1] == '\n' || e[n - 1] == '\r'))
            n--;
        const char *ln = e + n;
        while (ln > e && ln[-1] != '\n')
            ln--;
        snprintf(why, whylen, "ssh %s%.*s", pr.timed_out ? "timed out" : "failed: ", pr.timed_out ? 0 : (int)(e + n - ln),
                 ln);
        return -1;
    }
    /* the last number printed */
    const char *o = sbuf_str(&out);
    const char *last = NULL;
    for (const char *p = o; *p; p++)
        if ((p == o || p[-1] == '\n') && *p >= '0' && *p <= '9')
            last = p;
    if (!last) {
        snprintf(why, whylen, "the guest's date printed no time");
        return -1;
    }
    *guest = strtod(last, NULL);
    *host = (t0 + t1) / 2;
    return 0;
}

int guestclock_sync(const config *c, const char *vm, long long deadline_ms, guestclock_result *r)
{
    memset(r, 0, sizeof *r);
    r->tried = true;
    if (config_vm_ssh_port(c, vm) == SSH_PORT_NONE) {
        snprintf(r->how, sizeof r->how, "the VM has no ssh port");
        return -1;
    }
    ssh_target t;
    qq_err e = { 0 };
    if (ssh_prepare(c, vm, true, &t, &e) < 0) {
        snprintf(r->how, sizeof r->how, "%.200s", e.msg);
        return -1;
    }
    char why[200];
    double guest, host;
    double s0 = wall_now();
    if (remote(&t, "date +%s", deadline_ms, &guest, &host, why, sizeof why) < 0) {
        snprintf(r->how, sizeof r->how, "could not reach the guest through ssh (%s)", why);
        return -1;
    }
    double first = wall_now() - s0;   /* a whole connection: the cost of the next one without a master */
    r->behind_s = host - guest;
    /* the next connection goes through the master when there is one: its
     * command reaches the guest a moment after it starts */
    double lead = t.control[0] ? 0.05 : first / 2;
    /* to the millisecond where date takes a fraction (GNU); else (busybox)
     * the nearest whole second */
    char line[160];
    double at = wall_now() + lead;
    snprintf(line, sizeof line, "{ date -u -s @%.3f || date -u -s @%lld; } >/dev/null 2>&1 && date +%%s", at,
             (long long)(at + 0.5));
    if (remote(&t, line, deadline_ms, &guest, &host, why, sizeof why) < 0) {
        snprintf(r->how, sizeof r->how, "could not set it through ssh (%s)", why);
        return -1;
    }
    r->set = true;
    r->after_s = host - guest;
    snprintf(r->how, sizeof r->how, "set through ssh (`date -u -s @SECONDS`): it was %.1f s behind the host", r->behind_s);
    return 0;
}
