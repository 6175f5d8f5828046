/* lex — the lexer (text/template/parse/lex.go): template text to items. */
#include <stdarg.h>
#include <stdio.h>

#include "tmpl_int.h"

enum lstate {
    LS_DONE, LS_TEXT, LS_LEFTDELIM, LS_COMMENT, LS_RIGHTDELIM, LS_INSIDE, LS_SPACE, LS_IDENT,
    LS_FIELD, LS_VARIABLE, LS_CHAR, LS_NUMBER, LS_QUOTE, LS_RAWQUOTE,
};

struct lexer {
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
};

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

lexer *lx_new(arena *a, const char *text)
{
    lexer *l = aalloc(a, sizeof *l);
    l->a = a;
    l->input = text;
    l->len = strlen(text);
    l->line = l->start_line = 1;
    l->state = LS_TEXT;
    return l;
}

item lx_item(lexer *l)
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
