/* fmt — ports of Go's fmt (print.go, format.go) and strconv/ftoa.go: Sprint,
 * Sprintln, Sprintf with every verb and flag, and float formatting. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tmpl_int.h"

/* decimal digits of |v|: shortest round-trip when ndig < 0 */
typedef struct decdigits {
    char d[1200];
    int nd, dp;
} decdigits;

typedef struct pfstate {
    pp p;
    int reordered, good_argnum;
} pfstate;

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
    sbuf b = { .budget = p->buf->budget };
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
        sbuf b = { .budget = p->buf->budget };
        go_quote_rune(&b, r, p->f.plus);
        f_pad(p, b.buf, b.len);
        sbuf_free(&b);
        break;
    }
    case 'U': fmt_unicode(p, u); break;
    default: bad_verb(p, verb, arg);
    }
}

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
    sbuf nb = { .budget = p->buf->budget };
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
        sbuf tail = { .budget = p->buf->budget };
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
    sbuf b = { .budget = p->buf->budget };
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
void print_arg(pp *p, val a, int verb)
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

/* one verb of Sprintf: %#v and %+v are flags of their own */
static void print_verb(pp *p, val a, int verb)
{
    if (verb == 'v') {
        p->f.sharpV = p->f.sharp;
        p->f.sharp = 0;
        p->f.plusV = p->f.plus;
        p->f.plus = 0;
    }
    print_arg(p, a, verb);
}

void go_sprintf(sbuf *out, reader *rd, const char *fmt, size_t end, const val *a, int nargs)
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
                    print_verb(p, a[argnum], c);
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
            print_verb(p, a[argnum], verb);
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

void go_sprint(sbuf *out, reader *rd, const val *a, int n)
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

void go_sprintln(sbuf *out, reader *rd, const val *a, int n)
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
