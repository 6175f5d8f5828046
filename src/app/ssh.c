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

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/report.h"
#include "../base/toml.h"
#include "../infra/fs.h"
#include "../infra/net.h"
#include "../infra/proc.h"
#include "../infra/qmp.h"
#include "../infra/sig.h"
#include "../base/xalloc.h"
#include "layout.h"
#include "leftover.h"
#include "running.h"
#include "vm.h"

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

/* The port ssh goes to: while the VM runs, the one it was started with (its
 * record: a port changed in the config since does not apply to it); else
 * the configured one. s is rendered with that port. */
static int vm_port_in_use(const config *c, const char *vm, bool need_running, vm_spec *s, int *port, qq_err *err)
{
    vm_state st = { 0 };
    if (config_check_vm(c, vm, NULL) == 0) {   /* else config_vm says so (a copy: VM#N) */
        _cleanup_free_ char *dir = config_vm_dir(c, vm);
        if (leftover_repair(dir, NULL, err) < 0)
            return -1;
        vm_probe(dir, false, &st);
    }
    if (config_vm(c, vm, st.running ? st.ssh_port : 0, s, err) < 0)
        return -1;
    if (s->ssh_port == SSH_PORT_NONE) {
        qq_fail(err, QQ_EXIT_USAGE, "VM %s has no ssh port: set [vm.%s.ssh] port (a number or \"auto\") in %s",
                vm, vm, config_path(c));
        vm_spec_free(s);
        return -1;
    }
    /* a fixed port is known without the VM; an automatic one only while it runs */
    if (!st.running && (need_running || s->ssh_port == SSH_PORT_AUTO)) {
        running_not(c, vm, NULL, err);
        if (!need_running) {
            size_t l = strlen(err->msg);
            snprintf(err->msg + l, sizeof err->msg - l, "; its ssh port is chosen at start");
        }
        vm_spec_free(s);
        return -1;
    }
    *port = st.running && st.ssh_port > 0 ? st.ssh_port : s->ssh_port > 0 ? s->ssh_port : st.ssh_port;
    if (*port <= 0) {
        qq_fail(err, QQ_EXIT_FAIL, "VM %s: the automatically chosen ssh port is not recorded in %s", vm,
                s->state_dir);
        vm_spec_free(s);
        return -1;
    }
    return 0;
}

/* Where the keyword on line `line` (1-based) of ssh.conf text came from:
 * its config path (vm.NAME.ssh.KEY[i] or ssh.KEY[i]) in path; false when it
 * is one qqmgr writes itself. */
static bool line_origin(const vm_spec *s, const char *text, long line, sbuf *path)
{
    const char *l = text;
    for (long n = 1; n < line && l; n++) {
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    if (!l)
        return false;
    const char *start = l;
    l += strspn(l, " \t");
    size_t kl = strcspn(l, " \t=\n");
    /* which occurrence of this keyword the line is (arrays repeat it) */
    size_t occ = 0;
    for (const char *p = text; p < start;) {
        const char *q = p + strspn(p, " \t");
        if (strncasecmp(q, l, kl) == 0 && strchr(" \t=", q[kl]))
            occ++;
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    json_t *tables[] = { s->ssh_opts, s->ssh_global };
    for (int t = 0; t < 2; t++) {
        const char *k;
        json_t *v;
        json_object_foreach(tables[t], k, v) {
            if (strlen(k) != kl || strncasecmp(k, l, kl) != 0)
                continue;
            size_t count = json_is_array(v) ? json_array_size(v) : 1;
            if (occ >= count) {
                occ -= count;
                continue;
            }
            sbuf_reset(path);
            if (t == 0) {
                toml_path_append(path, "vm");
                toml_path_append(path, s->name);
            }
            toml_path_append(path, "ssh");
            toml_path_append(path, k);
            if (json_is_array(v))
                toml_path_append_index(path, occ);
            return true;
        }
    }
    return false;
}

/* Let ssh read the config (`ssh -G`, no connection): a value ssh rejects is
 * a config error naming the key in the config (QQ_EXIT_USAGE), not ssh's
 * complaint about a line of the generated file. No ssh: nothing checked. */
static int check_with_ssh(const config *c, const vm_spec *s, const char *conf, const char *alias, const char *text,
                          qq_err *err)
{
    char *av[] = { "ssh", "-G", "-F", (char *)conf, (char *)alias, NULL };
    _cleanup_sbuf_ sbuf e = SBUF_INIT;
    proc_run_opts o = { .null_stdio = true, .err = &e, .timeout_ms = 10000 };
    proc_result r;
    if (proc_run(av, &o, &r, NULL) < 0 || r.timed_out || (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0))
        return 0;
    const char *msg = sbuf_str(&e);
    size_t ml = strcspn(msg, "\n");
    const char *at = strstr(msg, " line ");
    long line = 0;
    if (at && at < msg + ml) {
        char *end;
        line = strtol(at + 6, &end, 10);
        if (*end == ':') {
            msg = end + 1 + strspn(end + 1, " ");
            ml = strcspn(msg, "\n");
        }
    }
    while (ml && (msg[ml - 1] == '\r' || msg[ml - 1] == ' '))
        ml--;
    _cleanup_sbuf_ sbuf path = SBUF_INIT;
    if (line > 0 && line_origin(s, text, line, &path)) {
        char where[4200];
        config_where(c, sbuf_str(&path), where, sizeof where);
        return qq_fail(err, QQ_EXIT_USAGE, "%s: %s: ssh rejects this value: %.*s", where, sbuf_str(&path), (int)ml,
                       msg);
    }
    return qq_fail(err, QQ_EXIT_USAGE, "%s: ssh rejects the ssh config written for VM %s (%s): %.*s",
                   config_path(c), s->name, conf, (int)ml, msg);
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
        if (fs_read_file(t->conf, &old, NULL, NULL) < 0 || strcmp(old, sbuf_str(&text)) != 0) {
            /* checked by ssh before it replaces the old one */
            _cleanup_sbuf_ sbuf next = SBUF_INIT;
            sbuf_addf(&next, "%s.next", t->conf);
            rc = fs_write_atomic(sbuf_str(&next), text.buf, text.len, 0600, err);
            if (rc == 0 && (rc = check_with_ssh(c, &s, sbuf_str(&next), t->alias, sbuf_str(&text), err)) < 0)
                unlink(sbuf_str(&next));
            if (rc == 0 && rename(sbuf_str(&next), t->conf) < 0)
                rc = qq_fail(err, QQ_EXIT_FAIL, "cannot write %s: %s", t->conf, strerror(errno));
        }
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
    long long deadline = clock_ms() + timeout_ms;
    _cleanup_close_ int probe = net_unix_connect_ms(ctl, timeout_ms, NULL);
    if (probe < 0) {
        if (errno != ENOENT)
            unlink(ctl);   /* dead (refused) or never accepting: only the socket is left */
        return;
    }
    char *av[] = { "ssh", "-F", conf, "-O", "exit", alias, NULL };
    long long left = deadline - clock_ms();
    if (run_wait_ms(av, true, left > 0 ? (int)left : 1) != 0)
        unlink(ctl);   /* a master that does not answer: removing its socket is enough */
    if (layout_pid_holder(state_dir) <= 0)
        layout_release_runtime_dir(state_dir);   /* the VM is gone: its fallback runtime dir too, once empty */
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
    long long end = clock_ms() + 1500;
    while (got < 8) {
        long long left = end - clock_ms();
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
    /* a caught signal (the wait's own, or its caller's) ends the probe at once */
    proc_run_opts o = { .null_stdio = true, .err = errout, .timeout_ms = (connect_timeout + 10) * 1000,
                        .stop = sig_flag() };
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

/* The end of the VM's serial log ("" when it has none): n lines. */
static void serial_tail(const char *state_dir, size_t n, sbuf *out)
{
    _cleanup_free_ char *path = layout_path(state_dir, LAYOUT_SERIAL);
    fs_tail(path, n, out, NULL);
    while (out->len && (out->buf[out->len - 1] == '\n' || out->buf[out->len - 1] == '\r'))
        out->buf[--out->len] = '\0';
}

/* "; its serial console ends with:\n<tail>" or "; its serial console is empty" */
static void add_serial_tail(sbuf *msg, const char *state_dir)
{
    _cleanup_sbuf_ sbuf tail = SBUF_INIT;
    serial_tail(state_dir, SSH_WAIT_SERIAL_LINES, &tail);
    if (tail.len)
        sbuf_addf(msg, "\nlast lines of its serial console:\n%s", sbuf_str(&tail));
    else
        sbuf_adds(msg, "\nits serial console is empty");
}

static int fail_vm_gone(const char *state_dir, const char *vm, const char *why, qq_err *err)
{
    _cleanup_sbuf_ sbuf msg = SBUF_INIT;
    sbuf_addf(&msg, "VM %s %s", vm, why);
    add_serial_tail(&msg, state_dir);
    return qq_fail(err, QQ_EXIT_FAIL, "%s", sbuf_str(&msg));
}

/* What the serial console tells about a guest ssh does not reach yet. */
typedef struct serial_watch {
    char path[4096];
    off_t size;              /* at the last look */
    time_t mtime;
    char prompt[96];         /* a login prompt at its end ("dev login:"), or "" */
    char panic[200];         /* the reason of a kernel panic among its last lines, or "" */
    bool silent;             /* nothing at all on it for SSH_WAIT_SILENT_S */
    bool kvm_asked;
    bool kvm;                /* the VM runs under KVM (QMP query-kvm) */
    bool at_reset;           /* its first CPU is still at the reset vector */
    long long asked_ms;      /* when the registers were last read */
    long long reset_since;   /* since when they show the reset vector (0: not) */
} serial_watch;

/* Whether a line is a console's invitation to log in: 2 "NAME login:"
 * (getty), 1 busybox's "Please press Enter to activate this console.", 0 no. */
static int is_prompt(const char *line, size_t len)
{
    while (len && isspace((unsigned char)line[len - 1]))
        len--;
    if (len >= 6 && memcmp(line + len - 6, "login:", 6) == 0)
        return 2;
    return memmem(line, len, "Please press Enter to activate this console", 43) != NULL;
}

static void serial_look(serial_watch *w)
{
    struct stat st;
    if (stat(w->path, &st) < 0)
        return;
    w->silent = st.st_size == 0 && time(NULL) - st.st_mtime >= SSH_WAIT_SILENT_S;
    if (st.st_size == w->size && st.st_mtime == w->mtime)
        return;
    w->size = st.st_size;
    w->mtime = st.st_mtime;
    w->prompt[0] = '\0';
    w->panic[0] = '\0';
    _cleanup_sbuf_ sbuf tail = SBUF_INIT;
    fs_tail(w->path, 10, &tail, NULL);
    vm_console_panic(sbuf_str(&tail), w->panic, sizeof w->panic);
    /* the last lines (a prompt may be followed by messages: cloud-init's, a daemon's) */
    int best = 0;
    for (const char *l = sbuf_str(&tail); *l;) {
        size_t len = strcspn(l, "\n");
        int k = is_prompt(l, len);
        if (k && k >= best) {
            best = k;
            const char *b = l;
            while (len && isspace((unsigned char)*b))
                b++, len--;
            while (len && isspace((unsigned char)b[len - 1]))
                len--;
            snprintf(w->prompt, sizeof w->prompt, "%.*s", (int)len, b);
        }
        l += len;
        l += strspn(l, "\r\n \t");
    }
}

/* A silent guest: does it run under KVM (asked once), is its CPU still at
 * the reset vector (asked every SSH_WAIT_RESET_MS)? */
#define SSH_WAIT_RESET_MS 5000
static void ask_why_silent(const config *c, const char *vm, serial_watch *w)
{
    qq_err e = { 0 };
    if (!w->kvm_asked) {
        w->kvm_asked = true;
        json_t *r = vm_qmp(c, vm, "query-kvm", NULL, &e);
        w->kvm = json_is_true(json_object_get(json_object_get(r, "return"), "enabled"));
        json_decref(r);
    }
    long long now = clock_ms();
    if (w->asked_ms && now - w->asked_ms < SSH_WAIT_RESET_MS)
        return;
    w->asked_ms = now;
    _cleanup_free_ char *regs = vm_hmp(c, vm, "info registers", &e);
    w->at_reset = qmp_regs_at_reset(regs);
    if (!w->at_reset)
        w->reset_since = 0;
    else if (!w->reset_since)
        w->reset_since = now;
}

/* A hint for the progress line (short) and the error (long), or false. */
static bool serial_hint(const serial_watch *w, int phase, int port, bool refused, sbuf *shrt, sbuf *lng)
{
    if (phase == 0 && w->prompt[0]) {
        sbuf_addf(shrt, "serial shows '%s', port %d does not answer", w->prompt, port);
        sbuf_addf(lng, "the guest booted — serial shows '%s' — but nothing answers on its ssh port %d: does cmd "
                  "give it a network device and the hostfwd to {{.vm.ssh.port}}%s?", w->prompt, port,
                  refused ? " (nothing listens on the host port)" : ", and does the guest run sshd");
        return true;
    }
    if (w->silent) {
        sbuf_addf(shrt, "the guest printed nothing in %d s%s", SSH_WAIT_SILENT_S, w->kvm ? " (under KVM)" : "");
        sbuf_addf(lng, "the guest has printed nothing on its serial console in %d s", SSH_WAIT_SILENT_S);
        if (w->at_reset)
            sbuf_adds(lng, " and its CPU has not left the reset vector: the guest never ran");
        if (w->kvm)
            sbuf_adds(lng, "; it runs under KVM (QMP query-kvm): if KVM does not work on this host, choose TCG "
                      "with `-accel tcg` in cmd");
        else
            sbuf_adds(lng, " (does it boot? is its console on the serial port, console=ttyS0?)");
        return true;
    }
    return false;
}

/* The progress line on a terminal: stage, seconds, the last thing ssh said
 * (or what the serial console tells). */
static void show_progress(const char *vm, const char *stage, long long ms, const char *last)
{
    char one[100];
    snprintf(one, sizeof one, "%s", last);
    one[strcspn(one, "\n")] = '\0';
    report_progress("qqmgr: %s: waiting for %s... %llds%s%s", vm, stage, ms / 1000, one[0] ? " — " : "", one);
}

/* The login keeps being refused: which keys ssh offers (ssh -G). */
static void add_identities(sbuf *msg, const ssh_target *t)
{
    char *av[] = { "ssh", "-G", "-F", (char *)t->conf, (char *)t->alias, NULL };
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    proc_run_opts o = { .null_stdio = true, .out = &out, .timeout_ms = 5000 };
    proc_result r;
    int n = 0;
    if (proc_run(av, &o, &r, NULL) == 0 && !r.timed_out) {
        for (const char *l = sbuf_str(&out); *l;) {
            size_t len = strcspn(l, "\n");
            if (len > 13 && strncmp(l, "identityfile ", 13) == 0) {
                sbuf_addf(msg, "%s%.*s", n++ ? ", " : " ", (int)(len - 13), l + 13);
            }
            l += len + (l[len] == '\n');
        }
    }
    if (!n)
        sbuf_adds(msg, " (none named)");
}

/* Sleep ms unless a signal came. */
static void nap(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000 * 1000 };
    if (!sig_caught())
        nanosleep(&ts, NULL);
}

static int wait_loop(const config *c, const char *vm, const char *stage, long long deadline_ms, bool progress,
                     bool debug, bool own_signals, qq_err *err)
{
    bool cloud = strcmp(stage, "cloud-init") == 0;
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
    serial_watch sw = { 0 };
    {
        _cleanup_free_ char *sp = layout_path(dir, LAYOUT_SERIAL);
        snprintf(sw.path, sizeof sw.path, "%s", sp);
        sw.size = -1;
    }
    const char *what = "the ssh port to answer with an SSH banner";
    static const char *const stage_names[] = { "sshd", "ssh login", "cloud-init" };
    int phase = 0; /* 0 banner, 1 ssh true, 2 cloud-init */
    long long start = clock_ms(), last_qmp = 0, denied_since = 0;
    char last[1024] = "";   /* the last error (ssh's last lines, or the banner's) */
    bool refused = false;
    int probes = 0;
    for (;;) {
        if (sig_caught()) {
            if (progress)
                report_progress_break();
            if (!own_signals)   /* the caller's long operation says what becomes of the VM */
                return qq_fail(err, QQ_EXIT_FAIL, "VM %s: interrupted while waiting for %s", vm, stage_names[phase]);
            return qq_fail(err, QQ_EXIT_FAIL, "VM %s: interrupted while waiting for %s; the VM keeps running "
                           "(`%s stop %s` stops it)", vm, stage_names[phase], config_cli(c), vm);
        }
        vm_state st = { 0 };
        vm_probe(dir, false, &st);
        if (!st.running) {
            if (progress)
                report_progress_break();
            return fail_vm_gone(dir, vm, "stopped while waiting for ssh", err);
        }
        long long now = clock_ms();
        _cleanup_sbuf_ sbuf hint_s = SBUF_INIT, hint_l = SBUF_INIT;
        bool hint = serial_hint(&sw, phase, t.port, refused, &hint_s, &hint_l);
        if (now >= deadline_ms) {
            if (progress)
                report_progress_break();
            _cleanup_sbuf_ sbuf msg = SBUF_INIT;
            sbuf_addf(&msg, "VM %s: timed out after %.1fs waiting for %s (port %d); the VM was left running "
                      "(`%s stop %s` stops it)", vm, (double)(now - start) / 1000.0, what, t.port, config_cli(c), vm);
            if (hint)
                sbuf_addf(&msg, "; %s", sbuf_str(&hint_l));
            if (last[0])
                sbuf_addf(&msg, "; last error:\n%s", last);
            add_serial_tail(&msg, dir);
            return qq_fail(err, QQ_EXIT_FAIL, "%s", sbuf_str(&msg));
        }
        if (progress)
            show_progress(vm, stage_names[phase], now - start, hint ? sbuf_str(&hint_s) : last);
        probes++;
        if (phase == 0) {
            char why[256];
            bool ok = banner_ok(t.port, why, sizeof why);
            if (debug)
                report_line("qqmgr: %s: probe %d (%.1fs): banner on port %d: %s", vm, probes,
                            (double)(clock_ms() - start) / 1000.0, t.port, ok ? "SSH" : why);
            if (ok) {
                phase = 1;
                last[0] = '\0';
                what = "an ssh login (running `true`)";
                continue;
            }
            refused = strstr(why, "refused") != NULL;
            snprintf(last, sizeof last, "%s", why);
        } else {
            int left = (int)((deadline_ms - now) / 1000);
            _cleanup_sbuf_ sbuf e = SBUF_INIT;
            const char *cmd = phase == 1 ? "true" : "test -e /var/lib/cloud/instance/boot-finished";
            int rc = probe_ssh(&t, cmd, phase == 1 ? (left < 1 ? 1 : left > 10 ? 10 : left) : 10,
                               debug, &e);
            if (debug)
                report_line("qqmgr: %s: probe %d (%.1fs): ssh exit %d%s%.*s", vm, probes,
                            (double)(clock_ms() - start) / 1000.0, rc, e.len ? ": " : "",
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
                /* a refused key: cloud-init may install it late, so only a lasting refusal fails */
                if (rc == 255 && strstr(sbuf_str(&e), "Permission denied")) {
                    long long at = clock_ms();
                    if (!denied_since)
                        denied_since = at;
                    else if (at - denied_since >= SSH_WAIT_DENIED_S * 1000LL) {
                        if (progress)
                            report_progress_break();
                        _cleanup_sbuf_ sbuf msg = SBUF_INIT;
                        sbuf_addf(&msg, "VM %s: the guest's sshd refused the login for %d s (since %.1fs into "
                                  "the wait): is the public key of the IdentityFile in the guest's "
                                  "authorized_keys (and User right)? the VM was left running (`%s stop %s` stops "
                                  "it); ssh offered:", vm, SSH_WAIT_DENIED_S,
                                  (double)(denied_since - start) / 1000.0, config_cli(c), vm);
                        add_identities(&msg, &t);
                        sbuf_addf(&msg, "; ssh said:\n%s", last);
                        return qq_fail(err, QQ_EXIT_FAIL, "%s", sbuf_str(&msg));
                    }
                } else {
                    denied_since = 0;
                }
            } else {
                snprintf(last, sizeof last, "/var/lib/cloud/instance/boot-finished not there yet");
            }
        }
        /* internal-error (what a broken KVM does) never recovers; asking QMP
         * costs a connection, so once a second is enough; so is reading the
         * serial console */
        if (clock_ms() - last_qmp >= 1000) {
            last_qmp = clock_ms();
            vm_state q = { 0 };
            vm_probe(dir, true, &q);
            if (strcmp(q.state, "internal-error") == 0) {
                if (progress)
                    report_progress_break();
                return fail_vm_gone(dir, vm, "is in internal-error (the guest crashed; try -accel tcg)", err);
            }
            serial_look(&sw);
            /* a panicked kernel never answers: its console's last words, or QEMU's
             * pvpanic device (state guest-panicked), end the wait at once */
            if (sw.panic[0] || strcmp(q.state, "guest-panicked") == 0) {
                if (progress)
                    report_progress_break();
                _cleanup_sbuf_ sbuf msg = SBUF_INIT;
                sbuf_addf(&msg, "VM %s: the guest kernel panicked", vm);
                if (sw.panic[0])
                    sbuf_addf(&msg, " (serial: \"Kernel panic - not syncing: %s\")", sw.panic);
                else
                    sbuf_adds(&msg, " (QEMU reports guest-panicked)");
                sbuf_addf(&msg, " %.1fs into the wait for %s; the VM was left running (`%s stop %s` stops it)",
                          (double)(clock_ms() - start) / 1000.0, stage_names[phase], config_cli(c), vm);
                add_serial_tail(&msg, dir);
                return qq_fail(err, QQ_EXIT_FAIL, "%s", sbuf_str(&msg));
            }
            if (sw.silent)
                ask_why_silent(c, vm, &sw);
            /* still at the reset vector on a second look: waiting cannot mend a guest that never runs */
            if (sw.silent && sw.reset_since && clock_ms() - sw.reset_since >= SSH_WAIT_RESET_MS) {
                if (progress)
                    report_progress_break();
                _cleanup_sbuf_ sbuf hs = SBUF_INIT, msg = SBUF_INIT;
                sbuf_addf(&msg, "VM %s: ", vm);
                serial_hint(&sw, phase, t.port, refused, &hs, &msg);
                sbuf_addf(&msg, "; the VM was left running (`%s stop %s` stops it)", config_cli(c), vm);
                add_serial_tail(&msg, dir);
                return qq_fail(err, QQ_EXIT_FAIL, "%s", sbuf_str(&msg));
            }
        }
        nap(phase == 0 ? 50 : 200);
    }
    if (progress)
        report_progress_end("qqmgr: %s: ready (%s) after %.1fs", vm, stage, (double)(clock_ms() - start) / 1000.0);
    return 0;
}

int ssh_wait_ready(const config *c, const char *vm, const char *stage, long long deadline_ms, bool progress,
                   bool debug, qq_err *err)
{
    if (strcmp(stage, "cloud-init") != 0 && strcmp(stage, "ssh") != 0)
        return qq_fail(err, QQ_EXIT_USAGE, "unknown readiness stage \"%s\" (expected ssh or cloud-init)", stage);
    /* Ctrl-C (and TERM, HUP) ends the wait, not qqmgr: the VM keeps running, and the user is
     * told. A caller that catches them itself (a long operation of its own, such as run) keeps
     * its catcher: the wait then ends on what that scope caught (sig.h), or when it ends QEMU. */
    bool own = !sig_active();
    sig_scope scope;
    if (own)
        sig_catch(&scope);
    int rc = wait_loop(c, vm, stage, deadline_ms, progress, debug, own, err);
    if (own)
        sig_release(&scope);
    return rc;
}
