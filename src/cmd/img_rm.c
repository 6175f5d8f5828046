/* img rm — remove a built image's dir (refused while a running VM uses it). */
#include <stdio.h>

#include "../app/reclaim.h"
#include "cmd.h"

typedef struct {
    bool force;
} img_rm_opts;

static const qq_opt options[] = {
    QQ_FLAG('f', "force", img_rm_opts, force, "remove it even when its disk holds snapshots"),
    QQ_OPT_END,
};

static int run(qq_ctx *ctx, int argc, char **argv)
{
    const img_rm_opts *o = ctx->opts;
    qq_err err = { 0 };
    config *c = ctx->cfg;
    int worst = 0;
    json_t *arr = ctx->json && argc > 2 ? json_array() : NULL;
    for (int i = 1; i < argc; i++) {
        reclaim_result r;
        if (reclaim_img(c, argv[i], o->force, &r, &err) < 0) {
            reclaim_result_free(&r);
            int e = qq_report(&err);
            worst = e > worst ? e : worst;
            continue;
        }
        json_t *o = json_pack("{s:s, s:s, s:b, s:I}", "image", argv[i], "path", r.path, "removed", r.existed,
                              "bytes", (json_int_t)r.bytes);
        if (arr) {
            json_array_append_new(arr, o);
        } else if (ctx->json) {
            qq_print_json(o);
        } else {
            json_decref(o);
            char size[32];
            qq_format_bytes(size, sizeof size, r.bytes);
            if (r.existed)
                printf("removed image %s (%s, %s)\n", argv[i], size, r.path);
            else
                printf("image %s is not built: nothing to remove\n", argv[i]);
        }
        reclaim_result_free(&r);
    }
    if (arr)
        qq_print_json(arr);
    return worst;
}

const qq_command qq_cmd_img_rm = {
    .name = "img rm", .needs_config = true, .handler = run, .args = "IMAGE...", .min_args = 1, .max_args = -1,
    .summary = "remove built images (refused while a running VM uses one)",
    QQ_OPTIONS(img_rm_opts, options, NULL),
    .json = "{image, path, removed, bytes} (an array for several images)",
};
