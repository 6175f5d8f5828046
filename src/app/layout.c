/* layout — see layout.h. */
#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "../infra/qmp.h"
#include "../infra/rundir.h"

#define SUN_PATH_MAX 107
/* ssh appends ".XXXXXXXXXXXXXXXX" to a ControlPath while it binds */
#define SSH_BIND_SUFFIX 17

static const char *const names[LAYOUT_FILE_COUNT] = {
    [LAYOUT_PID] = "pid",
    [LAYOUT_QMP] = "qmp.socket",
    [LAYOUT_MONITOR] = "monitor.socket",
    [LAYOUT_SERIAL_SOCKET] = "serial.socket",
    [LAYOUT_SERIAL] = "serial",
    [LAYOUT_STDOUT] = "qemu-stdout.log",
    [LAYOUT_STDERR] = "qemu-stderr.log",
    [LAYOUT_SSH_CONF] = "ssh.conf",
    [LAYOUT_SSH_CTL] = "ssh.ctl",
    [LAYOUT_KNOWN_HOSTS] = "known_hosts",
    [LAYOUT_LOCK] = "lock",
    [LAYOUT_SSH_PORT] = "ssh_port",
    [LAYOUT_ARGV] = "argv.json",
    [LAYOUT_RUNTIME_DIR] = "runtime_dir",
    [LAYOUT_GDB_SOCKET] = "gdb.socket",
    [LAYOUT_EVENTS_SOCKET] = "events.socket",
    [LAYOUT_FORWARDS] = "forwards.json",
    [LAYOUT_SNAPSHOTS] = "snapshots",
    [LAYOUT_THROWAWAY] = "throwaway",
    [LAYOUT_IMG_RAW] = "disk.raw",
    [LAYOUT_IMG_QCOW2] = "disk.qcow2",
    [LAYOUT_IMG_CIDATA] = "cidata",
    [LAYOUT_IMG_ISO] = "cidata.iso",
    [LAYOUT_IMG_BUILD_LOG] = "build.log",
    [LAYOUT_IMG_BUILD_QMP] = "build-qmp.sock",
};

/* the QEMU sockets QEMU binds (the longest decides whether they fit) */
static const layout_file qemu_sockets[] = { LAYOUT_QMP, LAYOUT_MONITOR, LAYOUT_SERIAL_SOCKET, LAYOUT_GDB_SOCKET,
                                            LAYOUT_EVENTS_SOCKET };

const char *layout_name(layout_file f) { return names[f]; }

char *layout_path(const char *dir, layout_file f) { return xasprintf("%s/%s", dir, names[f]); }

char *layout_beside(const char *path, const char *suffix) { return xasprintf("%s%s", path, suffix); }

#define BASE_PREFIX "base-"

char *layout_base_copy_name(const char *hash_hex) { return xasprintf(BASE_PREFIX "%.16s.img", hash_hex); }

bool layout_is_base_copy(const char *entry) { return strncmp(entry, BASE_PREFIX, strlen(BASE_PREFIX)) == 0; }

char *layout_vm_dir(const char *state_dir, const char *vm) { return xasprintf("%s/vm.%s", state_dir, vm); }

char *layout_img_dir(const char *state_dir, const char *img) { return xasprintf("%s/img.%s", state_dir, img); }

const char *layout_vm_of_entry(const char *entry)
{
    return strncmp(entry, "vm.", 3) == 0 && entry[3] ? entry + 3 : NULL;
}

/* chmod 0700 when it is our directory and wider */
static void tighten(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 07777) != 0700)
        chmod(dir, 0700);
}

int layout_make_dir(const char *dir, qq_err *err)
{
    if (fs_mkdir_p(dir, 0700, err) < 0)
        return -1;
    tighten(dir);
    _cleanup_free_ char *parent = xstrdup(dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        tighten(parent);
    }
    return 0;
}

int layout_lock(const char *dir, bool wait, qq_err *err)
{
    _cleanup_free_ char *p = layout_path(dir, LAYOUT_LOCK);
    for (;;) {
        if (layout_make_dir(dir, err) < 0)
            return -1;
        int fd = fs_lock(p, wait, err);
        if (fd < 0)
            return -1;
        /* rm / prune removed the dir (lock file last) while we waited: the
         * lock we hold is of a removed file; make the dir again, lock anew */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(p, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            return fd;
        close(fd);
    }
}

/* ------------------------------------------------------------ runtime paths */

/* Does <dir>/<name> + extra bytes fit in sun_path? */
static bool fits(const char *dir, const char *name, size_t extra)
{
    return strlen(dir) + 1 + strlen(name) + extra <= SUN_PATH_MAX;
}

/* The one short name of a dir in the runtime dir: 64-bit FNV-1a of its path. */
static char *short_name(const char *rundir, const char *dir, const char *suffix)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)dir; *p; p++)
        h = (h ^ *p) * 0x100000001b3u;
    return xasprintf("%s/%016" PRIx64 "%s", rundir, h, suffix);
}

char *layout_runtime_dir(const char *dir, bool create, qq_err *err)
{
    _cleanup_free_ char *pref = rundir_preferred();
    _cleanup_free_ char *rec = layout_path(dir, LAYOUT_RUNTIME_DIR);
    return rundir_get(pref, rec, create, err);
}

static bool qemu_sockets_fit(const char *vm_dir)
{
    for (size_t i = 0; i < sizeof qemu_sockets / sizeof *qemu_sockets; i++)
        if (!fits(vm_dir, names[qemu_sockets[i]], 0))
            return false;
    return true;
}

char *layout_socket_dir(const char *vm_dir, bool create, qq_err *err)
{
    if (qemu_sockets_fit(vm_dir))
        return xstrdup(vm_dir);
    _cleanup_free_ char *rd = layout_runtime_dir(vm_dir, create, err);
    if (!rd)
        return NULL;
    char *sd = short_name(rd, vm_dir, "");
    if (!create)
        return sd;
    char cur[PATH_MAX];
    ssize_t n = readlink(sd, cur, sizeof cur - 1);
    if (n >= 0) {
        cur[n] = '\0';
        if (strcmp(cur, vm_dir) == 0)
            return sd;
    }
    _cleanup_free_ char *tmp = xasprintf("%s.%ld", sd, (long)getpid());
    unlink(tmp);
    if (symlink(vm_dir, tmp) < 0 || rename(tmp, sd) < 0) {
        int e = errno;
        unlink(tmp);
        qq_fail(err, QQ_EXIT_FAIL, "symlink %s: %s", sd, strerror(e));
        free(sd);
        return NULL;
    }
    return sd;
}

char *layout_control_path(const char *vm_dir, bool create, qq_err *err)
{
    if (fits(vm_dir, names[LAYOUT_SSH_CTL], SSH_BIND_SUFFIX))
        return layout_path(vm_dir, LAYOUT_SSH_CTL);
    _cleanup_free_ char *rd = layout_runtime_dir(vm_dir, create, err);
    return rd ? short_name(rd, vm_dir, ".ssh") : NULL;
}

char *layout_net_dir(const char *state_dir, const char *net, bool create, qq_err *err)
{
    _cleanup_free_ char *rd = layout_runtime_dir(state_dir, create, err);
    _cleanup_free_ char *key = xasprintf("%s/net.%s", state_dir, net);
    return rd ? short_name(rd, key, ".net") : NULL;
}

char *layout_net_lock(const char *state_dir, qq_err *err)
{
    _cleanup_free_ char *rd = layout_runtime_dir(state_dir, true, err);
    return rd ? short_name(rd, state_dir, ".netlock") : NULL;
}

char *layout_build_qmp(const char *img_dir, qq_err *err)
{
    if (layout_make_dir(img_dir, err) < 0)
        return NULL;
    if (fits(img_dir, names[LAYOUT_IMG_BUILD_QMP], 0))
        return layout_path(img_dir, LAYOUT_IMG_BUILD_QMP);
    _cleanup_free_ char *rd = layout_runtime_dir(img_dir, true, err);
    return rd ? short_name(rd, img_dir, ".qmp") : NULL;
}

char *layout_previous(const char *dir, layout_file f, int n)
{
    return xasprintf("%s/%s.%d", dir, names[f], n);
}

void layout_rotate_logs(const char *vm_dir)
{
    static const layout_file logs[] = { LAYOUT_SERIAL, LAYOUT_STDOUT, LAYOUT_STDERR };
    for (size_t i = 0; i < sizeof logs / sizeof *logs; i++) {
        _cleanup_free_ char *cur = layout_path(vm_dir, logs[i]);
        if (!fs_exists(cur))
            continue;
        for (int n = LAYOUT_LOG_KEEP - 1; n >= 1; n--) {
            _cleanup_free_ char *from = layout_previous(vm_dir, logs[i], n);
            _cleanup_free_ char *to = layout_previous(vm_dir, logs[i], n + 1);
            rename(from, to);   /* a missing one is a gap, no more */
        }
        _cleanup_free_ char *first = layout_previous(vm_dir, logs[i], 1);
        if (rename(cur, first) == 0)
            chmod(first, 0600);   /* one an older qqmgr left wider */
    }
}

bool layout_forget_host_keys(const char *vm_dir)
{
    _cleanup_free_ char *p = layout_path(vm_dir, LAYOUT_KNOWN_HOSTS);
    return unlink(p) == 0;
}

void layout_remove_runtime(const char *vm_dir)
{
    static const layout_file files[] = { LAYOUT_PID, LAYOUT_QMP, LAYOUT_MONITOR, LAYOUT_SERIAL_SOCKET,
                                         LAYOUT_GDB_SOCKET, LAYOUT_EVENTS_SOCKET, LAYOUT_FORWARDS };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        _cleanup_free_ char *p = layout_path(vm_dir, files[i]);
        unlink(p);
    }
    if (qemu_sockets_fit(vm_dir))
        return;
    /* the symlink, only in a runtime dir that passes the check */
    _cleanup_free_ char *sd = layout_socket_dir(vm_dir, false, NULL);
    if (!sd)
        return;
    _cleanup_free_ char *rd = xstrdup(sd);
    *strrchr(rd, '/') = '\0';
    if (rundir_check(rd, NULL) == 0)
        unlink(sd);
}

/* ------------------------------------------------------------ what the files say */

pid_t layout_pid_holder(const char *vm_dir)
{
    _cleanup_free_ char *p = layout_path(vm_dir, LAYOUT_PID);
    _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
        return 0;
    return fl.l_pid > 0 ? fl.l_pid : 0;
}

int layout_read_port(const char *vm_dir)
{
    _cleanup_free_ char *p = layout_path(vm_dir, LAYOUT_SSH_PORT);
    _cleanup_free_ char *s = NULL;
    if (fs_read_file(p, &s, NULL, NULL) < 0)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    return (end != s && v > 0 && v <= 65535) ? (int)v : 0;
}

int layout_write(const char *dir, layout_file f, const char *text, qq_err *err)
{
    _cleanup_free_ char *p = layout_path(dir, f);
    return fs_write_atomic(p, text, strlen(text), 0600, err);
}

int layout_write_port(const char *vm_dir, int port, qq_err *err)
{
    if (port <= 0) {
        _cleanup_free_ char *p = layout_path(vm_dir, LAYOUT_SSH_PORT);
        unlink(p);
        return 0;
    }
    char buf[16];
    snprintf(buf, sizeof buf, "%d\n", port);
    return layout_write(vm_dir, LAYOUT_SSH_PORT, buf, err);
}

json_t *layout_vm_files_json(const char *vm_dir)
{
    static const struct {
        const char *key;
        layout_file f;
    } f[] = {
        { "pid", LAYOUT_PID },         { "qmp_socket", LAYOUT_QMP },      { "monitor_socket", LAYOUT_MONITOR },
        { "serial", LAYOUT_SERIAL },   { "qemu_stdout", LAYOUT_STDOUT },  { "qemu_stderr", LAYOUT_STDERR },
        { "ssh_config", LAYOUT_SSH_CONF },
    };
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        _cleanup_free_ char *p = layout_path(vm_dir, f[i].f);
        json_object_set_new(o, f[i].key, json_string(p));
    }
    return o;
}

void vm_probe_details(const char *vm_dir, bool query_qmp, vm_state *out, json_t **details)
{
    memset(out, 0, sizeof *out);
    if (details)
        *details = NULL;
    out->pid = layout_pid_holder(vm_dir);
    out->running = out->pid > 0;
    out->ssh_port = layout_read_port(vm_dir);
    snprintf(out->state, sizeof out->state, "%s", out->running ? "running" : "stopped");
    if (!query_qmp)
        return;
    _cleanup_free_ char *sock = layout_path(vm_dir, LAYOUT_QMP);
    if (!out->running && !fs_exists(sock))
        return;
    qq_err e = { 0 };
    qmp *q = qmp_open(sock, 1500, &e);
    json_t *r = q ? qmp_execute(q, "query-status", NULL, 1500, &e) : NULL;
    qmp_close(q);
    if (r) {
        out->qmp_connected = true;
        const char *st = json_string_value(json_object_get(r, "status"));
        snprintf(out->state, sizeof out->state, "%s", out->running ? (st ? st : "unknown") : "broken");
        if (details)
            *details = r;
        else
            json_decref(r);
    } else if (out->running) {
        snprintf(out->state, sizeof out->state, "broken");
    }
}

int vm_probe(const char *vm_dir, bool query_qmp, vm_state *out)
{
    vm_probe_details(vm_dir, query_qmp, out, NULL);
    return 0;
}
