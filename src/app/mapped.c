/* mapped — see mapped.h. */
#include "mapped.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/clock.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "../infra/copy.h"
#include "../infra/fs.h"
#include "../infra/hash.h"
#include "../infra/proc.h"
#include "../infra/sig.h"
#include "../infra/tree.h"
#include "layout.h"
#include "leftover.h"
#include "ramfile.h"

#define META "meta.json"

static int qemu_img(const config *c, char *const *args, char **out, qq_err *err)
{
    return proc_tool(config_qemu_img(c), "qemu-img", args, out, err);
}

/* A snapshot's dir name: not a temp dir (.NAME.tmp), nothing a path could climb. */
static bool snapshot_dir_name(const char *name)
{
    return name[0] && name[0] != '.' && name[0] != '-' && !strchr(name, '/');
}
#define MIGRATE_TIMEOUT_MS (10 * 60 * 1000)

/* ------------------------------------------------------------ the snapshot dir */

static int snapdir_fd(const char *dir)
{
    _cleanup_free_ char *sd = layout_path(dir, LAYOUT_SNAPSHOTS);
    return tree_open(sd);
}

static json_t *load_meta_at(int dfd, const char *name)
{
    _cleanup_free_ char *f = xasprintf("%s/" META, name);
    _cleanup_close_ int fd = openat(dfd, f, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    json_t *m = fd < 0 ? NULL : json_loadfd(fd, 0, NULL);
    if (m && strcmp(json_string_value(json_object_get(m, "kind")) ?: "", "mapped") != 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

bool mapped_is(const char *dir, const char *name)
{
    _cleanup_close_ int dfd = snapdir_fd(dir);
    if (dfd < 0 || !snapshot_dir_name(name))
        return false;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
        return false;
    _cleanup_json_ json_t *m = load_meta_at(dfd, name);
    return m != NULL;
}

/* The migration stream's "timer" section, as QEMU 2.x–9.x write it: a
 * QEMU_VM_SECTION_FULL header (type 0x04, be32 section id, the id string's
 * length byte and "timer", be32 instance 0, be32 version >= 2), then be64
 * cpu_ticks_offset, 8 unused bytes, be64 cpu_clock_offset. A stopped VM's
 * cpu_clock_offset is its virtual clock (cpu_disable_ticks), and a
 * migration ends with the VM stopped. */
#define TIMER_ID "\x05timer"
#define STATE_SCAN_MAX (64u << 20)

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int mapped_state_vm_clock_at(int dfd, const char *path, double *secs)
{
    _cleanup_close_ int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size < 8 || (unsigned long long)st.st_size > STATE_SCAN_MAX)
        return -1;
    size_t n = (size_t)st.st_size;
    _cleanup_free_ unsigned char *b = xmalloc(n);
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    if (memcmp(b, "QEVM", 4) != 0)
        return -1;
    const size_t id = sizeof TIMER_ID - 1;
    for (unsigned char *at = b; (at = memmem(at, n - (size_t)(at - b), TIMER_ID, id));) {
        size_t off = (size_t)(at - b);
        /* type + section id before; instance, version and three be64 after */
        if (off >= 5 && b[off - 5] == 0x04 && off + id + 8 + 24 <= n && be(at + id, 4) == 0 &&
            be(at + id + 4, 4) >= 2) {
            int64_t ns = (int64_t)be(at + id + 8 + 16, 8);
            if (ns < 0)
                return -1;
            *secs = (double)ns / 1e9;
            return 0;
        }
        at += id;
    }
    return -1;
}

void mapped_list_add(json_t *out, const char *dir)
{
    int dfd = snapdir_fd(dir);
    if (dfd < 0)
        return;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!snapshot_dir_name(de->d_name))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        _cleanup_json_ json_t *m = load_meta_at(dirfd(d), de->d_name);
        if (!m)
            continue;
        char iso[64] = "";
        time_t t = (time_t)json_integer_value(json_object_get(m, "date"));
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
        _cleanup_free_ char *ram = xasprintf("%s/ram", de->d_name);
        _cleanup_free_ char *state = xasprintf("%s/state", de->d_name);
        json_int_t vmsize = (json_int_t)(tree_usage_at(dirfd(d), ram) + tree_usage_at(dirfd(d), state));
        json_t *saved = json_object_get(m, "vm_clock");
        double secs;   /* saved by an older qqmgr (null): read from its state */
        json_t *clock = json_is_number(saved)                                         ? json_incref(saved)
                        : mapped_state_vm_clock_at(dirfd(d), state, &secs) == 0 ? json_real(secs)
                                                                                : json_null();
        json_array_append_new(out, json_pack("{s:s, s:s, s:I, s:o, s:s, s:I}", "name", de->d_name, "date", iso,
                                             "vm_state_size", vmsize, "vm_clock", clock,
                                             "kind", "mapped", "size",
                                             (json_int_t)tree_usage_at(dirfd(d), de->d_name)));
    }
    closedir(d);
}

int mapped_delete(const char *dir, const char *name, qq_err *err)
{
    _cleanup_close_ int dfd = snapdir_fd(dir);
    _cleanup_free_ char *shown = layout_path(dir, LAYOUT_SNAPSHOTS);
    if (dfd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", shown, strerror(errno));
    _cleanup_free_ char *s = xasprintf("%s/%s", shown, name);
    return tree_remove_at(dfd, name, s, err);
}

/* ------------------------------------------------------------ save */

static int set_ignore_shared(qmp *q, bool on, qq_err *err)
{
    _cleanup_json_ json_t *caps = json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "x-ignore-shared",
                                            "state", on);
    json_t *r = qmp_execute(q, "migrate-set-capabilities", caps, 10000, err);
    if (!r)
        return -1;
    json_decref(r);
    return 0;
}

/* Migrate the stopped guest's device state into file; cancelled on a signal. */
static int migrate_to(qmp *q, const char *vm, const char *name, const char *file, qq_err *err)
{
    _cleanup_sbuf_ sbuf uri = SBUF_INIT;
    sbuf_adds(&uri, "exec:cat > ");
    sbuf_add_shell_quoted(&uri, file);
    _cleanup_json_ json_t *args = json_pack("{s:s}", "uri", sbuf_str(&uri));
    json_t *r = qmp_execute(q, "migrate", args, 10000, err);
    if (!r)
        return -1;
    json_decref(r);
    bool cancelled = false;
    for (long long end = clock_ms() + MIGRATE_TIMEOUT_MS;;) {
        if (sig_caught() && !cancelled) {
            json_decref(qmp_execute(q, "migrate_cancel", NULL, 10000, NULL));
            cancelled = true;
        }
        _cleanup_json_ json_t *m = qmp_execute(q, "query-migrate", NULL, 10000, err);
        if (!m)
            return -1;
        const char *s = json_string_value(json_object_get(m, "status")) ?: "";
        if (strcmp(s, "completed") == 0)
            return sig_caught() ? qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: snapshot '%s' was not kept", vm, name)
                                : 0;
        if (strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0) {
            if (sig_caught())
                return qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: snapshot '%s' was not kept", vm, name);
            const char *why = json_string_value(json_object_get(m, "error-desc"));
            return qq_fail(err, QQ_EXIT_FAIL, "%s: saving '%s' failed: %s", vm, name, why ? why : s);
        }
        if (clock_ms() > end)
            return qq_fail(err, QQ_EXIT_FAIL, "%s: saving '%s': the device state was not written in %d s", vm, name,
                           MIGRATE_TIMEOUT_MS / 1000);
        usleep(5 * 1000);
    }
}

static int copy_interruptible(const char *vm, const char *src, const char *dst, qq_err *err)
{
    if (copy_sparse_until(src, dst, sig_flag(), NULL, err) < 0) {
        if (sig_caught())
            qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: nothing was changed", vm);
        return -1;
    }
    return 0;
}

/* A qcow2 layer whose backing file is named relatively (to the disk it was
 * copied from, in dir_of): rebased -u to the absolute path. */
static int absolute_backing(const config *c, const char *layer, const char *disk, qq_err *err)
{
    char *info[] = { "info", "-U", "--output=json", (char *)layer, NULL };
    _cleanup_free_ char *out = NULL;
    if (qemu_img(c, info, &out, err) < 0)
        return -1;
    _cleanup_json_ json_t *j = json_loads(out, 0, NULL);
    const char *b = json_string_value(json_object_get(j, "backing-filename"));
    if (!b || b[0] == '/' || strstr(b, ":"))
        return 0;
    const char *slash = strrchr(disk, '/');
    _cleanup_free_ char *abs = slash ? xasprintf("%.*s/%s", (int)(slash - disk), disk, b) : xstrdup(b);
    const char *fmt = json_string_value(json_object_get(j, "backing-filename-format"));
    char *with_fmt[] = { "rebase", "-u", "-b", abs, "-F", (char *)fmt, (char *)layer, NULL };
    char *without[] = { "rebase", "-u", "-b", abs, (char *)layer, NULL };
    return qemu_img(c, fmt ? with_fmt : without, NULL, err);
}

/* The files of the snapshot dir tmp for meta.json's "files". */
static json_t *files_of(const char *tmp)
{
    json_t *files = json_array();
    DIR *d = opendir(tmp);
    if (!d)
        return files;
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        json_t *f = json_pack("{s:s, s:I}", "name", de->d_name, "size", (json_int_t)st.st_size);
        if (strcmp(de->d_name, "state") == 0) {
            _cleanup_free_ char *p = xasprintf("%s/%s", tmp, de->d_name);
            char hex[HASH_HEX_LEN + 1];
            if (hash_file(p, hex, NULL) == 0)
                json_object_set_new(f, "sha256", json_string(hex));
        }
        json_array_append_new(files, f);
    }
    closedir(d);
    return files;
}

/* Everything of the save between the stop and the rename, into tmp. */
static int save_into(const config *c, const char *vm, const char *dir, qmp *q, pid_t pid, const char *name,
                     json_t *disks, const char *tmp, qq_err *err)
{
    unsigned long long bytes = 0;
    _cleanup_free_ char *ram = ramfile_of_run(dir, pid, &bytes);
    if (!ram)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: its RAM file is not found any more (/proc/%ld/fd)", vm, (long)pid);
    _cleanup_free_ char *state = xasprintf("%s/state", tmp);
    if (set_ignore_shared(q, true, err) < 0)
        return -1;
    _cleanup_json_ json_t *params = json_pack("{s:I}", "max-bandwidth", (json_int_t)1 << 40);
    json_decref(qmp_execute(q, "migrate-set-parameters", params, 10000, NULL));
    if (migrate_to(q, vm, name, state, err) < 0)
        return -1;
    chmod(state, 0600);   /* the shell made it with the umask */
    double clock;
    bool have_clock = mapped_state_vm_clock_at(AT_FDCWD, state, &clock) == 0;
    _cleanup_free_ char *ramcopy = xasprintf("%s/ram", tmp);
    if (copy_interruptible(vm, ram, ramcopy, err) < 0)
        return -1;
    if (truncate(ramcopy, (off_t)bytes) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", ramcopy, strerror(errno));
    json_t *meta_disks = json_array();
    _cleanup_json_ json_t *md = json_pack("{s:s, s:s, s:I, s:o, s:I, s:o}", "kind", "mapped", "vm", vm, "date",
                                          (json_int_t)time(NULL), "vm_clock",
                                          have_clock ? json_real(clock) : json_null(), "ram_size",
                                          (json_int_t)bytes, "disks", meta_disks);
    size_t i;
    json_t *x;
    json_array_foreach(disks, i, x) {
        const char *path = json_string_value(json_object_get(x, "path"));
        const char *fmt = json_string_value(json_object_get(x, "format"));
        _cleanup_free_ char *layer = xasprintf("disk%zu.%s", i, fmt);
        _cleanup_free_ char *dst = xasprintf("%s/%s", tmp, layer);
        if (copy_interruptible(vm, path, dst, err) < 0)
            return -1;
        if (strcmp(fmt, "qcow2") == 0 && absolute_backing(c, dst, path, err) < 0)
            return -1;
        chmod(dst, 0400);
        json_array_append_new(meta_disks, json_pack("{s:O, s:s, s:s}", "file", json_object_get(x, "file"), "layer",
                                                    layer, "format", fmt));
    }
    vm_spec s;
    if (config_vm(c, vm, layout_read_port(dir), &s, err) < 0)
        return -1;
    json_t *args = json_array();
    for (size_t k = 0; k < s.nargs; k++)
        json_array_append_new(args, json_string(s.args[k]));
    vm_spec_free(&s);
    json_object_set_new(md, "args", args);
    json_object_set_new(md, "files", files_of(tmp));
    _cleanup_free_ char *text = json_dumps(md, JSON_INDENT(2));
    _cleanup_free_ char *metap = xasprintf("%s/" META, tmp);
    return fs_write_atomic(metap, text, strlen(text), 0600, err);
}

int mapped_save(const config *c, const char *vm, const char *dir, qmp *q, pid_t pid, const char *name,
                json_t *disks, bool was_running, qq_err *err)
{
    _cleanup_free_ char *sd = layout_path(dir, LAYOUT_SNAPSHOTS);
    _cleanup_close_ int dfd = tree_open(sd);
    if (dfd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", sd, strerror(errno));
    _cleanup_free_ char *tmpname = xasprintf(".%s.tmp", name);
    _cleanup_free_ char *tmp = xasprintf("%s/%s", sd, tmpname);
    if (tree_remove_at(dfd, tmpname, tmp, err) < 0)
        return -1;
    /* a qqmgr killed from here on leaves this record: the next command
     * removes tmp and lets the guest run (leftover.h) */
    if (leftover_begin(dir, "save", name, was_running, tmp, err) < 0)
        return -1;
    int rc = -1;
    if (mkdirat(dfd, tmpname, 0700) < 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (was_running) {
        json_t *r = qmp_execute(q, "stop", NULL, 10000, err);
        if (!r)
            goto out;
        json_decref(r);
    }
    if (save_into(c, vm, dir, q, pid, name, disks, tmp, err) < 0)
        goto out;
    if (sig_caught()) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: snapshot '%s' was not kept", vm, name);
        goto out;
    }
    struct stat st;
    bool replace = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    /* one step: the old one (if any) and the new one change places */
    if (renameat2(dfd, tmpname, dfd, name, replace ? RENAME_EXCHANGE : RENAME_NOREPLACE) < 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s/%s: %s", sd, name, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    tree_remove_at(dfd, tmpname, tmp, NULL);   /* the partial one, or the replaced one */
    qq_err e = { 0 };
    set_ignore_shared(q, false, NULL);   /* a later savevm must write the RAM */
    if (leftover_resume(q, was_running, &e) < 0 && rc == 0)
        rc = qq_fail(err, QQ_EXIT_FAIL, "%s: after saving '%s': %s", vm, name, e.msg);
    leftover_end(dir);
    return rc;
}

/* ------------------------------------------------------------ restore */

void mapped_start_free(mapped_start *ms)
{
    strv_free(ms->extra);
    strv_free(ms->replace);
    for (char **p = ms->unlink; p && *p; p++)
        unlink(*p);
    strv_free(ms->unlink);
    free(ms->ram_file);
    memset(ms, 0, sizeof *ms);
}

static char *absolute(const config *c, const char *file)
{
    if (file[0] == '/' || !config_dir(c))
        return xstrdup(file);
    return xasprintf("%s/%s", config_dir(c), file);
}

int mapped_prepare_start(const config *c, const char *vm, const char *dir, const char *run_dir, const char *name,
                         bool throwaway, mapped_start *ms, qq_err *err)
{
    memset(ms, 0, sizeof *ms);
    size_t ne = 0, nr = 0, nu = 0;
    _cleanup_close_ int dfd = snapdir_fd(dir);
    _cleanup_json_ json_t *m = dfd >= 0 ? load_meta_at(dfd, name) : NULL;
    _cleanup_free_ char *sd = layout_path(dir, LAYOUT_SNAPSHOTS);
    if (!m)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: snapshot '%s': %s/%s/" META " is missing or unreadable", vm, name, sd,
                       name);
    vm_spec s;
    if (config_vm(c, vm, 0, &s, err) < 0)
        return -1;
    json_t *disks = json_object_get(m, "disks");
    size_t i;
    json_t *x;
    int rc = 0;
    json_array_foreach(disks, i, x) {
        const char *file = json_string_value(json_object_get(x, "file")) ?: "";
        bool used = false;
        for (size_t k = 0; k < s.nargs && !used; k++)
            used = *file && strstr(s.args[k], file) != NULL;
        if (!used)
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s: snapshot '%s' has disk %s, which the VM's cmd no longer uses (was "
                         "the cmd changed since the save?)", vm, name, file);
    }
    vm_spec_free(&s);
    if (rc < 0)
        return -1;
    strv_push(&ms->extra, &ne, xstrdup("-incoming"));
    strv_push(&ms->extra, &ne, xstrdup("defer"));
    _cleanup_strv_ char **tmps = NULL;   /* own run: copies of the layers, renamed over the disks at the end */
    _cleanup_strv_ char **targets = NULL;   /* the disk each of tmps replaces */
    size_t nt = 0, ng = 0;
    bool recorded = false;
    _cleanup_free_ char *ram = xasprintf("%s/%s/ram", sd, name);   /* before any goto fail */
    if (!throwaway) {
        /* every name first, and the record of them before the first byte is
         * copied: a qqmgr killed from here on leaves nothing the next
         * command does not finish or remove (leftover.h) */
        json_array_foreach(disks, i, x) {
            char *disk = absolute(c, json_string_value(json_object_get(x, "file")) ?: "");
            _cleanup_free_ char *other = layout_running_user(config_state_dir(c), vm, disk);
            if (other) {
                qq_fail(err, QQ_EXIT_FAIL, "%s: its disk %s is in use by running VM %s; restoring '%s' would write "
                        "it under that VM: stop %s first (or restore a throwaway copy with --rm)", vm, disk, other,
                        name, other);
                free(disk);
                goto fail;
            }
            strv_push(&tmps, &nt, layout_beside(disk, ".restore.tmp"));
            strv_push(&targets, &ng, disk);
        }
        if (nt) {
            if (leftover_begin(run_dir, "restore", name, true, NULL, err) < 0 ||
                leftover_note_replace(run_dir, tmps, targets, err) < 0)
                goto fail;
            recorded = true;
        }
    }
    json_array_foreach(disks, i, x) {
        const char *file = json_string_value(json_object_get(x, "file")) ?: "";
        const char *fmt = json_string_value(json_object_get(x, "format")) ?: "raw";
        _cleanup_free_ char *layer = xasprintf("%s/%s/%s", sd, name, json_string_value(json_object_get(x, "layer")) ?: "?");
        if (throwaway) {
            /* named for this process: a copy whose qqmgr died is swept (leftover.h) */
            char *own = leftover_copy_path(run_dir, (unsigned)i);
            strv_push(&ms->unlink, &nu, own);
            if (strcmp(fmt, "qcow2") == 0) {
                char *args[] = { "create", "-q", "-f", "qcow2", "-b", layer, "-F", "qcow2", own, NULL };
                rc = qemu_img(c, args, NULL, err);
            } else {
                rc = copy_interruptible(vm, layer, own, err);
            }
            if (rc < 0)
                goto fail;
            chmod(own, 0600);
            strv_push(&ms->replace, &nr, xstrdup(file));
            strv_push(&ms->replace, &nr, xstrdup(own));
        } else {
            if (copy_interruptible(vm, layer, tmps[i], err) < 0)
                goto fail;
            chmod(tmps[i], 0600);
        }
    }
    if (throwaway) {
        ms->ram_file = xstrdup(ram);
        ms->ram.private_map = true;
    } else {
        unsigned long long bytes = (unsigned long long)json_integer_value(json_object_get(m, "ram_size"));
        if (!(ms->ram_file = ramfile_new_path(err)))
            goto fail;
        struct statvfs vfs;
        _cleanup_free_ char *rd = ramfile_dir();
        if (statvfs(rd, &vfs) == 0 && (unsigned long long)vfs.f_bavail * vfs.f_frsize < bytes) {
            qq_fail(err, QQ_EXIT_FAIL, "%s: %s has %llu MiB free, less than the snapshot's RAM (%llu MiB)", vm, rd,
                    (unsigned long long)vfs.f_bavail * vfs.f_frsize >> 20, bytes >> 20);
            goto fail;
        }
        strv_push(&ms->unlink, &nu, xstrdup(ms->ram_file));
        if (copy_interruptible(vm, ram, ms->ram_file, err) < 0)
            goto fail;
        /* every copy made: the disks change now, all of them (a qqmgr killed
         * among the renames: the next command does the rest) */
        if (recorded && leftover_mark(run_dir, "renaming", err) < 0)
            goto fail;
        for (size_t k = 0; k < nt; k++)
            if (rename(tmps[k], targets[k]) < 0) {
                qq_fail(err, QQ_EXIT_FAIL, "%s: %s", targets[k], strerror(errno));
                goto fail;
            }
    }
    ms->ram.file = ms->ram_file;
    return 0;
fail:
    for (char **t = tmps; t && *t; t++)
        unlink(*t);
    if (recorded)
        leftover_end(run_dir);
    mapped_start_free(ms);
    return -1;
}

int mapped_incoming(const char *sock, const char *dir, const char *name, qq_err *err)
{
    qmp *q = qmp_open(sock, 5000, err);
    if (!q)
        return -1;
    _cleanup_free_ char *sd = layout_path(dir, LAYOUT_SNAPSHOTS);
    _cleanup_free_ char *state = xasprintf("%s/%s/state", sd, name);
    _cleanup_sbuf_ sbuf uri = SBUF_INIT;
    sbuf_adds(&uri, "exec:cat ");
    sbuf_add_shell_quoted(&uri, state);
    _cleanup_json_ json_t *args = json_pack("{s:s}", "uri", sbuf_str(&uri));
    int rc = set_ignore_shared(q, true, err);
    json_t *r = rc == 0 ? qmp_execute(q, "migrate-incoming", args, 10000, err) : NULL;
    if (!r)
        rc = -1;
    json_decref(r);
    qmp_close(q);
    return rc;
}
