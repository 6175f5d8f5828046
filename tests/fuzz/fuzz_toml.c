/* fuzz_toml — libFuzzer target: toml_parse() on arbitrary bytes must never
 * crash, leak or hit undefined behaviour, in every mode (plain, tagged, with
 * locations), and an accepted document must serialise. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/base/sbuf.h"
#include "../../src/base/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    toml_error err;

    json_t *doc = toml_parse(text, size, 0, NULL, &err);
    if (!doc && (err.line < 1 || err.col < 1 || !err.msg[0]))
        abort();   /* every error has a location and a message */
    json_decref(doc);

    json_t *locs = json_object();
    doc = toml_parse(text, size, TOML_TAGGED, locs, &err);
    if (doc) {
        char *s = json_dumps(doc, JSON_COMPACT);
        if (!s)
            abort();   /* tagged output is plain JSON: always serialisable */
        free(s);
        json_decref(doc);
    }
    json_decref(locs);

    doc = toml_parse(text, size, 0, NULL, NULL);
    json_decref(doc);
    return 0;
}
