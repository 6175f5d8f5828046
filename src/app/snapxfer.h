/* snapxfer — a snapshot as one stream: `snapshot export` and `snapshot import`.
 *
 * Export writes one self-contained, checksummed stream of a VM's snapshot to
 * a file or a pipe (stdout); import reads one from a file or a pipe (stdin),
 * verifies all of it and installs it as a snapshot of the importing VM, or
 * installs nothing. Both stream with bounded buffers (one record, at most
 * SNAPX_CHUNK bytes, in memory), so a snapshot of any size passes through
 * `ssh` (`qqmgr -H`) or a file.
 *
 * Kinds. A state-file snapshot (diskless VM: <vm dir>/snapshots/NAME.state
 * and NAME.json, snapshot.h) travels as the files "state" and "meta". A
 * mapped snapshot (the dir snapshots/NAME/, mapped.h) travels as the files
 * its meta.json lists (state, ram — sparse —, the disk layers) and "meta"
 * (its meta.json). A qcow2 layer whose backing file is an image this config
 * builds (STATE/img.X/ENTRY: its base copy base-HASH.img, HASH a digest of
 * the image's base and size, or the image itself) is sent without it: the
 * header names it (bases: [{layer, image X, file ENTRY, format}]); import
 * requires the same file built on its side ("build image X first") and
 * rebases the layer onto it (qemu-img rebase -u). A layer on any other
 * backing file is refused by export. Import rewrites the exporting host's
 * state dir and config dir (header: state_dir, config_dir) to its own in
 * meta.json's args and disks[].file, and refuses a disk that the VM's cmd
 * here does not name (a restore writes each layer back over its disk). An internal qcow2 snapshot lives inside
 * the VM's disks, which are not part of a snapshot: export refuses it
 * (QQ_EXIT_FAIL) saying so.
 *
 * The QEMU arguments. The header carries the VM's user arguments (vm_spec
 * args: its rendered cmd) as they were at the save (recorded in NAME.json by
 * snapshot save; an older snapshot: as the exporting config resolves them
 * now), normalised, and their sha256. Import resolves the same VM of its own config, normalises
 * alike and refuses a stream whose arguments differ, naming the arguments
 * that differ. Normalising replaces what is legitimately host-specific:
 *  - the config's state dir (an absolute path, where it appears as a whole
 *    path: followed by '/', the end, or a character that cannot continue a
 *    file name) by "{state}", then the config's directory by "{config}";
 *  - the VM's ssh host port as a whole number (no digit on either side) by
 *    "{ssh.port}" (an automatic port is rendered with 65533 for this).
 * Anything else (memory size, devices, kernel paths outside the two dirs)
 * must match: the state of one machine model does not load into another.
 *
 * Stream format, version 1 (integers big-endian):
 *   magic     8 bytes "qqsnap\n" 0x01
 *   records   type (1 byte), length (8 bytes), payload (length bytes):
 *     'H'  the header, a JSON object (at most 1 MiB):
 *          {format: 1, vm, snapshot, kind, date, args: [normalised],
 *           args_sha256, files: [{name, size}] (the last is "meta"),
 *           state_dir, config_dir, bases (mapped)}
 *     'S'  64 hex: sha256 of the magic and the H record (checked before the
 *          header is believed: a refusal by header is never a corrupt one)
 *     then for each file of the header, in its order:
 *     'F'  JSON {name, size}
 *     'D'  the file's next bytes (1..SNAPX_CHUNK)
 *     'Z'  8 bytes: that many zero bytes (a hole: sparse on both ends; an
 *          all-zero chunk is sent as one too)
 *     'E'  64 hex: sha256 of this file's records F…last D/Z, type and
 *          length bytes included
 *     'T'  64 hex: sha256 of the S value followed by every E value (the
 *          hex texts, in order): the whole stream's digest
 *   and nothing after T. Each byte is hashed once on each side.
 *
 * Refusals (QQ_EXIT_FAIL, one line, nothing installed): not a stream (bad
 * magic), a newer format, a truncated stream (naming the file and byte where
 * it ended), a corrupted one (a record that cannot be, or a digest mismatch
 * naming the file), a snapshot of another VM, arguments that differ (naming
 * them), an existing snapshot name (unless force: the state-file or
 * exported snapshot of that name is replaced; an internal qcow2 one never).
 *
 * Installing: the files are written in <vm dir>/snapshots/.import.PID.START/
 * (PID and start time of the importing qqmgr), each fsync'd; when all of the
 * stream checked out, under the VM's lock, they are renamed into place
 * (state-file: meta → NAME.json first, then state → NAME.state, the commit:
 * a snapshot is listed only once its .state exists; mapped: meta → meta.json,
 * then the whole dir renamed to NAME, or exchanged with the one it replaces)
 * and the snapshots dir is fsync'd.
 * SIGINT, SIGTERM and SIGHUP stop export and import between records
 * (blocking reads and writes return EINTR): import removes its temp dir,
 * an export to a file leaves none (see snapx_export); QQ_EXIT_FAIL
 * "interrupted". A qqmgr killed with SIGKILL leaves its temp dir, which
 * leftover_sweep_imports() removes (called by every import, and by
 * leftover_repair: the next command on the VM). An imported snapshot is the
 * importing VM's own (it is in its snapshots dir): list, restore, start
 * --restore, run --restore and delete take it like one it saved.
 */
#ifndef QQ_SNAPXFER_H
#define QQ_SNAPXFER_H

#include <stdbool.h>

#include "../base/err.h"
#include "config.h"

#define SNAPX_FORMAT 1
#define SNAPX_CHUNK (1u << 20)   /* the largest D record */

typedef struct snapx_result {
    const char *kind;            /* "state-file" or "mapped" */
    char snapshot[130];          /* the name it has (import: --as or the stream's) */
    unsigned long long bytes;    /* stream bytes written or read */
    unsigned long long data;     /* file bytes the stream carries (holes included) */
    double seconds;
    bool replaced;               /* import: an existing snapshot of that name was replaced */
} snapx_result;

/* Write snapshot name of vm as a stream to path (NULL or "-": stdout, which
 * must not be a terminal — the caller checks). A file is written as a file
 * without a name (O_TMPFILE in path's directory; where the file system has
 * none, path.tmp-PID), fsync'd and named path when complete (replacing
 * one): an export killed even with SIGKILL leaves no partial file (only
 * the fallback's). SIGPIPE is ignored while it runs: a reader that stops
 * is "the reader closed the stream". */
int snapx_export(const config *c, const char *vm, const char *name, const char *path, snapx_result *r,
                 qq_err *err);

typedef struct snapx_import_opts {
    const char *as;              /* install under this name instead of the stream's, or NULL */
    bool force;                  /* replace an existing snapshot of that name */
} snapx_import_opts;


/* Read a stream from path (NULL or "-": stdin), verify it, install it as a
 * snapshot of vm. */
int snapx_import(const config *c, const char *vm, const char *path, const snapx_import_opts *o,
                 snapx_result *r, qq_err *err);

#endif
