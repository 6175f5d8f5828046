/* qqmgr — quick QEMU VM manager: global options, the command table and the
 * dispatcher.
 *
 * Every command is one row (a qq_command, defined in its src/cmd/ file) listed
 * below; dispatch, argument parsing, the overview, each command's help and the
 * shell completion all come from these rows. What every command would repeat
 * the dispatcher does from its row: parse, check usage, load the config, run
 * the handler or, for a command on VMs, its per-VM function for each VM (see
 * src/cmd/cmd.h, which also says how to add a command).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/remote.h"
#include "base/strdist.h"
#include "cmd/cmd.h"

#ifndef QQ_VERSION
#error "QQ_VERSION comes from meson.build's project version"
#endif

/* In overview order. Two-word commands ("img build") are found by both words. */
const qq_command *const qq_commands[] = {
    &qq_cmd_init,
    &qq_cmd_list,
    &qq_cmd_show,
    &qq_cmd_start,
    &qq_cmd_stop,
    &qq_cmd_status,
    &qq_cmd_serial,
    &qq_cmd_stdout,
    &qq_cmd_stderr,
    &qq_cmd_console,
    &qq_cmd_ssh,
    &qq_cmd_ssh_config,
    &qq_cmd_ssh_keys_reset,
    &qq_cmd_put,
    &qq_cmd_get,
    &qq_cmd_wait,
    &qq_cmd_img_list,
    &qq_cmd_img_build,
    &qq_cmd_img_rm,
    &qq_cmd_snapshot_save,
    &qq_cmd_snapshot_restore,
    &qq_cmd_snapshot_list,
    &qq_cmd_snapshot_delete,
    &qq_cmd_snapshot_export,
    &qq_cmd_snapshot_import,
    &qq_cmd_run,
    &qq_cmd_gdb,
    &qq_cmd_qemu,
    &qq_cmd_qmp,
    &qq_cmd_monitor,
    &qq_cmd_ga,
    &qq_cmd_trace,
    &qq_cmd_events,
    &qq_cmd_forward,
    &qq_cmd_rm,
    &qq_cmd_prune,
    &qq_cmd_completion,
    &qq_cmd_complete,
    &qq_cmd_connect,
    NULL,
};

/* A usage error before any command: "qqmgr: MSG" through qq_err; returns 2. */
__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qq_err err = { 0 };
    qq_fail(&err, QQ_EXIT_USAGE, "%s", msg);
    return qq_report(&err);
}

/* The value of the row's flag --all (a command on VMs), false without one. */
static bool all_flag(const qq_ctx *ctx)
{
    for (const qq_opt *o = ctx->cmd->opts; o && o->kind; o++)
        if (o->kind == QQ_OPT_FLAG && o->long_name && strcmp(o->long_name, "all") == 0)
            return *(const bool *)(const void *)((const char *)ctx->opts + o->offset);
    return false;
}

/* What every command shares, from its row (cmd.h): usage checks, the
 * config, then the handler or the per-VM function for each VM. */
static int dispatch(qq_ctx *ctx, int argc, char **argv)
{
    const qq_command *c = ctx->cmd;
    qq_err err = { 0 };
    bool all = c->each && all_flag(ctx);
    int rc = 0;
    /* `stop VM --all`: the VM and all its throwaway copies (a command on running VMs) */
    if (c->each && all && argc > 1 && c->each_all != QQ_ALL_RUNNING)
        rc = qq_usage_error(ctx, &err, false, "give VM names or --all, not both");
    else if (c->each && !all && argc < 2)
        return qq_usage(ctx, false);
    else if (c->check)
        rc = c->check(ctx, argc, argv, &err);
    if (rc > 0)
        return rc;
    if (rc < 0)
        return err.code == QQ_EXIT_USAGE ? qq_report_usage(ctx, &err) : qq_report(&err);
    if ((c->needs_config || c->each) && !qq_config(ctx, &err))
        return qq_report(&err);
    if (c->each)
        return qq_for_vms(ctx, argc, argv, all);
    return c->handler(ctx, argc, argv);
}

static const qq_command *find_command(int argc, char **argv, int *words)
{
    for (const qq_command *const *p = qq_commands; *p; p++) {
        const char *name = (*p)->name;
        const char *sp = strchr(name, ' ');
        if (!sp) {
            if (strcmp(name, argv[0]) == 0) {
                *words = 1;
                return *p;
            }
        } else if (argc >= 2 && strncmp(name, argv[0], (size_t)(sp - name)) == 0 &&
                   argv[0][sp - name] == '\0' && strcmp(sp + 1, argv[1]) == 0) {
            *words = 2;
            return *p;
        }
    }
    return NULL;
}

/* "img": the first word of some two-word command */
static bool is_group(const char *word)
{
    size_t n = strlen(word);
    for (const qq_command *const *p = qq_commands; *p; p++)
        if (strncmp((*p)->name, word, n) == 0 && (*p)->name[n] == ' ')
            return true;
    return false;
}

/* " (did you mean 'start'?)" for a near miss of a command's word, else "":
 * the first words of the commands (group NULL), or the second words of a
 * group's commands. */
static const char *did_you_mean(const char *word, const char *group, char *buf, size_t len)
{
    enum { MAX = 64 };
    static char words[MAX][32];
    const char *cands[MAX + 2];
    size_t n = 0, gl = group ? strlen(group) : 0;
    for (const qq_command *const *p = qq_commands; *p && n < MAX; p++) {
        const char *name = (*p)->name, *w = name;
        if (group) {
            if (strncmp(name, group, gl) != 0 || name[gl] != ' ')
                continue;
            w = name + gl + 1;
        }
        snprintf(words[n], sizeof words[n], "%.*s", (int)strcspn(w, " "), w);
        cands[n] = words[n];
        n++;
    }
    if (!group)
        cands[n++] = "help";
    cands[n] = NULL;
    const char *best = str_closest(word, cands);
    if (!best) {
        *buf = '\0';
        return buf;
    }
    snprintf(buf, len, " (did you mean '%s%s%s'?)", group ? group : "", group ? " " : "", best);
    return buf;
}

int main(int argc, char **argv)
{
    qq_ctx ctx = { 0 };
    /* getopt's tables, from the one table of global options */
    struct option opts[16] = { 0 };
    char shorts[40] = "+:";   /* ':': a missing value is told apart */
    size_t n = 0, ns = 2;
    for (const qq_global_opt *g = qq_globals; g->val && n < 15; g++, n++) {
        opts[n] = (struct option){ g->long_name, g->arg ? required_argument : no_argument, NULL, g->val };
        if (g->has_short && ns + 3 < sizeof shorts) {
            shorts[ns++] = (char)g->val;
            if (g->arg)
                shorts[ns++] = ':';
        }
    }
    int ch;
    const char *host = getenv("QQMGR_HOST");
    opterr = 0;   /* one line of our own, not getopt's and the whole overview */
    while ((ch = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
        switch (ch) {
        case 'c': ctx.config_path = optarg; break;
        case 'd': ctx.debug = true; break;
        case 'H': host = optarg; break;
        case 'h': qq_overview(stdout); return 0;
        case 'V': printf("qqmgr %s\n", QQ_VERSION); return 0;
        case 'j': ctx.json = true; break;
        case ':':
            return usage_error("%s needs a value (see qqmgr -h)", argv[optind - 1]);
        default: {
            const char *w = argv[optind - 1];
            if (strncmp(w, "--", 2) == 0 && optopt && strchr(w, '='))
                return usage_error("%.*s takes no value (see qqmgr -h)", (int)strcspn(w, "="), w);
            if (strncmp(w, "--", 2) == 0)
                return usage_error("unknown option '%s' (see qqmgr -h)", w);
            return usage_error("unknown option '-%c' (see qqmgr -h)", optopt);
        }
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1) {
        qq_overview(stderr);
        return QQ_EXIT_USAGE;
    }
    /* ssh's connector (sshconf.h) connects from where ssh runs, whatever
     * QQMGR_HOST says */
    if (strcmp(argv[0], "__connect") == 0)
        host = NULL;
    if (host && *host) {   /* the whole command runs there (-H '' runs it here) */
        qq_err err = { 0 };
        remote_host h;
        qq_install_reporter();
        int rc = remote_parse(host, &h, &err);
        if (rc == 0)
            rc = remote_run(&h, ctx.config_path, ctx.debug, argc, argv, &err);
        return rc < 0 ? qq_report(&err) : rc;
    }
    if (strcmp(argv[0], "help") == 0) {   /* help [COMMAND]: as `COMMAND -h` */
        int w = 0;
        const qq_command *hc = argc >= 2 ? find_command(argc - 1, argv + 1, &w) : NULL;
        if (hc) {
            ctx.cmd = hc;
            return qq_usage(&ctx, true);
        }
        if (argc >= 2 && is_group(argv[1])) {
            qq_group_usage(stdout, argv[1]);
            return 0;
        }
        if (argc >= 2) {
            char hint[96];
            return usage_error("unknown command '%s'%s (see qqmgr -h)", argv[1],
                               did_you_mean(argv[1], NULL, hint, sizeof hint));
        }
        qq_overview(stdout);
        return 0;
    }
    int words = 0;
    const qq_command *c = find_command(argc, argv, &words);
    if (!c) {
        if (is_group(argv[0])) {
            bool help = argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0);
            char hint[96];
            if (!help && argc >= 2)
                usage_error("%s: unknown subcommand '%s'%s", argv[0], argv[1],
                            did_you_mean(argv[1], argv[0], hint, sizeof hint));
            qq_group_usage(help ? stdout : stderr, argv[0]);
            return help ? 0 : QQ_EXIT_USAGE;
        }
        char hint[96];
        return usage_error("unknown command '%s'%s (see qqmgr -h)", argv[0],
                           did_you_mean(argv[0], NULL, hint, sizeof hint));
    }
    ctx.cmd = c;
    /* a two-word command sees itself as one argv[0] */
    argc -= words - 1;
    argv += words - 1;
    argv[0] = (char *)c->name;
    alignas(max_align_t) static unsigned char opt_store[1024];
    if (c->opts_size > sizeof opt_store)
        abort();
    if (c->opts_defaults)
        memcpy(opt_store, c->opts_defaults, c->opts_size);
    ctx.opts = c->opts ? opt_store : NULL;
    int rc = qq_parse(&ctx, c, &argc, argv, opt_store);
    if (rc >= 0)
        return rc;
    optind = 1;   /* argv[optind] is the first positional, as after getopt */
    qq_install_reporter();
    rc = dispatch(&ctx, argc, argv);
    /* The process ends here: tearing down a big config's value tree node by
     * node costs as much as parsing it, and the kernel frees it at once. Kept
     * reachable so leak checkers do not count it. */
    static config *volatile keep;
    keep = ctx.cfg;
    (void)keep;
    return rc;
}
