/* mapped — see mapped.h. */
#include "mapped.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
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
#include "../infra/rundir.h"
#include "../infra/sig.h"
#include "../infra/tree.h"
#include "layout.h"
#include "leftover.h"
#include "snapshot.h"

#define META "meta.json"
#define MIGRATE_TIMEOUT_MS (10 * 60 * 1000)

/* ------------------------------------------------------------ the RAM */

static char *option_value(const char *opts, const char *key);

/* A QEMU size: a number (fractions allowed) with an optional unit K M G T
 * (plain: MiB, as -m reads it). */
static int parse_size(const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    if (errno || end == v || n <= 0)
        return -1;
    double mul = 1024.0 * 1024;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    case 'b': case 'B': mul = 1; end++; break;
    default: break;
    }
    if (*end)
        return -1;
    *out = (unsigned long long)(n * mul);
    return *out ? 0 : -1;
}

static char *ram_dir(void)
{
    return xasprintf("/dev/shm/qqmgr-%u", (unsigned)geteuid());
}

/* RAM_DIR made (0700) and checked: 0, or -1 with err. */
static int ram_dir_ready(const char *d, qq_err *err)
{
    if (mkdir(d, 0700) < 0 && errno != EEXIST)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", d, strerror(errno));
    return rundir_check(d, err);
}

int mapped_ram_check(const vm_spec *s, bool tmpfs, unsigned long long *bytes, char *why, size_t len)
{
    *bytes = 128ULL << 20;   /* QEMU's default */
    if (!s->mapped_ram) {
        snprintf(why, len, "mapped_ram = false in [vm.%s]", s->name);
        return 0;
    }
    for (size_t i = 0; i < s->nargs; i++) {
        const char *a = s->args[i];
        if (a[0] != '-')
            continue;
        const char *opt = a + 1 + (a[1] == '-');
        const char *val = i + 1 < s->nargs ? s->args[i + 1] : "";
        if (strcmp(opt, "m") == 0) {
            _cleanup_free_ char *v = xstrdup(val);
            char *save = NULL;
            for (char *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (strncmp(tok, "slots=", 6) == 0 || strncmp(tok, "maxmem=", 7) == 0) {
                    snprintf(why, len, "its -m %s has slots or maxmem (memory hotplug)", val);
                    return 0;
                }
                const char *sz = strncmp(tok, "size=", 5) == 0 ? tok + 5 : tok;
                if (parse_size(sz, bytes) < 0) {
                    snprintf(why, len, "its -m %s is not a size qqmgr reads", val);
                    return 0;
                }
            }
        } else if (strcmp(opt, "object") == 0 && strncmp(val, "memory-backend", 14) == 0) {
            snprintf(why, len, "its cmd has its own memory backend (-object %.*s…)", 40, val);
            return 0;
        } else if ((strcmp(opt, "machine") == 0 || strcmp(opt, "M") == 0) && strstr(val, "memory-backend=")) {
            snprintf(why, len, "its cmd sets -machine memory-backend= itself");
            return 0;
        } else if (strcmp(opt, "numa") == 0) {
            snprintf(why, len, "its cmd has -numa");
            return 0;
        } else if (strcmp(opt, "mem-path") == 0 || strcmp(opt, "mem-prealloc") == 0) {
            snprintf(why, len, "its cmd has -%s (hugepages)", opt);
            return 0;
        } else if (strcmp(opt, "device") == 0 &&
                   (strncmp(val, "virtio-balloon", 14) == 0 || strncmp(val, "virtio-mem", 10) == 0)) {
            snprintf(why, len, "its cmd has a %.*s device (a discarded page would punch a hole in the "
                     "snapshot's RAM file)", (int)strcspn(val, ","), val);
            return 0;
        }
    }
    if (!tmpfs)
        return 1;
    _cleanup_free_ char *d = ram_dir();
    qq_err e = { 0 };
    if (ram_dir_ready(d, &e) < 0) {
        snprintf(why, len, "no private tmpfs dir for its RAM (%s)", e.msg);
        return 0;
    }
    struct statvfs vfs;
    if (statvfs(d, &vfs) < 0 || (unsigned long long)vfs.f_bavail * vfs.f_frsize < *bytes) {
        snprintf(why, len, "%s has %llu MiB free, less than its RAM (%llu MiB)", d,
                 (unsigned long long)vfs.f_bavail * vfs.f_frsize >> 20, *bytes >> 20);
        return 0;
    }
    return 1;
}

const char *mapped_ram_id(const vm_spec *s)
{
    const char *bin = strrchr(s->qemu_bin, '/') ? strrchr(s->qemu_bin, '/') + 1 : s->qemu_bin;
    if (!strstr(bin, "x86_64") && !strstr(bin, "i386"))
        return MAPPED_RAM_ID;
    const char *type = NULL;
    size_t tlen = 0;
    for (size_t i = 0; i + 1 < s->nargs; i++) {
        const char *opt = s->args[i] + 1 + (s->args[i][0] == '-' && s->args[i][1] == '-');
        if (s->args[i][0] != '-' || (strcmp(opt, "machine") != 0 && strcmp(opt, "M") != 0))
            continue;
        const char *v = s->args[i + 1];
        _cleanup_free_ char *t = option_value(v, "type");
        size_t first = strcspn(v, ",");
        if (t) {
            type = strstr(v, "type=") + 5;
            tlen = strcspn(type, ",");
        } else if (!memchr(v, '=', first)) {
            type = v;
            tlen = first;
        }
    }
    if (!type || (tlen >= 2 && strncmp(type, "pc", 2) == 0) || (tlen >= 3 && strncmp(type, "q35", 3) == 0))
        return MAPPED_RAM_PC_ID;
    return MAPPED_RAM_ID;
}

bool mapped_ram_loads_older(const vm_spec *s)
{
    return strcmp(mapped_ram_id(s), MAPPED_RAM_PC_ID) == 0;
}

char *mapped_ram_new_path(qq_err *err)
{
    static unsigned n;
    _cleanup_free_ char *d = ram_dir();
    if (ram_dir_ready(d, err) < 0)
        return NULL;
    return xasprintf("%s/ram.%ld.%u", d, (long)getpid(), n++);
}

char *mapped_ram_shown_path(void)
{
    _cleanup_free_ char *d = ram_dir();
    return xasprintf("%s/ram.PID.N", d);
}

void mapped_ram_sweep(void)
{
    _cleanup_free_ char *d = ram_dir();
    if (rundir_check(d, NULL) < 0)
        return;
    DIR *dir = opendir(d);
    if (!dir)
        return;
    struct dirent *de;
    while ((de = readdir(dir))) {
        long pid;
        unsigned n;
        if (sscanf(de->d_name, "ram.%ld.%u", &pid, &n) != 2 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
            unlinkat(dirfd(dir), de->d_name, 0);
    }
    closedir(dir);
}

/* An option's value in a QEMU option list (",," a comma), or NULL. Caller frees. */
static char *option_value(const char *opts, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = opts; *p;) {
        bool hit = strncmp(p, key, kl) == 0 && p[kl] == '=';
        sbuf v = SBUF_INIT;
        const char *q = p + (hit ? kl + 1 : 0);
        for (; *q; q++) {
            if (q[0] == ',' && q[1] == ',') {
                sbuf_addc(&v, ',');
                q++;
                continue;
            }
            if (*q == ',')
                break;
            sbuf_addc(&v, *q);
        }
        if (hit)
            return sbuf_steal(&v) ?: xstrdup("");
        sbuf_free(&v);
        p = *q ? q + 1 : q;
    }
    return NULL;
}

char *mapped_run_ram(const char *dir, pid_t pid, unsigned long long *bytes)
{
    _cleanup_free_ char *p = layout_path(dir, LAYOUT_ARGV);
    _cleanup_json_ json_t *argv = json_load_file(p, 0, NULL);
    _cleanup_free_ char *path = NULL;
    size_t i;
    json_t *a;
    json_array_foreach(argv, i, a) {
        const char *s = json_string_value(a) ?: "";
        if (strncmp(s, "memory-backend-file,id=" MAPPED_RAM_ID ",", 24 + strlen(MAPPED_RAM_ID)) != 0 &&
            strncmp(s, "memory-backend-file,id=" MAPPED_RAM_PC_ID ",", 24 + strlen(MAPPED_RAM_PC_ID)) != 0)
            continue;
        _cleanup_free_ char *share = option_value(s, "share");
        _cleanup_free_ char *size = option_value(s, "size");
        if (!share || strcmp(share, "on") != 0 || !size)
            return NULL;
        *bytes = strtoull(size, NULL, 10);
        path = option_value(s, "mem-path");
    }
    if (!path || pid <= 0)
        return NULL;
    char fds[64];
    snprintf(fds, sizeof fds, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(fds);
    if (!d)
        return NULL;
    _cleanup_free_ char *deleted = xasprintf("%s (deleted)", path);
    char *found = NULL;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        char link[PATH_MAX + 16];
        ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, path) == 0 || strcmp(link, deleted) == 0)
            found = xasprintf("%s/%s", fds, de->d_name);
    }
    closedir(d);
    return found;
}

void mapped_why_not(const config *c, const char *vm, char *why, size_t len)
{
    vm_spec s;
    qq_err e = { 0 };
    unsigned long long bytes;
    if (config_vm(c, vm, 0, &s, &e) < 0) {
        snprintf(why, len, "%s", e.msg);
        return;
    }
    if (mapped_ram_check(&s, true, &bytes, why, len) == 1)
        snprintf(why, len, "its QEMU was started without mapped RAM (by an older qqmgr, under `gdb`, or from an "
                 "older kind of snapshot that loads only into QEMU's own RAM): stop and start it again for mapped "
                 "snapshots");
    vm_spec_free(&s);
}

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
    if (dfd < 0 || snap_check_name(name, NULL) < 0)
        return false;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
        return false;
    _cleanup_json_ json_t *m = load_meta_at(dfd, name);
    return m != NULL;
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
        if (snap_check_name(de->d_name, NULL) < 0)
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
        json_t *clock = json_object_get(m, "vm_clock");
        json_array_append_new(out, json_pack("{s:s, s:s, s:I, s:O, s:s, s:I}", "name", de->d_name, "date", iso,
                                             "vm_state_size", vmsize, "vm_clock", clock ? clock : json_null(),
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

static void shell_quoted(sbuf *b, const char *s)
{
    sbuf_addc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            sbuf_adds(b, "'\\''");
        else
            sbuf_addc(b, *s);
    }
    sbuf_addc(b, '\'');
}

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
    shell_quoted(&uri, file);
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
    if (snap_qemu_img(c, info, &out, err) < 0)
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
    return snap_qemu_img(c, fmt ? with_fmt : without, NULL, err);
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
    _cleanup_free_ char *ram = mapped_run_ram(dir, pid, &bytes);
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
    _cleanup_free_ char *ramcopy = xasprintf("%s/ram", tmp);
    if (copy_interruptible(vm, ram, ramcopy, err) < 0)
        return -1;
    if (truncate(ramcopy, (off_t)bytes) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", ramcopy, strerror(errno));
    json_t *meta_disks = json_array();
    _cleanup_json_ json_t *md = json_pack("{s:s, s:s, s:I, s:n, s:I, s:o}", "kind", "mapped", "vm", vm, "date",
                                          (json_int_t)time(NULL), "vm_clock", "ram_size", (json_int_t)bytes,
                                          "disks", meta_disks);
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
    size_t nt = 0;
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
                rc = snap_qemu_img(c, args, NULL, err);
            } else {
                rc = copy_interruptible(vm, layer, own, err);
            }
            if (rc < 0)
                goto fail;
            chmod(own, 0600);
            strv_push(&ms->replace, &nr, xstrdup(file));
            strv_push(&ms->replace, &nr, xstrdup(own));
        } else {
            _cleanup_free_ char *disk = absolute(c, file);
            _cleanup_free_ char *other = layout_running_user(config_state_dir(c), vm, disk);
            if (other) {
                qq_fail(err, QQ_EXIT_FAIL, "%s: its disk %s is in use by running VM %s; restoring '%s' would write "
                        "it under that VM: stop %s first (or restore a throwaway copy with --rm)", vm, disk, other,
                        name, other);
                goto fail;
            }
            char *t = layout_beside(disk, ".restore.tmp");
            strv_push(&tmps, &nt, t);
            if (copy_interruptible(vm, layer, t, err) < 0)
                goto fail;
            chmod(t, 0600);
        }
    }
    _cleanup_free_ char *ram = xasprintf("%s/%s/ram", sd, name);
    if (throwaway) {
        ms->ram_file = xstrdup(ram);
        ms->ram.private_map = true;
    } else {
        unsigned long long bytes = (unsigned long long)json_integer_value(json_object_get(m, "ram_size"));
        if (!(ms->ram_file = mapped_ram_new_path(err)))
            goto fail;
        struct statvfs vfs;
        _cleanup_free_ char *rd = ram_dir();
        if (statvfs(rd, &vfs) == 0 && (unsigned long long)vfs.f_bavail * vfs.f_frsize < bytes) {
            qq_fail(err, QQ_EXIT_FAIL, "%s: %s has %llu MiB free, less than the snapshot's RAM (%llu MiB)", vm, rd,
                    (unsigned long long)vfs.f_bavail * vfs.f_frsize >> 20, bytes >> 20);
            goto fail;
        }
        strv_push(&ms->unlink, &nu, xstrdup(ms->ram_file));
        if (copy_interruptible(vm, ram, ms->ram_file, err) < 0)
            goto fail;
        /* every copy made: the disks change now, all at once */
        size_t k = 0;
        json_array_foreach(disks, i, x) {
            _cleanup_free_ char *disk = absolute(c, json_string_value(json_object_get(x, "file")) ?: "");
            if (rename(tmps[k], disk) < 0) {
                qq_fail(err, QQ_EXIT_FAIL, "%s: %s", disk, strerror(errno));
                goto fail;
            }
            k++;
        }
    }
    ms->ram.file = ms->ram_file;
    return 0;
fail:
    for (char **t = tmps; t && *t; t++)
        unlink(*t);
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
    shell_quoted(&uri, state);
    _cleanup_json_ json_t *args = json_pack("{s:s}", "uri", sbuf_str(&uri));
    int rc = set_ignore_shared(q, true, err);
    json_t *r = rc == 0 ? qmp_execute(q, "migrate-incoming", args, 10000, err) : NULL;
    if (!r)
        rc = -1;
    json_decref(r);
    qmp_close(q);
    return rc;
}
