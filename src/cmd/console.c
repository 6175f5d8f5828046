/* console — the terminal on a VM's serial console (Ctrl-] leaves). */
#include <getopt.h>
#include "../app/vm.h"
#include "cmd.h"

int cmd_console(qq_ctx *ctx, int argc, char **argv)
{
    qq_err err = { 0 };
    config *c;
    int rc = qq_begin(ctx, argc, argv, &c, &err);
    if (rc >= 0)
        return rc;
    if (vm_console(c, argv[optind], &err) < 0)
        return qq_report(&err);
    return 0;
}
