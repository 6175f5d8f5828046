/* funcs — the builtin functions (text/template/funcs.go) as a table: name,
 * parameter types and implementation. */
#include <stdio.h>

#include "tmpl_int.h"


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

/* Each builtin: argv holds argc arguments already converted to its parameter
 * types; returns 0 with *res set, or -1 with err set. */

static int f_call(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)s, (void)argc, (void)res;
    val f = v_concrete(argv[0]);
    if (f.k == V_INVALID)
        snprintf(err, errsz, "call of nil");
    else
        snprintf(err, errsz, "non-function of type %s", v_concrete_type(&f));
    return -1;
}

/* html, js, urlquery: the escaped evalArgs string */
static int escaped(state *s, const val *argv, int argc, val *res, void (*esc)(sbuf *, const char *, size_t))
{
    sbuf t = { .budget = s->budget }, b = { .budget = s->budget };
    eval_args_string(s, argv, argc, &t);
    esc(&b, t.buf ? t.buf : "", t.len);
    sbuf_free(&t);
    size_t n = b.len;
    const char *r = s_keep(s, &b);
    if (!r)
        return -1;   /* the executor reports the budget */
    *res = v_string(r, n);
    return 0;
}

static int f_html(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)err, (void)errsz;
    return escaped(s, argv, argc, res, html_escape);
}

static int f_js(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)err, (void)errsz;
    return escaped(s, argv, argc, res, js_escape);
}

static int f_urlquery(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)err, (void)errsz;
    return escaped(s, argv, argc, res, url_query_escape);
}

static int f_index(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    return fn_index(s, argv[0], argv + 1, argc - 1, res, err, errsz);
}

static int f_slice(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    return fn_slice(s, argv[0], argv + 1, argc - 1, res, err, errsz);
}

static int f_len(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)s, (void)argc;
    val it = v_concrete(argv[0]);
    switch (it.k) {
    case V_STRING: *res = v_int((int64_t)it.s.n); return 0;
    case V_SLICE: *res = v_int((int64_t)it.len); return 0;
    case V_MAP: *res = v_int((int64_t)json_object_size(it.j)); return 0;
    case V_INVALID: snprintf(err, errsz, "reflect: call of reflect.Value.Type on zero Value"); return -1;
    }
    snprintf(err, errsz, "len of type %s", v_concrete_type(&it));
    return -1;
}

static int f_not(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)s, (void)argc, (void)err, (void)errsz;
    *res = v_bool(!truth(argv[0]));
    return 0;
}

/* print, printf, println: the formatted string */
static int sprinted(state *s, sbuf *b, val *res)
{
    size_t n = b->len;
    const char *r = s_keep(s, b);
    if (!r)
        return -1;   /* the executor reports the budget */
    *res = v_string(r, n);
    return 0;
}

static int f_print(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)err, (void)errsz;
    sbuf b = { .budget = s->budget };
    go_sprint(&b, &s->rd, argv, argc);
    return sprinted(s, &b, res);
}

static int f_println(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)err, (void)errsz;
    sbuf b = { .budget = s->budget };
    go_sprintln(&b, &s->rd, argv, argc);
    return sprinted(s, &b, res);
}

static int f_printf(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)err, (void)errsz;
    sbuf b = { .budget = s->budget };
    val f = v_concrete(argv[0]);
    go_sprintf(&b, &s->rd, f.s.p, f.s.n, argv + 1, argc - 1);
    return sprinted(s, &b, res);
}

static int f_eq(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    int t;
    if (fn_eq(s, argv[0], argv + 1, argc - 1, &t, err, errsz) < 0)
        return -1;
    *res = v_bool(t);
    return 0;
}

static int f_ne(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)argc;
    int t;
    if (fn_eq(s, argv[0], argv + 1, 1, &t, err, errsz) < 0)
        return -1;
    *res = v_bool(!t);
    return 0;
}

static int f_lt(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)s, (void)argc;
    int t;
    if (fn_lt(argv[0], argv[1], &t, err, errsz) < 0)
        return -1;
    *res = v_bool(t);
    return 0;
}

static int f_ge(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    if (f_lt(s, argv, argc, res, err, errsz) < 0)
        return -1;
    res->i = !res->i;
    return 0;
}

/* le: lt or eq */
static int f_le(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    (void)argc;
    int lt, eq = 0;
    if (fn_lt(argv[0], argv[1], &lt, err, errsz) < 0)
        return -1;
    if (!lt && fn_eq(s, argv[0], argv + 1, 1, &eq, err, errsz) < 0)
        return -1;
    *res = v_bool(lt || eq);
    return 0;
}

static int f_gt(state *s, const val *argv, int argc, val *res, char *err, size_t errsz)
{
    if (f_le(s, argv, argc, res, err, errsz) < 0)
        return -1;
    res->i = !res->i;
    return 0;
}

/* builtins() of funcs.go: and/or have no fn, exec evaluates their arguments lazily */
static const builtin builtins[] = {
    { "and", 2, 1, { T_RV, T_RV }, NULL },
    { "call", 2, 1, { T_RV, T_RV }, f_call },
    { "html", 1, 1, { T_ANY }, f_html },
    { "index", 2, 1, { T_RV, T_RV }, f_index },
    { "slice", 2, 1, { T_RV, T_RV }, f_slice },
    { "js", 1, 1, { T_ANY }, f_js },
    { "len", 1, 0, { T_RV }, f_len },
    { "not", 1, 0, { T_RV }, f_not },
    { "or", 2, 1, { T_RV, T_RV }, NULL },
    { "print", 1, 1, { T_ANY }, f_print },
    { "printf", 2, 1, { T_STR, T_ANY }, f_printf },
    { "println", 1, 1, { T_ANY }, f_println },
    { "urlquery", 1, 1, { T_ANY }, f_urlquery },
    { "eq", 2, 1, { T_RV, T_RV }, f_eq },
    { "ge", 2, 0, { T_RV, T_RV }, f_ge },
    { "gt", 2, 0, { T_RV, T_RV }, f_gt },
    { "le", 2, 0, { T_RV, T_RV }, f_le },
    { "lt", 2, 0, { T_RV, T_RV }, f_lt },
    { "ne", 2, 0, { T_RV, T_RV }, f_ne },
};

const builtin *builtin_lookup(str name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (str_eq(name, builtins[i].name))
            return &builtins[i];
    return NULL;
}
