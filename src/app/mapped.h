/* mapped — snapshots whose restore maps the guest's RAM instead of reading
 * it: the time to restore does not grow with the RAM the guest touched.
 *
 * The running VM's RAM is a file on tmpfs (ramfile.h): that is what lets a
 * save leave the RAM out of the migration stream and a restore map it.
 *
 * A mapped snapshot is the directory <vm dir>/snapshots/NAME/ (made as
 * snapshots/.NAME.tmp, put in place with one rename — an exchange when it
 * replaces one of that name —, so there is never a half one):
 *   meta.json   {"kind": "mapped", "vm": VM, "date": UNIX SECONDS,
 *                "vm_clock": SECONDS (the guest's virtual clock at the
 *                save, read from state's "timer" section; null where it
 *                is not found), "ram_size": BYTES,
 *                "args": [the VM's resolved cmd at save, as QEMU got it],
 *                "disks": [{"file": the path as in the cmd (query-block's),
 *                           "layer": "disk0.qcow2"|"disk1.raw"…,
 *                           "format": "qcow2"|"raw"}],
 *                "files": [{"name", "size" (bytes, apparent), "sha256"
 *                           (the state and meta-free small files only)}]}
 *   state       the device state (a migration stream saved with the
 *               x-ignore-shared capability: no RAM pages; well under 1 MiB)
 *   ram         the RAM, sparse (ram_size bytes, holes where the guest
 *               never wrote)
 *   diskN.FMT   each writable disk as it was, read-only (0400): a sparse
 *               copy (a reflink where the file system shares blocks); a
 *               qcow2 backing file named relatively is rebased (-u) to its
 *               absolute path
 * The save (mapped_save): stop, migrate with x-ignore-shared into state,
 * copy the RAM file and the disks (QEMU has flushed and let go of them at
 * the migration's end), write meta.json, rename; then the guest runs again
 * (or stays paused, as it was). The capability is switched off again.
 * Interrupted (SIGINT/SIGTERM/SIGHUP) it removes the temp dir; killed, the
 * next command does (leftover.h, the inflight record's tmp).
 *
 * A restore (mapped_prepare_start, then launch, then mapped_incoming)
 * starts QEMU with -incoming defer, sets x-ignore-shared, migrate-incoming
 * `exec:cat state`; the caller waits for the load and conts:
 *  - a throwaway copy (--rm): RAM is the snapshot's ram mapped share=off
 *    (MAP_PRIVATE: pages fault in when the guest reads them, its writes stay
 *    its own); each qcow2 disk is a thin overlay (qemu-img create -b LAYER)
 *    in the run's state dir, a raw disk a sparse copy of its layer — all
 *    named throwaway.PID.N.qcow2 (leftover.h) and unlinked once QEMU holds
 *    them;
 *  - the VM's own run: each layer is copied back over its disk (all copied
 *    to DISK.restore.tmp first, then renamed; the pairs recorded in the
 *    inflight record before the first copy and "renaming" marked before
 *    the first rename, so a killed restore's next command removes the
 *    copies or finishes the renames: leftover_note_replace), and ram into
 *    a fresh tmpfs RAM file (share=on: the VM can be saved again).
 * The restore's caller sets the guest clock (guestclock.h) as for every
 * restore.
 *
 * What two copies of one snapshot share: everything the guest holds in RAM
 * or on disk — MAC addresses (the cmd's), hostname, /etc/machine-id, the
 * kernel's entropy pool and RNG state, ssh host keys, DHCP leases. Nothing
 * is regenerated. A guest with a virtio-rng device (the cmd's -device
 * virtio-rng-pci) reads fresh host entropy after the restore, so its
 * random numbers diverge from the next read on (docs/reference.md).
 */
#ifndef QQ_MAPPED_H
#define QQ_MAPPED_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../base/err.h"
#include "../infra/qmp.h"
#include "config.h"
#include "launch.h"
#include "ramfile.h"

/* Is snapshot name of the VM in dir a mapped one? */
bool mapped_is(const char *dir, const char *name);

/* Append the VM's mapped snapshots to out as list entries (snapshot.h). */
void mapped_list_add(json_t *out, const char *dir);

/* The guest's virtual clock at the save, in seconds, from a migration
 * stream's "timer" section (path relative to dfd, or AT_FDCWD): 0, or -1
 * when the file is not a stream of at most 64 MiB with that section. */
int mapped_state_vm_clock_at(int dfd, const char *path, double *secs);

/* Save the running VM (QEMU pid, QMP q, writable disks: query-block's
 * [{device, file, format}]) as mapped snapshot name; replace: one of that
 * name exists and is replaced. Handles SIGINT/SIGTERM/SIGHUP (sig.h, the
 * caller catches them). The guest is running again (or paused, was_running
 * false) on every path. */
int mapped_save(const config *c, const char *vm, const char *dir, qmp *q, pid_t pid, const char *name,
                json_t *disks, bool was_running, qq_err *err);

/* Remove mapped snapshot name. */
int mapped_delete(const char *dir, const char *name, qq_err *err);

/* What a start from a mapped snapshot adds to its launch. */
typedef struct mapped_start {
    char **extra;       /* -incoming defer */
    char **replace;     /* FROM, TO pairs: a disk's file → its overlay (throwaway) */
    char **unlink;      /* files to unlink once QEMU runs (or failed): overlays, a tmpfs RAM copy */
    launch_ram ram;
    char *ram_file;     /* owned: ram.file */
} mapped_start;

/* Prepare the start of VM vm (dir: its state dir; run_dir: the state dir
 * of the run being started) from mapped snapshot name; throwaway: --rm. */
int mapped_prepare_start(const config *c, const char *vm, const char *dir, const char *run_dir, const char *name,
                         bool throwaway, mapped_start *ms, qq_err *err);
void mapped_start_free(mapped_start *ms);

/* The started QEMU (QMP socket sock) loads snapshot name's device state:
 * x-ignore-shared, migrate-incoming. The caller waits for the load. */
int mapped_incoming(const char *sock, const char *dir, const char *name, qq_err *err);

#endif
