/* snapshot — the test loop: a VM's snapshots (save, restore, list, delete),
 * starting from one, throwaway runs, and `run VM -- COMMAND`.
 *
 * Where a snapshot lives (docs/design.md "State"):
 *  - the running VM has mapped RAM (mapped.h; every VM that allows it): a
 *    mapped snapshot, the dir <vm dir>/snapshots/NAME/ (device state, RAM
 *    file, disk layers, meta.json), whatever its disks' format. Otherwise
 *    (the save's result says why: snap_save_result.note) one of these:
 *  - every writable disk of the VM is qcow2: an internal qcow2 snapshot in
 *    each of them, RAM and device state in the first (HMP savevm / loadvm /
 *    delvm on a running VM, `qemu-img snapshot -d` and `info` on a stopped
 *    one). The disk files of the last such save are recorded in
 *    <vm dir>/snapshots/disks.json, so a stopped VM's snapshots are found.
 *  - the VM has no writable disk (kernel + initramfs): a migration stream in
 *    <vm dir>/snapshots/NAME.state (written to NAME.state.tmp, renamed when
 *    complete) and NAME.json (date, vm_clock, size, args: the VM's arguments
 *    normalised by snapargs_of (snapargs.h), for export); QEMU starts from it
 *    with -incoming.
 *  - a writable disk of another format (raw): no snapshot; QQ_EXIT_FAIL
 *    naming the drive and the fix (format = "qcow2").
 * A save, restore or delete holds the VM's lock. A save interrupted by
 * SIGINT/SIGTERM/SIGHUP lets QEMU finish (or cancels the migration), removes
 * what it made and fails: the VM keeps running, no partial snapshot remains.
 *
 * Whose: a qcow2 disk may be shared by several VMs ({{.img.NAME}} in each);
 * a snapshot belongs to the VM that saved it (snapshot_owner.h), and list,
 * restore, delete, save --force and rm act on the VM's own only: save
 * refuses a name another VM's snapshot has on the disk, and every operation
 * on a disk that another running VM of the state dir uses is refused
 * (QQ_EXIT_FAIL naming that VM). QEMU finds a snapshot by name (the first
 * of that name): a disk holding another one of the same name (left by an
 * older qqmgr) refuses restore/delete of it, naming both.
 * The snapshots/ dir is never followed when it is a symlink.
 *
 * Snapshot names follow the VM-name rule (letters, digits, . _ -, not
 * starting with . or -): QQ_EXIT_USAGE otherwise. An unknown snapshot is
 * QQ_EXIT_FAIL listing the ones that exist. Other errors: QQ_EXIT_FAIL with
 * QEMU's or qemu-img's own words.
 */
#ifndef QQ_SNAPSHOT_H
#define QQ_SNAPSHOT_H

#include <jansson.h>
#include <stdbool.h>

#include "../base/err.h"
#include "config.h"
#include "guestclock.h"
#include "launch.h"
#include "vm.h"

/* 0, or -1 (QQ_EXIT_USAGE) naming what is wrong with the snapshot name. */
int snap_check_name(const char *name, qq_err *err);

/* The VM's snapshots, running or stopped, of every kind: a new array of
 * {name, date (ISO 8601 UTC), vm_state_size (bytes), vm_clock (guest
 * seconds, a number, or null), kind ("mapped", "qcow2", "state-file"), size
 * (disk usage, bytes: a mapped snapshot's dir, a state file; a qcow2 one's
 * VM state)}, oldest first. NULL with err on failure. */
json_t *snap_list(const config *c, const char *vm, qq_err *err);

typedef struct snap_save_result {
    const char *kind;        /* "mapped" (mapped.h), "qcow2" (internal snapshots) or "state-file" */
    char note[320];          /* not mapped: why (mapped_why_not), else "" */
    double seconds;          /* how long the save took */
    bool replaced;           /* an older snapshot of that name was replaced (force) */
} snap_save_result;

/* Save the running VM's state (RAM, devices, writable disks) as name; an
 * existing name fails unless force. */
int snap_save(const config *c, const char *vm, const char *name, bool force, snap_save_result *r, qq_err *err);

/* Return the running VM to snapshot name in place (a state-file or mapped
 * snapshot restarts QEMU from it, and the forwards added at run time
 * (forward.h) are added to the new QEMU again); the ssh master is reset. A stopped VM:
 * QQ_EXIT_FAIL pointing at `start --restore`. */
int snap_restore(const config *c, const char *vm, const char *name, guestclock_result *clock, qq_err *err);

/* After a restore from snapshot name: set the guest's clock to the host's
 * (guestclock.h), by deadline_ms. When it cannot be set, r->behind_s is
 * estimated from the snapshot's date (the guest clock stood still since). */
void snap_clock(const config *c, const char *vm, const char *name, long long deadline_ms, guestclock_result *r);
#define SNAP_CLOCK_MS 15000   /* how long snap_restore and start --restore try to set it */

/* After a restore from snapshot name: wait until the guest is ready (stage
 * as ssh_wait_ready; NULL: no wait) and set its clock (snap_clock). The
 * saved guest's sshd already listens, so the first thing is one ssh login
 * that sets the clock (guestclock.h), bounded by SNAP_LOGIN_MS: when it
 * logged in, the guest is ready for "ssh"; else (a snapshot saved while the
 * guest booted, or none listens) ssh_wait_ready waits as after a boot, and
 * the clock is set after it. Without stage: snap_clock within SNAP_CLOCK_MS.
 * -1 with err as ssh_wait_ready's; the clock is never a failure. */
#define SNAP_LOGIN_MS 10000
int snap_ready(const config *c, const char *vm, const char *name, const char *stage, long long deadline_ms,
               bool progress, bool debug, guestclock_result *clock, qq_err *err);

/* Delete snapshot name (running or stopped VM): only the VM's own. */
int snap_delete(const config *c, const char *vm, const char *name, qq_err *err);

/* The snapshots on the VM's qcow2 disks that are not its own (another VM's,
 * or nobody's on record): a new array of {name, disk, owner} (owner: "VM t"
 * or why nobody's). NULL with err on failure. */
json_t *snap_foreign(const config *c, const char *vm, qq_err *err);

/* The snapshot names a disk image holds (for `img build`, `img rm`), joined
 * as "a, b" (caller frees); NULL when none or the file is not qcow2. */
char *snap_names_in_image(const config *c, const char *path);

typedef struct snap_start_opts {
    const char *restore;     /* start from this snapshot, or NULL */
    bool rm;                 /* throwaway: every disk write of this run is lost at stop */
    launch_opts launch;      /* start's other options (deadline, --paused, --wrap); extra and
                              * replace are snap_start's own */
} snap_start_opts;

/* Start a stopped VM from a snapshot and/or as a throwaway run (a running
 * VM is QQ_EXIT_FAIL). --rm alone: QEMU's -snapshot (temporary overlays,
 * deleted by QEMU); --rm with a qcow2 snapshot: per-run copies of the disks
 * in the VM's dir, unlinked once QEMU holds them open. A snapshot that does
 * not load: QQ_EXIT_FAIL with QEMU's words, and no QEMU left running.
 * Returns like launch_start (r->stderr_tail may be set on failure). */
int snap_start(const config *c, const char *vm, const snap_start_opts *o, launch_result *r, qq_err *err);

typedef struct snap_run_opts {
    const char *restore;     /* as snap_start_opts */
    bool rm;
    int timeout_s;           /* > 0: bounds the whole run; the VM is stopped at the deadline */
    bool debug;              /* print the ssh command line */
    char **argv;             /* the remote command words */
    int argc;
    guestclock_result *clock;   /* out, may be NULL: the guest clock after --restore (snap_clock) */
    bool relay_stdout;       /* the command's stdout is copied to ours by this process as it
                              * comes (unbuffered), ending on a newline (a record may follow) */
} snap_run_opts;

/* What a run did, filled on every path (also when it returns -1). */
typedef struct snap_run_result {
    bool ready;              /* ssh answered: the command was started */
    bool ran;                /* the command ended by itself: *status is its */
    long qemu_pid;           /* 0: QEMU was not started */
    long long start_ms;      /* QEMU started (or restored) */
    long long ready_ms;      /* then ssh answered */
    long long command_ms;    /* then the command ran */
    long long stop_ms;       /* then the VM was stopped */
    char instance[224];      /* where it ran: "VM", or a throwaway copy "VM#N" ("" not started) */
} snap_run_result;

/* `run`: start the stopped VM (as snap_start), wait for ssh, run the command
 * through ssh (stdin/stdout/stderr passed through), stop the VM. *status:
 * the command's exit status (ssh's 255 when ssh itself failed). Returns -1
 * with err when the VM was running (use ssh), or start, wait or the timeout
 * failed: err's code is QQ_EXIT_NOT_READY when the VM never became ready
 * (start, restore or the ssh wait failed, not interrupted); the VM is stopped on every path, also on SIGINT/SIGTERM/SIGHUP.
 * Prints nothing itself. */
int snap_run(const config *c, const char *vm, const snap_run_opts *o, int *status, snap_run_result *res,
             qq_err *err);

#endif
