/* show — the exact command line `start` would run for a VM. */
#include <stdio.h>
#include <stdlib.h>

#include "../app/launch.h"
#include "../app/ramfile.h"
#include "../app/vm.h"
#include "../base/cleanup.h"
#include "cmd.h"

static void free_argv(char **argv)
{
    if (argv)
        for (char **p = argv; *p; p++)
            free(*p);
    free(argv);
}

typedef struct {
    bool paused;
    const char *wrap;
} show_opts;

static const qq_opt options[] = {
    QQ_FLAG(0, "paused", show_opts, paused, "as start --paused runs it"),
    QQ_STRING(0, "wrap", "'CMD ARGS'", show_opts, wrap, "as start --wrap runs it: the tool's words, then QEMU's"),
    QQ_OPT_END,
};

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const show_opts *o = ctx->opts;
    launch_opts ro = { .paused = o->paused, .wrap = o->wrap };
    qq_err err = { 0 };
    config *c = ctx->cfg;
    const char *name = argv[1];
    /* an automatic port shows the port in use when the VM runs */
    int port = 0;
    if (config_vm_ssh_port(c, name) == SSH_PORT_AUTO) {
        _cleanup_free_ char *dir = config_vm_dir(c, name);
        vm_state st = { 0 };
        if (vm_probe(dir, false, &st) == 0 && st.running)
            port = st.ssh_port;
    }
    vm_spec s;
    if (config_vm(c, name, port, &s, &err) < 0)
        return qq_report(&err);
    /* the RAM as start gives it: a tmpfs file (PID.N: its name is fresh at every start) */
    unsigned long long bytes;
    char why[320] = "";
    _cleanup_free_ char *ram = NULL;
    if (ramfile_check(&s, true, &bytes, why, sizeof why) == 1 && (ram = ramfile_shown_path()))
        ro.ram.file = ram;
    else if (!why[0])
        snprintf(why, sizeof why, "no private tmpfs dir for its RAM");
    char **full = NULL;
    if (launch_argv(&s, &ro, &full, &err) < 0) {
        vm_spec_free(&s);
        return qq_report(&err);
    }
    if (ctx->json) {
        json_t *av = json_array();
        for (char **p = full; *p; p++)
            json_array_append_new(av, json_string(*p));
        json_t *files = layout_vm_files_json(s.state_dir);
        json_t *imgs = json_array();
        for (char **p = s.images; *p; p++)
            json_array_append_new(imgs, json_string(*p));
        qq_print_json(json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:o}", "name", s.name, "qemu", s.qemu_bin, "argv", av,
                                "state_dir", s.state_dir, "files", files, "images", imgs, "not_mapped",
                                ram ? json_null() : json_string(why)));
    } else {
        _cleanup_sbuf_ sbuf line = SBUF_INIT;
        for (char **p = full; *p; p++) {
            if (p != full)
                sbuf_addc(&line, ' ');
            qq_shell_quote(&line, *p);
        }
        printf("%s\n", sbuf_str(&line));
        if (s.ssh_port == SSH_PORT_AUTO && port == 0)
            fprintf(stderr, "qqmgr: note: %s's ssh port is chosen at start (shown as 0)\n", name);
        if (!ram)
            fprintf(stderr, "qqmgr: note: %s's snapshots are not mapped (a restore reads all its RAM): %s\n", name,
                    why);
    }
    free_argv(full);
    vm_spec_free(&s);
    return 0;
}

const qq_command qq_cmd_show = {
    .name = "show", .needs_config = true, .handler = run, .args = "VM", .min_args = 1, .max_args = 1,
    .summary = "print the exact QEMU command line start would run",
    QQ_OPTIONS(show_opts, options, NULL),
    .json = "{name, qemu, argv, state_dir, files, images, not_mapped}",
};
