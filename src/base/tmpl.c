/* tmpl — a port of Go 1.19's text/template (lexer, parser, executor) and of
 * the parts of fmt and strconv it needs, over jansson values. See tmpl.h.
 *
 * The structure follows Go's sources closely (lex.go, parse.go, exec.go,
 * funcs.go, fmt/print.go, fmt/format.go) so behaviour, including error text,
 * can be checked line by line against them. Go's panics become longjmp to the
 * entry point; everything a parse or an execution allocates lives in an arena
 * freed in one go, so a longjmp never leaks.
 */
#include "tmpl.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds Go does not have (its stack grows); the error names them. */
#define MAX_EXEC_DEPTH 1000        /* nested {{template}} calls */
#define MAX_PARSE_DEPTH 400        /* nested control structures and parens */
#define MAX_EXEC_STEPS 20000000L   /* nodes walked and commands evaluated */
#define MAX_EXEC_BYTES ((size_t)256 << 20) /* output plus temporaries */
#define MAX_EXEC_STACK ((size_t)3 << 20)    /* C stack used by one execution */

/* ---------- arena ---------- */

typedef struct ablock {
    struct ablock *next;
    size_t used, cap;
    max_align_t data[];
} ablock;

typedef struct arena {
    ablock *head;
    size_t total;
} arena;

static void *aalloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        ablock *b = malloc(sizeof *b + cap);
        if (!b)
            abort();
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
        a->total += cap;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += n;
    memset(p, 0, n);
    return p;
}

static void afree(arena *a)
{
    for (ablock *b = a->head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    a->head = NULL;
    a->total = 0;
}

static char *astrndup(arena *a, const char *s, size_t n)
{
    char *p = aalloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

typedef struct str {
    const char *p;
    size_t n;
} str;

static int str_eq(str a, const char *b) { return strlen(b) == a.n && memcmp(a.p, b, a.n) == 0; }
static int str_eqs(str a, str b) { return a.n == b.n && memcmp(a.p, b.p, a.n) == 0; }

/* ---------- UTF-8 and unicode (approximations where Go uses tables) ---------- */

#define RUNE_ERROR 0xFFFD

/* utf8.DecodeRune: invalid input decodes as (RuneError, 1). n > 0. */
static int32_t decode_rune(const unsigned char *s, size_t n, int *w)
{
    unsigned c = s[0];
    *w = 1;
    if (c < 0x80)
        return (int32_t)c;
    int need;
    int32_t r, min;
    if (c >= 0xC2 && c <= 0xDF) { need = 1; r = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; r = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; r = c & 0x07; min = 0x10000; }
    else return RUNE_ERROR;
    if ((size_t)need >= n)
        return RUNE_ERROR;
    for (int i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return RUNE_ERROR;
        r = (r << 6) | (s[i] & 0x3F);
    }
    if (r < min || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF))
        return RUNE_ERROR;
    *w = need + 1;
    return r;
}

static int encode_rune(char *buf, int32_t r)
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

static size_t rune_count(const char *s, size_t n)
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

static int is_alnum(int32_t r) { return r == '_' || is_letter(r) || is_digit(r); }
static int is_space(int32_t r) { return r == ' ' || r == '\t' || r == '\r' || r == '\n'; }

/* strconv.IsPrint, approximated outside ASCII by excluding the usual
 * control, format and separator ranges. */
static int is_print(int32_t r)
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

static void go_quote(sbuf *b, const char *s, size_t n, int ascii)
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

static void go_quote_rune(sbuf *b, int32_t r, int ascii)
{
    if (r < 0 || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF))
        r = RUNE_ERROR;
    sbuf_addc(b, '\'');
    quote_rune_into(b, r, 0, NULL, '\'', ascii);
    sbuf_addc(b, '\'');
}

/* fmt's %#U: U+0041 'A' */
static void go_unicode_sharp(sbuf *b, int32_t r)
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
static int unquote_char(const char *s, size_t n, char quote, int32_t *value, int *multibyte, size_t *used)
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
    for (size_t i = 0; i < n;) {
        int w;
        int32_t r = decode_rune((const unsigned char *)s + i, n - i, &w);
        if (r == RUNE_ERROR && w == 1)
            return 0;
        i += (size_t)w;
    }
    return 1;
}

/* strconv.Unquote for "..." and `...` literals. */
static int go_unquote(arena *a, const char *in, size_t n, str *out)
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

/* ---------- lexer (lex.go) ---------- */

enum itype {
    I_ERROR, I_BOOL, I_CHAR, I_CHARCONST, I_COMMENT, I_COMPLEX, I_ASSIGN, I_DECLARE, I_EOF,
    I_FIELD, I_IDENT, I_LEFTDELIM, I_LEFTPAREN, I_NUMBER, I_PIPE, I_RAWSTRING, I_RIGHTDELIM,
    I_RIGHTPAREN, I_SPACE, I_STRING, I_TEXT, I_VARIABLE,
    I_KEYWORD, I_BLOCK, I_BREAK, I_CONTINUE, I_DOT, I_DEFINE, I_ELSE, I_END, I_IF, I_NIL,
    I_RANGE, I_TEMPLATE, I_WITH,
};

typedef struct item {
    int typ;
    int pos;
    str val;
    int line;
} item;

enum lstate {
    LS_DONE, LS_TEXT, LS_LEFTDELIM, LS_COMMENT, LS_RIGHTDELIM, LS_INSIDE, LS_SPACE, LS_IDENT,
    LS_FIELD, LS_VARIABLE, LS_CHAR, LS_NUMBER, LS_QUOTE, LS_RAWQUOTE,
};

typedef struct lexer {
    arena *a;
    const char *input;
    size_t len;
    size_t pos, start;
    int at_eof;
    int lastw;
    int paren_depth;
    int line, start_line;
    int state;
    item q[4];
    int qhead, qn;
} lexer;

#define EOFR (-1)

static int32_t lx_next(lexer *l)
{
    if (l->pos >= l->len) {
        l->at_eof = 1;
        return EOFR;
    }
    int w;
    int32_t r = decode_rune((const unsigned char *)l->input + l->pos, l->len - l->pos, &w);
    l->pos += (size_t)w;
    l->lastw = w;
    if (r == '\n')
        l->line++;
    return r;
}

static void lx_backup(lexer *l)
{
    if (!l->at_eof && l->pos > 0) {
        l->pos -= (size_t)l->lastw;
        if (l->input[l->pos] == '\n')
            l->line--;
    }
}

static int32_t lx_peek(lexer *l)
{
    int32_t r = lx_next(l);
    lx_backup(l);
    return r;
}

static void lx_push(lexer *l, item it)
{
    l->q[(l->qhead + l->qn) % 4] = it;
    l->qn++;
}

static void lx_emit(lexer *l, int t)
{
    item it = { t, (int)l->start, { l->input + l->start, l->pos - l->start }, l->start_line };
    lx_push(l, it);
    l->start = l->pos;
    l->start_line = l->line;
}

static int count_nl(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += s[i] == '\n';
    return c;
}

static void lx_ignore(lexer *l)
{
    l->line += count_nl(l->input + l->start, l->pos - l->start);
    l->start = l->pos;
    l->start_line = l->line;
}

static int lx_accept(lexer *l, const char *valid)
{
    int32_t r = lx_next(l);
    if (r > 0 && r < 0x80 && strchr(valid, (int)r))
        return 1;
    lx_backup(l);
    return 0;
}

static void lx_accept_run(lexer *l, const char *valid)
{
    for (;;) {
        int32_t r = lx_next(l);
        if (!(r > 0 && r < 0x80 && strchr(valid, (int)r)))
            break;
    }
    lx_backup(l);
}

static int lx_errorf(lexer *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lx_errorf(lexer *l, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t n = strlen(buf);
    item it = { I_ERROR, (int)l->start, { astrndup(l->a, buf, n), n }, l->start_line };
    lx_push(l, it);
    return LS_DONE;
}

/* error with a %#U or %q argument formatted the Go way */
static int lx_error_rune(lexer *l, const char *prefix, int32_t r)
{
    sbuf b = SBUF_INIT;
    sbuf_adds(&b, prefix);
    go_unicode_sharp(&b, r);
    int st = lx_errorf(l, "%s", sbuf_str(&b));
    sbuf_free(&b);
    return st;
}

static int lx_error_quoted(lexer *l, const char *prefix, const char *s, size_t n)
{
    sbuf b = SBUF_INIT;
    sbuf_adds(&b, prefix);
    go_quote(&b, s, n, 0);
    int st = lx_errorf(l, "%s", sbuf_str(&b));
    sbuf_free(&b);
    return st;
}

static int has_prefix(const char *s, size_t n, const char *p)
{
    size_t k = strlen(p);
    return n >= k && memcmp(s, p, k) == 0;
}

static int has_left_trim(const char *s, size_t n) { return n >= 2 && s[0] == '-' && is_space((unsigned char)s[1]); }
static int has_right_trim(const char *s, size_t n) { return n >= 2 && is_space((unsigned char)s[0]) && s[1] == '-'; }

#define REST(l, p) ((l)->input + (p)), ((l)->len - (p))

static int lex_text(lexer *l)
{
    const char *x = strstr(l->input + l->pos, "{{");
    if (x) {
        l->pos = (size_t)(x - l->input);
        size_t trim = 0;
        if (has_left_trim(REST(l, l->pos + 2))) {
            size_t k = l->pos;
            while (k > l->start && is_space((unsigned char)l->input[k - 1]))
                k--;
            trim = l->pos - k;
        }
        l->pos -= trim;
        if (l->pos > l->start) {
            l->line += count_nl(l->input + l->start, l->pos - l->start);
            lx_emit(l, I_TEXT);
        }
        l->pos += trim;
        lx_ignore(l);
        return LS_LEFTDELIM;
    }
    l->pos = l->len;
    if (l->pos > l->start) {
        l->line += count_nl(l->input + l->start, l->pos - l->start);
        lx_emit(l, I_TEXT);
    }
    lx_emit(l, I_EOF);
    return LS_DONE;
}

static void at_right_delim(lexer *l, int *delim, int *trim)
{
    *delim = *trim = 0;
    if (has_right_trim(REST(l, l->pos)) && has_prefix(REST(l, l->pos + 2), "}}")) {
        *delim = *trim = 1;
        return;
    }
    if (has_prefix(REST(l, l->pos), "}}"))
        *delim = 1;
}

static size_t left_trim_len(lexer *l, size_t p)
{
    size_t k = p;
    while (k < l->len && is_space((unsigned char)l->input[k]))
        k++;
    return k - p;
}

static int lex_left_delim(lexer *l)
{
    l->pos += 2;
    int trim = has_left_trim(REST(l, l->pos));
    size_t after = trim ? 2 : 0;
    if (l->pos + after <= l->len && has_prefix(REST(l, l->pos + after), "/*")) {
        l->pos += after;
        lx_ignore(l);
        return LS_COMMENT;
    }
    lx_emit(l, I_LEFTDELIM);
    l->pos += after;
    lx_ignore(l);
    l->paren_depth = 0;
    return LS_INSIDE;
}

static int lex_comment(lexer *l)
{
    l->pos += 2;
    const char *e = strstr(l->input + l->pos, "*/");
    if (!e)
        return lx_errorf(l, "unclosed comment");
    l->pos = (size_t)(e - l->input) + 2;
    int delim, trim;
    at_right_delim(l, &delim, &trim);
    if (!delim)
        return lx_errorf(l, "comment ends before closing delimiter");
    if (trim)
        l->pos += 2;
    l->pos += 2;
    if (trim)
        l->pos += left_trim_len(l, l->pos);
    lx_ignore(l);
    return LS_TEXT;
}

static int lex_right_delim(lexer *l)
{
    int trim = has_right_trim(REST(l, l->pos));
    if (trim) {
        l->pos += 2;
        lx_ignore(l);
    }
    l->pos += 2;
    lx_emit(l, I_RIGHTDELIM);
    if (trim) {
        l->pos += left_trim_len(l, l->pos);
        lx_ignore(l);
    }
    return LS_TEXT;
}

static int lex_inside(lexer *l)
{
    int delim, trim;
    at_right_delim(l, &delim, &trim);
    if (delim) {
        if (l->paren_depth == 0)
            return LS_RIGHTDELIM;
        return lx_errorf(l, "unclosed left paren");
    }
    int32_t r = lx_next(l);
    if (r == EOFR)
        return lx_errorf(l, "unclosed action");
    if (is_space(r)) {
        lx_backup(l);
        return LS_SPACE;
    }
    switch (r) {
    case '=': lx_emit(l, I_ASSIGN); return LS_INSIDE;
    case ':':
        if (lx_next(l) != '=')
            return lx_errorf(l, "expected :=");
        lx_emit(l, I_DECLARE);
        return LS_INSIDE;
    case '|': lx_emit(l, I_PIPE); return LS_INSIDE;
    case '"': return LS_QUOTE;
    case '`': return LS_RAWQUOTE;
    case '$': return LS_VARIABLE;
    case '\'': return LS_CHAR;
    case '.':
        if (l->pos < l->len) {
            char c = l->input[l->pos];
            if (c < '0' || c > '9')
                return LS_FIELD;
        }
        lx_backup(l);
        return LS_NUMBER;
    case '(':
        lx_emit(l, I_LEFTPAREN);
        l->paren_depth++;
        return LS_INSIDE;
    case ')':
        lx_emit(l, I_RIGHTPAREN);
        l->paren_depth--;
        if (l->paren_depth < 0)
            return lx_error_rune(l, "unexpected right paren ", r);
        return LS_INSIDE;
    }
    if (r == '+' || r == '-' || (r >= '0' && r <= '9')) {
        lx_backup(l);
        return LS_NUMBER;
    }
    if (is_alnum(r)) {
        lx_backup(l);
        return LS_IDENT;
    }
    if (r < 0x80 && is_print(r)) {
        lx_emit(l, I_CHAR);
        return LS_INSIDE;
    }
    return lx_error_rune(l, "unrecognized character in action: ", r);
}

static int lex_space(lexer *l)
{
    int n = 0;
    for (;;) {
        int32_t r = lx_peek(l);
        if (!is_space(r))
            break;
        lx_next(l);
        n++;
    }
    if (has_right_trim(REST(l, l->pos - 1)) && has_prefix(REST(l, l->pos + 1), "}}")) {
        lx_backup(l);
        if (n == 1)
            return LS_RIGHTDELIM;
    }
    lx_emit(l, I_SPACE);
    return LS_INSIDE;
}

static int at_terminator(lexer *l)
{
    int32_t r = lx_peek(l);
    if (is_space(r))
        return 1;
    switch (r) {
    case EOFR: case '.': case ',': case '|': case ':': case ')': case '(':
        return 1;
    }
    return has_prefix(REST(l, l->pos), "}}");
}

static const struct { const char *w; int t; } keywords[] = {
    { "block", I_BLOCK }, { "break", I_BREAK }, { "continue", I_CONTINUE }, { "define", I_DEFINE },
    { "else", I_ELSE }, { "end", I_END }, { "if", I_IF }, { "range", I_RANGE }, { "nil", I_NIL },
    { "template", I_TEMPLATE }, { "with", I_WITH },
};

static int lex_ident(lexer *l)
{
    int32_t r;
    for (;;) {
        r = lx_next(l);
        if (!is_alnum(r))
            break;
    }
    lx_backup(l);
    str word = { l->input + l->start, l->pos - l->start };
    if (!at_terminator(l))
        return lx_error_rune(l, "bad character ", r);
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (str_eq(word, keywords[i].w)) {
            lx_emit(l, keywords[i].t);
            return LS_INSIDE;
        }
    if (str_eq(word, "true") || str_eq(word, "false"))
        lx_emit(l, I_BOOL);
    else
        lx_emit(l, I_IDENT);
    return LS_INSIDE;
}

static int lex_field_or_var(lexer *l, int typ)
{
    if (at_terminator(l)) {
        lx_emit(l, typ == I_VARIABLE ? I_VARIABLE : I_DOT);
        return LS_INSIDE;
    }
    int32_t r;
    for (;;) {
        r = lx_next(l);
        if (!is_alnum(r)) {
            lx_backup(l);
            break;
        }
    }
    if (!at_terminator(l))
        return lx_error_rune(l, "bad character ", r);
    lx_emit(l, typ);
    return LS_INSIDE;
}

static int lex_variable(lexer *l)
{
    if (at_terminator(l)) {
        lx_emit(l, I_VARIABLE);
        return LS_INSIDE;
    }
    return lex_field_or_var(l, I_VARIABLE);
}

/* A quoted constant up to its closing delim, with backslash escapes (Go's
 * lexChar and lexQuote). */
static int lex_escaped(lexer *l, int32_t delim, int item, const char *what)
{
    for (;;) {
        int32_t r = lx_next(l);
        if (r == '\\') {
            r = lx_next(l);
            if (r != EOFR && r != '\n')
                continue;
            return lx_errorf(l, "unterminated %s", what);
        }
        if (r == EOFR || r == '\n')
            return lx_errorf(l, "unterminated %s", what);
        if (r == delim)
            break;
    }
    lx_emit(l, item);
    return LS_INSIDE;
}

static int lex_char(lexer *l) { return lex_escaped(l, '\'', I_CHARCONST, "character constant"); }

static int scan_number(lexer *l)
{
    lx_accept(l, "+-");
    const char *digits = "0123456789_";
    if (lx_accept(l, "0")) {
        if (lx_accept(l, "xX"))
            digits = "0123456789abcdefABCDEF_";
        else if (lx_accept(l, "oO"))
            digits = "01234567_";
        else if (lx_accept(l, "bB"))
            digits = "01_";
    }
    lx_accept_run(l, digits);
    if (lx_accept(l, "."))
        lx_accept_run(l, digits);
    if (strlen(digits) == 11 && lx_accept(l, "eE")) {
        lx_accept(l, "+-");
        lx_accept_run(l, "0123456789_");
    }
    if (strlen(digits) == 23 && lx_accept(l, "pP")) {
        lx_accept(l, "+-");
        lx_accept_run(l, "0123456789_");
    }
    lx_accept(l, "i");
    if (is_alnum(lx_peek(l))) {
        lx_next(l);
        return 0;
    }
    return 1;
}

static int lex_number(lexer *l)
{
    if (!scan_number(l))
        return lx_error_quoted(l, "bad number syntax: ", l->input + l->start, l->pos - l->start);
    int32_t sign = lx_peek(l);
    if (sign == '+' || sign == '-') {
        if (!scan_number(l) || l->input[l->pos - 1] != 'i')
            return lx_error_quoted(l, "bad number syntax: ", l->input + l->start, l->pos - l->start);
        lx_emit(l, I_COMPLEX);
    } else {
        lx_emit(l, I_NUMBER);
    }
    return LS_INSIDE;
}

static int lex_quote(lexer *l) { return lex_escaped(l, '"', I_STRING, "quoted string"); }

static int lex_raw_quote(lexer *l)
{
    for (;;) {
        int32_t r = lx_next(l);
        if (r == EOFR)
            return lx_errorf(l, "unterminated raw quoted string");
        if (r == '`')
            break;
    }
    lx_emit(l, I_RAWSTRING);
    return LS_INSIDE;
}

static item lx_item(lexer *l)
{
    while (l->qn == 0) {
        switch (l->state) {
        case LS_DONE: {
            item z = { I_ERROR, 0, { "", 0 }, 0 };
            return z;
        }
        case LS_TEXT: l->state = lex_text(l); break;
        case LS_LEFTDELIM: l->state = lex_left_delim(l); break;
        case LS_COMMENT: l->state = lex_comment(l); break;
        case LS_RIGHTDELIM: l->state = lex_right_delim(l); break;
        case LS_INSIDE: l->state = lex_inside(l); break;
        case LS_SPACE: l->state = lex_space(l); break;
        case LS_IDENT: l->state = lex_ident(l); break;
        case LS_FIELD: l->state = lex_field_or_var(l, I_FIELD); break;
        case LS_VARIABLE: l->state = lex_variable(l); break;
        case LS_CHAR: l->state = lex_char(l); break;
        case LS_NUMBER: l->state = lex_number(l); break;
        case LS_QUOTE: l->state = lex_quote(l); break;
        case LS_RAWQUOTE: l->state = lex_raw_quote(l); break;
        }
    }
    item it = l->q[l->qhead];
    l->qhead = (l->qhead + 1) % 4;
    l->qn--;
    return it;
}

/* ---------- parse tree (parse/node.go) ---------- */

enum ntype {
    N_TEXT, N_ACTION, N_BOOL, N_CHAIN, N_COMMAND, N_DOT, N_FIELD, N_IDENT, N_IF, N_LIST, N_NIL,
    N_NUMBER, N_PIPE, N_RANGE, N_STRING, N_TEMPLATE, N_VARIABLE, N_WITH, N_COMMENT, N_BREAK,
    N_CONTINUE, N_END, N_ELSE,
};

typedef struct node node;
typedef struct nvec {
    node **v;
    int n, cap;
} nvec;

struct node {
    int type, pos, line;
    str text;          /* TEXT, COMMENT, IDENT, STRING (unquoted), NUMBER, TEMPLATE name */
    str quoted;        /* STRING as written */
    nvec list;         /* LIST nodes, COMMAND args, PIPE commands */
    nvec decl;         /* PIPE declared variables */
    int is_assign;
    str *ident;        /* FIELD, VARIABLE idents; CHAIN fields */
    int nident;
    node *sub;         /* CHAIN term; ACTION/branch/TEMPLATE pipe */
    node *blist, *belse;
    int b;
    int isint, isuint, isfloat, iscomplex;
    int64_t i64;
    uint64_t u64;
    double f64, cre, cim;
};

typedef struct ttree {
    str name;
    node *root;
} ttree;

struct tmpl {
    arena a;
    const char *name;   /* ParseName: the name given to tmpl_parse */
    const char *text;
    ttree **trees;
    int ntrees, cap;
};

static void nvec_add(arena *a, nvec *v, node *n)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 4;
        node **nv = aalloc(a, sizeof *nv * (size_t)cap);
        if (v->n)
            memcpy(nv, v->v, sizeof *nv * (size_t)v->n);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = n;
}

static void node_string(sbuf *b, const node *n);

static void idents_string(sbuf *b, const node *n, int lead_dot)
{
    for (int i = 0; i < n->nident; i++) {
        if (i > 0 || lead_dot)
            sbuf_addc(b, '.');
        sbuf_add(b, n->ident[i].p, n->ident[i].n);
    }
}

static void node_string(sbuf *b, const node *n)
{
    switch (n->type) {
    case N_TEXT: sbuf_add(b, n->text.p, n->text.n); break;
    case N_COMMENT: sbuf_adds(b, "{{"); sbuf_add(b, n->text.p, n->text.n); sbuf_adds(b, "}}"); break;
    case N_ACTION: sbuf_adds(b, "{{"); node_string(b, n->sub); sbuf_adds(b, "}}"); break;
    case N_BOOL: sbuf_adds(b, n->b ? "true" : "false"); break;
    case N_CHAIN:
        if (n->sub->type == N_PIPE) {
            sbuf_addc(b, '(');
            node_string(b, n->sub);
            sbuf_addc(b, ')');
        } else {
            node_string(b, n->sub);
        }
        idents_string(b, n, 1);
        break;
    case N_COMMAND:
        for (int i = 0; i < n->list.n; i++) {
            if (i > 0)
                sbuf_addc(b, ' ');
            if (n->list.v[i]->type == N_PIPE) {
                sbuf_addc(b, '(');
                node_string(b, n->list.v[i]);
                sbuf_addc(b, ')');
            } else {
                node_string(b, n->list.v[i]);
            }
        }
        break;
    case N_DOT: sbuf_addc(b, '.'); break;
    case N_FIELD: idents_string(b, n, 1); break;
    case N_VARIABLE: idents_string(b, n, 0); break;
    case N_IDENT: sbuf_add(b, n->text.p, n->text.n); break;
    case N_NIL: sbuf_adds(b, "nil"); break;
    case N_NUMBER: sbuf_add(b, n->text.p, n->text.n); break;
    case N_STRING: sbuf_add(b, n->quoted.p, n->quoted.n); break;
    case N_LIST:
        for (int i = 0; i < n->list.n; i++)
            node_string(b, n->list.v[i]);
        break;
    case N_PIPE:
        if (n->decl.n > 0) {
            for (int i = 0; i < n->decl.n; i++) {
                if (i > 0)
                    sbuf_adds(b, ", ");
                node_string(b, n->decl.v[i]);
            }
            sbuf_adds(b, " := ");
        }
        for (int i = 0; i < n->list.n; i++) {
            if (i > 0)
                sbuf_adds(b, " | ");
            node_string(b, n->list.v[i]);
        }
        break;
    case N_IF: case N_RANGE: case N_WITH:
        sbuf_adds(b, n->type == N_IF ? "{{if " : n->type == N_RANGE ? "{{range " : "{{with ");
        node_string(b, n->sub);
        sbuf_adds(b, "}}");
        node_string(b, n->blist);
        if (n->belse) {
            sbuf_adds(b, "{{else}}");
            node_string(b, n->belse);
        }
        sbuf_adds(b, "{{end}}");
        break;
    case N_TEMPLATE:
        sbuf_adds(b, "{{template ");
        go_quote(b, n->text.p, n->text.n, 0);
        if (n->sub) {
            sbuf_addc(b, ' ');
            node_string(b, n->sub);
        }
        sbuf_adds(b, "}}");
        break;
    case N_BREAK: sbuf_adds(b, "{{break}}"); break;
    case N_CONTINUE: sbuf_adds(b, "{{continue}}"); break;
    case N_END: sbuf_adds(b, "{{end}}"); break;
    case N_ELSE: sbuf_adds(b, "{{else}}"); break;
    }
}

/* ---------- parser (parse/parse.go) ---------- */

typedef struct pctx {
    tmpl *t;
    lexer *lex;
    jmp_buf *jb;
    tmpl_error *err;
    int depth;
} pctx;

typedef struct parser {
    pctx *c;
    str name;
    node *root;
    item token[3];
    int peek_count;
    str *vars;
    int nvars, capvars;
    int action_line;
    int range_depth;
} parser;

static node *p_new(parser *p, int type, int pos)
{
    node *n = aalloc(&p->c->t->a, sizeof *n);
    n->type = type;
    n->pos = pos;
    return n;
}

static void p_fail(parser *p, const char *msg) __attribute__((noreturn));
static void p_fail(parser *p, const char *msg)
{
    snprintf(p->c->err->msg, sizeof p->c->err->msg, "template: %s:%d: %s", p->c->t->name, p->token[0].line, msg);
    longjmp(*p->c->jb, 1);
}

static void p_errorf(parser *p, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void p_errorf(parser *p, const char *fmt, ...)
{
    char buf[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    p_fail(p, buf);
}

static item p_next(parser *p)
{
    if (p->peek_count > 0)
        p->peek_count--;
    else
        p->token[0] = lx_item(p->c->lex);
    return p->token[p->peek_count];
}

static void p_backup(parser *p) { p->peek_count++; }
static void p_backup2(parser *p, item t1) { p->token[1] = t1; p->peek_count = 2; }
static void p_backup3(parser *p, item t2, item t1) { p->token[1] = t1; p->token[2] = t2; p->peek_count = 3; }

static item p_peek(parser *p)
{
    if (p->peek_count > 0)
        return p->token[p->peek_count - 1];
    p->peek_count = 1;
    p->token[0] = lx_item(p->c->lex);
    return p->token[0];
}

static item p_next_nonspace(parser *p)
{
    item t;
    do
        t = p_next(p);
    while (t.typ == I_SPACE);
    return t;
}

static item p_peek_nonspace(parser *p)
{
    item t = p_next_nonspace(p);
    p_backup(p);
    return t;
}

/* item.String() */
static void item_string(sbuf *b, item it)
{
    if (it.typ == I_EOF) {
        sbuf_adds(b, "EOF");
    } else if (it.typ == I_ERROR) {
        sbuf_add(b, it.val.p, it.val.n);
    } else if (it.typ > I_KEYWORD) {
        sbuf_addc(b, '<');
        sbuf_add(b, it.val.p, it.val.n);
        sbuf_addc(b, '>');
    } else if (rune_count(it.val.p, it.val.n) > 10) {
        size_t i = 0;
        for (int k = 0; k < 10; k++) {
            int w;
            decode_rune((const unsigned char *)it.val.p + i, it.val.n - i, &w);
            i += (size_t)w;
        }
        go_quote(b, it.val.p, i, 0);
        sbuf_adds(b, "...");
    } else {
        go_quote(b, it.val.p, it.val.n, 0);
    }
}

static void p_unexpected(parser *p, item tok, const char *context) __attribute__((noreturn));
static void p_unexpected(parser *p, item tok, const char *context)
{
    sbuf b = SBUF_INIT;
    char msg[900];
    if (tok.typ == I_ERROR) {
        item_string(&b, tok);
        if (p->action_line != 0 && p->action_line != tok.line) {
            int action = b.len >= 7 && memcmp(b.buf + b.len - 7, " action", 7) == 0;
            sbuf_addf(&b, "%s started at %s:%d", action ? "" : " in action", p->c->t->name, p->action_line);
        }
        snprintf(msg, sizeof msg, "%s", sbuf_str(&b));
    } else {
        sbuf_adds(&b, "unexpected ");
        item_string(&b, tok);
        snprintf(msg, sizeof msg, "%s in %s", sbuf_str(&b), context);
    }
    sbuf_free(&b);
    p_fail(p, msg);
}

static item p_expect(parser *p, int typ, const char *context)
{
    item t = p_next_nonspace(p);
    if (t.typ != typ)
        p_unexpected(p, t, context);
    return t;
}

static void p_init(parser *p, pctx *c, str name)
{
    memset(p, 0, sizeof *p);
    p->c = c;
    p->name = name;
    p->capvars = 8;
    p->vars = aalloc(&c->t->a, sizeof *p->vars * 8);
    p->vars[0] = (str){ "$", 1 };
    p->nvars = 1;
}

static void p_push_var(parser *p, str v)
{
    if (p->nvars == p->capvars) {
        str *nv = aalloc(&p->c->t->a, sizeof *nv * (size_t)p->capvars * 2);
        memcpy(nv, p->vars, sizeof *nv * (size_t)p->nvars);
        p->vars = nv;
        p->capvars *= 2;
    }
    p->vars[p->nvars++] = v;
}

static int is_empty_tree(const node *n)
{
    if (!n)
        return 1;
    switch (n->type) {
    case N_COMMENT: return 1;
    case N_LIST:
        for (int i = 0; i < n->list.n; i++)
            if (!is_empty_tree(n->list.v[i]))
                return 0;
        return 1;
    case N_TEXT:
        for (size_t i = 0; i < n->text.n; i++) {
            unsigned char ch = (unsigned char)n->text.p[i];
            /* bytes.TrimSpace: ASCII white space plus U+0085, U+00A0 */
            if (!(ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r'))
                return 0;
        }
        return 1;
    }
    return 0;
}

static ttree *tmpl_lookup(const tmpl *t, str name)
{
    for (int i = 0; i < t->ntrees; i++)
        if (str_eqs(t->trees[i]->name, name))
            return t->trees[i];
    return NULL;
}

static void p_add(parser *p)
{
    tmpl *t = p->c->t;
    ttree *tr = tmpl_lookup(t, p->name);
    if (!tr || is_empty_tree(tr->root)) {
        if (!tr) {
            if (t->ntrees == t->cap) {
                int cap = t->cap ? t->cap * 2 : 8;
                ttree **nt = aalloc(&t->a, sizeof *nt * (size_t)cap);
                if (t->ntrees)
                    memcpy(nt, t->trees, sizeof *nt * (size_t)t->ntrees);
                t->trees = nt;
                t->cap = cap;
            }
            tr = aalloc(&t->a, sizeof *tr);
            tr->name = p->name;
            t->trees[t->ntrees++] = tr;
        }
        tr->root = p->root;
        return;
    }
    if (!is_empty_tree(p->root)) {
        sbuf b = SBUF_INIT;
        sbuf_adds(&b, "template: multiple definition of template ");
        go_quote(&b, p->name.p, p->name.n, 0);
        char msg[900];
        snprintf(msg, sizeof msg, "%s", sbuf_str(&b));
        sbuf_free(&b);
        p_fail(p, msg);
    }
}

static node *p_text_or_action(parser *p);
static void p_item_list(parser *p, node **list, node **next);
static node *p_pipeline(parser *p, const char *context, int end);

static void p_enter(parser *p)
{
    if (++p->c->depth > MAX_PARSE_DEPTH)
        p_errorf(p, "nesting too deep (more than %d levels)", MAX_PARSE_DEPTH);
}

static str p_unquote(parser *p, item tok)
{
    str s;
    if (go_unquote(&p->c->t->a, tok.val.p, tok.val.n, &s) < 0)
        p_fail(p, "invalid syntax");
    return s;
}

static void p_parse_definition(parser *p)
{
    const char *context = "define clause";
    item name = p_next_nonspace(p);
    if (name.typ != I_STRING && name.typ != I_RAWSTRING)
        p_unexpected(p, name, context);
    p->name = p_unquote(p, name);
    p_expect(p, I_RIGHTDELIM, context);
    node *end;
    p_item_list(p, &p->root, &end);
    if (end->type != N_END) {
        sbuf b = SBUF_INIT;
        node_string(&b, end);
        char msg[900];
        snprintf(msg, sizeof msg, "unexpected %s in %s", sbuf_str(&b), context);
        sbuf_free(&b);
        p_fail(p, msg);
    }
    p_add(p);
}

static void p_parse(parser *p)
{
    p->root = p_new(p, N_LIST, p_peek(p).pos);
    while (p_peek(p).typ != I_EOF) {
        if (p_peek(p).typ == I_LEFTDELIM) {
            item delim = p_next(p);
            if (p_next_nonspace(p).typ == I_DEFINE) {
                parser nt;
                p_init(&nt, p->c, (str){ "definition", 10 });
                p_parse_definition(&nt);
                continue;
            }
            p_backup2(p, delim);
        }
        node *n = p_text_or_action(p);
        if (n->type == N_END || n->type == N_ELSE) {
            sbuf b = SBUF_INIT;
            node_string(&b, n);
            char msg[900];
            snprintf(msg, sizeof msg, "unexpected %s", sbuf_str(&b));
            sbuf_free(&b);
            p_fail(p, msg);
        }
        nvec_add(&p->c->t->a, &p->root->list, n);
    }
}

static void p_item_list(parser *p, node **list, node **next)
{
    *list = p_new(p, N_LIST, p_peek_nonspace(p).pos);
    while (p_peek_nonspace(p).typ != I_EOF) {
        node *n = p_text_or_action(p);
        if (n->type == N_END || n->type == N_ELSE) {
            *next = n;
            return;
        }
        nvec_add(&p->c->t->a, &(*list)->list, n);
    }
    p_errorf(p, "unexpected EOF");
}

static node *p_action(parser *p);

static node *p_text_or_action(parser *p)
{
    item tok = p_next_nonspace(p);
    switch (tok.typ) {
    case I_TEXT: {
        node *n = p_new(p, N_TEXT, tok.pos);
        n->text = tok.val;
        return n;
    }
    case I_LEFTDELIM: {
        p->action_line = tok.line;
        node *n = p_action(p);
        p->action_line = 0;
        return n;
    }
    case I_COMMENT: {
        node *n = p_new(p, N_COMMENT, tok.pos);
        n->text = tok.val;
        return n;
    }
    }
    p_unexpected(p, tok, "input");
}

static node *p_control(parser *p, int type, int allow_else_if, const char *context);
static node *p_block(parser *p);
static node *p_template(parser *p);

static node *p_action(parser *p)
{
    item tok = p_next_nonspace(p);
    node *n;
    switch (tok.typ) {
    case I_BLOCK: return p_block(p);
    case I_BREAK: case I_CONTINUE: {
        const char *what = tok.typ == I_BREAK ? "{{break}}" : "{{continue}}";
        item t2 = p_next_nonspace(p);
        if (t2.typ != I_RIGHTDELIM)
            p_unexpected(p, t2, what);
        if (p->range_depth == 0)
            p_errorf(p, "%s outside {{range}}", what);
        n = p_new(p, tok.typ == I_BREAK ? N_BREAK : N_CONTINUE, tok.pos);
        n->line = tok.line;
        return n;
    }
    case I_ELSE: {
        item pk = p_peek_nonspace(p);
        if (pk.typ == I_IF) {
            n = p_new(p, N_ELSE, pk.pos);
            n->line = pk.line;
            return n;
        }
        item t2 = p_expect(p, I_RIGHTDELIM, "else");
        n = p_new(p, N_ELSE, t2.pos);
        n->line = t2.line;
        return n;
    }
    case I_END: {
        item t2 = p_expect(p, I_RIGHTDELIM, "end");
        return p_new(p, N_END, t2.pos);
    }
    case I_IF: return p_control(p, N_IF, 1, "if");
    case I_RANGE: return p_control(p, N_RANGE, 0, "range");
    case I_TEMPLATE: return p_template(p);
    case I_WITH: return p_control(p, N_WITH, 0, "with");
    }
    p_backup(p);
    item t = p_peek(p);
    n = p_new(p, N_ACTION, t.pos);
    n->line = t.line;
    n->sub = p_pipeline(p, "command", I_RIGHTDELIM);
    return n;
}

static node *p_new_var(parser *p, int pos, str name)
{
    node *n = p_new(p, N_VARIABLE, pos);
    int cnt = 1;
    for (size_t i = 0; i < name.n; i++)
        cnt += name.p[i] == '.';
    n->ident = aalloc(&p->c->t->a, sizeof *n->ident * (size_t)cnt);
    size_t s = 0;
    for (size_t i = 0; i <= name.n; i++)
        if (i == name.n || name.p[i] == '.') {
            n->ident[n->nident++] = (str){ name.p + s, i - s };
            s = i + 1;
        }
    return n;
}

static node *p_new_field(parser *p, int pos, str name)
{
    /* name starts with '.' */
    node *n = p_new_var(p, pos, (str){ name.p + 1, name.n - 1 });
    n->type = N_FIELD;
    return n;
}

static node *p_command(parser *p);

static void p_check_pipeline(parser *p, node *pipe, const char *context)
{
    if (pipe->list.n == 0)
        p_errorf(p, "missing value for %s", context);
    for (int i = 1; i < pipe->list.n; i++) {
        switch (pipe->list.v[i]->list.v[0]->type) {
        case N_BOOL: case N_DOT: case N_NIL: case N_NUMBER: case N_STRING:
            p_errorf(p, "non executable command in pipeline stage %d", i + 1);
        }
    }
}

static node *p_pipeline(parser *p, const char *context, int end)
{
    p_enter(p);
    item tok = p_peek_nonspace(p);
    node *pipe = p_new(p, N_PIPE, tok.pos);
    pipe->line = tok.line;
    for (;;) {
        item v = p_peek_nonspace(p);
        if (v.typ != I_VARIABLE)
            break;
        p_next(p);
        item after = p_peek(p);
        item next = p_peek_nonspace(p);
        if (next.typ == I_ASSIGN || next.typ == I_DECLARE) {
            pipe->is_assign = next.typ == I_ASSIGN;
            p_next_nonspace(p);
            nvec_add(&p->c->t->a, &pipe->decl, p_new_var(p, v.pos, v.val));
            p_push_var(p, v.val);
        } else if (next.typ == I_CHAR && str_eq(next.val, ",")) {
            p_next_nonspace(p);
            nvec_add(&p->c->t->a, &pipe->decl, p_new_var(p, v.pos, v.val));
            p_push_var(p, v.val);
            if (strcmp(context, "range") == 0 && pipe->decl.n < 2) {
                int t = p_peek_nonspace(p).typ;
                if (t == I_VARIABLE || t == I_RIGHTDELIM || t == I_RIGHTPAREN)
                    continue;
                p_errorf(p, "range can only initialize variables");
            }
            p_errorf(p, "too many declarations in %s", context);
        } else if (after.typ == I_SPACE) {
            p_backup3(p, v, after);
        } else {
            p_backup2(p, v);
        }
        break;
    }
    for (;;) {
        item t = p_next_nonspace(p);
        if (t.typ == end) {
            p_check_pipeline(p, pipe, context);
            p->c->depth--;
            return pipe;
        }
        switch (t.typ) {
        case I_BOOL: case I_CHARCONST: case I_COMPLEX: case I_DOT: case I_FIELD: case I_IDENT:
        case I_NUMBER: case I_NIL: case I_RAWSTRING: case I_STRING: case I_VARIABLE: case I_LEFTPAREN:
            p_backup(p);
            nvec_add(&p->c->t->a, &pipe->list, p_command(p));
            break;
        default:
            p_unexpected(p, t, context);
        }
    }
}

static node *p_control(parser *p, int type, int allow_else_if, const char *context)
{
    p_enter(p);
    int nvars = p->nvars;
    node *pipe = p_pipeline(p, context, I_RIGHTDELIM);
    node *list, *next, *elselist = NULL;
    if (type == N_RANGE)
        p->range_depth++;
    p_item_list(p, &list, &next);
    if (type == N_RANGE)
        p->range_depth--;
    if (next->type == N_ELSE) {
        if (allow_else_if && p_peek(p).typ == I_IF) {
            p_next(p);
            elselist = p_new(p, N_LIST, next->pos);
            nvec_add(&p->c->t->a, &elselist->list, p_control(p, N_IF, 1, "if"));
        } else {
            p_item_list(p, &elselist, &next);
            if (next->type != N_END) {
                sbuf b = SBUF_INIT;
                node_string(&b, next);
                char msg[900];
                snprintf(msg, sizeof msg, "expected end; found %s", sbuf_str(&b));
                sbuf_free(&b);
                p_fail(p, msg);
            }
        }
    }
    p->nvars = nvars;
    node *n = p_new(p, type, pipe->pos);
    n->line = pipe->line;
    n->sub = pipe;
    n->blist = list;
    n->belse = elselist;
    p->c->depth--;
    return n;
}

static str p_template_name(parser *p, item tok, const char *context)
{
    if (tok.typ != I_STRING && tok.typ != I_RAWSTRING)
        p_unexpected(p, tok, context);
    return p_unquote(p, tok);
}

static node *p_block(parser *p)
{
    const char *context = "block clause";
    item tok = p_next_nonspace(p);
    str name = p_template_name(p, tok, context);
    node *pipe = p_pipeline(p, context, I_RIGHTDELIM);
    parser bp;
    p_init(&bp, p->c, name);
    node *end;
    p_enter(p);
    p_item_list(&bp, &bp.root, &end);
    p->c->depth--;
    if (end->type != N_END) {
        sbuf b = SBUF_INIT;
        node_string(&b, end);
        char msg[900];
        snprintf(msg, sizeof msg, "unexpected %s in %s", sbuf_str(&b), context);
        sbuf_free(&b);
        p_fail(p, msg);
    }
    p_add(&bp);
    node *n = p_new(p, N_TEMPLATE, tok.pos);
    n->line = tok.line;
    n->text = name;
    n->sub = pipe;
    return n;
}

static node *p_template(parser *p)
{
    const char *context = "template clause";
    item tok = p_next_nonspace(p);
    str name = p_template_name(p, tok, context);
    node *pipe = NULL;
    if (p_next_nonspace(p).typ != I_RIGHTDELIM) {
        p_backup(p);
        pipe = p_pipeline(p, context, I_RIGHTDELIM);
    }
    node *n = p_new(p, N_TEMPLATE, tok.pos);
    n->line = tok.line;
    n->text = name;
    n->sub = pipe;
    return n;
}

static node *p_operand(parser *p);

static node *p_command(parser *p)
{
    node *cmd = p_new(p, N_COMMAND, p_peek_nonspace(p).pos);
    for (;;) {
        p_peek_nonspace(p);
        node *op = p_operand(p);
        if (op)
            nvec_add(&p->c->t->a, &cmd->list, op);
        item t = p_next(p);
        if (t.typ == I_SPACE)
            continue;
        if (t.typ == I_RIGHTDELIM || t.typ == I_RIGHTPAREN)
            p_backup(p);
        else if (t.typ != I_PIPE)
            p_unexpected(p, t, "operand");
        break;
    }
    if (cmd->list.n == 0)
        p_errorf(p, "empty command");
    return cmd;
}

static node *p_term(parser *p);

static node *p_operand(parser *p)
{
    node *n = p_term(p);
    if (!n)
        return NULL;
    if (p_peek(p).typ == I_FIELD) {
        node *chain = p_new(p, N_CHAIN, p_peek(p).pos);
        chain->sub = n;
        int cap = 4;
        chain->ident = aalloc(&p->c->t->a, sizeof(str) * (size_t)cap);
        while (p_peek(p).typ == I_FIELD) {
            item f = p_next(p);
            if (chain->nident == cap) {
                str *ni = aalloc(&p->c->t->a, sizeof(str) * (size_t)cap * 2);
                memcpy(ni, chain->ident, sizeof(str) * (size_t)cap);
                chain->ident = ni;
                cap *= 2;
            }
            chain->ident[chain->nident++] = (str){ f.val.p + 1, f.val.n - 1 };
        }
        sbuf b = SBUF_INIT;
        switch (n->type) {
        case N_FIELD:
        case N_VARIABLE: {
            node_string(&b, chain);
            str s = { astrndup(&p->c->t->a, b.buf, b.len), b.len };
            sbuf_free(&b);
            return n->type == N_FIELD ? p_new_field(p, chain->pos, s) : p_new_var(p, chain->pos, s);
        }
        case N_BOOL: case N_STRING: case N_NUMBER: case N_NIL: case N_DOT: {
            sbuf q = SBUF_INIT;
            node_string(&b, n);
            go_quote(&q, b.buf, b.len, 0);
            char msg[900];
            snprintf(msg, sizeof msg, "unexpected . after term %s", sbuf_str(&q));
            sbuf_free(&b);
            sbuf_free(&q);
            p_fail(p, msg);
        }
        }
        sbuf_free(&b);
        n = chain;
    }
    return n;
}

static const char *const builtin_names[] = {
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
};

static int builtin_index(str name)
{
    for (size_t i = 0; i < sizeof builtin_names / sizeof builtin_names[0]; i++)
        if (str_eq(name, builtin_names[i]))
            return (int)i;
    return -1;
}

/* strconv.ParseUint/ParseInt with base 0. Returns 0 ok, -1 syntax, -2 range. */
static int parse_int_base0(const char *s, size_t n, int is_signed, uint64_t *out, int *neg)
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
static int parse_float(const char *s, size_t n, double *out)
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

static void p_number(parser *p, node *n, item tok)
{
    str text = tok.val;
    n->text = text;
    if (tok.typ == I_CHARCONST) {
        int32_t r;
        int mb;
        size_t used;
        if (text.n < 2 || unquote_char(text.p + 1, text.n - 1, '\'', &r, &mb, &used) < 0)
            p_fail(p, "invalid syntax");
        if (!(text.n - 1 - used == 1 && text.p[1 + used] == '\'')) {
            char msg[900];
            snprintf(msg, sizeof msg, "malformed character constant: %.*s", (int)text.n, text.p);
            p_fail(p, msg);
        }
        n->i64 = r;
        n->u64 = (uint64_t)r;
        n->f64 = r;
        n->isint = n->isuint = n->isfloat = 1;
        return;
    }
    if (tok.typ == I_COMPLEX) {
        /* real part, then signed imaginary part ending in 'i' */
        size_t k = text.n - 1;
        while (k > 0 && !((text.p[k] == '+' || text.p[k] == '-') &&
                          !(text.p[k - 1] == 'e' || text.p[k - 1] == 'E' || text.p[k - 1] == 'p' || text.p[k - 1] == 'P')))
            k--;
        double re, im;
        if (k == 0 || parse_float(text.p, k, &re) < 0 || parse_float(text.p + k, text.n - k - 1, &im) < 0)
            p_fail(p, "expected integer");
        n->iscomplex = 1;
        n->cre = re;
        n->cim = im;
        goto simplify;
    }
    if (text.n > 0 && text.p[text.n - 1] == 'i') {
        double f;
        if (parse_float(text.p, text.n - 1, &f) == 0) {
            n->iscomplex = 1;
            n->cre = 0;
            n->cim = f;
            goto simplify;
        }
    }
    {
        uint64_t u, iv;
        int neg, neg2;
        if (parse_int_base0(text.p, text.n, 0, &u, &neg) == 0) {
            n->isuint = 1;
            n->u64 = u;
        }
        int r = parse_int_base0(text.p, text.n, 1, &iv, &neg2);
        if (r == 0 && ((!neg2 && iv <= (uint64_t)INT64_MAX) || (neg2 && iv <= (uint64_t)INT64_MAX + 1))) {
            n->isint = 1;
            n->i64 = neg2 ? (int64_t)(0 - iv) : (int64_t)iv;
            if (n->i64 == 0) {
                n->isuint = 1;
                n->u64 = u;
            }
        }
        if (n->isint) {
            n->isfloat = 1;
            n->f64 = (double)n->i64;
        } else if (n->isuint) {
            n->isfloat = 1;
            n->f64 = (double)n->u64;
        } else {
            double f;
            if (parse_float(text.p, text.n, &f) == 0) {
                if (!memchr(text.p, '.', text.n) && !memchr(text.p, 'e', text.n) && !memchr(text.p, 'E', text.n) &&
                    !memchr(text.p, 'p', text.n) && !memchr(text.p, 'P', text.n)) {
                    sbuf b = SBUF_INIT;
                    sbuf_adds(&b, "integer overflow: ");
                    go_quote(&b, text.p, text.n, 0);
                    char msg[900];
                    snprintf(msg, sizeof msg, "%s", sbuf_str(&b));
                    sbuf_free(&b);
                    p_fail(p, msg);
                }
                n->isfloat = 1;
                n->f64 = f;
                if (!n->isint && f >= -9223372036854775808.0 && f < 9223372036854775808.0 && (double)(int64_t)f == f) {
                    n->isint = 1;
                    n->i64 = (int64_t)f;
                }
                if (!n->isuint && f >= 0 && f < 18446744073709551616.0 && (double)(uint64_t)f == f) {
                    n->isuint = 1;
                    n->u64 = (uint64_t)f;
                }
            }
        }
        if (!n->isint && !n->isuint && !n->isfloat) {
            sbuf b = SBUF_INIT;
            sbuf_adds(&b, "illegal number syntax: ");
            go_quote(&b, text.p, text.n, 0);
            char msg[900];
            snprintf(msg, sizeof msg, "%s", sbuf_str(&b));
            sbuf_free(&b);
            p_fail(p, msg);
        }
        return;
    }
simplify:
    if (n->cim == 0) {
        n->isfloat = 1;
        n->f64 = n->cre;
        if (n->f64 >= -9223372036854775808.0 && n->f64 < 9223372036854775808.0 && (double)(int64_t)n->f64 == n->f64) {
            n->isint = 1;
            n->i64 = (int64_t)n->f64;
        }
        if (n->f64 >= 0 && n->f64 < 18446744073709551616.0 && (double)(uint64_t)n->f64 == n->f64) {
            n->isuint = 1;
            n->u64 = (uint64_t)n->f64;
        }
    }
}

static node *p_term(parser *p)
{
    item tok = p_next_nonspace(p);
    node *n;
    switch (tok.typ) {
    case I_IDENT:
        if (builtin_index(tok.val) < 0) {
            sbuf b = SBUF_INIT;
            sbuf_adds(&b, "function ");
            go_quote(&b, tok.val.p, tok.val.n, 0);
            sbuf_adds(&b, " not defined");
            char msg[900];
            snprintf(msg, sizeof msg, "%s", sbuf_str(&b));
            sbuf_free(&b);
            p_fail(p, msg);
        }
        n = p_new(p, N_IDENT, tok.pos);
        n->text = tok.val;
        return n;
    case I_DOT: return p_new(p, N_DOT, tok.pos);
    case I_NIL: return p_new(p, N_NIL, tok.pos);
    case I_VARIABLE:
        n = p_new_var(p, tok.pos, tok.val);
        for (int i = 0; i < p->nvars; i++)
            if (str_eqs(p->vars[i], n->ident[0]))
                return n;
        {
            sbuf b = SBUF_INIT;
            sbuf_adds(&b, "undefined variable ");
            go_quote(&b, n->ident[0].p, n->ident[0].n, 0);
            char msg[900];
            snprintf(msg, sizeof msg, "%s", sbuf_str(&b));
            sbuf_free(&b);
            p_fail(p, msg);
        }
    case I_FIELD: return p_new_field(p, tok.pos, tok.val);
    case I_BOOL:
        n = p_new(p, N_BOOL, tok.pos);
        n->b = str_eq(tok.val, "true");
        return n;
    case I_CHARCONST: case I_COMPLEX: case I_NUMBER:
        n = p_new(p, N_NUMBER, tok.pos);
        p_number(p, n, tok);
        return n;
    case I_LEFTPAREN:
        return p_pipeline(p, "parenthesized pipeline", I_RIGHTPAREN);
    case I_STRING: case I_RAWSTRING:
        n = p_new(p, N_STRING, tok.pos);
        n->quoted = tok.val;
        n->text = p_unquote(p, tok);
        return n;
    }
    p_backup(p);
    return NULL;
}

/* ---------- values ---------- */

/* A reflect.Value over the data: iface marks a value read out of a
 * map[string]any or []any (Kind Interface in Go), which matters for error
 * messages ("in type interface {}") and for how nil prints. */
enum vkind {
    V_INVALID, V_MISSING, V_NIL, V_BOOL, V_INT, V_INT64, V_UINT8, V_FLOAT, V_COMPLEX, V_STRING,
    V_MAP, V_SLICE,
};

typedef struct val {
    int k;
    int iface;
    int64_t i;
    double f, im;
    str s;
    json_t *j;
    size_t off, len, cap;
} val;

static val v_make(int k) { val v; memset(&v, 0, sizeof v); v.k = k; return v; }
static val v_bool(int b) { val v = v_make(V_BOOL); v.i = b != 0; return v; }
static val v_int(int64_t i) { val v = v_make(V_INT); v.i = i; return v; }
static val v_string(const char *p, size_t n) { val v = v_make(V_STRING); v.s.p = p; v.s.n = n; return v; }

static val v_from_json(json_t *j, int iface)
{
    val v = v_make(V_INVALID);
    v.iface = iface;
    if (!j) {
        v.k = iface ? V_NIL : V_INVALID;
        return v;
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT: v.k = V_MAP; v.j = j; break;
    case JSON_ARRAY: v.k = V_SLICE; v.j = j; v.off = 0; v.len = v.cap = json_array_size(j); break;
    case JSON_STRING: v.k = V_STRING; v.s.p = json_string_value(j); v.s.n = json_string_length(j); break;
    case JSON_INTEGER: v.k = V_INT64; v.i = (int64_t)json_integer_value(j); break;
    case JSON_REAL: v.k = V_FLOAT; v.f = json_real_value(j); break;
    case JSON_TRUE: v.k = V_BOOL; v.i = 1; break;
    case JSON_FALSE: v.k = V_BOOL; v.i = 0; break;
    case JSON_NULL: v.k = iface ? V_NIL : V_INVALID; break;
    }
    return v;
}

/* indirectInterface: the concrete value inside an interface (nil -> invalid) */
static val v_concrete(val v)
{
    if (v.k == V_NIL)
        return v_make(V_INVALID);
    v.iface = 0;
    return v;
}

static const char *v_concrete_type(const val *v)
{
    switch (v->k) {
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_INT64: return "int64";
    case V_UINT8: return "uint8";
    case V_FLOAT: return "float64";
    case V_COMPLEX: return "complex128";
    case V_STRING: return "string";
    case V_MAP: return "map[string]interface {}";
    case V_SLICE: return "[]interface {}";
    case V_NIL: return "interface {}";
    }
    return "<nil>";
}

/* reflect.Value.Type().String() */
static const char *v_type(const val *v) { return v->iface ? "interface {}" : v_concrete_type(v); }

static json_t *v_slice_elem(const val *v, size_t i) { return json_array_get(v->j, v->off + i); }

static int cmp_keys(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Keys of an object, sorted like Go's fmtsort (byte order). Caller frees. */
static const char **sorted_keys(json_t *obj, size_t *n)
{
    *n = json_object_size(obj);
    const char **keys = malloc(sizeof *keys * (*n ? *n : 1));
    if (!keys)
        abort();
    size_t i = 0;
    const char *k;
    json_t *x;
    json_object_foreach(obj, k, x) keys[i++] = k;
    qsort(keys, *n, sizeof *keys, cmp_keys);
    return keys;
}

/* ---------- fmt (fmt/print.go, fmt/format.go, strconv/ftoa.go) ---------- */

typedef struct fmtf {
    int wid_present, prec_present, minus, plus, sharp, space, zero, plusV, sharpV;
    int wid, prec;
} fmtf;

/* How the executor reads elements out of containers: through the caller's
 * lookup hook when there is one. Printing cannot unwind (it holds malloc'd
 * key lists), so a failed read sets failed and err, printing stops, and the
 * executor reports err once printing has returned. */
typedef struct reader {
    tmpl_lookup_fn fn;
    void *ud;
    int failed;
    tmpl_error err;
} reader;

/* the value to use for container[key] (key NULL for arrays); NULL after a failure */
static json_t *rd_read(reader *r, json_t *container, const char *key, json_t *value)
{
    if (!r || !r->fn)
        return value;
    if (r->failed)
        return NULL;
    r->err.msg[0] = 0;
    json_t *got = r->fn(r->ud, container, key, value, &r->err);
    if (!got) {
        r->failed = 1;
        if (!r->err.msg[0])
            snprintf(r->err.msg, sizeof r->err.msg, "lookup hook failed");
    }
    return got;
}

typedef struct pp {
    sbuf *buf;
    fmtf f;
    reader *rd;
} pp;

static void write_padding(pp *p, int n)
{
    if (n <= 0)
        return;
    char c = p->f.zero ? '0' : ' ';
    for (int i = 0; i < n; i++)
        sbuf_addc(p->buf, c);
}

static void f_pad(pp *p, const char *s, size_t n)
{
    if (!p->f.wid_present || p->f.wid == 0) {
        sbuf_add(p->buf, s, n);
        return;
    }
    int width = p->f.wid - (int)rune_count(s, n);
    if (!p->f.minus) {
        write_padding(p, width);
        sbuf_add(p->buf, s, n);
    } else {
        sbuf_add(p->buf, s, n);
        write_padding(p, width);
    }
}

static void f_pads(pp *p, const char *s) { f_pad(p, s, strlen(s)); }

static size_t truncate_len(pp *p, const char *s, size_t n)
{
    if (!p->f.prec_present)
        return n;
    size_t i = 0;
    for (int k = 0; k < p->f.prec && i < n; k++) {
        int w;
        decode_rune((const unsigned char *)s + i, n - i, &w);
        i += (size_t)w;
    }
    return i;
}

static void print_arg(pp *p, val a, int verb);

static void bad_verb(pp *p, int verb, const val *arg)
{
    char tmp[4];
    sbuf_adds(p->buf, "%!");
    sbuf_add(p->buf, tmp, (size_t)encode_rune(tmp, verb));
    sbuf_addc(p->buf, '(');
    if (arg && arg->k != V_NIL && arg->k != V_INVALID) {
        sbuf_adds(p->buf, v_concrete_type(arg));
        sbuf_addc(p->buf, '=');
        print_arg(p, v_concrete(*arg), 'v');
    } else {
        sbuf_adds(p->buf, "<nil>");
    }
    sbuf_addc(p->buf, ')');
}

static void fmt_bool(pp *p, int b, int verb, const val *arg)
{
    if (verb == 't' || verb == 'v')
        f_pads(p, b ? "true" : "false");
    else
        bad_verb(p, verb, arg);
}

static void fmt_integer_base(pp *p, uint64_t u, int base, int is_signed, int verb, int upper)
{
    int negative = is_signed && (int64_t)u < 0;
    if (negative)
        u = 0 - u;
    int prec = 0;
    if (p->f.prec_present) {
        prec = p->f.prec;
        if (prec == 0 && u == 0) {
            int oz = p->f.zero;
            p->f.zero = 0;
            write_padding(p, p->f.wid);
            p->f.zero = oz;
            return;
        }
    } else if (p->f.zero && p->f.wid_present) {
        prec = p->f.wid;
        if (negative || p->f.plus || p->f.space)
            prec--;
    }
    size_t cap = 80 + (size_t)(prec > 0 ? prec : 0);
    char *buf = malloc(cap);
    if (!buf)
        abort();
    size_t i = cap;
    const char *digs = upper ? "0123456789ABCDEFX" : "0123456789abcdefx";
    do {
        buf[--i] = digs[u % (uint64_t)base];
        u /= (uint64_t)base;
    } while (u > 0);
    while (i > 0 && (size_t)prec > cap - i)
        buf[--i] = '0';
    if (p->f.sharp) {
        switch (base) {
        case 2: buf[--i] = 'b'; buf[--i] = '0'; break;
        case 8: if (buf[i] != '0') buf[--i] = '0'; break;
        case 16: buf[--i] = digs[16]; buf[--i] = '0'; break;
        }
    }
    if (verb == 'O') {
        buf[--i] = 'o';
        buf[--i] = '0';
    }
    if (negative)
        buf[--i] = '-';
    else if (p->f.plus)
        buf[--i] = '+';
    else if (p->f.space)
        buf[--i] = ' ';
    int oz = p->f.zero;
    p->f.zero = 0;
    f_pad(p, buf + i, cap - i);
    p->f.zero = oz;
    free(buf);
}

static void fmt_unicode(pp *p, uint64_t u)
{
    sbuf b = SBUF_INIT;
    int prec = 4;
    if (p->f.prec_present && p->f.prec > 4)
        prec = p->f.prec;
    char hex[32];
    int n = snprintf(hex, sizeof hex, "%llX", (unsigned long long)u);
    sbuf_adds(&b, "U+");
    for (int k = n; k < prec; k++)
        sbuf_addc(&b, '0');
    sbuf_adds(&b, hex);
    if (p->f.sharp && u <= 0x10FFFF && is_print((int32_t)u)) {
        char tmp[4];
        sbuf_adds(&b, " '");
        sbuf_add(&b, tmp, (size_t)encode_rune(tmp, (int32_t)u));
        sbuf_addc(&b, '\'');
    }
    int oz = p->f.zero;
    p->f.zero = 0;
    f_pad(p, b.buf, b.len);
    p->f.zero = oz;
    sbuf_free(&b);
}

static void fmt_integer(pp *p, uint64_t u, int is_signed, int verb, const val *arg)
{
    switch (verb) {
    case 'v':
        if (p->f.sharpV && !is_signed) {
            int os = p->f.sharp;
            p->f.sharp = 1;
            fmt_integer_base(p, u, 16, 0, 'v', 0);
            p->f.sharp = os;
        } else {
            fmt_integer_base(p, u, 10, is_signed, verb, 0);
        }
        break;
    case 'd': fmt_integer_base(p, u, 10, is_signed, verb, 0); break;
    case 'b': fmt_integer_base(p, u, 2, is_signed, verb, 0); break;
    case 'o': case 'O': fmt_integer_base(p, u, 8, is_signed, verb, 0); break;
    case 'x': fmt_integer_base(p, u, 16, is_signed, verb, 0); break;
    case 'X': fmt_integer_base(p, u, 16, is_signed, verb, 1); break;
    case 'c': {
        int32_t r = u > 0x10FFFF ? RUNE_ERROR : (int32_t)u;
        char tmp[4];
        f_pad(p, tmp, (size_t)encode_rune(tmp, r));
        break;
    }
    case 'q': {
        int32_t r = u > 0x10FFFF ? RUNE_ERROR : (int32_t)u;
        sbuf b = SBUF_INIT;
        go_quote_rune(&b, r, p->f.plus);
        f_pad(p, b.buf, b.len);
        sbuf_free(&b);
        break;
    }
    case 'U': fmt_unicode(p, u); break;
    default: bad_verb(p, verb, arg);
    }
}

/* decimal digits of |v|: shortest round-trip when ndig < 0 */
typedef struct decdigits {
    char d[1200];
    int nd, dp;
} decdigits;

static void get_digits(double v, int ndig, decdigits *dd)
{
    v = fabs(v);
    dd->nd = dd->dp = 0;
    if (v == 0)
        return;
    char buf[1300];
    if (ndig < 0) {
        for (int p = 1; p <= 17; p++) {
            snprintf(buf, sizeof buf, "%.*e", p - 1, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    } else {
        if (ndig < 1)
            ndig = 1;
        if (ndig > 1100)
            ndig = 1100;
        snprintf(buf, sizeof buf, "%.*e", ndig - 1, v);
    }
    char *e = strchr(buf, 'e');
    int exp = atoi(e + 1);
    for (char *c = buf; c < e; c++)
        if (*c >= '0' && *c <= '9')
            dd->d[dd->nd++] = *c;
    while (dd->nd > 0 && dd->d[dd->nd - 1] == '0')
        dd->nd--;
    dd->dp = exp + 1;
}

static void fmt_e_digits(sbuf *b, const decdigits *dd, int prec, char fmtc)
{
    sbuf_addc(b, dd->nd ? dd->d[0] : '0');
    if (prec > 0) {
        sbuf_addc(b, '.');
        int i = 1;
        int m = dd->nd < prec + 1 ? dd->nd : prec + 1;
        for (; i < m; i++)
            sbuf_addc(b, dd->d[i]);
        for (; i <= prec; i++)
            sbuf_addc(b, '0');
    }
    sbuf_addc(b, fmtc);
    int exp = dd->dp - 1;
    if (dd->nd == 0)
        exp = 0;
    if (exp < 0) {
        sbuf_addc(b, '-');
        exp = -exp;
    } else {
        sbuf_addc(b, '+');
    }
    if (exp < 10)
        sbuf_addf(b, "0%d", exp);
    else
        sbuf_addf(b, "%d", exp);
}

static void fmt_f_digits(sbuf *b, const decdigits *dd, int prec)
{
    if (dd->dp > 0) {
        int m = dd->dp;
        if (m > dd->nd)
            m = dd->nd;
        sbuf_add(b, dd->d, (size_t)m);
        for (; m < dd->dp; m++)
            sbuf_addc(b, '0');
    } else {
        sbuf_addc(b, '0');
    }
    if (prec > 0) {
        sbuf_addc(b, '.');
        for (int i = 1; i <= prec; i++) {
            int j = dd->dp + i - 1;
            sbuf_addc(b, (j >= 0 && j < dd->nd) ? dd->d[j] : '0');
        }
    }
}

/* strconv.AppendFloat(v, fmt, prec, 64), always with a leading sign */
static void append_float(sbuf *b, double v, int fmtc, int prec)
{
    sbuf_addc(b, signbit(v) ? '-' : '+');
    if (isinf(v)) {
        sbuf_adds(b, "Inf");
        return;
    }
    if (isnan(v)) {
        b->buf[b->len - 1] = '+';
        sbuf_adds(b, "NaN");
        return;
    }
    if (fmtc == 'e' || fmtc == 'E' || fmtc == 'f' || fmtc == 'F') {
        if (prec < 0) {
            decdigits dd;
            get_digits(v, -1, &dd);
            if (fmtc == 'e' || fmtc == 'E')
                fmt_e_digits(b, &dd, dd.nd > 0 ? dd.nd - 1 : 0, (char)fmtc);
            else
                fmt_f_digits(b, &dd, dd.nd - dd.dp > 0 ? dd.nd - dd.dp : 0);
            return;
        }
        char spec[8];
        snprintf(spec, sizeof spec, "%%.*%c", fmtc == 'F' ? 'f' : fmtc);
        int n = snprintf(NULL, 0, spec, prec, fabs(v));
        char *tmp = malloc((size_t)n + 1);
        if (!tmp)
            abort();
        snprintf(tmp, (size_t)n + 1, spec, prec, fabs(v));
        sbuf_add(b, tmp, (size_t)n);
        free(tmp);
        return;
    }
    if (fmtc == 'g' || fmtc == 'G') {
        int shortest = prec < 0;
        decdigits dd;
        if (shortest) {
            get_digits(v, -1, &dd);
            prec = dd.nd;
        } else {
            if (prec == 0)
                prec = 1;
            get_digits(v, prec, &dd);
        }
        int eprec = prec;
        if (eprec > dd.nd && dd.nd >= dd.dp)
            eprec = dd.nd;
        if (shortest)
            eprec = 6;
        int exp = dd.dp - 1;
        if (dd.nd == 0)
            exp = 0, dd.dp = 0;
        if (exp < -4 || exp >= eprec) {
            if (prec > dd.nd)
                prec = dd.nd;
            fmt_e_digits(b, &dd, prec - 1 > 0 ? prec - 1 : 0, fmtc == 'g' ? 'e' : 'E');
            return;
        }
        if (prec > dd.dp)
            prec = dd.nd;
        fmt_f_digits(b, &dd, prec - dd.dp > 0 ? prec - dd.dp : 0);
        return;
    }
    if (fmtc == 'b') {
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        int exp = (int)((bits >> 52) & 0x7FF);
        uint64_t mant = bits & ((UINT64_C(1) << 52) - 1);
        if (exp == 0)
            exp++;
        else
            mant |= UINT64_C(1) << 52;
        exp += -1023 - 52;
        sbuf_addf(b, "%llup%s%d", (unsigned long long)mant, exp >= 0 ? "+" : "", exp);
        return;
    }
    /* %x, %X: C's hex float, with Go's two-digit minimum exponent */
    char tmp[1200];
    if (prec > 1000)
        prec = 1000;
    if (prec < 0)
        snprintf(tmp, sizeof tmp, fmtc == 'X' ? "%A" : "%a", fabs(v));
    else
        snprintf(tmp, sizeof tmp, fmtc == 'X' ? "%.*A" : "%.*a", prec, fabs(v));
    char *pe = strpbrk(tmp, "pP");
    if (pe && pe[1] && pe[2] && !pe[3]) {
        sbuf_add(b, tmp, (size_t)(pe - tmp) + 2);
        sbuf_addc(b, '0');
        sbuf_addc(b, pe[2]);
    } else {
        sbuf_adds(b, tmp);
    }
}

static void fmt_float_prec(pp *p, double v, int verb, int prec)
{
    if (p->f.prec_present)
        prec = p->f.prec;
    sbuf nb = SBUF_INIT;
    append_float(&nb, v, verb, prec);
    char *num = nb.buf;
    size_t n = nb.len;
    if (p->f.space && num[0] == '+' && !p->f.plus)
        num[0] = ' ';
    if (num[1] == 'I' || num[1] == 'N') {
        int oz = p->f.zero;
        p->f.zero = 0;
        if (num[1] == 'N' && !p->f.space && !p->f.plus)
            f_pad(p, num + 1, n - 1);
        else
            f_pad(p, num, n);
        p->f.zero = oz;
        sbuf_free(&nb);
        return;
    }
    if (p->f.sharp && verb != 'b') {
        int digits = 0;
        if (verb == 'v' || verb == 'g' || verb == 'G' || verb == 'x') {
            digits = prec;
            if (digits == -1)
                digits = 6;
        }
        sbuf tail = SBUF_INIT;
        int has_dot = 0, saw_nz = 0;
        for (size_t i = 1; i < n; i++) {
            char c = num[i];
            if (c == '.') {
                has_dot = 1;
            } else if (c == 'p' || c == 'P' || ((c == 'e' || c == 'E') && verb != 'x' && verb != 'X')) {
                sbuf_add(&tail, num + i, n - i);
                n = i;
                break;
            } else {
                if (c != '0')
                    saw_nz = 1;
                if (saw_nz)
                    digits--;
            }
        }
        nb.len = n;
        if (!has_dot) {
            if (n == 2 && num[1] == '0')
                digits--;
            sbuf_addc(&nb, '.');
        }
        for (; digits > 0; digits--)
            sbuf_addc(&nb, '0');
        sbuf_add(&nb, tail.buf ? tail.buf : "", tail.len);
        sbuf_free(&tail);
        num = nb.buf;
        n = nb.len;
    }
    if (p->f.plus || num[0] != '+') {
        if (p->f.zero && p->f.wid_present && p->f.wid > (int)n) {
            sbuf_addc(p->buf, num[0]);
            write_padding(p, p->f.wid - (int)n);
            sbuf_add(p->buf, num + 1, n - 1);
        } else {
            f_pad(p, num, n);
        }
    } else {
        f_pad(p, num + 1, n - 1);
    }
    sbuf_free(&nb);
}

static void fmt_float(pp *p, double v, int verb, const val *arg)
{
    switch (verb) {
    case 'v': fmt_float_prec(p, v, 'g', -1); break;
    case 'b': case 'g': case 'G': case 'x': case 'X': fmt_float_prec(p, v, verb, -1); break;
    case 'f': case 'e': case 'E': case 'F': fmt_float_prec(p, v, verb, 6); break;
    default: bad_verb(p, verb, arg);
    }
}

static void fmt_complex(pp *p, double re, double im, int verb, const val *arg)
{
    switch (verb) {
    case 'v': case 'b': case 'g': case 'G': case 'x': case 'X': case 'f': case 'F': case 'e': case 'E': {
        int op = p->f.plus;
        sbuf_addc(p->buf, '(');
        fmt_float(p, re, verb, arg);
        p->f.plus = 1;
        fmt_float(p, im, verb, arg);
        sbuf_adds(p->buf, "i)");
        p->f.plus = op;
        break;
    }
    default: bad_verb(p, verb, arg);
    }
}

static int can_backquote(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int w;
        int32_t r = decode_rune((const unsigned char *)s + i, n - i, &w);
        i += (size_t)w;
        if (w > 1) {
            if (r == 0xFEFF)
                return 0;
            continue;
        }
        if (r == RUNE_ERROR)
            return 0;
        if ((r < ' ' && r != '\t') || r == '`' || r == 0x7F)
            return 0;
    }
    return 1;
}

static void fmt_q(pp *p, const char *s, size_t n)
{
    n = truncate_len(p, s, n);
    sbuf b = SBUF_INIT;
    if (p->f.sharp && can_backquote(s, n)) {
        sbuf_addc(&b, '`');
        sbuf_add(&b, s, n);
        sbuf_addc(&b, '`');
    } else {
        go_quote(&b, s, n, p->f.plus);
    }
    f_pad(p, b.buf, b.len);
    sbuf_free(&b);
}

static void fmt_sx(pp *p, const char *s, size_t n, int upper)
{
    const char *digs = upper ? "0123456789ABCDEFX" : "0123456789abcdefx";
    size_t length = n;
    if (p->f.prec_present && (size_t)p->f.prec < length)
        length = (size_t)p->f.prec;
    long width = 2 * (long)length;
    if (width > 0) {
        if (p->f.space) {
            if (p->f.sharp)
                width *= 2;
            width += (long)length - 1;
        } else if (p->f.sharp) {
            width += 2;
        }
    } else {
        if (p->f.wid_present)
            write_padding(p, p->f.wid);
        return;
    }
    if (p->f.wid_present && p->f.wid > width && !p->f.minus)
        write_padding(p, (int)(p->f.wid - width));
    if (p->f.sharp) {
        sbuf_addc(p->buf, '0');
        sbuf_addc(p->buf, digs[16]);
    }
    for (size_t i = 0; i < length; i++) {
        if (p->f.space && i > 0) {
            sbuf_addc(p->buf, ' ');
            if (p->f.sharp) {
                sbuf_addc(p->buf, '0');
                sbuf_addc(p->buf, digs[16]);
            }
        }
        unsigned char c = (unsigned char)s[i];
        sbuf_addc(p->buf, digs[c >> 4]);
        sbuf_addc(p->buf, digs[c & 15]);
    }
    if (p->f.wid_present && p->f.wid > width && p->f.minus)
        write_padding(p, (int)(p->f.wid - width));
}

static void fmt_string(pp *p, str s, int verb, const val *arg)
{
    switch (verb) {
    case 'v':
        if (p->f.sharpV)
            fmt_q(p, s.p, s.n);
        else
            f_pad(p, s.p, truncate_len(p, s.p, s.n));
        break;
    case 's': f_pad(p, s.p, truncate_len(p, s.p, s.n)); break;
    case 'x': fmt_sx(p, s.p, s.n, 0); break;
    case 'X': fmt_sx(p, s.p, s.n, 1); break;
    case 'q': fmt_q(p, s.p, s.n); break;
    default: bad_verb(p, verb, arg);
    }
}

static void print_value(pp *p, val v, int verb, int depth);

static void print_scalar(pp *p, const val *v, int verb)
{
    switch (v->k) {
    case V_BOOL: fmt_bool(p, (int)v->i, verb, v); break;
    case V_INT: case V_INT64: fmt_integer(p, (uint64_t)v->i, 1, verb, v); break;
    case V_UINT8: fmt_integer(p, (uint64_t)v->i, 0, verb, v); break;
    case V_FLOAT: fmt_float(p, v->f, verb, v); break;
    case V_COMPLEX: fmt_complex(p, v->f, v->im, verb, v); break;
    case V_STRING: fmt_string(p, v->s, verb, v); break;
    default: print_value(p, *v, verb, 0);
    }
}

static void print_value(pp *p, val v, int verb, int depth)
{
    if (v.iface) {
        if (v.k == V_NIL) {
            sbuf_adds(p->buf, p->f.sharpV ? "interface {}(nil)" : "<nil>");
            return;
        }
        v.iface = 0;
        print_value(p, v, verb, depth + 1);
        return;
    }
    switch (v.k) {
    case V_MAP: {
        sbuf_adds(p->buf, p->f.sharpV ? "map[string]interface {}{" : "map[");
        size_t n;
        const char **keys = sorted_keys(v.j, &n);
        for (size_t i = 0; i < n; i++) {
            json_t *x = rd_read(p->rd, v.j, keys[i], json_object_get(v.j, keys[i]));
            if (!x)
                break;
            if (i > 0)
                sbuf_adds(p->buf, p->f.sharpV ? ", " : " ");
            print_value(p, v_string(keys[i], strlen(keys[i])), verb, depth + 1);
            sbuf_addc(p->buf, ':');
            print_value(p, v_from_json(x, 1), verb, depth + 1);
        }
        free(keys);
        sbuf_addc(p->buf, p->f.sharpV ? '}' : ']');
        break;
    }
    case V_SLICE:
        sbuf_adds(p->buf, p->f.sharpV ? "[]interface {}{" : "[");
        for (size_t i = 0; i < v.len; i++) {
            json_t *x = rd_read(p->rd, v.j, NULL, v_slice_elem(&v, i));
            if (!x)
                break;
            if (i > 0)
                sbuf_adds(p->buf, p->f.sharpV ? ", " : " ");
            print_value(p, v_from_json(x, 1), verb, depth + 1);
        }
        sbuf_addc(p->buf, p->f.sharpV ? '}' : ']');
        break;
    case V_INVALID: case V_NIL: case V_MISSING:
        sbuf_adds(p->buf, depth == 0 ? "<invalid reflect.Value>" : "<nil>");
        break;
    default:
        print_scalar(p, &v, verb);
    }
}

/* printArg: a is what a Go function receives as `any` */
static void print_arg(pp *p, val a, int verb)
{
    a = v_concrete(a);
    if (a.k == V_INVALID || a.k == V_MISSING) {
        if (verb == 'T' || verb == 'v')
            f_pads(p, "<nil>");
        else
            bad_verb(p, verb, NULL);
        return;
    }
    if (verb == 'T') {
        const char *t = v_concrete_type(&a);
        f_pad(p, t, truncate_len(p, t, strlen(t)));
        return;
    }
    if (verb == 'p' && a.k != V_MAP && a.k != V_SLICE) {
        bad_verb(p, verb, &a);
        return;
    }
    print_scalar(p, &a, verb);
}

static int parsenum(const char *s, size_t start, size_t end, int *num, size_t *newi)
{
    int isnum = 0;
    *num = 0;
    if (start >= end) {
        *newi = end;
        return 0;
    }
    size_t i;
    for (i = start; i < end && s[i] >= '0' && s[i] <= '9'; i++) {
        if (*num > 1000000 || *num < -1000000) {
            *num = 0;
            *newi = end;
            return 0;
        }
        *num = *num * 10 + (s[i] - '0');
        isnum = 1;
    }
    *newi = i;
    return isnum;
}

typedef struct pfstate {
    pp p;
    int reordered, good_argnum;
} pfstate;

static void arg_number(pfstate *ps, int *argnum, const char *fmt, size_t end, size_t *i, int nargs, int *found)
{
    *found = 0;
    if (*i >= end || fmt[*i] != '[')
        return;
    ps->reordered = 1;
    /* parseArgNumber(format[i:]) */
    const char *f = fmt + *i;
    size_t flen = end - *i;
    int index = 0, ok = 0;
    size_t wid = 1;
    if (flen >= 3) {
        for (size_t k = 1; k < flen; k++) {
            if (f[k] == ']') {
                int w;
                size_t newi;
                int isn = parsenum(f, 1, k, &w, &newi);
                if (!isn || newi != k) {
                    wid = k + 1;
                    ok = 0;
                } else {
                    index = w - 1;
                    wid = k + 1;
                    ok = 1;
                }
                break;
            }
        }
    }
    if (ok && index >= 0 && index < nargs) {
        *argnum = index;
        *i += wid;
        *found = 1;
        return;
    }
    ps->good_argnum = 0;
    *i += wid;
    *found = ok;
}

static int int_from_arg(const val *a, int nargs, int *argnum, int *num)
{
    int isint = 0;
    *num = 0;
    if (*argnum < nargs) {
        val v = v_concrete(a[*argnum]);
        if (v.k == V_INT || v.k == V_INT64 || v.k == V_UINT8) {
            *num = (int)v.i;
            isint = (int64_t)*num == v.i;
        }
        (*argnum)++;
        if (*num > 1000000 || *num < -1000000) {
            *num = 0;
            isint = 0;
        }
    }
    return isint;
}

static void go_sprintf(sbuf *out, reader *rd, const char *fmt, size_t end, const val *a, int nargs)
{
    pfstate ps;
    memset(&ps, 0, sizeof ps);
    ps.p.buf = out;
    ps.p.rd = rd;
    pp *p = &ps.p;
    int argnum = 0, after_index = 0;
    size_t i = 0;
    while (i < end) {
        ps.good_argnum = 1;
        size_t lasti = i;
        while (i < end && fmt[i] != '%')
            i++;
        if (i > lasti)
            sbuf_add(out, fmt + lasti, i - lasti);
        if (i >= end)
            break;
        i++;
        memset(&p->f, 0, sizeof p->f);
        int simple_done = 0;
        for (; i < end; i++) {
            char c = fmt[i];
            if (c == '#') p->f.sharp = 1;
            else if (c == '0') p->f.zero = !p->f.minus;
            else if (c == '+') p->f.plus = 1;
            else if (c == '-') { p->f.minus = 1; p->f.zero = 0; }
            else if (c == ' ') p->f.space = 1;
            else {
                if (c >= 'a' && c <= 'z' && argnum < nargs) {
                    if (c == 'v') {
                        p->f.sharpV = p->f.sharp;
                        p->f.sharp = 0;
                        p->f.plusV = p->f.plus;
                        p->f.plus = 0;
                    }
                    print_arg(p, a[argnum], c);
                    argnum++;
                    i++;
                    simple_done = 1;
                }
                break;
            }
        }
        if (simple_done)
            continue;
        arg_number(&ps, &argnum, fmt, end, &i, nargs, &after_index);
        if (i < end && fmt[i] == '*') {
            i++;
            p->f.wid_present = int_from_arg(a, nargs, &argnum, &p->f.wid);
            if (!p->f.wid_present)
                sbuf_adds(out, "%!(BADWIDTH)");
            if (p->f.wid < 0) {
                p->f.wid = -p->f.wid;
                p->f.minus = 1;
                p->f.zero = 0;
            }
            after_index = 0;
        } else {
            p->f.wid_present = parsenum(fmt, i, end, &p->f.wid, &i);
            if (after_index && p->f.wid_present)
                ps.good_argnum = 0;
        }
        if (i + 1 < end && fmt[i] == '.') {
            i++;
            if (after_index)
                ps.good_argnum = 0;
            arg_number(&ps, &argnum, fmt, end, &i, nargs, &after_index);
            if (i < end && fmt[i] == '*') {
                i++;
                p->f.prec_present = int_from_arg(a, nargs, &argnum, &p->f.prec);
                if (p->f.prec < 0) {
                    p->f.prec = 0;
                    p->f.prec_present = 0;
                }
                if (!p->f.prec_present)
                    sbuf_adds(out, "%!(BADPREC)");
                after_index = 0;
            } else {
                p->f.prec_present = parsenum(fmt, i, end, &p->f.prec, &i);
                if (!p->f.prec_present) {
                    p->f.prec = 0;
                    p->f.prec_present = 1;
                }
            }
        }
        if (!after_index)
            arg_number(&ps, &argnum, fmt, end, &i, nargs, &after_index);
        if (i >= end) {
            sbuf_adds(out, "%!(NOVERB)");
            break;
        }
        int w = 1;
        int32_t verb = (unsigned char)fmt[i];
        if (verb >= 0x80)
            verb = decode_rune((const unsigned char *)fmt + i, end - i, &w);
        i += (size_t)w;
        char vb[4];
        int vn = encode_rune(vb, verb);
        if (verb == '%') {
            sbuf_addc(out, '%');
        } else if (!ps.good_argnum) {
            sbuf_adds(out, "%!");
            sbuf_add(out, vb, (size_t)vn);
            sbuf_adds(out, "(BADINDEX)");
        } else if (argnum >= nargs) {
            sbuf_adds(out, "%!");
            sbuf_add(out, vb, (size_t)vn);
            sbuf_adds(out, "(MISSING)");
        } else {
            if (verb == 'v') {
                p->f.sharpV = p->f.sharp;
                p->f.sharp = 0;
                p->f.plusV = p->f.plus;
                p->f.plus = 0;
            }
            print_arg(p, a[argnum], verb);
            argnum++;
        }
    }
    if (!ps.reordered && argnum < nargs) {
        memset(&p->f, 0, sizeof p->f);
        sbuf_adds(out, "%!(EXTRA ");
        for (int k = argnum; k < nargs; k++) {
            if (k > argnum)
                sbuf_adds(out, ", ");
            val x = v_concrete(a[k]);
            if (x.k == V_INVALID || x.k == V_MISSING) {
                sbuf_adds(out, "<nil>");
            } else {
                sbuf_adds(out, v_concrete_type(&x));
                sbuf_addc(out, '=');
                print_arg(p, x, 'v');
            }
        }
        sbuf_addc(out, ')');
    }
}

static int is_string_arg(const val *a) { return v_concrete(*a).k == V_STRING; }

static void go_sprint(sbuf *out, reader *rd, const val *a, int n)
{
    pp p;
    memset(&p, 0, sizeof p);
    p.buf = out;
    p.rd = rd;
    int prev_string = 0;
    for (int i = 0; i < n; i++) {
        int is_string = is_string_arg(&a[i]);
        if (i > 0 && !is_string && !prev_string)
            sbuf_addc(out, ' ');
        memset(&p.f, 0, sizeof p.f);
        print_arg(&p, a[i], 'v');
        prev_string = is_string;
    }
}

static void go_sprintln(sbuf *out, reader *rd, const val *a, int n)
{
    pp p;
    memset(&p, 0, sizeof p);
    p.buf = out;
    p.rd = rd;
    for (int i = 0; i < n; i++) {
        if (i > 0)
            sbuf_addc(out, ' ');
        print_arg(&p, a[i], 'v');
    }
    sbuf_addc(out, '\n');
}

/* ---------- execution (exec.go, funcs.go) ---------- */

typedef struct var {
    str name;
    val v;
} var;

typedef struct state {
    const tmpl *t;
    str tname;            /* name of the executing template */
    const node *node;     /* current node, for errors */
    var *vars;
    int nvars, capvars, base;
    int depth;
    long steps;
    sbuf *out;
    arena a;              /* strings made during execution */
    jmp_buf jb;
    tmpl_error *err;
    const char *stack_base;
    reader rd;            /* the caller's lookup hook */
} state;

/* The outermost execution's stack base: an execution started from inside a
 * lookup hook shares its budget instead of starting a fresh one. */
static _Thread_local const char *outer_stack_base;

enum { WALK_OK, WALK_BREAK, WALK_CONTINUE };

static void s_errorf(state *s, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void s_errorf(state *s, const char *fmt, ...)
{
    char msg[sizeof s->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sbuf b = SBUF_INIT;
    sbuf_adds(&b, "template: ");
    if (!s->node) {
        sbuf_add(&b, s->tname.p, s->tname.n);
        sbuf_addf(&b, ": %s", msg);
    } else {
        int pos = s->node->pos;
        const char *text = s->t->text;
        int line = 1, lastnl = -1;
        for (int i = 0; i < pos; i++)
            if (text[i] == '\n') {
                line++;
                lastnl = i;
            }
        int col = lastnl < 0 ? pos : pos - (lastnl + 1);
        sbuf_addf(&b, "%s:%d:%d: executing ", s->t->name, line, col);
        go_quote(&b, s->tname.p, s->tname.n, 0);
        sbuf_adds(&b, " at <");
        node_string(&b, s->node);
        sbuf_addf(&b, ">: %s", msg);
    }
    snprintf(s->err->msg, sizeof s->err->msg, "%s", sbuf_str(&b));
    sbuf_free(&b);
    longjmp(s->jb, 1);
}

/* a %q or %v argument rendered into the arena, for error messages */
static const char *s_quote(state *s, const char *p, size_t n)
{
    sbuf b = SBUF_INIT;
    go_quote(&b, p, n, 0);
    char *r = astrndup(&s->a, b.buf, b.len);
    sbuf_free(&b);
    return r;
}

static const char *s_fmtv(state *s, val v, int verb)
{
    sbuf b = SBUF_INIT;
    pp p;
    memset(&p, 0, sizeof p);
    p.buf = &b;
    p.rd = &s->rd;
    print_arg(&p, v, verb);
    if (b.len > 300)
        b.len = 300, b.buf[300] = 0;
    char *r = astrndup(&s->a, sbuf_str(&b), b.len);
    sbuf_free(&b);
    return r;
}

static void s_at(state *s, const node *n) { s->node = n; }

/* Fails the execution at the current node when a read through the hook failed. */
static void s_check_read(state *s)
{
    if (s->rd.failed)
        s_errorf(s, "%s", s->rd.err.msg);
}

/* container[key] (key NULL for arrays) as the hook sees it */
static val s_read(state *s, json_t *container, const char *key, json_t *value)
{
    if (!s->rd.fn)
        return v_from_json(value, 1);
    json_t *got = rd_read(&s->rd, container, key, value);
    s_check_read(s);
    return v_from_json(got, 1);
}

static void s_step(state *s)
{
    char here;
    if (s->stack_base && (size_t)(s->stack_base - &here) > MAX_EXEC_STACK)
        s_errorf(s, "exceeded maximum template depth (nesting too deep for the stack)");
    if (++s->steps > MAX_EXEC_STEPS)
        s_errorf(s, "execution too long (more than %ld steps)", MAX_EXEC_STEPS);
    if (s->a.total + s->out->len > MAX_EXEC_BYTES)
        s_errorf(s, "output too large (more than %zu bytes)", MAX_EXEC_BYTES);
}

static void s_push(state *s, str name, val v)
{
    if (s->nvars == s->capvars) {
        int cap = s->capvars ? s->capvars * 2 : 16;
        var *nv = realloc(s->vars, sizeof *nv * (size_t)cap);
        if (!nv)
            abort();
        s->vars = nv;
        s->capvars = cap;
    }
    s->vars[s->nvars].name = name;
    s->vars[s->nvars].v = v;
    s->nvars++;
}

static void s_set_var(state *s, str name, val v)
{
    for (int i = s->nvars - 1; i >= s->base; i--)
        if (str_eqs(s->vars[i].name, name)) {
            s->vars[i].v = v;
            return;
        }
    s_errorf(s, "undefined variable: %.*s", (int)name.n, name.p);
}

static void s_set_top_var(state *s, int n, val v)
{
    if (s->nvars - n >= s->base)
        s->vars[s->nvars - n].v = v;
}

static val s_var_value(state *s, str name)
{
    for (int i = s->nvars - 1; i >= s->base; i--)
        if (str_eqs(s->vars[i].name, name))
            return s->vars[i].v;
    s_errorf(s, "undefined variable: %.*s", (int)name.n, name.p);
}

static int is_true(val v, int *ok)
{
    *ok = 1;
    v = v_concrete(v);
    switch (v.k) {
    case V_INVALID: return 0;
    case V_STRING: return v.s.n > 0;
    case V_MAP: return json_object_size(v.j) > 0;
    case V_SLICE: return v.len > 0;
    case V_BOOL: case V_INT: case V_INT64: case V_UINT8: return v.i != 0;
    case V_FLOAT: return v.f != 0;
    case V_COMPLEX: return v.f != 0 || v.im != 0;
    }
    *ok = 0;
    return 0;
}

static int truth(val v)
{
    int ok;
    return is_true(v, &ok);
}

static val eval_pipeline(state *s, val dot, const node *pipe);
static val eval_arg(state *s, val dot, int typ, const node *n);
static int walk(state *s, val dot, const node *n);

/* parameter types of the builtins */
enum { T_NONE, T_RV, T_ANY, T_STR };

static void not_a_function(state *s, const nvec *args, int nargs, val final)
{
    if (nargs > 1 || final.k != V_MISSING) {
        sbuf b = SBUF_INIT;
        node_string(&b, args->v[0]);
        const char *a0 = astrndup(&s->a, b.buf ? b.buf : "", b.len);
        sbuf_free(&b);
        s_errorf(s, "can't give argument to non-function %s", a0);
    }
}

static val eval_field(state *s, str field, const node *n, int nargs, val final, val recv)
{
    (void)n;
    if (recv.k == V_INVALID)
        s_errorf(s, "nil data; no entry for key %s", s_quote(s, field.p, field.n));
    const char *typ = v_type(&recv);
    if (recv.k == V_NIL)
        s_errorf(s, "nil pointer evaluating %s.%.*s", typ, (int)field.n, field.p);
    recv = v_concrete(recv);
    int has_args = nargs > 1 || final.k != V_MISSING;
    if (recv.k == V_MAP) {
        if (has_args)
            s_errorf(s, "%.*s is not a method but has arguments", (int)field.n, field.p);
        char *key = astrndup(&s->a, field.p, field.n);
        json_t *x = json_object_get(recv.j, key);
        if (!x)
            s_errorf(s, "map has no entry for key %s", s_quote(s, field.p, field.n));
        return s_read(s, recv.j, key, x);
    }
    s_errorf(s, "can't evaluate field %.*s in type %s", (int)field.n, field.p, typ);
}

static val eval_field_chain(state *s, val recv, const node *n, const str *ident, int nident, int nargs, val final)
{
    val missing = v_make(V_MISSING);
    for (int i = 0; i < nident - 1; i++)
        recv = eval_field(s, ident[i], n, 0, missing, recv);
    return eval_field(s, ident[nident - 1], n, nargs, final, recv);
}

static val eval_field_node(state *s, val dot, const node *f, int nargs, val final)
{
    s_at(s, f);
    return eval_field_chain(s, dot, f, f->ident, f->nident, nargs, final);
}

static val eval_chain_node(state *s, val dot, const node *c, int nargs, val final)
{
    s_at(s, c);
    if (c->sub->type == N_NIL) {
        sbuf b = SBUF_INIT;
        node_string(&b, c);
        const char *cs = astrndup(&s->a, b.buf, b.len);
        sbuf_free(&b);
        s_errorf(s, "indirection through explicit nil in %s", cs);
    }
    val pipe = eval_arg(s, dot, T_NONE, c->sub);
    return eval_field_chain(s, pipe, c, c->ident, c->nident, nargs, final);
}

static val eval_variable_node(state *s, val dot, const node *v, const nvec *args, int nargs, val final)
{
    (void)dot;
    s_at(s, v);
    val value = s_var_value(s, v->ident[0]);
    if (v->nident == 1) {
        if (args)
            not_a_function(s, args, nargs, final);
        return value;
    }
    return eval_field_chain(s, value, v, v->ident + 1, v->nident - 1, nargs, final);
}

static val ideal_constant(state *s, const node *c)
{
    s_at(s, c);
    const char *t = c->text.p;
    size_t n = c->text.n;
    int is_hex = n > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') && !memchr(t, 'p', n) && !memchr(t, 'P', n);
    int is_rune = n > 0 && t[0] == '\'';
    int has_fl = memchr(t, '.', n) || memchr(t, 'e', n) || memchr(t, 'E', n) || memchr(t, 'p', n) || memchr(t, 'P', n);
    if (c->iscomplex) {
        val v = v_make(V_COMPLEX);
        v.f = c->cre;
        v.im = c->cim;
        return v;
    }
    if (c->isfloat && !is_hex && !is_rune && has_fl) {
        val v = v_make(V_FLOAT);
        v.f = c->f64;
        return v;
    }
    if (c->isint)
        return v_int(c->i64);
    if (c->isuint)
        s_errorf(s, "%.*s overflows int", (int)n, t);
    return v_make(V_INVALID);
}

/* validateType: value passed to a parameter of type typ */
static val validate_type(state *s, val v, int typ)
{
    if (v.k == V_INVALID) {
        if (typ == T_NONE || typ == T_RV)
            return v;
        if (typ == T_ANY) {
            val n = v_make(V_NIL);
            n.iface = 1;
            return n;
        }
        s_errorf(s, "invalid value; expected string");
    }
    if (typ == T_STR) {
        val c = v;
        if (c.k == V_STRING)
            return v_concrete(c);
        if (c.iface && c.k != V_NIL)
            c = v_concrete(c);
        s_errorf(s, "wrong type for value; expected string; got %s", v_type(&c));
    }
    return v;
}

static val eval_empty_interface(state *s, val dot, const node *n);
static val eval_function(state *s, val dot, const node *id, const node *cmd, const nvec *args, int nargs, val final);

static val eval_arg(state *s, val dot, int typ, const node *n)
{
    s_at(s, n);
    val missing = v_make(V_MISSING);
    switch (n->type) {
    case N_DOT: return validate_type(s, dot, typ);
    case N_NIL:
        if (typ == T_RV)
            return v_make(V_INVALID);
        if (typ == T_ANY) {
            val z = v_make(V_NIL);
            z.iface = 1;
            return z;
        }
        s_errorf(s, "cannot assign nil to string");
    case N_FIELD: return validate_type(s, eval_field_node(s, dot, n, 1, missing), typ);
    case N_VARIABLE: return validate_type(s, eval_variable_node(s, dot, n, NULL, 0, missing), typ);
    case N_PIPE: return validate_type(s, eval_pipeline(s, dot, n), typ);
    case N_IDENT: return validate_type(s, eval_function(s, dot, n, n, NULL, 0, missing), typ);
    case N_CHAIN: return validate_type(s, eval_chain_node(s, dot, n, 0, missing), typ);
    }
    if (typ == T_STR) {
        s_at(s, n);
        if (n->type == N_STRING)
            return v_string(n->text.p, n->text.n);
        sbuf b = SBUF_INIT;
        node_string(&b, n);
        const char *ns = astrndup(&s->a, b.buf, b.len);
        sbuf_free(&b);
        s_errorf(s, "expected string; found %s", ns);
    }
    return eval_empty_interface(s, dot, n);
}

static val eval_empty_interface(state *s, val dot, const node *n)
{
    (void)dot;
    s_at(s, n);
    switch (n->type) {
    case N_BOOL: return v_bool(n->b);
    case N_NUMBER: return ideal_constant(s, n);
    case N_STRING: return v_string(n->text.p, n->text.n);
    }
    s_errorf(s, "can't handle assignment of node to empty interface argument");
}

/* ---- builtin functions; each returns 0 or -1 with *err set ---- */

static const char *str_arena(state *s, sbuf *b)
{
    const char *r = astrndup(&s->a, b->buf ? b->buf : "", b->len);
    sbuf_free(b);
    return r;
}

static int index_arg(val idx, size_t cap, size_t *out, char *err, size_t errsz)
{
    idx = v_concrete(idx);
    int64_t x;
    switch (idx.k) {
    case V_INT: case V_INT64: case V_UINT8: x = idx.i; break;
    case V_INVALID: snprintf(err, errsz, "cannot index slice/array with nil"); return -1;
    default: snprintf(err, errsz, "cannot index slice/array with type %s", v_concrete_type(&idx)); return -1;
    }
    if (x < 0 || (uint64_t)x > cap) {
        snprintf(err, errsz, "index out of range: %lld", (long long)x);
        return -1;
    }
    *out = (size_t)x;
    return 0;
}

static int fn_index(state *s, val item, const val *idx, int n, val *res, char *err, size_t errsz)
{
    item = v_concrete(item);
    if (item.k == V_INVALID) {
        snprintf(err, errsz, "index of untyped nil");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        val ix = v_concrete(idx[i]);
        item = v_concrete(item);
        if (item.k == V_INVALID) {
            /* an interface element that is nil: reflect panics on Kind Invalid */
            snprintf(err, errsz, "can't index item of type interface {}");
            return -1;
        }
        switch (item.k) {
        case V_SLICE: case V_STRING: {
            size_t len = item.k == V_SLICE ? item.len : item.s.n;
            size_t x;
            if (index_arg(ix, len, &x, err, errsz) < 0)
                return -1;
            if (x == len) {
                /* reflect's Index panics; Go reports the panic text */
                snprintf(err, errsz, "reflect: %s index out of range", item.k == V_SLICE ? "slice" : "string");
                return -1;
            }
            if (item.k == V_SLICE) {
                item = s_read(s, item.j, NULL, v_slice_elem(&item, x));
            } else {
                val b = v_make(V_UINT8);
                b.i = (unsigned char)item.s.p[x];
                item = b;
            }
            break;
        }
        case V_MAP: {
            if (ix.k == V_INVALID) {
                ix = v_make(V_NIL); /* reflect.Zero(string) would be ""; Go: value is nil */
                snprintf(err, errsz, "value is nil; should be of type string");
                return -1;
            }
            if (ix.k != V_STRING) {
                snprintf(err, errsz, "value has type %s; should be string", v_concrete_type(&ix));
                return -1;
            }
            char *key = astrndup(&s->a, ix.s.p, ix.s.n);
            json_t *x = json_object_get(item.j, key);
            if (!x || strlen(key) != ix.s.n) {
                /* the deliberate difference from Go: a missing key is an error */
                snprintf(err, errsz, "map has no entry for key %s", s_quote(s, ix.s.p, ix.s.n));
                return -1;
            }
            item = s_read(s, item.j, key, x);
            break;
        }
        default:
            snprintf(err, errsz, "can't index item of type %s", v_type(&item));
            return -1;
        }
    }
    *res = item;
    return 0;
}

static int fn_slice(state *s, val item, const val *idx, int n, val *res, char *err, size_t errsz)
{
    (void)s;
    item = v_concrete(item);
    if (item.k == V_INVALID) {
        snprintf(err, errsz, "slice of untyped nil");
        return -1;
    }
    if (n > 3) {
        snprintf(err, errsz, "too many slice indexes: %d", n);
        return -1;
    }
    size_t cap;
    if (item.k == V_STRING) {
        if (n == 3) {
            snprintf(err, errsz, "cannot 3-index slice a string");
            return -1;
        }
        cap = item.s.n;
    } else if (item.k == V_SLICE) {
        cap = item.cap;
    } else {
        snprintf(err, errsz, "can't slice item of type %s", v_concrete_type(&item));
        return -1;
    }
    size_t ix[3] = { 0, item.k == V_STRING ? item.s.n : item.len, 0 };
    for (int i = 0; i < n; i++)
        if (index_arg(idx[i], cap, &ix[i], err, errsz) < 0)
            return -1;
    if (ix[0] > ix[1]) {
        snprintf(err, errsz, "invalid slice index: %zu > %zu", ix[0], ix[1]);
        return -1;
    }
    if (n < 3) {
        if (item.k == V_STRING) {
            if (ix[1] > item.s.n) {
                snprintf(err, errsz, "reflect.Value.Slice: string slice index out of bounds");
                return -1;
            }
            *res = v_string(item.s.p + ix[0], ix[1] - ix[0]);
        } else {
            item.off += ix[0];
            item.len = ix[1] - ix[0];
            item.cap -= ix[0];
            *res = item;
        }
        return 0;
    }
    if (ix[1] > ix[2]) {
        snprintf(err, errsz, "invalid slice index: %zu > %zu", ix[1], ix[2]);
        return -1;
    }
    item.off += ix[0];
    item.len = ix[1] - ix[0];
    item.cap = ix[2] - ix[0];
    *res = item;
    return 0;
}

enum { K_INVALID, K_BOOL, K_COMPLEX, K_INT, K_FLOAT, K_STRING, K_UINT };

static int basic_kind(const val *v)
{
    switch (v->k) {
    case V_BOOL: return K_BOOL;
    case V_INT: case V_INT64: return K_INT;
    case V_UINT8: return K_UINT;
    case V_FLOAT: return K_FLOAT;
    case V_COMPLEX: return K_COMPLEX;
    case V_STRING: return K_STRING;
    }
    return K_INVALID;
}

static int fn_eq(state *s, val a1, const val *a2, int n, int *res, char *err, size_t errsz)
{
    a1 = v_concrete(a1);
    if (n == 0) {
        snprintf(err, errsz, "missing argument for comparison");
        return -1;
    }
    int k1 = basic_kind(&a1);
    for (int i = 0; i < n; i++) {
        val a = v_concrete(a2[i]);
        int k2 = basic_kind(&a);
        int t = 0;
        if (k1 != k2) {
            if (k1 == K_INT && k2 == K_UINT)
                t = a1.i >= 0 && a1.i == a.i;
            else if (k1 == K_UINT && k2 == K_INT)
                t = a.i >= 0 && a1.i == a.i;
            else if (a1.k != V_INVALID && a.k != V_INVALID) {
                snprintf(err, errsz, "incompatible types for comparison");
                return -1;
            }
        } else {
            switch (k1) {
            case K_BOOL: case K_INT: case K_UINT: t = a1.i == a.i; break;
            case K_COMPLEX: t = a1.f == a.f && a1.im == a.im; break;
            case K_FLOAT: t = a1.f == a.f; break;
            case K_STRING: t = a1.s.n == a.s.n && memcmp(a1.s.p, a.s.p, a.s.n) == 0; break;
            default:
                if (a1.k != a.k && a1.k != V_INVALID && a.k != V_INVALID) {
                    snprintf(err, errsz, "non-comparable types %s: %s, %s: %s", s_fmtv(s, a1, 's'),
                             v_type(&a1), v_type(&a), s_fmtv(s, a, 'v'));
                    return -1;
                }
                if (a1.k == V_INVALID || a.k == V_INVALID) {
                    t = (a1.k == V_INVALID) == (a.k == V_INVALID);
                } else {
                    snprintf(err, errsz, "non-comparable type %s: %s", s_fmtv(s, a, 's'), v_type(&a));
                    return -1;
                }
            }
        }
        if (t) {
            *res = 1;
            return 0;
        }
    }
    *res = 0;
    return 0;
}

static int fn_lt(val a1, val a2, int *res, char *err, size_t errsz)
{
    a1 = v_concrete(a1);
    int k1 = basic_kind(&a1);
    if (k1 == K_INVALID) {
        snprintf(err, errsz, "invalid type for comparison");
        return -1;
    }
    a2 = v_concrete(a2);
    int k2 = basic_kind(&a2);
    if (k2 == K_INVALID) {
        snprintf(err, errsz, "invalid type for comparison");
        return -1;
    }
    int t = 0;
    if (k1 != k2) {
        if (k1 == K_INT && k2 == K_UINT)
            t = a1.i < 0 || a1.i < a2.i;
        else if (k1 == K_UINT && k2 == K_INT)
            t = a2.i >= 0 && a1.i < a2.i;
        else {
            snprintf(err, errsz, "incompatible types for comparison");
            return -1;
        }
    } else {
        switch (k1) {
        case K_BOOL: case K_COMPLEX:
            snprintf(err, errsz, "invalid type for comparison");
            return -1;
        case K_FLOAT: t = a1.f < a2.f; break;
        case K_INT: case K_UINT: t = a1.i < a2.i; break;
        case K_STRING: {
            size_t m = a1.s.n < a2.s.n ? a1.s.n : a2.s.n;
            int c = memcmp(a1.s.p, a2.s.p, m);
            t = c < 0 || (c == 0 && a1.s.n < a2.s.n);
            break;
        }
        }
    }
    *res = t;
    return 0;
}

static void html_escape(sbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case 0: sbuf_adds(b, "\xEF\xBF\xBD"); break;
        case '"': sbuf_adds(b, "&#34;"); break;
        case '\'': sbuf_adds(b, "&#39;"); break;
        case '&': sbuf_adds(b, "&amp;"); break;
        case '<': sbuf_adds(b, "&lt;"); break;
        case '>': sbuf_adds(b, "&gt;"); break;
        default: sbuf_addc(b, s[i]);
        }
    }
}

static void js_escape(sbuf *b, const char *s, size_t n)
{
    static const char hx[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            switch (c) {
            case '\\': sbuf_adds(b, "\\\\"); continue;
            case '\'': sbuf_adds(b, "\\'"); continue;
            case '"': sbuf_adds(b, "\\\""); continue;
            case '<': sbuf_adds(b, "\\u003C"); continue;
            case '>': sbuf_adds(b, "\\u003E"); continue;
            case '&': sbuf_adds(b, "\\u0026"); continue;
            case '=': sbuf_adds(b, "\\u003D"); continue;
            }
            if (c < ' ') {
                sbuf_adds(b, "\\u00");
                sbuf_addc(b, hx[c >> 4]);
                sbuf_addc(b, hx[c & 15]);
            } else {
                sbuf_addc(b, (char)c);
            }
            continue;
        }
        int w;
        int32_t r = decode_rune((const unsigned char *)s + i, n - i, &w);
        if (is_print(r))
            sbuf_add(b, s + i, (size_t)w);
        else
            sbuf_addf(b, "\\u%04X", (unsigned)r);
        i += (size_t)w - 1;
    }
}

static void url_query_escape(sbuf *b, const char *s, size_t n)
{
    static const char hx[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '_' || c == '.' || c == '~') {
            sbuf_addc(b, (char)c);
        } else if (c == ' ') {
            sbuf_addc(b, '+');
        } else {
            sbuf_addc(b, '%');
            sbuf_addc(b, hx[c >> 4]);
            sbuf_addc(b, hx[c & 15]);
        }
    }
}

/* evalArgs: the single string argument, or fmt.Sprint of the printable values */
static void eval_args_string(state *s, const val *a, int n, sbuf *out)
{
    (void)s;
    if (n == 1 && v_concrete(a[0]).k == V_STRING) {
        val c = v_concrete(a[0]);
        sbuf_add(out, c.s.p, c.s.n);
        return;
    }
    val tmp[n > 0 ? n : 1];
    for (int i = 0; i < n; i++) {
        val c = v_concrete(a[i]);
        tmp[i] = c.k == V_INVALID ? v_string("<no value>", 10) : c;
    }
    go_sprint(out, &s->rd, tmp, n);
}

static val call_builtin(state *s, int fi, const val *argv, int argc, char *err, size_t errsz, int *failed)
{
    const char *name = builtin_names[fi];
    val res = v_make(V_INVALID);
    *failed = 0;
    sbuf b = SBUF_INIT;
    if (!strcmp(name, "call")) {
        val f = v_concrete(argv[0]);
        if (f.k == V_INVALID)
            snprintf(err, errsz, "call of nil");
        else
            snprintf(err, errsz, "non-function of type %s", v_concrete_type(&f));
        *failed = 1;
    } else if (!strcmp(name, "html") || !strcmp(name, "js") || !strcmp(name, "urlquery")) {
        sbuf t = SBUF_INIT;
        eval_args_string(s, argv, argc, &t);
        const char *tp = t.buf ? t.buf : "";
        if (name[0] == 'h')
            html_escape(&b, tp, t.len);
        else if (name[0] == 'j')
            js_escape(&b, tp, t.len);
        else
            url_query_escape(&b, tp, t.len);
        sbuf_free(&t);
        size_t n = b.len;
        res = v_string(str_arena(s, &b), n);
    } else if (!strcmp(name, "index")) {
        *failed = fn_index(s, argv[0], argv + 1, argc - 1, &res, err, errsz) < 0;
    } else if (!strcmp(name, "slice")) {
        *failed = fn_slice(s, argv[0], argv + 1, argc - 1, &res, err, errsz) < 0;
    } else if (!strcmp(name, "len")) {
        val it = v_concrete(argv[0]);
        switch (it.k) {
        case V_STRING: res = v_int((int64_t)it.s.n); break;
        case V_SLICE: res = v_int((int64_t)it.len); break;
        case V_MAP: res = v_int((int64_t)json_object_size(it.j)); break;
        case V_INVALID:
            snprintf(err, errsz, "reflect: call of reflect.Value.Type on zero Value");
            *failed = 1;
            break;
        default:
            snprintf(err, errsz, "len of type %s", v_concrete_type(&it));
            *failed = 1;
        }
    } else if (!strcmp(name, "not")) {
        res = v_bool(!truth(argv[0]));
    } else if (!strcmp(name, "print") || !strcmp(name, "println")) {
        if (name[5])
            go_sprintln(&b, &s->rd, argv, argc);
        else
            go_sprint(&b, &s->rd, argv, argc);
        size_t n = b.len;
        res = v_string(str_arena(s, &b), n);
    } else if (!strcmp(name, "printf")) {
        val f = v_concrete(argv[0]);
        go_sprintf(&b, &s->rd, f.s.p, f.s.n, argv + 1, argc - 1);
        size_t n = b.len;
        res = v_string(str_arena(s, &b), n);
    } else if (!strcmp(name, "eq") || !strcmp(name, "ne")) {
        int t;
        if (fn_eq(s, argv[0], argv + 1, argc - 1, &t, err, errsz) < 0)
            *failed = 1;
        else
            res = v_bool(name[0] == 'e' ? t : !t);
    } else {
        /* lt le gt ge */
        int lt, eq = 0;
        if (fn_lt(argv[0], argv[1], &lt, err, errsz) < 0) {
            *failed = 1;
        } else if (!strcmp(name, "lt")) {
            res = v_bool(lt);
        } else if (!strcmp(name, "ge")) {
            res = v_bool(!lt);
        } else {
            int le = lt;
            if (!lt) {
                if (fn_eq(s, argv[0], argv + 1, 1, &eq, err, errsz) < 0)
                    *failed = 1;
                le = eq;
            }
            if (!*failed)
                res = v_bool(name[0] == 'l' ? le : !le);
        }
    }
    if (b.buf)
        sbuf_free(&b);
    return res;
}

static const struct sig {
    int nin, variadic;
    int in[2];
} sigs[] = {
    /* and */ { 2, 1, { T_RV, T_RV } }, /* call */ { 2, 1, { T_RV, T_RV } },
    /* html */ { 1, 1, { T_ANY } }, /* index */ { 2, 1, { T_RV, T_RV } },
    /* slice */ { 2, 1, { T_RV, T_RV } }, /* js */ { 1, 1, { T_ANY } },
    /* len */ { 1, 0, { T_RV } }, /* not */ { 1, 0, { T_RV } },
    /* or */ { 2, 1, { T_RV, T_RV } }, /* print */ { 1, 1, { T_ANY } },
    /* printf */ { 2, 1, { T_STR, T_ANY } }, /* println */ { 1, 1, { T_ANY } },
    /* urlquery */ { 1, 1, { T_ANY } }, /* eq */ { 2, 1, { T_RV, T_RV } },
    /* ge */ { 2, 0, { T_RV, T_RV } }, /* gt */ { 2, 0, { T_RV, T_RV } },
    /* le */ { 2, 0, { T_RV, T_RV } }, /* lt */ { 2, 0, { T_RV, T_RV } },
    /* ne */ { 2, 0, { T_RV, T_RV } },
};

static val eval_call(state *s, val dot, int fi, const node *n, const nvec *args, int nargs_total, val final)
{
    const char *name = builtin_names[fi];
    const struct sig *sg = &sigs[fi];
    node *const *args_v = args ? args->v + 1 : NULL;
    int nargs = args ? nargs_total - 1 : 0;
    int num_in = nargs + (final.k != V_MISSING);
    int num_fixed = nargs;
    if (sg->variadic) {
        num_fixed = sg->nin - 1;
        if (num_in < num_fixed)
            s_errorf(s, "wrong number of args for %s: want at least %d got %d", name, sg->nin - 1, nargs);
    } else if (num_in != sg->nin) {
        s_errorf(s, "wrong number of args for %s: want %d got %d", name, sg->nin, num_in);
    }
    if (!strcmp(name, "and") || !strcmp(name, "or")) {
        int is_or = name[0] == 'o';
        val v = v_make(V_INVALID);
        for (int i = 0; i < nargs; i++) {
            v = eval_arg(s, dot, T_RV, args_v[i]);
            if (truth(v) == is_or)
                return v;
        }
        if (final.k != V_MISSING)
            v = validate_type(s, final, T_RV);
        return v;
    }
    val *argv = aalloc(&s->a, sizeof *argv * (size_t)(num_in > 0 ? num_in : 1));
    int i = 0;
    for (; i < num_fixed && i < nargs; i++)
        argv[i] = eval_arg(s, dot, sg->in[i], args_v[i]);
    if (sg->variadic)
        for (; i < nargs; i++)
            argv[i] = eval_arg(s, dot, sg->in[sg->nin - 1], args_v[i]);
    if (final.k != V_MISSING) {
        int t = sg->in[sg->nin - 1];
        if (sg->variadic && num_in - 1 < num_fixed)
            t = sg->in[num_in - 1];
        argv[i] = validate_type(s, final, t);
    }
    char err[600];
    int failed;
    const node *last = s->node; /* Go reports later errors at the last argument */
    s_at(s, n);                 /* where a failed read through the hook is reported */
    val r = call_builtin(s, fi, argv, num_in, err, sizeof err, &failed);
    s_check_read(s);
    if (failed)
        s_errorf(s, "error calling %s: %s", name, err);
    s_at(s, last);
    return r;
}

static val eval_function(state *s, val dot, const node *id, const node *cmd, const nvec *args, int nargs, val final)
{
    s_at(s, id);
    int fi = builtin_index(id->text);
    if (fi < 0)
        s_errorf(s, "%s is not a defined function", s_quote(s, id->text.p, id->text.n));
    return eval_call(s, dot, fi, cmd, args, nargs, final);
}

static val eval_command(state *s, val dot, const node *cmd, val final)
{
    s_step(s);
    const node *first = cmd->list.v[0];
    int nargs = cmd->list.n;
    switch (first->type) {
    case N_FIELD: return eval_field_node(s, dot, first, nargs, final);
    case N_CHAIN: return eval_chain_node(s, dot, first, nargs, final);
    case N_IDENT: return eval_function(s, dot, first, cmd, &cmd->list, nargs, final);
    case N_PIPE:
        not_a_function(s, &cmd->list, nargs, final);
        return eval_pipeline(s, dot, first);
    case N_VARIABLE: return eval_variable_node(s, dot, first, &cmd->list, nargs, final);
    }
    s_at(s, first);
    not_a_function(s, &cmd->list, nargs, final);
    switch (first->type) {
    case N_BOOL: return v_bool(first->b);
    case N_DOT: return dot;
    case N_NIL: s_errorf(s, "nil is not a command");
    case N_NUMBER: return ideal_constant(s, first);
    case N_STRING: return v_string(first->text.p, first->text.n);
    }
    s_errorf(s, "can't evaluate command");
}

static val eval_pipeline(state *s, val dot, const node *pipe)
{
    if (!pipe)
        return v_make(V_INVALID);
    s_at(s, pipe);
    val value = v_make(V_MISSING);
    for (int i = 0; i < pipe->list.n; i++) {
        value = eval_command(s, dot, pipe->list.v[i], value);
        if (value.iface)
            value = v_concrete(value);
    }
    for (int i = 0; i < pipe->decl.n; i++) {
        if (pipe->is_assign)
            s_set_var(s, pipe->decl.v[i]->ident[0], value);
        else
            s_push(s, pipe->decl.v[i]->ident[0], value);
    }
    return value;
}

static void print_value_node(state *s, const node *n, val v)
{
    s_at(s, n);
    if (v.k == V_INVALID) {
        sbuf_adds(s->out, "<no value>");
        return;
    }
    pp p;
    memset(&p, 0, sizeof p);
    p.buf = s->out;
    p.rd = &s->rd;
    print_arg(&p, v, 'v');
    s_check_read(s);
}

static int walk_if_or_with(state *s, int type, val dot, const node *n)
{
    int mark = s->nvars;
    val v = eval_pipeline(s, dot, n->sub);
    int ok;
    int t = is_true(v, &ok);
    int rc = WALK_OK;
    if (t)
        rc = walk(s, type == N_WITH ? v : dot, n->blist);
    else if (n->belse)
        rc = walk(s, dot, n->belse);
    s->nvars = mark;
    return rc;
}

static int range_iteration(state *s, const node *r, int mark, val index, val elem)
{
    if (r->sub->decl.n > 0)
        s_set_top_var(s, 1, elem);
    if (r->sub->decl.n > 1)
        s_set_top_var(s, 2, index);
    int rc = walk(s, elem, r->blist);
    s->nvars = mark;
    return rc;
}

static int walk_range(state *s, val dot, const node *r)
{
    s_at(s, r);
    int mark0 = s->nvars;
    val v = v_concrete(eval_pipeline(s, dot, r->sub));
    int mark = s->nvars;
    int rc = WALK_OK;
    switch (v.k) {
    case V_SLICE:
        if (v.len == 0)
            break;
        for (size_t i = 0; i < v.len; i++) {
            s_at(s, r->sub);
            rc = range_iteration(s, r, mark, v_int((int64_t)i), s_read(s, v.j, NULL, v_slice_elem(&v, i)));
            if (rc == WALK_BREAK)
                break;
        }
        s->nvars = mark0;
        return WALK_OK;
    case V_MAP: {
        if (json_object_size(v.j) == 0)
            break;
        size_t n;
        const char **keys = sorted_keys(v.j, &n);
        /* keys are freed on every path: copy them into the arena first */
        const char **ak = aalloc(&s->a, sizeof *ak * n);
        for (size_t i = 0; i < n; i++)
            ak[i] = keys[i];
        free(keys);
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_object_get(v.j, ak[i]);
            s_at(s, r->sub);
            rc = range_iteration(s, r, mark, v_string(ak[i], strlen(ak[i])), s_read(s, v.j, ak[i], x));
            if (rc == WALK_BREAK)
                break;
        }
        s->nvars = mark0;
        return WALK_OK;
    }
    case V_INVALID:
        break;
    default:
        s_errorf(s, "range can't iterate over %s", s_fmtv(s, v, 'v'));
    }
    if (r->belse) {
        rc = walk(s, dot, r->belse);
        if (rc == WALK_BREAK)
            rc = WALK_OK;
    }
    s->nvars = mark0;
    return rc;
}

static int walk_template(state *s, val dot, const node *t)
{
    s_at(s, t);
    ttree *tr = tmpl_lookup(s->t, t->text);
    if (!tr || !tr->root)
        s_errorf(s, "template %s not defined", s_quote(s, t->text.p, t->text.n));
    if (s->depth >= MAX_EXEC_DEPTH)
        s_errorf(s, "exceeded maximum template depth (%d)", MAX_EXEC_DEPTH);
    dot = eval_pipeline(s, dot, t->sub);
    str oname = s->tname;
    int obase = s->base, onvars = s->nvars;
    const node *onode = s->node;
    s->depth++;
    s->tname = tr->name;
    s->base = s->nvars;
    s_push(s, (str){ "$", 1 }, dot);
    walk(s, dot, tr->root);
    s->depth--;
    s->tname = oname;
    s->base = obase;
    s->nvars = onvars;
    s->node = onode;
    return WALK_OK;
}

static int walk(state *s, val dot, const node *n)
{
    s_step(s);
    s_at(s, n);
    switch (n->type) {
    case N_ACTION: {
        val v = eval_pipeline(s, dot, n->sub);
        if (n->sub->decl.n == 0)
            print_value_node(s, n, v);
        return WALK_OK;
    }
    case N_BREAK: return WALK_BREAK;
    case N_CONTINUE: return WALK_CONTINUE;
    case N_COMMENT: return WALK_OK;
    case N_IF: return walk_if_or_with(s, N_IF, dot, n);
    case N_WITH: return walk_if_or_with(s, N_WITH, dot, n);
    case N_LIST:
        for (int i = 0; i < n->list.n; i++) {
            int rc = walk(s, dot, n->list.v[i]);
            if (rc != WALK_OK)
                return rc;
        }
        return WALK_OK;
    case N_RANGE: return walk_range(s, dot, n);
    case N_TEMPLATE: return walk_template(s, dot, n);
    case N_TEXT: sbuf_add(s->out, n->text.p, n->text.n); return WALK_OK;
    }
    s_errorf(s, "unknown node");
}

/* ---------- public API ---------- */

static int parse_into(tmpl *t, lexer *l, parser *p, tmpl_error *err)
{
    jmp_buf jb;
    pctx c = { t, l, &jb, err, 0 };
    if (setjmp(jb))
        return -1;
    p_init(p, &c, (str){ t->name, strlen(t->name) });
    p_parse(p);
    p_add(p);
    return 0;
}

tmpl *tmpl_parse(const char *name, const char *text, tmpl_error *err)
{
    tmpl *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    t->name = astrndup(&t->a, name, strlen(name));
    t->text = astrndup(&t->a, text, strlen(text));
    lexer *l = aalloc(&t->a, sizeof *l);
    l->a = &t->a;
    l->input = t->text;
    l->len = strlen(t->text);
    l->line = l->start_line = 1;
    l->state = LS_TEXT;
    parser *p = aalloc(&t->a, sizeof *p);
    if (parse_into(t, l, p, err) < 0) {
        tmpl_free(t);
        return NULL;
    }
    return t;
}

int tmpl_exec(const tmpl *t, const char *name, json_t *data, sbuf *out, tmpl_error *err)
{
    return tmpl_exec_with(t, name, data, NULL, NULL, out, err);
}

int tmpl_exec_with(const tmpl *t, const char *name, json_t *data, tmpl_lookup_fn fn, void *ud,
                   sbuf *out, tmpl_error *err)
{
    str want = { name ? name : t->name, strlen(name ? name : t->name) };
    ttree *tr = tmpl_lookup(t, want);
    if (!tr) {
        sbuf b = SBUF_INIT;
        sbuf_adds(&b, "template: no template ");
        go_quote(&b, want.p, want.n, 0);
        sbuf_adds(&b, " associated with template ");
        go_quote(&b, t->name, strlen(t->name), 0);
        snprintf(err->msg, sizeof err->msg, "%s", sbuf_str(&b));
        sbuf_free(&b);
        return -1;
    }
    state *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->t = t;
    s->tname = tr->name;
    s->out = out;
    s->err = err;
    s->rd.fn = fn;
    s->rd.ud = ud;
    val dot = v_from_json(data, 0);
    char base;
    const char *volatile outer = outer_stack_base;
    if (!outer)
        outer_stack_base = &base;
    s->stack_base = outer_stack_base;
    volatile int rc = 0;
    if (setjmp(s->jb)) {
        rc = -1;
    } else {
        s_push(s, (str){ "$", 1 }, dot);
        if (!tr->root)
            s_errorf(s, "%s is an incomplete or empty template", s_quote(s, tr->name.p, tr->name.n));
        walk(s, dot, tr->root);
    }
    outer_stack_base = outer;
    free(s->vars);
    afree(&s->a);
    free(s);
    return rc;
}

void tmpl_free(tmpl *t)
{
    if (!t)
        return;
    afree(&t->a);
    free(t);
}

int tmpl_render(const char *name, const char *text, json_t *data, sbuf *out, tmpl_error *err)
{
    return tmpl_render_with(name, text, data, NULL, NULL, out, err);
}

int tmpl_render_with(const char *name, const char *text, json_t *data, tmpl_lookup_fn fn,
                     void *ud, sbuf *out, tmpl_error *err)
{
    tmpl *t = tmpl_parse(name, text, err);
    if (!t)
        return -1;
    int rc = tmpl_exec_with(t, NULL, data, fn, ud, out, err);
    tmpl_free(t);
    return rc;
}

int tmpl_is_plain(const char *text)
{
    return strstr(text, "{{") == NULL;
}
