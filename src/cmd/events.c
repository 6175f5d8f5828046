/* events — QMP events of a running VM, as they happen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../app/events.h"
#include "cmd.h"

typedef struct events_out {
    const char *name;
    bool json, follow;
} events_out;

/* One event, one line: JSON as QEMU sent it, or "TIME EVENT {data}". */
static int print_event(const json_t *ev, void *data)
{
    const events_out *o = data;
    if (!ev) {   /* connected */
        if (o->follow)
            fprintf(stderr, "qqmgr: following the events of %s (until its QEMU ends)\n", o->name);
        return 0;
    }
    if (o->json) {
        char *s = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        const json_t *ts = json_object_get(ev, "timestamp");
        time_t sec = (time_t)json_integer_value(json_object_get(ts, "seconds"));
        long usec = (long)json_integer_value(json_object_get(ts, "microseconds"));
        struct tm tm;
        char when[32] = "";
        if (localtime_r(&sec, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        printf("%s.%06ld %s", when, usec, json_string_value(json_object_get(ev, "event")) ?: "?");
        const json_t *d = json_object_get(ev, "data");
        if (d && json_object_size(d) > 0) {
            char *s = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf(" %s", s ? s : "");
            free(s);
        }
        putchar('\n');
    }
    fflush(stdout);
    return 0;
}

typedef struct {
    bool follow;
    int timeout;
} ev_opts;

static const qq_opt options[] = {
    QQ_FLAG('f', "follow", ev_opts, follow, "print every event until the VM's QEMU ends (else: the next event)"),
    QQ_SECONDS("timeout", ev_opts, timeout, 1, "give up after S seconds (without -f: exit 1 when no event came)"),
    QQ_OPT_END,
};

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const ev_opts *o = ctx->opts;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    events_out out = { .name = argv[1], .json = ctx->json, .follow = o->follow };
    if (events_watch(c, argv[1], o->follow, o->timeout ? o->timeout * 1000 : -1, print_event, &out, &err) < 0)
        return qq_report(&err);
    return 0;
}

const qq_command qq_cmd_events = {
    .name = "events", .needs_config = true, .handler = run, .args = "VM", .min_args = 1, .max_args = 1,
    .summary = "print the QMP events (STOP, RESUME, SHUTDOWN, ...) of a running VM as they happen",
    QQ_OPTIONS(ev_opts, options, NULL),
    .json = "one event per line, as QEMU sent it",
};
