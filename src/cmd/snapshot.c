/* snapshot save, restore, list, delete — a VM's snapshots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../app/snapshot.h"
#include "../app/snapxfer.h"
#include "../base/xalloc.h"
#include "cmd.h"

typedef struct {
    bool force;
} save_opts;

static const qq_opt save_options[] = {
    QQ_FLAG('f', "force", save_opts, force, "replace a snapshot of that name"),
    QQ_OPT_END,
};

static int save(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const save_opts *o = ctx->opts;
    const char *vm = argv[1], *name = argv[2];
    qq_err err = { 0 };
    config *c = ctx->cfg;
    snap_save_result r;
    if (snap_save(c, vm, name, o->force, &r, &err) < 0)
        return qq_report(&err);
    if (r.note[0] && !ctx->json)
        fprintf(stderr, "qqmgr: note: %s: a %s snapshot, not a mapped one (a restore then reads all its RAM): %s\n",
                vm, r.kind, r.note);
    if (ctx->json)
        qq_print_json(json_pack("{s:s, s:s, s:s, s:b, s:I, s:o}", "name", vm, "snapshot", name, "kind", r.kind,
                                "replaced", r.replaced, "elapsed_ms", (json_int_t)(r.seconds * 1000), "not_mapped",
                                r.note[0] ? json_string(r.note) : json_null()));
    else
        printf("saved snapshot %s of %s in %.2f s%s\n", name, vm, r.seconds, r.replaced ? " (replaced the older one)" : "");
    return 0;
}

static int restore(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const char *vm = argv[1], *name = argv[2];
    qq_err err = { 0 };
    config *c = ctx->cfg;
    guestclock_result gr;
    if (snap_restore(c, vm, name, &gr, &err) < 0)
        return qq_report(&err);
    qq_clock_report(ctx, vm, &gr);
    if (ctx->json)
        qq_print_json(json_pack("{s:s, s:s}", "name", vm, "snapshot", name));
    else
        printf("restored %s to snapshot %s\n", vm, name);
    return 0;
}

static int delete(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const char *vm = argv[1], *name = argv[2];
    qq_err err = { 0 };
    config *c = ctx->cfg;
    if (snap_delete(c, vm, name, &err) < 0)
        return qq_report(&err);
    if (ctx->json)
        qq_print_json(json_pack("{s:s, s:s}", "name", vm, "snapshot", name));
    else
        printf("deleted snapshot %s of %s\n", name, vm);
    return 0;
}

static void human_size(char *buf, size_t len, double v)
{
    static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static int list(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const char *vm = argv[1];
    qq_err err = { 0 };
    config *c = ctx->cfg;
    json_t *l = snap_list(c, vm, &err);
    if (!l)
        return qq_report(&err);
    if (ctx->json) {
        qq_print_json(l);
        return 0;
    }
    if (json_array_size(l) == 0) {
        printf("%s has no snapshots\n", vm);
        json_decref(l);
        return 0;
    }
    /* columns as wide as their widest cell: names are up to 64 characters */
    size_t n = json_array_size(l);
    char (*size)[32] = xcalloc(n, sizeof *size), (*clock)[32] = xcalloc(n, sizeof *clock);
    int w[5] = { (int)strlen("NAME"), (int)strlen("DATE"), (int)strlen("KIND"), (int)strlen("SIZE"),
                 (int)strlen("VM CLOCK") };
    size_t i;
    json_t *s;
    json_array_foreach(l, i, s) {
        human_size(size[i], sizeof size[i], (double)json_integer_value(json_object_get(s, "size")));
        json_t *vc = json_object_get(s, "vm_clock");
        if (json_is_number(vc))
            snprintf(clock[i], sizeof clock[i], "%.3f s", json_number_value(vc));
        else
            snprintf(clock[i], sizeof clock[i], "-");
        int cw[5] = { (int)strlen(json_string_value(json_object_get(s, "name"))),
                      (int)strlen(json_string_value(json_object_get(s, "date"))),
                      (int)strlen(json_string_value(json_object_get(s, "kind"))), (int)strlen(size[i]),
                      (int)strlen(clock[i]) };
        for (int k = 0; k < 5; k++)
            w[k] = cw[k] > w[k] ? cw[k] : w[k];
    }
    printf("%-*s  %-*s  %-*s  %*s  %*s\n", w[0], "NAME", w[1], "DATE", w[2], "KIND", w[3], "SIZE", w[4], "VM CLOCK");
    json_array_foreach(l, i, s)
        printf("%-*s  %-*s  %-*s  %*s  %*s\n", w[0], json_string_value(json_object_get(s, "name")), w[1],
               json_string_value(json_object_get(s, "date")), w[2], json_string_value(json_object_get(s, "kind")),
               w[3], size[i], w[4], clock[i]);
    free(size);
    free(clock);
    json_decref(l);
    return 0;
}

const qq_command qq_cmd_snapshot_save = {
    .name = "snapshot save", .needs_config = true, .handler = save, .args = "VM SNAPSHOT", .min_args = 2, .max_args = 2,
    .summary = "save the running VM's RAM, devices and disks as SNAPSHOT",
    QQ_OPTIONS(save_opts, save_options, NULL),
    .json = "{name, snapshot, kind, replaced, elapsed_ms, not_mapped}",
};
const qq_command qq_cmd_snapshot_restore = {
    .name = "snapshot restore", .args = "VM SNAPSHOT", .min_args = 2, .max_args = 2,
    .needs_config = true, .handler = restore,
    .summary = "return the running VM to SNAPSHOT in place (a stopped VM: start --restore)",
    .json = "{name, snapshot}",
};
const qq_command qq_cmd_snapshot_list = {
    .name = "snapshot list", .needs_config = true, .handler = list, .args = "VM", .min_args = 1, .max_args = 1,
    .summary = "list the VM's snapshots (running or stopped)",
    .json = "an array of {name, date, vm_state_size, vm_clock, kind, size}",
};
const qq_command qq_cmd_snapshot_delete = {
    .name = "snapshot delete", .args = "VM SNAPSHOT", .min_args = 2, .max_args = 2,
    .needs_config = true, .handler = delete,
    .summary = "delete a snapshot",
    .json = "{name, snapshot}",
};

/* ------------------------------------------------------------ export, import */

static bool is_stdio(int argc, char **argv, int i)
{
    return argc <= i || strcmp(argv[i], "-") == 0;
}

static int export_check(qq_ctx *ctx, int argc, char **argv, qq_err *err)
{
    if (is_stdio(argc, argv, 3) && isatty(1))
        return qq_usage_error(ctx, err, false,
                              "the stream is binary: give a FILE, or send stdout to a file or a pipe "
                              "(`| qqmgr -H HOST snapshot import %s -`)", argv[1]);
    return 0;
}

static int export(qq_ctx *ctx, int argc, char **argv)
{
    const char *vm = argv[1], *name = argv[2], *file = argc > 3 ? argv[3] : NULL;
    bool to_stdout = is_stdio(argc, argv, 3);
    qq_err err = { 0 };
    snapx_result r;
    if (snapx_export(ctx->cfg, vm, name, to_stdout ? NULL : file, &r, &err) < 0)
        return qq_report(&err);
    if (to_stdout)   /* stdout is the stream */
        return 0;
    if (ctx->json)
        qq_print_json(json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "name", vm, "snapshot", name, "kind", r.kind,
                                "file", file, "bytes", (json_int_t)r.bytes, "data", (json_int_t)r.data,
                                "elapsed_ms", (json_int_t)(r.seconds * 1000)));
    else {
        char b[32];
        qq_format_bytes(b, sizeof b, r.bytes);
        printf("exported snapshot %s of %s to %s (%s in %.2f s)\n", name, vm, file, b, r.seconds);
    }
    return 0;
}

typedef struct {
    const char *as;
    bool force;
} import_opts;

static const qq_opt import_options[] = {
    QQ_STRING(0, "as", "NAME", import_opts, as, "install it under NAME instead of the exported snapshot's name"),
    QQ_FLAG('f', "force", import_opts, force, "replace a snapshot of that name"),
    QQ_OPT_END,
};

static int import_check(qq_ctx *ctx, int argc, char **argv, qq_err *err)
{
    if (is_stdio(argc, argv, 2) && isatty(0))
        return qq_usage_error(ctx, err, false,
                              "the stream is read from stdin, which is a terminal: give a FILE, or pipe one in "
                              "(`qqmgr snapshot export %s NAME - | …`)", argv[1]);
    return 0;
}

static int import(qq_ctx *ctx, int argc, char **argv)
{
    const import_opts *o = ctx->opts;
    const char *vm = argv[1];
    qq_err err = { 0 };
    snapx_result r;
    snapx_import_opts io = { .as = o->as, .force = o->force };
    if (snapx_import(ctx->cfg, vm, is_stdio(argc, argv, 2) ? NULL : argv[2], &io, &r, &err) < 0)
        return qq_report(&err);
    if (ctx->json)
        qq_print_json(json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:I}", "name", vm, "snapshot", r.snapshot, "kind",
                                r.kind, "replaced", r.replaced, "bytes", (json_int_t)r.bytes, "data",
                                (json_int_t)r.data, "elapsed_ms", (json_int_t)(r.seconds * 1000)));
    else {
        char b[32];
        qq_format_bytes(b, sizeof b, r.bytes);
        printf("imported snapshot %s of %s (%s in %.2f s)%s\n", r.snapshot, vm, b, r.seconds,
               r.replaced ? " (replaced the older one)" : "");
    }
    return 0;
}

const qq_command qq_cmd_snapshot_export = {
    .name = "snapshot export", .args = "VM SNAPSHOT [FILE|-]", .min_args = 2, .max_args = 3,
    .needs_config = true, .handler = export, .check = export_check,
    .summary = "write SNAPSHOT as one checksummed stream to FILE or stdout (-), for snapshot import",
    .json = "{name, snapshot, kind, file, bytes, data, elapsed_ms}",
};
const qq_command qq_cmd_snapshot_import = {
    .name = "snapshot import", .args = "VM [FILE|-]", .min_args = 1, .max_args = 2,
    .needs_config = true, .handler = import, .check = import_check,
    .summary = "verify a snapshot stream from FILE or stdin (-) and install it as the VM's snapshot",
    QQ_OPTIONS(import_opts, import_options, NULL),
    .json = "{name, snapshot, kind, replaced, bytes, data, elapsed_ms}",
};
