/* reclaim — rm, img rm, prune (see reclaim.h). */
#include "reclaim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/clock.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "../infra/lockfile.h"
#include "../infra/download.h"
#include "../infra/fs.h"
#include "../infra/sig.h"
#include "../infra/tree.h"
#include "copies.h"
#include "img.h"
#include "layout.h"
#include "leftover.h"
#include "snapshot.h"
#include "ssh.h"
#include "vm.h"

/* ------------------------------------------------------------ dirs */

/* Remove a VM or image dir whose lock we hold: everything but the lock
 * file, then the lock file, then the dir. A start or build waiting on the
 * lock then holds the lock of a removed file and finds no dir. */
static int remove_locked_dir(const char *dir, qq_err *err)
{
    _cleanup_close_ int fd = tree_open(dir);
    if (fd < 0)
        return errno == ENOENT ? 0 : qq_fail(err, QQ_EXIT_FAIL, "remove %s: %s", dir, strerror(errno));
    if (tree_remove_contents(fd, layout_name(LAYOUT_LOCK), dir, err) < 0)
        return -1;
    if (unlinkat(fd, layout_name(LAYOUT_LOCK), 0) < 0 && errno != ENOENT)
        return qq_fail(err, QQ_EXIT_FAIL, "remove %s/%s: %s", dir, layout_name(LAYOUT_LOCK), strerror(errno));
    if (rmdir(dir) < 0 && errno != ENOENT)
        return qq_fail(err, QQ_EXIT_FAIL, "remove %s: %s", dir, strerror(errno));
    return 0;
}

/* Is path a symlink (or not a directory)? Such an entry is removed as a name. */
static bool is_real_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void reclaim_result_free(reclaim_result *r)
{
    free(r->path);
    r->path = NULL;
    json_decref(r->others);
    r->others = NULL;
}

/* ------------------------------------------------------------ rm VM */

/* The VM's snapshots: those inside its qcow2 disks (which may live outside
 * its dir, in an image's dir) are deleted from the disks; state files go with
 * the dir anyway. Only when the VM has a snapshots dir. */
static int delete_snapshots(const config *c, const char *name, const char *dir, int *count, json_t **others,
                            qq_err *err)
{
    _cleanup_free_ char *sdir = layout_path(dir, LAYOUT_SNAPSHOTS);
    if (!is_real_dir(sdir))
        return 0;
    _cleanup_json_ json_t *list = snap_list(c, name, err);
    if (!list) {
        qq_err_prefix(err, "rm %s: its snapshots", name);
        return -1;
    }
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x) {
        const char *snap = json_string_value(json_object_get(x, "name"));
        if (!snap)
            continue;
        if (snap_delete(c, name, snap, err) < 0) {
            qq_err_prefix(err, "rm %s: snapshot %s", name, snap);
            return -1;
        }
        (*count)++;
    }
    *others = snap_foreign(c, name, err);   /* named, never deleted */
    if (!*others) {
        qq_err_prefix(err, "rm %s: the other snapshots on its disks", name);
        return -1;
    }
    return 0;
}

int reclaim_vm(const config *c, const char *name, bool force, int timeout_s, reclaim_result *r, qq_err *err)
{
    memset(r, 0, sizeof *r);
    if (config_check_vm(c, name, err) < 0)
        return -1;
    if (config_copy_parse(name, NULL, NULL, NULL) == 1)
        return qq_fail(err, QQ_EXIT_USAGE, "rm %s: a throwaway copy goes away when it stops (%s stop '%s')", name,
                       config_cli(c), name);
    r->path = config_vm_dir(c, name);
    const char *dir = r->path;
    struct stat st;
    if (lstat(dir, &st) < 0)
        return 0;
    r->existed = true;
    if (!S_ISDIR(st.st_mode)) {    /* a symlink or a stray file: the name only */
        r->bytes = tree_usage(dir);
        return fs_remove(dir, err);
    }
    _cleanup_free_ char *why = NULL;
    if (!layout_owned(dir, "vm", name, config_path(c), &why))
        return qq_fail(err, QQ_EXIT_FAIL, "rm %s: left alone: %s", name, why);
    /* its throwaway copies (copies.h): running ones are refused, or stopped with --force */
    size_t ncopies = 0;
    _cleanup_strv_ char **copies = copies_of(c, name, &ncopies);
    for (size_t i = 0; i < ncopies; i++) {
        if (!force)
            return qq_fail(err, QQ_EXIT_FAIL,
                           "VM %s has %zu throwaway cop%s running (%s%s): stop %s first (%s stop %s --all) or use "
                           "%s rm %s --force", name, ncopies, ncopies == 1 ? "y" : "ies", copies[0],
                           ncopies > 1 ? ", …" : "", ncopies == 1 ? "it" : "them", config_cli(c), name,
                           config_cli(c), name);
        vm_stop_result sr;
        if (vm_stop(c, copies[i], timeout_s, true, &sr, err) < 0)
            return -1;
        r->was_running |= sr.was_running;
    }
    bool snaps_done = false;
    /* the VM's lock is waited for until --timeout (timeout_s) from now */
    long long deadline = clock_ms() + (long long)timeout_s * 1000;
    for (int round = 0;; round++) {
        int lock = layout_lock_vm(name, dir, "rm", deadline, timeout_s, "--timeout", err);
        if (lock < 0)
            return -1;
        pid_t pid = layout_pid_holder(dir);
        if (pid <= 0 && !snaps_done) {
            close(lock);   /* snap_delete takes it itself */
            if (delete_snapshots(c, name, dir, &r->snapshots, &r->others, err) < 0)
                return -1;
            snaps_done = true;
            continue;
        }
        if (pid <= 0) {
            layout_remove_runtime(dir);   /* the socket-dir symlink in the runtime dir */
            r->bytes = tree_usage(dir);
            int rc = remove_locked_dir(dir, err);
            close(lock);
            return rc;
        }
        close(lock);   /* vm_stop takes it itself */
        if (!force || round > 0)
            return qq_fail(err, QQ_EXIT_FAIL,
                           "VM %s is running (pid %ld): stop it first (%s stop %s) or use %s rm %s --force", name,
                           (long)pid, config_cli(c), name, config_cli(c), name);
        vm_stop_result sr;
        if (vm_stop(c, name, timeout_s, true, &sr, err) < 0)
            return -1;
        if (sr.was_running) {
            r->was_running = true;
            ssh_close_master(dir, SSH_CLOSE_MASTER_MS);
        }
    }
}

/* ------------------------------------------------------------ img rm */

int reclaim_img(const config *c, const char *name, bool force, reclaim_result *r, qq_err *err)
{
    memset(r, 0, sizeof *r);
    img_spec s;
    if (config_img(c, name, &s, err) < 0)
        return -1;
    r->path = xstrdup(s.dir);
    _cleanup_free_ char *path = xstrdup(s.path);
    img_spec_free(&s);
    const char *dir = r->path;
    struct stat st;
    if (lstat(dir, &st) < 0)
        return 0;
    r->existed = true;
    if (!S_ISDIR(st.st_mode)) {
        r->bytes = tree_usage(dir);
        return fs_remove(dir, err);
    }
    _cleanup_free_ char *why = NULL;
    if (!layout_owned(dir, "img", name, config_path(c), &why))
        return qq_fail(err, QQ_EXIT_FAIL, "img rm %s: left alone: %s", name, why);
    if (!force && fs_exists(path)) {
        _cleanup_free_ char *snaps = snap_names_in_image(c, path);
        if (snaps) {
            return qq_fail(err, QQ_EXIT_FAIL,
                           "img %s: its disk holds snapshots that removing it would lose: %s (%s img rm %s --force "
                           "removes it anyway)",
                           name, snaps, config_cli(c), name);
        }
    }
    _cleanup_close_ int lock = layout_lock(dir, 0, NULL);
    if (lock < 0) {
        if (errno == EWOULDBLOCK)
            return qq_fail(err, QQ_EXIT_FAIL,
                           "img %s: it is being built, or a VM using it is starting; try again when that is done",
                           name);
        return qq_fail(err, QQ_EXIT_FAIL, "img %s: lock %s: %s", name, dir, strerror(errno));
    }
    _cleanup_free_ char *vm = img_running_user(c, name);
    if (vm)
        return qq_fail(err, QQ_EXIT_FAIL, "img %s: VM %s is running and uses this image; stop it first: %s stop %s",
                       name, vm, config_cli(c), vm);
    r->bytes = tree_usage(dir);
    return remove_locked_dir(dir, err);
}

/* ------------------------------------------------------------ prune */

static void add_entry(json_t *entries, const char *kind, const char *name, const char *path,
                      unsigned long long bytes, bool removed, const char *kept)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:b}", "kind", kind, "name", name, "path", path, "bytes",
                          (json_int_t)bytes, "removed", removed);
    json_object_set_new(o, "kept", kept ? json_string(kept) : json_null());
    json_array_append_new(entries, o);
}

static bool config_has_img(const config *c, const char *name)
{
    for (size_t i = 0; i < config_img_count(c); i++)
        if (strcmp(config_img_name(c, i), name) == 0)
            return true;
    return false;
}

static int prune_vm_dir(const config *c, const reclaim_prune_opts *o, const char *name, const char *path, json_t *entries,
                        unsigned long long *total, qq_err *err)
{
    unsigned long long bytes = tree_usage(path);
    if (!is_real_dir(path)) {   /* a symlink or a file under that name: the name only */
        if (!o->dry_run && fs_remove(path, err) < 0)
            return -1;
        add_entry(entries, "vm", name, path, bytes, !o->dry_run, NULL);
        *total += bytes;
        return 0;
    }
    _cleanup_free_ char *whose = NULL;
    if (!layout_owned(path, "vm", name, config_path(c), &whose)) {
        add_entry(entries, "vm", name, path, bytes, false, whose);
        return 0;
    }
    _cleanup_close_ int lock = o->dry_run ? -1 : layout_lock(path, 0, NULL);
    if (!o->dry_run && lock < 0) {
        add_entry(entries, "vm", name, path, bytes, false,
                  errno == EWOULDBLOCK ? "busy (a start or stop holds its lock)" : strerror(errno));
        return 0;
    }
    pid_t pid = layout_pid_holder(path);
    if (pid > 0) {
        _cleanup_free_ char *why = xasprintf("running (pid %ld)", (long)pid);
        add_entry(entries, "vm", name, path, bytes, false, why);
        return 0;
    }
    size_t ncopies = 0;
    _cleanup_strv_ char **copies = o->dry_run ? NULL : copies_of(c, name, &ncopies);
    if (ncopies) {
        _cleanup_free_ char *why = xasprintf("its throwaway copy %s runs", copies[0]);
        add_entry(entries, "vm", name, path, bytes, false, why);
        return 0;
    }
    if (!o->dry_run) {
        layout_remove_runtime(path);
        if (remove_locked_dir(path, err) < 0)
            return -1;
    }
    add_entry(entries, "vm", name, path, bytes, !o->dry_run, NULL);
    *total += bytes;
    return 0;
}

static int prune_img_dir(const config *c, const reclaim_prune_opts *o, const char *name, const char *path,
                         json_t *entries, unsigned long long *total, qq_err *err)
{
    unsigned long long bytes = tree_usage(path);
    if (!is_real_dir(path)) {
        if (!o->dry_run && fs_remove(path, err) < 0)
            return -1;
        add_entry(entries, "img", name, path, bytes, !o->dry_run, NULL);
        *total += bytes;
        return 0;
    }
    _cleanup_free_ char *whose = NULL;
    if (!layout_owned(path, "img", name, config_path(c), &whose)) {
        add_entry(entries, "img", name, path, bytes, false, whose);
        return 0;
    }
    _cleanup_close_ int lock = o->dry_run ? -1 : layout_lock(path, 0, NULL);
    if (!o->dry_run && lock < 0) {
        add_entry(entries, "img", name, path, bytes, false,
                  errno == EWOULDBLOCK ? "busy (being built, or a VM using it is starting)" : strerror(errno));
        return 0;
    }
    _cleanup_free_ char *prefix = xasprintf("%s/", path);
    _cleanup_free_ char *vm = layout_running_user(config_state_dir(c), NULL, prefix);
    if (vm) {
        _cleanup_free_ char *why = xasprintf("used by running VM %s", vm);
        add_entry(entries, "img", name, path, bytes, false, why);
        return 0;
    }
    if (!o->dry_run && remove_locked_dir(path, err) < 0)
        return -1;
    add_entry(entries, "img", name, path, bytes, !o->dry_run, NULL);
    *total += bytes;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The throwaway copies a killed `start --rm --restore` left in a VM's dir
 * (leftover.h); the VM itself stays. */
typedef struct dead_copy_acc {
    json_t *entries;
    const char *vm;
    unsigned long long *total;
} dead_copy_acc;

static void add_dead_copy(void *arg, const char *copy_dir, unsigned long long bytes, bool removed)
{
    dead_copy_acc *a = arg;
    add_entry(a->entries, "copy", a->vm, copy_dir, bytes, removed, NULL);
    *a->total += bytes;
}

static void prune_dead_copies(const config *c, const reclaim_prune_opts *o, const char *vm, const char *dir,
                              json_t *entries, unsigned long long *total)
{
    /* the throwaway copies VM#N whose qqmgr and QEMU are gone (copies.h) */
    dead_copy_acc acc = { .entries = entries, .vm = vm, .total = total };
    copies_sweep_each(c, vm, o->dry_run, add_dead_copy, &acc);
    _cleanup_json_ json_t *dead = leftover_dead_copies(dir);
    size_t i;
    json_t *x;
    json_array_foreach(dead, i, x) {
        const char *p = json_string_value(json_object_get(x, "path"));
        unsigned long long bytes = (unsigned long long)json_integer_value(json_object_get(x, "bytes"));
        bool removed = !o->dry_run && unlink(p) == 0;
        add_entry(entries, "throwaway", vm, p, bytes, removed, o->dry_run || removed ? NULL : strerror(errno));
        *total += bytes;
    }
}

static int prune_state(const config *c, const reclaim_prune_opts *o, json_t *entries, unsigned long long *total,
                       qq_err *err)
{
    const char *sd = config_state_dir(c);
    DIR *d = opendir(sd);
    if (!d)
        return errno == ENOENT ? 0 : qq_fail(err, QQ_EXIT_FAIL, "%s: %s", sd, strerror(errno));
    _cleanup_strv_ char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, "vm.", 3) == 0 || strncmp(e->d_name, "img.", 4) == 0)
            strv_push(&names, &n, xstrdup(e->d_name));
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        const char *entry = names[i];
        _cleanup_free_ char *path = xasprintf("%s/%s", sd, entry);
        int rc = 0;
        if (strncmp(entry, "vm.", 3) == 0) {
            const char *vm = entry + 3;
            if (*vm && !config_has_vm(c, vm))
                rc = prune_vm_dir(c, o, vm, path, entries, total, err);
            else if (*vm)
                prune_dead_copies(c, o, vm, path, entries, total);
        } else {
            const char *img = entry + 4;
            if (*img && !config_has_img(c, img))
                rc = prune_img_dir(c, o, img, path, entries, total, err);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

static bool is_hex64(const char *s, size_t len)
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* The last use of <hex> and <hex>.part: the newest atime or mtime; -1 if neither exists. */
static time_t last_use(int dfd, const char *hex)
{
    time_t t = -1;
    static const char *const suffixes[] = { "", ".part" };
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *name = xasprintf("%s%s", hex, suffixes[i]);
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (st.st_atime > t)
            t = st.st_atime;
        if (st.st_mtime > t)
            t = st.st_mtime;
    }
    return t;
}

/* Take <hex>.lock as download.c does (lockfile.h), without waiting: -1 when a
 * download holds it. With peek (dry
 * run) only an existing lock file is tried, and nothing is created. */
static int cache_lock(int dfd, const char *hex, bool peek)
{
    _cleanup_free_ char *name = xasprintf("%s.lock", hex);
    lockfile_opts o = { .no_create = peek, .mode = 0644 };
    int fd = lockfile_take_at(dfd, name, &o, NULL);
    if (fd < 0)
        return peek && errno == ENOENT ? -2 : -1;
    return fd;
}

static int prune_cache(const reclaim_prune_opts *o, json_t *entries, unsigned long long *total, qq_err *err)
{
    _cleanup_free_ char *dflt = NULL;
    const char *cdir = o->cache_dir;
    if (!cdir) {
        dflt = download_cache_dir(err);
        if (!dflt)
            return -1;
        cdir = dflt;
    }
    _cleanup_close_ int dfd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : qq_fail(err, QQ_EXIT_FAIL, "%s: %s", cdir, strerror(errno));
    DIR *d = opendir(cdir);
    if (!d)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", cdir, strerror(errno));
    _cleanup_strv_ char **hexes = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".part") == 0)
            len -= 5;
        if (!is_hex64(e->d_name, len))
            continue;   /* .ok, .lock: go with their file; other names are not ours */
        _cleanup_free_ char *hex = xstrndup(e->d_name, len);
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(hexes[i], hex) == 0;
        if (!dup)
            strv_push(&hexes, &n, xstrdup(hex));
    }
    closedir(d);
    if (n)
        qsort(hexes, n, sizeof *hexes, cmp_str);
    long days = o->days > 1000000 ? 1000000 : o->days;   /* more than 2700 years: none is that old */
    time_t cutoff = time(NULL) - (time_t)days * 86400;
    for (size_t i = 0; i < n; i++) {
        const char *hex = hexes[i];
        time_t used = last_use(dfd, hex);
        if (used < 0 || used > cutoff)
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s", cdir, hex);
        _cleanup_free_ char *part = xasprintf("%s.part", hex), *ok = xasprintf("%s.ok", hex),
                            *lockn = xasprintf("%s.lock", hex);
        unsigned long long bytes = tree_usage_at(dfd, hex) + tree_usage_at(dfd, part) + tree_usage_at(dfd, ok);
        int lock = cache_lock(dfd, hex, o->dry_run);
        if (lock == -1) {
            add_entry(entries, "cache", hex, path, bytes, false, "being downloaded");
            continue;
        }
        if (!o->dry_run) {
            const char *names[] = { hex, part, ok };
            for (size_t k = 0; k < 3; k++)
                if (unlinkat(dfd, names[k], 0) < 0 && errno != ENOENT) {
                    int e = errno;
                    unlinkat(dfd, lockn, 0);
                    close(lock);
                    return qq_fail(err, QQ_EXIT_FAIL, "remove %s/%s: %s", cdir, names[k], strerror(e));
                }
            unlinkat(dfd, lockn, 0);   /* while holding it: a waiter notices and retries */
        }
        if (lock >= 0)
            close(lock);
        add_entry(entries, "cache", hex, path, bytes, !o->dry_run, NULL);
        *total += bytes;
    }
    return 0;
}

int reclaim_prune(const config *c, const reclaim_prune_opts *o, json_t **report, qq_err *err)
{
    *report = NULL;
    json_t *entries = json_array();
    unsigned long long total = 0;
    if (prune_state(c, o, entries, &total, err) < 0 || (o->cache && prune_cache(o, entries, &total, err) < 0)) {
        json_decref(entries);
        return -1;
    }
    *report = json_pack("{s:b, s:I, s:o}", "dry_run", o->dry_run, "bytes", (json_int_t)total, "entries", entries);
    return 0;
}
