/* forward — host port forwards on a running VM's user-mode network. */
#include <stdio.h>
#include <string.h>

#include "../app/forward.h"
#include "cmd.h"

static json_t *forward_json(const forward *f)
{
    return json_pack("{s:s, s:s, s:i, s:i, s:s}", "proto", f->proto, "host_addr", f->host_addr, "host_port",
                     f->host_port, "guest_port", f->guest_port, "netdev", f->netdev);
}

typedef struct {
    const char *netdev;
} fwd_opts;

static const qq_opt options[] = {
    QQ_STRING(0, "netdev", "ID", fwd_opts, netdev, "the user-mode netdev (default: the one with the ssh forward)"),
    QQ_OPT_END,
};

static void print_forward(json_t *r)
{
    printf("%s:%s:%lld -> guest port %lld (netdev %s)\n", json_string_value(json_object_get(r, "proto")),
           json_string_value(json_object_get(r, "host_addr")),
           (long long)json_integer_value(json_object_get(r, "host_port")),
           (long long)json_integer_value(json_object_get(r, "guest_port")),
           json_string_value(json_object_get(r, "netdev")));
}

static int check(qq_ctx *ctx, int argc, char **argv, qq_err *err)
{
    const fwd_opts *o = ctx->opts;
    const char *action = argv[2];
    const char *spec = argc > 3 ? argv[3] : NULL;
    bool add = strcmp(action, "add") == 0, rm = strcmp(action, "remove") == 0, list = strcmp(action, "list") == 0;
    if (!add && !rm && !list)
        return qq_usage_error(ctx, err, false, "expected add, remove or list, got '%s'", action);
    if ((list && (spec || o->netdev)) || (!list && !spec))
        return qq_usage(ctx, false);
    forward f;
    return spec ? forward_parse(spec, add, &f, err) : 0;
}

static int run(qq_ctx *ctx, int argc, char **argv)
{
    const fwd_opts *o = ctx->opts;
    const char *netdev = o->netdev;
    const char *name = argv[1], *action = argv[2];
    const char *spec = argc > 3 ? argv[3] : NULL;
    bool add = strcmp(action, "add") == 0, list = strcmp(action, "list") == 0;
    qq_err err = { 0 };
    forward f;
    if (spec && forward_parse(spec, add, &f, &err) < 0)
        return qq_report(&err);
    config *c = ctx->cfg;
    if (list) {
        json_t *l = forward_list(c, name, &err);
        return l ? qq_print_rows(ctx, l, print_forward) : qq_report(&err);
    }
    if ((add ? forward_add(c, name, netdev, &f, &err) : forward_remove(c, name, netdev, &f, &err)) < 0)
        return qq_report(&err);
    if (ctx->json)
        qq_print_json(forward_json(&f));
    else if (add)
        printf("forwarding %s:%s:%d -> %s guest port %d\n", f.proto, f.host_addr, f.host_port, name, f.guest_port);
    else
        printf("removed %s:%s:%d\n", f.proto, f.host_addr, f.host_port);
    return 0;
}

const qq_command qq_cmd_forward = {
    .name = "forward", .args = "VM add|remove|list [tcp:[HOSTADDR:]HOSTPORT[:GUESTPORT]]",
    .check = check, .needs_config = true, .handler = run,
    .min_args = 2, .max_args = 3,
    .summary = "host port forwards of a running VM: add (HOSTPORT 0/auto: a free one), remove, list",
    QQ_OPTIONS(fwd_opts, options, NULL),
    .json = "add/remove: {proto, host_addr, host_port, guest_port, netdev}; list: an array of them",
};
