/* rm — remove a stopped VM's state dir (logs, snapshots, host keys, records). */
#include <stdio.h>

#include "../app/reclaim.h"
#include "cmd.h"

typedef struct {
    bool force;
    bool all;
    int timeout;
} rm_opts;

static const rm_opts defaults = { .timeout = 30 };

static const qq_opt options[] = {
    QQ_FLAG('f', "force", rm_opts, force, "stop a running VM first (QMP quit, then kill)"),
    QQ_FLAG(0, "all", rm_opts, all, "every VM of the config (in parallel)"),
    QQ_SECONDS("timeout", rm_opts, timeout, 0, "how long to wait for the VM's lock, and with --force to stop it"),
    QQ_OPT_END,
};

static int rm_one(qq_ctx *ctx, const char *name)
{
    const rm_opts *o = ctx->opts;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    reclaim_result r;
    if (reclaim_vm(c, name, o->force, o->timeout, &r, &err) < 0) {
        reclaim_result_free(&r);
        return qq_report(&err);
    }
    if (ctx->json) {
        qq_print_json(json_pack("{s:s, s:s, s:b, s:I, s:b, s:i, s:o}", "name", name, "path", r.path, "removed",
                                r.existed, "bytes", (json_int_t)r.bytes, "was_running", r.was_running,
                                "snapshots", r.snapshots, "kept_snapshots", r.others ? json_incref(r.others) : json_array()));
    } else if (!r.existed) {
        printf("%s has no state to remove\n", name);
    } else {
        char size[32];
        qq_format_bytes(size, sizeof size, r.bytes);
        printf("removed %s%s (%s, %s", name, r.was_running ? " after stopping it" : "", size, r.path);
        if (r.snapshots)
            printf("; %d snapshot%s deleted", r.snapshots, r.snapshots == 1 ? "" : "s");
        printf(")\n");
        size_t i;
        json_t *x;
        json_array_foreach(r.others, i, x) {   /* on a disk it shares: not its own, kept */
            printf("kept snapshot %s on %s (not %s's: %s)\n", json_string_value(json_object_get(x, "name")),
                   json_string_value(json_object_get(x, "disk")), name,
                   json_string_value(json_object_get(x, "owner")));
        }
    }
    reclaim_result_free(&r);
    return 0;
}

const qq_command qq_cmd_rm = {
    .name = "rm", .args = "[VM...]", .min_args = 0, .max_args = -1,
    .each = rm_one, .each_all = QQ_ALL_CONFIGURED, .each_waits = true,
    .summary = "remove stopped VMs' state (logs, snapshots, host keys); the config keeps them",
    QQ_OPTIONS(rm_opts, options, &defaults),
    .json = "{name, path, removed, bytes, was_running, snapshots, kept_snapshots}",
};
