/* guestclock — see guestclock.h. */
#include "guestclock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/clock.h"
#include "../base/sbuf.h"
#include "../infra/proc.h"
#include "../infra/sig.h"
#include "guestagent.h"
#include "ssh.h"

/* From the answer's write to the guest's `date -s`: the session's one-way
 * trip, the shell's read and date's exec (under TCG a few ms in a small
 * guest, tens in a big one). */
#define GUESTCLOCK_LEAD_S 0.015
/* The guest agent: how long it may take to answer (then ssh is tried), and
 * the lead of its guest-set-time (virtio-serial to a qemu-ga that reads it). */
#define GUESTCLOCK_AGENT_MS 3000
#define GUESTCLOCK_AGENT_LEAD_S 0.002

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

/* Through the guest agent: its time (how far behind), guest-set-time with
 * the host's, its time again (how far off now). */
static int agent_sync(const char *sock, long long deadline_ms, guestclock_result *r, char *why, size_t len)
{
    qq_err e = { 0 };
    int fd = guestagent_open(sock, deadline_ms, &e);
    if (fd < 0) {
        snprintf(why, len, "%.200s", e.msg);
        return -1;
    }
    int rc = -1;
    json_t *t0 = guestagent_execute(fd, "guest-get-time", NULL, deadline_ms, &e);
    double host0 = wall_now();
    json_t *args = json_pack("{s:I}", "time", (json_int_t)((host0 + GUESTCLOCK_AGENT_LEAD_S) * 1e9));
    json_t *set = t0 ? guestagent_execute(fd, "guest-set-time", args, deadline_ms, &e) : NULL;
    json_t *t1 = set ? guestagent_execute(fd, "guest-get-time", NULL, deadline_ms, &e) : NULL;
    double host1 = wall_now();
    if (t1 && json_is_integer(t0) && json_is_integer(t1)) {
        r->set = true;
        r->behind_s = host0 - (double)json_integer_value(t0) / 1e9;
        r->after_s = host1 - (double)json_integer_value(t1) / 1e9;
        snprintf(r->how, sizeof r->how, "set through the guest agent (guest-set-time): it was %.1f s behind the host",
                 r->behind_s);
        rc = 0;
    } else {
        snprintf(why, len, "%.200s", e.msg[0] ? e.msg : "the guest agent's guest-get-time gave no time");
    }
    json_decref(t0);
    json_decref(args);
    json_decref(set);
    json_decref(t1);
    close(fd);
    return rc;
}

static int ssh_sync(const config *c, const char *vm, long long deadline_ms, guestclock_result *r);

int guestclock_sync(const config *c, const char *vm, long long deadline_ms, guestclock_result *r)
{
    memset(r, 0, sizeof *r);
    r->tried = true;
    /* the guest agent first, where the VM has one: no login, nanoseconds */
    _cleanup_free_ char *sock = guestagent_socket(c, vm);
    char agent_why[240] = "";
    if (sock) {
        long long until = clock_ms() + GUESTCLOCK_AGENT_MS;
        if (agent_sync(sock, until < deadline_ms ? until : deadline_ms, r, agent_why, sizeof agent_why) == 0)
            return 0;
    }
    if (ssh_sync(c, vm, deadline_ms, r) == 0) {
        snprintf(r->agent, sizeof r->agent, "%.190s", agent_why);
        return 0;
    }
    if (agent_why[0]) {
        char ssh_why[sizeof r->how];
        snprintf(ssh_why, sizeof ssh_why, "%s", r->how);
        snprintf(r->how, sizeof r->how, "%.120s; the guest agent: %.110s", ssh_why, agent_why);
    }
    return -1;
}

static int ssh_sync(const config *c, const char *vm, long long deadline_ms, guestclock_result *r)
{
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
