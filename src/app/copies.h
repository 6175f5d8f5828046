/* copies — many throwaway runs of one VM at once: `run VM --restore S --rm`
 * and `start VM --rm` while the VM's own place is taken run as a copy
 * "VM#N" (config.h: how the name is parsed), each in its own state dir.
 *
 * Which place a throwaway start takes (copies_claim): the VM's own place
 * when it is free at once (its lock taken without waiting, no QEMU holds its
 * pid file), so `start VM --rm`, `ssh VM`, `stop VM` work as for any start;
 * else the first free copy N ≥ 1, whose state dir is <vm dir>/copy.N
 * (layout.h) and holds the same files a VM's dir holds: pid, sockets, logs,
 * ssh.conf, known_hosts, ssh_port (always an automatic port: the VM's fixed
 * one is its own), argv.json, its disk copies, and owner.json
 * {"kind": "copy", "name": "VM#N", "config"}.
 *
 * Race-free between qqmgr processes: a copy is made as a fresh dir
 * <vm dir>/copy.new.XXXXXX (mkdtemp), its lock file taken, its record
 * written, then renamed to copy.N without replacing anything (renameat2
 * RENAME_NOREPLACE; copy.N taken → N+1). So a copy.N always has its lock
 * held by its claimer until its QEMU holds the pid file (the claim is
 * released then), and a copy is dead when neither is held.
 *
 * Sweeping (copies_sweep): a copy whose lock is free and whose pid file no
 * QEMU holds is dead (stopped, its guest powered off, its qqmgr and QEMU
 * killed): its runtime files (the socket-dir symlink and ssh ControlPath in
 * the runtime dir, the [net] switches it kept up) and its whole dir go. A
 * copy.new.* whose lock is free goes too. A sweeper never removes a copy
 * whose lock is held or whose QEMU is alive. The commands that look at a VM
 * sweep its copies first: start, run, stop, status, list, rm, prune.
 *
 * Nothing here prints. Errors: -1 with err (QQ_EXIT_FAIL).
 */
#ifndef QQ_COPIES_H
#define QQ_COPIES_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/err.h"
#include "config.h"

typedef struct copies_claim {
    char *name;    /* "VM" (the VM's own place) or "VM#N" */
    char *dir;     /* its state dir: config_vm_dir(c, name) — the run's state dir */
    int lock;      /* the descriptor holding that dir's lock (launch_opts.lock_held) */
    bool copy;     /* a copy, not the VM's own place */
} copies_claim;

/* Claim a place for a throwaway start of VM vm (see above). The VM's
 * leftovers (leftover.h) are the caller's to repair first. */
int copies_claim_take(const config *c, const char *vm, copies_claim *out, qq_err *err);

/* Done with the claim (its QEMU holds the pid file now, or the caller keeps
 * nothing): the lock is released. Safe on a zeroed claim. */
void copies_claim_release(copies_claim *cl);

/* A start that failed or was interrupted: a copy's dir is removed (nothing of
 * it is left), then the claim is released. */
void copies_claim_undo(const config *c, copies_claim *cl);

/* Remove the VM's dead copies (see above). Returns how many were removed. */
int copies_sweep(const config *c, const char *vm);
/* The same, telling fn (when not NULL) each dead copy's dir, its disk usage
 * and whether it was removed; dry_run: found, not removed (prune --dry-run). */
typedef void (*copies_each_fn)(void *arg, const char *copy_dir, unsigned long long bytes, bool removed);
int copies_sweep_each(const config *c, const char *vm, bool dry_run, copies_each_fn fn, void *arg);

/* The names of the VM's copies ("VM#N", by N) after a sweep: the live ones
 * and those being started. NULL-terminated strv, *n their count. */
char **copies_of(const config *c, const char *vm, size_t *n);
/* The same without the sweep (nothing is touched: shell completion). */
char **copies_list(const config *c, const char *vm, size_t *n);

/* Remove a copy's state dir whose QEMU is gone (the caller may hold its
 * lock): its runtime files in the runtime dir, then the dir. */
void copies_remove(const config *c, const char *copy_dir);

#endif
