/* prune — remove the state of VMs and images the config no longer names,
 * and (--cache) cached downloads unused for days. */
#include <stdio.h>
#include <string.h>

#include "../app/reclaim.h"
#include "cmd.h"

typedef struct {
    bool dry_run;
    bool cache;
    long days;
} prune_opts;

static const prune_opts defaults = { .days = 30 };

static const qq_opt options[] = {
    QQ_FLAG('n', "dry-run", prune_opts, dry_run, "list what would be removed, remove nothing"),
    QQ_FLAG(0, "cache", prune_opts, cache, "also cached downloads unused for --days days"),
    QQ_INT(0, "days", "N", prune_opts, days, 0, "with --cache: files unused for N days"),
    QQ_OPT_END,
};

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc, (void)argv;
    const prune_opts *o = ctx->opts;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    reclaim_prune_opts po = { .dry_run = o->dry_run, .cache = o->cache, .days = o->days };
    json_t *rep;
    if (reclaim_prune(c, &po, &rep, &err) < 0)
        return qq_report(&err);
    if (ctx->json) {
        qq_print_json(rep);
        return 0;
    }
    json_t *entries = json_object_get(rep, "entries"), *e;
    size_t i, removed = 0;
    char size[32];
    json_array_foreach(entries, i, e) {
        const char *kept = json_string_value(json_object_get(e, "kept"));
        qq_format_bytes(size, sizeof size, (unsigned long long)json_integer_value(json_object_get(e, "bytes")));
        const char *kind = json_string_value(json_object_get(e, "kind"));
        const char *name = json_string_value(json_object_get(e, "name"));
        char shortname[24];
        if (strcmp(kind, "cache") == 0 && strlen(name) > 16) {   /* a sha256: its head (the path has it all) */
            snprintf(shortname, sizeof shortname, "%.16s…", name);
            name = shortname;
        }
        const char *path = json_string_value(json_object_get(e, "path"));
        if (kept) {
            printf("kept          %-5s %-24s %9s  %s (%s)\n", kind, name, size, path, kept);
        } else {
            printf("%-13s %-5s %-24s %9s  %s\n", o->dry_run ? "would remove" : "removed", kind, name, size, path);
            removed++;
        }
    }
    qq_format_bytes(size, sizeof size, (unsigned long long)json_integer_value(json_object_get(rep, "bytes")));
    if (removed)
        printf("%s %zu, %s\n", o->dry_run ? "would free" : "freed", removed, size);
    else
        printf("nothing to remove\n");
    json_decref(rep);
    return 0;
}

const qq_command qq_cmd_prune = {
    .name = "prune", .needs_config = true, .handler = run, .args = "", .min_args = 0, .max_args = 0,
    .summary = "remove state dirs of VMs and images no longer in the config (--cache: old downloads)",
    QQ_OPTIONS(prune_opts, options, &defaults),
    .json = "{dry_run, bytes, entries: [{kind, name, path, bytes, removed, kept}]}",
};
