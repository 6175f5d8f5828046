#include <stdio.h>
#include "cmd.h"
int cmd_ssh(qq_ctx *ctx, int argc, char **argv)
{
    (void)ctx; (void)argc; (void)argv;
    fprintf(stderr, "qqmgr: not implemented yet\n");
    return 1;
}
int cmd_ssh_config(qq_ctx *ctx, int argc, char **argv)
{
    (void)ctx; (void)argc; (void)argv;
    fprintf(stderr, "qqmgr: not implemented yet\n");
    return 1;
}
int cmd_put(qq_ctx *ctx, int argc, char **argv)
{
    (void)ctx; (void)argc; (void)argv;
    fprintf(stderr, "qqmgr: not implemented yet\n");
    return 1;
}
int cmd_get(qq_ctx *ctx, int argc, char **argv)
{
    (void)ctx; (void)argc; (void)argv;
    fprintf(stderr, "qqmgr: not implemented yet\n");
    return 1;
}
