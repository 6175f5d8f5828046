/* ramfile — the running VM's RAM as a file on tmpfs, the ground of mapped
 * snapshots (mapped.h).
 *
 * A VM whose cmd allows it (ramfile_check) runs with its RAM in a file on
 * tmpfs, shared with QEMU (launch.h, launch_opts.ram; ID: ramfile_id):
 *   -object memory-backend-file,id=ID,size=BYTES,mem-path=FILE,share=on
 *   -machine memory-backend=ID FILE is RAM_DIR/ram.PID.N, RAM_DIR =
 * /dev/shm/qqmgr-UID (ours, 0700, checked on every use), PID the qqmgr
 * that starts QEMU: QEMU creates it, qqmgr unlinks it as soon as QMP
 * answers, so it costs no disk writes and goes away with QEMU; a file whose
 * qqmgr died before the unlink is swept by the next start
 * (ramfile_sweep). The run's argv.json (layout.h) is the record that the
 * run has mapped RAM: a save finds the file again through
 * /proc/QEMU_PID/fd (ramfile_of_run).
 * BYTES is the cmd's -m (`-m 512`, `-m 2G`, `-m size=…`; units K M G T,
 * plain numbers MiB; default 128 MiB). Not possible, said once by `snapshot
 * save` and by `show` (the VM keeps internal qcow2 / state-file snapshots):
 * `mapped_ram = false` in [vm.NAME]; the cmd has its own memory backend
 * (-object memory-backend-*, -machine memory-backend=), -numa, -mem-path or
 * -mem-prealloc (hugepages), -m with slots or maxmem, a virtio-balloon or
 * virtio-mem device (QEMU 7.2 punches a discarded page's hole into the file
 * behind a private mapping: the snapshot's RAM file), an -m it cannot read;
 * RAM_DIR is not usable or has less room than the RAM. Nothing here
 * prints; errors are QQ_EXIT_FAIL naming the path.
 */
#ifndef QQ_RAMFILE_H
#define QQ_RAMFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../base/err.h"
#include "config.h"

#define RAMFILE_ID "qq-ram"   /* the memory backend's id (a user's cmd may not use it) … */
#define RAMFILE_PC_ID "pc.ram" /* … except on x86 pc/q35 machines: their default RAM's id,
                                * so the RAM of internal qcow2 / state-file snapshots (a
                                * RAM block of that name) loads into a mapped run too */

/* 1 when VM s can run with mapped RAM (*bytes: its RAM size), 0 when not
 * (why: the reason, one phrase such as "its cmd has -numa"); tmpfs: RAM_DIR
 * must be usable and have room for it too. */
int ramfile_check(const vm_spec *s, bool tmpfs, unsigned long long *bytes, char *why, size_t len);

/* The backend's id for VM s: RAMFILE_PC_ID when QEMU is x86 (qemu-system-
 * x86_64/i386) and the machine pc or q35 (-machine/-M TYPE or type=; none
 * given: pc), else RAMFILE_ID. */
const char *ramfile_id(const vm_spec *s);

/* Does a snapshot of the older kinds (RAM block "pc.ram") load into VM s
 * with mapped RAM? Else such a restore runs with QEMU's own RAM. */
bool ramfile_loads_older(const vm_spec *s);

/* RAM_DIR, /dev/shm/qqmgr-UID (caller frees; not made). */
char *ramfile_dir(void);

/* A new name for a RAM file of this process in RAM_DIR (made and checked
 * first): NULL with err when RAM_DIR is not usable. Caller frees. */
char *ramfile_new_path(qq_err *err);

/* The name `show` prints for it: RAM_DIR/ram.PID.N (the same at every call;
 * a start picks a fresh one). Caller frees. */
char *ramfile_shown_path(void);

/* Unlink RAM files in RAM_DIR whose qqmgr is gone (QEMU keeps what it has
 * open). */
void ramfile_sweep(void);

/* The running QEMU pid of the VM in dir: "/proc/PID/fd/N", its RAM file
 * when the run has mapped RAM (argv.json says so and QEMU holds the file),
 * *bytes its size; NULL otherwise. Caller frees. */
char *ramfile_of_run(const char *dir, pid_t pid, unsigned long long *bytes);

/* Why VM vm's running QEMU has no mapped RAM (for the note of a save of
 * another kind): a phrase. */
void ramfile_why_not(const config *c, const char *vm, char *why, size_t len);

#endif
