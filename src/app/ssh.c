/* ssh — the VM's ssh config, ssh/scp through it, readiness waits (see ssh.h). */
#include "ssh.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/report.h"
#include "../infra/fs.h"
#include "../infra/net.h"
#include "../infra/proc.h"
#include "../base/xalloc.h"
#include "layout.h"

/* ------------------------------------------------------------------ prepare */

static bool unix_socket_alive(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path)
        return false;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static int vm_port_in_use(const config *c, const char *vm, bool need_running, vm_spec *s, int *port, qq_err *err)
{
    if (config_vm(c, vm, 0, s, err) < 0)
        return -1;
    if (s->ssh_port == SSH_PORT_NONE) {
        qq_fail(err, QQ_EXIT_USAGE, "VM %s has no ssh port: set [vm.%s.ssh] port (a number or \"auto\") in %s",
                vm, vm, config_path(c));
        vm_spec_free(s);
        return -1;
    }
    vm_state st = { 0 };
    vm_probe(s->state_dir, false, &st);
    /* a fixed port is known without the VM; an automatic one only while it runs */
    if (!st.running && (need_running || s->ssh_port == SSH_PORT_AUTO)) {
        qq_fail(err, QQ_EXIT_FAIL, "VM %s is not running (start it with: %s start %s)%s", vm, config_cli(c), vm,
                need_running ? "" : "; its ssh port is chosen at start");
        vm_spec_free(s);
        return -1;
    }
    *port = s->ssh_port > 0 ? s->ssh_port : st.ssh_port;
    if (*port <= 0) {
        qq_fail(err, QQ_EXIT_FAIL, "VM %s: the automatically chosen ssh port is not recorded in %s", vm,
                s->state_dir);
        vm_spec_free(s);
        return -1;
    }
    return 0;
}

int ssh_prepare(const config *c, const char *vm, bool need_running, ssh_target *t, qq_err *err)
{
    memset(t, 0, sizeof *t);
    vm_spec s;
    int port;
    if (vm_port_in_use(c, vm, need_running, &s, &port, err) < 0)
        return -1;
    _cleanup_free_ char *conf = layout_path(s.state_dir, LAYOUT_SSH_CONF);
    snprintf(t->conf, sizeof t->conf, "%s", conf);
    sshconf_alias(s.name, t->alias, sizeof t->alias);
    t->port = port;
    int rc = layout_make_dir(s.state_dir, err);
    if (rc == 0 && !sshconf_user_sets(c, &s, "ControlPath")) {
        /* the runtime dir made (and checked) before ssh.conf names it */
        _cleanup_free_ char *ctl = layout_control_path(s.state_dir, true, err);
        if (!ctl)
            rc = -1;
        else
            snprintf(t->control, sizeof t->control, "%s", ctl);
    }
    _cleanup_sbuf_ sbuf text = SBUF_INIT;
    if (rc == 0)
        rc = ssh_config_text(c, &s, port, &text, err);
    if (rc == 0) {
        /* write only when changed: a concurrent ssh may be reading it */
        _cleanup_free_ char *old = NULL;
        if (fs_read_file(t->conf, &old, NULL, NULL) < 0 || strcmp(old, sbuf_str(&text)) != 0)
            rc = fs_write_atomic(t->conf, text.buf, text.len, 0600, err);
    }
    if (rc == 0 && !sshconf_user_sets(c, &s, "UserKnownHostsFile")) {
        /* made here, so it is private: ssh would make it with the umask's mode */
        _cleanup_free_ char *kh = layout_path(s.state_dir, LAYOUT_KNOWN_HOSTS);
        int fd = open(kh, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0)
            close(fd);
    }
    if (rc == 0 && t->control[0]) {
        /* a master socket nobody answers on (the master died with a crash) */
        struct stat st;
        if (lstat(t->control, &st) == 0 && S_ISSOCK(st.st_mode) && !unix_socket_alive(t->control))
            unlink(t->control);
    }
    vm_spec_free(&s);
    return rc;
}

int ssh_forget_host_keys(const config *c, const char *vm, bool *had, qq_err *err)
{
    if (config_check_vm(c, vm, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    *had = layout_forget_host_keys(dir);
    return 0;
}

/* ------------------------------------------------------------------ run */

static void debug_argv(bool debug, char **argv)
{
    if (debug)
        proc_echo(argv);
}

int ssh_exec(const ssh_target *t, bool debug, int argc, char **argv, qq_err *err)
{
    char **av = calloc((size_t)argc + 8, sizeof *av);
    if (!av)
        abort();
    int n = 0;
    av[n++] = "ssh";
    av[n++] = "-F";
    av[n++] = (char *)t->conf;
    av[n++] = (char *)t->alias;
    if (argc > 0)
        av[n++] = "--";
    for (int i = 0; i < argc; i++)
        av[n++] = argv[i];
    av[n] = NULL;
    int rc = proc_exec(av, debug, err);
    free(av);
    return rc;
}

/* Run argv to its end (quiet: stdio on /dev/null; timeout_ms > 0: killed
 * then): its exit status, 128+signal, 127 when there is no such program, -1
 * when it could not run or was killed at the timeout. */
static int run_wait_ms(char **argv, bool quiet, int timeout_ms)
{
    proc_run_opts o = { .null_stdio = quiet, .timeout_ms = timeout_ms };
    proc_result r;
    if (proc_run(argv, &o, &r, NULL) < 0)
        return errno == ENOENT ? 127 : -1;
    if (r.timed_out)
        return -1;
    return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : 128 + WTERMSIG(r.status);
}

static int run_wait(char **argv, bool quiet) { return run_wait_ms(argv, quiet, 0); }

int ssh_copy(const ssh_target *t, bool debug, bool put, const char *src, const char *dst, qq_err *err)
{
    _cleanup_sbuf_ sbuf remote = SBUF_INIT;
    sbuf_addf(&remote, "%s:%s", t->alias, put ? dst : src);
    char *av[] = { "scp", "-F", (char *)t->conf, "-r", "-q", "--",
                   put ? (char *)src : remote.buf, put ? remote.buf : (char *)dst, NULL };
    debug_argv(debug, av);
    int rc = run_wait(av, false);
    if (rc < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "cannot run scp: %s", strerror(errno));
    if (rc == 127)
        return qq_fail(err, QQ_EXIT_FAIL, "cannot run scp (is openssh-client installed?)");
    if (rc != 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s %s %s failed (scp exit status %d)", put ? "put" : "get", src, dst,
                       rc);
    return 0;
}

void ssh_close_master(const char *state_dir, int timeout_ms)
{
    _cleanup_free_ char *conf = layout_path(state_dir, LAYOUT_SSH_CONF);
    if (access(conf, R_OK) != 0)
        return;
    _cleanup_free_ char *text = NULL;
    if (fs_read_file(conf, &text, NULL, NULL) < 0)
        return;
    /* the alias and ControlPath as written */
    _cleanup_free_ char *alias = sshconf_get(text, "Host");
    _cleanup_free_ char *ctl = sshconf_get(text, "ControlPath");
    struct stat st;
    if (!alias || !ctl || lstat(ctl, &st) < 0 || !S_ISSOCK(st.st_mode))
        return;
    long long deadline = proc_now_ms() + timeout_ms;
    _cleanup_close_ int probe = net_unix_connect_ms(ctl, timeout_ms, NULL);
    if (probe < 0) {
        if (errno != ENOENT)
            unlink(ctl);   /* dead (refused) or never accepting: only the socket is left */
        return;
    }
    char *av[] = { "ssh", "-F", conf, "-O", "exit", alias, NULL };
    long long left = deadline - proc_now_ms();
    if (run_wait_ms(av, true, left > 0 ? (int)left : 1) != 0)
        unlink(ctl);   /* a master that does not answer: removing its socket is enough */
}

/* ------------------------------------------------------------------ readiness */

/* Connect to 127.0.0.1:port and read the server's identification line;
 * why: what went wrong (for the progress line and a timeout). */
static bool banner_ok(int port, char *why, size_t wlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(why, wlen, "socket: %s", strerror(errno));
        return false;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    snprintf(why, wlen, "no SSH banner on port %d within 1.5 s", port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        snprintf(why, wlen, "port %d: %s", port, strerror(errno));
        goto out;
    }
    char buf[256];
    size_t got = 0;
    long long end = proc_now_ms() + 1500;
    while (got < 8) {
        long long left = end - proc_now_ms();
        if (left <= 0)
            goto out;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, (int)left);
        if (r <= 0)
            goto out;
        ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            snprintf(why, wlen, "port %d: %s before an SSH banner", port,
                     n == 0 ? "connection closed" : strerror(errno));
            goto out;
        }
        got += (size_t)n;
    }
    ok = memcmp(buf, "SSH-", 4) == 0;
    if (!ok)
        snprintf(why, wlen, "port %d answers, but not with an SSH banner", port);
out:
    close(fd);
    return ok;
}

/* One probe: `ssh … ALIAS -- cmd` in batch mode, stderr kept in errout.
 * Returns ssh's exit status (255: ssh itself failed), -1 when ssh could not
 * run or was killed at its bound. */
static int probe_ssh(const ssh_target *t, const char *cmd, int connect_timeout, bool debug, sbuf *errout)
{
    char ct[64];
    snprintf(ct, sizeof ct, "ConnectTimeout=%d", connect_timeout);
    char *av[] = { "ssh", "-F", (char *)t->conf, "-o", "BatchMode=yes", "-o", ct, (char *)t->alias,
                   "--", (char *)cmd, NULL };
    debug_argv(debug, av);
    proc_run_opts o = { .null_stdio = true, .err = errout, .timeout_ms = (connect_timeout + 10) * 1000 };
    proc_result r;
    if (proc_run(av, &o, &r, NULL) < 0) {
        sbuf_addf(errout, "cannot run ssh: %s\n", strerror(errno));
        return -1;
    }
    if (r.timed_out) {
        sbuf_addf(errout, "ssh did not finish within %d s\n", connect_timeout + 10);
        return -1;
    }
    return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1;
}

/* The last `max` non-empty lines of text, joined by "\n" (without a final one). */
static void last_lines(const char *text, size_t max, char *buf, size_t len)
{
    const char *end = text + strlen(text);
    const char *p = end;
    size_t n = 0;
    while (p > text && n < max) {
        while (p > text && (p[-1] == '\n' || p[-1] == '\r'))
            p--;
        if (p == text)
            break;
        while (p > text && p[-1] != '\n')
            p--;
        n++;
    }
    while (*p == '\n' || *p == '\r')
        p++;
    snprintf(buf, len, "%s", p);
    size_t l = strlen(buf);
    while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
        buf[--l] = '\0';
}

/* What ssh said that waiting cannot mend: a config ssh rejects, a key it
 * cannot read, a host key that changed. NULL: worth another try (refused,
 * reset, auth failing while the guest boots). *code: the exit code. */
static const char *unhealable(const char *ssh_err, int *code)
{
    *code = QQ_EXIT_USAGE;
    if (strstr(ssh_err, "Bad configuration option") || strstr(ssh_err, "bad configuration options") ||
        strstr(ssh_err, "Unsupported option") || strstr(ssh_err, "garbage at end of line"))
        return "ssh rejects the VM's ssh config (check the [ssh] and [vm.NAME.ssh] keys)";
    if ((strstr(ssh_err, "Identity file") && strstr(ssh_err, "not accessible")) || strstr(ssh_err, "no such identity"))
        return "ssh cannot read the IdentityFile";
    *code = QQ_EXIT_FAIL;
    if (strstr(ssh_err, "REMOTE HOST IDENTIFICATION HAS CHANGED") || strstr(ssh_err, "Host key verification failed"))
        return "the guest's host key is not the one pinned for this VM (a new guest? `qqmgr ssh-keys reset VM` "
               "forgets the old key)";
    if (strstr(ssh_err, "Can't open user config file"))
        return "ssh cannot read the VM's ssh config";
    return NULL;
}

static int fail_vm_gone(const char *state_dir, const char *vm, const char *why, qq_err *err)
{
    _cleanup_free_ char *path = layout_path(state_dir, LAYOUT_SERIAL);
    _cleanup_sbuf_ sbuf tail = SBUF_INIT;
    fs_tail(path, 15, &tail, NULL);
    /* one line: the serial tail is shown after it */
    if (tail.len)
        return qq_fail(err, QQ_EXIT_FAIL, "VM %s %s; end of its serial console:\n%s", vm, why, sbuf_str(&tail));
    return qq_fail(err, QQ_EXIT_FAIL, "VM %s %s", vm, why);
}

/* The progress line on a terminal: stage, seconds, the last thing ssh said. */
static void show_progress(const char *vm, const char *stage, long long ms, const char *last)
{
    char one[80];
    snprintf(one, sizeof one, "%s", last);
    one[strcspn(one, "\n")] = '\0';
    report_progress("qqmgr: %s: waiting for %s... %llds%s%s", vm, stage, ms / 1000, one[0] ? " — " : "", one);
}

int ssh_wait_ready(const config *c, const char *vm, const char *stage, long long deadline_ms, bool progress,
                   bool debug, qq_err *err)
{
    bool cloud = strcmp(stage, "cloud-init") == 0;
    if (!cloud && strcmp(stage, "ssh") != 0)
        return qq_fail(err, QQ_EXIT_USAGE, "unknown readiness stage \"%s\" (expected ssh or cloud-init)", stage);
    ssh_target t;
    if (ssh_prepare(c, vm, true, &t, err) < 0)
        return -1;
    {
        vm_spec s;
        if (config_vm(c, vm, t.port, &s, err) < 0)
            return -1;
        _cleanup_free_ char *missing = sshconf_missing_identity(c, &s);
        vm_spec_free(&s);
        if (missing)
            return qq_fail(err, QQ_EXIT_USAGE,
                           "VM %s: IdentityFile %s does not exist: ssh could never log in (the VM was left "
                           "running; `%s stop %s` stops it)", vm, missing, config_cli(c), vm);
    }
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    const char *what = "the ssh port to answer with an SSH banner";
    static const char *const stage_names[] = { "sshd", "ssh login", "cloud-init" };
    int phase = 0; /* 0 banner, 1 ssh true, 2 cloud-init */
    long long start = proc_now_ms(), last_qmp = 0;
    char last[1024] = "";   /* the last error (ssh's last lines, or the banner's) */
    int probes = 0;
    for (;;) {
        vm_state st = { 0 };
        vm_probe(dir, false, &st);
        if (!st.running) {
            if (progress)
                report_progress_break();
            return fail_vm_gone(dir, vm, "stopped while waiting for ssh", err);
        }
        long long now = proc_now_ms();
        if (now >= deadline_ms) {
            if (progress)
                report_progress_break();
            return qq_fail(err, QQ_EXIT_FAIL,
                           "VM %s: timed out after %.1fs waiting for %s (port %d); the VM was left running "
                           "(`%s stop %s` stops it)%s%s", vm, (double)(now - start) / 1000.0, what, t.port, config_cli(c), vm,
                           last[0] ? "; last error:\n" : "", last);
        }
        if (progress)
            show_progress(vm, stage_names[phase], now - start, last);
        probes++;
        if (phase == 0) {
            char why[256];
            bool ok = banner_ok(t.port, why, sizeof why);
            if (debug)
                report_line("qqmgr: %s: probe %d (%.1fs): banner on port %d: %s", vm, probes,
                            (double)(proc_now_ms() - start) / 1000.0, t.port, ok ? "SSH" : why);
            if (ok) {
                phase = 1;
                last[0] = '\0';
                what = "an ssh login (running `true`)";
                continue;
            }
            snprintf(last, sizeof last, "%s", why);
        } else {
            int left = (int)((deadline_ms - now) / 1000);
            _cleanup_sbuf_ sbuf e = SBUF_INIT;
            const char *cmd = phase == 1 ? "true" : "test -e /var/lib/cloud/instance/boot-finished";
            int rc = probe_ssh(&t, cmd, phase == 1 ? (left < 1 ? 1 : left > 10 ? 10 : left) : 10,
                               debug, &e);
            if (debug)
                report_line("qqmgr: %s: probe %d (%.1fs): ssh exit %d%s%.*s", vm, probes,
                            (double)(proc_now_ms() - start) / 1000.0, rc, e.len ? ": " : "",
                            (int)(e.len && e.buf[e.len - 1] == '\n' ? e.len - 1 : e.len), e.len ? e.buf : "");
            if (rc == 0) {
                if (phase == 2 || !cloud)
                    break;
                phase = 2;
                last[0] = '\0';
                what = "cloud-init to finish (/var/lib/cloud/instance/boot-finished)";
                continue;
            }
            if (rc == 255 || rc < 0 || phase == 1) {
                last_lines(sbuf_str(&e), 3, last, sizeof last);
                int code;
                const char *why = rc == 255 ? unhealable(sbuf_str(&e), &code) : NULL;
                if (why) {
                    if (progress)
                        report_progress_break();
                    return qq_fail(err, code, "VM %s: %s; the VM was left running (`%s stop %s` stops it); "
                                   "ssh said:\n%s", vm, why, config_cli(c), vm, last);
                }
            } else {
                snprintf(last, sizeof last, "/var/lib/cloud/instance/boot-finished not there yet");
            }
        }
        /* internal-error (what a broken KVM does) never recovers; asking QMP
         * costs a connection, so once a second is enough */
        if (proc_now_ms() - last_qmp >= 1000) {
            last_qmp = proc_now_ms();
            vm_state q = { 0 };
            vm_probe(dir, true, &q);
            if (strcmp(q.state, "internal-error") == 0) {
                if (progress)
                    report_progress_break();
                return fail_vm_gone(dir, vm, "is in internal-error (the guest crashed; try -accel tcg)", err);
            }
        }
        struct timespec ts = { 0, phase == 0 ? 50 * 1000 * 1000 : 200 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (progress)
        report_progress_end("qqmgr: %s: ready (%s) after %.1fs", vm, stage, (double)(proc_now_ms() - start) / 1000.0);
    return 0;
}
