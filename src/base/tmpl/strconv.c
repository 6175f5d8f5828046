/* strconv — ports of Go's strconv the engine needs: Quote/QuoteRune/QuoteToASCII,
 * Unquote/UnquoteChar, ParseInt/ParseFloat of number literals, and the rune
 * classes (IsPrint, letters, digits) Go uses, approximated where Go has tables. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "../utf8.h"
#include "tmpl_int.h"

/* utf8.DecodeRune: invalid input decodes as (RuneError, 1). n > 0. */
int32_t decode_rune(const unsigned char *s, size_t n, int *w)
{
    *w = 1;
    if (s[0] < 0x80)
        return (int32_t)s[0];
    size_t len;
    uint32_t cp;
    if (utf8_decode(s, 0, n, &len, &cp) != UTF8_OK)
        return RUNE_ERROR;
    *w = (int)len;
    return (int32_t)cp;
}

int encode_rune(char *buf, int32_t r)
{
    if (r < 0 || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF))
        r = RUNE_ERROR;
    if (r < 0x80) { buf[0] = (char)r; return 1; }
    if (r < 0x800) { buf[0] = (char)(0xC0 | (r >> 6)); buf[1] = (char)(0x80 | (r & 0x3F)); return 2; }
    if (r < 0x10000) {
        buf[0] = (char)(0xE0 | (r >> 12)); buf[1] = (char)(0x80 | ((r >> 6) & 0x3F));
        buf[2] = (char)(0x80 | (r & 0x3F)); return 3;
    }
    buf[0] = (char)(0xF0 | (r >> 18)); buf[1] = (char)(0x80 | ((r >> 12) & 0x3F));
    buf[2] = (char)(0x80 | ((r >> 6) & 0x3F)); buf[3] = (char)(0x80 | (r & 0x3F));
    return 4;
}

size_t rune_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; c++) {
        int w;
        decode_rune((const unsigned char *)s + i, n - i, &w);
        i += (size_t)w;
    }
    return c;
}

static int is_letter(int32_t r)
{
    if (r < 0x80)
        return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z');
    if (r == 0xAA || r == 0xB5 || r == 0xBA)
        return 1;
    if (r >= 0xC0 && r <= 0x24F)
        return r != 0xD7 && r != 0xF7;
    return (r >= 0x370 && r <= 0x3FF && r != 0x375 && r != 0x37E && r != 0x384 && r != 0x385 && r != 0x387) ||
           (r >= 0x400 && r <= 0x481) || (r >= 0x48A && r <= 0x52F) || (r >= 0x5D0 && r <= 0x5EA) ||
           (r >= 0x620 && r <= 0x64A) || (r >= 0x3041 && r <= 0x3096) || (r >= 0x30A1 && r <= 0x30FA) ||
           (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0xAC00 && r <= 0xD7A3);
}

static int is_digit(int32_t r)
{
    return (r >= '0' && r <= '9') || (r >= 0x660 && r <= 0x669) || (r >= 0x6F0 && r <= 0x6F9) ||
           (r >= 0x966 && r <= 0x96F) || (r >= 0xFF10 && r <= 0xFF19);
}

int is_alnum(int32_t r) { return r == '_' || is_letter(r) || is_digit(r); }

/* strconv.IsPrint, approximated outside ASCII by excluding the usual
 * control, format and separator ranges. */
int is_print(int32_t r)
{
    if (r < 0x80)
        return r >= 0x20 && r < 0x7F;
    if (r < 0xA0 || r == 0xAD)
        return 0;
    if ((r >= 0x200B && r <= 0x200F) || (r >= 0x2028 && r <= 0x202E) || (r >= 0x2060 && r <= 0x206F) ||
        r == 0xFEFF || (r >= 0xFFF9 && r <= 0xFFFB) || r == 0xFFFE || r == 0xFFFF ||
        (r >= 0xD800 && r <= 0xF8FF) || (r >= 0xE0000) || r == 0x2000 || (r >= 0x2000 && r <= 0x200A) ||
        r == 0x3000 || r == 0x1680 || r == 0x205F)
        return 0;
    return r <= 0x10FFFF;
}

/* strconv.Quote / QuoteToASCII (quote '"') and QuoteRune (quote '\''). */
static void quote_rune_into(sbuf *b, int32_t r, int width, const unsigned char *raw, char quote, int ascii)
{
    static const char hx[] = "0123456789abcdef";
    if (width == 1 && r == RUNE_ERROR) {
        sbuf_adds(b, "\\x");
        sbuf_addc(b, hx[raw[0] >> 4]);
        sbuf_addc(b, hx[raw[0] & 15]);
        return;
    }
    if (r == quote || r == '\\') {
        sbuf_addc(b, '\\');
        sbuf_addc(b, (char)r);
        return;
    }
    if (ascii ? (r < 0x80 && is_print(r)) : is_print(r)) {
        char tmp[4];
        sbuf_add(b, tmp, (size_t)encode_rune(tmp, r));
        return;
    }
    switch (r) {
    case '\a': sbuf_adds(b, "\\a"); return;
    case '\b': sbuf_adds(b, "\\b"); return;
    case '\f': sbuf_adds(b, "\\f"); return;
    case '\n': sbuf_adds(b, "\\n"); return;
    case '\r': sbuf_adds(b, "\\r"); return;
    case '\t': sbuf_adds(b, "\\t"); return;
    case '\v': sbuf_adds(b, "\\v"); return;
    }
    if (r < ' ' || r == 0x7F) {
        sbuf_adds(b, "\\x");
        sbuf_addc(b, hx[(r >> 4) & 15]);
        sbuf_addc(b, hx[r & 15]);
    } else if (r < 0x10000) {
        sbuf_addf(b, "\\u%04x", (unsigned)r);
    } else {
        sbuf_addf(b, "\\U%08x", (unsigned)r);
    }
}

void go_quote(sbuf *b, const char *s, size_t n, int ascii)
{
    sbuf_addc(b, '"');
    for (size_t i = 0; i < n;) {
        int w;
        int32_t r = decode_rune((const unsigned char *)s + i, n - i, &w);
        quote_rune_into(b, r, w, (const unsigned char *)s + i, '"', ascii);
        i += (size_t)w;
    }
    sbuf_addc(b, '"');
}

void go_quote_rune(sbuf *b, int32_t r, int ascii)
{
    if (r < 0 || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF))
        r = RUNE_ERROR;
    sbuf_addc(b, '\'');
    quote_rune_into(b, r, 0, NULL, '\'', ascii);
    sbuf_addc(b, '\'');
}

/* fmt's %#U: U+0041 'A' */
void go_unicode_sharp(sbuf *b, int32_t r)
{
    sbuf_addf(b, "U+%04X", (unsigned)r);
    if (is_print(r)) {
        char tmp[4];
        sbuf_adds(b, " '");
        sbuf_add(b, tmp, (size_t)encode_rune(tmp, r));
        sbuf_addc(b, '\'');
    }
}

/* strconv.UnquoteChar. Returns 0 on success, -1 on syntax error. */
int unquote_char(const char *s, size_t n, char quote, int32_t *value, int *multibyte, size_t *used)
{
    unsigned char c = (unsigned char)s[0];
    *multibyte = 0;
    if (c == (unsigned char)quote && (quote == '\'' || quote == '"'))
        return -1;
    if (c >= 0x80) {
        int w;
        *value = decode_rune((const unsigned char *)s, n, &w);
        *multibyte = 1;
        *used = (size_t)w;
        return 0;
    }
    if (c != '\\') {
        *value = c;
        *used = 1;
        return 0;
    }
    if (n <= 1)
        return -1;
    c = (unsigned char)s[1];
    size_t i = 2;
    switch (c) {
    case 'a': *value = '\a'; break;
    case 'b': *value = '\b'; break;
    case 'f': *value = '\f'; break;
    case 'n': *value = '\n'; break;
    case 'r': *value = '\r'; break;
    case 't': *value = '\t'; break;
    case 'v': *value = '\v'; break;
    case 'x': case 'u': case 'U': {
        int k = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        if (n - i < (size_t)k)
            return -1;
        int32_t v = 0;
        for (int j = 0; j < k; j++) {
            int d, ch = (unsigned char)s[i + (size_t)j];
            if (ch >= '0' && ch <= '9') d = ch - '0';
            else if (ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
            else if (ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
            else return -1;
            if (v > 0x10FFFF)
                return -1;
            v = v * 16 + d;
        }
        i += (size_t)k;
        if (c == 'x') {
            *value = v;
            break;
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return -1;
        *value = v;
        *multibyte = 1;
        break;
    }
    case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
        int32_t v = c - '0';
        if (n - i < 2)
            return -1;
        for (int j = 0; j < 2; j++) {
            int d = (unsigned char)s[i + (size_t)j] - '0';
            if (d < 0 || d > 7)
                return -1;
            v = (v << 3) | d;
        }
        i += 2;
        if (v > 255)
            return -1;
        *value = v;
        break;
    }
    case '\\': *value = '\\'; break;
    case '\'': case '"':
        if (c != (unsigned char)quote)
            return -1;
        *value = c;
        break;
    default:
        return -1;
    }
    *used = i;
    return 0;
}

static int valid_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t w = u[i] < 0x80 ? 1 : utf8_len(u, i, n);
        if (!w)
            return 0;
        i += w;
    }
    return 1;
}

/* strconv.Unquote for "..." and `...` literals. */
int go_unquote(arena *a, const char *in, size_t n, str *out)
{
    if (n < 2 || in[0] != in[n - 1])
        return -1;
    char q = in[0];
    in++;
    n -= 2;
    if (q == '`') {
        if (memchr(in, '`', n))
            return -1;
        char *p = aalloc(a, n + 1);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (in[i] != '\r')
                p[k++] = in[i];
        out->p = p;
        out->n = k;
        return 0;
    }
    if (q != '"')
        return -1;
    if (memchr(in, '\n', n))
        return -1;
    if (!memchr(in, '\\', n) && !memchr(in, '"', n)) {
        if (!valid_utf8(in, n))
            return -1;
        out->p = astrndup(a, in, n);
        out->n = n;
        return 0;
    }
    char *p = aalloc(a, n * 4 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        int32_t v;
        int mb;
        size_t used;
        if (unquote_char(in + i, n - i, '"', &v, &mb, &used) < 0)
            return -1;
        i += used;
        if (v < 0x80 || !mb)
            p[k++] = (char)v;
        else
            k += (size_t)encode_rune(p + k, v);
    }
    out->p = p;
    out->n = k;
    return 0;
}

/* strconv.ParseUint/ParseInt with base 0. Returns 0 ok, -1 syntax, -2 range. */
int parse_int_base0(const char *s, size_t n, int is_signed, uint64_t *out, int *neg)
{
    size_t i = 0;
    *neg = 0;
    if (is_signed && n > 0 && (s[0] == '+' || s[0] == '-')) {
        *neg = s[0] == '-';
        i = 1;
    }
    if (i >= n)
        return -1;
    int base = 10, prefixed = 0;
    if (s[i] == '0') {
        if (i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X')) { base = 16; i += 2; prefixed = 1; }
        else if (i + 1 < n && (s[i + 1] == 'o' || s[i + 1] == 'O')) { base = 8; i += 2; prefixed = 1; }
        else if (i + 1 < n && (s[i + 1] == 'b' || s[i + 1] == 'B')) { base = 2; i += 2; prefixed = 1; }
        else { base = 8; i += 1; prefixed = 1; if (i == n) { *out = 0; return 0; } }
    }
    /* underscoreOK: '_' only between digits or after the base prefix */
    int saw = prefixed ? '0' : '^';
    int any = 0, underscores = 0;
    uint64_t v = 0;
    int overflow = 0;
    size_t start = i;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '_') {
            if (saw != '0')
                return -1;
            saw = '_';
            underscores = 1;
            continue;
        }
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'z') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'Z') d = c - 'A' + 10;
        else return -1;
        if (d >= base)
            return -1;
        saw = '0';
        any = 1;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            overflow = 1;
        else
            v = v * (uint64_t)base + (uint64_t)d;
    }
    (void)start;
    if (!any && !(base == 8 && prefixed && !(s[i - 1] == 'o' || s[i - 1] == 'O')))
        return -1;
    if (saw == '_')
        return -1;
    if (underscores && !prefixed && base == 10) {
        /* base 10 without prefix: underscores need base 0 and a digit before; already checked */
    }
    if (overflow)
        return -2;
    *out = v;
    return 0;
}

/* strconv.ParseFloat(s, 64) for Go number syntax. Returns 0 ok, -1 syntax, -2 range. */
int parse_float(const char *s, size_t n, double *out)
{
    char buf[512];
    size_t k = 0;
    if (n == 0 || n >= sizeof buf)
        return -1;
    /* validate Go syntax, strip underscores (only legal between digits / after prefix) */
    size_t i = 0;
    if (s[i] == '+' || s[i] == '-')
        buf[k++] = s[i++];
    int hex = 0;
    if (i + 1 < n && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        hex = 1;
        buf[k++] = '0';
        buf[k++] = 'x';
        i += 2;
    }
    int digits = 0, dot = 0, exp = 0, prev = hex ? '0' : '^', underscores = 0;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '_') {
            if (prev != '0')
                return -1;
            prev = '_';
            underscores = 1;
            continue;
        }
        int isdig = (c >= '0' && c <= '9') || (hex && !exp && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
        if (prev == '_' && !isdig)
            return -1;
        if (!exp && ((c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))))) {
            digits++;
            prev = '0';
        } else if (!exp && c == '.' && !dot) {
            dot = 1;
            prev = '.';
        } else if (!exp && digits && ((!hex && (c == 'e' || c == 'E')) || (hex && (c == 'p' || c == 'P')))) {
            exp = 1;
            prev = 'e';
            buf[k++] = c;
            if (i + 1 < n && (s[i + 1] == '+' || s[i + 1] == '-'))
                buf[k++] = s[++i];
            if (i + 1 >= n)
                return -1;
            continue;
        } else if (exp && c >= '0' && c <= '9') {
            prev = '0';
        } else {
            return -1;
        }
        buf[k++] = c;
    }
    if (!digits || prev == '_' || prev == 'e')
        return -1;
    if (hex && !exp)
        return -1;
    (void)underscores;
    buf[k] = 0;
    errno = 0;
    char *end;
    double d = strtod(buf, &end);
    if (*end)
        return -1;
    if (errno == ERANGE && isinf(d))
        return -2;
    *out = d;
    return 0;
}
