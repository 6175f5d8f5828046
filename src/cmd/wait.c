/* wait — until the guest is reachable over ssh (or cloud-init finished). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../app/share.h"
#include "../app/ssh.h"
#include "../base/report.h"
#include "../infra/proc.h"
#include "cmd.h"

typedef struct {
    const char *stage;
    int timeout;
    bool all;
} wait_opts;

static const char *const stages[] = { "ssh", "cloud-init", NULL };
static const wait_opts defaults = { .stage = "ssh", .timeout = 300 };

static const qq_opt options[] = {
    QQ_ENUM("for", "STAGE", wait_opts, stage, stages, "what to wait for: ssh answers, or cloud-init finished"),
    QQ_SECONDS("timeout", wait_opts, timeout, 1, "give up after S seconds"),
    QQ_FLAG(0, "all", wait_opts, all, "every VM of the config (waited for in parallel)"),
    QQ_OPT_END,
};

static int wait_one(qq_ctx *ctx, const char *name)
{
    const wait_opts *o = ctx->opts;
    const char *stage = o->stage;
    int timeout = o->timeout;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    long long t0 = clock_ms();
    if (ssh_wait_ready(c, name, stage, t0 + (long long)timeout * 1000, report_watched() && !ctx->json, ctx->debug, &err) < 0 ||
        share_mount(c, name, ctx->debug, &err) < 0)
        return qq_report(&err);
    if (ctx->json)
        qq_print_json(json_pack("{s:s, s:s, s:b, s:I}", "name", name, "for", stage, "ready", 1, "elapsed_ms",
                                (json_int_t)(clock_ms() - t0)));
    return 0;
}

const qq_command qq_cmd_wait = {
    .name = "wait", .args = "[VM...]", .min_args = 0, .max_args = -1,
    .each = wait_one, .each_all = QQ_ALL_CONFIGURED, .each_waits = true,
    .summary = "wait until the guests are ready",
    QQ_OPTIONS(wait_opts, options, &defaults),
    .json = "{name, for, ready, elapsed_ms}",
};
