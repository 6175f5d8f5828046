/* vm — the lifecycle of one VM: its state dir, start, stop, status.
 *
 * A VM's state lives in spec->state_dir (DESIGN.md "State of one VM"). Liveness
 * comes from the write lock QEMU holds on its pid file (F_GETLK), never from the
 * pid alone; the run state from QMP query-status.
 *
 * (Owned by the lifecycle work; the functions below are what the read-only
 * commands need and must stay.)
 */
#ifndef QQ_VM_H
#define QQ_VM_H

#include <stdbool.h>
#include <sys/types.h>

#include "../base/err.h"
#include "config.h"

/* The exact argv start runs: qemu_bin, the user args, then the injected ones
 * (-pidfile, -qmp, -monitor, serial). NULL-terminated, caller frees each string
 * and the array. A user argument that sets an injected option → QQ_EXIT_USAGE
 * naming it. Creates nothing on disk. */
int vm_argv(const vm_spec *s, char ***argv, qq_err *err);

typedef struct vm_state {
    bool running;          /* the QEMU process is alive (pid-file lock held) */
    pid_t pid;             /* 0 when not running */
    int ssh_port;          /* the host port in use (auto ports as recorded); 0 unknown */
    bool qmp_connected;    /* only when asked to query QMP */
    char state[32];        /* "stopped", "running", "paused", "internal-error", "broken", … */
} vm_state;

/* Probe a VM's state dir. With query_qmp, also ask QMP for the run state
 * (bounded by a short timeout); without, state is "running" or "stopped".
 * Never takes the VM's lock. Returns 0 (a missing state dir reads as stopped). */
int vm_probe(const char *state_dir, bool query_qmp, vm_state *out);

#endif
