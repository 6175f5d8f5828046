/* debug — the debugging kit's share of a VM's run: what start adds to QEMU's
 * argv for it, and the check its commands (gdb --guest, trace, events,
 * forward) share.
 *
 * debug_argv_finish() completes the argv vm_argv() built (qemu_bin, the user's
 * arguments, qqmgr's injected ones) with:
 *   -gdb unix:SOCKDIR/gdb.socket,server=on,wait=off
 *        the guest's gdbstub, unless the user's cmd sets -s or -gdb itself
 *        (guestgdb.h finds theirs);
 *   -chardev socket,id=qq-events,path=SOCKDIR/events.socket,server=on,wait=off
 *   -mon chardev=qq-events,mode=control
 *        a second QMP monitor, only for `events`: a QEMU socket serves one
 *        client at a time, so following events on qmp.socket would lock out
 *        stop, status and qmp for as long as it runs;
 *   -S   with vm_run_opts.paused (CPUs stopped until `qmp VM cont` or gdb's continue);
 * and puts the words of vm_run_opts.wrap (split like a cmd entry) in front of
 * qemu_bin. SOCKDIR is where QEMU is told the sockets are (the state dir, or
 * its short alias when a path would pass 107 bytes); the files land in the
 * state dir either way.
 *
 * Errors: -1 with err filled; QQ_EXIT_USAGE for a wrapper that does not split
 * or is empty, QQ_EXIT_FAIL for a VM that is not running ("NAME is not
 * running (start it: qqmgr start NAME)").
 */
#ifndef QQ_DEBUG_H
#define QQ_DEBUG_H

#include <stdbool.h>
#include <sys/types.h>

#include "../base/err.h"
#include "config.h"

/* The chardev id of the events monitor (a user's cmd may not use it). The
 * files are layout.h's: LAYOUT_GDB_SOCKET, LAYOUT_EVENTS_SOCKET, LAYOUT_FORWARDS. */
#define DEBUG_EVENTS_CHARDEV "qq-events"

/* How start runs QEMU beyond what the config says. */
typedef struct vm_run_opts {
    bool paused;          /* -S */
    const char *wrap;     /* "strace -f -o FILE": a tool QEMU runs under; NULL none */
    /* the test loop (snapshot.h); both NULL-terminated, may be NULL */
    char *const *extra_args;   /* appended to the user's: -loadvm NAME, -incoming URI, -snapshot */
    char *const *replace;      /* pairs FROM, TO: in each user argument FROM becomes TO (per-run disk copies) */
} vm_run_opts;

/* Append the kit's arguments to the NULL-terminated *argv (which stays the
 * caller's) and put the wrapper in front; ro may be NULL. */
int debug_argv_finish(const vm_spec *s, const vm_run_opts *ro, const char *sock_dir, char ***argv, qq_err *err);

/* The VM runs: 0 with *pid (may be NULL) and *state_dir (caller frees; may be
 * NULL); else -1: unknown VM (QQ_EXIT_USAGE) or not running (QQ_EXIT_FAIL, with the hint). */
int debug_running(const config *cfg, const char *name, pid_t *pid, char **state_dir, qq_err *err);

#endif
