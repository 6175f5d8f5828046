/* start — start a VM; returns once QMP answers. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../app/ssh.h"
#include "../app/vm.h"
#include "../base/cleanup.h"
#include "../infra/proc.h"
#include "cmd.h"

int cmd_start(qq_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "timeout", required_argument, NULL, 't' },
        { "wait", optional_argument, NULL, 'w' },
        { 0 },
    };
    int timeout = 0, ch, rc;
    const char *wait = NULL;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': return qq_usage(ctx, true);
        case 't':
            if ((rc = qq_opt_seconds(ctx, optarg, 1, &timeout)) >= 0)
                return rc;
            break;
        case 'w': wait = optarg ? optarg : "ssh"; break;
        default: return qq_usage(ctx, false);
        }
    }
    rc = qq_check_args(ctx, argc - optind);
    if (rc >= 0)
        return rc;
    const char *name = argv[optind];
    qq_err err = { 0 };
    if (wait && strcmp(wait, "ssh") != 0 && strcmp(wait, "cloud-init") != 0) {
        fprintf(stderr, "qqmgr: start: --wait: expected ssh or cloud-init, got '%s'\n", wait);
        return QQ_EXIT_USAGE;
    }
    if (!timeout)
        timeout = wait ? 300 : 60;
    long long deadline = proc_now_ms() + (long long)timeout * 1000;
    config *c = qq_config(ctx, &err);
    if (!c)
        return qq_report(&err);
    if (wait && config_has_vm(c, name) && config_vm_ssh_port(c, name) == SSH_PORT_NONE) {
        qq_fail(&err, QQ_EXIT_USAGE, "start --wait: VM %s has no ssh port to wait on: set [vm.%s.ssh] port", name,
                name);
        return qq_report(&err);
    }
    vm_start_result r;
    if (vm_start(c, name, timeout, &r, &err) < 0) {
        if (r.stderr_tail) {
            fprintf(stderr, "%s", r.stderr_tail);
            if (r.stderr_tail[0] && r.stderr_tail[strlen(r.stderr_tail) - 1] != '\n')
                fputc('\n', stderr);
            free(r.stderr_tail);
        }
        return qq_report(&err);
    }
    if (ctx->debug && !r.already_running) {
        /* what was run, as recorded in the state dir */
        _cleanup_free_ char *dir = config_vm_dir(c, name);
        _cleanup_sbuf_ sbuf path = SBUF_INIT, line = SBUF_INIT;
        sbuf_addf(&path, "%s/argv.json", dir);
        _cleanup_json_ json_t *av = json_load_file(sbuf_str(&path), 0, NULL);
        size_t i;
        json_t *a;
        json_array_foreach(av, i, a) {
            sbuf_adds(&line, i ? " " : "+ ");
            qq_shell_quote(&line, json_string_value(a) ? json_string_value(a) : "");
        }
        if (line.len)
            fprintf(stderr, "%s\n", sbuf_str(&line));
    }
    if (wait && ssh_wait_ready(c, name, wait, deadline, isatty(2), &err) < 0)
        return qq_report(&err);
    if (ctx->json) {
        json_t *o = json_pack("{s:s, s:i, s:b, s:s}", "name", name, "pid", (int)r.pid, "already_running",
                              r.already_running, "state", r.state);
        json_object_set_new(o, "ssh_port", r.ssh_port > 0 ? json_integer(r.ssh_port) : json_null());
        json_object_set_new(o, "elapsed_ms", r.already_running ? json_null() : json_integer((json_int_t)(r.seconds * 1000)));
        qq_print_json(o);
    } else if (r.already_running) {
        printf("%s is already running (pid %ld)\n", name, (long)r.pid);
    } else {
        char port[32] = "";
        if (r.ssh_port > 0)
            snprintf(port, sizeof port, ", ssh port %d", r.ssh_port);
        printf("started %s (pid %ld%s) in %.2f s\n", name, (long)r.pid, port, r.seconds);
    }
    if (strcmp(r.state, "running") != 0 && strcmp(r.state, "prelaunch") != 0 && strcmp(r.state, "paused") != 0)
        fprintf(stderr, "qqmgr: warning: %s is in state '%s'\n", name, r.state);
    return 0;
}
