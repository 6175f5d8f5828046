/* net — local sockets: unix-socket connect for any path length, TCP port checks.
 *
 * net_unix_connect() connects a SOCK_STREAM unix socket; a path longer than
 * sun_path (107 bytes) is reached through /proc/self/fd/N/NAME of its
 * directory, so deep state dirs work. Returns the fd (O_CLOEXEC) or -1 with
 * err filled and errno kept (ENOENT, ECONNREFUSED: nobody listening).
 * Port helpers look at the host's TCP ports; they cannot reserve a port
 * (a chosen port may be taken before QEMU binds it — rare, and QEMU then fails
 * with its own message).
 */
#ifndef QQ_NET_H
#define QQ_NET_H

#include <stdbool.h>

#include "../base/err.h"

int net_unix_connect(const char *path, qq_err *err);

/* Is TCP port free to bind on every address (what QEMU's hostfwd=tcp::PORT does)? */
bool net_tcp_port_free(int port);

/* A free loopback TCP port chosen by the kernel; -1 with err on failure. */
int net_pick_port(qq_err *err);

#endif
