/* ssh-keys reset — forget the host keys pinned for a VM. */
#include <stdio.h>

#include "../app/ssh.h"
#include "cmd.h"

static int reset(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    bool had = false;
    if (ssh_forget_host_keys(c, argv[1], &had, &err) < 0)
        return qq_report(&err);
    if (ctx->json)
        qq_print_json(json_pack("{s:s, s:b}", "name", argv[1], "forgotten", had));
    else
        printf(had ? "%s: pinned host keys forgotten; the next login learns them again\n"
                   : "%s: no host keys were pinned\n", argv[1]);
    return 0;
}

const qq_command qq_cmd_ssh_keys_reset = {
    .name = "ssh-keys reset", .handler = reset, .args = "VM", .min_args = 1, .max_args = 1,
    .needs_config = true,
    .summary = "forget the VM's pinned ssh host keys (after its guest got new ones)",
    .json = "{name, forgotten}",
};
