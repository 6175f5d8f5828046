/* snapshot_owner — whose internal qcow2 snapshot it is.
 *
 * Several VMs may use one qcow2 disk (two VMs with {{.img.data}}): its
 * internal snapshots are then a mix of theirs. A snapshot belongs to the VM
 * that saved it, recorded in that VM's <vm dir>/snapshots/owned.json:
 *   [{"name", "path" (the disk, absolute), "date_sec", "date_nsec"}]
 * one entry per disk the save wrote (QEMU's own date of the snapshot tells
 * a later one of the same name apart). A snapshot no VM records (saved by
 * an older qqmgr) is the VM's when no other VM of the state dir has the
 * disk in its records (snapshots/disks.json, owned.json); else nobody's:
 * listed for none, deleted by none, named by `rm`.
 * Records are read with O_NOFOLLOW (a symlinked snapshots/ dir is ignored)
 * and written atomically (0600) under the VM's lock by the caller.
 */
#ifndef QQ_SNAPSHOT_OWNER_H
#define QQ_SNAPSHOT_OWNER_H

#include <jansson.h>
#include <stdbool.h>

#include "../base/err.h"

typedef struct snapown snapown;

/* The records of every VM of the state dir. Never NULL. */
snapown *snapown_load(const char *state_dir);
void snapown_free(snapown *o);

/* Is info (one of QEMU's snapshot infos: name, date-sec, date-nsec) on the
 * disk at path vm's? false: *owner (malloc'd) says whose ("VM t", or "no VM
 * on record: saved by an older qqmgr on a disk VMs a, b share"). */
bool snapown_is_own(const snapown *o, const char *vm, const char *path, json_t *info, char **owner);

/* Record in vm_dir that the snapshot infos in `saved` ([{path, info}]) are
 * the VM's (replacing what was recorded under that name); forget drops name. */
int snapown_record(const char *vm_dir, const char *name, json_t *saved, qq_err *err);
int snapown_forget(const char *vm_dir, const char *name, qq_err *err);

#endif
