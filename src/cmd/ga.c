/* ga — one command of the VM's qemu-guest-agent (guest_agent = true), its
 * return value printed as JSON. */
#include <stdio.h>
#include <stdlib.h>

#include "../app/guestagent.h"
#include "cmd.h"

typedef struct ga_opts {
    int timeout;
} ga_opts;
static const ga_opts ga_defaults = { .timeout = 30 };
static const qq_opt ga_options[] = {
    QQ_SECONDS("timeout", ga_opts, timeout, 1, "give up after S seconds"),
    QQ_OPT_END,
};

static int run_ga(qq_ctx *ctx, int argc, char **argv)
{
    const ga_opts *o = ctx->opts;
    qq_err err = { 0 };
    json_t *args = argc > 3 ? json_loads(argv[3], 0, NULL) : NULL;   /* an object: checked */
    json_t *ret = guestagent_run(ctx->cfg, argv[1], argv[2], args, o->timeout * 1000, &err);
    json_decref(args);
    if (!ret)
        return qq_report(&err);
    char *text = json_dumps(ret, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    printf("%s\n", text ? text : "null");
    free(text);
    json_decref(ret);
    return 0;
}

const qq_command qq_cmd_ga = {
    .name = "ga", .args = "VM COMMAND [JSON_ARGS]", .min_args = 2, .max_args = 3,
    .check = qq_check_json_args, .needs_config = true, .handler = run_ga,
    .summary = "run a guest-agent command (guest_agent = true) and print its return value",
    QQ_OPTIONS(ga_opts, ga_options, &ga_defaults),
    .json = "the return value (always JSON)",
};
