/* toml — TOML 1.0.0 parser producing jansson values (contract in toml.h).
 *
 * One pass over the text, recursive descent for values (depth bounded).
 * Tables are plain json objects; what TOML needs to know about them (defined
 * by a header, created implicitly by a header, created by dotted keys, inline
 * and therefore closed, array of tables) lives in a side map keyed by the
 * json_t pointer, so the result is the bare document with no bookkeeping.
 * A scalar never has an entry in that map, which keeps tagged scalars
 * ({"type", "value"} objects) apart from tables.
 *
 * Characters the text may not hold anywhere (invalid UTF-8, control
 * characters, a CR without LF) are not checked in a pass of their own: every
 * byte of an accepted document is read by the grammar (ASCII only), or inside
 * a string or comment, where the scanners check them. When parsing fails,
 * check_text() then looks for the first such character in the whole text, and
 * that error wins over the syntax error, as if it had been checked first.
 */
#include "toml.h"
#include "utf8.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deepest nesting of tables and arrays in the result: deeper documents are
 * rejected, so neither this parser nor jansson's recursive free can overflow
 * the stack. */
#define MAX_DEPTH 512

enum {
    F_TABLE = 1,     /* a table made by this parser (not a tagged scalar) */
    F_HEADER = 2,    /* defined by [header] or as an element of [[header]] */
    F_IMPLICIT = 4,  /* created as a parent of a [header] */
    F_DOTTED = 8,    /* created by a dotted key */
    F_INLINE = 16,   /* inline table: closed once its '}' is read */
    F_AOT = 32,      /* array created by [[header]]: may be appended to */
};

typedef struct meta_ent {
    const void *key;
    unsigned flags;
} meta_ent;

typedef struct key_seg {
    const char *s;  /* into the text (bare key) or owned (quoted key); not NUL-terminated */
    size_t len;
    size_t off;     /* offset of the segment's first character */
    size_t end;     /* offset just after it (after the closing quote) */
    char *owned;
} key_seg;

/* Keys are short: a few segments live in the list itself. */
typedef struct key_list {
    key_seg *v;
    size_t n, cap;
    key_seg inl[6];
} key_list;

/* printf arguments for "%.*s": the key as written, from its first segment to seg */
#define KEYARG(list, seg) KEYSPAN((list)->v[0].off, (seg)->end)
#define KEYSPAN(from, to) (int)((to) - (from) > 200 ? 200 : (to) - (from)), p->s + (from)

typedef struct parser {
    const char *s;
    size_t n, i;
    int flags;
    json_t *root;
    json_t *cur;            /* table the current key/value lines go into */
    int cur_depth;
    json_t *locs;           /* NULL: no locations wanted */
    sbuf path;              /* path of cur (only with locs) */
    sbuf scratch;           /* text of the string value being parsed */
    json_t **nums;          /* shared json integers for locs, by value */
    size_t nums_cap;
    toml_error *err;
    bool failed;
    meta_ent *meta;
    size_t meta_cap, meta_cnt;
    /* line/column cache: positions are mostly asked in increasing order */
    size_t lc_off, lc_line, lc_col, text_start;
} parser;

/* ---- side map: json_t * → flags ---------------------------------------- */

static size_t ptr_hash(const void *k)
{
    uint64_t x = (uint64_t)(uintptr_t)k;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static unsigned meta_get(const parser *p, const json_t *v)
{
    if (!p->meta_cap)
        return 0;
    size_t m = p->meta_cap - 1;
    for (size_t h = ptr_hash(v) & m;; h = (h + 1) & m) {
        if (p->meta[h].key == v)
            return p->meta[h].flags;
        if (!p->meta[h].key)
            return 0;
    }
}

static void meta_put_raw(meta_ent *tab, size_t cap, const void *k, unsigned flags)
{
    size_t m = cap - 1;
    for (size_t h = ptr_hash(k) & m;; h = (h + 1) & m) {
        if (tab[h].key == k || !tab[h].key) {
            tab[h].key = k;
            tab[h].flags = flags;
            return;
        }
    }
}

static void meta_set(parser *p, const json_t *v, unsigned flags)
{
    if ((p->meta_cnt + 1) * 2 > p->meta_cap) {
        size_t cap = p->meta_cap ? p->meta_cap * 2 : 64;
        meta_ent *tab = calloc(cap, sizeof *tab);
        if (!tab)
            abort();
        for (size_t j = 0; j < p->meta_cap; j++)
            if (p->meta[j].key)
                meta_put_raw(tab, cap, p->meta[j].key, p->meta[j].flags);
        free(p->meta);
        p->meta = tab;
        p->meta_cap = cap;
    }
    if (!meta_get(p, v))
        p->meta_cnt++;
    meta_put_raw(p->meta, p->meta_cap, v, flags);
}

static bool is_table(const parser *p, const json_t *v)
{
    return json_is_object(v) && (meta_get(p, v) & F_TABLE);
}

/* ---- positions and errors ----------------------------------------------- */

static bool starts_char(const char *s, size_t j)
{
    return ((unsigned char)s[j] & 0xC0) != 0x80;
}

/* Line and column of offset off. A cursor (lc_off, lc_line, lc_col) moves from
 * the last position asked, so asking in document order costs O(n) in all. */
static void pos_of(parser *p, size_t off, int *line, int *col)
{
    if (off > p->n)
        off = p->n;
    if (off >= p->lc_off) {
        for (size_t j = p->lc_off; j < off; j++) {
            if (p->s[j] == '\n') {
                p->lc_line++;
                p->lc_col = 1;
            } else if (starts_char(p->s, j)) {
                p->lc_col++;
            }
        }
    } else {
        bool crossed = false;
        for (size_t j = p->lc_off; j > off; j--) {
            if (p->s[j - 1] == '\n') {
                p->lc_line--;
                crossed = true;
            } else if (starts_char(p->s, j - 1)) {
                p->lc_col--;
            }
        }
        if (crossed) {
            size_t ls = off;
            while (ls > p->text_start && p->s[ls - 1] != '\n')
                ls--;
            p->lc_col = 1;
            for (size_t j = ls; j < off; j++)
                p->lc_col += starts_char(p->s, j);
        }
    }
    p->lc_off = off;
    *line = p->lc_line > INT32_MAX ? INT32_MAX : (int)p->lc_line;
    *col = p->lc_col > INT32_MAX ? INT32_MAX : (int)p->lc_col;
}

__attribute__((format(printf, 3, 4)))
static int fail(parser *p, size_t off, const char *fmt, ...)
{
    if (p->failed)
        return -1;
    p->failed = true;
    if (p->err) {
        pos_of(p, off, &p->err->line, &p->err->col);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int at(const parser *p, size_t i)
{
    return i < p->n ? (unsigned char)p->s[i] : -1;
}

static int cur_ch(const parser *p)
{
    return at(p, p->i);
}

/* A short, printable description of the character at i, for messages. */
static const char *describe(const parser *p, size_t i, char *buf, size_t size)
{
    int c = at(p, i);
    if (c < 0)
        return "end of file";
    if (c == '\n' || c == '\r')
        return "end of line";
    if (c >= 0x20 && c < 0x7f) {
        snprintf(buf, size, "'%c'", c);
    } else if (c >= 0xC2 && c <= 0xF4) {
        /* quote the whole character (only kept when the text is valid UTF-8) */
        size_t len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (len > p->n - i)
            len = p->n - i;   /* invalid text: check_text()'s error replaces this one */
        snprintf(buf, size, "'%.*s'", (int)len, p->s + i);
    } else {
        snprintf(buf, size, "byte 0x%02x", (unsigned)c);
    }
    return buf;
}

#define UNEXPECTED(p, i, what)                                                   \
    ({                                                                           \
        char _b[16];                                                             \
        fail((p), (i), "expected %s, found %s", (what), describe((p), (i), _b, sizeof _b)); \
    })

/* ---- UTF-8 and control characters ---------------------------------------- */

/* Byte classes: which bytes end a run of ordinary characters in a basic
 * string, a literal string and a comment. Control characters but tab, DEL and
 * all non-ASCII bytes end every run (a valid UTF-8 sequence is then skipped
 * by scan_plain()). */
enum { C_BASIC = 1, C_LITERAL = 2, C_COMMENT = 4, C_ANY = 7, C_BARE = 8 };

static const unsigned char cls[256] = {
    [0x00 ... 0x08] = C_ANY, [0x0a ... 0x1f] = C_ANY, [0x7f ... 0xff] = C_ANY,
    ['"'] = C_BASIC, ['\\'] = C_BASIC, ['\''] = C_LITERAL,
    /* characters of a bare key */
    ['A' ... 'Z'] = C_BARE, ['a' ... 'z'] = C_BARE, ['0' ... '9'] = C_BARE, ['_'] = C_BARE, ['-'] = C_BARE,
};


/* From j, skip the bytes that are not in class stop and the valid UTF-8
 * sequences: returns the offset of the first other byte, or p->n. */
static size_t scan_plain(const parser *p, size_t j, unsigned stop)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t n = p->n;
    for (;;) {
        while (j < n && !(cls[s[j]] & stop))
            j++;
        if (j < n && s[j] >= 0x80) {
            size_t l = utf8_len(s, j, n);
            if (l) {
                j += l;
                continue;
            }
        }
        return j;
    }
}

/* The first character of the text that it may not hold anywhere: reported
 * when parsing failed (see the top of this file). */
static int check_text(parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t n = p->n;
    for (size_t i = p->text_start; i < n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c == '\r') {
                if (i + 1 >= n || s[i + 1] != '\n')
                    return fail(p, i, "carriage return not followed by line feed");
                i += 2;
                continue;
            }
            if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
                return fail(p, i, "control character U+%04X is not allowed here", c);
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        switch (utf8_decode(s, i, n, &len, &cp)) {
        case UTF8_OK: break;
        case UTF8_BAD_LEAD: return fail(p, i, "invalid UTF-8 byte 0x%02x", c);
        case UTF8_TRUNCATED: return fail(p, i, "truncated UTF-8 sequence");
        case UTF8_BAD_CONTINUATION: return fail(p, i, "invalid UTF-8 sequence");
        case UTF8_OVERLONG: return fail(p, i, "overlong UTF-8 sequence");
        case UTF8_SURROGATE: return fail(p, i, "UTF-8 encoded surrogate U+%04X", (unsigned)cp);
        case UTF8_TOO_BIG: return fail(p, i, "UTF-8 sequence beyond U+10FFFF");
        }
        i += len;
    }
    return 0;
}

/* ---- paths for locs -------------------------------------------------- */

static bool is_bare_char(int c)
{
    return c >= 0 && (cls[c] & C_BARE);
}

static void path_append_n(sbuf *path, const char *key, size_t len)
{
    if (path->len)
        sbuf_addc(path, '.');
    bool bare = len > 0;
    for (size_t j = 0; j < len && bare; j++)
        bare = is_bare_char((unsigned char)key[j]);
    if (bare) {
        sbuf_add(path, key, len);
        return;
    }
    sbuf_addc(path, '"');
    for (size_t j = 0; j < len; j++) {
        unsigned char c = (unsigned char)key[j];
        switch (c) {
        case '"': sbuf_adds(path, "\\\""); break;
        case '\\': sbuf_adds(path, "\\\\"); break;
        case '\n': sbuf_adds(path, "\\n"); break;
        case '\t': sbuf_adds(path, "\\t"); break;
        case '\r': sbuf_adds(path, "\\r"); break;
        case '\b': sbuf_adds(path, "\\b"); break;
        case '\f': sbuf_adds(path, "\\f"); break;
        default:
            if (c < 0x20 || c == 0x7f)
                sbuf_addf(path, "\\u%04X", c);
            else
                sbuf_addc(path, (char)c);
        }
    }
    sbuf_addc(path, '"');
}

void toml_path_append_n(sbuf *path, const char *key, size_t len)
{
    path_append_n(path, key, len);
}

void toml_path_append(sbuf *path, const char *key)
{
    path_append_n(path, key, strlen(key));
}

void toml_path_append_index(sbuf *path, size_t i)
{
    char d[24], *e = d + sizeof d;
    *--e = ']';
    do {
        *--e = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    *--e = '[';
    sbuf_add(path, e, (size_t)(d + sizeof d - e));
}

static void path_truncate(sbuf *path, size_t len)
{
    if (path->buf && len < path->len) {
        path->len = len;
        path->buf[len] = '\0';
    }
}

/* A json integer for a line or column: small ones are made once and shared
 * (locs hold tens of thousands of them). */
static json_t *loc_num(parser *p, int v)
{
    if (v < 0 || v >= 1 << 16)
        return json_integer(v);
    if ((size_t)v >= p->nums_cap) {
        size_t cap = p->nums_cap ? p->nums_cap : 256;
        while (cap <= (size_t)v)
            cap *= 2;
        json_t **n = realloc(p->nums, cap * sizeof *n);
        if (!n)
            abort();
        memset(n + p->nums_cap, 0, (cap - p->nums_cap) * sizeof *n);
        p->nums = n;
        p->nums_cap = cap;
    }
    if (!p->nums[v])
        p->nums[v] = json_integer(v);
    return json_incref(p->nums[v]);
}

/* Record the location of the current path; keep an existing one unless force. */
static void loc_set(parser *p, sbuf *path, size_t off, bool force)
{
    if (!p->locs)
        return;
    const char *key = sbuf_str(path);
    if (!force && json_object_get(p->locs, key))
        return;
    int line, col;
    pos_of(p, off, &line, &col);
    json_t *pos = json_array();
    json_array_append_new(pos, loc_num(p, line));
    json_array_append_new(pos, loc_num(p, col));
    json_object_set_new_nocheck(p->locs, key, pos);
}

/* ---- scalars -------------------------------------------------------- */

static json_t *scalar(parser *p, const char *type, json_t *plain, const char *text, size_t len)
{
    if (!(p->flags & TOML_TAGGED))
        return plain;
    json_decref(plain);
    return json_pack("{s:s, s:s%}", "type", type, "value", text, len);
}

/* jansson refuses to make a real from inf or nan; TOML has them. The value is
 * stored behind jansson's public json_t header, as in its json_real_t. */
struct real_layout {
    json_t json;
    double value;
};

static json_t *make_real(double d)
{
    if (isfinite(d))
        return json_real(d);
    json_t *r = json_real(0.0);
    if (!r)
        return NULL;
    ((struct real_layout *)(void *)r)->value = d;
    double back = json_real_value(r);
    if (!(isnan(d) ? isnan(back) : back == d)) {
        json_decref(r);   /* layout differs: give up on the value, not the document */
        return json_real(isnan(d) ? 0.0 : d > 0 ? 1.7976931348623157e308 : -1.7976931348623157e308);
    }
    return r;
}

static json_t *scalar_int(parser *p, int64_t v)
{
    if (!(p->flags & TOML_TAGGED))
        return json_integer((json_int_t)v);
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, v);
    return scalar(p, "integer", NULL, text, strlen(text));
}

static json_t *scalar_float(parser *p, double d)
{
    if (!(p->flags & TOML_TAGGED))
        return make_real(d);
    char text[40];
    if (isnan(d))
        strcpy(text, "nan");
    else if (isinf(d))
        strcpy(text, d < 0 ? "-inf" : "inf");
    else
        snprintf(text, sizeof text, "%.17g", d);
    return scalar(p, "float", NULL, text, strlen(text));
}

/* ---- whitespace, comments, newlines ---------------------------------- */

static void skip_ws(parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t'))
        p->i++;
}

/* A newline at i: returns its length (1 for LF, 2 for CRLF), else 0. */
static size_t newline_at(const parser *p, size_t i)
{
    int c = at(p, i);
    if (c == '\n')
        return 1;
    if (c == '\r' && at(p, i + 1) == '\n')
        return 2;
    return 0;
}

/* A comment runs to the end of the line; it stops early at a character no
 * comment may hold, which the caller then fails on. */
static void skip_comment(parser *p)
{
    if (cur_ch(p) != '#')
        return;
    p->i = scan_plain(p, p->i + 1, C_COMMENT);
}

/* Whitespace, comments and newlines (inside arrays). */
static void skip_ws_nl(parser *p)
{
    for (;;) {
        skip_ws(p);
        skip_comment(p);
        size_t nl = newline_at(p, p->i);
        if (!nl)
            return;
        p->i += nl;
    }
}

/* After a key/value or a header: optional comment, then newline or EOF. */
static int end_of_line(parser *p)
{
    skip_ws(p);
    skip_comment(p);
    if (p->i >= p->n)
        return 0;
    size_t nl = newline_at(p, p->i);
    if (!nl)
        return UNEXPECTED(p, p->i, "end of line");
    p->i += nl;
    return 0;
}

/* ---- strings --------------------------------------------------------- */

static void add_utf8(sbuf *b, uint32_t cp)
{
    char u[4];
    if (cp < 0x80) {
        sbuf_addc(b, (char)cp);
        return;
    }
    if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        sbuf_add(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        sbuf_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        sbuf_add(b, u, 4);
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* An escape at p->i (the backslash); appends its character to out. */
static int parse_escape(parser *p, sbuf *out)
{
    size_t start = p->i;
    int c = at(p, p->i + 1);
    p->i += 2;
    switch (c) {
    case 'b': sbuf_addc(out, '\b'); return 0;
    case 't': sbuf_addc(out, '\t'); return 0;
    case 'n': sbuf_addc(out, '\n'); return 0;
    case 'f': sbuf_addc(out, '\f'); return 0;
    case 'r': sbuf_addc(out, '\r'); return 0;
    case '"': sbuf_addc(out, '"'); return 0;
    case '\\': sbuf_addc(out, '\\'); return 0;
    case 'u':
    case 'U': {
        int digits = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int k = 0; k < digits; k++) {
            int h = hexval(at(p, p->i));
            if (h < 0)
                return fail(p, start, "\\%c escape needs %d hex digits", c, digits);
            cp = cp * 16 + (uint32_t)h;
            p->i++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return fail(p, start, "escape \\%c%0*" PRIX32 " is not a Unicode scalar value", c,
                        digits, cp);
        add_utf8(out, cp);
        return 0;
    }
    default:
        if (c < 0)
            return fail(p, start, "unterminated string");
        if (c >= 0x20 && c < 0x7f)
            return fail(p, start, "invalid escape \\%c", c);
        return fail(p, start, "invalid escape");
    }
}

/* Basic or literal string, one line; p->i at the opening quote. A string
 * without escapes is not copied: *span and *span_len then give it inside the
 * text; otherwise *span is NULL and the value is appended to out. */
static int parse_line_string(parser *p, sbuf *out, const char **span, size_t *span_len)
{
    size_t start = p->i;
    char q = p->s[p->i++];
    unsigned stop = q == '"' ? C_BASIC : C_LITERAL;
    bool copied = false;
    for (;;) {
        size_t run = p->i, j = scan_plain(p, run, stop);
        int c = at(p, j);
        if (c == q) {
            if (copied) {
                sbuf_add(out, p->s + run, j - run);
                *span = NULL;
            } else {
                *span = p->s + run;
                *span_len = j - run;
            }
            p->i = j + 1;
            return 0;
        }
        if (c == '\\') {   /* only a basic string stops here */
            sbuf_add(out, p->s + run, j - run);
            copied = true;
            p->i = j;
            if (parse_escape(p, out) < 0)
                return -1;
            continue;
        }
        if (c < 0 || c == '\n' || c == '\r')
            return fail(p, start, "unterminated string");
        /* a control character or invalid UTF-8: check_text() says which */
        return fail(p, j, "character not allowed in a string");
    }
}

/* Multi-line basic or literal string; p->i at the first of three quotes. */
static int parse_ml_string(parser *p, sbuf *out)
{
    size_t start = p->i;
    char q = p->s[p->i];
    p->i += 3;
    p->i += newline_at(p, p->i);   /* a newline right after the delimiter is trimmed */
    for (;;) {
        int c = cur_ch(p);
        if (c < 0)
            return fail(p, start, "unterminated multi-line string");
        if (c == q) {
            size_t run = 0;
            while (at(p, p->i + run) == q)
                run++;
            if (run >= 3) {
                if (run > 5)
                    return fail(p, p->i + 5, "too many quotes at the end of a multi-line string");
                for (size_t k = 3; k < run; k++)
                    sbuf_addc(out, q);
                p->i += run;
                return 0;
            }
            for (size_t k = 0; k < run; k++)
                sbuf_addc(out, q);
            p->i += run;
            continue;
        }
        size_t nl = newline_at(p, p->i);
        if (nl) {
            sbuf_addc(out, '\n');
            p->i += nl;
            continue;
        }
        if (c == '\\' && q == '"') {
            /* line-ending backslash: eats whitespace and newlines up to the next text */
            size_t j = p->i + 1;
            while (at(p, j) == ' ' || at(p, j) == '\t')
                j++;
            if (newline_at(p, j)) {
                while (at(p, j) == ' ' || at(p, j) == '\t' || newline_at(p, j))
                    j += newline_at(p, j) ? newline_at(p, j) : 1;
                p->i = j;
                continue;
            }
            if (parse_escape(p, out) < 0)
                return -1;
            continue;
        }
        size_t j = scan_plain(p, p->i, q == '"' ? C_BASIC : C_LITERAL);
        if (j == p->i)   /* a control character, a lone CR or invalid UTF-8 */
            return fail(p, j, "character not allowed in a string");
        sbuf_add(out, p->s + p->i, j - p->i);
        p->i = j;
    }
}

static bool starts_ml(const parser *p, char q)
{
    return at(p, p->i) == q && at(p, p->i + 1) == q && at(p, p->i + 2) == q;
}

/* ---- keys ------------------------------------------------------------ */

/* Only the header: the inline segments need no zeroing. */
static void keys_init(key_list *k)
{
    k->v = k->inl;
    k->n = 0;
    k->cap = sizeof k->inl / sizeof k->inl[0];
}

static void keys_free(key_list *k)
{
    for (size_t j = 0; j < k->n; j++)
        free(k->v[j].owned);
    if (k->v != k->inl)
        free(k->v);
    k->v = k->inl;
    k->n = 0;
    k->cap = sizeof k->inl / sizeof k->inl[0];
}

static int parse_key(parser *p, key_list *keys)
{
    for (;;) {
        skip_ws(p);
        size_t off = p->i;
        int c = cur_ch(p);
        key_seg seg = { .off = off };
        if (c == '"' || c == '\'') {
            if (starts_ml(p, (char)c))
                return fail(p, off, "a key cannot be a multi-line string");
            sbuf b = SBUF_INIT;
            if (parse_line_string(p, &b, &seg.s, &seg.len) < 0) {
                sbuf_free(&b);
                return -1;
            }
            if (!seg.s) {   /* had escapes */
                seg.len = b.len;
                seg.s = seg.owned = sbuf_steal(&b);
            }
        } else if (is_bare_char(c)) {
            const unsigned char *t = (const unsigned char *)p->s;
            size_t j = p->i + 1;
            while (j < p->n && (cls[t[j]] & C_BARE))
                j++;
            p->i = j;
            seg.s = p->s + off;
            seg.len = p->i - off;
        } else {
            return UNEXPECTED(p, off, "a key");
        }
        if (keys->n == keys->cap) {
            size_t cap = keys->cap * 2;
            key_seg *v = keys->v == keys->inl ? malloc(cap * sizeof *v)
                                              : realloc(keys->v, cap * sizeof *v);
            if (!v)
                abort();
            if (keys->v == keys->inl)
                memcpy(v, keys->inl, sizeof keys->inl);
            keys->v = v;
            keys->cap = cap;
        }
        seg.end = p->i;
        keys->v[keys->n++] = seg;
        skip_ws(p);
        if (cur_ch(p) != '.')
            return 0;
        p->i++;
    }
}

static void path_add_key(parser *p, sbuf *path, const key_seg *k)
{
    if (p->locs)
        path_append_n(path, k->s, k->len);
}

static void path_add_index(parser *p, sbuf *path, size_t i)
{
    if (p->locs)
        toml_path_append_index(path, i);
}

/* ---- values ---------------------------------------------------------- */

static json_t *parse_value(parser *p, int depth, sbuf *path);
static int parse_inline_table(parser *p, json_t *tbl, int depth, sbuf *path);

static json_t *parse_array(parser *p, int depth, sbuf *path)
{
    size_t start = p->i;
    if (depth > MAX_DEPTH) {
        fail(p, start, "arrays and tables nested too deeply");
        return NULL;
    }
    p->i++;
    json_t *arr = json_array();
    size_t base = path->len;
    for (;;) {
        skip_ws_nl(p);
        int c = cur_ch(p);
        if (c == ']') {
            p->i++;
            return arr;
        }
        if (c < 0) {
            fail(p, start, "unterminated array");
            break;
        }
        size_t off = p->i;
        path_add_index(p, path, json_array_size(arr));
        loc_set(p, path, off, true);
        json_t *v = parse_value(p, depth + 1, path);
        path_truncate(path, base);
        if (!v)
            break;
        json_array_append_new(arr, v);
        skip_ws_nl(p);
        c = cur_ch(p);
        if (c == ',') {
            p->i++;
            continue;
        }
        if (c == ']') {
            p->i++;
            return arr;
        }
        if (c < 0)
            fail(p, start, "unterminated array");
        else
            UNEXPECTED(p, p->i, "',' or ']' in array");
        break;
    }
    json_decref(arr);
    return NULL;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* n digits at i, as a number; -1 if they are not all digits. */
static int digits_at(const parser *p, size_t i, int n)
{
    int v = 0;
    for (int k = 0; k < n; k++) {
        int c = at(p, i + (size_t)k);
        if (!is_digit(c))
            return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

static bool is_value_end(int c)
{
    return c < 0 || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '#' || c == ',' ||
           c == ']' || c == '}';
}

/* HH:MM:SS[.frac] at p->i; advances past it. */
static int parse_time_part(parser *p)
{
    size_t s = p->i;
    int hh = digits_at(p, s, 2), mm = digits_at(p, s + 3, 2), ss = digits_at(p, s + 6, 2);
    if (hh < 0 || at(p, s + 2) != ':' || mm < 0)
        return fail(p, s, "invalid time (expected HH:MM:SS)");
    if (at(p, s + 5) != ':' || ss < 0)
        return fail(p, s, "invalid time: seconds are required (HH:MM:SS)");
    if (hh > 23)
        return fail(p, s, "invalid time: hour %d is out of range", hh);
    if (mm > 59)
        return fail(p, s + 3, "invalid time: minute %d is out of range", mm);
    if (ss > 60)
        return fail(p, s + 6, "invalid time: second %d is out of range", ss);
    p->i = s + 8;
    if (cur_ch(p) == '.') {
        size_t j = p->i + 1;
        while (is_digit(at(p, j)))
            j++;
        if (j == p->i + 1)
            return fail(p, p->i, "invalid time: no digits after '.'");
        p->i = j;
    }
    return 0;
}

static json_t *parse_datetime(parser *p)
{
    size_t start = p->i;
    const char *type;
    if (at(p, start + 2) == ':') {
        if (parse_time_part(p) < 0)
            return NULL;
        type = "time-local";
    } else {
        int y = digits_at(p, start, 4), mo = digits_at(p, start + 5, 2),
            d = digits_at(p, start + 8, 2);
        if (y < 0 || at(p, start + 4) != '-' || mo < 0 || at(p, start + 7) != '-' || d < 0 ||
            is_digit(at(p, start + 10))) {
            fail(p, start, "invalid date (expected YYYY-MM-DD)");
            return NULL;
        }
        if (mo < 1 || mo > 12) {
            fail(p, start + 5, "invalid date: month %d is out of range", mo);
            return NULL;
        }
        static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        int dim = mdays[mo - 1] + (mo == 2 && leap);
        if (d < 1 || d > dim) {
            fail(p, start + 8, "invalid date: day %d is out of range for %04d-%02d", d, y, mo);
            return NULL;
        }
        p->i = start + 10;
        int c = cur_ch(p);
        bool has_time = false;
        if (c == 'T' || c == 't') {
            has_time = true;
        } else if (c == ' ' && is_digit(at(p, p->i + 1)) && is_digit(at(p, p->i + 2)) &&
                   at(p, p->i + 3) == ':') {
            has_time = true;
        }
        if (!has_time) {
            type = "date-local";
        } else {
            p->i++;
            if (parse_time_part(p) < 0)
                return NULL;
            c = cur_ch(p);
            if (c == 'Z' || c == 'z') {
                p->i++;
                type = "datetime";
            } else if (c == '+' || c == '-') {
                size_t o = p->i + 1;
                int oh = digits_at(p, o, 2), om = digits_at(p, o + 3, 2);
                if (oh < 0 || at(p, o + 2) != ':' || om < 0) {
                    fail(p, p->i, "invalid time offset (expected +HH:MM or -HH:MM)");
                    return NULL;
                }
                if (oh > 23 || om > 59) {
                    fail(p, p->i, "invalid time offset: out of range");
                    return NULL;
                }
                p->i = o + 5;
                type = "datetime";
            } else {
                type = "datetime-local";
            }
        }
    }
    if (!is_value_end(cur_ch(p))) {
        UNEXPECTED(p, p->i, "end of date-time");
        return NULL;
    }
    size_t len = p->i - start;
    char *text = strndup(p->s + start, len);
    if (!text)
        abort();
    if (len > 10 && text[10] == ' ' && strcmp(type, "time-local") != 0)
        text[10] = 'T';
    json_t *v = (p->flags & TOML_TAGGED)
                    ? json_pack("{s:s, s:s}", "type", type, "value", text)
                    : json_string(text);
    free(text);
    return v;
}

/* Digits with single underscores between them, of the given base, at j.
 * Returns the end offset, or 0 on a syntax error (reported). Copies the digits
 * (without underscores) to out. */
static size_t scan_digits(parser *p, size_t j, int base, sbuf *out)
{
    size_t start = j;
    bool prev_digit = false;
    for (;;) {
        int c = at(p, j);
        int v = c < 0 ? -1 : hexval(c);
        if (c == '_') {
            if (!prev_digit) {
                fail(p, j, "'_' must be between digits");
                return 0;
            }
            prev_digit = false;
            j++;
            continue;
        }
        if (v < 0 || v >= base)
            break;
        sbuf_addc(out, (char)c);
        prev_digit = true;
        j++;
    }
    if (j == start) {
        UNEXPECTED(p, j, "a digit");
        return 0;
    }
    if (!prev_digit) {
        fail(p, j - 1, "'_' must be between digits");
        return 0;
    }
    return j;
}

static json_t *parse_number(parser *p)
{
    size_t start = p->i, j = start;
    int c = cur_ch(p);
    bool sign = c == '+' || c == '-';
    if (sign)
        j++;
    /* inf and nan */
    if (at(p, j) == 'i' || at(p, j) == 'n') {
        const char *word = at(p, j) == 'i' ? "inf" : "nan";
        if (p->n - j >= 3 && memcmp(p->s + j, word, 3) == 0 && is_value_end(at(p, j + 3))) {
            p->i = j + 3;
            double d = word[0] == 'i' ? (c == '-' ? -INFINITY : INFINITY)
                                      : (c == '-' ? -NAN : NAN);
            return scalar_float(p, d);
        }
        UNEXPECTED(p, start, "a value");
        return NULL;
    }
    if (!is_digit(at(p, j))) {
        UNEXPECTED(p, start, "a value");
        return NULL;
    }
    sbuf *num = &p->scratch;
    sbuf_reset(num);
    json_t *result = NULL;
    /* prefixed integers */
    if (at(p, j) == '0' && (at(p, j + 1) == 'x' || at(p, j + 1) == 'o' || at(p, j + 1) == 'b')) {
        int base = at(p, j + 1) == 'x' ? 16 : at(p, j + 1) == 'o' ? 8 : 2;
        if (sign) {
            fail(p, start, "a sign is not allowed on a hexadecimal, octal or binary integer");
            goto out;
        }
        size_t e = scan_digits(p, j + 2, base, num);
        if (!e)
            goto out;
        if (!is_value_end(at(p, e))) {
            UNEXPECTED(p, e, "end of integer");
            goto out;
        }
        errno = 0;
        char *end;
        unsigned long long u = strtoull(num->buf, &end, base);
        if (errno == ERANGE || u > INT64_MAX) {
            fail(p, start, "integer out of range (64-bit signed)");
            goto out;
        }
        p->i = e;
        result = scalar_int(p, (int64_t)u);
        goto out;
    }
    if (sign)
        sbuf_addc(num, (char)c);
    size_t int_start = j;
    size_t e = scan_digits(p, j, 10, num);
    if (!e)
        goto out;
    /* leading zeros: the integer part is "0" or starts with a non-zero digit */
    if (at(p, int_start) == '0' && e - int_start > 1) {
        fail(p, start, "leading zeros are not allowed");
        goto out;
    }
    bool is_float = false;
    if (at(p, e) == '.') {
        is_float = true;
        sbuf_addc(num, '.');
        if (!is_digit(at(p, e + 1))) {
            UNEXPECTED(p, e + 1, "a digit after '.'");
            goto out;
        }
        e = scan_digits(p, e + 1, 10, num);
        if (!e)
            goto out;
    }
    if (at(p, e) == 'e' || at(p, e) == 'E') {
        is_float = true;
        sbuf_addc(num, 'e');
        e++;
        if (at(p, e) == '+' || at(p, e) == '-')
            sbuf_addc(num, (char)p->s[e++]);
        if (!is_digit(at(p, e))) {
            UNEXPECTED(p, e, "a digit in the exponent");
            goto out;
        }
        e = scan_digits(p, e, 10, num);
        if (!e)
            goto out;
    }
    if (!is_value_end(at(p, e))) {
        UNEXPECTED(p, e, is_float ? "end of float" : "end of integer");
        goto out;
    }
    errno = 0;
    char *end;
    if (is_float) {
        double d = strtod(num->buf, &end);
        if (errno == ERANGE && isinf(d)) {
            fail(p, start, "float out of range");
            goto out;
        }
        result = scalar_float(p, d);
    } else {
        long long v = strtoll(num->buf, &end, 10);
        if (errno == ERANGE) {
            fail(p, start, "integer out of range (64-bit signed)");
            goto out;
        }
        result = scalar_int(p, (int64_t)v);
    }
    p->i = e;
out:
    return result;
}

static bool word_at(const parser *p, const char *w)
{
    size_t l = strlen(w);
    return p->n - p->i >= l && memcmp(p->s + p->i, w, l) == 0 && is_value_end(at(p, p->i + l));
}

static json_t *parse_value(parser *p, int depth, sbuf *path)
{
    int c = cur_ch(p);
    switch (c) {
    case '"':
    case '\'': {
        sbuf *b = &p->scratch;
        sbuf_reset(b);
        const char *span = NULL;
        size_t len = 0;
        int r = starts_ml(p, (char)c) ? parse_ml_string(p, b) : parse_line_string(p, b, &span, &len);
        if (r < 0)
            return NULL;
        if (!span) {
            span = sbuf_str(b);
            len = b->len;
        }
        if (p->flags & TOML_TAGGED)
            return scalar(p, "string", NULL, span, len);
        return json_stringn_nocheck(span, len);
    }
    case 't':
    case 'f':
        if (word_at(p, "true") || word_at(p, "false")) {
            bool t = c == 't';
            p->i += t ? 4 : 5;
            const char *text = t ? "true" : "false";
            return scalar(p, "bool", json_boolean(t), text, strlen(text));
        }
        UNEXPECTED(p, p->i, "a value");
        return NULL;
    case '[':
        return parse_array(p, depth, path);
    case '{': {
        json_t *t = json_object();
        meta_set(p, t, F_TABLE | F_DOTTED);
        if (parse_inline_table(p, t, depth, path) < 0) {
            json_decref(t);
            return NULL;
        }
        meta_set(p, t, F_TABLE | F_INLINE);
        return t;
    }
    default:
        break;
    }
    if (is_digit(c) && (digits_at(p, p->i, 4) >= 0 && at(p, p->i + 4) == '-'))
        return parse_datetime(p);
    if (is_digit(c) && digits_at(p, p->i, 2) >= 0 && at(p, p->i + 2) == ':')
        return parse_datetime(p);
    if (is_digit(c) || c == '+' || c == '-' || c == 'i' || c == 'n')
        return parse_number(p);
    UNEXPECTED(p, p->i, "a value");
    return NULL;
}

/* ---- key/value pairs and tables -------------------------------------- */

/* Walk the dotted parts of a key (all but the last) down from tbl, creating
 * tables as needed. *depth and path follow along. */
static json_t *walk_dotted(parser *p, json_t *tbl, const key_list *keys, int *depth, sbuf *path)
{
    for (size_t k = 0; k + 1 < keys->n; k++) {
        const key_seg *seg = &keys->v[k];
        path_add_key(p, path, seg);
        if (++*depth > MAX_DEPTH) {
            fail(p, seg->off, "tables nested too deeply");
            return NULL;
        }
        json_t *v = json_object_getn(tbl, seg->s, seg->len);
        if (!v) {
            v = json_object();
            meta_set(p, v, F_TABLE | F_DOTTED);
            json_object_setn_new_nocheck(tbl, seg->s, seg->len, v);
            loc_set(p, path, seg->off, true);
        } else if (is_table(p, v)) {
            unsigned f = meta_get(p, v);
            if (f & F_INLINE)
                return fail(p, seg->off, "cannot add to inline table \"%.*s\"", KEYARG(keys, seg)), NULL;
            if (f & F_HEADER)
                return fail(p, seg->off,
                            "cannot add to table \"%.*s\" with dotted keys: it is defined by a [header]",
                            KEYARG(keys, seg)), NULL;
            if (f & F_IMPLICIT)
                meta_set(p, v, F_TABLE | F_DOTTED);
        } else {
            return fail(p, seg->off, "key \"%.*s\" is already defined and is not a table", KEYARG(keys, seg)),
                   NULL;
        }
        tbl = v;
    }
    return tbl;
}

/* key = value, into tbl. p->i at the key. */
static int parse_keyval(parser *p, json_t *tbl, int depth, sbuf *path)
{
    key_list keys;
    keys_init(&keys);
    size_t base = path->len;
    int r = -1;
    if (parse_key(p, &keys) < 0)
        goto out;
    if (cur_ch(p) != '=') {
        UNEXPECTED(p, p->i, "'=' after a key");
        goto out;
    }
    p->i++;
    skip_ws(p);
    tbl = walk_dotted(p, tbl, &keys, &depth, path);
    if (!tbl)
        goto out;
    const key_seg *last = &keys.v[keys.n - 1];
    if (json_object_getn(tbl, last->s, last->len)) {
        fail(p, last->off, "duplicate key \"%.*s\"", KEYARG(&keys, last));
        goto out;
    }
    path_add_key(p, path, last);
    loc_set(p, path, last->off, true);
    if (cur_ch(p) < 0 || newline_at(p, p->i) || cur_ch(p) == '#') {
        UNEXPECTED(p, p->i, "a value");
        goto out;
    }
    json_t *v = parse_value(p, depth + 1, path);
    if (!v)
        goto out;
    json_object_setn_new_nocheck(tbl, last->s, last->len, v);
    r = 0;
out:
    path_truncate(path, base);
    keys_free(&keys);
    return r;
}

static int parse_inline_table(parser *p, json_t *tbl, int depth, sbuf *path)
{
    size_t start = p->i;
    if (depth > MAX_DEPTH)
        return fail(p, start, "arrays and tables nested too deeply");
    p->i++;
    skip_ws(p);
    if (cur_ch(p) == '}') {
        p->i++;
        return 0;
    }
    for (;;) {
        skip_ws(p);
        if (cur_ch(p) < 0)
            return fail(p, start, "unterminated inline table");
        if (newline_at(p, p->i))
            return fail(p, p->i, "newline in inline table");
        if (parse_keyval(p, tbl, depth, path) < 0)
            return -1;
        skip_ws(p);
        int c = cur_ch(p);
        if (c == '}') {
            p->i++;
            return 0;
        }
        if (c == ',') {
            p->i++;
            skip_ws(p);
            if (cur_ch(p) == '}')
                return fail(p, p->i, "trailing comma in inline table");
            continue;
        }
        if (c < 0)
            return fail(p, start, "unterminated inline table");
        if (newline_at(p, p->i))
            return fail(p, p->i, "newline in inline table");
        return UNEXPECTED(p, p->i, "',' or '}' in inline table");
    }
}

/* [a.b.c] or [[a.b.c]]; p->i at the first '['. */
static int parse_header(parser *p)
{
    size_t start = p->i;
    bool aot = at(p, p->i + 1) == '[';
    p->i += aot ? 2 : 1;
    key_list keys;
    keys_init(&keys);
    int r = -1;
    if (parse_key(p, &keys) < 0)
        goto out;
    if (cur_ch(p) != ']' || (aot && at(p, p->i + 1) != ']')) {
        UNEXPECTED(p, p->i, aot ? "']]' after a table name" : "']' after a table name");
        goto out;
    }
    p->i += aot ? 2 : 1;
    if (end_of_line(p) < 0)
        goto out;

    sbuf_reset(&p->path);
    sbuf *path = &p->path;
    json_t *tbl = p->root;
    int depth = 0;
    for (size_t k = 0; k < keys.n; k++) {
        const key_seg *seg = &keys.v[k];
        bool last = k + 1 == keys.n;
        path_add_key(p, path, seg);
        if (++depth > MAX_DEPTH) {
            fail(p, seg->off, "tables nested too deeply");
            goto out;
        }
        json_t *v = json_object_getn(tbl, seg->s, seg->len);
        if (last && aot) {
            if (!v) {
                v = json_array();
                meta_set(p, v, F_AOT);
                json_object_setn_new_nocheck(tbl, seg->s, seg->len, v);
                loc_set(p, path, start, true);
            } else if (!json_is_array(v) || !(meta_get(p, v) & F_AOT)) {
                fail(p, seg->off,
                     json_is_array(v) ? "cannot append to array \"%.*s\": it is not an array of tables"
                                      : "key \"%.*s\" is already defined and is not an array of tables",
                     KEYARG(&keys, seg));
                goto out;
            }
            json_t *t = json_object();
            meta_set(p, t, F_TABLE | F_HEADER);
            json_array_append_new(v, t);
            path_add_index(p, path, json_array_size(v) - 1);
            loc_set(p, path, start, true);
            tbl = t;
            depth++;
            break;
        }
        if (!v) {
            v = json_object();
            meta_set(p, v, F_TABLE | (last ? F_HEADER : F_IMPLICIT));
            json_object_setn_new_nocheck(tbl, seg->s, seg->len, v);
            loc_set(p, path, last ? start : seg->off, true);
        } else if (is_table(p, v)) {
            unsigned f = meta_get(p, v);
            if (f & F_INLINE) {
                fail(p, seg->off, "cannot add to inline table \"%.*s\"", KEYARG(&keys, seg));
                goto out;
            }
            if (last) {
                if (f & F_HEADER) {
                    fail(p, seg->off, "table [%.*s] is defined twice", KEYARG(&keys, seg));
                    goto out;
                }
                if (f & F_DOTTED) {
                    fail(p, seg->off, "table [%.*s] is already defined by dotted keys", KEYARG(&keys, seg));
                    goto out;
                }
                meta_set(p, v, F_TABLE | F_HEADER);
                loc_set(p, path, start, true);
            }
        } else if (json_is_array(v) && (meta_get(p, v) & F_AOT) && !last) {
            size_t nel = json_array_size(v);
            v = json_array_get(v, nel - 1);
            path_add_index(p, path, nel - 1);
            depth++;
        } else {
            fail(p, seg->off, "key \"%.*s\" is already defined and is not a table", KEYARG(&keys, seg));
            goto out;
        }
        tbl = v;
    }
    p->cur = tbl;
    p->cur_depth = depth;
    r = 0;
out:
    keys_free(&keys);
    return r;
}

static int parse_document(parser *p)
{
    for (;;) {
        skip_ws(p);
        int c = cur_ch(p);
        if (c < 0)
            return 0;
        if (c == '#') {
            skip_comment(p);
            continue;
        }
        size_t nl = newline_at(p, p->i);
        if (nl) {
            p->i += nl;
            continue;
        }
        if (c == '[') {
            if (parse_header(p) < 0)
                return -1;
            continue;
        }
        size_t base = p->path.len;
        int r = parse_keyval(p, p->cur, p->cur_depth, &p->path);
        path_truncate(&p->path, base);
        if (r < 0 || end_of_line(p) < 0)
            return -1;
    }
}

json_t *toml_parse(const char *text, size_t len, int flags, json_t *locs, toml_error *err)
{
    parser p = { .s = text ? text : "", .n = text ? len : 0, .flags = flags, .err = err };
    if (err)
        *err = (toml_error){ 0 };
    if (p.n >= 3 && memcmp(p.s, "\xEF\xBB\xBF", 3) == 0)
        p.i = 3;
    p.text_start = p.lc_off = p.i;
    p.lc_line = p.lc_col = 1;
    p.locs = json_is_object(locs) ? locs : NULL;
    p.root = json_object();
    meta_set(&p, p.root, F_TABLE | F_HEADER);
    p.cur = p.root;
    json_t *result = NULL;
    if (parse_document(&p) == 0) {
        result = p.root;
    } else {
        /* a character the text may not hold anywhere wins over the syntax error */
        p.failed = false;
        check_text(&p);
        json_decref(p.root);
    }
    sbuf_free(&p.path);
    sbuf_free(&p.scratch);
    for (size_t j = 0; j < p.nums_cap; j++)
        json_decref(p.nums[j]);
    free(p.nums);
    free(p.meta);
    return result;
}
