/* snapshot — see snapshot.h. */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/report.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "../infra/sig.h"
#include "../infra/copy.h"
#include "../infra/fs.h"
#include "../infra/proc.h"
#include "../infra/qmp.h"
#include "copies.h"
#include "forward.h"
#include "layout.h"
#include "leftover.h"
#include "mapped.h"
#include "ramfile.h"
#include "running.h"
#include "snapshot_owner.h"
#include "snapargs.h"
#include "share.h"
#include "ssh.h"

#define DISKS_FILE "disks.json"    /* in the snapshots dir */
#define SAVE_TIMEOUT_MS (30 * 60 * 1000)   /* a savevm of a big guest on a slow disk */

/* ------------------------------------------------------------ small helpers */

int snap_check_name(const char *name, qq_err *err)
{
    bool ok = name[0] && name[0] != '.' && name[0] != '-' && strlen(name) <= 128;
    for (const char *p = name; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
             *p == '_' || *p == '-';
    if (!ok)
        return qq_fail(err, QQ_EXIT_USAGE,
                       "snapshot name \"%s\": use letters, digits, '.', '_' and '-', not starting with '.' or '-'",
                       name);
    return 0;
}

/* A VM of the config (a throwaway copy "VM#N" is QQ_EXIT_USAGE: snapshots,
 * starts and runs are the VM's; a throwaway start picks its copy itself). */
static int check_vm(const config *c, const char *vm, qq_err *err)
{
    _cleanup_free_ char *base = NULL;
    int k = config_copy_parse(vm, &base, NULL, err);
    if (k == 1 && config_check_vm(c, base, err) == 0)
        return qq_fail(err, QQ_EXIT_USAGE, "%s is a throwaway copy of %s: snapshots, start and run take the VM's "
                       "name (`%s run %s --rm` picks a copy itself)", vm, base, config_cli(c), base);
    return k < 0 ? -1 : config_check_vm(c, k == 1 ? base : vm, err);
}

static char *snap_dir(const char *dir)
{
    return layout_path(dir, LAYOUT_SNAPSHOTS);
}

static char *snap_path(const char *dir, const char *name, const char *suffix)
{
    _cleanup_free_ char *sd = snap_dir(dir);
    return xasprintf("%s/%s%s", sd, name, suffix);
}

/* qemu-img ARGS ([qemu] img): its stdout in *out, or -1 with its last words. */
static int snap_qemu_img(const config *c, char *const *args, char **out, qq_err *err)
{
    return proc_tool(config_qemu_img(c), "qemu-img", args, out, err);
}

/* QMP of a running VM (NULL with err when it is not running or QMP fails). */
static qmp *open_qmp(const config *c, const char *vm, const char *dir, int timeout_ms, qq_err *err)
{
    vm_state st;
    vm_probe(dir, false, &st);
    if (!st.running) {
        running_not(c, vm, NULL, err);
        return NULL;
    }
    _cleanup_free_ char *sock = layout_path(dir, LAYOUT_QMP);
    return qmp_open(sock, timeout_ms, err);
}

/* An HMP command whose success prints nothing: 0, or -1 with QEMU's words. */
static int hmp_quiet(qmp *q, const char *vm, const char *line, int timeout_ms, qq_err *err)
{
    _cleanup_free_ char *out = qmp_hmp(q, line, timeout_ms, err);
    if (!out)
        return -1;
    const char *msg = proc_last_line(out);
    if (*msg)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s: %s", vm, line, msg);
    return 0;
}

/* ------------------------------------------------------------ entries */

static json_t *entry(const char *name, double date, json_int_t size, json_t *clock, const char *kind,
                     json_int_t usage)
{
    char iso[64] = "";
    time_t t = (time_t)date;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:s, s:s, s:I, s:o, s:s, s:I}", "name", name, "date", iso, "vm_state_size", size, "vm_clock",
                     clock ? clock : json_null(), "kind", kind, "size", usage);
}

/* One QEMU snapshot info ({"name", "date-sec", "vm-clock-sec", ...}) as our entry. */
static json_t *entry_of_qemu(json_t *s)
{
    double clock = (double)json_integer_value(json_object_get(s, "vm-clock-sec")) +
                   (double)json_integer_value(json_object_get(s, "vm-clock-nsec")) / 1e9;
    /* what the snapshot keeps of the disks is not counted: the VM state only */
    return entry(json_string_value(json_object_get(s, "name")) ?: "",
                 (double)json_integer_value(json_object_get(s, "date-sec")),
                 json_integer_value(json_object_get(s, "vm-state-size")), json_real((double)(long long)(clock * 1000) / 1000),
                 "qcow2", json_integer_value(json_object_get(s, "vm-state-size")));
}

/* The snapshots every one of the disks holds (lists: arrays of QEMU
 * snapshot infos, the first disk first), as our entries. */
static void add_common(json_t *out, json_t *lists)
{
    json_t *first = json_array_get(lists, 0);
    size_t i, j, k;
    json_t *s, *l, *t;
    json_array_foreach(first, i, s) {
        const char *name = json_string_value(json_object_get(s, "name"));
        bool everywhere = name != NULL;
        json_array_foreach(lists, j, l) {
            bool here = false;
            json_array_foreach(l, k, t) {
                here = here || strcmp(json_string_value(json_object_get(t, "name")) ?: "", name ?: "") == 0;
            }
            everywhere = everywhere && here;
        }
        if (everywhere)
            json_array_append_new(out, entry_of_qemu(s));
    }
}

/* The VM's snapshots dir, opened without following a symlink: -1 when it
 * is missing or is not a directory of its own (errno ELOOP/ENOTDIR). */
static int snap_dir_fd(const char *dir)
{
    _cleanup_free_ char *sd = snap_dir(dir);
    return open(sd, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static json_t *load_at(int dfd, const char *file)
{
    _cleanup_close_ int fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? NULL : json_loadfd(fd, 0, NULL);
}

/* State-file snapshots: <dir>/snapshots/NAME.json next to NAME.state. */
static void add_state_files(json_t *out, const char *dir)
{
    int dfd = snap_dir_fd(dir);
    if (dfd < 0)
        return;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 6, ".state") != 0)
            continue;
        _cleanup_free_ char *name = xstrndup(de->d_name, n - 6);
        if (snap_check_name(name, NULL) < 0)
            continue;
        _cleanup_free_ char *meta = xasprintf("%s.json", name);
        _cleanup_json_ json_t *m = load_at(dirfd(d), meta);
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        json_t *date = json_object_get(m, "date");
        json_array_append_new(out, entry(name, date ? json_number_value(date) : (double)st.st_mtime,
                                         (json_int_t)st.st_size, json_incref(json_object_get(m, "vm_clock")),
                                         "state-file", (json_int_t)st.st_blocks * 512));
    }
    closedir(d);
}

/* Remove state-file snapshot name (NAME.state, NAME.json) inside the VM's
 * snapshots dir only: a symlinked snapshots/ is refused, never followed. */
static int remove_state_file(const char *dir, const char *name, qq_err *err)
{
    _cleanup_close_ int dfd = snap_dir_fd(dir);
    _cleanup_free_ char *sd = snap_dir(dir);
    if (dfd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", sd,
                       errno == ELOOP || errno == ENOTDIR ? "not a directory (a symlink is not followed)"
                                                          : strerror(errno));
    static const char *const suffixes[] = { ".state", ".json" };
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *f = xasprintf("%s%s", name, suffixes[i]);
        if (unlinkat(dfd, f, 0) < 0 && errno != ENOENT)
            return qq_fail(err, QQ_EXIT_FAIL, "remove %s/%s: %s", sd, f, strerror(errno));
    }
    return 0;
}

static int by_date(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "date"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "date"));
    return strcmp(x ?: "", y ?: "");
}

static void sort_by_date(json_t *arr)
{
    size_t n = json_array_size(arr);
    if (n < 2)
        return;
    json_t **v = xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, by_date);   /* ISO dates sort as text; qsort of equal dates keeps no order, fine */
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
}

/* ------------------------------------------------------------ disks */

typedef struct disks {
    json_t *qcow2;    /* [{device, file, path}] writable qcow2 disks; path: absolute */
    json_t *other;    /* [{device, file, format}] writable disks of another format */
    json_t *lists;    /* per qcow2 disk: QEMU's snapshot infos */
} disks;

static void disks_free(disks *d)
{
    json_decref(d->qcow2);
    json_decref(d->other);
    json_decref(d->lists);
}

static char *absolute(const config *c, const char *file)
{
    if (file[0] == '/' || !config_dir(c))
        return xstrdup(file);
    return xasprintf("%s/%s", config_dir(c), file);
}

/* The writable disks of a running VM (QMP query-block). */
static int running_disks(const config *c, qmp *q, disks *d, qq_err *err)
{
    memset(d, 0, sizeof *d);
    _cleanup_json_ json_t *blk = qmp_execute(q, "query-block", NULL, 10000, err);
    if (!blk)
        return -1;
    d->qcow2 = json_array();
    d->other = json_array();
    d->lists = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(blk, i, b) {
        json_t *ins = json_object_get(b, "inserted");
        if (!ins || json_is_true(json_object_get(ins, "ro")))
            continue;
        const char *dev = json_string_value(json_object_get(b, "device"));
        if (!dev || !*dev)
            dev = json_string_value(json_object_get(b, "qdev")) ?: "?";
        const char *file = json_string_value(json_object_get(ins, "file")) ?: "?";
        const char *drv = json_string_value(json_object_get(ins, "drv")) ?: "?";
        if (strcmp(drv, "qcow2") == 0) {
            _cleanup_free_ char *abs = absolute(c, file);
            json_array_append_new(d->qcow2, json_pack("{s:s, s:s, s:s}", "device", dev, "file", file, "path", abs));
            json_t *snaps = json_object_get(json_object_get(ins, "image"), "snapshots");
            json_array_append(d->lists, snaps ? snaps : json_array());
            if (!snaps)
                json_decref(json_array_get(d->lists, json_array_size(d->lists) - 1));
        } else {
            json_array_append_new(d->other, json_pack("{s:s, s:s, s:s}", "device", dev, "file", file, "format", drv));
        }
    }
    return 0;
}

/* QEMU's snapshot infos of one image file (qemu-img info -U); NULL when unreadable. */
static json_t *image_snapshots(const config *c, const char *path)
{
    char *args[] = { "info", "-U", "--output=json", (char *)path, NULL };
    _cleanup_free_ char *out = NULL;
    qq_err e = { 0 };
    if (access(path, F_OK) != 0 || snap_qemu_img(c, args, &out, &e) < 0)
        return NULL;
    _cleanup_json_ json_t *j = json_loads(out, 0, NULL);
    json_t *s = json_object_get(j, "snapshots");
    if (strcmp(json_string_value(json_object_get(j, "format")) ?: "", "qcow2") != 0)
        return NULL;
    return s ? json_incref(s) : json_array();
}

/* The disks of a stopped VM: those of its last qcow2 save. */
static int stopped_disks(const config *c, const char *dir, disks *d)
{
    memset(d, 0, sizeof *d);
    d->qcow2 = json_array();
    d->other = json_array();
    d->lists = json_array();
    _cleanup_close_ int dfd = snap_dir_fd(dir);   /* never a disks.json through a symlink */
    _cleanup_json_ json_t *rec = dfd >= 0 ? load_at(dfd, DISKS_FILE) : NULL;
    size_t i;
    json_t *x;
    json_array_foreach(rec, i, x) {
        const char *path = json_string_value(json_object_get(x, "path"));
        json_t *snaps = path ? image_snapshots(c, path) : NULL;
        if (!snaps)
            continue;
        json_array_append(d->qcow2, x);
        json_array_append_new(d->lists, snaps);
    }
    return 0;
}

static int record_disks(const char *dir, json_t *qcow2, qq_err *err)
{
    _cleanup_free_ char *p = snap_path(dir, DISKS_FILE, "");
    _cleanup_free_ char *text = json_dumps(qcow2, JSON_INDENT(2));
    return fs_write_atomic(p, text, strlen(text), 0600, err);
}

char *snap_names_in_image(const config *c, const char *path)
{
    _cleanup_json_ json_t *s = image_snapshots(c, path);
    sbuf l = SBUF_INIT;
    size_t i;
    json_t *x;
    json_array_foreach(s, i, x) {
        const char *name = json_string_value(json_object_get(x, "name"));
        if (name)
            sbuf_addf(&l, "%s%s", l.len ? ", " : "", name);
    }
    if (!l.len) {
        sbuf_free(&l);
        return NULL;
    }
    return sbuf_steal(&l);
}

/* ------------------------------------------------------------ list / find */

/* ------------------------------------------------------------ whose snapshot */

/* Keep in each disk's list only vm's own snapshots (snapshot_owner.h); the
 * others' go to foreign as {name, disk, owner} when it is not NULL. */
static void keep_own(const config *c, const char *vm, disks *d, json_t *foreign)
{
    snapown *o = snapown_load(config_state_dir(c));
    for (size_t j = 0; j < json_array_size(d->lists); j++) {
        const char *path = json_string_value(json_object_get(json_array_get(d->qcow2, j), "path")) ?: "";
        json_t *own = json_array();
        size_t i;
        json_t *info;
        json_array_foreach(json_array_get(d->lists, j), i, info) {
            _cleanup_free_ char *owner = NULL;
            if (snapown_is_own(o, vm, path, info, &owner))
                json_array_append(own, info);
            else if (foreign)
                json_array_append_new(foreign, json_pack("{s:s, s:s, s:s}", "name",
                                                         json_string_value(json_object_get(info, "name")) ?: "?",
                                                         "disk", path, "owner", owner));
        }
        json_array_set_new(d->lists, j, own);
    }
    snapown_free(o);
}

/* Refuse when another running VM of the state dir uses one of the disks:
 * a snapshot of a disk two QEMUs write is neither's. */
static int refuse_shared(const config *c, const char *vm, const disks *d, qq_err *err)
{
    size_t i;
    json_t *x;
    json_array_foreach(d->qcow2, i, x) {
        const char *path = json_string_value(json_object_get(x, "path"));
        _cleanup_free_ char *other = path ? layout_running_user(config_state_dir(c), vm, path) : NULL;
        if (other)
            return qq_fail(err, QQ_EXIT_FAIL,
                           "%s: its disk %s is in use by running VM %s too; snapshots of a disk that running VMs "
                           "share are refused: stop %s first (%s stop %s)",
                           vm, path, other, other, config_cli(c), other);
    }
    return 0;
}

/* On every disk, is the snapshot called name the only one of that name, and
 * vm's own? delvm, loadvm and qemu-img snapshot -d take the first one of a
 * name (an older qqmgr let two VMs save one name into a shared disk). */
static int check_unambiguous(const config *c, const char *vm, const disks *d, const char *name, qq_err *err)
{
    snapown *o = snapown_load(config_state_dir(c));
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < json_array_size(d->lists); j++) {
        const char *path = json_string_value(json_object_get(json_array_get(d->qcow2, j), "path")) ?: "";
        size_t i, hits = 0;
        json_t *info;
        char *other = NULL;
        json_array_foreach(json_array_get(d->lists, j), i, info) {
            const char *n = json_string_value(json_object_get(info, "name")) ?: "";
            if (strcmp(n, name) != 0)
                continue;
            hits++;
            char *who = NULL;
            if (!snapown_is_own(o, vm, path, info, &who) && !other)
                other = who;
            else
                free(who);
        }
        if (other || hits > 1)
            rc = qq_fail(err, QQ_EXIT_FAIL,
                         "%s: disk %s also holds another snapshot called '%s' (%s), which QEMU could take for %s's; "
                         "left alone: delete that one first (qemu-img snapshot -l shows both)",
                         vm, path, name, other ? other : "the same name twice", vm);
        free(other);
    }
    snapown_free(o);
    return rc;
}

/* After a save: record the snapshots named name that the save made (the
 * newest of that name on each disk) as vm's. */
static int record_owner(const config *c, qmp *q, const char *dir, const char *name, qq_err *err)
{
    disks d;
    if (running_disks(c, q, &d, err) < 0)
        return -1;
    _cleanup_json_ json_t *saved = json_array();
    for (size_t j = 0; j < json_array_size(d.lists); j++) {
        json_t *best = NULL;
        size_t i;
        json_t *info;
        json_array_foreach(json_array_get(d.lists, j), i, info) {
            if (strcmp(json_string_value(json_object_get(info, "name")) ?: "", name) != 0)
                continue;
            json_int_t s = json_integer_value(json_object_get(info, "date-sec"));
            json_int_t ns = json_integer_value(json_object_get(info, "date-nsec"));
            if (!best || s > json_integer_value(json_object_get(best, "date-sec")) ||
                (s == json_integer_value(json_object_get(best, "date-sec")) &&
                 ns > json_integer_value(json_object_get(best, "date-nsec"))))
                best = info;
        }
        if (best)
            json_array_append_new(saved, json_pack("{s:O, s:O}", "path",
                                                   json_object_get(json_array_get(d.qcow2, j), "path"), "info", best));
    }
    disks_free(&d);
    return snapown_record(dir, name, saved, err);
}

/* The snapshot list of a VM (its own only); *running tells which way it was read. */
static json_t *list_in(const config *c, const char *vm, const char *dir, qmp *q, qq_err *err)
{
    disks d;
    if (q ? running_disks(c, q, &d, err) < 0 : stopped_disks(c, dir, &d) < 0)
        return NULL;
    keep_own(c, vm, &d, NULL);
    json_t *out = json_array();
    if (json_array_size(d.lists) > 0)
        add_common(out, d.lists);
    add_state_files(out, dir);
    mapped_list_add(out, dir);
    disks_free(&d);
    sort_by_date(out);
    return out;
}

json_t *snap_foreign(const config *c, const char *vm, qq_err *err)
{
    if (check_vm(c, vm, err) < 0)
        return NULL;
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    vm_state st;
    vm_probe(dir, false, &st);
    qmp *q = NULL;
    if (st.running && !(q = open_qmp(c, vm, dir, 5000, err)))
        return NULL;
    disks d;
    int rc = q ? running_disks(c, q, &d, err) : stopped_disks(c, dir, &d);
    qmp_close(q);
    if (rc < 0)
        return NULL;
    json_t *foreign = json_array();
    keep_own(c, vm, &d, foreign);
    disks_free(&d);
    return foreign;
}

json_t *snap_list(const config *c, const char *vm, qq_err *err)
{
    if (check_vm(c, vm, err) < 0)
        return NULL;
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    vm_state st;
    vm_probe(dir, false, &st);
    qmp *q = NULL;
    if (st.running && !(q = open_qmp(c, vm, dir, 5000, err)))
        return NULL;
    json_t *l = list_in(c, vm, dir, q, err);
    qmp_close(q);
    return l;
}

static bool has_snapshot(json_t *list, const char *name)
{
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x) {
        if (strcmp(json_string_value(json_object_get(x, "name")) ?: "", name) == 0)
            return true;
    }
    return false;
}

/* "VM has no snapshot 'x' (snapshots: a, b)" */
static int unknown_snapshot(const config *c, const char *vm, const char *name, json_t *list, qq_err *err)
{
    _cleanup_sbuf_ sbuf b = SBUF_INIT;
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x) {
        sbuf_adds(&b, i ? ", " : "");
        sbuf_adds(&b, json_string_value(json_object_get(x, "name")) ?: "?");
    }
    if (b.len)
        return qq_fail(err, QQ_EXIT_FAIL, "%s has no snapshot '%s' (its snapshots: %s)", vm, name, sbuf_str(&b));
    _cleanup_free_ char *base = config_base_vm(vm);   /* a copy's snapshots are its VM's */
    return qq_fail(err, QQ_EXIT_FAIL, "%s has no snapshot '%s' (it has none; make one with `%s snapshot save %s %s`)",
                   vm, name, config_cli(c), base, name);
}

static bool is_state_file(const char *dir, const char *name)
{
    _cleanup_close_ int dfd = snap_dir_fd(dir);
    _cleanup_free_ char *f = xasprintf("%s.state", name);
    struct stat st;
    return dfd >= 0 && fstatat(dfd, f, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* Does a snapshot of the older kinds load into VM vm's mapped RAM (mapped.h)?
 * Else it is loaded into a QEMU with its own RAM. */
static bool older_loads_mapped(const config *c, const char *vm)
{
    vm_spec s;
    if (config_vm(c, vm, 0, &s, NULL) < 0)
        return false;
    bool ok = ramfile_loads_older(&s);
    vm_spec_free(&s);
    return ok;
}

/* Is the running QEMU of dir a throwaway run (start --rm)? */
static bool throwaway_run(const char *dir, pid_t pid)
{
    _cleanup_free_ char *p = layout_path(dir, LAYOUT_THROWAWAY);
    _cleanup_free_ char *s = NULL;
    if (fs_read_file(p, &s, NULL, NULL) < 0)
        return false;
    return strtol(s, NULL, 10) == (long)pid;
}

/* save, restore and delete wait at most SNAP_LOCK_S for the VM's lock (a
 * start, stop or other snapshot command holding it), then fail naming it. */
#define SNAP_LOCK_S 30
static int lock_dir(const char *vm, const char *dir, qq_err *err)
{
    return layout_lock_vm(vm, dir, "snapshot", clock_ms() + SNAP_LOCK_S * 1000LL, SNAP_LOCK_S,
                          "the snapshot commands' bound", err);
}

/* ------------------------------------------------------------ save */

/* QEMU says "Input/output error" when a disk's file system is full: name the cause. */
static void explain_full_disk(json_t *qcow2, qq_err *err)
{
    size_t i;
    json_t *x;
    json_array_foreach(qcow2, i, x) {
        const char *path = json_string_value(json_object_get(x, "path"));
        struct statvfs vfs;
        if (!path || statvfs(path, &vfs) < 0)
            continue;
        unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
        if (avail < (64ULL << 20)) {
            _cleanup_free_ char *was = xstrdup(err->msg);
            qq_fail(err, QQ_EXIT_FAIL, "%s (no space left: the file system of %s has %llu MiB free; earlier "
                    "snapshots are intact)", was, path, avail >> 20);
            return;
        }
    }
}

/* Diskless save: stop, migrate to NAME.state.tmp, rename, cont. */
static int save_state_file(qmp *q, const char *vm, const char *dir, const char *name, bool was_running,
                           json_t *saved_args, qq_err *err)
{
    _cleanup_free_ char *tmp = snap_path(dir, name, ".state.tmp");
    _cleanup_free_ char *final = snap_path(dir, name, ".state");
    _cleanup_free_ char *meta = snap_path(dir, name, ".json");
    _cleanup_sbuf_ sbuf uri = SBUF_INIT;
    sbuf_adds(&uri, "exec:cat > ");
    sbuf_add_shell_quoted(&uri, tmp);
    fs_remove(tmp, NULL);
    int rc = -1;
    /* a qqmgr killed from here on leaves this record for the next command
     * to repair (leftover.h) */
    if (leftover_begin(dir, "save", name, was_running, tmp, err) < 0)
        return -1;
    if (was_running) {
        json_t *r = qmp_execute(q, "stop", NULL, 10000, err);
        if (!r) {
            leftover_end(dir);
            return -1;
        }
        json_decref(r);
    }
    _cleanup_json_ json_t *params = json_pack("{s:I}", "max-bandwidth", (json_int_t)1 << 40);
    json_decref(qmp_execute(q, "migrate-set-parameters", params, 10000, NULL));
    _cleanup_json_ json_t *args = json_pack("{s:s}", "uri", sbuf_str(&uri));
    json_t *r = qmp_execute(q, "migrate", args, 10000, err);
    if (r) {
        json_decref(r);
        bool cancelled = false;
        for (;;) {
            if (sig_caught() && !cancelled) {
                json_decref(qmp_execute(q, "migrate_cancel", NULL, 10000, NULL));
                cancelled = true;
            }
            json_t *m = qmp_execute(q, "query-migrate", NULL, 10000, err);
            if (!m)
                break;
            const char *s = json_string_value(json_object_get(m, "status")) ?: "";
            if (strcmp(s, "completed") == 0) {
                json_decref(m);
                if (sig_caught()) {
                    qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: snapshot '%s' was not kept", vm, name);
                    break;
                }
                chmod(tmp, 0600);   /* the shell made it with the umask */
                if (rename(tmp, final) < 0) {
                    qq_fail(err, QQ_EXIT_FAIL, "%s: %s", final, strerror(errno));
                    break;
                }
                _cleanup_json_ json_t *md = json_pack("{s:I}", "date", (json_int_t)time(NULL));
                if (saved_args)   /* what it was saved with, for snapshot export (snapargs.h) */
                    json_object_set(md, "args", saved_args);
                _cleanup_free_ char *text = json_dumps(md, 0);
                rc = fs_write_atomic(meta, text, strlen(text), 0600, err);
                break;
            }
            if (strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0) {
                const char *why = json_string_value(json_object_get(m, "error-desc"));
                struct statvfs vfs;
                _cleanup_free_ char *sd = snap_dir(dir);
                bool full = statvfs(sd, &vfs) == 0 && (unsigned long long)vfs.f_bavail * vfs.f_frsize < (1ULL << 20);
                if (sig_caught())
                    qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: snapshot '%s' was not kept", vm, name);
                else if (full)
                    qq_fail(err, QQ_EXIT_FAIL, "%s: saving '%s' failed: no space left on the device of %s", vm,
                            name, sd);
                else
                    qq_fail(err, QQ_EXIT_FAIL, "%s: saving '%s' failed: %s", vm, name, why ? why : s);
                json_decref(m);
                break;
            }
            json_decref(m);
            usleep(20 * 1000);
        }
    }
    if (rc < 0)
        fs_remove(tmp, NULL);
    /* out of postmigrate, as it was before */
    qq_err e = { 0 };
    if (leftover_resume(q, was_running, &e) < 0 && rc == 0)
        rc = qq_fail(err, QQ_EXIT_FAIL, "%s: after saving '%s': %s", vm, name, e.msg);
    leftover_end(dir);
    return rc;
}

int snap_save(const config *c, const char *vm, const char *name, bool force, snap_save_result *r, qq_err *err)
{
    memset(r, 0, sizeof *r);
    if (check_vm(c, vm, err) < 0 || snap_check_name(name, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    vm_state st;
    vm_probe(dir, false, &st);
    if (!st.running)
        return running_not(c, vm, NULL, err);
    _cleanup_close_ int lock = lock_dir(vm, dir, err);
    if (lock < 0)
        return -1;
    vm_probe(dir, false, &st);
    if (!st.running)
        return running_not(c, vm, NULL, err);
    if (throwaway_run(dir, st.pid))
        return qq_fail(err, QQ_EXIT_FAIL,
                       "%s is a throwaway run (start --rm): a snapshot of it would be lost at stop; "
                       "start it without --rm to save snapshots", vm);
    if (leftover_repair(dir, NULL, err) < 0)
        return -1;
    _cleanup_free_ char *sd = snap_dir(dir);
    if (layout_make_dir(sd, err) < 0)
        return -1;
    _cleanup_close_ int sdfd = snap_dir_fd(dir);   /* never save through a symlink out of the state dir */
    if (sdfd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", sd,
                       errno == ELOOP || errno == ENOTDIR ? "not a directory (a symlink is not followed)"
                                                          : strerror(errno));
    qmp *q = open_qmp(c, vm, dir, 5000, err);
    if (!q)
        return -1;
    int rc = -1;
    disks d = { 0 };
    json_t *list = NULL;
    _cleanup_json_ json_t *status = NULL;
    _cleanup_free_ char *ram = NULL;   /* before any goto out: the cleanup runs there */
    const char *old_kind = NULL;       /* the kind of the snapshot this save replaces */
    if (running_disks(c, q, &d, err) < 0)
        goto out;
    unsigned long long ram_bytes = 0;
    ram = ramfile_of_run(dir, st.pid, &ram_bytes);
    bool mapped = ram != NULL;
    if (!mapped)
        ramfile_why_not(c, vm, r->note, sizeof r->note);
    if (!mapped && json_array_size(d.other) > 0) {
        json_t *o = json_array_get(d.other, 0);
        qq_fail(err, QQ_EXIT_FAIL,
                "%s: drive '%s' (%s) is a writable %s disk, which cannot hold snapshots: every writable disk must "
                "be qcow2 (build its image with format = \"qcow2\" in [img.NAME], convert it with `qemu-img "
                "convert -O qcow2`, or attach it read-only)",
                vm, json_string_value(json_object_get(o, "device")), json_string_value(json_object_get(o, "file")),
                json_string_value(json_object_get(o, "format")));
        goto out;
    }
    if (refuse_shared(c, vm, &d, err) < 0)
        goto out;
    if (!(list = list_in(c, vm, dir, q, err)))
        goto out;
    bool qcow2 = !mapped && json_array_size(d.qcow2) > 0;
    if (!has_snapshot(list, name) && qcow2) {
        /* savevm replaces a snapshot of that name: never another VM's */
        disks mine = { json_incref(d.qcow2), json_array(), json_deep_copy(d.lists) };
        _cleanup_json_ json_t *foreign = json_array();
        keep_own(c, vm, &mine, foreign);
        disks_free(&mine);
        size_t i;
        json_t *x;
        json_array_foreach(foreign, i, x) {
            if (strcmp(json_string_value(json_object_get(x, "name")), name) == 0) {
                qq_fail(err, QQ_EXIT_FAIL,
                        "%s: disk %s already holds a snapshot '%s' that is not %s's (%s); saving would replace it: "
                        "choose another name",
                        vm, json_string_value(json_object_get(x, "disk")), name, vm,
                        json_string_value(json_object_get(x, "owner")));
                goto out;
            }
        }
    }
    if (has_snapshot(list, name)) {
        if (!force) {
            qq_fail(err, QQ_EXIT_FAIL, "%s already has a snapshot '%s' (--force replaces it)", vm, name);
            goto out;
        }
        /* The old snapshot goes only once the new one is saved: a mapped save
         * replaces a mapped one in one step, a state file is renamed over the
         * old one, and one of another kind is removed after the save. Only
         * an internal qcow2 snapshot replaced by another is deleted first
         * (QEMU's savevm deletes a snapshot of the same name itself). */
        old_kind = mapped_is(dir, name) ? "mapped" : is_state_file(dir, name) ? "state-file" : "qcow2";
        if (strcmp(old_kind, "qcow2") == 0 && qcow2) {
            _cleanup_free_ char *line = xasprintf("delvm %s", name);
            if (check_unambiguous(c, vm, &d, name, err) < 0 || hmp_quiet(q, vm, line, SAVE_TIMEOUT_MS, err) < 0)
                goto out;
            old_kind = NULL;
        } else if (strcmp(old_kind, "qcow2") == 0 && check_unambiguous(c, vm, &d, name, err) < 0) {
            goto out;
        }
        r->replaced = true;
    }
    status = qmp_execute(q, "query-status", NULL, 5000, err);
    if (!status)
        goto out;
    bool was_running = json_is_true(json_object_get(status, "running"));
    if (leftover_explain(vm, config_cli(c), json_string_value(json_object_get(status, "status")), err) < 0)
        goto out;
    sig_scope ss;
    sig_catch(&ss);
    long long t0 = clock_ms();
    if (mapped) {
        r->kind = "mapped";
        /* every writable disk becomes a layer of the snapshot, whatever its format */
        _cleanup_json_ json_t *all = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(d.qcow2, i, x)
            json_array_append_new(all, json_pack("{s:O, s:O, s:s}", "file", json_object_get(x, "file"), "path",
                                                 json_object_get(x, "path"), "format", "qcow2"));
        json_array_foreach(d.other, i, x) {
            _cleanup_free_ char *abs = absolute(c, json_string_value(json_object_get(x, "file")) ?: "");
            json_array_append_new(all, json_pack("{s:O, s:s, s:O}", "file", json_object_get(x, "file"), "path", abs,
                                                 "format", json_object_get(x, "format")));
        }
        rc = mapped_save(c, vm, dir, q, st.pid, name, all, was_running, err);
    } else if (qcow2) {
        r->kind = "qcow2";
        /* savevm runs to its end in QEMU whatever happens to us; an interrupt
         * is honoured after it, by deleting what it made */
        _cleanup_free_ char *line = xasprintf("savevm %s", name);
        rc = hmp_quiet(q, vm, line, SAVE_TIMEOUT_MS, err);
        if (rc < 0)
            explain_full_disk(d.qcow2, err);
        if (rc == 0 && sig_caught()) {
            _cleanup_free_ char *del = xasprintf("delvm %s", name);
            hmp_quiet(q, vm, del, SAVE_TIMEOUT_MS, NULL);
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: snapshot '%s' was not kept", vm, name);
        }
        if (rc == 0)
            rc = record_disks(dir, d.qcow2, err);
        if (rc == 0)
            rc = record_owner(c, q, dir, name, err);
    } else {
        r->kind = "state-file";
        _cleanup_json_ json_t *args = snapargs_of(c, vm, st.ssh_port, NULL);
        rc = save_state_file(q, vm, dir, name, was_running, args, err);
    }
    r->seconds = (double)(clock_ms() - t0) / 1000.0;
    sig_release(&ss);
    if (rc == 0 && old_kind && strcmp(old_kind, r->kind) != 0) {
        /* the replaced snapshot was of another kind: it goes now */
        qq_err e = { 0 };
        int del = 0;
        if (strcmp(old_kind, "mapped") == 0) {
            del = mapped_delete(dir, name, &e);
        } else if (strcmp(old_kind, "state-file") == 0) {
            del = remove_state_file(dir, name, &e);
        } else {
            _cleanup_free_ char *line = xasprintf("delvm %s", name);
            del = hmp_quiet(q, vm, line, SAVE_TIMEOUT_MS, &e);
        }
        if (del < 0)
            report_line("qqmgr: %s: snapshot '%s' was saved (%s), but the %s snapshot it replaces could not be "
                        "removed: %s (`%s snapshot delete %s %s` removes one of the two)",
                        vm, name, r->kind, old_kind, e.msg, config_cli(c), vm, name);
    }
out:
    json_decref(list);
    disks_free(&d);
    qmp_close(q);
    return rc;
}

/* ------------------------------------------------------------ restore / delete */

static int start_from(const config *c, const char *vm, const snap_start_opts *o, launch_result *r,
                      qq_err *err);

/* The date of snapshot name (seconds since the epoch), 0 unknown. */
static double snap_date(const config *c, const char *vm, const char *name)
{
    _cleanup_json_ json_t *l = snap_list(c, vm, NULL);
    size_t i;
    json_t *x;
    json_array_foreach(l, i, x) {
        if (strcmp(json_string_value(json_object_get(x, "name")) ?: "", name) != 0)
            continue;
        struct tm tm = { 0 };
        const char *d = json_string_value(json_object_get(x, "date")) ?: "";
        if (strptime(d, "%Y-%m-%dT%H:%M:%SZ", &tm))
            return (double)timegm(&tm);
    }
    return 0;
}

void snap_clock(const config *c, const char *vm, const char *name, long long deadline_ms, guestclock_result *r)
{
    if (guestclock_sync(c, vm, deadline_ms, r) == 0 || r->reached)
        return;
    _cleanup_free_ char *base = config_base_vm(vm);   /* a copy's snapshots are its VM's */
    double saved = snap_date(c, base, name);
    if (saved > 0)
        r->behind_s = (double)time(NULL) - saved;
}

int snap_ready(const config *c, const char *vm, const char *name, const char *stage, long long deadline_ms,
               bool progress, bool debug, guestclock_result *clock, qq_err *err)
{
    memset(clock, 0, sizeof *clock);
    long long now = clock_ms();
    /* the saved guest's sshd already listens: one login, its clock set on the
     * way, makes it ready (no banner probe, no second command); without a
     * stage, the clock alone. Signals as in ssh_wait_ready: caught here when
     * nobody else catches them, and then the VM keeps running */
    bool own = !sig_active();
    sig_scope scope;
    if (own)
        sig_catch(&scope);
    if (!stage) {
        snap_clock(c, vm, name, now + SNAP_CLOCK_MS < deadline_ms ? now + SNAP_CLOCK_MS : deadline_ms, clock);
    } else if (!sig_caught()) {
        long long first = now + SNAP_LOGIN_MS < deadline_ms ? now + SNAP_LOGIN_MS : deadline_ms;
        snap_clock(c, vm, name, first, clock);
        if (debug && clock->set && !clock->reached)
            report_line("qqmgr: %s: restored: clock %s (%.1fs); ssh is waited for as after a boot", vm, clock->how,
                        (double)(clock_ms() - now) / 1000.0);
        else if (debug)
            report_line("qqmgr: %s: restored: one ssh login to set the clock (%.1fs): %s", vm,
                        (double)(clock_ms() - now) / 1000.0, clock->reached ? "logged in" : clock->how);
    }
    bool caught = sig_caught() != 0;
    if (own)
        sig_release(&scope);
    const char *what = stage ? "waiting for the ssh login" : "setting the guest clock";
    if (caught && own)
        return qq_fail(err, QQ_EXIT_FAIL, "VM %s: interrupted while %s; the VM keeps running (`%s stop %s` stops it)",
                       vm, what, config_cli(c), vm);
    if (caught)
        return qq_fail(err, QQ_EXIT_FAIL, "VM %s: interrupted while %s", vm, what);
    if (!stage)
        return 0;
    if (clock->reached && strcmp(stage, "ssh") == 0)
        return 0;
    /* saved while it booted (or no sshd): wait as after a boot */
    if (ssh_wait_ready(c, vm, stage, deadline_ms, progress, debug, err) < 0)
        return -1;
    if (!clock->set && !sig_caught())
        snap_clock(c, vm, name, deadline_ms, clock);
    return 0;
}

/* Add the recorded forwards fwds (forward_list) to the VM's new QEMU after a
 * restore that restarted it: the user's `forward add`s outlive the restore. */
static int forwards_again(const config *c, const char *vm, json_t *fwds, qq_err *err)
{
    size_t i;
    json_t *x;
    json_array_foreach(fwds, i, x) {
        forward f;
        memset(&f, 0, sizeof f);
        snprintf(f.proto, sizeof f.proto, "%s", json_string_value(json_object_get(x, "proto")) ?: "tcp");
        snprintf(f.host_addr, sizeof f.host_addr, "%s", json_string_value(json_object_get(x, "host_addr")) ?: "127.0.0.1");
        f.host_port = (int)json_integer_value(json_object_get(x, "host_port"));
        f.guest_port = (int)json_integer_value(json_object_get(x, "guest_port"));
        const char *netdev = json_string_value(json_object_get(x, "netdev"));
        qq_err e = { 0 };
        if (forward_add(c, vm, netdev && *netdev ? netdev : NULL, &f, &e) < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "%s: restored, but its forward %s:%s:%d:%d could not be added again: %s",
                           vm, f.proto, f.host_addr, f.host_port, f.guest_port, e.msg);
    }
    return 0;
}

int snap_restore(const config *c, const char *vm, const char *name, guestclock_result *clock, qq_err *err)
{
    if (clock)
        memset(clock, 0, sizeof *clock);
    if (check_vm(c, vm, err) < 0 || snap_check_name(name, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    vm_state st;
    vm_probe(dir, false, &st);
    if (!st.running) {
        _cleanup_free_ char *how = xasprintf("--restore %s", name);
        return running_not(c, vm, how, err);
    }
    int lock = lock_dir(vm, dir, err);
    if (lock < 0)
        return -1;
    qmp *q = open_qmp(c, vm, dir, 5000, err);
    _cleanup_json_ json_t *list = q ? list_in(c, vm, dir, q, err) : NULL;
    _cleanup_free_ char *ram = NULL;   /* before any goto out: the cleanup runs there */
    _cleanup_json_ json_t *fwds = NULL;
    int rc = -1;
    if (!list)
        goto out;
    if (!has_snapshot(list, name)) {
        unknown_snapshot(c, vm, name, list, err);
        goto out;
    }
    unsigned long long ram_bytes;
    ram = ramfile_of_run(dir, st.pid, &ram_bytes);
    if (!is_state_file(dir, name) && !mapped_is(dir, name) && (!ram || older_loads_mapped(c, vm))) {
        disks rd;
        if (running_disks(c, q, &rd, err) < 0)
            goto out;
        bool bad = refuse_shared(c, vm, &rd, err) < 0 || check_unambiguous(c, vm, &rd, name, err) < 0;
        disks_free(&rd);
        if (bad)
            goto out;
        _cleanup_free_ char *line = xasprintf("loadvm %s", name);
        rc = hmp_quiet(q, vm, line, SAVE_TIMEOUT_MS, err);
        ssh_close_master(dir, 2000);   /* its connection died with the old guest state */
        goto out;
    }
    /* a state file, a mapped snapshot (or an older one that does not load into
     * this run's mapped RAM) loads only into a fresh QEMU: restart from it */
    qmp_close(q);
    q = NULL;
    /* the forwards added at run time go with the old QEMU: added again below */
    fwds = forward_list(c, vm, NULL);
    close(lock);
    lock = -1;
    sig_scope ss;
    sig_catch(&ss);
    vm_stop_result sr;
    if (vm_stop(c, vm, 10, true, &sr, err) < 0) {
        sig_release(&ss);
        goto out;
    }
    ssh_close_master(dir, 2000);
    if (sig_caught()) {
        rc = qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: the VM is stopped; `%s start %s --restore %s` starts it "
                     "from the snapshot", vm, config_cli(c), vm, name);
    } else {
        snap_start_opts so = { .restore = name, .launch.deadline_ms = clock_ms() + 60 * 1000 };
        launch_result r;
        rc = start_from(c, vm, &so, &r, err);
        free(r.stderr_tail);
        if (rc == 0)
            rc = forwards_again(c, vm, fwds, err);
    }
    sig_release(&ss);
out:
    qmp_close(q);
    if (lock >= 0)
        close(lock);
    if (rc == 0 && clock)
        snap_clock(c, vm, name, clock_ms() + SNAP_CLOCK_MS, clock);
    return rc;
}

/* "gd has no snapshot 'keep'", and whose the one of that name is. */
static int not_own(const config *c, const char *vm, const char *name, json_t *list, const disks *raw, qq_err *err)
{
    disks mine = { json_incref(raw->qcow2), json_array(), json_deep_copy(raw->lists) };
    _cleanup_json_ json_t *foreign = json_array();
    keep_own(c, vm, &mine, foreign);
    disks_free(&mine);
    size_t i;
    json_t *x;
    json_array_foreach(foreign, i, x) {
        if (strcmp(json_string_value(json_object_get(x, "name")), name) == 0)
            return qq_fail(err, QQ_EXIT_FAIL, "%s has no snapshot '%s': the one on its disk %s is not %s's (%s)", vm,
                           name, json_string_value(json_object_get(x, "disk")), vm,
                           json_string_value(json_object_get(x, "owner")));
    }
    return unknown_snapshot(c, vm, name, list, err);
}

int snap_delete(const config *c, const char *vm, const char *name, qq_err *err)
{
    if (check_vm(c, vm, err) < 0 || snap_check_name(name, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    _cleanup_close_ int lock = lock_dir(vm, dir, err);
    if (lock < 0)
        return -1;
    vm_state st;
    vm_probe(dir, false, &st);
    qmp *q = NULL;
    if (st.running && !(q = open_qmp(c, vm, dir, 5000, err)))
        return -1;
    int rc = -1;
    disks d = { 0 };
    _cleanup_json_ json_t *list = list_in(c, vm, dir, q, err);
    if (!list || (q ? running_disks(c, q, &d, err) : stopped_disks(c, dir, &d)) < 0)
        goto out;
    if (!has_snapshot(list, name)) {
        not_own(c, vm, name, list, &d, err);
        goto out;
    }
    if (mapped_is(dir, name)) {
        rc = mapped_delete(dir, name, err);
        goto out;
    }
    if (is_state_file(dir, name)) {
        rc = remove_state_file(dir, name, err);
        goto out;
    }
    if (refuse_shared(c, vm, &d, err) < 0)
        goto out;
    if (check_unambiguous(c, vm, &d, name, err) < 0)
        goto out;
    if (q) {
        _cleanup_free_ char *line = xasprintf("delvm %s", name);
        rc = hmp_quiet(q, vm, line, SAVE_TIMEOUT_MS, err);
    } else {
        rc = 0;
        size_t i;
        json_t *x;
        json_array_foreach(d.qcow2, i, x) {
            char *args[] = { "snapshot", "-d", (char *)name,
                             (char *)json_string_value(json_object_get(x, "path")), NULL };
            if (snap_qemu_img(c, args, NULL, err) < 0) {
                rc = -1;
                break;
            }
        }
    }
    if (rc == 0)
        rc = snapown_forget(dir, name, err);
out:
    disks_free(&d);
    qmp_close(q);
    return rc;
}

/* ------------------------------------------------------------ start */

/* The QEMU error lines of its stderr log (the last few), for a failed restore. */
static char *qemu_words(const char *dir)
{
    _cleanup_free_ char *p = layout_path(dir, LAYOUT_STDERR);
    sbuf b = SBUF_INIT;
    if (fs_tail(p, 3, &b, NULL) < 0 || b.len == 0) {
        sbuf_free(&b);
        return xstrdup("QEMU gave no reason");
    }
    char *s = sbuf_steal(&b);
    for (char *q = s; *q; q++)
        if (*q == '\n')
            *q = (q[1] ? ' ' : '\0');
    return s;
}

/* Wait until an incoming migration is over: 0 running (or paused), -1 QEMU gave up. */
static int wait_incoming(const char *dir, pid_t pid, long long deadline, qq_err *err)
{
    _cleanup_free_ char *sock = layout_path(dir, LAYOUT_QMP);
    _cleanup_close_ int pidfd = proc_pidfd(pid, NULL);
    for (;;) {
        qq_err e = { 0 };
        qmp *q = qmp_open(sock, 2000, &e);
        json_t *s = q ? qmp_execute(q, "query-status", NULL, 5000, &e) : NULL;
        qmp_close(q);
        const char *status = json_string_value(json_object_get(s, "status"));
        bool done = status && strcmp(status, "inmigrate") != 0;
        /* the state was saved with the VM stopped (a consistent point): it
         * arrives paused */
        if (done && strcmp(status, "paused") == 0) {
            q = qmp_open(sock, 2000, &e);
            json_t *r = q ? qmp_execute(q, "cont", NULL, 5000, &e) : NULL;
            qmp_close(q);
            if (!r) {
                json_decref(s);
                return qq_fail(err, QQ_EXIT_FAIL, "cont after loading the state: %s", e.msg);
            }
            json_decref(r);
        }
        json_decref(s);
        if (done)
            return 0;
        if (sig_caught())
            return qq_fail(err, QQ_EXIT_FAIL, "interrupted");
        if (pidfd < 0 || proc_wait_pidfd(pidfd, 20) == 1)
            return qq_fail(err, QQ_EXIT_FAIL, "QEMU exited");
        if (clock_ms() > deadline)
            return qq_fail(err, QQ_EXIT_FAIL, "the state did not load in time");
    }
}

int snap_start(const config *c, const char *vm, const snap_start_opts *o, launch_result *r, qq_err *err)
{
    sig_scope ss;
    sig_catch(&ss);
    int rc = start_from(c, vm, o, r, err);
    sig_release(&ss);
    return rc;
}

/* An interrupted start from a snapshot: the QEMU it started is stopped
 * (inst: the place it runs in, dir its state dir; a copy goes away). */
static int interrupted_start(const config *c, const char *inst, const char *dir, qq_err *err)
{
    vm_stop_result sr;
    vm_stop(c, inst, 5, true, &sr, NULL);
    ssh_close_master(dir, 2000);
    return qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: the VM is not started", inst);
}

/* snap_start with SIGINT/SIGTERM/SIGHUP caught by the caller. Two dirs:
 * vdir, the VM's own (its snapshots), and rdir, the run's state dir — the
 * VM's own, or a throwaway copy's (copies.h: copies_claim_take is the one
 * answer to "where does this run keep its files"); what a run makes for
 * itself (disk copies, records, logs) goes into rdir. */
static int start_from(const config *c, const char *vm, const snap_start_opts *o, launch_result *r,
                      qq_err *err)
{
    memset(r, 0, sizeof *r);
    if (check_vm(c, vm, err) < 0 || (o->restore && snap_check_name(o->restore, err) < 0))
        return -1;
    _cleanup_free_ char *vdir = config_vm_dir(c, vm);
    if (leftover_repair(vdir, NULL, err) < 0)
        return -1;
    vm_state st;
    vm_probe(vdir, false, &st);
    if (st.running && !o->rm) {
        if (o->restore)
            return qq_fail(err, QQ_EXIT_FAIL, "%s is already running (pid %ld): `%s snapshot restore %s %s` "
                           "returns it to the snapshot in place", vm, (long)st.pid, config_cli(c), vm, o->restore);
        return qq_fail(err, QQ_EXIT_FAIL, "%s is already running (pid %ld)", vm, (long)st.pid);
    }
    /* the VM's own, when it is stopped and free; else a throwaway copy VM#N */
    copies_claim cl = { .lock = -1 };
    if (o->rm) {
        if (copies_claim_take(c, vm, &cl, err) < 0)
            return -1;
    } else {
        cl.name = xstrdup(vm);
        cl.dir = xstrdup(vdir);
    }
    const char *inst = cl.name, *rdir = cl.dir;
    char **extra = NULL, **replace = NULL, **copies = NULL;
    size_t ne = 0, nr = 0, nc = 0;
    bool state_file = false, loadvm = false, started = false, mapped = false;
    mapped_start ms = { 0 };
    int rc = -1;
    launch_opts lo = o->launch;
    lo.lock_held = cl.lock >= 0;
    if (lo.deadline_ms <= 0)
        lo.deadline_ms = clock_ms() + 60 * 1000;
    long long deadline = lo.deadline_ms;
    _cleanup_free_ char *marker = layout_path(rdir, LAYOUT_THROWAWAY);
    if (o->restore) {
        json_t *list = list_in(c, vm, vdir, NULL, err);
        if (!list)
            goto out;
        bool have = has_snapshot(list, o->restore);
        if (!have)
            unknown_snapshot(c, vm, o->restore, list, err);
        json_decref(list);
        if (!have)
            goto out;
        mapped = mapped_is(vdir, o->restore);
        state_file = !mapped && is_state_file(vdir, o->restore);
        if (mapped) {
            if (mapped_prepare_start(c, vm, vdir, rdir, o->restore, o->rm, &ms, err) < 0) {
                if (sig_caught())
                    qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: the VM is not started", inst);
                goto out;
            }
            for (char **e = ms.extra; *e; e++)
                strv_push(&extra, &ne, xstrdup(*e));
            for (char **p = ms.replace; p && *p; p++)
                strv_push(&replace, &nr, xstrdup(*p));
            lo.ram = ms.ram;
        } else if (state_file) {
            _cleanup_free_ char *p = snap_path(vdir, o->restore, ".state");
            sbuf uri = SBUF_INIT;
            sbuf_adds(&uri, "exec:cat '");
            for (const char *s = p; *s; s++)
                sbuf_adds(&uri, *s == '\'' ? "'\\''" : (char[]){ *s, 0 });
            sbuf_adds(&uri, "'");
            strv_push(&extra, &ne, xstrdup("-incoming"));
            strv_push(&extra, &ne, sbuf_steal(&uri));
        } else {
            loadvm = true;
            strv_push(&extra, &ne, xstrdup("-loadvm"));
            strv_push(&extra, &ne, xstrdup(o->restore));
        }
    }
    if (cl.copy && loadvm && st.running && !throwaway_run(vdir, st.pid)) {
        qq_fail(err, QQ_EXIT_FAIL,
                "%s: snapshot '%s' lives inside the disks %s writes now (pid %ld): a copy cannot read them "
                "while it runs; stop it first, or save a mapped snapshot, whose disk layers copies share",
                vm, o->restore, vm, (long)st.pid);
        goto out;
    }
    if (o->rm && loadvm) {
        /* the snapshot must stay visible: a private copy of each disk, not an overlay */
        disks d;
        stopped_disks(c, vdir, &d);
        size_t i;
        json_t *x;
        json_array_foreach(d.qcow2, i, x) {
            /* named for this process: a copy whose qqmgr died is swept (leftover.h) */
            char *copy = leftover_copy_path(rdir, (unsigned)i);
            strv_push(&copies, &nc, copy);
            if (copy_sparse_until(json_string_value(json_object_get(x, "path")), copy, sig_flag(), NULL, err) < 0) {
                if (sig_caught())
                    qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: the VM is not started", inst);
                disks_free(&d);
                goto out;
            }
            chmod(copy, 0600);
            strv_push(&replace, &nr, xstrdup(json_string_value(json_object_get(x, "file"))));
            strv_push(&replace, &nr, xstrdup(copy));
        }
        disks_free(&d);
    } else if (o->rm && !mapped) {
        strv_push(&extra, &ne, xstrdup("-snapshot"));
    }
    lo.extra = extra;
    lo.replace = replace;
    if ((state_file || loadvm) && !older_loads_mapped(c, vm))
        lo.ram.plain = true;   /* its RAM block is QEMU's own: it loads only there */
    fs_remove(marker, NULL);
    if ((state_file || mapped) && leftover_begin(rdir, "restore", o->restore, !lo.paused, NULL, err) < 0)
        goto out;
    if (mapped && leftover_mark(rdir, "deferred", err) < 0)
        goto out;
    if (launch_start(c, inst, &lo, r, err) < 0) {
        if (o->restore && !sig_caught()) {   /* interrupted: launch_start said so */
            _cleanup_free_ char *why = qemu_words(rdir);
            free(r->stderr_tail);   /* its words are in the message */
            r->stderr_tail = NULL;
            qq_fail(err, QQ_EXIT_FAIL, "%s: snapshot '%s' did not load (was the VM's cmd changed since it was saved?): %s",
                    inst, o->restore, why);
        }
        goto out;
    }
    started = true;
    /* QEMU holds the pid file: the place is its now (a stop takes the lock) */
    if (cl.lock >= 0) {
        close(cl.lock);
        cl.lock = -1;
    }
    if (sig_caught()) {
        interrupted_start(c, inst, rdir, err);
        goto out;
    }
    if (o->rm) {
        char pid[32];
        snprintf(pid, sizeof pid, "%ld\n", (long)r->pid);
        fs_write_atomic(marker, pid, strlen(pid), 0600, NULL);
    }
    if (o->restore)
        layout_write(rdir, LAYOUT_RESTORED, o->restore, NULL);
    if (mapped) {
        _cleanup_free_ char *sock = layout_path(rdir, LAYOUT_QMP);
        qq_err e = { 0 };
        if (mapped_incoming(sock, vdir, o->restore, &e) < 0) {
            _cleanup_free_ char *why = qemu_words(rdir);
            vm_stop_result sr;
            vm_stop(c, inst, 5, true, &sr, NULL);
            ssh_close_master(rdir, 2000);
            qq_fail(err, QQ_EXIT_FAIL, "%s: snapshot '%s' did not load: %s (%s)", inst, o->restore, e.msg, why);
            goto out;
        }
        leftover_mark(rdir, "incoming", NULL);   /* from here a killed restore's state still loads */
    }
    if (state_file || mapped) {
        qq_err e = { 0 };
        if (wait_incoming(rdir, r->pid, deadline, &e) < 0) {
            if (sig_caught()) {
                interrupted_start(c, inst, rdir, err);
                goto out;
            }
            _cleanup_free_ char *why = qemu_words(rdir);
            vm_stop_result sr;
            vm_stop(c, inst, 5, true, &sr, NULL);
            ssh_close_master(rdir, 2000);
            qq_fail(err, QQ_EXIT_FAIL, "%s: snapshot '%s' did not load (was the VM's cmd changed since it was saved?): %s",
                    inst, o->restore, why);
            goto out;
        }
        snprintf(r->state, sizeof r->state, "running");
    }
    rc = 0;
out:
    /* (a copy stopped after its start went, its record with it: its N may be another run's now) */
    if ((state_file || mapped) && (rc == 0 || !started || !cl.copy))
        leftover_end(rdir);
    mapped_start_free(&ms);   /* QEMU holds its files open (or never will): their names go */
    /* QEMU holds the copies open (or never will): their names can go now */
    for (char **p = copies; p && *p; p++)
        unlink(*p);
    strv_free(copies);
    strv_free(extra);
    strv_free(replace);
    snprintf(r->instance, sizeof r->instance, "%s", inst);
    /* a copy that did not start leaves nothing (one that started and was
     * stopped again went with its stop) */
    if (rc < 0 && !started)
        copies_claim_undo(c, &cl);
    else
        copies_claim_release(&cl);
    return rc;
}

/* ------------------------------------------------------------ run */

/* Copy what is in the pipe to stdout; *last: the last byte copied. Returns
 * 0 at the end of the pipe, 1 while it may give more. */
static int relay_some(int fd, char *last)
{
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (n == 0)
        return 0;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;   /* stdout gone: the command's output is dropped, the run goes on */
        off += w;
    }
    *last = buf[n - 1];
    return 1;
}

/* Wait up to ms for the process behind pidfd, relaying fd (if >= 0) meanwhile. */
static void wait_relaying(int pidfd, int *fd, char *last, int ms)
{
    if (*fd < 0) {
        if (pidfd >= 0)
            proc_wait_pidfd(pidfd, ms);
        else
            usleep(20 * 1000);
        return;
    }
    struct pollfd p[2] = { { .fd = *fd, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
    if (poll(p, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? ms : 20) > 0 && (p[0].revents & (POLLIN | POLLHUP))
        && relay_some(*fd, last) == 0) {
        close(*fd);
        *fd = -1;
    }
}

int snap_run(const config *c, const char *vm, const snap_run_opts *o, int *status, snap_run_result *res,
             qq_err *err)
{
    *status = 0;
    snap_run_result dummy;
    if (!res)
        res = &dummy;
    memset(res, 0, sizeof *res);
    if (check_vm(c, vm, err) < 0)
        return -1;
    if (config_vm_ssh_port(c, vm) == SSH_PORT_NONE)
        return qq_fail(err, QQ_EXIT_USAGE, "run: VM %s has no ssh port to run the command through: set [vm.%s.ssh] port",
                       vm, vm);
    _cleanup_free_ char *dir = config_vm_dir(c, vm);   /* the run's: the VM's, or its copy's once started */
    vm_state st;
    vm_probe(dir, false, &st);
    if (st.running && !o->rm)
        return qq_fail(err, QQ_EXIT_FAIL, "%s is already running (pid %ld): use `%s ssh %s COMMAND...` "
                       "(run starts and stops its own VM), or `%s run %s --rm` for a throwaway copy", vm,
                       (long)st.pid, config_cli(c), vm, config_cli(c), vm);
    char inst[sizeof ((launch_result *)0)->instance];
    snprintf(inst, sizeof inst, "%s", vm);
    long long t0 = clock_ms(), mark = t0;
    long long deadline = o->timeout_s > 0 ? t0 + (long long)o->timeout_s * 1000 : t0 + 300 * 1000;
    sig_scope ss;
    sig_catch(&ss);
    int rc = -1;
    _cleanup_close_ int pidfd = -1;
    _cleanup_close_ int relay = -1;
    char last = '\n';
    struct sigaction pipe_old;
    bool pipe_saved = false;
    /* a throwaway run's QEMU dies with this process: nothing of it outlives a kill -9 */
    snap_start_opts so = { .restore = o->restore, .rm = o->rm, .launch.deadline_ms = deadline,
                           .launch.die_with_qqmgr = o->rm };
    launch_result r;
    if (start_from(c, vm, &so, &r, err) < 0) {
        free(r.stderr_tail);
        if (!sig_caught() && err->code == QQ_EXIT_FAIL)
            err->code = QQ_EXIT_NOT_READY;
        goto out;
    }
    snprintf(inst, sizeof inst, "%s", r.instance);
    snprintf(res->instance, sizeof res->instance, "%s", r.instance);
    free(dir);
    dir = config_vm_dir(c, inst);
    res->qemu_pid = (long)r.pid;
    res->start_ms = clock_ms() - mark;
    mark += res->start_ms;
    sig_forward_to(r.pid);   /* the QEMU ends at once: the wait sees it gone */
    if (sig_caught())
        kill(r.pid, SIGTERM);
    if (o->restore) {
        guestclock_result gr;
        rc = snap_ready(c, inst, o->restore, "ssh", deadline, false, o->debug, &gr, err);
        if (o->clock)
            *o->clock = gr;
    } else {
        rc = ssh_wait_ready(c, inst, "ssh", deadline, false, o->debug, err);
    }
    sig_forward_to(0);
    if (rc < 0 && !sig_caught()) {
        if (err->code == QQ_EXIT_FAIL)
            err->code = QQ_EXIT_NOT_READY;
        goto out;
    }
    rc = -1;
    if (sig_caught()) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted", inst);
        goto out;
    }
    ssh_target t;
    if (ssh_prepare(c, inst, true, &t, err) < 0 || share_mount(c, inst, o->debug, err) < 0)
        goto out;
    res->ready = true;
    res->ready_ms = clock_ms() - mark;
    mark += res->ready_ms;
    long long cmd_deadline = o->timeout_s > 0 ? deadline : -1;
    int pw = -1;
    if (o->relay_stdout) {
        int pp[2];
        if (pipe2(pp, O_CLOEXEC) < 0) {
            qq_fail_errno(err, "pipe");
            goto out;
        }
        relay = pp[0];
        pw = pp[1];
        /* a reader that goes away must not kill this process before the VM is stopped */
        struct sigaction ign = { .sa_handler = SIG_IGN };
        sigemptyset(&ign.sa_mask);
        pipe_saved = sigaction(SIGPIPE, &ign, &pipe_old) == 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        qq_fail(err, QQ_EXIT_FAIL, "fork: %s", strerror(errno));
        if (pw >= 0)
            close(pw);
        goto out;
    }
    if (pid == 0) {
        if (pw >= 0 && dup2(pw, STDOUT_FILENO) < 0)
            _exit(255);
        if (pipe_saved)
            signal(SIGPIPE, SIG_DFL);
        sig_release(&ss);
        qq_err e = { 0 };
        ssh_exec(&t, o->debug, o->argc, o->argv, &e);
        report_line("qqmgr: %s", e.msg);
        _exit(255);
    }
    if (pw >= 0)
        close(pw);
    pidfd = proc_pidfd(pid, NULL);
    int ws = 0;
    for (;;) {
        if (proc_reap(pid, &ws) == 1)
            break;
        long long left = cmd_deadline < 0 ? 1000 : cmd_deadline - clock_ms();
        if (sig_caught() || left <= 0) {
            kill(pid, SIGTERM);
            if (pidfd >= 0 && proc_wait_pidfd(pidfd, 3000) != 1)
                kill(pid, SIGKILL);
            waitpid(pid, &ws, 0);
            if (sig_caught())
                qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted; the VM is stopped", inst);
            else
                qq_fail(err, QQ_EXIT_FAIL, "%s: the run took longer than %d s; the command and the VM were stopped",
                        inst, o->timeout_s);
            goto out;
        }
        wait_relaying(pidfd, &relay, &last, left > 1000 ? 1000 : (int)left);
    }
    /* what ssh wrote before it ended is in the pipe: copy it (a process ssh
     * left behind holding the pipe is not waited for) */
    if (relay >= 0) {
        fcntl(relay, F_SETFL, O_NONBLOCK);
        while (relay_some(relay, &last) == 1) {
            struct pollfd p = { .fd = relay, .events = POLLIN };
            if (poll(&p, 1, 0) <= 0)
                break;
        }
    }
    if (sig_caught()) {
        /* Ctrl-C reaches ssh too (one process group): it ended first */
        qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted; the VM is stopped", inst);
        goto out;
    }
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
    res->ran = true;
    rc = 0;
out:
    if (res->ready) {
        res->command_ms = clock_ms() - mark;
        mark += res->command_ms;
    }
    if (o->relay_stdout && last != '\n') {
        /* the command's last line ends here: what follows starts a line */
        ssize_t w = write(STDOUT_FILENO, "\n", 1);
        (void)w;
    }
    /* it was not running before: whatever runs now is this run's (and a
     * QEMU ended by an interrupt leaves files for stop to remove) */
    {
        vm_stop_result sr;
        qq_err e = { 0 };
        /* a copy's dir goes with its stop: its ssh master first. A copy someone
         * stopped meanwhile may be another run's by now (its N taken again):
         * only ours is stopped. */
        bool copy = strcmp(inst, vm) != 0;
        pid_t holder = copy ? layout_pid_holder(dir) : 0;
        bool ours = !copy || (pid_t)res->qemu_pid == holder;
        if (copy && ours)
            ssh_close_master(dir, 2000);
        if (copy && holder <= 0)
            copies_sweep(c, vm);   /* our QEMU is gone: the dir too, unless a new claimer holds it */
        /* a throwaway run has nothing to keep: no need to wait for the guest */
        if (res->qemu_pid && ours && vm_stop(c, inst, 30, o->rm, &sr, &e) < 0 && rc == 0)
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s", e.msg);
        if (strcmp(inst, vm) == 0)
            ssh_close_master(dir, 2000);
    }
    if (res->qemu_pid)
        res->stop_ms = clock_ms() - mark;
    if (pipe_saved)
        sigaction(SIGPIPE, &pipe_old, NULL);
    sig_release(&ss);
    return rc;
}
