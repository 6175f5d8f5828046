/* ssh, ssh-config, put, get — reaching into a VM with OpenSSH. */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <stdio.h>

#include "../app/ssh.h"
#include "../base/cleanup.h"
#include "cmd.h"

int cmd_ssh(qq_ctx *ctx, int argc, char **argv)
{
    /* everything after the VM name belongs to the remote command */
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
        return qq_usage(ctx, true);
    if (argc < 2 || argv[1][0] == '-')
        return qq_usage(ctx, false);
    qq_err err = { 0 };
    config *c = qq_config(ctx, &err);
    if (!c)
        return qq_report(&err);
    ssh_target t;
    if (ssh_prepare(c, argv[1], true, &t, &err) < 0)
        return qq_report(&err);
    int rest = argc - 2;
    char **cmd = argv + 2;
    if (rest > 0 && strcmp(cmd[0], "--") == 0) {
        rest--;
        cmd++;
    }
    ssh_exec(&t, ctx->debug, rest, cmd, &err);
    return qq_report(&err);
}

int cmd_ssh_config(qq_ctx *ctx, int argc, char **argv)
{
    qq_err err = { 0 };
    config *c;
    int rc = qq_begin(ctx, argc, argv, &c, &err);
    if (rc >= 0)
        return rc;
    ssh_target t;
    if (ssh_prepare(c, argv[optind], false, &t, &err) < 0)
        return qq_report(&err);
    if (ctx->json) {
        qq_print_json(json_pack("{s:s, s:s, s:i, s:s}", "file", t.conf, "host", t.alias, "port", t.port,
                                "control_path", t.control));
        return 0;
    }
    FILE *f = fopen(t.conf, "r");
    if (!f) {
        qq_fail(&err, QQ_EXIT_FAIL, "%s: %s", t.conf, strerror(errno));
        return qq_report(&err);
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
}

static int copy(qq_ctx *ctx, int argc, char **argv, bool put)
{
    qq_err err = { 0 };
    config *c;
    int rc = qq_begin(ctx, argc, argv, &c, &err);
    if (rc >= 0)
        return rc;
    ssh_target t;
    if (ssh_prepare(c, argv[optind], true, &t, &err) < 0)
        return qq_report(&err);
    if (ssh_copy(&t, ctx->debug, put, argv[optind + 1], argv[optind + 2], &err) < 0)
        return qq_report(&err);
    return 0;
}

int cmd_put(qq_ctx *ctx, int argc, char **argv) { return copy(ctx, argc, argv, true); }
int cmd_get(qq_ctx *ctx, int argc, char **argv) { return copy(ctx, argc, argv, false); }
