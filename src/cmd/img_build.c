/* img build — build one image (stages skipped when their inputs are unchanged). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app/img.h"
#include "cmd.h"

int cmd_img_build(qq_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        { "force", no_argument, NULL, 'f' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    img_build_opts o = { .debug = ctx->debug, .quiet = ctx->json };
    int ch;
    while ((ch = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
        switch (ch) {
        case 'f':
            o.force = true;
            break;
        case 't': {
            int rc = qq_opt_seconds(ctx, optarg, 1, &o.timeout_s);
            if (rc >= 0)
                return rc;
            break;
        }
        case 'h':
            return qq_usage(ctx, true);
        default:
            return qq_usage(ctx, false);
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
