/* leftover — what a qqmgr killed in the middle of a snapshot operation
 * leaves behind, and its repair by the next command.
 *
 * A save or restore records itself in <vm dir>/inflight.json before it
 * touches QEMU ({op: "save"|"restore", pid, snapshot, was_running, tmp}) and
 * removes the record when it is over, whatever the outcome. A qqmgr killed
 * with SIGKILL (or dead any other way) leaves the record; the next command
 * that looks at the VM (start, stop, status, ssh, snapshot …, run) calls
 * leftover_repair(), which, when the recorded pid is gone:
 *  - save: cancels a migration still under way, removes the partial state
 *    file (the .tmp; a mapped save's temp dir, mapped.h), and returns the
 *    guest to what it was before the save (running, or paused) — QEMU
 *    leaves it in `postmigrate`, where ssh hangs and every later save fails;
 *  - restore: waits for the incoming state to finish loading (bounded) and
 *    lets the guest run, as the restore would have; a QEMU waiting with
 *    -incoming defer for a state nobody asked for (a mapped restore killed
 *    before migrate-incoming: the record is marked "deferred", not
 *    "incoming") is killed: the VM is stopped, as before;
 * and, for an own-run restore that replaces the disks, removes its temp
 * copies or finishes its renames (leftover_note_replace);
 * then removes the record. A VM found in `postmigrate` or `inmigrate`
 * without a record (another tool, an older qqmgr) is not touched: its
 * message names the fix (leftover_explain).
 *
 * Throwaway copies (`start --rm --restore` of a qcow2 snapshot) are named
 * throwaway.PID.N.qcow2 in the VM's dir, PID the qqmgr that makes them;
 * leftover_sweep_copies() removes those whose qqmgr is gone.
 *
 * An import (snapxfer.h) writes the stream's files in
 * <vm dir>/snapshots/.import.PID.START/ (PID and start time of the
 * importing qqmgr) before renaming them into place; leftover_repair() (and
 * every import) removes those of a qqmgr that is gone.
 *
 * Nothing here prints; what was repaired is returned as text for --debug.
 */
#ifndef QQ_LEFTOVER_H
#define QQ_LEFTOVER_H

#include <jansson.h>
#include <stdbool.h>

#include "../base/err.h"
#include "../infra/qmp.h"

/* Record that this process now saves or restores snapshot `name` of the VM
 * in dir; tmp: the partial file a save writes (or NULL). */
int leftover_begin(const char *dir, const char *op, const char *name, bool was_running, const char *tmp,
                   qq_err *err);
/* Set key to true in the record: a mapped restore marks "deferred" before
 * QEMU starts with -incoming defer and "incoming" once migrate-incoming was
 * accepted; a record with the first and not the second is a QEMU that waits
 * for a state nobody will ask for any more. */
int leftover_mark(const char *dir, const char *key, qq_err *err);

/* A restore into the VM's own run that replaces its disks (a mapped
 * snapshot's layers, mapped.h) copies each layer to tmps[i] beside disks[i]
 * and then renames them all over the disks. It records the pairs before the
 * first copy, and marks "renaming" (leftover_mark) once every copy is
 * complete. The repair of a dead qqmgr's record then removes the temp
 * copies (not marked: the disks are as they were) or finishes the renames
 * (marked: the disks are as saved): never some disks of each. NULL-ended
 * arrays of the same length. */
int leftover_note_replace(const char *dir, char *const *tmps, char *const *disks, qq_err *err);

/* The operation is over (done, failed or undone): remove the record. */
void leftover_end(const char *dir);

/* Repair what a dead qqmgr left in dir (see above). Returns 1 when something
 * was repaired (*what, when not NULL: one line saying what; caller frees),
 * 0 when there was nothing to do (or its owner still lives), -1 with err
 * when the repair failed (the VM is left as found). */
int leftover_repair(const char *dir, char **what, qq_err *err);

/* When QEMU's run state is one a dead migration leaves ("postmigrate",
 * "inmigrate", "finish-migrate"): err filled with what to do (QQ_EXIT_FAIL,
 * `cli` the command prefix, vm its name) and -1; else 0. */
int leftover_explain(const char *vm, const char *cli, const char *state, qq_err *err);

/* After a save's migration (completed, failed or cancelled): wait until
 * QEMU is done moving the guest to postmigrate, then leave it running (run)
 * or paused — out of postmigrate either way, where every later save fails. */
int leftover_resume(qmp *q, bool run, qq_err *err);

/* Remove throwaway.PID.N.qcow2 copies in dir whose qqmgr PID is gone.
 * Returns how many were removed. */
int leftover_sweep_copies(const char *dir);

/* Those copies: a new array of {path, bytes (disk usage)}. */
json_t *leftover_dead_copies(const char *dir);

/* The name of throwaway copy n this process makes in dir (caller frees). */
char *leftover_copy_path(const char *dir, unsigned n);

/* The temp dir an import of this process writes into (caller frees). */
char *leftover_import_dir(const char *dir);

/* Remove the import temp dirs in dir's snapshots/ whose qqmgr is gone.
 * Returns how many were removed. */
int leftover_sweep_imports(const char *dir);

#endif
