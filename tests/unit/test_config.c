/* Unit tests of the config module: argument splitting, sizes, and variable
 * resolution through config_vm (a config in a temp file; loading in all its
 * forms is pinned end to end in tests/e2e/test_config.py and test_vars.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* Load TEXT as a config and resolve VM v: its argv (joined with '|') or the error. */
static char *vm_args(const char *text, int *rc)
{
    char path[] = "/tmp/qq-test-config-XXXXXX.toml";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    qq_err err = { 0 };
    config *c = config_load(path, &err);
    char *out = NULL;
    *rc = -1;
    if (c) {
        vm_spec s;
        *rc = config_vm(c, "v", 0, &s, &err);
        if (*rc == 0) {
            size_t len = 1;
            for (size_t i = 0; i < s.nargs; i++)
                len += strlen(s.args[i]) + 1;
            out = calloc(1, len);
            for (size_t i = 0; i < s.nargs; i++) {
                if (i)
                    strcat(out, "|");
                strcat(out, s.args[i]);
            }
            vm_spec_free(&s);
        }
        config_free(c);
    }
    if (!out)
        out = strdup(err.msg);
    unlink(path);
    return out;
}

static void test_var_read_inside_with_is_resolved(void **state)
{
    (void)state;
    int rc;
    char *a = vm_args("[vars]\nb = \"B\"\nc = \"{{ with .vm }}{{ .x }}{{ end }}\"\n"
                      "[vm.v]\ncmd = [\"-name {{ .c }}\"]\n[vm.v.vars]\nx = \"{{ .b }}X\"\n", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(a, "-name|BX");
    free(a);
}

static void test_namespace_var_reading_its_namespace_is_no_cycle(void **state)
{
    (void)state;
    int rc;
    char *a = vm_args("[vars.ns]\none = \"1\"\ntwo = \"{{ .ns.one }}2\"\nthree = \"{{ .ns.two }}3\"\n"
                      "[vm.v]\ncmd = [\"{{ .ns.three }} {{ index .ns \\\"two\\\" }}\"]\n", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(a, "123|12");
    free(a);
}

static void test_chains_of_any_depth_and_every_construct_resolve(void **state)
{
    (void)state;
    int rc;
    char *a = vm_args("[vars]\na = \"{{ .b }}a\"\nb = \"{{ .c }}b\"\nc = \"{{ .d }}c\"\nd = \"d\"\n"
                      "list = [\"{{ .d }}1\", \"{{ .a }}\"]\n"
                      "[vm.v]\ncmd = [\"{{ $x := .a }}{{ $x }}\", \"{{ (.b) | printf \\\"%s!\\\" }}\","
                      " \"{{ range .list }}[{{ . }}]{{ end }}\", \"{{ len .a }}\","
                      " \"{{ define \\\"t\\\" }}{{ .c }}{{ end }}{{ template \\\"t\\\" . }}\"]\n", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(a, "dcba|dcb!|[d1][dcba]|4|dc");
    free(a);
}

static void test_real_cycle_is_named_with_its_chain_and_place(void **state)
{
    (void)state;
    int rc;
    char *a = vm_args("[vars]\na = \"{{ .b }}\"\nb = \"{{ with .vm }}{{ .y }}{{ end }}\"\n"
                      "[vm.v]\ncmd = [\"{{ .a }}\"]\n[vm.v.vars]\ny = \"{{ $.a }}\"\n", &rc);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(a, ".toml:2:1: vars.a: variable cycle: vars.a -> vars.b -> vm.v.vars.y -> vars.a"));
    free(a);
}

static void test_error_inside_a_var_names_that_var(void **state)
{
    (void)state;
    int rc;
    char *a = vm_args("[vars]\na = \"{{ .b }}\"\nb = \"{{ .nope }}\"\n[vm.v]\ncmd = [\"{{ .a }}\"]\n", &rc);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(a, ".toml:3:1: vars.b: "));
    assert_non_null(strstr(a, "nope"));
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_at_any_white_space),
        cmocka_unit_test(test_quotes_keep_white_space_in_one_argument),
        cmocka_unit_test(test_other_quote_kind_is_literal_inside_quotes),
        cmocka_unit_test(test_unterminated_quote_is_an_error),
        cmocka_unit_test(test_sizes_use_binary_units),
        cmocka_unit_test(test_var_read_inside_with_is_resolved),
        cmocka_unit_test(test_namespace_var_reading_its_namespace_is_no_cycle),
        cmocka_unit_test(test_chains_of_any_depth_and_every_construct_resolve),
        cmocka_unit_test(test_real_cycle_is_named_with_its_chain_and_place),
        cmocka_unit_test(test_error_inside_a_var_names_that_var),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
