/* guestgdb — gdb on the guest, through QEMU's gdbstub of a running VM.
 *
 * Every VM qqmgr starts has a gdbstub: qqmgr injects
 * `-gdb unix:STATE/gdb.socket,server=on,wait=off` (launch.h) unless the user's
 * cmd sets one itself with `-s` (tcp::1234) or `-gdb DEV`; then gdb connects
 * to theirs. A DEV qqmgr can connect to: `tcp:[HOST]:PORT[,…]`, a bare PORT, or
 * `unix:PATH[,…]` (a relative PATH is QEMU's, i.e. relative to the config's
 * directory); anything else (stdio, pty, none, …) is QQ_EXIT_USAGE naming the
 * argument and its place in the config.
 *
 * gdb gets `target remote` at its start and leaves with the VM running: on
 * detach (gdb's `detach`, or quitting gdb) QEMU resumes the CPUs.
 *
 * One at a time: QEMU's gdbstub serves one debugger, and a second one on it
 * garbles the first's session and can leave the VM paused. gdb inherits the
 * VM's gdb.lock (flock, taken before the exec); a second `gdb --guest` while
 * it is held fails at once (QQ_EXIT_FAIL, naming the holder's pid).
 */
#ifndef QQ_GUESTGDB_H
#define QQ_GUESTGDB_H

#include <stdbool.h>

#include "../base/err.h"
#include "config.h"

/* Index in s->args of the user's last -s or -gdb, or -1 when there is none. */
int guestgdb_user_option(const vm_spec *s);

/* What gdb's `target remote` takes for VM s: "HOST:PORT" or "unix::PATH"
 * (caller frees). PATH is absolute (the state dir's socket, or the user's). */
char *guestgdb_target(const vm_spec *s, qq_err *err);

/* Replace this process with gdb attached to the running VM's gdbstub:
 *   gdb -q [SYMBOLS] -ex 'target remote TARGET' EXTRA…
 * symbols: a file for gdb (NULL: the VM var `symbols` when set, a path
 * relative to the config's directory; else none). debug: print the command
 * line on stderr first. Returns only on error. */
int guestgdb_exec(const config *cfg, const char *name, const char *symbols, char **extra, int nextra, bool debug,
                  qq_err *err);

#endif
