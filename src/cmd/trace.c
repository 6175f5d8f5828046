/* trace — QEMU's trace events of a running VM: list, switch on/off, read the log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app/trace.h"
#include "../base/cleanup.h"
#include "cmd.h"

typedef struct {
    long lines;
    bool follow;
} trace_opts;

static const trace_opts defaults = { .lines = 10 };

static const qq_opt options[] = {
    QQ_INT('n', "lines", "N", trace_opts, lines, 0, "log: print the last N lines"),
    QQ_FLAG('f', "follow", trace_opts, follow, "log: then print what is added, until the VM stops"),
    QQ_OPT_END,
};

static void print_event(json_t *ev)
{
    printf("%-11s %s\n", json_string_value(json_object_get(ev, "state")), json_string_value(json_object_get(ev, "name")));
}

static int check(qq_ctx *ctx, int argc, char **argv, qq_err *err)
{
    const trace_opts *o = ctx->opts;
    const char *action = argv[2];
    bool pattern = argc > 3;
    bool is_list = strcmp(action, "list") == 0, is_log = strcmp(action, "log") == 0;
    bool is_on = strcmp(action, "on") == 0, is_off = strcmp(action, "off") == 0;
    if (!is_list && !is_log && !is_on && !is_off)
        return qq_usage_error(ctx, err, false, "expected list, on, off or log, got '%s'", action);
    if (((is_on || is_off) && !pattern) || (is_log && pattern) || (!is_log && o->follow))
        return qq_usage(ctx, false);
    return 0;
}

static int run(qq_ctx *ctx, int argc, char **argv)
{
    const trace_opts *o = ctx->opts;
    const char *name = argv[1], *action = argv[2];
    const char *pattern = argc > 3 ? argv[3] : NULL;
    bool follow = o->follow;
    long n = o->lines;
    bool is_list = strcmp(action, "list") == 0, is_log = strcmp(action, "log") == 0;
    bool is_on = strcmp(action, "on") == 0;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    if (is_log)
        return trace_log(c, name, (size_t)n, follow, 1, &err) < 0 ? qq_report(&err) : 0;
    if (is_list) {
        json_t *list = trace_list(c, name, pattern, &err);
        return list ? qq_print_rows(ctx, list, print_event) : qq_report(&err);
    }
    size_t count = 0;
    if (trace_set(c, name, pattern, is_on, &count, &err) < 0)
        return qq_report(&err);
    if (ctx->json)
        qq_print_json(json_pack("{s:s, s:s, s:b, s:I}", "name", name, "pattern", pattern, "enabled", is_on, "events",
                                (json_int_t)count));
    else
        printf("%s %zu trace event%s matching '%s'%s\n", is_on ? "enabled" : "disabled", count, count == 1 ? "" : "s",
               pattern, is_on ? " (read them with `qqmgr trace VM log`)" : "");
    return 0;
}

const qq_command qq_cmd_trace = {
    .name = "trace", .args = "VM list|on|off|log [PATTERN]", .min_args = 2, .max_args = 3,
    .check = check, .needs_config = true, .handler = run,
    .summary = "QEMU's trace events of a running VM: list, switch on/off (PATTERN: a name or glob), read the log",
    QQ_OPTIONS(trace_opts, options, &defaults),
    .json = "list: [{name, state}]; on/off: {name, pattern, enabled, events}",
};
