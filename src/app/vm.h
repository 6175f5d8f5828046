/* vm — one VM once started: stop, status, and the ways into a running VM
 * (logs, serial console, gdb, QMP/HMP). Its start is launch.h's; whether it
 * runs, for a command that needs it to, is running.h's.
 *
 * A VM's state lives in spec->state_dir; its files, their names and the
 * runtime paths that stand in for too-long socket paths are layout.h's
 * (vm_probe and vm_state are declared there).
 *
 * Liveness comes from the write lock QEMU holds on its pid file (F_GETLK),
 * never from the pid alone; the run state from QMP query-status. start and
 * stop hold the VM's lock file (serialised per VM); probes never wait on it.
 * Errors: -1 with err filled; QQ_EXIT_USAGE for a bad VM name, QQ_EXIT_FAIL
 * for everything QEMU or the system did.
 */
#ifndef QQ_VM_H
#define QQ_VM_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../base/err.h"
#include "config.h"
#include "layout.h"

typedef struct vm_stop_result {
    bool was_running;
    pid_t pid;
    const char *stopped_by;   /* "powerdown", "quit", "SIGTERM", "SIGKILL", or NULL */
    double seconds;
} vm_stop_result;

/* Stop VM name: system_powerdown (repeated) up to timeout_s, then QMP quit,
 * SIGTERM, SIGKILL; force skips the powerdown. Removes pid file and sockets.
 * The ssh master is the caller's to close (ssh_close_master), after this.
 * name may be a departed VM (recorded.h): running, no longer in the config. */
int vm_stop(const config *cfg, const char *name, int timeout_s, bool force, vm_stop_result *r,
            qq_err *err);

/* The status document: the original qqmgr's fields (name pid pid_file running
 * alive qmp_connected ssh{port config} serial_file qmp_socket monitor_socket
 * qemu_stdout qemu_stderr status_details) plus state, uptime (seconds),
 * configured (false: a departed VM, recorded.h), config_changed and
 * config_change (the running VM's recorded argv is not what the config gives
 * today: the first difference, or null), snapshot (what the running QEMU
 * was started from, or null), and for a VM (not a copy "VM#N") copies: its
 * throwaway copies (vm_copy_json each; the dead ones swept first, copies.h).
 * name may be a copy's. ssh.port is the recorded one while it runs. running: the process is alive; alive: it is and QMP answers. */
json_t *vm_status_json(const config *cfg, const char *name, qq_err *err);

/* The snapshot the QEMU running in dir was started from (start --restore;
 * malloc'd), or NULL. */
char *vm_restored(const char *dir);

/* One throwaway copy "VM#N" as status and list show it: {name, state
 * ("running", or "starting": no QEMU holds its pid file yet), pid, ssh_port,
 * uptime, snapshot, state_dir}. */
json_t *vm_copy_json(const config *cfg, const char *copy);

/* Seconds since process pid started (a running VM's uptime), from /proc; -1 unknown. */
double vm_uptime(pid_t pid);

enum vm_log { VM_LOG_SERIAL, VM_LOG_STDOUT, VM_LOG_STDERR };

/* Write the last n lines of a log to out (the caller's descriptor: cmd/
 * passes stdout); with follow, keep writing what is appended (inotify) until
 * the VM stops. */
int vm_log(const config *cfg, const char *name, enum vm_log which, size_t n, bool follow, int out, qq_err *err);

/* The last n lines of the log of the run `previous` (1 = the one before the
 * current run, up to LAYOUT_LOG_KEEP) to out; each start keeps the earlier
 * runs' logs (layout_rotate_logs). */
int vm_log_previous(const config *cfg, const char *name, enum vm_log which, size_t n, int previous, int out,
                    qq_err *err);

/* Attach the caller's terminal (in, out: cmd/ passes 0 and 1) to the serial
 * console (raw mode when in is a terminal; Ctrl-] leaves; the terminal is
 * restored on every exit path). Returns when the user leaves or the VM stops. */
int vm_console(const config *cfg, const char *name, int in, int out, qq_err *err);

/* Replace this process with gdb on QEMU with the VM's full argv (or with
 * --attach, on the running QEMU). extra: gdb arguments; debug: print the
 * command line on stderr first. Returns only on error. */
int vm_gdb(const config *cfg, const char *name, bool attach, char **extra, int nextra, bool debug,
           qq_err *err);

/* Does console text (a serial log's last lines) show a Linux kernel panic
 * ("Kernel panic - not syncing: WHY", as its last line repeats it)? WHY,
 * control characters as '?', goes to why (len > 0). */
bool vm_console_panic(const char *text, char *why, size_t len);

/* One QMP command; the whole reply object ({"return": …} or {"error": …}). */
json_t *vm_qmp(const config *cfg, const char *name, const char *command, json_t *args, qq_err *err);

/* One HMP command line; its output (caller frees). */
char *vm_hmp(const config *cfg, const char *name, const char *command_line, qq_err *err);

#endif
