/* img list — the images of the config in file order, with builder, size and state. */
#include <stdio.h>
#include <sys/stat.h>

#include "cmd.h"

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc, (void)argv;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    json_t *arr = ctx->json ? json_array() : NULL;
    size_t n = config_img_count(c);
    if (!ctx->json && n)
        printf("%-20s %-11s %-8s %-6s %s\n", "NAME", "BUILDER", "SIZE", "BUILT", "PATH");
    for (size_t i = 0; i < n; i++) {
        img_spec s;
        if (config_img(c, config_img_name(c, i), &s, &err) < 0)
            return qq_report(&err);
        struct stat st;
        int built = stat(s.path, &st) == 0;
        if (ctx->json) {
            json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b}", "name", s.name, "builder", s.builder,
                                  "img_size", s.img_size, "img_size_bytes", (json_int_t)s.size_bytes, "path", s.path,
                                  "built", built);
            json_object_set_new(o, "disk_usage", built ? json_integer((json_int_t)st.st_blocks * 512) : json_null());
            json_array_append_new(arr, o);
        } else {
            printf("%-20s %-11s %-8s %-6s %s\n", s.name, s.builder, s.img_size, built ? "yes" : "no", s.path);
        }
        img_spec_free(&s);
    }
    if (ctx->json)
        qq_print_json(arr);
    else if (!n)
        fprintf(stderr, "qqmgr: %s defines no images\n", config_path(c));
    return 0;
}

const qq_command qq_cmd_img_list = {
    .name = "img list", .handler = run, .args = "", .min_args = 0, .max_args = 0,
    .needs_config = true,
    .summary = "list the images of the config, with builder, size and state",
    .json = "an array of {name, builder, img_size, img_size_bytes, path, built, disk_usage}",
};
