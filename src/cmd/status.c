/* status — a VM's state, pid, ports and files. */
#include <stdio.h>

#include "../app/vm.h"
#include "cmd.h"

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    qq_err err = { 0 };
    config *c;
    int rc = qq_begin(ctx, &c, &err);
    if (rc >= 0)
        return rc;
    const char *name = argv[1];
    json_t *o = vm_status_json(c, name, &err);
    if (!o)
        return qq_report(&err);
    if (ctx->json) {
        qq_print_json(o);
        return 0;
    }
    json_t *pid = json_object_get(o, "pid"), *up = json_object_get(o, "uptime");
    json_t *port = json_object_get(json_object_get(o, "ssh"), "port");
    printf("%-10s %s\n", "name:", name);
    printf("%-10s %s\n", "state:", json_string_value(json_object_get(o, "state")));
    if (json_is_integer(pid))
        printf("%-10s %lld\n", "pid:", (long long)json_integer_value(pid));
    if (json_is_integer(up))
        printf("%-10s %lld s\n", "uptime:", (long long)json_integer_value(up));
    if (json_is_integer(port))
        printf("%-10s %lld\n", "ssh port:", (long long)json_integer_value(port));
    printf("%-10s %s\n", "qmp:", json_is_true(json_object_get(o, "qmp_connected")) ? "connected" : "not connected");
    printf("%-10s %s\n", "serial:", json_string_value(json_object_get(o, "serial_file")));
    printf("%-10s %s\n", "stderr:", json_string_value(json_object_get(o, "qemu_stderr")));
    printf("%-10s %s\n", "state dir:", json_string_value(json_object_get(o, "state_dir")));
    json_decref(o);
    return 0;
}

const qq_command qq_cmd_status = {
    .name = "status", .handler = run, .args = "VM", .min_args = 1, .max_args = 1,
    .summary = "show a VM's state, pid, ports and files",
    .json = "the original qqmgr's fields, plus state and uptime",
};
