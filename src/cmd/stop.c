/* stop — power a VM down: ACPI, then QMP quit, SIGTERM, SIGKILL. */
#include <stdio.h>
#include <stdlib.h>

#include "../app/ssh.h"
#include "../app/vm.h"
#include "../base/cleanup.h"
#include "cmd.h"

typedef struct {
    int timeout;
    bool force;
    bool all;
} stop_opts;

static const stop_opts defaults = { .timeout = 30 };

static const qq_opt options[] = {
    QQ_SECONDS("timeout", stop_opts, timeout, 0, "how long to wait for the guest to power off"),
    QQ_FLAG('f', "force", stop_opts, force, "skip the polite steps: QMP quit, then kill"),
    QQ_FLAG(0, "all", stop_opts, all, "every running VM of the config and their throwaway copies (stopped in "
            "parallel); with VM names: those VMs and all their copies VM#N"),
    QQ_OPT_END,
};

static int stop_one(qq_ctx *ctx, const char *name)
{
    const stop_opts *o = ctx->opts;
    int timeout = o->timeout;
    bool force = o->force;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    vm_stop_result r;
    if (vm_stop(c, name, timeout, force, &r, &err) < 0)
        return qq_report(&err);
    if (r.was_running) {
        /* the ssh connection-sharing master, once QEMU is gone, briefly (a
         * master that does not answer only loses its socket) */
        _cleanup_free_ char *dir = config_vm_dir(c, name);
        ssh_close_master(dir, SSH_CLOSE_MASTER_MS);
    }
    if (ctx->json) {
        json_t *o = json_pack("{s:s, s:b}", "name", name, "was_running", r.was_running);
        json_object_set_new(o, "pid", r.was_running ? json_integer(r.pid) : json_null());
        json_object_set_new(o, "stopped_by", r.stopped_by ? json_string(r.stopped_by) : json_null());
        json_object_set_new(o, "elapsed_ms", r.was_running ? json_integer((json_int_t)(r.seconds * 1000)) : json_null());
        qq_print_json(o);
    } else if (!r.was_running) {
        printf("%s is not running\n", name);
    } else {
        printf("stopped %s (pid %ld) by %s in %.2f s\n", name, (long)r.pid, r.stopped_by, r.seconds);
    }
    return 0;
}

const qq_command qq_cmd_stop = {
    .name = "stop", .args = "[VM...]", .min_args = 0, .max_args = -1,
    .each = stop_one, .each_all = QQ_ALL_RUNNING, .each_waits = true,
    .summary = "power VMs down (ACPI, then QMP quit, SIGTERM, SIGKILL)",
    QQ_OPTIONS(stop_opts, options, &defaults),
    .json = "{name, was_running, pid, stopped_by, elapsed_ms}",
};
