/* remote — `qqmgr -H HOST COMMAND …`: the same command, run by qqmgr on
 * another host through the user's own OpenSSH. No daemon, no protocol of our
 * own: the remote qqmgr prints, and its exit status is ours.
 *
 * HOST is [ssh://][USER@]HOST[:PORT] (an IPv6 address in [ ]), or a Host
 * alias of the user's ssh config. The command line run there is
 *   ssh [-F $QQMGR_SSH_CONFIG] [-l USER] [-p PORT] [-t|-n] HOST -- \
 *       $QQMGR_REMOTE_BIN [-d] [-c FILE] COMMAND ARGS…
 * with every word after QQMGR_REMOTE_BIN (default "qqmgr", inserted as
 * written so it may be "~/bin/qqmgr" or "sudo qqmgr") quoted for the remote
 * POSIX shell. -c FILE names a file on the remote host (a relative one is
 * relative to the remote login directory). A terminal (-t) is asked for when
 * the command needs one (console, gdb/qemu) and ours is one; other commands
 * get -n (stdin stays with the caller), except `snapshot import`, whose
 * stream is our stdin: ssh passes it on byte for byte (no terminal). stdout
 * and stderr pass through untouched, so --json output is the remote
 * document byte for byte, and `snapshot export VM S -` is the stream. A
 * snapshot stream on our stdout or stdin that is a terminal is refused here
 * (QQ_EXIT_USAGE), as the command refuses one on its own host.
 *
 * ssh, put and get reach the VM through the host instead: the remote
 * `ssh-config VM --json` gives the VM's ssh config, which is used here with
 * ProxyCommand `ssh … HOST -W 127.0.0.1:PORT` (connection sharing off), so
 * files move between this machine and the guest directly. That config is
 * written to ${XDG_CACHE_HOME:-~/.cache}/qqmgr/remote/[USER@]HOST[:PORT]/
 * VM.ssh.conf on each use (ssh reads -F only from a file); when the host
 * pins the VM's host keys, its known_hosts is mirrored to VM.known_hosts
 * there on each use and used instead of the host's path. Of the host's
 * config only an allowlist of keywords that cannot run, forward or load
 * anything here is copied (local_config in remote.c); the others are named in
 * one warning (report_line). Files the VM's
 * config names (IdentityFile…) must exist here at the same path, or the key
 * be in the agent.
 *
 * Exit status: the remote one; ssh's own failure (255: host unreachable,
 * authentication refused…) → 1 after ssh's message; 127 from the remote
 * shell → 1, "qqmgr not found on HOST".
 */
#ifndef QQ_REMOTE_H
#define QQ_REMOTE_H

#include <stdbool.h>

#include "../base/err.h"

typedef struct remote_host {
    char host[256];    /* destination for ssh: a name, an address, an alias */
    char user[128];    /* "" when not given */
    int port;          /* 0 when not given */
} remote_host;

/* Parse [ssh://][USER@]HOST[:PORT]. A bad one → -1, QQ_EXIT_USAGE naming it. */
int remote_parse(const char *spec, remote_host *out, qq_err *err);

/* Run argv[0..argc) (the command and its arguments, global options removed)
 * on host with config_path (NULL: the remote default) and debug (-d, also
 * printing the ssh command line here). Returns the exit status to end with,
 * or -1 with err. May replace this process (ssh into a VM). */
int remote_run(const remote_host *h, const char *config_path, bool debug, int argc, char **argv, qq_err *err);

#endif
