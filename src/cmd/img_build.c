/* img build — build one image (stages skipped when their inputs are unchanged). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app/img.h"
#include "cmd.h"

typedef struct {
    bool force;
    int timeout;
} build_opts;

static const qq_opt options[] = {
    QQ_FLAG('f', "force", build_opts, force, "rebuild every stage"),
    QQ_SECONDS("timeout", build_opts, timeout, 1, "bound the whole build, every stage (default: only the boot, by the image's build_timeout)"),
    QQ_OPT_END,
};

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const build_opts *bo = ctx->opts;
    img_build_opts o = { .debug = ctx->debug, .quiet = ctx->json, .force = bo->force, .timeout_s = bo->timeout };
    const char *name = argv[1];
    int rc;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    json_t *report = NULL;
    rc = img_build(c, name, &o, &report, &err);
    if (ctx->json) {
        if (rc < 0 && report)
            json_object_set_new(report, "error", json_string(err.msg));
        if (report)
            qq_print_json(report);
        return rc < 0 ? qq_report(&err) : 0;
    }
    if (rc < 0) {
        if (report)
            json_decref(report);
        return qq_report(&err);
    }
    if (json_is_true(json_object_get(report, "up_to_date")))
        printf("image %s is up to date: %s\n", name, json_string_value(json_object_get(report, "path")));
    else
        printf("image %s built: %s\n", name, json_string_value(json_object_get(report, "path")));
    json_decref(report);
    return 0;
}

const qq_command qq_cmd_img_build = {
    .name = "img build", .needs_config = true, .handler = run, .args = "IMAGE", .min_args = 1, .max_args = 1,
    .summary = "build an image (stages skipped when up to date)",
    QQ_OPTIONS(build_opts, options, NULL),
    .json = "what each stage did",
};
