/* list — the VMs of the config in file order, with ssh port, state, pid,
 * uptime and every host port forward of a running one. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app/copies.h"
#include "../app/forward.h"
#include "../app/recorded.h"
#include "../app/vm.h"
#include "../base/cleanup.h"
#include "../base/json_arena.h"
#include "../base/xalloc.h"
#include "cmd.h"

/* The VMs that have a state directory (<state dir>/vm.NAME), as a set of
 * names (a json object); NULL when that cannot be told (probe every VM then).
 * A VM without one is stopped, and probing it would only fail to open files:
 * with 1000 VMs, 2000 failed open()s. */
static json_t *vms_with_state(const config *c)
{
    DIR *d = opendir(config_state_dir(c));
    if (!d)
        return errno == ENOENT ? json_object() : NULL;
    json_t *set = json_object();
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *vm = layout_vm_of_entry(e->d_name);
        if (vm)
            json_object_set_new_nocheck(set, vm, json_true());
    }
    closedir(d);
    return set;
}

/* One row: a VM of the config, or (configured false) a running VM of the
 * state dir that left the config (recorded.h). */
static void row(const qq_ctx *ctx, json_t *arr, const char *name, bool configured, const vm_state *st, int port,
                const char *dir)
{
    _cleanup_free_ char *snap = dir ? vm_restored(dir) : NULL;
    /* a running VM's uptime and host port forwards (forward.h) */
    double up = st->running ? vm_uptime(st->pid) : -1;
    _cleanup_json_ json_t *ports = st->running ? forward_ports(dir, st->pid) : json_array();
    /* while it runs, the port it was started with (recorded); else the configured one */
    int shown_port = st->running && st->ssh_port > 0 ? st->ssh_port : port > 0 ? port : 0;
    const char *state = st->state[0] ? st->state : (st->running ? "running" : "stopped");
    if (ctx->json) {
        json_t *jname = json_string(name);
        if (!jname)
            return;   /* a name that is not UTF-8 cannot be said in JSON */
        json_t *o = json_object();
        json_object_set_new(o, "name", jname);
        json_object_set_new(o, "configured", json_boolean(configured));
        json_object_set_new(o, "running", json_boolean(st->running));
        json_object_set_new(o, "state", json_string(state));
        json_object_set_new(o, "pid", st->running ? json_integer(st->pid) : json_null());
        json_object_set_new(o, "ssh_port", shown_port > 0 ? json_integer(shown_port) : json_null());
        json_object_set_new(o, "ssh_port_config",
                            port == SSH_PORT_NONE   ? json_null()
                            : port == SSH_PORT_AUTO ? json_string("auto")
                                                    : json_integer(port));
        json_object_set_new(o, "uptime", up >= 0 ? json_integer((json_int_t)up) : json_null());
        json_object_set_new(o, "forwards", json_incref(ports));
        json_object_set_new(o, "snapshot", snap ? json_string(snap) : json_null());
        json_array_append_new(arr, o);
        return;
    }
    char ps[16], pid[16] = "-", upt[32] = "-";
    _cleanup_sbuf_ sbuf pb = SBUF_INIT;
    if (up >= 0)
        qq_fmt_uptime(upt, sizeof upt, (long long)up);
    if (json_array_size(ports))
        qq_fmt_ports(&pb, ports, ",", true);
    else
        sbuf_adds(&pb, "-");
    if (shown_port > 0)
        snprintf(ps, sizeof ps, "%d", shown_port);
    else
        snprintf(ps, sizeof ps, "%s", port == SSH_PORT_AUTO ? "auto" : "-");
    if (st->running)
        snprintf(pid, sizeof pid, "%d", (int)st->pid);
    printf("%-24s %-8s %-10s %-8s %-8s %s%s%s%s\n", name, ps, state, pid, upt, sbuf_str(&pb),
           configured ? "" : "  (not in the config)", snap ? "  from " : "", snap ? snap : "");
}

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc, (void)argv;
    config *c = ctx->cfg;

    json_t *with_state = vms_with_state(c);
    size_t n = config_vm_count(c), nd = 0;
    _cleanup_strv_ char **departed = recorded_departed_all(c, &nd);
    /* the document is built once and printed: no need for malloc's bookkeeping */
    if (ctx->json)
        json_arena_begin((n + nd) * 512);
    json_t *arr = ctx->json ? json_array() : NULL;
    if (!ctx->json && n + nd)
        printf("%-24s %-8s %-10s %-8s %-8s %s\n", "NAME", "SSH", "STATE", "PID", "UPTIME", "PORTS");
    for (size_t i = 0; i < n; i++) {
        const char *name = config_vm_name(c, i);
        vm_state st = { 0 };
        _cleanup_free_ char *dir = NULL;
        if (!with_state || json_object_get(with_state, name)) {
            dir = config_vm_dir(c, name);
            vm_probe(dir, false, &st);
        }
        row(ctx, arr, name, true, &st, config_vm_ssh_port(c, name), dir);
        if (!dir)
            continue;
        /* then its throwaway copies, VM#N (the dead ones swept) */
        size_t nc = 0;
        _cleanup_strv_ char **copies = copies_of(c, name, &nc);
        for (size_t k = 0; k < nc; k++) {
            vm_state cs = { 0 };
            _cleanup_free_ char *cdir = config_vm_dir(c, copies[k]);
            vm_probe(cdir, false, &cs);
            if (!cs.running)
                snprintf(cs.state, sizeof cs.state, "starting");
            row(ctx, arr, copies[k], true, &cs, SSH_PORT_AUTO, cdir);
        }
    }
    for (size_t i = 0; i < nd; i++) {
        vm_state st = { 0 };
        _cleanup_free_ char *dir = config_vm_dir(c, departed[i]);
        vm_probe(dir, false, &st);
        row(ctx, arr, departed[i], false, &st, SSH_PORT_NONE, dir);
    }
    json_decref(with_state);
    if (ctx->json) {
        json_arena_end();
        qq_print_json(arr);
    } else if (!n) {
        fprintf(stderr, "qqmgr: %s defines no VMs\n", config_path(c));
    }
    return 0;
}

const qq_command qq_cmd_list = {
    .name = "list", .handler = run, .args = "", .min_args = 0, .max_args = 0,
    .needs_config = true,
    .summary = "list the VMs of the config and their throwaway copies (VM#N), with ssh port, state, uptime and "
               "forwarded ports (and running VMs that left it)",
    .json = "an array of {name, configured, running, state, pid, ssh_port, ssh_port_config, uptime, forwards, snapshot}",
};
