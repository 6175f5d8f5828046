/* snapshot_owner — see snapshot_owner.h. */
#include "snapshot_owner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "layout.h"

#define OWNED_FILE "owned.json"
#define DISKS_FILE "disks.json"

struct snapown {
    json_t *owned;   /* VM name → its owned.json entries */
    json_t *disks;   /* VM name → [disk paths it records] */
};

/* A JSON file in <vm dir>/snapshots, never through a symlink. */
static json_t *load_record(const char *vm_dir, const char *file)
{
    _cleanup_free_ char *sd = layout_path(vm_dir, LAYOUT_SNAPSHOTS);
    _cleanup_close_ int dfd = open(sd, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return NULL;
    _cleanup_close_ int fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    return json_loadfd(fd, 0, NULL);
}

snapown *snapown_load(const char *state_dir)
{
    snapown *o = xcalloc(1, sizeof *o);
    o->owned = json_object();
    o->disks = json_object();
    DIR *d = opendir(state_dir);
    if (!d)
        return o;
    for (struct dirent *e; (e = readdir(d));) {
        const char *vm = layout_vm_of_entry(e->d_name);
        if (!vm)
            continue;
        _cleanup_free_ char *vdir = xasprintf("%s/%s", state_dir, e->d_name);
        json_t *owned = load_record(vdir, OWNED_FILE);
        _cleanup_json_ json_t *disks = load_record(vdir, DISKS_FILE);
        json_t *paths = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(owned, i, x) json_array_append(paths, json_object_get(x, "path"));
        json_array_foreach(disks, i, x) json_array_append(paths, json_object_get(x, "path"));
        json_object_set_new(o->owned, vm, json_is_array(owned) ? owned : json_array());
        if (!json_is_array(owned))
            json_decref(owned);
        json_object_set_new(o->disks, vm, paths);
    }
    closedir(d);
    return o;
}

void snapown_free(snapown *o)
{
    if (!o)
        return;
    json_decref(o->owned);
    json_decref(o->disks);
    free(o);
}

static bool str_eq(json_t *a, const char *b)
{
    return json_is_string(a) && b && strcmp(json_string_value(a), b) == 0;
}

static bool matches(json_t *rec, const char *path, json_t *info)
{
    return str_eq(json_object_get(rec, "path"), path) &&
           str_eq(json_object_get(rec, "name"), json_string_value(json_object_get(info, "name"))) &&
           json_integer_value(json_object_get(rec, "date_sec")) == json_integer_value(json_object_get(info, "date-sec")) &&
           json_integer_value(json_object_get(rec, "date_nsec")) == json_integer_value(json_object_get(info, "date-nsec"));
}

static bool names_disk(json_t *paths, const char *path)
{
    size_t i;
    json_t *p;
    json_array_foreach(paths, i, p) {
        if (str_eq(p, path))
            return true;
    }
    return false;
}

bool snapown_is_own(const snapown *o, const char *vm, const char *path, json_t *info, char **owner)
{
    *owner = NULL;
    const char *k;
    json_t *recs;
    json_object_foreach(o->owned, k, recs) {
        size_t i;
        json_t *r;
        json_array_foreach(recs, i, r) {
            if (!matches(r, path, info))
                continue;
            if (strcmp(k, vm) == 0)
                return true;
            *owner = xasprintf("VM %s", k);
            return false;
        }
    }
    /* unrecorded (an older qqmgr's): the VM's unless another VM has the disk */
    sbuf others = SBUF_INIT;
    json_t *paths;
    json_object_foreach(o->disks, k, paths) {
        if (strcmp(k, vm) != 0 && names_disk(paths, path))
            sbuf_addf(&others, "%s%s", others.len ? ", " : "", k);
    }
    if (!others.len) {
        sbuf_free(&others);
        return true;
    }
    *owner = xasprintf("no VM on record (saved by an older qqmgr on a disk %s and VM%s %s share)", vm,
                       strchr(sbuf_str(&others), ',') ? "s" : "", sbuf_str(&others));
    sbuf_free(&others);
    return false;
}

static int write_owned(const char *vm_dir, json_t *arr, qq_err *err)
{
    _cleanup_free_ char *sd = layout_path(vm_dir, LAYOUT_SNAPSHOTS);
    struct stat st;
    if (lstat(sd, &st) < 0 || !S_ISDIR(st.st_mode))
        return qq_fail(err, QQ_EXIT_FAIL, "%s: not a directory (a symlink is not followed)", sd);
    _cleanup_free_ char *p = xasprintf("%s/%s", sd, OWNED_FILE);
    _cleanup_free_ char *text = json_dumps(arr, JSON_INDENT(2));
    return fs_write_atomic(p, text, strlen(text), 0600, err);
}

/* owned.json without the entries of name */
static json_t *without(const char *vm_dir, const char *name)
{
    _cleanup_json_ json_t *cur = load_record(vm_dir, OWNED_FILE);
    json_t *out = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(cur, i, x) {
        if (!str_eq(json_object_get(x, "name"), name))
            json_array_append(out, x);
    }
    return out;
}

int snapown_record(const char *vm_dir, const char *name, json_t *saved, qq_err *err)
{
    _cleanup_json_ json_t *out = without(vm_dir, name);
    size_t i;
    json_t *x;
    json_array_foreach(saved, i, x) {
        json_t *info = json_object_get(x, "info");
        json_array_append_new(out, json_pack("{s:s, s:O, s:I, s:I}", "name", name, "path",
                                             json_object_get(x, "path"), "date_sec",
                                             json_integer_value(json_object_get(info, "date-sec")), "date_nsec",
                                             json_integer_value(json_object_get(info, "date-nsec"))));
    }
    return write_owned(vm_dir, out, err);
}

int snapown_forget(const char *vm_dir, const char *name, qq_err *err)
{
    _cleanup_json_ json_t *cur = load_record(vm_dir, OWNED_FILE);
    if (!json_is_array(cur))
        return 0;
    _cleanup_json_ json_t *out = without(vm_dir, name);
    if (json_array_size(out) == json_array_size(cur))
        return 0;
    return write_owned(vm_dir, out, err);
}
