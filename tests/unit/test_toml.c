/* Unit tests of the TOML parser: what a user of a config file would notice. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../src/base/sbuf.h"
#include "../../src/base/toml.h"

static json_t *parse_ok(const char *text, int flags, json_t *locs)
{
    toml_error err;
    json_t *doc = toml_parse(text, strlen(text), flags, locs, &err);
    if (!doc)
        fail_msg("unexpected error %d:%d: %s\nin: %s", err.line, err.col, err.msg, text);
    return doc;
}

static toml_error parse_err_n(const char *text, size_t len)
{
    toml_error err;
    json_t *doc = toml_parse(text, len, 0, NULL, &err);
    if (doc) {
        json_decref(doc);
        fail_msg("document was accepted: %s", text);
    }
    assert_true(err.msg[0] != '\0');
    return err;
}

static toml_error parse_err(const char *text)
{
    return parse_err_n(text, strlen(text));
}

#define assert_err_at(text, line_, col_, substr)                                   \
    do {                                                                           \
        toml_error _e = parse_err(text);                                           \
        if (_e.line != (line_) || _e.col != (col_) || !strstr(_e.msg, (substr)))   \
            fail_msg("want %d:%d: *%s*, got %d:%d: %s", (line_), (col_), (substr), \
                     _e.line, _e.col, _e.msg);                                     \
    } while (0)

static void test_duplicate_key_reports_line_and_column(void **state)
{
    (void)state;
    assert_err_at("a = 1\nb = 2\n  a = 3\n", 3, 3, "duplicate key \"a\"");
    assert_err_at("[t]\nx = 1\n[t]\n", 3, 2, "defined twice");
    assert_err_at("[t]\nx = 1\nx.y = 2\n", 3, 1, "not a table");
}

static void test_bad_escape_reports_line_and_column(void **state)
{
    (void)state;
    assert_err_at("a = 1\ns = \"ok \\q\"\n", 2, 9, "invalid escape \\q");
    assert_err_at("s = \"\\uD800\"\n", 1, 6, "not a Unicode scalar value");
    assert_err_at("s = \"\\U00110000\"\n", 1, 6, "not a Unicode scalar value");
}

static void test_unterminated_string_points_at_its_opening_quote(void **state)
{
    (void)state;
    assert_err_at("a = 1\n\nname = \"abc\nb = 2\n", 3, 8, "unterminated string");
    assert_err_at("s = '''abc\n\n", 1, 5, "unterminated multi-line string");
}

static void test_invalid_utf8_byte_reports_line_and_column(void **state)
{
    (void)state;
    /* columns count characters: "é" before the bad byte is one column */
    assert_err_at("a = 1\ns = \"é\xff\"\n", 2, 7, "invalid UTF-8 byte 0xff");
    assert_err_at("s = \"\xe0\x80\xaf\"\n", 1, 6, "overlong");
    assert_err_at("s = \"\xc0\xaf\"\n", 1, 6, "invalid UTF-8 byte 0xc0");
    assert_err_at("s = \"\xed\xa0\x80\"\n", 1, 6, "surrogate");
    assert_err_at("s = \"\xf4\x90\x80\x80\"\n", 1, 6, "beyond U+10FFFF");
    toml_error e = parse_err_n("a = \"x\0\"\n", 8);
    assert_int_equal(e.line, 1);
    assert_int_equal(e.col, 7);
}

static void test_integer_overflow_reports_line_and_column(void **state)
{
    (void)state;
    assert_err_at("x = 1\nbig = 9223372036854775808\n", 2, 7, "out of range");
    assert_err_at("small = -9223372036854775809\n", 1, 9, "out of range");
    assert_err_at("h = 0x8000000000000000\n", 1, 5, "out of range");
}

static void test_int64_limits_are_exact(void **state)
{
    (void)state;
    json_t *doc = parse_ok("max = 9_223_372_036_854_775_807\nmin = -9223372036854775808\n"
                           "hex = 0x7fffffffffffffff\noct = 0o777\nbin = 0b1010\n", 0, NULL);
    assert_true(json_integer_value(json_object_get(doc, "max")) == INT64_MAX);
    assert_true(json_integer_value(json_object_get(doc, "min")) == INT64_MIN);
    assert_true(json_integer_value(json_object_get(doc, "hex")) == INT64_MAX);
    assert_int_equal(json_integer_value(json_object_get(doc, "oct")), 0777);
    assert_int_equal(json_integer_value(json_object_get(doc, "bin")), 10);
    json_decref(doc);
}

static void test_keys_keep_document_order(void **state)
{
    (void)state;
    json_t *doc = parse_ok("zeta = 1\nalpha = 2\n[vm.zz]\n[vm.aa]\n[vm.mm]\n[img.b]\n[img.a]\n",
                           0, NULL);
    const char *want[] = { "zeta", "alpha", "vm", "img" };
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v) {
        assert_true(i < 4);
        assert_string_equal(k, want[i++]);
    }
    const char *vms[] = { "zz", "aa", "mm" };
    i = 0;
    json_object_foreach(json_object_get(doc, "vm"), k, v)
        assert_string_equal(k, vms[i++]);
    assert_int_equal(i, 3);
    json_decref(doc);
}

static void assert_loc(json_t *locs, const char *path, int line, int col)
{
    json_t *l = json_object_get(locs, path);
    if (!l) {
        char *all = json_dumps(locs, JSON_COMPACT);
        fail_msg("no location for %s in %s", path, all);
    }
    if (json_integer_value(json_array_get(l, 0)) != line ||
        json_integer_value(json_array_get(l, 1)) != col)
        fail_msg("%s: want %d:%d, got %d:%d", path, line, col,
                 (int)json_integer_value(json_array_get(l, 0)),
                 (int)json_integer_value(json_array_get(l, 1)));
}

static void test_locs_name_paths_with_line_and_column(void **state)
{
    (void)state;
    const char *text = "[qemu]\n"
                       "bin = \"qemu\"\n"
                       "[vm.test]\n"
                       "cmd = [\"-m\",\n"
                       "      \"1G\"]\n"
                       "[vm.\"a.b\".ssh]\n"
                       "  port = 22\n"
                       "[[img.x.templates]]\n"
                       "template = 't'\n"
                       "[[img.x.templates]]\n"
                       "  output = { name = 'o', n.m = 1 }\n";
    json_t *locs = json_object();
    json_t *doc = parse_ok(text, 0, locs);
    assert_loc(locs, "qemu", 1, 1);
    assert_loc(locs, "qemu.bin", 2, 1);
    assert_loc(locs, "vm", 3, 2);
    assert_loc(locs, "vm.test", 3, 1);
    assert_loc(locs, "vm.test.cmd", 4, 1);
    assert_loc(locs, "vm.test.cmd[0]", 4, 8);
    assert_loc(locs, "vm.test.cmd[1]", 5, 7);
    assert_loc(locs, "vm.\"a.b\".ssh", 6, 1);
    assert_loc(locs, "vm.\"a.b\".ssh.port", 7, 3);
    assert_loc(locs, "img.x.templates[0]", 8, 1);
    assert_loc(locs, "img.x.templates[0].template", 9, 1);
    assert_loc(locs, "img.x.templates[1]", 10, 1);
    assert_loc(locs, "img.x.templates[1].output.name", 11, 14);
    assert_loc(locs, "img.x.templates[1].output.n", 11, 26);
    assert_loc(locs, "img.x.templates[1].output.n.m", 11, 28);
    json_decref(doc);
    json_decref(locs);
}

static void test_path_append_quotes_keys_that_are_not_bare(void **state)
{
    (void)state;
    sbuf p = SBUF_INIT;
    toml_path_append(&p, "vm");
    toml_path_append(&p, "a.b");
    toml_path_append(&p, "cmd");
    toml_path_append_index(&p, 3);
    toml_path_append(&p, "say \"hi\"\n");
    toml_path_append(&p, "");
    assert_string_equal(sbuf_str(&p), "vm.\"a.b\".cmd[3].\"say \\\"hi\\\"\\n\".\"\"");
    sbuf_free(&p);
}

static void test_crlf_line_endings_work_and_a_lone_cr_does_not(void **state)
{
    (void)state;
    json_t *doc = parse_ok("\xEF\xBB\xBF" "a = 1\r\n[t]\r\ns = \"\"\"\r\nx\r\ny\"\"\"\r\n", 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(doc, "a")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "t"), "s")),
                        "x\ny");
    json_decref(doc);
    assert_err_at("a = 1\rb = 2\n", 1, 6, "carriage return");
}

static void test_values_map_to_json_types(void **state)
{
    (void)state;
    json_t *doc = parse_ok("s = 'lit\\eral'\nf = 6.5e-1\ni = +inf\nn = -nan\nb = true\n"
                           "d = 1979-05-27 07:32:00Z\nld = 1979-05-27\nlt = 07:32:00.5\n"
                           "mixed = [1, 'a', [2], {x = 1}]\n",
                           0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "s")), "lit\\eral");
    assert_true(json_is_real(json_object_get(doc, "f")));
    assert_true(json_real_value(json_object_get(doc, "f")) == 0.65);
    assert_true(isinf(json_real_value(json_object_get(doc, "i"))));
    assert_true(isnan(json_real_value(json_object_get(doc, "n"))));
    assert_true(json_is_true(json_object_get(doc, "b")));
    assert_string_equal(json_string_value(json_object_get(doc, "d")), "1979-05-27T07:32:00Z");
    assert_string_equal(json_string_value(json_object_get(doc, "ld")), "1979-05-27");
    assert_string_equal(json_string_value(json_object_get(doc, "lt")), "07:32:00.5");
    assert_int_equal(json_array_size(json_object_get(doc, "mixed")), 4);
    json_decref(doc);

    doc = parse_ok("x = 1\n", TOML_TAGGED, NULL);
    json_t *x = json_object_get(doc, "x");
    assert_string_equal(json_string_value(json_object_get(x, "type")), "integer");
    assert_string_equal(json_string_value(json_object_get(x, "value")), "1");
    json_decref(doc);
}

static void test_dates_and_times_are_validated(void **state)
{
    (void)state;
    json_t *doc = parse_ok("leap = 2024-02-29\nsec = 23:59:60\n", 0, NULL);
    json_decref(doc);
    assert_err_at("d = 2023-02-29\n", 1, 13, "day 29 is out of range");
    assert_err_at("d = 2023-13-01\n", 1, 10, "month 13");
    assert_err_at("t = 24:00:00\n", 1, 5, "hour 24");
    assert_err_at("t = 12:00\n", 1, 5, "seconds are required");
}

static void test_tables_cannot_be_redefined_or_extended_when_closed(void **state)
{
    (void)state;
    assert_err_at("a = {x = 1}\n[a]\n", 2, 2, "inline table");
    assert_err_at("a = {x = 1}\na.y = 2\n", 2, 1, "inline table");
    assert_err_at("a = [1]\n[[a]]\n", 2, 3, "not an array of tables");
    assert_err_at("[a]\nb.c = 1\n[a.b]\n", 3, 4, "dotted keys");
    assert_err_at("x = {a = 1,}\n", 1, 12, "trailing comma");
    assert_err_at("x = {a = 1,\n b = 2}\n", 1, 12, "newline in inline table");
}

static void test_deep_nesting_is_an_error_not_a_crash(void **state)
{
    (void)state;
    sbuf b = SBUF_INIT;
    sbuf_adds(&b, "a = ");
    for (int i = 0; i < 10000; i++)
        sbuf_addc(&b, '[');
    for (int i = 0; i < 10000; i++)
        sbuf_addc(&b, ']');
    toml_error e = parse_err(sbuf_str(&b));
    assert_non_null(strstr(e.msg, "nested too deeply"));
    sbuf_free(&b);
}

/* A config of 1000 VMs, ~300 KB: parsing must stay far below 5 ms. */
static void test_large_config_parses_quickly(void **state)
{
    (void)state;
    sbuf b = SBUF_INIT;
    sbuf_adds(&b, "[qemu]\nbin = \"qemu-system-x86_64\"\n[vars]\nmem = \"2G\"\n");
    for (int i = 0; i < 1000; i++) {
        sbuf_addf(&b, "\n[vm.vm%04d]\n", i);
        sbuf_adds(&b, "cmd = [\n  \"-machine\", \"q35\",\n  \"-m\", \"{{.mem}}\",\n"
                      "  \"-drive\", \"file={{.img.fedora}},if=virtio,format=qcow2\",\n"
                      "  \"-netdev\", \"user,id=n0,hostfwd=tcp::{{.vm.ssh.port}}-:22\",\n"
                      "  \"-device\", \"virtio-net-pci,netdev=n0\",\n  \"-nographic\",\n]\n");
        sbuf_addf(&b, "[vm.vm%04d.vars]\nname = 'vm%d'\ncpus = %d\n", i, i, i % 8 + 1);
        sbuf_addf(&b, "[vm.vm%04d.ssh]\nport = %d\nUser = \"root\"\n", i, 10000 + i);
    }
    assert_true(b.len > 250000);
    json_t *locs = json_object();
    struct timespec t0, t1;
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        toml_error err;
        json_object_clear(locs);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        json_t *doc = toml_parse(b.buf, b.len, 0, r % 2 ? locs : NULL, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        assert_non_null(doc);
        assert_int_equal(json_object_size(json_object_get(doc, "vm")), 1000);
        json_decref(doc);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (ms < best)
            best = ms;
    }
    print_message("1000-VM config, %zu bytes: best parse %.2f ms\n", b.len, best);
    /* generous: this guards against quadratic behaviour, not for the 5 ms target;
     * sanitizer builds on a loaded machine are many times slower */
    assert_true(best < 500.0);
    json_decref(locs);
    sbuf_free(&b);
}

/* Locations of 100000 elements on one line, and 3000 headers whose parents are
 * made implicitly, must not cost a scan from the line or file start each. */
static void test_locs_cost_stays_linear_on_long_lines_and_implicit_tables(void **state)
{
    (void)state;
    sbuf b = SBUF_INIT;
    sbuf_adds(&b, "a = [");
    for (int i = 0; i < 100000; i++)
        sbuf_adds(&b, "1,");
    sbuf_adds(&b, "]\n");
    for (int i = 0; i < 3000; i++)
        sbuf_addf(&b, "[vm.v%d.ssh]\nport = %d\n", i, i);
    json_t *locs = json_object();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    json_t *doc = parse_ok(sbuf_str(&b), 0, locs);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    print_message("%zu bytes, %zu locations: %.1f ms\n", b.len, json_object_size(locs), ms);
    assert_loc(locs, "a[99999]", 1, 6 + 2 * 99999);
    assert_loc(locs, "vm.v2999", 6000, 5);
    assert_loc(locs, "vm.v2999.ssh", 6000, 1);
    /* linear: well under a second; a scan per location: tens of seconds */
    assert_true(ms < 5000.0);
    json_decref(doc);
    json_decref(locs);
    sbuf_free(&b);
}

/* The toml-test conformance cases run as their own step of tests/run.sh. */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicate_key_reports_line_and_column),
        cmocka_unit_test(test_bad_escape_reports_line_and_column),
        cmocka_unit_test(test_unterminated_string_points_at_its_opening_quote),
        cmocka_unit_test(test_invalid_utf8_byte_reports_line_and_column),
        cmocka_unit_test(test_integer_overflow_reports_line_and_column),
        cmocka_unit_test(test_int64_limits_are_exact),
        cmocka_unit_test(test_keys_keep_document_order),
        cmocka_unit_test(test_locs_name_paths_with_line_and_column),
        cmocka_unit_test(test_path_append_quotes_keys_that_are_not_bare),
        cmocka_unit_test(test_crlf_line_endings_work_and_a_lone_cr_does_not),
        cmocka_unit_test(test_values_map_to_json_types),
        cmocka_unit_test(test_dates_and_times_are_validated),
        cmocka_unit_test(test_tables_cannot_be_redefined_or_extended_when_closed),
        cmocka_unit_test(test_deep_nesting_is_an_error_not_a_crash),
        cmocka_unit_test(test_large_config_parses_quickly),
        cmocka_unit_test(test_locs_cost_stays_linear_on_long_lines_and_implicit_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
