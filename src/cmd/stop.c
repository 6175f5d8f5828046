#include <stdio.h>
#include "cmd.h"
int cmd_stop(qq_ctx *ctx, int argc, char **argv)
{
    (void)ctx; (void)argc; (void)argv;
    fprintf(stderr, "qqmgr: not implemented yet\n");
    return 1;
}
