/* toml-test-decoder — the toml-test decoder protocol over toml_parse().
 *
 * Reads one TOML document on stdin. Valid: prints the tagged JSON form on
 * stdout and exits 0. Invalid: prints "line:col: message" on stderr and exits 1.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../src/base/cleanup.h"
#include "../../src/base/sbuf.h"
#include "../../src/base/toml.h"

int main(void)
{
    _cleanup_sbuf_ sbuf in = SBUF_INIT;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        sbuf_add(&in, buf, n);
    if (ferror(stdin)) {
        fprintf(stderr, "toml-test-decoder: cannot read stdin\n");
        return 2;
    }
    toml_error err;
    _cleanup_json_ json_t *doc = toml_parse(sbuf_str(&in), in.len, TOML_TAGGED, NULL, &err);
    if (!doc) {
        fprintf(stderr, "%d:%d: %s\n", err.line, err.col, err.msg);
        return 1;
    }
    if (json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_ENSURE_ASCII) < 0 || fputc('\n', stdout) == EOF)
        return 2;
    return fflush(stdout) == 0 ? 0 : 2;
}
