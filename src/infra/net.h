/* net — local sockets: unix-socket connect for any path length, TCP port checks,
 * a TCP connection without Nagle's delay handed to another process.
 *
 * net_unix_connect() connects a SOCK_STREAM unix socket; a path longer than
 * sun_path (107 bytes) is reached through /proc/self/fd/N/NAME of its
 * directory, so deep state dirs work. Returns the fd (O_CLOEXEC) or -1 with
 * err filled and errno kept (ENOENT, ECONNREFUSED: nobody listening).
 * Port helpers look at the host's TCP ports. A port checked free may still be
 * taken before QEMU binds it: net_reserve_port() keeps parallel qqmgr
 * processes from choosing the same one, and the caller retries when another
 * program was faster (QEMU: "Could not set up host forwarding rule").
 */
#ifndef QQ_NET_H
#define QQ_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/err.h"

int net_unix_connect(const char *path, qq_err *err);

/* The same, bounded: a listener whose backlog is full (one that never
 * accepts) is retried until timeout_ms, then -1 with errno ETIMEDOUT.
 * timeout_ms < 0: wait as long as connect() does. The descriptor returned
 * is blocking either way. */
int net_unix_connect_ms(const char *path, int timeout_ms, qq_err *err);

/* A TCP connection to host:port (numeric or a name; each address in turn)
 * with TCP_NODELAY set, blocking, O_CLOEXEC. -1 with err "connect to host H
 * port P: REASON" (ssh's words) and errno kept. */
int net_tcp_connect_nodelay(const char *host, const char *port, qq_err *err);

/* Pass fd over the unix socket sock (one byte and SCM_RIGHTS: what ssh's
 * ProxyUseFdpass reads). -1 with err; ENOTSOCK when sock is not a socket. */
int net_send_fd(int sock, int fd, qq_err *err);

/* Is TCP port free to bind on every address (what QEMU's hostfwd=tcp::PORT does)? */
bool net_tcp_port_free(int port);

/* A free loopback TCP port chosen by the kernel; -1 with err on failure. */
int net_pick_port(qq_err *err);

/* Reserved automatic ports, shared by every qqmgr process of the user.
 *
 * The registry is one text file, ${XDG_CACHE_HOME:-~/.cache}/qqmgr/ports
 * (QQMGR_PORT_REGISTRY overrides the path; mode 0600, owned by us, never
 * reached through a symlink: such a file is not used), a line "PORT PID START" per
 * reservation (START: the owner's start time in clock ticks, so a reused pid
 * is not mistaken for the owner), read and rewritten under an exclusive flock.
 * A reservation ends when its owner releases it (once QEMU holds the port, or
 * gave up) or when the owner process is gone; a stale line is dropped by the
 * next reservation.
 *
 * net_reserve_port() picks a port that is free to bind on every address, is
 * not reserved by a live process and is not in avoid[0..navoid) (ports that
 * already failed for this caller), records it for the calling process and
 * returns it; -1 with err. Without a usable registry (no HOME, unwritable) it
 * falls back to net_pick_port(). net_release_port() drops the calling
 * process's reservation of port; quiet, never fails. */
int net_reserve_port(const int *avoid, size_t navoid, qq_err *err);
void net_release_port(int port);

#endif
