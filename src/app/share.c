/* share — mounting a VM's shares in the guest over ssh (share.h). */
#include "share.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "../infra/proc.h"
#include "ssh.h"


static int mount_one(const ssh_target *t, const char *vm, const vm_share *sh, bool debug, qq_err *err)
{
    _cleanup_sbuf_ sbuf cmd = SBUF_INIT, line = SBUF_INIT, out = SBUF_INIT;
    sbuf_addf(&line, "%s %s 9p ", sh->tag, sh->mount);
    sbuf_adds(&cmd, "grep -qsF ");
    sbuf_add_shell_quoted(&cmd, sbuf_str(&line));
    sbuf_adds(&cmd, " /proc/mounts || { mkdir -p ");
    sbuf_add_shell_quoted(&cmd, sh->mount);
    sbuf_adds(&cmd, " && mount -t 9p -o trans=virtio,version=9p2000.L ");
    sbuf_add_shell_quoted(&cmd, sh->tag);
    sbuf_addc(&cmd, ' ');
    sbuf_add_shell_quoted(&cmd, sh->mount);
    sbuf_adds(&cmd, "; }");
    char *av[] = { "ssh", "-F", (char *)t->conf, "-o", "BatchMode=yes", (char *)t->alias, "--",
                   (char *)sbuf_str(&cmd), NULL };
    if (debug)
        proc_echo(av);
    proc_run_opts o = { .null_stdio = true, .err = &out, .timeout_ms = SHARE_MOUNT_MS };
    proc_result r;
    if (proc_run(av, &o, &r, NULL) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "mounting share %s in %s: cannot run ssh: %s", sh->tag, vm, strerror(errno));
    if (r.timed_out)
        return qq_fail(err, QQ_EXIT_FAIL, "mounting share %s on %s in %s: no answer within %d s (the VM is left "
                       "running)", sh->tag, sh->mount, vm, SHARE_MOUNT_MS / 1000);
    if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0)
        return 0;
    while (out.len && (out.buf[out.len - 1] == '\n' || out.buf[out.len - 1] == '\r'))
        out.buf[--out.len] = '\0';
    return qq_fail(err, QQ_EXIT_FAIL, "mounting share %s on %s in %s failed (the VM is left running; the ssh "
                   "user must be allowed to mount, the kernel needs 9p and 9pnet_virtio): %s", sh->tag, sh->mount,
                   vm, out.len ? sbuf_str(&out) : "no message");
}

int share_mount(const config *c, const char *vm, bool debug, qq_err *err)
{
    vm_spec s;
    if (config_vm(c, vm, 0, &s, err) < 0)
        return -1;
    int rc = 0;
    bool any = false;
    for (size_t i = 0; i < s.nshares; i++)
        any = any || s.shares[i].mount;
    if (any) {
        ssh_target t;
        rc = ssh_prepare(c, vm, true, &t, err);
        for (size_t i = 0; rc == 0 && i < s.nshares; i++)
            if (s.shares[i].mount)
                rc = mount_one(&t, vm, &s.shares[i], debug, err);
    }
    vm_spec_free(&s);
    return rc;
}
