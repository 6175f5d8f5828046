/* running — the one answer to "is VM NAME running?" for a command that needs
 * it to be (console, qmp, monitor, gdb --attach, gdb --guest, trace, events,
 * forward, snapshot restore).
 *
 * Running means a QEMU holds the write lock on the VM's pid file (layout.h:
 * layout_pid_holder; never the pid alone). A VM that is not running is
 * QQ_EXIT_FAIL with one message, the same for every command:
 *   NAME is not running (start it: qqmgr start NAME)
 * (or `qqmgr start NAME --restore SNAP` where that is what the user wants),
 * (the program name as the user typed it: config_cli). An unknown VM is
 * config_check_vm's QQ_EXIT_USAGE.
 */
#ifndef QQ_RUNNING_H
#define QQ_RUNNING_H

#include <sys/types.h>

#include "../base/err.h"
#include "config.h"

/* 0 when VM name runs, with *pid (may be NULL) and *state_dir (caller frees;
 * may be NULL); else -1 with err as above. */
int running_require(const config *cfg, const char *name, pid_t *pid, char **state_dir, qq_err *err);

/* The message alone, for a caller that found the VM stopped by other means:
 * always -1. start_args: what the hint adds after `start NAME` (such as
 * "--restore SNAP"), or NULL. */
int running_not(const config *cfg, const char *name, const char *start_args, qq_err *err);

#endif
