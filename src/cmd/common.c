/* common — helpers shared by the command files (see cmd.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/jsonw.h"
#include "cmd.h"

config *qq_config(qq_ctx *ctx, qq_err *err)
{
    if (!ctx->cfg)
        ctx->cfg = config_load(ctx->config_path, err);
    return ctx->cfg;
}

int qq_report(const qq_err *err)
{
    fprintf(stderr, "qqmgr: %s\n", err->msg);
    return err->code ? err->code : QQ_EXIT_FAIL;
}

void qq_print_json(json_t *doc)
{
    if (!doc)
        return;
    /* jsonw writes what json_dumps() would, minus jansson's per-token cost;
     * what it leaves to jansson (reals, invalid UTF-8) still goes there */
    sbuf b = SBUF_INIT;
    if (jsonw_value(&b, doc, 0) == 0) {
        sbuf_addc(&b, '\n');
        fwrite(b.buf, 1, b.len, stdout);
    } else {
        char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        if (s) {
            fputs(s, stdout);
            fputc('\n', stdout);
            free(s);
        }
    }
    sbuf_free(&b);
    json_decref(doc);
}

int qq_check_args(qq_ctx *ctx, int npos)
{
    const qq_command *c = ctx->cmd;
    if (npos < c->min_args || (c->max_args >= 0 && npos > c->max_args))
        return qq_usage(ctx, false);
    return -1;
}

int qq_parse_simple(qq_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h')
            return qq_usage(ctx, true);
        return qq_usage(ctx, false);
    }
    return qq_check_args(ctx, argc - optind);
}

int qq_begin(qq_ctx *ctx, int argc, char **argv, config **c, qq_err *err)
{
    int rc = qq_parse_simple(ctx, argc, argv);
    if (rc >= 0)
        return rc;
    *c = qq_config(ctx, err);
    return *c ? -1 : qq_report(err);
}

int qq_opt_seconds(qq_ctx *ctx, const char *text, int min, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > 86400) {
        fprintf(stderr, "qqmgr: %s: --timeout: expected whole seconds (%d..86400), got '%s'\n", ctx->cmd->name, min,
                text);
        return QQ_EXIT_USAGE;
    }
    *out = (int)v;
    return -1;
}

void qq_shell_quote(sbuf *out, const char *arg)
{
    if (*arg && strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                            "0123456789_-+=.,:/@%^") == strlen(arg)) {
        sbuf_adds(out, arg);
        return;
    }
    sbuf_addc(out, '\'');
    for (const char *p = arg; *p; p++) {
        if (*p == '\'')
            sbuf_adds(out, "'\\''");
        else
            sbuf_addc(out, *p);
    }
    sbuf_addc(out, '\'');
}
