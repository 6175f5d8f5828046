/* stop — power a VM down: ACPI, then QMP quit, SIGTERM, SIGKILL. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "../app/ssh.h"
#include "../app/vm.h"
#include "../base/cleanup.h"
#include "cmd.h"

int cmd_stop(qq_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "timeout", required_argument, NULL, 't' },
        { "force", no_argument, NULL, 'f' },
        { 0 },
    };
    int timeout = 30, ch;
    bool force = false;
    while ((ch = getopt_long(argc, argv, "hf", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': return qq_usage(ctx, true);
        case 'f': force = true; break;
        case 't': {
            int rc = qq_opt_seconds(ctx, optarg, 0, &timeout);
            if (rc >= 0)
                return rc;
            break;
        }
        default: return qq_usage(ctx, false);
        }
    }
    int rc = qq_check_args(ctx, argc - optind);
    if (rc >= 0)
        return rc;
    const char *name = argv[optind];
    qq_err err = { 0 };
    config *c = qq_config(ctx, &err);
    if (!c)
        return qq_report(&err);
    vm_stop_result r;
    if (vm_stop(c, name, timeout, force, &r, &err) < 0)
        return qq_report(&err);
    if (r.was_running) {
        /* the ssh connection-sharing master, once QEMU is gone */
        _cleanup_free_ char *dir = config_vm_dir(c, name);
        ssh_close_master(dir);
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
