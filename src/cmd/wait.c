/* wait — until the guest is reachable over ssh (or cloud-init finished). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../app/ssh.h"
#include "../infra/proc.h"
#include "cmd.h"

int cmd_wait(qq_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        { "for", required_argument, NULL, 'f' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *stage = "ssh";
    double timeout = 300;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'f': stage = optarg; break;
        case 't': {
            char *end;
            timeout = strtod(optarg, &end);
            if (*end || timeout <= 0 || timeout > 86400) {
                fprintf(stderr, "qqmgr: wait: --timeout wants seconds (a positive number), not \"%s\"\n", optarg);
                return QQ_EXIT_USAGE;
            }
            break;
        }
        case 'h': return qq_usage(ctx, true);
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
    long long t0 = proc_now_ms();
    if (ssh_wait_ready(c, argv[optind], stage, t0 + (long long)(timeout * 1000), isatty(2) && !ctx->json, &err) < 0)
        return qq_report(&err);
    if (ctx->json)
        qq_print_json(json_pack("{s:s, s:s, s:b, s:I}", "name", argv[optind], "for", stage, "ready", 1, "elapsed_ms",
                                (json_int_t)(proc_now_ms() - t0)));
    return 0;
}
