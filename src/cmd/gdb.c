/* gdb (alias qemu) — QEMU under gdb with the VM's exact arguments. */
#include <stdio.h>
#include <string.h>

#include "../app/vm.h"
#include "cmd.h"

typedef struct {
    bool attach;
} gdb_opts;

static const qq_opt options[] = {
    QQ_FLAG(0, "attach", gdb_opts, attach, "attach gdb to the running QEMU instead"),
    QQ_OPT_END,
};

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const gdb_opts *o = ctx->opts;
    qq_err err = { 0 };
    config *c = qq_config(ctx, &err);
    if (!c)
        return qq_report(&err);
    vm_gdb(c, argv[1], o->attach, ctx->rest, ctx->nrest, ctx->debug, &err);
    return qq_report(&err);
}

const qq_command qq_cmd_gdb = {
    .name = "gdb", .handler = run, .args = "VM", .min_args = 1, .max_args = 1,
    .summary = "run QEMU under gdb with the VM's exact arguments (alias: qemu)",
    QQ_OPTIONS(gdb_opts, options, NULL),
    .rest = QQ_REST_AFTER_DASHDASH, .rest_args = "[-- GDB_ARGS...]",
};
const qq_command qq_cmd_qemu = {
    .name = "qemu", .handler = run, .args = "VM", .min_args = 1, .max_args = 1,
    QQ_OPTIONS(gdb_opts, options, NULL),
    .rest = QQ_REST_AFTER_DASHDASH, .rest_args = "[-- GDB_ARGS...]", .alias_of = "gdb",
};
