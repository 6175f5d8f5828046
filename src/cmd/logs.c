/* serial, stdout, stderr — print (or follow) one of a VM's logs. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "../app/vm.h"
#include "cmd.h"

static int run(qq_ctx *ctx, int argc, char **argv, enum vm_log which)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "lines", required_argument, NULL, 'n' },
        { "follow", no_argument, NULL, 'f' },
        { 0 },
    };
    long n = 10;
    bool follow = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "hn:f", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': return qq_usage(ctx, true);
        case 'f': follow = true; break;
        case 'n': {
            char *end;
            n = strtol(optarg, &end, 10);
            if (end == optarg || *end || n < 0) {
                fprintf(stderr, "qqmgr: %s: -n: expected a line count, got '%s'\n", ctx->cmd->name, optarg);
                return QQ_EXIT_USAGE;
            }
            break;
        }
        default: return qq_usage(ctx, false);
        }
    }
    int rc = qq_check_args(ctx, argc - optind);
    if (rc >= 0)
        return rc;
    qq_err err = { 0 };
    config *c = qq_config(ctx, &err);
    if (!c)
        return qq_report(&err);
    if (vm_log(c, argv[optind], which, (size_t)n, follow, &err) < 0)
        return qq_report(&err);
    return 0;
}

int cmd_serial(qq_ctx *ctx, int argc, char **argv) { return run(ctx, argc, argv, VM_LOG_SERIAL); }
int cmd_stdout(qq_ctx *ctx, int argc, char **argv) { return run(ctx, argc, argv, VM_LOG_STDOUT); }
int cmd_stderr(qq_ctx *ctx, int argc, char **argv) { return run(ctx, argc, argv, VM_LOG_STDERR); }
