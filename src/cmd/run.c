/* run — start a VM, wait for ssh, run one command in it, stop it. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "../app/layout.h"
#include "../app/snapshot.h"
#include "../base/cleanup.h"
#include "../base/xalloc.h"
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

static json_t *seconds(long long ms)
{
    return json_real((double)ms / 1000.0);
}

/* The record of one run: one line, the last of stdout (the command's output
 * before it ends on a newline). */
static void print_record(qq_ctx *ctx, const char *vm, const run_opts *o, time_t started, int status,
                         const snap_run_result *r, int exit_status, const qq_err *err)
{
    config *c = ctx->cfg;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) < 0)
        host[0] = '\0';
    char when[32] = "";
    struct tm tm;
    if (gmtime_r(&started, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *cmd = json_array();
    for (int i = 0; i < ctx->nrest; i++)
        json_array_append_new(cmd, json_string(ctx->rest[i]));
    /* where it ran: the VM's own place, or a throwaway copy VM#N (its dir is gone with it) */
    const char *instance = r->instance[0] ? r->instance : NULL;
    _cleanup_free_ char *dir = config_vm_dir(c, instance ? instance : vm);
    _cleanup_free_ char *serial = layout_path(dir, LAYOUT_SERIAL);
    _cleanup_free_ char *qout = layout_path(dir, LAYOUT_STDOUT);
    _cleanup_free_ char *qerr = layout_path(dir, LAYOUT_STDERR);
    json_t *t = json_object();
    json_object_set_new(t, "start", seconds(r->start_ms));
    json_object_set_new(t, "ready", seconds(r->ready_ms));
    json_object_set_new(t, "command", seconds(r->command_ms));
    json_object_set_new(t, "stop", seconds(r->stop_ms));
    json_object_set_new(t, "total", seconds(r->start_ms + r->ready_ms + r->command_ms + r->stop_ms));
    json_t *doc = json_object();
    json_object_set_new(doc, "vm", json_string(vm));
    json_object_set_new(doc, "instance", instance ? json_string(instance) : json_null());
    json_object_set_new(doc, "host", json_string(host));
    json_object_set_new(doc, "config", json_string(config_path(c)));
    json_object_set_new(doc, "snapshot", o->restore ? json_string(o->restore) : json_null());
    json_object_set_new(doc, "rm", json_boolean(o->rm));
    json_object_set_new(doc, "command", cmd);
    json_object_set_new(doc, "ready", json_boolean(r->ready));
    json_object_set_new(doc, "status", r->ran ? json_integer(status) : json_null());
    json_object_set_new(doc, "exit", json_integer(exit_status));
    json_object_set_new(doc, "error", err && err->code ? json_string(err->msg) : json_null());
    json_object_set_new(doc, "started_at", json_string(when));
    json_object_set_new(doc, "timings", t);
    /* a copy's logs went with it (copies.h): null */
    bool copy = instance && config_copy_parse(instance, NULL, NULL, NULL) == 1;
    json_object_set_new(doc, "logs", copy ? json_null() : json_pack("{s:s, s:s, s:s, s:s}", "dir", dir, "serial",
                                                                    serial, "qemu_stdout", qout, "qemu_stderr", qerr));
    char *line = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (line) {
        /* a reader that went away costs the record, not the exit status */
        signal(SIGPIPE, SIG_IGN);
        fflush(stdout);
        printf("%s\n", line);
        fflush(stdout);
        free(line);
    }
    json_decref(doc);
}

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const run_opts *o = ctx->opts;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    snap_run_opts ro = { .restore = o->restore, .rm = o->rm, .timeout_s = o->timeout, .debug = ctx->debug,
                         .argv = ctx->rest, .argc = ctx->nrest, .relay_stdout = ctx->json };
    int status = 0;
    guestclock_result gr = { 0 };
    ro.clock = &gr;
    snap_run_result r;
    time_t started = time(NULL);
    int rc = snap_run(c, argv[1], &ro, &status, &r, &err);
    qq_clock_report(ctx, argv[1], &gr);
    rc = rc < 0 ? qq_report(&err) : status;
    if (ctx->json)
        print_record(ctx, argv[1], o, started, status, &r, rc, &err);
    return rc;
}

const qq_command qq_cmd_run = {
    .name = "run", .check = check, .needs_config = true, .handler = run, .args = "VM", .min_args = 1, .max_args = 1,
    .summary = "start the VM, run COMMAND over ssh, stop the VM; the exit status is COMMAND's",
    QQ_OPTIONS(run_opts, options, NULL),
    .rest = QQ_REST_AFTER_DASHDASH, .rest_args = "-- COMMAND...",
    .json = "one line after the command's output: {vm, instance, host, config, snapshot, rm, command, ready, "
            "status, exit, error, started_at, timings{start, ready, command, stop, total}, logs{dir, serial, "
            "qemu_stdout, qemu_stderr}}",
};
