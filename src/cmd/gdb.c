/* gdb (alias qemu) — QEMU under gdb with the VM's exact arguments; with
 * --guest, gdb on the guest through the running VM's gdbstub. */
#include <stdio.h>
#include <string.h>

#include "../app/guestgdb.h"
#include "../app/vm.h"
#include "cmd.h"

typedef struct {
    bool attach, guest;
    const char *symbols;
} gdb_opts;

static const qq_opt options[] = {
    QQ_FLAG(0, "attach", gdb_opts, attach, "attach gdb to the running QEMU instead"),
    QQ_FLAG(0, "guest", gdb_opts, guest,
            "debug the guest: attach gdb to the running VM's gdbstub (the VM runs on after gdb detaches)"),
    QQ_STRING(0, "symbols", "FILE", gdb_opts, symbols,
              "with --guest: the guest's symbols, such as a vmlinux (default: the VM var `symbols`)"),
    QQ_OPT_END,
};

static int check(qq_ctx *ctx, int argc, char **argv, qq_err *err)
{
    (void)argc, (void)argv;
    const gdb_opts *o = ctx->opts;
    if ((o->attach && o->guest) || (o->symbols && !o->guest))
        return qq_usage_error(ctx, err, false, "%s",
                              o->symbols && !o->guest ? "--symbols goes with --guest" : "--attach or --guest, not both");
    return 0;
}

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const gdb_opts *o = ctx->opts;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    if (o->guest)
        guestgdb_exec(c, argv[1], o->symbols, ctx->rest, ctx->nrest, ctx->debug, &err);
    else
        vm_gdb(c, argv[1], o->attach, ctx->rest, ctx->nrest, ctx->debug, &err);
    return qq_report(&err);
}

const qq_command qq_cmd_gdb = {
    .name = "gdb", .check = check, .needs_config = true, .handler = run, .args = "VM", .min_args = 1, .max_args = 1,
    .summary = "run QEMU under gdb with the VM's exact arguments (alias: qemu); --guest: gdb on the guest",
    QQ_OPTIONS(gdb_opts, options, NULL),
    .rest = QQ_REST_AFTER_DASHDASH, .rest_args = "[-- GDB_ARGS...]",
};
const qq_command qq_cmd_qemu = {
    .name = "qemu", .check = check, .needs_config = true, .handler = run, .args = "VM", .min_args = 1, .max_args = 1,
    QQ_OPTIONS(gdb_opts, options, NULL),
    .rest = QQ_REST_AFTER_DASHDASH, .rest_args = "[-- GDB_ARGS...]", .alias_of = "gdb",
};
