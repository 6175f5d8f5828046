/* list — the VMs of the config in file order, with ssh port and state. */
#include <stdio.h>
#include <stdlib.h>

#include "../app/vm.h"
#include "../base/cleanup.h"
#include "cmd.h"

int cmd_list(qq_ctx *ctx, int argc, char **argv)
{
    int rc = qq_parse_simple(ctx, argc, argv);
    if (rc >= 0)
        return rc;
    qq_err err = { 0 };
    config *c = qq_config(ctx, &err);
    if (!c)
        return qq_report(&err);

    json_t *arr = ctx->json ? json_array() : NULL;
    size_t n = config_vm_count(c);
    if (!ctx->json && n)
        printf("%-24s %-8s %-10s %s\n", "NAME", "SSH", "STATE", "PID");
    for (size_t i = 0; i < n; i++) {
        const char *name = config_vm_name(c, i);
        _cleanup_free_ char *dir = config_vm_dir(c, name);
        vm_state st = { 0 };
        vm_probe(dir, false, &st);
        int port = config_vm_ssh_port(c, name);
        int shown_port = port > 0 ? port : (port == SSH_PORT_AUTO && st.running ? st.ssh_port : 0);
        if (ctx->json) {
            json_t *o = json_pack("{s:s, s:b, s:b, s:s}", "name", name, "configured", 1, "running",
                                  st.running, "state", st.state[0] ? st.state : (st.running ? "running" : "stopped"));
            json_object_set_new(o, "pid", st.running ? json_integer(st.pid) : json_null());
            json_object_set_new(o, "ssh_port", shown_port > 0 ? json_integer(shown_port) : json_null());
            json_object_set_new(o, "ssh_port_config",
                                port == SSH_PORT_NONE ? json_null()
                                : port == SSH_PORT_AUTO ? json_string("auto")
                                                        : json_integer(port));
            json_array_append_new(arr, o);
        } else {
            char ps[16], pid[16] = "-";
            if (shown_port > 0)
                snprintf(ps, sizeof ps, "%d", shown_port);
            else
                snprintf(ps, sizeof ps, "%s", port == SSH_PORT_AUTO ? "auto" : "-");
            if (st.running)
                snprintf(pid, sizeof pid, "%d", (int)st.pid);
            printf("%-24s %-8s %-10s %s\n", name, ps, st.state[0] ? st.state : (st.running ? "running" : "stopped"),
                   pid);
        }
    }
    if (ctx->json)
        qq_print_json(arr);
    else if (!n)
        fprintf(stderr, "qqmgr: %s defines no VMs\n", config_path(c));
    return 0;
}
