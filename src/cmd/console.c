/* console — the terminal on a VM's serial console (Ctrl-] leaves). */
#include <getopt.h>
#include "../app/vm.h"
#include "cmd.h"

int cmd_console(qq_ctx *ctx, int argc, char **argv)
{
    int rc = qq_parse_simple(ctx, argc, argv);
    if (rc >= 0)
        return rc;
    qq_err err = { 0 };
    config *c = qq_config(ctx, &err);
    if (!c)
        return qq_report(&err);
    if (vm_console(c, argv[optind], &err) < 0)
        return qq_report(&err);
    return 0;
}
