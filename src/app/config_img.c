/* config_img — one [img.NAME] as a typed img_spec, and sizes (see config.h, "Images"). */
#include "config.h"
#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "layout.h"

int config_parse_size(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return -1;
    }
    if (*end == 'i' && shift && end[1] == 'B')
        end += 2;
    else if (*end == 'B' && shift)
        end++;
    if (*end)
        return -1;
    if (shift && n > (ULLONG_MAX >> shift))
        return -1;
    *out = n << shift;
    return 0;
}

char *config_img_path_of(const config *c, const char *name, json_t *img)
{
    bool raw = strcmp(cfg_str(img, &cfg_img, IMG_BUILDER), "raw") == 0 &&
               strcmp(cfg_str(img, &cfg_img, IMG_FORMAT), "raw") == 0;
    _cleanup_free_ char *dir = layout_img_dir(c->state_dir, name);
    return layout_path(dir, raw ? LAYOUT_IMG_RAW : LAYOUT_IMG_QCOW2);
}

/* base_img (cfg_download) or a source (cfg_source: the same first rows) */
static void download_of(json_t *t, const cfg_schema *s, img_download *d)
{
    d->url = xstrdup(cfg_str(t, s, DL_URL));
    const char *s256 = cfg_str(t, s, DL_SHA256SUM), *s512 = cfg_str(t, s, DL_SHA512SUM);
    d->sha256sum = s256 ? xstrdup(s256) : NULL;
    d->sha512sum = s512 ? xstrdup(s512) : NULL;
}

static void download_free(img_download *d)
{
    free(d->url);
    free(d->sha256sum);
    free(d->sha512sum);
    free(d->filename);
}

int config_img(const config *c, const char *name, img_spec *out, qq_err *err)
{
    memset(out, 0, sizeof *out);
    json_t *img = c->imgs ? json_object_get(c->imgs, name) : NULL;
    if (!img)
        return config_check_img(c, name, err);
    out->name = xstrdup(name);
    out->builder = xstrdup(cfg_str(img, &cfg_img, IMG_BUILDER));
    out->cloud_init = strcmp(out->builder, "cloud-init") == 0;
    out->format = out->cloud_init || strcmp(cfg_str(img, &cfg_img, IMG_FORMAT), "qcow2") == 0 ? "qcow2" : "raw";
    json_t *size = cfg_get(img, &cfg_img, IMG_SIZE);
    if (json_is_integer(size)) {
        out->size_bytes = (unsigned long long)json_integer_value(size);
        out->img_size = xasprintf("%llu", out->size_bytes);
    } else {
        out->img_size = xstrdup(json_string_value(size));
        config_parse_size(out->img_size, &out->size_bytes);
    }
    out->dir = layout_img_dir(c->state_dir, name);
    out->path = config_img_path_of(c, name, img);

    /* the rest was checked at load, by the same rows (config_schema.c) */
    json_t *v, *e;
    size_t i;
    if ((v = cfg_get(img, &cfg_img, IMG_BASE_IMG)))
        download_of(v, &cfg_download, &out->base_img);
    v = cfg_get(img, &cfg_img, IMG_TEMPLATES);
    out->ntemplates = json_array_size(v);
    out->templates = xcalloc(out->ntemplates + 1, sizeof *out->templates);
    json_array_foreach(v, i, e) {
        out->templates[i].template = xstrdup(cfg_str(e, &cfg_template, TPL_TEMPLATE));
        out->templates[i].output = xstrdup(cfg_str(e, &cfg_template, TPL_OUTPUT));
    }
    v = cfg_get(img, &cfg_img, IMG_SOURCES);
    out->nsources = json_array_size(v);
    out->sources = xcalloc(out->nsources + 1, sizeof *out->sources);
    json_array_foreach(v, i, e) {
        img_download *d = &out->sources[i];
        download_of(e, &cfg_source, d);
        const char *fn = cfg_str(e, &cfg_source, DL_FILENAME);
        const char *slash = strrchr(d->url, '/');
        d->filename = xstrdup(fn ? fn : slash && slash[1] ? slash + 1 : d->url);
    }
    if ((v = cfg_get(img, &cfg_img, IMG_ENV_HOOK))) {
        size_t n = 0;
        config_split_args(cfg_str(v, &cfg_hook, HOOK_INTERPRETER), &out->hook_argv, &n, NULL);
        strv_push(&out->hook_argv, &n, xstrdup(cfg_str(v, &cfg_hook, HOOK_SCRIPT)));
    }
    out->build_args = xcalloc(1, sizeof *out->build_args);
    json_array_foreach(cfg_get(img, &cfg_img, IMG_BUILD_ARGS), i, e)
        strv_push(&out->build_args, &out->nbuild_args, xstrdup(json_string_value(e)));
    long long timeout = cfg_int(img, &cfg_img, IMG_BUILD_TIMEOUT);
    out->build_timeout = timeout > INT_MAX ? INT_MAX : (int)timeout;
    v = cfg_get(img, &cfg_img, IMG_ENV);
    out->env = v ? json_deep_copy(v) : json_object();
    return 0;
}

void img_spec_free(img_spec *s)
{
    free(s->name);
    free(s->builder);
    free(s->img_size);
    free(s->path);
    free(s->dir);
    download_free(&s->base_img);
    for (size_t i = 0; i < s->ntemplates; i++) {
        free(s->templates[i].template);
        free(s->templates[i].output);
    }
    free(s->templates);
    for (size_t i = 0; i < s->nsources; i++)
        download_free(&s->sources[i]);
    free(s->sources);
    strv_free(s->hook_argv);
    strv_free(s->build_args);
    if (s->env)
        json_decref(s->env);
    memset(s, 0, sizeof *s);
}
