/* tmpl-render — render a template file over a JSON data file with qqmgr's tmpl.
 *
 * Usage: tmpl-render TEMPLATE_FILE DATA_JSON_FILE
 * Prints the rendering (exact bytes) on stdout and exits 0, or prints the error
 * on stderr and exits 1 (2 for unreadable input). The template is named after
 * the file's base name, like the Go reference renderer tests/tools/gotmpl.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/base/cleanup.h"
#include "../../src/base/sbuf.h"
#include "../../src/base/tmpl.h"

static char *read_file(const char *path)
{
    _cleanup_fclose_ FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    sbuf b = SBUF_INIT;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sbuf_add(&b, buf, n);
    return sbuf_steal(&b);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tmpl-render TEMPLATE_FILE DATA_JSON_FILE\n");
        return 2;
    }
    _cleanup_free_ char *text = read_file(argv[1]);
    if (!text) {
        perror(argv[1]);
        return 2;
    }
    json_error_t jerr;
    _cleanup_json_ json_t *data = json_load_file(argv[2], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!data) {
        fprintf(stderr, "data: %s:%d: %s\n", argv[2], jerr.line, jerr.text);
        return 2;
    }
    const char *name = strrchr(argv[1], '/');
    name = name ? name + 1 : argv[1];
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    tmpl_error err;
    if (tmpl_render(name, text, data, &out, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    fwrite(out.buf ? out.buf : "", 1, out.len, stdout);
    return 0;
}
