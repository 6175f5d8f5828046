/* fuzz_toml — libFuzzer target: toml_parse() on arbitrary bytes must never
 * crash, leak or hit undefined behaviour, in every mode (plain, tagged, with
 * locations), and an accepted document must serialise. The parser checks
 * UTF-8 and control characters only where it reads them, so this also checks
 * that nothing it accepts holds a character TOML forbids everywhere. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/base/sbuf.h"
#include "../../src/base/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Valid UTF-8 (no overlongs, surrogates or > U+10FFFF), no control characters
 * but tab and LF, CR only before LF. */
static int text_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
                return 0;
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
                return 0;
            i++;
            continue;
        }
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c < 0xC2 || c > 0xF4 || len > n - i)
            return 0;
        uint32_t cp = c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) ||
            cp > 0x10FFFF)
            return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    toml_error err;

    json_t *doc = toml_parse(text, size, 0, NULL, &err);
    if (!doc && (err.line < 1 || err.col < 1 || !err.msg[0]))
        abort();   /* every error has a location and a message */
    if (doc && !text_ok(data, size))
        abort();   /* accepted a forbidden character */
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
