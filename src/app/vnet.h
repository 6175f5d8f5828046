/* vnet — the private switch behind a [net.NAME] network.
 *
 * A network the VMs of one config share is a vde_switch (Debian's vde2)
 * whose socket directory is layout_net_dir(): inside the user's private
 * runtime dir (rundir.h), itself made 0700 by the switch. No other user can
 * reach the switch's sockets, so nobody else reads or injects frames (the
 * multicast groups used before were open to every local process). The VMs
 * join it with `-netdev vde,id=ID,sock={{.net.NAME.sock}}`.
 *
 * vnet_up() is called before a QEMU is spawned with argv: every switch of
 * the state dir its arguments join (a vde netdev's sock=DIR, DIR as
 * layout_net_dir() names it; any other vde socket is the user's own) that
 * is not running is started (daemonised, pid file beside the socket dir);
 * it returns a descriptor holding the state dir's
 * network lock shared; keep it until QEMU runs (then it holds the pid file),
 * so that a concurrent vnet_down() does not stop a switch a VM is about to
 * join. vnet_down() is called when a VM has stopped: every switch its
 * recorded argv (argv.json) joined and that no running VM of the state dir
 * joined is stopped and its directory removed.
 */
#ifndef QQ_VNET_H
#define QQ_VNET_H

#include "../base/err.h"

/* argv: NULL-terminated. Returns the lock descriptor (>= 0), -2 when argv
 * joins no network, -1 with err filled (vde_switch missing or failing). */
int vnet_up(const char *state_dir, char *const *argv, qq_err *err);

/* After vm_dir's QEMU ended. Best effort: problems are not reported. */
void vnet_down(const char *state_dir, const char *vm_dir);

#endif
