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
#include "../infra/sig.h"
#include "ssh.h"

/* From the answer's write to the guest's `date -s`: the session's one-way
 * trip, the shell's read and date's exec (under TCG a few ms in a small
 * guest, tens in a big one). */
#define GUESTCLOCK_LEAD_S 0.015

/* The guest's side of the dialog (POSIX sh; bash's $EPOCHREALTIME and
 * $EPOCHSECONDS cost no exec). */
static const char dialog_line[] =
    "echo qqclock ${EPOCHREALTIME:-$(date +%s.%N)}; read t r && "
    "{ date -u -s \"@$t\" || date -u -s \"@$r\"; } >/dev/null 2>&1 && "
    "echo qqclock-set ${EPOCHSECONDS:-$(date +%s)}";

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct dialog {
    bool asked;           /* the guest said its time */
    double guest, host;   /* its time, and the host's when it arrived */
    double at;            /* what it was set to */
    char answer[96];
} dialog;

/* The value after "tag " at the start of a whole line of text; false when
 * there is none yet. */
static bool tagged(const char *text, const char *tag, double *v)
{
    size_t n = strlen(tag);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, tag, n) == 0 && p[n] == ' ' && strchr(p, '\n')) {
            char *end;
            *v = strtod(p + n + 1, &end);
            return end != p + n + 1;
        }
    }
    return false;
}

static const char *answer(const sbuf *out, void *arg)
{
    dialog *d = arg;
    if (d->asked || !tagged(sbuf_str(out), "qqclock", &d->guest))
        return NULL;
    d->asked = true;
    d->host = wall_now();
    d->at = d->host + GUESTCLOCK_LEAD_S;
    snprintf(d->answer, sizeof d->answer, "%.3f %lld\n", d->at, (long long)(d->at + 0.5));
    return d->answer;
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
    int left = clock_left_ms(deadline_ms, 0, 10 * 60 * 1000);
    if (left <= 0) {
        snprintf(r->how, sizeof r->how, "could not reach the guest through ssh (no time left)");
        return -1;
    }
    char cto[64];
    snprintf(cto, sizeof cto, "ConnectTimeout=%d", left / 1000 > 1 ? left / 1000 : 1);
    char *av[] = { "ssh", "-F", t.conf, "-o", "BatchMode=yes", "-o", cto, t.alias, "--", (char *)dialog_line, NULL };
    _cleanup_sbuf_ sbuf out = SBUF_INIT, err = SBUF_INIT;
    dialog d = { 0 };
    proc_run_opts po = { .out = &out, .err = &err, .timeout_ms = left, .own_group = true, .answer = answer,
                         .answer_arg = &d, .stop = sig_flag() };
    proc_result pr;
    if (proc_run(av, &po, &pr, NULL) < 0) {
        snprintf(r->how, sizeof r->how, "could not reach the guest through ssh (cannot run ssh)");
        return -1;
    }
    double done = wall_now();
    if (d.asked) {
        r->reached = true;
        r->behind_s = d.host - d.guest;
    }
    double now;
    if (d.asked && !pr.timed_out && WIFEXITED(pr.status) && WEXITSTATUS(pr.status) == 0 &&
        tagged(sbuf_str(&out), "qqclock-set", &now)) {
        r->set = true;
        r->after_s = done - now;
        snprintf(r->how, sizeof r->how, "set through ssh (`date -u -s @SECONDS`): it was %.1f s behind the host",
                 r->behind_s);
        return 0;
    }
    if (d.asked) {
        snprintf(r->how, sizeof r->how, "the guest's `date -u -s` failed (may the ssh user set the clock? root can)");
        return -1;
    }
    if (pr.stopped)
        snprintf(r->how, sizeof r->how, "interrupted");
    else if (pr.timed_out)
        snprintf(r->how, sizeof r->how, "could not reach the guest through ssh (ssh timed out)");
    else
        snprintf(r->how, sizeof r->how, "could not reach the guest through ssh (ssh failed: %.180s)",
                 err.len ? proc_last_line(err.buf) : "");
    return -1;
}
