/* utf8 — the one UTF-8 check shared by the TOML parser and the JSON writer.
 *
 * utf8_decode() says why a sequence is invalid (for messages);
 * utf8_len(s, i, n): the length (2-4) of the valid UTF-8 sequence of a Unicode
 * scalar value starting at s[i] (a byte >= 0x80) within s[0..n), or 0 when it
 * is not one: overlong forms, surrogates and code points above U+10FFFF are
 * invalid (the rules jansson applies too).
 */
#ifndef QQ_UTF8_H
#define QQ_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Why a sequence is not valid UTF-8 (in the order it is checked). */
enum utf8_status {
    UTF8_OK = 0,
    UTF8_BAD_LEAD,        /* not a lead byte of a 2-4 byte sequence */
    UTF8_TRUNCATED,       /* the text ends inside the sequence */
    UTF8_BAD_CONTINUATION,
    UTF8_OVERLONG,
    UTF8_SURROGATE,       /* *cp holds the code point */
    UTF8_TOO_BIG,         /* above U+10FFFF */
};

/* Decode the sequence starting at s[i] (a byte >= 0x80) within s[0..n):
 * UTF8_OK with *len and *cp set, or why not. */
static inline enum utf8_status utf8_decode(const unsigned char *s, size_t i, size_t n, size_t *len,
                                           uint32_t *cp)
{
    unsigned c = s[i];
    uint32_t min;
    if (c >= 0xC2 && c <= 0xDF) {
        *len = 2; *cp = c & 0x1F; min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        *len = 3; *cp = c & 0x0F; min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        *len = 4; *cp = c & 0x07; min = 0x10000;
    } else {
        return UTF8_BAD_LEAD;
    }
    if (*len > n - i)
        return UTF8_TRUNCATED;
    for (size_t k = 1; k < *len; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            return UTF8_BAD_CONTINUATION;
        *cp = (*cp << 6) | (s[i + k] & 0x3F);
    }
    if (*cp < min)
        return UTF8_OVERLONG;
    if (*cp >= 0xD800 && *cp <= 0xDFFF)
        return UTF8_SURROGATE;
    if (*cp > 0x10FFFF)
        return UTF8_TOO_BIG;
    return UTF8_OK;
}

static inline size_t utf8_len(const unsigned char *s, size_t i, size_t n)
{
    size_t len;
    uint32_t cp;
    return utf8_decode(s, i, n, &len, &cp) == UTF8_OK ? len : 0;
}

#endif
