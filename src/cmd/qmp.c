/* qmp, monitor — one QMP command (reply as JSON) or one HMP command (its text). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app/vm.h"
#include "../infra/qmp.h"
#include "cmd.h"

static int run_qmp(qq_ctx *ctx, int argc, char **argv)
{
    const char *name = argv[1], *command = argv[2];
    const char *args_text = argc > 3 ? argv[3] : NULL;
    qq_err err = { 0 };
    json_t *args = NULL;
    if (args_text)
        args = json_loads(args_text, 0, NULL);   /* an object: checked */
    json_t *reply = vm_qmp(ctx->cfg, name, command, args, &err);
    json_decref(args);
    if (!reply)
        return qq_report(&err);
    const char *cls, *desc;
    json_t *ret = qmp_reply_return(reply, &cls, &desc);
    if (ret) {
        /* a reply may be a bare string or number: print it as JSON all the same */
        char *text = json_dumps(ret, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        printf("%s\n", text ? text : "null");
        free(text);
        json_decref(ret);
        json_decref(reply);
        return 0;
    }
    qq_fail(&err, QQ_EXIT_FAIL, "QMP %s: %s: %s", command, cls ?: "error", desc ?: "");
    if (ctx->json)
        qq_print_json(json_incref(reply));
    json_decref(reply);
    return qq_report(&err);
}

static int monitor(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    char *out = vm_hmp(c, argv[1], argv[2], &err);
    if (!out)
        return qq_report(&err);
    if (ctx->json) {
        qq_print_json(json_pack("{s:s}", "output", out));
    } else {
        fputs(out, stdout);
        /* HMP text ends in \r\n: keep it, or add a newline when missing */
        if (*out && out[strlen(out) - 1] != '\n')
            fputc('\n', stdout);
    }
    free(out);
    return 0;
}

const qq_command qq_cmd_qmp = {
    .name = "qmp", .args = "VM COMMAND [JSON_ARGS]", .min_args = 2, .max_args = 3,
    .check = qq_check_json_args, .needs_config = true, .handler = run_qmp,
    .summary = "run a QMP command and print its reply",
    .json = "on a QMP error, the whole reply (the return value is printed as JSON anyway)",
};
const qq_command qq_cmd_monitor = {
    .name = "monitor", .handler = monitor, .args = "VM 'HMP COMMAND'", .min_args = 2, .max_args = 2,
    .needs_config = true,
    .summary = "run a human-monitor command and print its output",
    .json = "{output}",
};
