/* jsonw — jansson-identical indented JSON text (see jsonw.h). */
#include "jsonw.h"
#include "utf8.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 512

/* 1 for bytes that end a run copied as is: '"', '\\', control characters and
 * non-ASCII (checked as UTF-8). */
static const unsigned char special[256] = {
    [0x00 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1,
};


int jsonw_string(sbuf *out, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    sbuf_addc(out, '"');
    size_t run = 0, i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (!special[c]) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_len(s, i, n);
            if (!l)
                return -1;
            i += l;
            continue;
        }
        sbuf_add(out, s + run, i - run);
        char esc[8];
        switch (c) {
        case '"': sbuf_add(out, "\\\"", 2); break;
        case '\\': sbuf_add(out, "\\\\", 2); break;
        case '\b': sbuf_add(out, "\\b", 2); break;
        case '\f': sbuf_add(out, "\\f", 2); break;
        case '\n': sbuf_add(out, "\\n", 2); break;
        case '\r': sbuf_add(out, "\\r", 2); break;
        case '\t': sbuf_add(out, "\\t", 2); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04X", c);
            sbuf_add(out, esc, 6);
        }
        run = ++i;
    }
    sbuf_add(out, s + run, n - run);
    sbuf_addc(out, '"');
    return 0;
}

void jsonw_indent(sbuf *out, int depth)
{
    static const char spaces[] = "\n                                                                ";
    size_t n = 2 * (size_t)depth;
    sbuf_add(out, spaces, 1);
    while (n) {
        size_t k = n < sizeof spaces - 2 ? n : sizeof spaces - 2;
        sbuf_add(out, spaces + 1, k);
        n -= k;
    }
}

int jsonw_value(sbuf *out, json_t *v, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        void *it = json_object_iter(v);
        if (!it) {
            sbuf_add(out, "{}", 2);
            return 0;
        }
        sbuf_addc(out, '{');
        jsonw_indent(out, depth + 1);
        while (it) {
            if (jsonw_string(out, json_object_iter_key(it), json_object_iter_key_len(it)) < 0)
                return -1;
            sbuf_add(out, ": ", 2);
            if (jsonw_value(out, json_object_iter_value(it), depth + 1) < 0)
                return -1;
            it = json_object_iter_next(v, it);
            if (it) {
                sbuf_addc(out, ',');
                jsonw_indent(out, depth + 1);
            }
        }
        jsonw_indent(out, depth);
        sbuf_addc(out, '}');
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (!n) {
            sbuf_add(out, "[]", 2);
            return 0;
        }
        sbuf_addc(out, '[');
        jsonw_indent(out, depth + 1);
        for (size_t i = 0; i < n; i++) {
            if (jsonw_value(out, json_array_get(v, i), depth + 1) < 0)
                return -1;
            if (i + 1 < n) {
                sbuf_addc(out, ',');
                jsonw_indent(out, depth + 1);
            }
        }
        jsonw_indent(out, depth);
        sbuf_addc(out, ']');
        return 0;
    }
    case JSON_STRING:
        return jsonw_string(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        char b[32];
        int l = snprintf(b, sizeof b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sbuf_add(out, b, (size_t)l);
        return 0;
    }
    case JSON_TRUE:
        sbuf_add(out, "true", 4);
        return 0;
    case JSON_FALSE:
        sbuf_add(out, "false", 5);
        return 0;
    case JSON_NULL:
        sbuf_add(out, "null", 4);
        return 0;
    default:
        return -1;   /* reals: jansson's own formatting */
    }
}
