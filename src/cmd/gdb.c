/* gdb (alias qemu) — QEMU under gdb with the VM's exact arguments. */
#include <stdio.h>
#include <string.h>

#include "../app/vm.h"
#include "cmd.h"

int cmd_gdb(qq_ctx *ctx, int argc, char **argv)
{
    /* gdb VM [--attach] [-- GDB_ARGS...]: options may come before or after VM */
    const char *name = NULL;
    bool attach = false;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return qq_usage(ctx, true);
        if (strcmp(a, "--attach") == 0)
            attach = true;
        else if (a[0] == '-' || name)
            return qq_usage(ctx, false);
        else
            name = a;
    }
    if (!name)
        return qq_usage(ctx, false);
    qq_err err = { 0 };
    config *c = qq_config(ctx, &err);
    if (!c)
        return qq_report(&err);
    vm_gdb(c, name, attach, argv + i, argc - i, ctx->debug, &err);
    return qq_report(&err);
}
