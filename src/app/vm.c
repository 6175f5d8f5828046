/* vm — see vm.h. */
#include "vm.h"

#include <ctype.h>
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

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/report.h"
#include "../base/sbuf.h"
#include "../infra/fs.h"
#include "../infra/net.h"
#include "../infra/proc.h"
#include "../infra/qmp.h"
#include "../infra/sig.h"
#include "../base/xalloc.h"
#include "copies.h"
#include "launch.h"
#include "layout.h"
#include "leftover.h"
#include "recorded.h"
#include "running.h"
#include "vnet.h"

/* ------------------------------------------------------------ probe */

double vm_uptime(pid_t pid)
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


/* ------------------------------------------------------------ locks */

/* The VM's lock (start, stop, gdb; img build for the images it uses): its
 * state dir is made first. Returns the descriptor holding it. */
static int lock_vm(const char *dir, qq_err *err)
{
    return layout_lock(dir, LOCKFILE_FOREVER, err);
}

/* stop's wait for the VM's lock: by the stop's one deadline (--timeout
 * timeout_s), the message as start's (launch.c). */
static int lock_vm_until(const char *name, const char *dir, long long deadline, int timeout_s, qq_err *err)
{
    return layout_lock_vm(name, dir, "stop", deadline, timeout_s, "--timeout", err);
}

static int check_name(const config *cfg, const char *name, qq_err *err)
{
    return config_check_vm(cfg, name, err);
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
 * while paused, in prelaunch (-S), stopped by a debugger, or migrating in,
 * and when the guest never ran (its serial console is empty and the first
 * CPU is still at the x86 reset vector, as under a KVM that does not work).
 * A suspended guest counts as running (the power button wakes it); so does
 * a QEMU that does not answer query-status. */
static bool cpus_run(qmp *q, const char *dir, int timeout_ms)
{
    long long end = clock_ms() + timeout_ms;
    json_t *r = qmp_execute(q, "query-status", NULL, timeout_ms, NULL);
    bool run = !r || json_is_true(json_object_get(r, "running")) ||
               strcmp(json_string_value(json_object_get(r, "status")) ?: "", "suspended") == 0;
    json_decref(r);
    _cleanup_free_ char *serial = layout_path(dir, LAYOUT_SERIAL);
    struct stat st;
    if (run && stat(serial, &st) == 0 && st.st_size == 0) {
        _cleanup_free_ char *regs = qmp_hmp(q, "info registers", clamp_ms(end - clock_ms(), 1, timeout_ms), NULL);
        if (qmp_regs_at_reset(regs))
            run = false;
    }
    return run;
}

/* End the QEMU behind pidfd: system_powerdown (repeated: a guest still
 * booting drops it) until deadline (monotonic ms), unless force or the CPUs
 * are stopped (paused, -S) or never ran (cpus_run); then QMP quit, SIGTERM, SIGKILL. Every step is bounded by the clock, whatever QEMU
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
        long long left = deadline - clock_ms();
        qmp *q = qmp_open(sock, clamp_ms(left, 1000, STOP_QMP_MS), &e);
        bool guest_off = false;
        /* paused (start --paused, gdb): no guest to power off; asked within the deadline */
        if (q && !cpus_run(q, dir, clamp_ms(deadline - clock_ms(), 1, STOP_QMP_MS))) {
            qmp_close(q);
            q = NULL;
        }
        for (int tries = 0; q; tries++) {
            left = deadline - clock_ms();
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
            left = deadline - clock_ms();
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
    long long qd = clock_ms() + STOP_QMP_MS;
    qmp *q = qmp_open(sock, STOP_QMP_MS, &e);
    if (q)
        json_decref(qmp_execute(q, "quit", NULL, clamp_ms(qd - clock_ms(), 1, STOP_QMP_MS), NULL));
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

/* What a VM that ended leaves: its runtime files, the [net] switches no
 * running VM joins any more. */
static void stopped(const config *cfg, const char *dir)
{
    layout_remove_runtime(dir);
    vnet_down(config_state_dir(cfg), dir);
    layout_release_runtime_dir(config_state_dir(cfg));   /* the switches' fallback runtime dir */
}

int vm_stop(const config *cfg, const char *name, int timeout_s, bool force, vm_stop_result *r, qq_err *err)
{
    memset(r, 0, sizeof *r);
    if (recorded_check_vm(cfg, name, err) < 0)   /* a departed VM is stopped by name too */
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    bool copy = config_copy_parse(name, NULL, NULL, NULL) == 1;
    if (!copy)
        copies_sweep(cfg, name);   /* the dead copies of the VM go (copies.h) */
    if (!fs_exists(dir))
        return 0;
    /* one deadline for the whole stop: the wait for the lock counts in it */
    long long t0 = clock_ms(), deadline = t0 + (long long)timeout_s * 1000;
    _cleanup_close_ int lock = lock_vm_until(name, dir, deadline, timeout_s, err);
    if (lock < 0)
        return -1;
    leftover_sweep_copies(dir);
    pid_t pid = layout_pid_holder(dir);
    _cleanup_close_ int pidfd = pid > 0 ? proc_pidfd(pid, NULL) : -1;
    if (pid <= 0 || pidfd < 0 || layout_pid_holder(dir) != pid) {   /* not running, or gone meanwhile */
        stopped(cfg, dir);
        if (copy)
            copies_remove(cfg, dir);   /* a copy lives as long as its QEMU */
        return 0;
    }
    r->was_running = true;
    r->pid = pid;
    r->stopped_by = stop_qemu(dir, pidfd, deadline, force);
    r->seconds = (double)(clock_ms() - t0) / 1000.0;
    if (!r->stopped_by)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: QEMU (pid %ld) survived SIGKILL", name, (long)pid);
    stopped(cfg, dir);
    leftover_repair(dir, NULL, NULL);   /* QEMU is gone: a dead save's partial file and record go */
    if (copy)
        copies_remove(cfg, dir);
    return 0;
}

/* ------------------------------------------------------------ status */

char *vm_restored(const char *dir)
{
    if (layout_pid_holder(dir) <= 0)
        return NULL;
    _cleanup_free_ char *p = layout_path(dir, LAYOUT_RESTORED);
    char *s = NULL;
    if (fs_read_file(p, &s, NULL, NULL) < 0)
        return NULL;
    s[strcspn(s, "\n")] = '\0';
    return s;
}

json_t *vm_copy_json(const config *cfg, const char *copy)
{
    _cleanup_free_ char *dir = config_vm_dir(cfg, copy);
    vm_state st;
    vm_probe(dir, false, &st);
    _cleanup_free_ char *snap = vm_restored(dir);
    double up = st.running ? vm_uptime(st.pid) : -1;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(copy));
    json_object_set_new(o, "state", json_string(st.running ? "running" : "starting"));
    json_object_set_new(o, "pid", st.running ? json_integer(st.pid) : json_null());
    json_object_set_new(o, "ssh_port", st.running && st.ssh_port > 0 ? json_integer(st.ssh_port) : json_null());
    json_object_set_new(o, "uptime", up >= 0 ? json_integer((json_int_t)up) : json_null());
    json_object_set_new(o, "snapshot", snap ? json_string(snap) : json_null());
    json_object_set_new(o, "state_dir", json_string(dir));
    return o;
}

json_t *vm_status_json(const config *cfg, const char *name, qq_err *err)
{
    if (recorded_check_vm(cfg, name, err) < 0)
        return NULL;
    bool copy = config_copy_parse(name, NULL, NULL, NULL) == 1;
    /* the VM's copies: the dead ones go, the others are listed */
    size_t ncopies = 0;
    _cleanup_strv_ char **copies = copy ? NULL : copies_of(cfg, name, &ncopies);
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    vm_state st;
    json_t *details = NULL;
    leftover_repair(dir, NULL, NULL);
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
    double up = st.running ? vm_uptime(st.pid) : -1;
    json_object_set_new(o, "uptime", up >= 0 ? json_integer((json_int_t)up) : json_null());
    json_object_set_new(o, "state_dir", json_string(dir));
    /* what the VM runs with, against today's config (recorded.h) */
    _cleanup_free_ char *base = config_base_vm(name);   /* a copy VM#N is its VM's */
    bool configured = config_has_vm(cfg, base);
    char *what = NULL;
    bool changed = st.running && configured && recorded_config_changed(cfg, name, &what);
    json_object_set_new(o, "configured", json_boolean(configured));
    json_object_set_new(o, "config_changed", json_boolean(changed));
    json_object_set_new(o, "config_change", what ? json_string(what) : json_null());
    free(what);
    _cleanup_free_ char *snap = vm_restored(dir);
    json_object_set_new(o, "snapshot", snap ? json_string(snap) : json_null());
    if (!copy) {
        json_t *arr = json_array();
        for (size_t i = 0; i < ncopies; i++)
            json_array_append_new(arr, vm_copy_json(cfg, copies[i]));
        json_object_set_new(o, "copies", arr);
    }
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

int vm_log_previous(const config *cfg, const char *name, enum vm_log which, size_t n, int previous, int out,
                    qq_err *err)
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
    write_all(out, b.buf ? b.buf : "", b.len);
    return 0;
}

int vm_log(const config *cfg, const char *name, enum vm_log which, size_t n, bool follow, int out, qq_err *err)
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
    write_all(out, b.buf ? b.buf : "", b.len);
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
                write_all(out, buf, (size_t)k);
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
static int tty_fd;

static void restore_tty(void)
{
    if (tio_saved) {
        tcsetattr(tty_fd, TCSAFLUSH, &saved_tio);
        tio_saved = false;
    }
}

static void on_signal(int sig)
{
    restore_tty();
    signal(sig, SIG_DFL);
    raise(sig);
}

int vm_console(const config *cfg, const char *name, int in, int out, qq_err *err)
{
    if (check_name(cfg, name, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    pid_t pid = layout_pid_holder(dir);
    if (pid <= 0)
        return running_not(cfg, name, NULL, err);
    _cleanup_free_ char *sock = layout_path(dir, LAYOUT_SERIAL_SOCKET);
    _cleanup_close_ int fd = net_unix_connect(sock, err);
    if (fd < 0)
        return -1;
    _cleanup_close_ int pidfd = proc_pidfd(pid, NULL);
    bool tty = isatty(in);
    if (tty) {
        if (tcgetattr(in, &saved_tio) == 0) {
            tio_saved = true;
            atexit(restore_tty);
            signal(SIGTERM, on_signal);
            signal(SIGHUP, on_signal);
            signal(SIGINT, on_signal);
            signal(SIGQUIT, on_signal);
            struct termios raw = saved_tio;
            cfmakeraw(&raw);
            tty_fd = in;
            tcsetattr(in, TCSAFLUSH, &raw);
        }
    }
    report_line("Connected to %s's serial console; Ctrl-] leaves.\r", name);
    const char *why = NULL;
    bool stdin_open = true;
    while (!why) {
        struct pollfd p[3] = { { .fd = fd, .events = POLLIN }, { .fd = stdin_open ? in : -1, .events = POLLIN },
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
            write_all(out, buf, (size_t)n);
        }
        if (p[1].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(in, buf, sizeof buf);
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
            return running_not(cfg, name, NULL, err);
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
        if (config_copy_parse(name, NULL, NULL, NULL) == 1)
            return qq_fail(err, QQ_EXIT_USAGE, "gdb %s: a throwaway copy runs already or not at all: use "
                           "`gdb %s --attach`", name, name);
        if (pid > 0)
            return qq_fail(err, QQ_EXIT_FAIL, "%s is already running (pid %ld): use `gdb %s --attach`, or stop it",
                           name, (long)pid, name);
        _cleanup_close_ int lock = lock_vm(dir, err);
        if (lock < 0)
            return -1;
        char **argv = NULL;
        if (launch_prepare(cfg, name, NULL, &argv, err) < 0)
            return -1;
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
        running_not(cfg, name, NULL, err);
        return NULL;
    }
    _cleanup_free_ char *sock = layout_path(dir, LAYOUT_QMP);
    *deadline = clock_ms() + QMP_CALL_MS;
    return qmp_open(sock, QMP_OPEN_MS, err);
}

static int ms_left(long long deadline)
{
    long long left = deadline - clock_ms();
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

bool vm_console_panic(const char *text, char *why, size_t len)
{
    static const char kp[] = "Kernel panic - not syncing:";
    bool found = false;
    for (const char *l = text; *l;) {
        size_t n = strcspn(l, "\n");
        const char *p = memmem(l, n, kp, sizeof kp - 1);
        if (p) {   /* the last one wins: "---[ end Kernel panic - not syncing: WHY ]---" */
            const char *b = p + sizeof kp - 1, *e = l + n;
            while (b < e && isspace((unsigned char)*b))
                b++;
            while (e > b && (isspace((unsigned char)e[-1]) || e[-1] == '-' || e[-1] == ']'))
                e--;
            snprintf(why, len, "%.*s", (int)(e - b), b);
            for (char *c = why; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    *c = '?';
            if (!why[0])
                snprintf(why, len, "(no reason given)");
            found = true;
        }
        l += n + (l[n] == '\n');
    }
    return found;
}
