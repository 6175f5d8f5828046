/* forward — host port forwards added to a running VM's user-mode network
 * (QEMU's slirp) through HMP hostfwd_add / hostfwd_remove.
 *
 * A forward is written `tcp:[HOSTADDR:]HOSTPORT:GUESTPORT` (udp: too);
 * HOSTADDR defaults to 127.0.0.1 (0.0.0.0 for every address), HOSTPORT 0 or
 * "auto" asks for a free port (chosen here, reported back). For remove:
 * `tcp:[HOSTADDR:]HOSTPORT`. The netdev is the one that carries the VM's ssh
 * forward (found with HMP `info usernet`), the only user-mode netdev when there
 * is no ssh forward, or the one named (--netdev ID).
 *
 * Forwards added here are recorded in the state dir (forwards.json, with the
 * pid of the QEMU they belong to) and listed by forward_list; they end with
 * the VM (stop and start remove the record; a record of another QEMU is not
 * listed). Updates take the VM's lock.
 *
 * Errors: -1 with err: a malformed forward (QQ_EXIT_USAGE, naming it); a VM
 * that is not running (QQ_EXIT_FAIL, with the hint); QEMU's refusal, e.g. a
 * host port in use (QQ_EXIT_FAIL, QEMU's words).
 */
#ifndef QQ_FORWARD_H
#define QQ_FORWARD_H

#include <jansson.h>
#include <stdbool.h>

#include "../base/err.h"
#include "config.h"

typedef struct forward {
    char proto[4];         /* "tcp" or "udp" */
    char host_addr[64];    /* "127.0.0.1" unless given */
    int host_port;         /* 0: choose a free one (add) */
    int guest_port;        /* 0 for remove */
    char netdev[64];       /* the netdev it is on ("" until known) */
} forward;

/* Parse spec; with_guest: the add form (GUESTPORT required), else the remove form. */
int forward_parse(const char *spec, bool with_guest, forward *f, qq_err *err);

/* Add f to VM name on netdev (NULL: found as above); fills f->host_port when
 * it was 0 and f->netdev. */
int forward_add(const config *cfg, const char *name, const char *netdev, forward *f, qq_err *err);

/* Remove the forward on f's host address and port; fills f from the record
 * when there is one. */
int forward_remove(const config *cfg, const char *name, const char *netdev, forward *f, qq_err *err);

/* The recorded forwards: [{proto, host_addr, host_port, guest_port, netdev}]. */
json_t *forward_list(const config *cfg, const char *name, qq_err *err);

/* Every host port forward of the QEMU running as pid from vm_dir: the
 * hostfwd= rules of the command line it started with (argv.json, the ssh
 * forward among them) then those added at run time, each as above plus
 * "from": "cmd" | "forward". Never fails: what cannot be read is left out. */
json_t *forward_ports(const char *vm_dir, pid_t pid);

#endif
