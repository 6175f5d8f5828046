/* qqmgr — quick QEMU VM manager: global options and the command table.
 *
 * Every command is one row below; dispatch, the overview and each command's
 * own usage come from this table. A command file (src/cmd/NAME.c) parses its
 * own options, calls the app layer and prints.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"

#ifndef QQ_VERSION
#define QQ_VERSION "0.1.0"
#endif

enum { PASS_NONE = 0, PASS_AFTER_VM = 1 };

typedef struct row {
    qq_command c;
    int passthrough;   /* PASS_AFTER_VM: arguments after the VM name are not ours (no --json scan) */
} row;

static const row commands[] = {
    { { "list", cmd_list, 0, 0, "", "list the VMs of the config, with ssh port and state",
        "  --json           an array of {name, configured, running, state, pid, ssh_port, ssh_port_config}\n" }, 0 },
    { { "show", cmd_show, 1, 1, "VM", "print the exact QEMU command line start would run",
        "  --json           {name, qemu, argv, state_dir, files, images}\n" }, 0 },
    { { "start", cmd_start, 1, 1, "VM [--wait[=ssh|cloud-init]] [--timeout S]",
        "start a VM (returns when QMP answers; --wait also waits for the guest)",
        "  --wait[=STAGE]   also wait for ssh (default) or cloud-init\n"
        "  --timeout S      bound the whole start (default 60, 300 with --wait)\n"
        "  --json           {name, pid, ssh_port, already_running, ...}\n" }, 0 },
    { { "stop", cmd_stop, 1, 1, "VM [--timeout S] [--force]",
        "power a VM down (ACPI, then QMP quit, SIGTERM, SIGKILL)",
        "  --timeout S      how long to wait for the guest to power off (default 30)\n"
        "  --force          skip the polite steps: QMP quit, then kill\n"
        "  --json           {name, was_running, stopped_by}\n" }, 0 },
    { { "status", cmd_status, 1, 1, "VM", "show a VM's state, pid, ports and files",
        "  --json           the original qqmgr's fields, plus state and uptime\n" }, 0 },
    { { "serial", cmd_serial, 1, 1, "VM [-n N] [-f]", "print (or follow) the VM's serial console log",
        "  -n N             last N lines (default 10)\n  -f               follow until the VM stops\n" }, 0 },
    { { "stdout", cmd_stdout, 1, 1, "VM [-n N] [-f]", "print (or follow) QEMU's stdout",
        "  -n N             last N lines (default 10)\n  -f               follow until the VM stops\n" }, 0 },
    { { "stderr", cmd_stderr, 1, 1, "VM [-n N] [-f]", "print (or follow) QEMU's stderr",
        "  -n N             last N lines (default 10)\n  -f               follow until the VM stops\n" }, 0 },
    { { "console", cmd_console, 1, 1, "VM", "attach the terminal to the serial console (Ctrl-] leaves)", NULL }, 0 },
    { { "ssh", cmd_ssh, 1, -1, "VM [COMMAND...]", "log in to the VM, or run COMMAND there (exit status passed through)", NULL },
      PASS_AFTER_VM },
    { { "ssh-config", cmd_ssh_config, 1, 1, "VM", "print the VM's ssh config (usable with ssh -F)", NULL }, 0 },
    { { "put", cmd_put, 3, 3, "VM LOCAL REMOTE", "copy files or directories into the VM", NULL }, 0 },
    { { "get", cmd_get, 3, 3, "VM REMOTE LOCAL", "copy files or directories out of the VM", NULL }, 0 },
    { { "wait", cmd_wait, 1, 1, "VM [--for ssh|cloud-init] [--timeout S]", "wait until the guest is ready",
        "  --for STAGE      ssh (default) or cloud-init\n  --timeout S      give up after S seconds (default 300)\n" }, 0 },
    { { "img list", cmd_img, 0, 0, "", "list the images of the config, with builder, size and state",
        "  --json           an array of {name, builder, img_size, img_size_bytes, path, built, disk_usage}\n" }, 0 },
    { { "img build", cmd_img_build, 1, 1, "IMAGE [--force] [--timeout S]", "build an image (stages skipped when up to date)",
        "  --force          rebuild every stage\n  --timeout S      bound the customisation boot\n"
        "  --json           what each stage did\n" }, 0 },
    { { "gdb", cmd_gdb, 1, -1, "VM [--attach] [-- GDB_ARGS...]", "run QEMU under gdb with the VM's exact arguments (alias: qemu)",
        "  --attach         attach gdb to the running QEMU instead\n" }, PASS_AFTER_VM },
    { { "qemu", cmd_gdb, 1, -1, "VM [--attach] [-- GDB_ARGS...]", NULL, NULL }, PASS_AFTER_VM },
    { { "qmp", cmd_qmp, 2, 3, "VM COMMAND [JSON_ARGS]", "run a QMP command and print its reply", NULL }, 0 },
    { { "monitor", cmd_monitor, 2, 2, "VM 'HMP COMMAND'", "run a human-monitor command and print its output", NULL }, 0 },
};

static void usage_overview(FILE *f)
{
    fprintf(f,
            "usage: qqmgr [-c FILE] [-d] COMMAND [ARGS...] [--json]\n"
            "       qqmgr COMMAND -h    help on one command\n\n"
            "Global options:\n"
            "  -c, --config FILE  the config (default: ./qqmgr.toml, else ~/.config/qqmgr/conf.toml)\n"
            "  -d, --debug        print what is run\n"
            "  -h, --help         this help\n"
            "      --version      print the version\n\n"
            "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        const qq_command *c = &commands[i].c;
        if (!c->summary)
            continue;
        char head[128];
        snprintf(head, sizeof head, "%s %s", c->name, c->usage);
        if (strlen(head) > 44)
            fprintf(f, "  %s\n  %-44s %s\n", head, "", c->summary);
        else
            fprintf(f, "  %-44s %s\n", head, c->summary);
    }
    fprintf(f, "\nExit status: 0 success, 1 failure, 2 usage or config error; ssh passes the remote status.\n");
}

int qq_usage(qq_ctx *ctx, bool help)
{
    FILE *f = help ? stdout : stderr;
    const qq_command *c = ctx->cmd;
    fprintf(f, "usage: qqmgr %s%s%s\n", c->name, *c->usage ? " " : "", c->usage);
    if (help) {
        if (c->summary)
            fprintf(f, "\n%s\n", c->summary);
        if (c->options)
            fprintf(f, "\nOptions:\n%s", c->options);
        fprintf(f, "  -h, --help       this help\n");
    }
    return help ? 0 : QQ_EXIT_USAGE;
}

static const row *find_command(int argc, char **argv, int *words)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        const char *name = commands[i].c.name;
        const char *sp = strchr(name, ' ');
        if (!sp) {
            if (strcmp(name, argv[0]) == 0) {
                *words = 1;
                return &commands[i];
            }
        } else if (argc >= 2 && strncmp(name, argv[0], (size_t)(sp - name)) == 0 &&
                   argv[0][sp - name] == '\0' && strcmp(sp + 1, argv[1]) == 0) {
            *words = 2;
            return &commands[i];
        }
    }
    return NULL;
}

/* Remove `--json` from a command's arguments (not after `--`, and for
 * pass-through commands not after the VM name) and set ctx->json. */
static int take_json(qq_ctx *ctx, int argc, char **argv, int passthrough)
{
    int out = 1;
    bool stop = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!stop && strcmp(a, "--") == 0)
            stop = true;
        if (!stop && strcmp(a, "--json") == 0) {
            ctx->json = true;
            continue;
        }
        /* the VM name: what follows it is the remote command's, or gdb's */
        if (!stop && a[0] != '-' && passthrough == PASS_AFTER_VM)
            stop = true;
        argv[out++] = argv[i];
    }
    argv[out] = NULL;
    return out;
}

int main(int argc, char **argv)
{
    qq_ctx ctx = { 0 };
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "debug", no_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "json", no_argument, NULL, 'j' },
        { 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "+c:dh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': ctx.config_path = optarg; break;
        case 'd': ctx.debug = true; break;
        case 'h': usage_overview(stdout); return 0;
        case 'V': printf("qqmgr %s\n", QQ_VERSION); return 0;
        case 'j': ctx.json = true; break;
        default: usage_overview(stderr); return QQ_EXIT_USAGE;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1) {
        usage_overview(stderr);
        return QQ_EXIT_USAGE;
    }
    if (strcmp(argv[0], "help") == 0) {
        usage_overview(stdout);
        return 0;
    }
    int words = 0;
    const row *r = find_command(argc, argv, &words);
    if (!r) {
        if (strcmp(argv[0], "img") == 0)
            fprintf(stderr, "qqmgr: img: expected 'list' or 'build'\n");
        else
            fprintf(stderr, "qqmgr: unknown command '%s' (see qqmgr -h)\n", argv[0]);
        return QQ_EXIT_USAGE;
    }
    ctx.cmd = &r->c;
    /* a two-word command sees itself as one argv[0] */
    argc -= words - 1;
    argv += words - 1;
    argc = take_json(&ctx, argc, argv, r->passthrough);
    optind = 0;   /* reset getopt for the command (GNU: 0 reinitialises) */
    int rc = r->c.handler(&ctx, argc, argv);
    /* The process ends here: tearing down a big config's value tree node by
     * node costs as much as parsing it, and the kernel frees it at once. Kept
     * reachable so leak checkers do not count it. */
    static config *keep;
    keep = ctx.cfg;
    (void)keep;
    return rc;
}
