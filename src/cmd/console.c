/* console — the terminal on a VM's serial console (Ctrl-] leaves). */
#include "../app/vm.h"
#include "cmd.h"

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    if (vm_console(c, argv[1], 0, 1, &err) < 0)
        return qq_report(&err);
    return 0;
}

const qq_command qq_cmd_console = {
    .name = "console", .handler = run, .args = "VM", .min_args = 1, .max_args = 1,
    .needs_config = true,
    .summary = "attach the terminal to the serial console (Ctrl-] leaves)",
};
