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
#include "../infra/fs.h"
#include "../infra/net.h"
#include "../infra/proc.h"
#include "../base/xalloc.h"
#include "layout.h"

#define CONTROL_PERSIST "10m"

/* ------------------------------------------------------------------ config text */

static bool plain_alias(const char *s)
{
    if (!*s || strlen(s) > 200)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
            return false;
    return true;
}

static bool has_key(json_t *obj, const char *key)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (strcasecmp(k, key) == 0)
            return true;
    }
    return false;
}

/* Keys naming local files: a relative path is relative to the config's
 * directory (as QEMU's paths are), not to wherever ssh happens to run. */
static bool path_key_name(const char *key)
{
    static const char *const keys[] = { "IdentityFile", "CertificateFile", "UserKnownHostsFile",
                                        "GlobalKnownHostsFile", "IdentityAgent", NULL };
    for (const char *const *k = keys; *k; k++)
        if (strcasecmp(*k, key) == 0)
            return true;
    return false;
}

static void add_value(sbuf *out, const char *key, json_t *v, const char *base_dir)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) add_value(out, key, e, base_dir);
        return;
    }
    sbuf_addf(out, "    %s ", key);
    if (json_is_true(v))
        sbuf_adds(out, "yes");
    else if (json_is_false(v))
        sbuf_adds(out, "no");
    else if (json_is_integer(v))
        sbuf_addf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        sbuf_addf(out, "%g", json_real_value(v));
    else {
        const char *s = json_string_value(v);
        _cleanup_free_ char *abs = NULL;
        if (s && *s && path_key_name(key) && !strchr("/~%$", s[0]) && strcasecmp(s, "none") != 0 &&
            strcasecmp(s, "SSH_AUTH_SOCK") != 0 && asprintf(&abs, "%s/%s", base_dir, s) > 0)
            s = abs;
        /* values with white space are quoted, as ssh_config reads them */
        if (s && strpbrk(s, " \t") && s[0] != '"')
            sbuf_addf(out, "\"%s\"", s);
        else
            sbuf_adds(out, s ? s : "");
    }
    sbuf_addc(out, '\n');
}

static void alias_of(const vm_spec *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s", plain_alias(s->name) ? s->name : "qqmgr-vm");
}

int ssh_config_text(const config *c, const vm_spec *s, int port, sbuf *out, qq_err *err)
{
    (void)err;
    json_t *vm = s->ssh_opts, *global = config_ssh_global(c);
    char alias[256];
    alias_of(s, alias, sizeof alias);
    _cleanup_free_ char *ctl = layout_control_path(s->state_dir, false, NULL);
    sbuf_addf(out, "# ssh config of VM %s, written by qqmgr (%s)\n", s->name, config_path(c));
    sbuf_addf(out, "Host %s\n", alias);
    sbuf_adds(out, "    HostName 127.0.0.1\n");
    sbuf_addf(out, "    Port %d\n", port);
    if (!has_key(vm, "HostKeyAlias") && !has_key(global, "HostKeyAlias"))
        sbuf_addf(out, "    HostKeyAlias qqmgr-%s\n", alias);
    /* connection sharing on unless the user's keys say otherwise */
    if (!has_key(vm, "ControlMaster") && !has_key(global, "ControlMaster"))
        sbuf_adds(out, "    ControlMaster auto\n");
    if (!has_key(vm, "ControlPath") && !has_key(global, "ControlPath"))
        sbuf_addf(out, "    ControlPath %s\n", ctl);
    if (!has_key(vm, "ControlPersist") && !has_key(global, "ControlPersist"))
        sbuf_adds(out, "    ControlPersist " CONTROL_PERSIST "\n");
    const char *k;
    json_t *v;
    json_object_foreach(vm, k, v) add_value(out, k, v, config_dir(c));
    json_object_foreach(global, k, v) add_value(out, k, v, config_dir(c));
    return 0;
}

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
        qq_fail(err, QQ_EXIT_FAIL, "VM %s is not running (start it with: qqmgr start %s)%s", vm, vm,
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
    alias_of(&s, t->alias, sizeof t->alias);
    t->port = port;
    int rc = layout_make_dir(s.state_dir, err);
    if (rc == 0 && !has_key(s.ssh_opts, "ControlPath") && !has_key(config_ssh_global(c), "ControlPath")) {
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
    if (rc == 0 && t->control[0]) {
        /* a master socket nobody answers on (the master died with a crash) */
        struct stat st;
        if (lstat(t->control, &st) == 0 && S_ISSOCK(st.st_mode) && !unix_socket_alive(t->control))
            unlink(t->control);
    }
    vm_spec_free(&s);
    return rc;
}

/* ------------------------------------------------------------------ run */

static void debug_argv(bool debug, char **argv)
{
    if (!debug)
        return;
    fprintf(stderr, "+");
    for (char **p = argv; *p; p++)
        fprintf(stderr, " %s", *p);
    fprintf(stderr, "\n");
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

/* Run argv to its end (quiet: stdio on /dev/null): its exit status, 128+signal,
 * 127 when there is no such program, -1 when it could not run. */
static int run_wait(char **argv, bool quiet)
{
    proc_run_opts o = { .null_stdio = quiet };
    proc_result r;
    if (proc_run(argv, &o, &r, NULL) < 0)
        return errno == ENOENT ? 127 : -1;
    return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : 128 + WTERMSIG(r.status);
}

/* run_wait, quiet, killed after timeout_ms: its exit status, or -1 on timeout. */
static int run_bounded(char **argv, int timeout_ms)
{
    proc_run_opts o = { .null_stdio = true, .timeout_ms = timeout_ms > 0 ? timeout_ms : 1 };
    proc_result r;
    if (proc_run(argv, &o, &r, NULL) < 0 || r.timed_out || !WIFEXITED(r.status))
        return -1;
    return WEXITSTATUS(r.status);
}

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
    char alias[256] = "", ctl[512] = "";
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        while (*line == ' ')
            line++;
        if (!alias[0] && sscanf(line, "Host %255s", alias) == 1)
            continue;
        if (!ctl[0] && sscanf(line, "ControlPath %511s", ctl) == 1)
            continue;
    }
    /* as written: maybe quoted, with %% for a % */
    size_t cl = strlen(ctl);
    if (cl >= 2 && ctl[0] == '"' && ctl[cl - 1] == '"') {
        memmove(ctl, ctl + 1, cl - 2);
        ctl[cl - 2] = '\0';
    }
    for (char *pc = strstr(ctl, "%%"); pc; pc = strstr(pc + 1, "%%"))
        memmove(pc, pc + 1, strlen(pc));
    struct stat st;
    if (!alias[0] || !ctl[0] || lstat(ctl, &st) < 0 || !S_ISSOCK(st.st_mode))
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
    if (run_bounded(av, left > 0 ? (int)left : 0) != 0)
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
                fputc('\n', stderr);
            return qq_fail(err, QQ_EXIT_FAIL, "VM %s: timed out after %.1fs waiting for %s (port %d)", vm,
                           (double)(now - start) / 1000.0, what, t.port);
        }
        if (progress)
            fprintf(stderr, "\rqqmgr: %s: waiting for %s... %llds ", vm, phase == 0 ? "sshd" :
                                                                        phase == 1 ? "ssh login" : "cloud-init",
                    (now - start) / 1000);
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
        fprintf(stderr, "\rqqmgr: %s: ready (%s) after %.1fs          \n", vm, stage,
                (double)(proc_now_ms() - start) / 1000.0);
    return 0;
}
