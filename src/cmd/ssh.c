/* ssh, ssh-config, put, get — reaching into a VM with OpenSSH. */
#include <errno.h>
#include <string.h>
#include <stdio.h>

#include "../app/layout.h"
#include "../app/ssh.h"
#include "../base/cleanup.h"
#include "../infra/fs.h"
#include "cmd.h"

static int ssh(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    /* everything after the VM name belongs to the remote command (ctx->rest) */
    qq_err err = { 0 };
    ssh_target t;
    if (ssh_prepare(ctx->cfg, argv[1], true, &t, &err) < 0)
        return qq_report(&err);
    ssh_exec(&t, ctx->debug, ctx->nrest, ctx->rest, &err);
    return qq_report(&err);
}

static int ssh_config(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    qq_err err = { 0 };
    ssh_target t;
    if (ssh_prepare(ctx->cfg, argv[1], false, &t, &err) < 0)
        return qq_report(&err);
    if (ctx->json) {
        /* config: the file's text, and known_hosts the host keys qqmgr pins,
         * for `-H HOST ssh|put|get` (the files are on this host) */
        _cleanup_free_ char *text = NULL, *dir = config_vm_dir(ctx->cfg, argv[1]), *pins = NULL;
        if (fs_read_file(t.conf, &text, NULL, &err) < 0)
            return qq_report(&err);
        _cleanup_free_ char *kh = layout_path(dir, LAYOUT_KNOWN_HOSTS);
        json_t *known = json_null();
        if (strstr(text, kh)) {
            fs_read_file(kh, &pins, NULL, NULL);
            known = json_pack("{s:s, s:s}", "file", kh, "text", pins ? pins : "");
        }
        json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s}", "file", t.conf, "host", t.alias, "port", t.port,
                              "control_path", t.control, "config", text);
        json_object_set_new(o, "known_hosts", known);
        qq_print_json(o);
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

static int copy(qq_ctx *ctx, char **argv, bool put)
{
    qq_err err = { 0 };
    ssh_target t;
    if (ssh_prepare(ctx->cfg, argv[1], true, &t, &err) < 0)
        return qq_report(&err);
    if (ssh_copy(&t, ctx->debug, put, argv[2], argv[3], &err) < 0)
        return qq_report(&err);
    return 0;
}

static int put(qq_ctx *ctx, int argc, char **argv) { (void)argc; return copy(ctx, argv, true); }
static int get(qq_ctx *ctx, int argc, char **argv) { (void)argc; return copy(ctx, argv, false); }

const qq_command qq_cmd_ssh = {
    .name = "ssh", .handler = ssh, .args = "VM", .min_args = 1, .max_args = 1,
    .needs_config = true,
    .summary = "log in to the VM, or run COMMAND there (exit status passed through)",
    .rest = QQ_REST_AFTER_FIRST, .rest_args = "[COMMAND...]",
};
const qq_command qq_cmd_ssh_config = {
    .name = "ssh-config", .handler = ssh_config, .args = "VM", .min_args = 1, .max_args = 1,
    .needs_config = true,
    .summary = "print the VM's ssh config (usable with ssh -F)",
    .json = "{file, host, port, control_path, config, known_hosts}",
};
const qq_command qq_cmd_put = {
    .name = "put", .handler = put, .args = "VM LOCAL REMOTE", .min_args = 3, .max_args = 3,
    .needs_config = true,
    .summary = "copy files or directories into the VM",
};
const qq_command qq_cmd_get = {
    .name = "get", .handler = get, .args = "VM REMOTE LOCAL", .min_args = 3, .max_args = 3,
    .needs_config = true,
    .summary = "copy files or directories out of the VM",
};
