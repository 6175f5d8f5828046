/* value — data as Go's reflect sees it: jansson values converted to val, map keys
 * in fmtsort order, reads through the caller's lookup hook, truthiness and the
 * eq/lt comparisons of funcs.go. */
#include <stdio.h>
#include <stdlib.h>

#include "tmpl_int.h"

enum { K_INVALID, K_BOOL, K_COMPLEX, K_INT, K_FLOAT, K_STRING, K_UINT };

val v_from_json(json_t *j, int iface)
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

const char *v_concrete_type(const val *v)
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
const char *v_type(const val *v) { return v->iface ? "interface {}" : v_concrete_type(v); }

static int cmp_keys(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Keys of an object, sorted like Go's fmtsort (byte order). Caller frees. */
const char **sorted_keys(json_t *obj, size_t *n)
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

/* the value to use for container[key] (key NULL for arrays); NULL after a failure */
json_t *rd_read(reader *r, json_t *container, const char *key, json_t *value)
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

int is_true(val v, int *ok)
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

int truth(val v)
{
    int ok;
    return is_true(v, &ok);
}

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

int fn_eq(state *s, val a1, const val *a2, int n, int *res, char *err, size_t errsz)
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

int fn_lt(val a1, val a2, int *res, char *err, size_t errsz)
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
