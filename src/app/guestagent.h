/* guestagent — the qemu-guest-agent of a VM with `guest_agent = true`.
 *
 * launch.h adds the channel: a virtio-serial port named
 * org.qemu.guest_agent.0 whose host side is the unix socket
 * SOCK/qga.socket (layout.h), one per run (a throwaway copy has its own).
 * The guest must run qemu-ga on it (Debian's qemu-guest-agent package does
 * when the port exists).
 *
 * The protocol is QMP's JSON without a greeting, one command at a time over
 * one connection. Whatever an earlier client left in the channel is skipped
 * by guest-sync-delimited: its answer follows a 0xFF byte and repeats a
 * random id. A guest without a running agent never answers: every call is
 * bounded by its deadline (clock_ms()), and ends within 0.1 s of a signal
 * caught (sig.h), "interrupted".
 */
#ifndef QQ_GUESTAGENT_H
#define QQ_GUESTAGENT_H

#include <jansson.h>
#include <stdbool.h>

#include "../base/err.h"
#include "config.h"

/* The agent's socket of run vm ("VM" or "VM#N"), or NULL when its VM has no
 * `guest_agent = true` (or the config cannot resolve it). Caller frees. */
char *guestagent_socket(const config *c, const char *vm);

/* `qqmgr ga`: command (args may be NULL) on the agent of running VM vm,
 * within timeout_ms in all; its "return" value (new reference), or NULL
 * with err: the VM not running (as running.h says), no `guest_agent = true`
 * (naming the key), the agent silent or its error. */
json_t *guestagent_run(const config *c, const char *vm, const char *command, json_t *args, int timeout_ms,
                       qq_err *err);

/* Connect and synchronise: the fd, or -1 with err (QQ_EXIT_FAIL; "the guest
 * agent did not answer" when nothing came back by the deadline). */
int guestagent_open(const char *sock, long long deadline_ms, qq_err *err);

/* Run command (args may be NULL) and return its "return" value (new
 * reference), or NULL with err (the agent's "error" desc, or why not). */
json_t *guestagent_execute(int fd, const char *command, json_t *args, long long deadline_ms, qq_err *err);

#endif
