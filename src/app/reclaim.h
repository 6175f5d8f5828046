/* reclaim — give back the disk space qqmgr's state takes: a VM's state
 * (rm), an image (img rm), and what no config names any more (prune), with
 * the downloads cache. (Not to be confused with base/cleanup.h, the RAII
 * macros; tree walking is infra/tree.h.)
 *
 * Safety rules, for every removal here:
 *  - only a dir recorded as this config's VM or image of that name (or
 *    unrecorded and holding nothing of another config: layout_owned) is
 *    removed; another config's is left alone, named (rm, img rm: QQ_EXIT_FAIL;
 *    prune: kept, with whose it is);
 *  - nothing outside the state dir (or the cache dir) is touched: trees are
 *    walked by tree.h (openat(O_NOFOLLOW) and unlinkat): a symlink is removed
 *    as a name and never followed;
 *  - a VM's files are removed only under the VM's lock (layout_lock) and only
 *    when no QEMU holds its pid file; the lock file goes last;
 *  - an image's dir only under its lock taken exclusively without waiting (a
 *    build, or a VM starting on it, makes the removal fail) and only when no
 *    running VM uses it (img_running_user, the check `img build` makes);
 *  - a cached download only under its <hex>.lock (download.h's protocol),
 *    taken without waiting: a file being downloaded is kept.
 * Sizes are disk usage (st_blocks), in bytes.
 * Errors: -1 with err filled: QQ_EXIT_USAGE for an unknown VM or image,
 * QQ_EXIT_FAIL otherwise (running, busy, a removal that failed).
 */
#ifndef QQ_APP_RECLAIM_H
#define QQ_APP_RECLAIM_H

#include <jansson.h>
#include <stdbool.h>

#include "../base/err.h"
#include "config.h"

typedef struct reclaim_result {
    bool existed;              /* the VM (image) had a state dir */
    bool was_running;          /* force stopped it first */
    unsigned long long bytes;  /* disk usage removed */
    int snapshots;             /* rm: snapshots deleted from its disks */
    json_t *others;            /* rm: snapshots on its disks that are other VMs' (kept): [{name, disk, owner}] */
    char *path;                /* the dir (caller frees) */
} reclaim_result;

/* `rm VM`: remove the VM's state dir (logs, ssh.conf, pinned host keys,
 * snapshots/, records); its own snapshots inside qcow2 disks (snapshot.h) are
 * deleted from those disks first; other VMs' on a shared disk are kept and
 * listed in r->others. A running VM fails (QQ_EXIT_FAIL naming `stop` and
 * `--force`) unless force: then it is stopped first (vm_stop, forced, with
 * timeout_s) and its ssh master closed. The VM stays in the config: `list`
 * shows it stopped. A VM without a state dir: existed = false, 0. */
int reclaim_vm(const config *c, const char *name, bool force, int timeout_s, reclaim_result *r, qq_err *err);

/* `img rm IMAGE`: remove the image's dir (the built disk, its copies of the
 * base, cloud-init files, build log). Refused while a running VM uses it,
 * while it is being built or a VM using it starts, and (unless force) while
 * its disk holds snapshots (the check `img build` makes). */
int reclaim_img(const config *c, const char *name, bool force, reclaim_result *r, qq_err *err);

void reclaim_result_free(reclaim_result *r);

typedef struct reclaim_prune_opts {
    bool dry_run;              /* list, remove nothing */
    bool cache;                /* also the downloads cache */
    long days;                 /* cache: files unused (atime and mtime) for this many days */
    const char *cache_dir;     /* NULL: download_cache_dir() */
} reclaim_prune_opts;

/* `prune`: the state dir's vm.NAME/ and img.NAME/ whose NAME the config does
 * not name (a running VM's dir, a busy one, an image a running QEMU of the
 * state dir uses: kept, with the reason), and with cache the cached
 * downloads (sha256/<hex> and its .ok/.part) unused for days.
 * *report: {dry_run, bytes (removed or would be), entries: [{kind ("vm",
 * "img", "cache"), name, path, bytes, removed, kept (reason or null)}]}. */
int reclaim_prune(const config *c, const reclaim_prune_opts *o, json_t **report, qq_err *err);

#endif
