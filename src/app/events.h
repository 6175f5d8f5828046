/* events — the QMP events of a running VM (STOP, RESUME, RESET, SHUTDOWN,
 * GUEST_PANICKED, BLOCK_IO_ERROR, …) as they happen.
 *
 * QEMU sends events to the QMP clients connected when they happen and keeps
 * none, and there is no daemon to record them: what `events` sees begins when
 * it connects. It connects to the VM's own events monitor (events.socket, see
 * launch.h), not to qmp.socket, so stop, status and qmp work meanwhile; one
 * `events` at a time per VM (QEMU serves one client per socket).
 *
 * events_watch() calls fn for every event (the object as QEMU sent it,
 * borrowed) until: follow — the VM's QEMU ends (after its last events);
 * not follow — the first event has been delivered; or timeout_ms passes
 * (< 0: no limit; without follow a timeout is QQ_EXIT_FAIL "no event within …"). fn
 * returning non-zero stops the watch (events_watch returns 0). fn is first
 * called once with event NULL when the connection stands: events from then
 * on will be seen (a caller may say so, or start what it wants to watch).
 * Errors: -1 with err (not running, with the hint; no events socket; QMP; a
 * stream that breaks — malformed, over 16 MiB — while the VM runs, follow or
 * not; "stopped before an event came" only when QEMU ended).
 */
#ifndef QQ_EVENTS_H
#define QQ_EVENTS_H

#include <jansson.h>
#include <stdbool.h>

#include "../base/err.h"
#include "config.h"

typedef int (*events_fn)(const json_t *event, void *data);

int events_watch(const config *cfg, const char *name, bool follow, int timeout_ms, events_fn fn, void *data,
                 qq_err *err);

#endif
