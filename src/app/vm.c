/* vm — see vm.h. */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/report.h"
#include "../base/sbuf.h"
#include "../infra/fs.h"
#include "../infra/net.h"
#include "../infra/proc.h"
#include "../infra/qmp.h"
#include "../base/xalloc.h"
#include "debug.h"
#include "layout.h"

#define SERIAL_CHARDEV "qq-serial"

/* QEMU option values: a comma is written twice. */
static void add_escaped(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == ',')
            sbuf_addc(b, ',');
        sbuf_addc(b, *s);
    }
}

/* ------------------------------------------------------------ argv */

void vm_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

static const char *const injected[] = { "pidfile", "qmp", "qmp-pretty", "monitor", "serial", "daemonize", NULL };

/* "FILE:LINE:COL: vm.NAME.cmd[i]" of argument i (located only for an error) */
static const char *arg_where(const vm_spec *s, size_t i, char *buf, size_t len)
{
    if (!s->arg_where || !s->cfg)
        return s->name;
    char loc[PATH_MAX + 32];
    config_where(s->cfg, s->arg_where[i], loc, sizeof loc);
    snprintf(buf, len, "%s: %s", loc, s->arg_where[i]);
    return buf;
}

static int check_user_args(const vm_spec *s, qq_err *err)
{
    char wb[PATH_MAX + 300];
    for (size_t i = 0; i < s->nargs; i++) {
        const char *a = s->args[i];
        if (a[0] != '-')
            continue;
        const char *opt = a + 1 + (a[1] == '-');
        for (const char *const *p = injected; *p; p++) {
            if (strcmp(opt, *p) == 0) {
                const char *val = (strcmp(*p, "daemonize") != 0 && i + 1 < s->nargs) ? s->args[i + 1] : NULL;
                return qq_fail(err, QQ_EXIT_USAGE,
                               "%s: '%s%s%s' sets what qqmgr injects itself (-pidfile, -qmp, "
                               "-monitor, -serial; QEMU runs in the background without -daemonize): "
                               "remove it (use `qqmgr qmp`, `monitor`, `console`, `serial`)",
                               arg_where(s, i, wb, sizeof wb), a, val ? " " : "", val ? val : "");
            }
        }
        if ((strcmp(opt, "chardev") == 0 || strcmp(opt, "mon") == 0) && i + 1 < s->nargs &&
            (strstr(s->args[i + 1], "id=" SERIAL_CHARDEV) || strstr(s->args[i + 1], "id=" DEBUG_EVENTS_CHARDEV)))
            return qq_fail(err, QQ_EXIT_USAGE, "%s: '%s %s': the ids " SERIAL_CHARDEV " and " DEBUG_EVENTS_CHARDEV
                           " are qqmgr's",
                           arg_where(s, i, wb, sizeof wb), a, s->args[i + 1]);
    }
    return 0;
}

int vm_argv(const vm_spec *s, char ***argv, qq_err *err)
{
    return vm_argv_opts(s, NULL, argv, err);
}

int vm_argv_opts(const vm_spec *s, const vm_run_opts *ro, char ***argv, qq_err *err)
{
    if (check_user_args(s, err) < 0)
        return -1;
    size_t n = 0, cap = s->nargs + 16;
    char **v = calloc(cap, sizeof *v);
    if (!v)
        abort();
#define ADD(str) (v[n++] = (str))
    ADD(strdup(s->qemu_bin));
    for (size_t i = 0; i < s->nargs; i++)
        ADD(strdup(s->args[i]));
    /* what start made (without it, the name it would make) */
    _cleanup_free_ char *sd = layout_socket_dir(s->state_dir, false, NULL);
    _cleanup_free_ char *pid = layout_path(s->state_dir, LAYOUT_PID);
    _cleanup_free_ char *serial_log = layout_path(s->state_dir, LAYOUT_SERIAL);
    _cleanup_free_ char *qmp_sock = layout_path(sd, LAYOUT_QMP);
    _cleanup_free_ char *mon_sock = layout_path(sd, LAYOUT_MONITOR);
    _cleanup_free_ char *ser_sock = layout_path(sd, LAYOUT_SERIAL_SOCKET);
    sbuf b = SBUF_INIT;
    ADD(strdup("-pidfile"));
    ADD(strdup(pid));
    ADD(strdup("-qmp"));
    sbuf_adds(&b, "unix:");
    add_escaped(&b, qmp_sock);
    sbuf_adds(&b, ",server=on,wait=off");
    ADD(sbuf_steal(&b));
    ADD(strdup("-monitor"));
    sbuf_adds(&b, "unix:");
    add_escaped(&b, mon_sock);
    sbuf_adds(&b, ",server=on,wait=off");
    ADD(sbuf_steal(&b));
    ADD(strdup("-chardev"));
    sbuf_adds(&b, "socket,id=" SERIAL_CHARDEV ",path=");
    add_escaped(&b, ser_sock);
    sbuf_adds(&b, ",server=on,wait=off,logfile=");
    add_escaped(&b, serial_log);
    sbuf_adds(&b, ",logappend=off");
    ADD(sbuf_steal(&b));
    ADD(strdup("-serial"));
    ADD(strdup("chardev:" SERIAL_CHARDEV));
#undef ADD
    v[n] = NULL;
    for (size_t i = 0; i < n; i++)
        if (!v[i])
            abort();
    /* the test loop (snapshot.h): per-run disk copies, -loadvm/-incoming/-snapshot */
    for (size_t i = 1; ro && ro->replace && i <= s->nargs; i++) {
        for (char *const *r = ro->replace; r[0] && r[1]; r += 2) {
            char *at = strstr(v[i], r[0]);
            if (!at)
                continue;
            char *t = xasprintf("%.*s%s%s", (int)(at - v[i]), v[i], r[1], at + strlen(r[0]));
            free(v[i]);
            v[i] = t;
        }
    }
    for (char *const *e = ro ? ro->extra_args : NULL; e && *e; e++)
        strv_push(&v, &n, xstrdup(*e));
    /* debugging kit: gdbstub, events monitor, -S, the wrapper (debug.h) */
    if (debug_argv_finish(s, ro, sd, &v, err) < 0) {
        vm_argv_free(v);
        return -1;
    }
    *argv = v;
    return 0;
}

/* ------------------------------------------------------------ probe */

/* Seconds since the process started, from /proc; -1 unknown. */
static double proc_uptime(pid_t pid)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/stat", (long)pid);
    _cleanup_free_ char *stat = NULL, *up = NULL;
    if (fs_read_file(p, &stat, NULL, NULL) < 0 || fs_read_file("/proc/uptime", &up, NULL, NULL) < 0)
        return -1;
    char *s = strrchr(stat, ')');
    if (!s)
        return -1;
    /* fields after the comm: state is field 3, starttime field 22 */
    unsigned long long start = 0;
    int field = 2;
    for (char *tok = strtok(s + 1, " "); tok; tok = strtok(NULL, " ")) {
        if (++field == 22) {
            start = strtoull(tok, NULL, 10);
            break;
        }
    }
    double now = strtod(up, NULL);
    long hz = sysconf(_SC_CLK_TCK);
    double u = now - (double)start / (double)(hz > 0 ? hz : 100);
    return u < 0 ? 0 : u;
}

/* ------------------------------------------------------------ start */

/* The VM's lock (start, stop, gdb; img build for the images it uses): its
 * state dir is made first. Returns the descriptor holding it. */
static int lock_vm(const char *dir, qq_err *err)
{
    return layout_lock(dir, true, err);
}

static int check_name(const config *cfg, const char *name, qq_err *err)
{
    return config_check_vm(cfg, name, err);
}

/* Which VM of ours uses host port `port` (running ones), or NULL. */
static const char *port_owner(const config *cfg, int port, pid_t *pid)
{
    for (size_t i = 0; i < config_vm_count(cfg); i++) {
        const char *n = config_vm_name(cfg, i);
        _cleanup_free_ char *d = config_vm_dir(cfg, n);
        vm_state st;
        vm_probe(d, false, &st);
        int p = st.ssh_port ? st.ssh_port : config_vm_ssh_port(cfg, n);
        if (st.running && p == port) {
            *pid = st.pid;
            return n;
        }
    }
    return NULL;
}

/* Choose the ssh host port; 0 when the VM has none. An automatic one is
 * reserved for this process (net_reserve_port) and never one of avoid[]. */
static int choose_port(const config *cfg, const char *name, const int *avoid, size_t navoid, qq_err *err)
{
    int port = config_vm_ssh_port(cfg, name);
    if (port == SSH_PORT_NONE)
        return 0;
    if (port == SSH_PORT_AUTO)
        return net_reserve_port(avoid, navoid, err);
    if (!net_tcp_port_free(port)) {
        pid_t pid = 0;
        const char *owner = port_owner(cfg, port, &pid);
        if (owner)
            return qq_fail(err, QQ_EXIT_FAIL, "%s: ssh port %d is in use by VM '%s' (pid %ld)", name, port,
                           owner, (long)pid);
        return qq_fail(err, QQ_EXIT_FAIL, "%s: ssh port %d is already in use by another program", name, port);
    }
    return port;
}

/* Prepare the state dir for a QEMU about to run with the argv of VM name:
 * port chosen and recorded, stale runtime files gone, short socket dir made. */
static int prepare_run(const config *cfg, const char *name, const int *avoid, size_t navoid,
                       const vm_run_opts *ro, vm_spec *spec, char ***argv, qq_err *err)
{
    int port = choose_port(cfg, name, avoid, navoid, err);
    if (port < 0)
        return -1;
    if (config_vm(cfg, name, port, spec, err) < 0)
        return -1;
    layout_remove_runtime(spec->state_dir);
    _cleanup_free_ char *sd = layout_socket_dir(spec->state_dir, true, err);
    if (!sd)
        return -1;
    if (vm_argv_opts(spec, ro, argv, err) < 0)
        return -1;
    if (layout_write_port(spec->state_dir, port, err) < 0)
        return -1;
    json_t *a = json_array();
    for (char **p = *argv; *p; p++)
        json_array_append_new(a, json_string(*p));
    _cleanup_free_ char *text = json_dumps(a, JSON_INDENT(2));
    json_decref(a);
    return layout_write(spec->state_dir, LAYOUT_ARGV, text, err);
}

static char *stderr_tail(const char *dir, size_t lines)
{
    _cleanup_free_ char *p = layout_path(dir, LAYOUT_STDERR);
    sbuf b = SBUF_INIT;
    if (fs_tail(p, lines, &b, NULL) < 0 || b.len == 0) {
        sbuf_free(&b);
        return NULL;
    }
    return sbuf_steal(&b);
}

/* Did QEMU fail to bind host port `port` ("Could not set up host forwarding
 * rule 'tcp:127.0.0.1:PORT-:22'")? */
static bool hostfwd_failed(const char *tail, int port)
{
    char needle[32];
    snprintf(needle, sizeof needle, ":%d-", port);
    for (const char *l = tail; l && (l = strstr(l, "host forwarding rule")); l++) {
        const char *eol = strchr(l, '\n');
        const char *hit = strstr(l, needle);
        if (hit && (!eol || hit < eol))
            return true;
    }
    return false;
}

/* One attempt of vm_start; *port_taken: QEMU could not bind the automatic
 * port it was given (another program took it after it was chosen). */
/* ------------------------------------------------------------ start: image locks, own QEMU */

/* Take the lock of every image dir in dirs shared (img build takes it
 * exclusively while it checks that no VM uses the image and replaces it), so a
 * build never replaces an image under a starting QEMU. Waits for a running
 * build until deadline_ms, then refuses naming the image. fds[i] receives
 * the descriptors (close_fds them once QMP answered: QEMU has the images open
 * then, and a build sees the VM running). */
static int lock_images_shared(const char *name, char **names, char **dirs, int *fds, long long deadline_ms,
                              qq_err *err)
{
    for (size_t i = 0; dirs && dirs[i]; i++) {
        _cleanup_free_ char *lockp = layout_path(dirs[i], LAYOUT_LOCK);
        for (;;) {
            fds[i] = fs_lock_shared(lockp, false, err);
            if (fds[i] >= 0)
                break;
            if (errno != EWOULDBLOCK)
                return -1;
            if (proc_now_ms() >= deadline_ms)
                return qq_fail(err, QQ_EXIT_FAIL,
                               "%s uses image %s, which is being built (qqmgr img build %s): "
                               "start it again when the build is done", name, names[i], names[i]);
            poll(NULL, 0, 50);
        }
    }
    return 0;
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

/* The records prepare_run rewrites (port, argv), as they were before it: an
 * earlier start's QEMU that takes the VM meanwhile keeps its own. */
typedef struct prev_records {
    char *text[2];   /* NULL: the file did not exist */
} prev_records;

static const layout_file prev_files[2] = { LAYOUT_SSH_PORT, LAYOUT_ARGV };

static void prev_save(const char *dir, prev_records *p)
{
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *path = layout_path(dir, prev_files[i]);
        p->text[i] = NULL;
        if (fs_read_file(path, &p->text[i], NULL, NULL) < 0)
            p->text[i] = NULL;
    }
}

static void prev_restore(const char *dir, const prev_records *p)
{
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *path = layout_path(dir, prev_files[i]);
        if (p->text[i])
            fs_write_atomic(path, p->text[i], strlen(p->text[i]), 0600, NULL);
        else
            unlink(path);
    }
}

static void prev_free(prev_records *p)
{
    for (size_t i = 0; i < 2; i++)
        free(p->text[i]);
}

/* After a start failed: remove the runtime files only when they are ours —
 * not when another QEMU holds the pid file (one an earlier, killed start
 * launched, which took the VM meanwhile). Returns that QEMU's pid, or 0. */
static pid_t remove_own_runtime(const char *dir)
{
    pid_t other = layout_pid_holder(dir);
    if (other > 0)
        return other;
    layout_remove_runtime(dir);
    return 0;
}

static int start_locked(const config *cfg, const char *name, const char *dir, int timeout_s, const int *avoid,
                        size_t navoid, const vm_run_opts *ro, vm_start_result *r, bool *port_taken, qq_err *err);

static int start_once(const config *cfg, const char *name, int timeout_s, const int *avoid, size_t navoid,
                      const vm_run_opts *ro, vm_start_result *r, bool *port_taken, qq_err *err)
{
    memset(r, 0, sizeof *r);
    if (check_name(cfg, name, err) < 0)
        return -1;
    /* arguments are checked before anything is created or locked */
    vm_spec s0;
    if (config_vm(cfg, name, 0, &s0, err) < 0)
        return -1;
    char **a0 = NULL;
    int rc = vm_argv_opts(&s0, ro, &a0, err);
    vm_argv_free(a0);
    /* an image the arguments use must exist before QEMU runs */
    _cleanup_strv_ char **img_names = strv_dup(s0.images);
    _cleanup_strv_ char **img_dirs = NULL;
    size_t nimg = 0;
    for (char **im = s0.images; rc == 0 && *im; im++) {
        img_spec is;
        if (config_img(cfg, *im, &is, err) < 0) {
            rc = -1;
            break;
        }
        if (access(is.path, F_OK) != 0)
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s uses image %s, which is not built yet (%s): run `%s img build %s`",
                         name, *im, is.path, config_cli(cfg), *im);
        strv_push(&img_dirs, &nimg, xstrdup(is.dir));
        img_spec_free(&is);
    }
    _cleanup_free_ char *dir = strdup(s0.state_dir);
    vm_spec_free(&s0);
    if (rc < 0)
        return -1;
    long long start_deadline = proc_now_ms() + (long long)timeout_s * 1000;
    _cleanup_close_ int lock = lock_vm(dir, err);
    if (lock < 0)
        return -1;
    _cleanup_free_ int *img_locks = xcalloc(nimg + 1, sizeof *img_locks);
    for (size_t i = 0; i <= nimg; i++)
        img_locks[i] = -1;
    if (lock_images_shared(name, img_names, img_dirs, img_locks, start_deadline, err) < 0) {
        close_fds(img_locks, nimg);
        return -1;
    }
    rc = start_locked(cfg, name, dir, timeout_s, avoid, navoid, ro, r, port_taken, err);
    close_fds(img_locks, nimg);
    return rc;
}

/* start_once, with the VM's lock and its images' shared locks held. */
static int start_locked(const config *cfg, const char *name, const char *dir, int timeout_s, const int *avoid,
                        size_t navoid, const vm_run_opts *ro, vm_start_result *r, bool *port_taken, qq_err *err)
{
    vm_state st;
    vm_probe(dir, true, &st);
    if (st.running) {
        r->already_running = true;
        r->pid = st.pid;
        r->ssh_port = st.ssh_port;
        snprintf(r->state, sizeof r->state, "%s", st.state);
        return 0;
    }

    _cleanup_(prev_free) prev_records prev;
    prev_save(dir, &prev);
    vm_spec spec = { 0 };
    char **argv = NULL;
    if (prepare_run(cfg, name, avoid, navoid, ro, &spec, &argv, err) < 0) {
        vm_argv_free(argv);
        vm_spec_free(&spec);
        return -1;
    }
    r->ssh_port = spec.ssh_port_used > 0 ? spec.ssh_port_used : 0;
    bool auto_port = spec.ssh_port == SSH_PORT_AUTO;
    vm_spec_free(&spec);

    _cleanup_free_ char *outp = layout_path(dir, LAYOUT_STDOUT);
    _cleanup_free_ char *errp = layout_path(dir, LAYOUT_STDERR);
    _cleanup_free_ char *sock = layout_path(dir, LAYOUT_QMP);
    proc_opts po = { .cwd = config_dir(cfg), .stdout_path = outp, .stderr_path = errp,
                     .truncate = true, .new_session = true };
    long long t0 = proc_now_ms(), deadline = t0 + (long long)timeout_s * 1000;
    /* the logs of earlier runs are kept (a retry with another port is the
     * same run); the VM's files are private: what QEMU creates (sockets,
     * serial log) too */
    if (navoid == 0)
        layout_rotate_logs(dir);
    mode_t um = umask(077);
    pid_t pid = proc_spawn(argv, &po, err);
    umask(um);
    vm_argv_free(argv);
    if (pid < 0)
        return -1;
    _cleanup_close_ int pidfd = proc_pidfd(pid, err);
    if (pidfd < 0)
        return -1;
    /* wake on: QEMU exits (pidfd), the QMP socket appears (inotify) */
    _cleanup_close_ int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ino >= 0)
        inotify_add_watch(ino, dir, IN_CREATE | IN_MOVED_TO);
    for (;;) {
        int status;
        if (proc_reap(pid, &status) == 1) {
            r->stderr_tail = stderr_tail(dir, 20);
            pid_t other = remove_own_runtime(dir);
            if (other > 0)
                prev_restore(dir, &prev);
            if (other > 0)
                return qq_fail(err, QQ_EXIT_FAIL,
                               "%s: another QEMU (pid %ld) took the VM while this start ran (launched by an "
                               "earlier start that was killed?); it is left running: `%s stop %s` ends it",
                               name, (long)other, config_cli(cfg), name);
            *port_taken = auto_port && r->ssh_port > 0 && hostfwd_failed(r->stderr_tail, r->ssh_port);
            if (WIFSIGNALED(status))
                return qq_fail(err, QQ_EXIT_FAIL, "%s: QEMU was killed by signal %d before QMP answered",
                               name, WTERMSIG(status));
            return qq_fail(err, QQ_EXIT_FAIL, "%s: QEMU exited with status %d before QMP answered (%s)", name,
                           WEXITSTATUS(status), errp);
        }
        long long left = deadline - proc_now_ms();
        if (left <= 0) {
            pid_t qemu = layout_pid_holder(dir);   /* under a wrapper, QEMU is not our child */
            if (qemu > 0 && qemu != pid)
                kill(qemu, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            if (remove_own_runtime(dir) > 0)
                prev_restore(dir, &prev);
            r->stderr_tail = stderr_tail(dir, 20);
            return qq_fail(err, QQ_EXIT_FAIL, "%s: QMP did not answer within %d s; QEMU was killed", name,
                           timeout_s);
        }
        qq_err e = { 0 };
        if (fs_exists(sock)) {
            qmp *q = qmp_open(sock, (int)left, &e);
            if (q) {
                json_t *res = qmp_execute(q, "query-status", NULL, (int)(left > 0 ? left : 1), &e);
                qmp_close(q);
                /* success only when the QEMU that answers is ours: the pid-file
                 * lock holder is our child (not one a killed start launched),
                 * or under --wrap the wrapper's descendant */
                if (res && !proc_descends_from(layout_pid_holder(dir), pid)) {
                    json_decref(res);
                    res = NULL;
                }
                if (res) {
                    const char *s = json_string_value(json_object_get(res, "status"));
                    snprintf(r->state, sizeof r->state, "%s", s ? s : "unknown");
                    json_decref(res);
                    pid_t qemu = layout_pid_holder(dir);   /* under --wrap, pid is the wrapper's */
                    r->pid = qemu > 0 ? qemu : pid;
                    r->seconds = (double)(proc_now_ms() - t0) / 1000.0;
                    return 0;
                }
            }
        }
        struct pollfd p[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = ino, .events = POLLIN } };
        /* the cap covers a connect refused before QEMU's listen() */
        poll(p, ino >= 0 ? 2 : 1, left < 20 ? (int)left : 20);
        if (ino >= 0 && (p[1].revents & POLLIN)) {
            char buf[4096];
            while (read(ino, buf, sizeof buf) > 0) {
            }
        }
    }
}

/* An automatic port another program took between qqmgr's choice and QEMU's
 * bind is retried with a new one (as syzkaller does), a few times. */
#define START_PORT_TRIES 8

int vm_start(const config *cfg, const char *name, int timeout_s, vm_start_result *r, qq_err *err)
{
    return vm_start_opts(cfg, name, timeout_s, NULL, r, err);
}

int vm_start_opts(const config *cfg, const char *name, int timeout_s, const vm_run_opts *ro, vm_start_result *r,
                  qq_err *err)
{
    int failed[START_PORT_TRIES];
    size_t nfailed = 0;
    long long deadline = proc_now_ms() + (long long)timeout_s * 1000;
    for (;;) {
        bool port_taken = false;
        int rc = start_once(cfg, name, timeout_s, failed, nfailed, ro, r, &port_taken, err);
        if (r->ssh_port > 0)
            net_release_port(r->ssh_port);   /* QEMU holds it now, or it was given up */
        long long left = deadline - proc_now_ms();
        if (rc == 0 || !port_taken || nfailed + 1 >= START_PORT_TRIES || left < 1000)
            return rc;
        failed[nfailed++] = r->ssh_port;
        free(r->stderr_tail);
        timeout_s = (int)(left / 1000);
    }
}

/* ------------------------------------------------------------ stop */

/* Whether a SHUTDOWN event arrived (one look at what QEMU sent already). */
static bool saw_shutdown(qmp *q)
{
    if (qmp_wait_event(q, 0, NULL) != 1)
        return false;
    bool off = false;
    json_t *ev = qmp_take_events(q);
    size_t i;
    json_t *v;
    json_array_foreach(ev, i, v) {
        if (strcmp(json_string_value(json_object_get(v, "event")) ?: "", "SHUTDOWN") == 0)
            off = true;
    }
    json_decref(ev);
    return off;
}

static int clamp_ms(long long ms, int lo, int hi)
{
    return ms < lo ? lo : ms > hi ? hi : (int)ms;
}

/* Whether the guest's CPUs run, so it can act on a powerdown request: false
 * while paused, in prelaunch (-S), stopped by a debugger, or migrating in.
 * A suspended guest counts as running (the power button wakes it); so does
 * a QEMU that does not answer query-status. */
static bool cpus_run(qmp *q, int timeout_ms)
{
    json_t *r = qmp_execute(q, "query-status", NULL, timeout_ms, NULL);
    bool run = !r || json_is_true(json_object_get(r, "running")) ||
               strcmp(json_string_value(json_object_get(r, "status")) ?: "", "suspended") == 0;
    json_decref(r);
    return run;
}

/* End the QEMU behind pidfd: system_powerdown (repeated: a guest still
 * booting drops it) until deadline (monotonic ms), unless force or the CPUs
 * are stopped (paused, -S); then QMP quit, SIGTERM, SIGKILL. Every step is bounded by the clock, whatever QEMU
 * sends on QMP: the powerdown phase ends by deadline (one call of at most
 * STOP_QMP_MS when the deadline is already past), quit takes at most
 * STOP_QMP_MS plus STOP_QUIT_WAIT_MS, SIGTERM STOP_TERM_WAIT_MS, SIGKILL
 * STOP_KILL_WAIT_MS. Returns what ended it, or NULL. */
#define STOP_QMP_MS 2000
#define STOP_QUIT_WAIT_MS 5000
#define STOP_TERM_WAIT_MS 5000
#define STOP_KILL_WAIT_MS 10000
static const char *stop_qemu(const char *dir, int pidfd, long long deadline, bool force)
{
    _cleanup_free_ char *sock = layout_path(dir, LAYOUT_QMP);
    qq_err e = { 0 };
    if (!force) {
        long long left = deadline - proc_now_ms();
        qmp *q = qmp_open(sock, clamp_ms(left, 1000, STOP_QMP_MS), &e);
        bool guest_off = false;
        /* paused (start --paused, gdb): no guest to power off; asked within the deadline */
        if (q && !cpus_run(q, clamp_ms(deadline - proc_now_ms(), 1, STOP_QMP_MS))) {
            qmp_close(q);
            q = NULL;
        }
        for (int tries = 0; q; tries++) {
            left = deadline - proc_now_ms();
            if (tries > 0 && left <= 0)
                break;
            json_t *res = qmp_execute(q, "system_powerdown", NULL, clamp_ms(left, 1000, STOP_QMP_MS), &e);
            json_decref(res);
            if (!res && strstr(e.msg, "closed")) {
                /* QEMU closed QMP: it is going away (the guest powered off) */
                qmp_close(q);
                q = NULL;
                if (proc_wait_pidfd(pidfd, STOP_QUIT_WAIT_MS) == 1)
                    return "powerdown";
                break;
            }
            left = deadline - proc_now_ms();
            if (proc_wait_pidfd(pidfd, clamp_ms(left, 0, 1000)) == 1) {
                qmp_close(q);
                return "powerdown";
            }
            /* a guest that powered off under -no-shutdown leaves QEMU waiting */
            if (saw_shutdown(q)) {
                guest_off = true;
                break;
            }
        }
        if (q && guest_off) {
            json_decref(qmp_execute(q, "quit", NULL, STOP_QMP_MS, NULL));
            if (proc_wait_pidfd(pidfd, STOP_QUIT_WAIT_MS) == 1) {
                qmp_close(q);
                return "powerdown";
            }
        }
        qmp_close(q);
    }
    /* a fresh connection: the first may have been closed, or be flooded */
    long long qd = proc_now_ms() + STOP_QMP_MS;
    qmp *q = qmp_open(sock, STOP_QMP_MS, &e);
    if (q)
        json_decref(qmp_execute(q, "quit", NULL, clamp_ms(qd - proc_now_ms(), 1, STOP_QMP_MS), NULL));
    qmp_close(q);
    if (proc_wait_pidfd(pidfd, STOP_QUIT_WAIT_MS) == 1)
        return "quit";
    proc_signal(pidfd, SIGTERM);
    if (proc_wait_pidfd(pidfd, STOP_TERM_WAIT_MS) == 1)
        return "SIGTERM";
    proc_signal(pidfd, SIGKILL);
    if (proc_wait_pidfd(pidfd, STOP_KILL_WAIT_MS) == 1)
        return "SIGKILL";
    return NULL;
}

int vm_stop(const config *cfg, const char *name, int timeout_s, bool force, vm_stop_result *r, qq_err *err)
{
    memset(r, 0, sizeof *r);
    if (check_name(cfg, name, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    if (!fs_exists(dir))
        return 0;
    _cleanup_close_ int lock = lock_vm(dir, err);
    if (lock < 0)
        return -1;
    pid_t pid = layout_pid_holder(dir);
    if (pid <= 0) {
        layout_remove_runtime(dir);
        return 0;
    }
    _cleanup_close_ int pidfd = proc_pidfd(pid, NULL);
    if (pidfd < 0 || layout_pid_holder(dir) != pid) {   /* gone meanwhile */
        layout_remove_runtime(dir);
        return 0;
    }
    r->was_running = true;
    r->pid = pid;
    long long t0 = proc_now_ms();

    r->stopped_by = stop_qemu(dir, pidfd, t0 + (long long)timeout_s * 1000, force);
    r->seconds = (double)(proc_now_ms() - t0) / 1000.0;
    if (!r->stopped_by)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: QEMU (pid %ld) survived SIGKILL", name, (long)pid);
    layout_remove_runtime(dir);
    return 0;
}

/* ------------------------------------------------------------ status */

json_t *vm_status_json(const config *cfg, const char *name, qq_err *err)
{
    if (check_name(cfg, name, err) < 0)
        return NULL;
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    vm_state st;
    json_t *details = NULL;
    vm_probe_details(dir, true, &st, &details);
    int cport = config_vm_ssh_port(cfg, name);
    int port = st.running && st.ssh_port ? st.ssh_port : (cport > 0 ? cport : 0);
    _cleanup_free_ char *pidf = layout_path(dir, LAYOUT_PID), *serial = layout_path(dir, LAYOUT_SERIAL),
                        *qmps = layout_path(dir, LAYOUT_QMP), *mons = layout_path(dir, LAYOUT_MONITOR),
                        *out = layout_path(dir, LAYOUT_STDOUT), *errf = layout_path(dir, LAYOUT_STDERR),
                        *sshc = layout_path(dir, LAYOUT_SSH_CONF);
    json_t *ssh = json_object();
    json_object_set_new(ssh, "port", port > 0 ? json_integer(port) : json_null());
    json_object_set_new(ssh, "config", json_string(sshc));
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "pid", st.running ? json_integer(st.pid) : json_null());
    json_object_set_new(o, "pid_file", json_string(pidf));
    json_object_set_new(o, "running", json_boolean(st.running));
    json_object_set_new(o, "alive", json_boolean(st.running && st.qmp_connected));
    json_object_set_new(o, "qmp_connected", json_boolean(st.qmp_connected));
    json_object_set_new(o, "ssh", ssh);
    json_object_set_new(o, "serial_file", json_string(serial));
    json_object_set_new(o, "qmp_socket", json_string(qmps));
    json_object_set_new(o, "monitor_socket", json_string(mons));
    json_object_set_new(o, "qemu_stdout", json_string(out));
    json_object_set_new(o, "qemu_stderr", json_string(errf));
    json_object_set_new(o, "status_details", details ? details : json_null());
    json_object_set_new(o, "state", json_string(st.state));
    double up = st.running ? proc_uptime(st.pid) : -1;
    json_object_set_new(o, "uptime", up >= 0 ? json_integer((json_int_t)up) : json_null());
    json_object_set_new(o, "state_dir", json_string(dir));
    return o;
}

/* ------------------------------------------------------------ logs */

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

int vm_log_previous(const config *cfg, const char *name, enum vm_log which, size_t n, int previous, qq_err *err)
{
    if (check_name(cfg, name, err) < 0)
        return -1;
    static const layout_file files[] = { LAYOUT_SERIAL, LAYOUT_STDOUT, LAYOUT_STDERR };
    if (previous < 1 || previous > LAYOUT_LOG_KEEP)
        return qq_fail(err, QQ_EXIT_USAGE, "--previous %d: the logs of the last %d runs are kept (1-%d)", previous,
                       LAYOUT_LOG_KEEP, LAYOUT_LOG_KEEP);
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    _cleanup_free_ char *p = layout_previous(dir, files[which], previous);
    if (!fs_exists(p))
        return qq_fail(err, QQ_EXIT_FAIL, "%s: no log of the run %d before the current one (%s)", name, previous, p);
    _cleanup_sbuf_ sbuf b = SBUF_INIT;
    if (fs_tail(p, n, &b, err) < 0)
        return -1;
    write_all(1, b.buf ? b.buf : "", b.len);
    return 0;
}

int vm_log(const config *cfg, const char *name, enum vm_log which, size_t n, bool follow, qq_err *err)
{
    if (check_name(cfg, name, err) < 0)
        return -1;
    static const layout_file files[] = { LAYOUT_SERIAL, LAYOUT_STDOUT, LAYOUT_STDERR };
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    _cleanup_free_ char *p = layout_path(dir, files[which]);
    pid_t pid = layout_pid_holder(dir);
    if (!fs_exists(p)) {
        if (pid <= 0)
            return qq_fail(err, QQ_EXIT_FAIL, "%s: no %s yet (the VM has not been started)", name, p);
    }
    _cleanup_sbuf_ sbuf b = SBUF_INIT;
    if (fs_exists(p) && fs_tail(p, n, &b, err) < 0)
        return -1;
    write_all(1, b.buf ? b.buf : "", b.len);
    if (!follow || pid <= 0)
        return 0;

    _cleanup_close_ int pidfd = proc_pidfd(pid, NULL);
    if (pidfd < 0)
        return 0;
    _cleanup_close_ int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ino < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "inotify: %s", strerror(errno));
    /* watch the directory: the file may not exist yet, or be replaced */
    inotify_add_watch(ino, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO);
    _cleanup_close_ int fd = -1;
    struct stat st;
    off_t off = 0;
    if (stat(p, &st) == 0)
        off = st.st_size;
    bool ended = false;
    for (;;) {
        if (fd < 0)
            fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &st) == 0) {
            if (st.st_size < off)   /* truncated: QEMU restarted */
                off = 0;
            char buf[65536];
            ssize_t k;
            while ((k = pread(fd, buf, sizeof buf, off)) > 0) {
                write_all(1, buf, (size_t)k);
                off += k;
            }
        }
        if (ended)
            return 0;
        struct pollfd pf[2] = { { .fd = ino, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
        int r = poll(pf, 2, -1);
        if (r < 0 && errno != EINTR)
            return qq_fail(err, QQ_EXIT_FAIL, "poll: %s", strerror(errno));
        if (pf[0].revents & POLLIN) {
            char buf[4096];
            while (read(ino, buf, sizeof buf) > 0) {
            }
        }
        if (pf[1].revents & POLLIN)
            ended = true;   /* one last read, then stop */
    }
}

/* ------------------------------------------------------------ console */

static struct termios saved_tio;
static bool tio_saved;

static void restore_tty(void)
{
    if (tio_saved) {
        tcsetattr(0, TCSAFLUSH, &saved_tio);
        tio_saved = false;
    }
}

static void on_signal(int sig)
{
    restore_tty();
    signal(sig, SIG_DFL);
    raise(sig);
}

int vm_console(const config *cfg, const char *name, qq_err *err)
{
    if (check_name(cfg, name, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    pid_t pid = layout_pid_holder(dir);
    if (pid <= 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s is not running", name);
    _cleanup_free_ char *sock = layout_path(dir, LAYOUT_SERIAL_SOCKET);
    _cleanup_close_ int fd = net_unix_connect(sock, err);
    if (fd < 0)
        return -1;
    _cleanup_close_ int pidfd = proc_pidfd(pid, NULL);
    bool tty = isatty(0);
    if (tty) {
        if (tcgetattr(0, &saved_tio) == 0) {
            tio_saved = true;
            atexit(restore_tty);
            signal(SIGTERM, on_signal);
            signal(SIGHUP, on_signal);
            signal(SIGINT, on_signal);
            signal(SIGQUIT, on_signal);
            struct termios raw = saved_tio;
            cfmakeraw(&raw);
            tcsetattr(0, TCSAFLUSH, &raw);
        }
    }
    report_line("Connected to %s's serial console; Ctrl-] leaves.\r", name);
    const char *why = NULL;
    bool stdin_open = true;
    while (!why) {
        struct pollfd p[3] = { { .fd = fd, .events = POLLIN }, { .fd = stdin_open ? 0 : -1, .events = POLLIN },
                               { .fd = pidfd, .events = POLLIN } };
        int r = poll(p, 3, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            why = "poll failed";
            break;
        }
        char buf[4096];
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0) {
                why = "the console connection closed";
                break;
            }
            write_all(1, buf, (size_t)n);
        }
        if (p[1].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n <= 0) {
                stdin_open = false;
                why = "end of input";
                break;
            }
            char *esc = memchr(buf, 0x1d, (size_t)n);
            size_t len = esc ? (size_t)(esc - buf) : (size_t)n;
            if (len)
                send(fd, buf, len, MSG_NOSIGNAL);
            if (esc)
                why = "left";
        }
        if (pidfd >= 0 && (p[2].revents & POLLIN))
            why = "the VM stopped";
    }
    restore_tty();
    report_line("\r\nDisconnected from %s (%s).", name, why);
    return 0;
}

/* ------------------------------------------------------------ gdb */

int vm_gdb(const config *cfg, const char *name, bool attach, char **extra, int nextra, bool debug,
           qq_err *err)
{
    if (check_name(cfg, name, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    pid_t pid = layout_pid_holder(dir);
    size_t n = 0;
    char **gv = NULL;
    char pidbuf[32];
    if (attach) {
        if (pid <= 0)
            return qq_fail(err, QQ_EXIT_FAIL, "%s is not running: nothing to attach to (drop --attach)", name);
        gv = calloc((size_t)nextra + 8, sizeof *gv);
        if (!gv)
            abort();
        snprintf(pidbuf, sizeof pidbuf, "%ld", (long)pid);
        gv[n++] = "gdb";
        gv[n++] = "-ex";
        gv[n++] = "handle SIGUSR1 nostop noprint pass";
        for (int i = 0; i < nextra; i++)
            gv[n++] = extra[i];
        gv[n++] = "-p";
        gv[n++] = pidbuf;
    } else {
        if (pid > 0)
            return qq_fail(err, QQ_EXIT_FAIL, "%s is already running (pid %ld): use `gdb %s --attach`, or stop it",
                           name, (long)pid, name);
        _cleanup_close_ int lock = lock_vm(dir, err);
        if (lock < 0)
            return -1;
        vm_spec spec = { 0 };
        char **argv = NULL;
        if (prepare_run(cfg, name, NULL, 0, NULL, &spec, &argv, err) < 0) {
            vm_argv_free(argv);
            vm_spec_free(&spec);
            return -1;
        }
        vm_spec_free(&spec);
        size_t na = 0;
        while (argv[na])
            na++;
        gv = calloc((size_t)nextra + na + 8, sizeof *gv);
        if (!gv)
            abort();
        gv[n++] = "gdb";
        gv[n++] = "-ex";
        gv[n++] = "handle SIGUSR1 nostop noprint pass";
        for (int i = 0; i < nextra; i++)
            gv[n++] = extra[i];
        gv[n++] = "--args";
        for (size_t i = 0; i < na; i++)
            gv[n++] = argv[i];
        if (config_dir(cfg) && chdir(config_dir(cfg)) < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "chdir %s: %s", config_dir(cfg), strerror(errno));
    }
    gv[n] = NULL;
    int rc = proc_exec(gv, debug, err);
    free(gv);
    return rc;
}

/* ------------------------------------------------------------ QMP / HMP */

/* qmp and monitor: one deadline for the whole exchange (QMP_CALL_MS), of
 * which the connection and greeting take at most QMP_OPEN_MS. */
#define QMP_OPEN_MS 5000
#define QMP_CALL_MS 30000
static qmp *open_vm_qmp(const config *cfg, const char *name, long long *deadline, qq_err *err)
{
    if (check_name(cfg, name, err) < 0)
        return NULL;
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    if (layout_pid_holder(dir) <= 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s is not running", name);
        return NULL;
    }
    _cleanup_free_ char *sock = layout_path(dir, LAYOUT_QMP);
    *deadline = proc_now_ms() + QMP_CALL_MS;
    return qmp_open(sock, QMP_OPEN_MS, err);
}

static int ms_left(long long deadline)
{
    long long left = deadline - proc_now_ms();
    return left > 0 ? (int)left : 1;
}

json_t *vm_qmp(const config *cfg, const char *name, const char *command, json_t *args, qq_err *err)
{
    long long deadline;
    qmp *q = open_vm_qmp(cfg, name, &deadline, err);
    if (!q)
        return NULL;
    json_t *r = qmp_execute_reply(q, command, args, ms_left(deadline), err);
    qmp_close(q);
    if (r)
        json_object_del(r, "id");
    return r;
}

char *vm_hmp(const config *cfg, const char *name, const char *command_line, qq_err *err)
{
    long long deadline;
    qmp *q = open_vm_qmp(cfg, name, &deadline, err);
    if (!q)
        return NULL;
    char *s = qmp_hmp(q, command_line, ms_left(deadline), err);
    qmp_close(q);
    return s;
}
