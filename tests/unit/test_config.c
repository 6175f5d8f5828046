/* Unit tests of the config module's pure helpers: argument splitting and sizes.
 * (Loading real files is pinned end to end in tests/e2e/test_config.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/app/config.h"

static char **split(const char *s, size_t *n, int *rc)
{
    char **argv = NULL;
    *n = 0;
    qq_err err = { 0 };
    *rc = config_split_args(s, &argv, n, &err);
    return argv;
}

static void free_argv(char **argv)
{
    if (argv)
        for (char **p = argv; *p; p++)
            free(*p);
    free(argv);
}

static void test_split_at_any_white_space(void **state)
{
    (void)state;
    size_t n;
    int rc;
    char **a = split("  -m\t64 \n -smp 2  ", &n, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 4);
    assert_string_equal(a[0], "-m");
    assert_string_equal(a[1], "64");
    assert_string_equal(a[3], "2");
    assert_null(a[4]);
    free_argv(a);
}

static void test_quotes_keep_white_space_in_one_argument(void **state)
{
    (void)state;
    size_t n;
    int rc;
    char **a = split("-name 'my vm' -append \"console=ttyS0 quiet\" x'a b'y ''", &n, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 6);
    assert_string_equal(a[1], "my vm");
    assert_string_equal(a[3], "console=ttyS0 quiet");
    assert_string_equal(a[4], "xa by");
    assert_string_equal(a[5], "");
    free_argv(a);
}

static void test_other_quote_kind_is_literal_inside_quotes(void **state)
{
    (void)state;
    size_t n;
    int rc;
    char **a = split("\"it's\" 'say \"hi\"'", &n, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
    assert_string_equal(a[0], "it's");
    assert_string_equal(a[1], "say \"hi\"");
    free_argv(a);
}

static void test_unterminated_quote_is_an_error(void **state)
{
    (void)state;
    size_t n;
    int rc;
    char **a = split("-name 'oops", &n, &rc);
    assert_int_equal(rc, -1);
    free_argv(a);
}

static void test_sizes_use_binary_units(void **state)
{
    (void)state;
    unsigned long long v;
    assert_int_equal(config_parse_size("10G", &v), 0);
    assert_true(v == 10ULL << 30);
    assert_int_equal(config_parse_size("512M", &v), 0);
    assert_true(v == 512ULL << 20);
    assert_int_equal(config_parse_size("4096", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(config_parse_size("1GiB", &v), 0);
    assert_true(v == 1ULL << 30);
    assert_int_equal(config_parse_size("1.5G", &v), -1);
    assert_int_equal(config_parse_size("G", &v), -1);
    assert_int_equal(config_parse_size("99999999999999T", &v), -1);
    assert_int_equal(config_parse_size("-1", &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_at_any_white_space),
        cmocka_unit_test(test_quotes_keep_white_space_in_one_argument),
        cmocka_unit_test(test_other_quote_kind_is_literal_inside_quotes),
        cmocka_unit_test(test_unterminated_quote_is_an_error),
        cmocka_unit_test(test_sizes_use_binary_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
