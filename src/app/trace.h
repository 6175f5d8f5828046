/* trace — QEMU's trace events of a running VM, listed and switched at run
 * time over QMP (trace-event-get-state / trace-event-set-state).
 *
 * A PATTERN is QEMU's: an event name, or a glob with `*` ("virtio_blk_*").
 * Where enabled events go depends on QEMU's trace backend; Debian's QEMU has
 * the "log" backend, which writes them to QEMU's log: its stderr, which qqmgr
 * keeps in the state dir (qemu-stderr.log), so `trace VM log` is that file.
 * A cmd that sets `-D FILE` sends the log to FILE instead (trace_log says so).
 *
 * Errors: -1 with err: a VM that is not running (QQ_EXIT_FAIL, with the hint),
 * a pattern that matches no event ("no trace event matches 'P'", QQ_EXIT_FAIL),
 * QEMU's own refusal (QQ_EXIT_FAIL, its words).
 */
#ifndef QQ_TRACE_H
#define QQ_TRACE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "../base/err.h"
#include "config.h"

/* [{name, state}] sorted by name; state is "enabled", "disabled" or
 * "unavailable" (compiled out). pattern NULL: every event. New reference. */
json_t *trace_list(const config *cfg, const char *name, const char *pattern, qq_err *err);

/* Enable (on) or disable the events matching pattern; *count = how many
 * matched (events that are unavailable are left alone and not counted). */
int trace_set(const config *cfg, const char *name, const char *pattern, bool on, size_t *count, qq_err *err);

/* The last n lines of where trace output goes (QEMU's stderr), following
 * with follow until the VM stops (as `stderr VM`), written to out. */
int trace_log(const config *cfg, const char *name, size_t n, bool follow, int out, qq_err *err);

#endif
