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
    if (!config_has_vm(c, vm))
        return qq_fail(err, QQ_EXIT_USAGE, "%s: no VM named \"%s\"", config_path(c), vm);
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    *had = layout_forget_host_keys(dir);
    return 0;
}

/* ------------------------------------------------------------------ run */

static void debug_argv(bool debug, char **argv)
{
    if (!debug)
        return;
    _cleanup_sbuf_ sbuf l = SBUF_INIT;
    sbuf_adds(&l, "+");
    for (char **p = argv; *p; p++)
        sbuf_addf(&l, " %s", *p);
    report_line("%s", sbuf_str(&l));
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
    debug_argv(debug, av);
    fflush(stdout);
    fflush(stderr);
    execvp("ssh", av);
    int e = errno;
    free(av);
    return qq_fail(err, QQ_EXIT_FAIL, "cannot run ssh: %s", strerror(e));
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

/* Connect to 127.0.0.1:port and read the server's identification line. */
static bool banner_ok(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        goto out;
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
            goto out;
        }
        got += (size_t)n;
    }
    ok = memcmp(buf, "SSH-", 4) == 0;
out:
    close(fd);
    return ok;
}

static int run_ssh_quiet(const ssh_target *t, const char *cmd, int connect_timeout)
{
    char ct[64];
    snprintf(ct, sizeof ct, "ConnectTimeout=%d", connect_timeout);
    char *av[] = { "ssh", "-F", (char *)t->conf, "-o", "BatchMode=yes", "-o", ct, (char *)t->alias,
                   "--", (char *)cmd, NULL };
    return run_wait(av, true);
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

int ssh_wait_ready(const config *c, const char *vm, const char *stage, long long deadline_ms, bool progress,
                   qq_err *err)
{
    bool cloud = strcmp(stage, "cloud-init") == 0;
    if (!cloud && strcmp(stage, "ssh") != 0)
        return qq_fail(err, QQ_EXIT_USAGE, "unknown readiness stage \"%s\" (expected ssh or cloud-init)", stage);
    ssh_target t;
    if (ssh_prepare(c, vm, true, &t, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    const char *what = "the ssh port to answer with an SSH banner";
    int phase = 0; /* 0 banner, 1 ssh true, 2 cloud-init */
    long long start = proc_now_ms(), last_qmp = 0;
    for (;;) {
        vm_state st = { 0 };
        vm_probe(dir, false, &st);
        if (!st.running)
            return fail_vm_gone(dir, vm, "stopped while waiting for ssh", err);
        long long now = proc_now_ms();
        if (now >= deadline_ms) {
            if (progress)
                report_progress_break();
            return qq_fail(err, QQ_EXIT_FAIL, "VM %s: timed out after %.1fs waiting for %s (port %d)", vm,
                           (double)(now - start) / 1000.0, what, t.port);
        }
        if (progress)
            report_progress("qqmgr: %s: waiting for %s... %llds ", vm,
                            phase == 0 ? "sshd" : phase == 1 ? "ssh login" : "cloud-init", (now - start) / 1000);
        if (phase == 0) {
            if (banner_ok(t.port)) {
                phase = 1;
                what = "an ssh login (running `true`)";
                continue;
            }
        } else if (phase == 1) {
            int left = (int)((deadline_ms - now) / 1000);
            int rc = run_ssh_quiet(&t, "true", left < 1 ? 1 : left > 10 ? 10 : left);
            if (rc == 0) {
                if (!cloud)
                    break;
                phase = 2;
                what = "cloud-init to finish (/var/lib/cloud/instance/boot-finished)";
                continue;
            }
        } else {
            int rc = run_ssh_quiet(&t, "test -e /var/lib/cloud/instance/boot-finished", 10);
            if (rc == 0)
                break;
        }
        /* internal-error (what a broken KVM does) never recovers; asking QMP
         * costs a connection, so once a second is enough */
        if (proc_now_ms() - last_qmp >= 1000) {
            last_qmp = proc_now_ms();
            vm_state q = { 0 };
            vm_probe(dir, true, &q);
            if (strcmp(q.state, "internal-error") == 0)
                return fail_vm_gone(dir, vm, "is in internal-error (the guest crashed; try -accel tcg)", err);
        }
        struct timespec ts = { 0, phase == 0 ? 50 * 1000 * 1000 : 200 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (progress)
        report_progress_end("qqmgr: %s: ready (%s) after %.1fs", vm, stage, (double)(proc_now_ms() - start) / 1000.0);
    return 0;
}
