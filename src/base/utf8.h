/* utf8 — the one UTF-8 check shared by the TOML parser and the JSON writer.
 *
 * utf8_len(s, i, n): the length (2-4) of the valid UTF-8 sequence of a Unicode
 * scalar value starting at s[i] (a byte >= 0x80) within s[0..n), or 0 when it
 * is not one: overlong forms, surrogates and code points above U+10FFFF are
 * invalid (the rules jansson applies too).
 */
#ifndef QQ_UTF8_H
#define QQ_UTF8_H

#include <stddef.h>
#include <stdint.h>

static inline size_t utf8_len(const unsigned char *s, size_t i, size_t n)
{
    unsigned c = s[i];
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2; cp = c & 0x1F; min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; cp = c & 0x0F; min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; cp = c & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if (len > n - i)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return len;
}

#endif
