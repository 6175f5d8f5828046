/* copies — see copies.h. */
#include "copies.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "../infra/lockfile.h"
#include "../infra/tree.h"
#include "layout.h"
#include "vnet.h"

/* A copy.new.* is left alone this long (its claimer makes it, then takes
 * its lock, then renames it: microseconds); older, with its lock free, it
 * is a killed claimer's. */
#define COPIES_NEW_GRACE_S 60

void copies_claim_release(copies_claim *cl)
{
    if (cl->lock >= 0)
        close(cl->lock);
    cl->lock = -1;
    free(cl->name);
    free(cl->dir);
    cl->name = cl->dir = NULL;
    cl->copy = false;
}

void copies_remove(const config *c, const char *copy_dir)
{
    layout_remove_runtime(copy_dir);
    /* an ssh master's socket outside the dir (its master ends with the guest) */
    _cleanup_free_ char *ctl = layout_control_path(copy_dir, false, NULL);
    if (ctl && strncmp(ctl, copy_dir, strlen(copy_dir)) != 0)
        unlink(ctl);
    vnet_down(config_state_dir(c), copy_dir);
    layout_release_runtime_dir(copy_dir);
    tree_remove_at(AT_FDCWD, copy_dir, copy_dir, NULL);
}

void copies_claim_undo(const config *c, copies_claim *cl)
{
    if (cl->copy && cl->dir)
        copies_remove(c, cl->dir);
    copies_claim_release(cl);
}

/* Is the copy dir (an entry of the VM's dir) dead: its lock free, no QEMU?
 * Then it is removed (its lock held meanwhile), unless dry_run. */
static bool sweep_one(const config *c, const char *path, bool made_now, bool dry_run)
{
    /* one being made: its claimer makes its lock file and takes it after the
     * dir exists; a sweeper that took it first would pull the dir away under
     * it. A copy.new.* lives for microseconds: only an old one is a leftover. */
    struct stat st;
    if (made_now && stat(path, &st) == 0 && time(NULL) - st.st_mtime < COPIES_NEW_GRACE_S)
        return false;
    _cleanup_free_ char *lockp = layout_path(path, LAYOUT_LOCK);
    lockfile_opts lo = { .no_create = true };
    int fd = lockfile_take(lockp, &lo, NULL);
    if (fd < 0 && errno != ENOENT)
        return false;   /* held: its claimer is at work */
    bool dead = layout_pid_holder(path) <= 0;
    if (dead && !dry_run)
        copies_remove(c, path);
    if (fd >= 0)
        close(fd);
    return dead;
}

int copies_sweep(const config *c, const char *vm)
{
    return copies_sweep_each(c, vm, false, NULL, NULL);
}

int copies_sweep_each(const config *c, const char *vm, bool dry_run, copies_each_fn fn, void *arg)
{
    _cleanup_free_ char *vdir = config_vm_dir(c, vm);
    DIR *d = opendir(vdir);
    if (!d)
        return 0;
    int removed = 0;
    _cleanup_strv_ char **found = NULL;
    size_t nf = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (layout_copy_of_entry(e->d_name) || layout_is_new_copy(e->d_name))
            strv_push(&found, &nf, xstrdup(e->d_name));
    closedir(d);
    for (size_t i = 0; i < nf; i++) {
        _cleanup_free_ char *path = xasprintf("%s/%s", vdir, found[i]);
        struct stat st;
        if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        unsigned long long bytes = fn ? tree_usage(path) : 0;
        if (sweep_one(c, path, layout_is_new_copy(found[i]), dry_run)) {
            removed++;
            if (fn)
                fn(arg, path, bytes, !dry_run);
        }
    }
    return removed;
}

static int by_number(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

char **copies_of(const config *c, const char *vm, size_t *n)
{
    copies_sweep(c, vm);
    return copies_list(c, vm, n);
}

char **copies_list(const config *c, const char *vm, size_t *n)
{
    *n = 0;
    _cleanup_free_ char *vdir = config_vm_dir(c, vm);
    char **out = xcalloc(1, sizeof *out);
    size_t no = 0;
    DIR *d = opendir(vdir);
    if (!d)
        return out;
    unsigned *nums = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned k = layout_copy_of_entry(e->d_name);
        if (!k)
            continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 8;
            nums = xrealloc(nums, cap * sizeof *nums);
        }
        nums[nn++] = k;
    }
    closedir(d);
    if (nn)
        qsort(nums, nn, sizeof *nums, by_number);
    for (size_t i = 0; i < nn; i++)
        strv_push(&out, &no, xasprintf("%s#%u", vm, nums[i]));
    free(nums);
    *n = no;
    return out;
}

int copies_claim_take(const config *c, const char *vm, copies_claim *out, qq_err *err)
{
    memset(out, 0, sizeof *out);
    out->lock = -1;
    _cleanup_free_ char *vdir = config_vm_dir(c, vm);
    /* the VM's own place, when nobody is at it */
    qq_err e = { 0 };
    int fd = layout_lock(vdir, 0, &e);
    if (fd < 0 && errno != EWOULDBLOCK)
        return qq_fail(err, QQ_EXIT_FAIL, "%s", e.msg);
    if (fd >= 0 && layout_pid_holder(vdir) <= 0) {
        out->name = xstrdup(vm);
        out->dir = xstrdup(vdir);
        out->lock = fd;
        return 0;
    }
    if (fd >= 0)
        close(fd);
    copies_sweep(c, vm);
    /* a fresh dir, locked, renamed to the first free copy.N */
    _cleanup_free_ char *tmp = xasprintf("%s/" LAYOUT_COPY_NEW, vdir);
    if (!mkdtemp(tmp))
        return qq_fail(err, QQ_EXIT_FAIL, "mkdir %s: %s", tmp, strerror(errno));
    _cleanup_free_ char *lockp = layout_path(tmp, LAYOUT_LOCK);
    fd = lockfile_take(lockp, NULL, err);
    if (fd < 0) {
        rmdir(tmp);
        return -1;
    }
    for (unsigned n = 1; n <= CONFIG_COPY_MAX; n++) {
        _cleanup_free_ char *dst = layout_copy_dir(vdir, n);
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0) {
            out->name = xasprintf("%s#%u", vm, n);
            out->dir = xstrdup(dst);
            out->lock = fd;
            out->copy = true;
            if (layout_record(dst, "copy", out->name, err) < 0) {
                copies_claim_undo(c, out);
                return -1;
            }
            return 0;
        }
        if (errno != EEXIST && errno != ENOTEMPTY) {
            int en = errno;
            tree_remove_at(AT_FDCWD, tmp, tmp, NULL);
            close(fd);
            return qq_fail(err, QQ_EXIT_FAIL, "rename %s to %s: %s", tmp, dst, strerror(en));
        }
    }
    tree_remove_at(AT_FDCWD, tmp, tmp, NULL);
    close(fd);
    return qq_fail(err, QQ_EXIT_FAIL, "%s: %d copies exist already; stop some (`%s stop %s --all`)", vm,
                   CONFIG_COPY_MAX, config_cli(c), vm);
}
