/* qmp — a client for QEMU's QMP protocol over a unix socket.
 *
 * qmp_open() connects (any path length), reads the greeting and negotiates
 * capabilities; every read is bounded by a timeout, because a QEMU may be
 * serving another client on its one-client socket (the connect succeeds but
 * no greeting comes) or be wedged. qmp_execute() sends {"execute", "arguments",
 * "id"} and waits for the reply with that id; events that arrive meanwhile
 * are kept (qmp_take_events). Errors are one line: a transport failure
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

typedef struct qmp qmp;

qmp *qmp_open(const char *socket_path, int timeout_ms, qq_err *err);
void qmp_close(qmp *q);

/* Execute command with args (borrowed, may be NULL). Returns a new reference
 * to the reply's "return" value, or NULL with err filled. */
json_t *qmp_execute(qmp *q, const char *command, json_t *args, int timeout_ms, qq_err *err);

/* Like qmp_execute, but a QEMU error reply is returned as the reply object
 * ({"error": {...}}), not as a failure; only transport errors return NULL. */
json_t *qmp_execute_reply(qmp *q, const char *command, json_t *args, int timeout_ms, qq_err *err);

/* Run an HMP command line through human-monitor-command; its text (caller frees). */
char *qmp_hmp(qmp *q, const char *command_line, int timeout_ms, qq_err *err);

/* Wait up to timeout_ms for one event to arrive (it is kept). 1 an event
 * arrived (or was already kept), 0 timeout, -1 transport error / EOF. */
int qmp_wait_event(qmp *q, int timeout_ms, qq_err *err);

/* The events received so far (a new array reference), and forget them. */
json_t *qmp_take_events(qmp *q);

/* The greeting object (borrowed). */
const json_t *qmp_greeting(const qmp *q);

/* The socket, for poll() by callers that wait on several things. */
int qmp_fd(const qmp *q);

#endif
