/* serial, stdout, stderr — print (or follow) one of a VM's logs. */
#include <stdio.h>
#include <stdlib.h>

#include "../app/vm.h"
#include "cmd.h"

typedef struct {
    long lines;
    bool follow;
    long previous;
} log_opts;

static const log_opts defaults = { .lines = 10 };

static const qq_opt options[] = {
    QQ_INT('n', "lines", "N", log_opts, lines, 0, "print the last N lines"),
    QQ_FLAG('f', "follow", log_opts, follow, "then print what is added, until the VM stops"),
    QQ_INT_OPTIONAL("previous", "N", log_opts, previous, 1, "1",
                    "the log of the run N before the current one (the last 5 are kept)"),
    QQ_OPT_END,
};

static int check(qq_ctx *ctx, int argc, char **argv, qq_err *err)
{
    (void)argc, (void)argv;
    const log_opts *o = ctx->opts;
    if (o->previous && o->follow)
        return qq_usage_error(ctx, err, false,
                              "--previous and --follow do not go together (an earlier run's log is complete)");
    return 0;
}

static int run(qq_ctx *ctx, char **argv, enum vm_log which)
{
    const log_opts *o = ctx->opts;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    if (o->previous ? vm_log_previous(c, argv[1], which, (size_t)o->lines, (int)o->previous, 1, &err)
                    : vm_log(c, argv[1], which, (size_t)o->lines, o->follow, 1, &err))
        return qq_report(&err);
    return 0;
}

static int serial(qq_ctx *ctx, int argc, char **argv) { (void)argc; return run(ctx, argv, VM_LOG_SERIAL); }
static int out(qq_ctx *ctx, int argc, char **argv) { (void)argc; return run(ctx, argv, VM_LOG_STDOUT); }
static int err(qq_ctx *ctx, int argc, char **argv) { (void)argc; return run(ctx, argv, VM_LOG_STDERR); }

const qq_command qq_cmd_serial = {
    .name = "serial", .args = "VM", .min_args = 1, .max_args = 1,
    .check = check, .needs_config = true, .handler = serial,
    .summary = "print (or follow) the VM's serial console log",
    QQ_OPTIONS(log_opts, options, &defaults),
};
const qq_command qq_cmd_stdout = {
    .name = "stdout", .check = check, .needs_config = true, .handler = out, .args = "VM", .min_args = 1, .max_args = 1,
    .summary = "print (or follow) QEMU's stdout",
    QQ_OPTIONS(log_opts, options, &defaults),
};
const qq_command qq_cmd_stderr = {
    .name = "stderr", .check = check, .needs_config = true, .handler = err, .args = "VM", .min_args = 1, .max_args = 1,
    .summary = "print (or follow) QEMU's stderr",
    QQ_OPTIONS(log_opts, options, &defaults),
};
