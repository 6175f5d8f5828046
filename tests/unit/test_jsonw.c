/* Unit tests of jsonw: the JSON that `--json` prints must stay byte for byte
 * what jansson's json_dumps(JSON_INDENT(2) | JSON_ENCODE_ANY) printed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/base/jsonw.h"
#include "../../src/base/sbuf.h"

static unsigned long long rng = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* Strings mixing plain text, characters jansson escapes, '/', DEL and
 * non-ASCII (mostly valid UTF-8). */
static size_t random_text(char *buf, size_t max)
{
    static const char *const pieces[] = {
        "a", "vm0", " ", "/", "\"", "\\", "\n", "\t", "\r", "\b", "\f", "\x01", "\x1f", "\x7f",
        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "-netdev user,id=n0", "{{.x}}", "'",
    };
    size_t n = 0, k = rnd(6);
    for (size_t i = 0; i < k; i++) {
        const char *p = pieces[rnd(sizeof pieces / sizeof *pieces)];
        size_t l = strlen(p);
        if (n + l >= max)
            break;
        memcpy(buf + n, p, l);
        n += l;
    }
    buf[n] = '\0';
    return n;
}

static json_t *random_value(int depth)
{
    char t[128];
    switch (rnd(depth > 4 ? 6 : 8)) {
    case 0: return json_null();
    case 1: return json_boolean(rnd(2));
    case 2: return json_integer((json_int_t)rnd(100000) - 50000);
    case 3: return json_integer(rnd(2) ? INT64_MAX : INT64_MIN);
    case 4:
    case 5: {
        size_t n = random_text(t, sizeof t);
        return json_stringn_nocheck(t, n);
    }
    case 6: {
        json_t *a = json_array();
        for (unsigned i = rnd(4); i > 0; i--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (unsigned i = rnd(4); i > 0; i--) {
            size_t n = random_text(t, sizeof t);
            json_object_setn_new_nocheck(o, t, n, random_value(depth + 1));
        }
        return o;
    }
    }
}

/* jsonw's text, or NULL where it defers to jansson. */
static char *jsonw_text(json_t *v)
{
    sbuf b = SBUF_INIT;
    if (jsonw_value(&b, v, 0) < 0) {
        sbuf_free(&b);
        return NULL;
    }
    return sbuf_steal(&b);
}

static void test_random_documents_print_exactly_as_jansson_does(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        json_t *v = random_value(0);
        char *want = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        char *got = jsonw_text(v);
        if (want && !got)
            fail_msg("jsonw refused what jansson prints: %s", want);
        if (!want && got)
            fail_msg("jsonw printed what jansson refuses: %s", got);
        if (want && strcmp(want, got) != 0)
            fail_msg("differs:\njansson: %s\njsonw:   %s", want, got);
        free(want);
        free(got);
        json_decref(v);
    }
}

static void test_invalid_utf8_and_reals_are_left_to_jansson(void **state)
{
    (void)state;
    static const char *const bad[] = { "\x80", "a\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *s = json_stringn_nocheck(bad[i], strlen(bad[i]));
        assert_null(json_dumps(s, JSON_ENCODE_ANY));
        assert_null(jsonw_text(s));
        json_t *o = json_object();
        json_object_set_new_nocheck(o, bad[i], json_true());
        assert_null(jsonw_text(o));
        json_decref(o);
        json_decref(s);
    }
    json_t *r = json_pack("{s:[f]}", "x", 1.5);
    assert_null(jsonw_text(r));
    json_decref(r);
}

static void test_deep_nesting_is_indented_two_spaces_per_level(void **state)
{
    (void)state;
    json_t *v = json_integer(1);
    for (int i = 0; i < 100; i++) {
        json_t *a = json_array();
        json_array_append_new(a, v);
        v = a;
    }
    char *want = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    char *got = jsonw_text(v);
    assert_non_null(got);
    assert_string_equal(want, got);
    free(want);
    free(got);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_documents_print_exactly_as_jansson_does),
        cmocka_unit_test(test_invalid_utf8_and_reals_are_left_to_jansson),
        cmocka_unit_test(test_deep_nesting_is_indented_two_spaces_per_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
