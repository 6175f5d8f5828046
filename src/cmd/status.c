/* status — a VM's state, pid, ports and files. */
#include <stdio.h>

#include "../app/forward.h"
#include "../app/vm.h"
#include "../base/cleanup.h"
#include "cmd.h"

typedef struct {
    bool all;
} status_opts;

static const qq_opt options[] = {
    QQ_FLAG(0, "all", status_opts, all, "every running VM of the config and their throwaway copies; with VM "
            "names: those VMs and all their copies VM#N"),
    QQ_OPT_END,
};

static int status_one(qq_ctx *ctx, const char *name)
{
    qq_err err = { 0 };
    json_t *o = vm_status_json(ctx->cfg, name, &err);
    if (!o)
        return qq_report(&err);
    /* every host port forward of this run: cmd's hostfwd= rules, then `forward add`'s */
    json_t *pid = json_object_get(o, "pid");
    _cleanup_free_ char *dir = config_vm_dir(ctx->cfg, name);
    json_object_set_new(o, "forwards", json_is_integer(pid) ? forward_ports(dir, (pid_t)json_integer_value(pid))
                                                            : json_array());
    if (ctx->json) {
        qq_print_json(o);
        return 0;
    }
    json_t *up = json_object_get(o, "uptime");
    json_t *port = json_object_get(json_object_get(o, "ssh"), "port");
    printf("%-10s %s\n", "name:", name);
    printf("%-10s %s\n", "state:", json_string_value(json_object_get(o, "state")));
    if (json_is_integer(pid))
        printf("%-10s %lld\n", "pid:", (long long)json_integer_value(pid));
    if (json_is_integer(up)) {
        char u[32];
        qq_fmt_uptime(u, sizeof u, (long long)json_integer_value(up));
        printf("%-10s %s (%lld s)\n", "uptime:", u, (long long)json_integer_value(up));
    }
    if (json_is_integer(port))
        printf("%-10s %lld\n", "ssh port:", (long long)json_integer_value(port));
    json_t *fw = json_object_get(o, "forwards");
    if (json_array_size(fw)) {
        _cleanup_sbuf_ sbuf b = SBUF_INIT;
        qq_fmt_ports(&b, fw, ", ", false);
        printf("%-10s %s\n", "ports:", sbuf_str(&b));
    }
    const char *snap = json_string_value(json_object_get(o, "snapshot"));
    if (snap)
        printf("%-10s %s\n", "restored:", snap);
    printf("%-10s %s\n", "qmp:", json_is_true(json_object_get(o, "qmp_connected")) ? "connected" : "not connected");
    printf("%-10s %s\n", "serial:", json_string_value(json_object_get(o, "serial_file")));
    printf("%-10s %s\n", "stderr:", json_string_value(json_object_get(o, "qemu_stderr")));
    printf("%-10s %s\n", "state dir:", json_string_value(json_object_get(o, "state_dir")));
    /* a running VM runs with what it was started with, whatever the config says now */
    if (!json_is_true(json_object_get(o, "configured")))
        printf("%-10s not in the config any more; it runs as started (%s stop %s stops it)\n", "config:",
               config_cli(ctx->cfg), name);
    else if (json_is_true(json_object_get(o, "config_changed")))
        printf("%-10s changed since the start (%s); it runs as started until a restart\n", "config:",
               json_string_value(json_object_get(o, "config_change")) ?: "?");
    /* its throwaway copies, one line each */
    size_t i;
    json_t *cp;
    json_array_foreach(json_object_get(o, "copies"), i, cp) {
        char u[32] = "-";
        json_t *cu = json_object_get(cp, "uptime");
        if (json_is_integer(cu))
            qq_fmt_uptime(u, sizeof u, (long long)json_integer_value(cu));
        json_t *cpid = json_object_get(cp, "pid"), *cport = json_object_get(cp, "ssh_port");
        const char *csnap = json_string_value(json_object_get(cp, "snapshot"));
        printf("%-10s %s %s, pid %lld, ssh port %lld, up %s%s%s\n", i ? "" : "copies:",
               json_string_value(json_object_get(cp, "name")), json_string_value(json_object_get(cp, "state")),
               (long long)json_integer_value(cpid), (long long)json_integer_value(cport), u,
               csnap ? ", from " : "", csnap ? csnap : "");
    }
    json_decref(o);
    return 0;
}

const qq_command qq_cmd_status = {
    .name = "status", .args = "[VM...]", .min_args = 0, .max_args = -1,
    .each = status_one, .each_all = QQ_ALL_RUNNING, .each_waits = true,
    .summary = "show VMs' state, pid, ports and files",
    QQ_OPTIONS(status_opts, options, NULL),
    .json = "the original qqmgr's fields, plus state, uptime, state_dir, configured, config_changed, config_change, snapshot, forwards and (a VM's) copies[{name, state, pid, ssh_port, uptime, snapshot, state_dir}]",
};
