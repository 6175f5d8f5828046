/* share — host folders in the guest: mounting the [vm.NAME.share.TAG]
 * tables that have a mount (config.h vm_share; launch.h adds their 9p
 * devices).
 *
 * share_mount() runs, over ssh (ssh.h's config and master), one command in
 * the guest per share with a mount:
 *   grep -qsF 'TAG MOUNT 9p ' /proc/mounts ||
 *     { mkdir -p MOUNT && mount -t 9p -o trans=virtio,version=9p2000.L TAG MOUNT; }
 * so a share mounted already (a restored snapshot, a second `start --wait`)
 * is left as it is. It is called once ssh is ready: by `start --wait`,
 * `wait` and `run`. The ssh user must be allowed to mount (root); a guest
 * without a login mounts the share itself (fstab, docs/reference.md).
 *
 * Errors: QQ_EXIT_FAIL "mounting share TAG on MOUNT in VM failed: <the
 * guest's message>" (the VM is left running); a VM without shares to mount
 * is 0 at once, without ssh. Each ssh is bounded (SHARE_MOUNT_MS).
 */
#ifndef QQ_SHARE_H
#define QQ_SHARE_H

#include <stdbool.h>

#include "../base/err.h"
#include "config.h"

#define SHARE_MOUNT_MS 30000

int share_mount(const config *c, const char *vm, bool debug, qq_err *err);

#endif
