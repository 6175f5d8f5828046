/* run — start a VM, wait for ssh, run one command in it, stop it. */
#include <stdio.h>

#include "../app/snapshot.h"
#include "cmd.h"

typedef struct {
    const char *restore;
    bool rm;
    int timeout;
} run_opts;

static const qq_opt options[] = {
    QQ_STRING(0, "restore", "SNAPSHOT", run_opts, restore, "start from the snapshot (the guest continues where it was)"),
    QQ_FLAG(0, "rm", run_opts, rm, "throwaway run: every disk write is lost when the VM stops"),
    QQ_SECONDS("timeout", run_opts, timeout, 1, "bound the whole run; at the deadline the command and the VM stop"),
    QQ_OPT_END,
};

static int check(qq_ctx *ctx, int argc, char **argv, qq_err *err)
{
    (void)argc;
    if (ctx->nrest < 1)
        return qq_usage_error(ctx, err, true, "the command to run goes after --: qqmgr run %s -- COMMAND...", argv[1]);
    return 0;
}

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const run_opts *o = ctx->opts;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    snap_run_opts ro = { .restore = o->restore, .rm = o->rm, .timeout_s = o->timeout, .debug = ctx->debug,
                         .argv = ctx->rest, .argc = ctx->nrest };
    int status = 0;
    guestclock_result gr = { 0 };
    ro.clock = &gr;
    int rc = snap_run(c, argv[1], &ro, &status, &err);
    qq_clock_report(ctx, argv[1], &gr);
    if (rc < 0)
        return qq_report(&err);
    return status;
}

const qq_command qq_cmd_run = {
    .name = "run", .check = check, .needs_config = true, .handler = run, .args = "VM", .min_args = 1, .max_args = 1,
    .summary = "start the VM, run COMMAND over ssh, stop the VM; the exit status is COMMAND's",
    QQ_OPTIONS(run_opts, options, NULL),
    .rest = QQ_REST_AFTER_DASHDASH, .rest_args = "-- COMMAND...",
};
