/* start — start a VM; returns once QMP answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../app/launch.h"
#include "../app/snapshot.h"
#include "../app/share.h"
#include "../app/ssh.h"
#include "../base/report.h"
#include "../app/vm.h"
#include "../base/cleanup.h"
#include "../infra/proc.h"
#include "cmd.h"

typedef struct {
    const char *wait;
    int timeout;
    bool paused;
    const char *wrap;
    bool all;
    const char *restore;
    bool rm;
} start_opts;

static const char *const stages[] = { "ssh", "cloud-init", NULL };

static const qq_opt options[] = {
    QQ_ENUM_OPTIONAL("wait", "STAGE", start_opts, wait, stages, "ssh",
                     "also wait until the guest is ready: ssh answers, or cloud-init finished"),
    QQ_SECONDS("timeout", start_opts, timeout, 1, "bound the whole start (default 60, 300 with --wait)"),
    QQ_FLAG(0, "paused", start_opts, paused,
            "start with the CPUs stopped (-S): `qmp VM cont` or gdb's continue runs them"),
    QQ_STRING(0, "wrap", "'CMD ARGS'", start_opts, wrap,
              "run QEMU under a tool (valgrind, rr record, perf record, strace -f -o FILE); split like a cmd entry"),
    QQ_FLAG(0, "all", start_opts, all, "every VM of the config (several VMs start in parallel)"),
    QQ_STRING(0, "restore", "SNAPSHOT", start_opts, restore,
              "start from the snapshot: the guest continues where it was saved"),
    QQ_FLAG(0, "rm", start_opts, rm, "throwaway run: every disk write is lost when the VM stops"),
    QQ_OPT_END,
};

static int start_one(qq_ctx *ctx, const char *name)
{
    const char *vm = name;
    const start_opts *o = ctx->opts;
    const char *wait = o->wait;
    int timeout = o->timeout;
    qq_err err = { 0 };
    long long t0 = clock_ms();
    if (!timeout)
        timeout = wait ? 300 : 60;
    long long deadline = t0 + (long long)timeout * 1000;
    config *c = ctx->cfg;
    if (config_copy_parse(name, NULL, NULL, NULL) == 1) {
        _cleanup_free_ char *base = config_base_vm(name);
        qq_fail(&err, QQ_EXIT_USAGE, "start %s: a throwaway copy is made by `%s start %s --rm` (which picks its "
                "copy itself), and goes away when it stops", name, config_cli(c), base);
        return qq_report(&err);
    }
    if (wait && config_has_vm(c, name) && config_vm_ssh_port(c, name) == SSH_PORT_NONE) {
        qq_fail(&err, QQ_EXIT_USAGE, "start --wait: VM %s has no ssh port to wait on: set [vm.%s.ssh] port", name,
                name);
        return qq_report(&err);
    }
    if (wait && o->paused) {
        qq_fail(&err, QQ_EXIT_USAGE,
                "start: --paused and --wait exclude each other: the CPUs stay stopped until `qmp %s cont` "
                "(or gdb's continue), so ssh never answers", name);
        return qq_report(&err);
    }
    launch_result r;
    launch_opts lo = { .deadline_ms = deadline, .paused = o->paused, .wrap = o->wrap };
    snap_start_opts so = { .restore = o->restore, .rm = o->rm, .launch = lo };
    /* from a snapshot or throwaway: snapshot.h; else the plain start (launch.h) */
    if ((so.restore || so.rm) ? snap_start(c, name, &so, &r, &err) < 0 : launch_start(c, name, &lo, &r, &err) < 0) {
        if (r.stderr_tail) {
            fprintf(stderr, "%s", r.stderr_tail);
            if (r.stderr_tail[0] && r.stderr_tail[strlen(r.stderr_tail) - 1] != '\n')
                fputc('\n', stderr);
            free(r.stderr_tail);
        }
        return qq_report(&err);
    }
    /* a throwaway start may run as a copy VM#N (copies.h): from here on it is that one */
    if (r.instance[0])
        name = r.instance;
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
    bool progress = report_watched() && !ctx->json;
    if (o->restore && !o->paused && !r.already_running) {
        /* the guest clock stood still since the save */
        guestclock_result gr;
        if (snap_ready(c, name, o->restore, wait, deadline, progress, ctx->debug, &gr, &err) < 0 ||
            (wait && share_mount(c, name, ctx->debug, &err) < 0))
            return qq_report(&err);
        qq_clock_report(ctx, name, &gr);
    } else if (wait && (ssh_wait_ready(c, name, wait, deadline, progress, ctx->debug, &err) < 0 ||
                        share_mount(c, name, ctx->debug, &err) < 0)) {
        return qq_report(&err);
    }
    double total = (double)(clock_ms() - t0) / 1000;   /* the whole command, the wait included */
    if (ctx->json) {
        json_t *o = json_pack("{s:s, s:s, s:i, s:b, s:s}", "name", vm, "instance", name, "pid", (int)r.pid,
                              "already_running", r.already_running, "state", r.state);
        json_object_set_new(o, "ssh_port", r.ssh_port > 0 ? json_integer(r.ssh_port) : json_null());
        json_object_set_new(o, "elapsed_ms", r.already_running ? json_null() : json_integer((json_int_t)(r.seconds * 1000)));
        json_object_set_new(o, "ready_ms", wait ? json_integer((json_int_t)(total * 1000)) : json_null());
        qq_print_json(o);
    } else if (r.already_running) {
        printf("%s is already running (pid %ld)", name, (long)r.pid);
        if (wait)
            printf("; %s ready after %.2f s", wait, total);
        printf("\n");
    } else {
        char port[32] = "";
        if (r.ssh_port > 0)
            snprintf(port, sizeof port, ", ssh port %d", r.ssh_port);
        printf("started %s (pid %ld%s) in %.2f s", name, (long)r.pid, port, r.seconds);
        if (wait)
            printf("; %s ready after %.2f s in all", wait, total);
        printf("\n");
    }
    if (strcmp(r.state, "running") != 0 && strcmp(r.state, "prelaunch") != 0 && strcmp(r.state, "paused") != 0)
        fprintf(stderr, "qqmgr: warning: %s is in state '%s'\n", name, r.state);
    return 0;
}

const qq_command qq_cmd_start = {
    .name = "start", .each = start_one, .each_all = QQ_ALL_CONFIGURED, .args = "[VM...]", .min_args = 0, .max_args = -1,
    .summary = "start VMs (returns when QMP answers; --wait also waits for the guests)",
    QQ_OPTIONS(start_opts, options, NULL),
    .json = "{name, instance, pid, already_running, state, ssh_port, elapsed_ms, ready_ms}",
};
