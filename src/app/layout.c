/* layout — see layout.h. */
#include "layout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "../infra/lockfile.h"
#include "../infra/fs.h"
#include "../infra/qmp.h"
#include "../infra/rundir.h"
#include "../infra/sig.h"

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
    [LAYOUT_GDB_LOCK] = "gdb.lock",
    [LAYOUT_QGA_SOCKET] = "qga.socket",
    [LAYOUT_EVENTS_SOCKET] = "events.socket",
    [LAYOUT_FORWARDS] = "forwards.json",
    [LAYOUT_SNAPSHOTS] = "snapshots",
    [LAYOUT_THROWAWAY] = "throwaway",
    [LAYOUT_INFLIGHT] = "inflight.json",
    [LAYOUT_RESTORED] = "restored",
    [LAYOUT_IMG_RAW] = "disk.raw",
    [LAYOUT_IMG_QCOW2] = "disk.qcow2",
    [LAYOUT_IMG_CIDATA] = "cidata",
    [LAYOUT_IMG_ISO] = "cidata.iso",
    [LAYOUT_IMG_BUILD_LOG] = "build.log",
    [LAYOUT_IMG_BUILD_QMP] = "build-qmp.sock",
    [LAYOUT_OWNER] = "owner.json",
    [LAYOUT_KEYS] = "keys",
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

char *layout_copy_dir(const char *vm_dir, unsigned n) { return xasprintf("%s/copy.%u", vm_dir, n); }

unsigned layout_copy_of_entry(const char *entry)
{
    if (strncmp(entry, "copy.", 5) != 0 || entry[5] < '1' || entry[5] > '9')
        return 0;
    char *end;
    unsigned long n = strtoul(entry + 5, &end, 10);
    return *end || n > 1000000 ? 0 : (unsigned)n;
}

bool layout_is_new_copy(const char *entry)
{
    return strncmp(entry, "copy.new.", 9) == 0 && strlen(entry) == strlen(LAYOUT_COPY_NEW);
}

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

/* ------------------------------------------------------------ whose dir */

#define CONFIG_PREFIX "config."

/* the config this process works for (layout_set_config) */
static struct {
    char *state_dir;
    char *config;
    bool legacy;     /* state_dir is an older qqmgr's DIR/.qqmgr/NAME still in use */
} owner;

void layout_set_config(const char *state_dir, const char *config_path)
{
    bool legacy = owner.legacy && owner.state_dir && strcmp(owner.state_dir, state_dir) == 0;
    free(owner.state_dir);
    free(owner.config);
    owner.state_dir = xstrdup(state_dir);
    owner.config = xstrdup(config_path);
    owner.legacy = legacy;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static char *record_text(const char *kind, const char *name, const char *config)
{
    _cleanup_json_ json_t *o = json_pack("{s:s, s:s, s:s}", "kind", kind, "name", name, "config", config);
    return json_dumps(o, JSON_COMPACT);
}

int layout_record(const char *dir, const char *kind, const char *name, qq_err *err)
{
    if (!owner.config)
        return 0;
    _cleanup_free_ char *text = record_text(kind, name, owner.config);
    return layout_write(dir, LAYOUT_OWNER, text, err);
}

/* Does the open dir hold an entry of a config state dir (vm.*, img.*,
 * config.*)? Then it is (or holds) some config's state. */
static bool holds_state(const char *dir, char **first)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return false;
    }
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d));) {
        if (strncmp(e->d_name, "vm.", 3) == 0 || strncmp(e->d_name, "img.", 4) == 0 ||
            strncmp(e->d_name, CONFIG_PREFIX, strlen(CONFIG_PREFIX)) == 0 ||
            strcmp(e->d_name, layout_name(LAYOUT_KEYS)) == 0) {
            found = true;
            if (first)
                *first = xstrdup(e->d_name);
        }
    }
    closedir(d);
    return found;
}

/* The record of dir, or NULL (none, or unreadable). */
static json_t *read_record(const char *dir)
{
    _cleanup_free_ char *p = layout_path(dir, LAYOUT_OWNER);
    _cleanup_close_ int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    json_t *o = json_loadfd(fd, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

bool layout_owned(const char *dir, const char *kind, const char *name, const char *config_path, char **why)
{
    *why = NULL;
    _cleanup_json_ json_t *rec = read_record(dir);
    if (rec) {
        const char *k = json_string_value(json_object_get(rec, "kind")) ?: "?";
        const char *n = json_string_value(json_object_get(rec, "name")) ?: "?";
        const char *cf = json_string_value(json_object_get(rec, "config")) ?: "?";
        if (strcmp(k, kind) == 0 && strcmp(n, name) == 0 && strcmp(base_name(cf), base_name(config_path)) == 0)
            return true;
        if (strcmp(k, "config") == 0)
            *why = xasprintf("%s is the state dir of config %s", dir, cf);
        else
            *why = xasprintf("%s is recorded as %s %s of config %s", dir, strcmp(k, "img") == 0 ? "image" : k, n, cf);
        return false;
    }
    _cleanup_free_ char *first = NULL;
    if (holds_state(dir, &first)) {
        *why = xasprintf("%s holds %s: the state of another config (from an older qqmgr, which kept the state of "
                         "config NAME in .qqmgr/NAME/); running any command with that config moves it",
                         dir, first);
        return false;
    }
    return true;
}

/* Make the config's state dir with its record in place: a fresh dir beside
 * it, renamed (so a state dir never exists without its record). */
static int make_state_dir(const char *dir, const char *config, qq_err *err)
{
    struct stat st;
    if (lstat(dir, &st) == 0 || !config)
        return 0;
    _cleanup_free_ char *parent = xstrdup(dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (strncmp(base_name(dir), CONFIG_PREFIX, strlen(CONFIG_PREFIX)) == 0 &&
            strcmp(base_name(parent), ".qqmgr") == 0) {
            /* DIR/.qqmgr is DIR/qqmgr.toml's state dir, whether that file exists or not */
            _cleanup_free_ char *cfg_dir = xstrdup(parent);
            *strrchr(cfg_dir, '/') = '\0';
            _cleanup_free_ char *dflt = xasprintf("%s/qqmgr.toml", cfg_dir);
            if (make_state_dir(parent, dflt, err) < 0)
                return -1;
        } else if (fs_mkdir_p(parent, 0700, err) < 0) {
            return -1;
        }
    }
    _cleanup_free_ char *tmp = xasprintf("%s.tmp.XXXXXX", dir);
    if (!mkdtemp(tmp))
        return qq_fail(err, QQ_EXIT_FAIL, "mkdir %s: %s", dir, strerror(errno));
    _cleanup_free_ char *text = record_text("config", base_name(config), config);
    if (layout_write(tmp, LAYOUT_OWNER, text, err) < 0 ||
        (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) < 0 && errno != EEXIST)) {
        int e = errno;
        _cleanup_free_ char *rec = layout_path(tmp, LAYOUT_OWNER);
        unlink(rec);
        rmdir(tmp);
        return err && err->msg[0] ? -1 : qq_fail(err, QQ_EXIT_FAIL, "mkdir %s: %s", dir, strerror(e));
    }
    /* made by another process meanwhile: theirs stays, ours goes */
    _cleanup_free_ char *rec = layout_path(tmp, LAYOUT_OWNER);
    unlink(rec);
    rmdir(tmp);
    return 0;
}

int layout_make_dir(const char *dir, qq_err *err)
{
    _cleanup_free_ char *parent = xstrdup(dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = '\0';
    bool in_state = owner.state_dir && strcmp(parent, owner.state_dir) == 0;
    const char *cfg = owner.legacy ? NULL : owner.config;   /* an older qqmgr's dir: as it was */
    size_t sl = owner.state_dir ? strlen(owner.state_dir) : 0;
    bool under = sl && strncmp(dir, owner.state_dir, sl) == 0 && (dir[sl] == '/' || dir[sl] == '\0');
    if (under && make_state_dir(owner.state_dir, cfg, err) < 0)
        return -1;
    if (fs_mkdir_p(dir, 0700, err) < 0)
        return -1;
    tighten(dir);
    if (slash && slash != parent)
        tighten(parent);
    const char *b = base_name(dir);
    const char *kind = strncmp(b, "vm.", 3) == 0 ? "vm" : strncmp(b, "img.", 4) == 0 ? "img" : NULL;
    if (in_state && kind) {
        _cleanup_free_ char *rec = layout_path(dir, LAYOUT_OWNER);
        if (!fs_exists(rec) && !holds_state(dir, NULL))
            layout_record(dir, kind, strchr(b, '.') + 1, NULL);   /* best effort: unrecorded still reads as ours */
    }
    return 0;
}

/* ------------------------------------------------------------ the older scheme */

/* Take the lock of an entry of the old dir without creating it or waiting:
 * -2 when busy, -1 when there is no lock file. */
static int try_entry_lock(const char *edir)
{
    _cleanup_free_ char *p = layout_path(edir, LAYOUT_LOCK);
    lockfile_opts o = { .no_create = true };
    int fd = lockfile_take(p, &o, NULL);
    if (fd < 0)
        return errno == ENOENT ? -1 : -2;
    return fd;
}

/* Rewrite the absolute paths under from/ in a JSON record file to to/. */
static json_t *repath(json_t *j, const char *from, const char *to)
{
    size_t n = strlen(from);
    if (json_is_string(j)) {
        const char *v = json_string_value(j);
        if (strncmp(v, from, n) == 0 && v[n] == '/')
            return json_sprintf("%s%s", to, v + n);
        return json_incref(j);
    }
    if (json_is_array(j)) {
        json_t *a = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(j, i, x) json_array_append_new(a, repath(x, from, to));
        return a;
    }
    if (json_is_object(j)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach(j, k, x) json_object_set_new(o, k, repath(x, from, to));
        return o;
    }
    return json_incref(j);
}

static void repath_snapshot_records(const char *vm_dir, const char *from, const char *to)
{
    _cleanup_free_ char *sd = layout_path(vm_dir, LAYOUT_SNAPSHOTS);
    int fd = open(sd, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        _cleanup_free_ char *p = xasprintf("%s/%s", sd, e->d_name);
        _cleanup_json_ json_t *j = json_load_file(p, 0, NULL);
        if (!j)
            continue;
        _cleanup_json_ json_t *k = repath(j, from, to);
        _cleanup_free_ char *text = json_dumps(k, JSON_INDENT(2));
        if (text && !json_equal(j, k))
            fs_write_atomic(p, text, strlen(text), 0600, NULL);
    }
    closedir(d);
}

/* Move the vm.* and img.* dirs of old (an older qqmgr's state dir of this
 * config) to new_dir, all or none: none when one is in use. Returns true when
 * old holds nothing of ours any more. */
static bool migrate(const char *old, const char *new_dir, const char *config_path)
{
    DIR *d = opendir(old);
    if (!d)
        return true;
    _cleanup_strv_ char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "vm.", 3) != 0 && strncmp(e->d_name, "img.", 4) != 0 &&
            strcmp(e->d_name, layout_name(LAYOUT_KEYS)) != 0)
            continue;
        _cleanup_free_ char *p = xasprintf("%s/%s", old, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            strv_push(&names, &n, xstrdup(e->d_name));
    }
    closedir(d);
    if (n == 0)
        return true;
    int *locks = xcalloc(n, sizeof *locks);
    bool busy = false;
    for (size_t i = 0; i < n && !busy; i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", old, names[i]);
        locks[i] = try_entry_lock(p);
        busy = locks[i] == -2 || (names[i][0] == 'v' && layout_pid_holder(p) > 0);
    }
    bool moved_all = false;
    if (!busy) {
        qq_err e = { 0 };
        bool made = make_state_dir(new_dir, config_path, &e) == 0;
        moved_all = made;
        for (size_t i = 0; made && i < n; i++) {
            _cleanup_free_ char *from = xasprintf("%s/%s", old, names[i]);
            _cleanup_free_ char *to = xasprintf("%s/%s", new_dir, names[i]);
            if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
                moved_all = false;   /* the new dir has one of that name: this one stays */
                continue;
            }
            if (names[i][0] == 'v')
                repath_snapshot_records(to, old, new_dir);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (locks[i] >= 0)
            close(locks[i]);
    free(locks);
    return moved_all;
}

char *layout_config_state_dir(const char *cfg_dir, const char *base, qq_err *err)
{
    const char *root = strcmp(cfg_dir, "/") ? cfg_dir : "";
    if (strcmp(base, "qqmgr.toml") == 0)
        return xasprintf("%s/.qqmgr", root);
    char *dir = xasprintf("%s/.qqmgr/" CONFIG_PREFIX "%s", root, base);
    _cleanup_free_ char *config_path = xasprintf("%s/%s", root, base);
    struct stat st;
    if (lstat(dir, &st) == 0) {
        _cleanup_json_ json_t *rec = read_record(dir);
        const char *cf = json_string_value(json_object_get(rec, "config"));
        if (!S_ISDIR(st.st_mode) || !cf || strcmp(base_name(cf), base) != 0) {
            qq_fail(err, QQ_EXIT_FAIL,
                    "%s is not recorded as the state dir of %s (an older qqmgr kept the state of a config named "
                    "%s%s there: run any command with that config first, to move it)",
                    dir, base, CONFIG_PREFIX, base);
            free(dir);
            return NULL;
        }
    }
    /* an older qqmgr's DIR/.qqmgr/BASE/ */
    _cleanup_free_ char *old = xasprintf("%s/.qqmgr/%s", root, base);
    if (lstat(old, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
        return dir;
    /* one mover at a time: a second qqmgr waits, then finds it moved */
    _cleanup_close_ int ofd = open(old, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ofd >= 0)
        flock(ofd, LOCK_EX);
    if (migrate(old, dir, config_path)) {
        rmdir(old);   /* only when empty: it may be a VM's dir of qqmgr.toml too */
        return dir;
    }
    if (lstat(dir, &st) == 0)
        return dir;   /* both: the new one; what stays in the old one moves once idle */
    free(dir);
    owner.legacy = true;
    if (owner.state_dir)
        free(owner.state_dir);
    owner.state_dir = xstrdup(old);
    return xstrdup(old);
}

int layout_lock(const char *dir, long long deadline_ms, qq_err *err)
{
    _cleanup_free_ char *p = layout_path(dir, LAYOUT_LOCK);
    lockfile_opts o = { .deadline_ms = deadline_ms };
    for (;;) {
        if (layout_make_dir(dir, err) < 0)
            return -1;
        int fd = lockfile_take(p, &o, err);
        /* rm / prune removed the dir (lock file last) while we waited: make
         * the dir again, lock anew */
        if (fd < 0 && errno == ENOENT)
            continue;
        return fd;
    }
}

int layout_lock_vm(const char *name, const char *dir, const char *what, long long deadline_ms, int bound_s,
                   const char *bound, qq_err *err)
{
    int fd = layout_lock(dir, deadline_ms, err);
    if (fd < 0 && errno == EINTR)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s interrupted by signal %d while waiting for the VM's lock", name, what,
                       sig_caught());
    if (fd < 0 && errno == EWOULDBLOCK) {
        _cleanup_free_ char *p = layout_path(dir, LAYOUT_LOCK);
        return qq_fail(err, QQ_EXIT_FAIL,
                       "%s: another qqmgr is starting or stopping it (it holds %s); still held after %d s (%s)", name,
                       p, bound_s, bound);
    }
    return fd;
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
    int rc = symlink(vm_dir, tmp);
    if (rc < 0 && errno == ENOENT) {
        /* a fallback runtime dir released meanwhile by a VM that ended: again */
        free(sd);
        _cleanup_free_ char *rd2 = layout_runtime_dir(vm_dir, true, err);
        if (!rd2)
            return NULL;
        sd = short_name(rd2, vm_dir, "");
        free(tmp);
        tmp = xasprintf("%s.%ld", sd, (long)getpid());
        unlink(tmp);
        rc = symlink(vm_dir, tmp);
    }
    if (rc < 0 || rename(tmp, sd) < 0) {
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

void layout_release_runtime_dir(const char *dir)
{
    _cleanup_free_ char *pref = rundir_preferred();
    _cleanup_free_ char *rec = layout_path(dir, LAYOUT_RUNTIME_DIR);
    _cleanup_free_ char *rd = rundir_get(pref, rec, false, NULL);
    if (!rd || strcmp(rd, pref) == 0)
        return;
    rundir_release(pref, rd);
    if (access(rd, F_OK) != 0)
        unlink(rec);
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
                                         LAYOUT_GDB_SOCKET, LAYOUT_EVENTS_SOCKET, LAYOUT_FORWARDS,
                                         LAYOUT_RESTORED };
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
    layout_release_runtime_dir(vm_dir);
}

/* ------------------------------------------------------------ what the files say */

char *layout_running_user(const char *state_dir, const char *except, const char *needle)
{
    DIR *d = opendir(state_dir);
    if (!d)
        return NULL;
    char *found = NULL;
    for (struct dirent *e; !found && (e = readdir(d));) {
        const char *vm = layout_vm_of_entry(e->d_name);
        if (!vm || (except && strcmp(vm, except) == 0))
            continue;
        _cleanup_free_ char *vdir = xasprintf("%s/%s", state_dir, e->d_name);
        struct stat st;
        if (lstat(vdir, &st) < 0 || !S_ISDIR(st.st_mode) || layout_pid_holder(vdir) <= 0)
            continue;
        _cleanup_free_ char *argvp = layout_path(vdir, LAYOUT_ARGV);
        _cleanup_free_ char *text = NULL;
        if (fs_read_file(argvp, &text, NULL, NULL) < 0) {
            found = xstrdup(vm);   /* cannot tell what it uses */
            break;
        }
        _cleanup_json_ json_t *doc = json_loads(text, 0, NULL);
        json_t *argv = json_is_object(doc) ? json_object_get(doc, "argv") : doc;
        size_t i;
        json_t *a;
        bool uses = !json_is_array(argv);
        json_array_foreach(argv, i, a) {
            if (json_is_string(a) && strstr(json_string_value(a), needle))
                uses = true;
        }
        if (uses)
            found = xstrdup(vm);
    }
    closedir(d);
    return found;
}

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
