/* qmp — a client for QEMU's QMP protocol over a unix socket.
 *
 * qmp_open() connects (any path length), reads the greeting and negotiates
 * capabilities; every read is bounded by a timeout, because a QEMU may be
 * serving another client on its one-client socket (the connect succeeds but
 * no greeting comes) or be wedged. qmp_execute() sends {"execute", "arguments",
 * "id"} and waits for the reply with that id; events that arrive meanwhile
 * are kept (qmp_take_events).
 *
 * A peer that floods or stalls cannot hold a caller: every call has one hard
 * deadline (its timeout_ms, counted from the call) that arriving data cannot
 * extend — an endless stream of events or blank lines ends the call at the
 * deadline like silence does; connecting to a listener that never accepts is
 * bounded by the same clock. One message longer than QMP_MAX_MESSAGE bytes,
 * or holding more than QMP_MAX_VALUES JSON values, is "malformed" (memory
 * stays bounded by them: parsing costs a few times the message). At most QMP_MAX_EVENTS events are
 * kept: a full queue drops its oldest, counted by qmp_events_dropped.
 *
 * Errors are one line: a transport failure
 * ("QMP /path: no greeting within 2.0 s (another client connected?)") or
 * QEMU's own error ("QMP query-foo: CommandNotFound: The command … has not
 * been found"), code QQ_EXIT_FAIL. After a transport error the connection is
 * unusable (qmp_close it). A qmp handle is owned by the caller.
 */
#ifndef QQ_QMP_H
#define QQ_QMP_H

#include <jansson.h>
#include <stdbool.h>

#include "../base/err.h"

#define QMP_MAX_MESSAGE (16u << 20)   /* bytes in one message (one line) */
#define QMP_MAX_VALUES (256u << 10)   /* JSON values in one message */
#define QMP_MAX_EVENTS 1024             /* events kept between qmp_take_events */

typedef struct qmp qmp;

qmp *qmp_open(const char *socket_path, int timeout_ms, qq_err *err);
void qmp_close(qmp *q);

/* Execute command with args (borrowed, may be NULL). Returns a new reference
 * to the reply's "return" value, or NULL with err filled. */
json_t *qmp_execute(qmp *q, const char *command, json_t *args, int timeout_ms, qq_err *err);

/* Like qmp_execute, but a QEMU error reply is returned as the reply object
 * ({"error": {...}}), not as a failure; only transport errors return NULL. */
json_t *qmp_execute_reply(qmp *q, const char *command, json_t *args, int timeout_ms, qq_err *err);

/* A reply's "return" (a new reference), or NULL when it is an error reply:
 * then *cls and *desc (each may be NULL) are its error class and description,
 * NULL when missing. */
json_t *qmp_reply_return(json_t *reply, const char **cls, const char **desc);

/* Run an HMP command line through human-monitor-command; its text (caller frees). */
char *qmp_hmp(qmp *q, const char *command_line, int timeout_ms, qq_err *err);

/* Whether HMP `info registers` text shows an x86 CPU still at its reset
 * vector (CS base ffff0000, IP fff0): a guest that never ran. */
bool qmp_regs_at_reset(const char *info_registers);

/* Wait up to timeout_ms for one event to arrive (it is kept, with any other
 * event already received). 1 an event arrived (or was already kept), 0
 * timeout, -1 transport error / EOF / malformed. */
int qmp_wait_event(qmp *q, int timeout_ms, qq_err *err);

/* The events received so far (a new array reference), and forget them. */
json_t *qmp_take_events(qmp *q);

/* How many events were dropped because the queue was full. */
unsigned long qmp_events_dropped(const qmp *q);

/* The greeting object (borrowed). */
const json_t *qmp_greeting(const qmp *q);

/* The socket, for poll() by callers that wait on several things. */
int qmp_fd(const qmp *q);

#endif
