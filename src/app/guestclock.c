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

/* One remote shell line through the VM's ssh config; the numbers the guest
 * printed at the start of its lines (seconds since the epoch) in nums[0..*n),
 * and the host's wall time halfway through in *host. -1 with why when it did
 * not run or printed no number. */
static int remote(const ssh_target *t, const char *line, long long deadline, double *nums, int *n, double *host,
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
        size_t len = strlen(e);
        while (len && (e[len - 1] == '\n' || e[len - 1] == '\r'))
            len--;
        const char *ln = e + len;
        while (ln > e && ln[-1] != '\n')
            ln--;
        snprintf(why, whylen, "ssh %s%.*s", pr.timed_out ? "timed out" : "failed: ", pr.timed_out ? 0 : (int)(e + len - ln),
                 ln);
        return -1;
    }
    int max = *n;
    *n = 0;
    const char *o = sbuf_str(&out);
    for (const char *p = o; *p && *n < max; p++)
        if ((p == o || p[-1] == '\n') && *p >= '0' && *p <= '9')
            nums[(*n)++] = strtod(p, NULL);
    if (!*n) {
        snprintf(why, whylen, "the guest's date printed no time");
        return -1;
    }
    *host = (t0 + t1) / 2;
    return 0;
}

/* The shell line that sets the guest's clock to at (seconds since the
 * epoch): to the millisecond where date takes a fraction (GNU); else
 * (busybox) the nearest whole second. Then the guest's new time. With
 * before, the guest's time just before it is set comes first. */
static void set_line(char *line, size_t len, double at, bool before)
{
    snprintf(line, len, "%s{ date -u -s @%.3f || date -u -s @%lld; } >/dev/null 2>&1 && %sdate +%%s",
             before ? "b=$(date +%s) && " : "", at, (long long)(at + 0.5), before ? "echo $b && " : "");
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
    double nums[2], host;
    int n = 2;
    char line[200];
    if (ssh_master_up(&t)) {
        /* the master is up (the readiness wait brought it): one command
         * through it reaches the guest a moment after it starts; the
         * guest's time before the set says how far behind it was */
        double at = wall_now() + 0.05;
        set_line(line, sizeof line, at, true);
        int rc = remote(&t, line, deadline_ms, nums, &n, &host, why, sizeof why);
        if (rc < 0 || n < 2) {
            snprintf(r->how, sizeof r->how, "could not set it through ssh (%s)",
                     rc < 0 ? why : "the guest printed one time");
            return -1;
        }
        r->behind_s = at - nums[0];
        r->after_s = host - nums[1];
    } else {
        double s0 = wall_now();
        if (remote(&t, "date +%s", deadline_ms, nums, &n, &host, why, sizeof why) < 0) {
            snprintf(r->how, sizeof r->how, "could not reach the guest through ssh (%s)", why);
            return -1;
        }
        double first = wall_now() - s0;   /* a whole connection: the cost of the next one without a master */
        r->behind_s = host - nums[n - 1];
        /* the next connection goes through the master when this one brought
         * it up: its command reaches the guest a moment after it starts */
        double lead = t.control[0] ? 0.05 : first / 2;
        set_line(line, sizeof line, wall_now() + lead, false);
        n = 2;
        if (remote(&t, line, deadline_ms, nums, &n, &host, why, sizeof why) < 0) {
            snprintf(r->how, sizeof r->how, "could not set it through ssh (%s)", why);
            return -1;
        }
        r->after_s = host - nums[n - 1];
    }
    r->set = true;
    snprintf(r->how, sizeof r->how, "set through ssh (`date -u -s @SECONDS`): it was %.1f s behind the host", r->behind_s);
    return 0;
}
