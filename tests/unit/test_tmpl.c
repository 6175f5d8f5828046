/* Unit tests for tmpl: the behaviours qqmgr relies on, pinned with Go's output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "../../src/base/cleanup.h"
#include "../../src/base/tmpl.h"

static const char *DATA = "{\"vm\":{\"name\":\"web\",\"ssh\":{\"port\":2222,\"vm_port\":22}},"
                          "\"img\":{\"deb-12\":\"/i/deb.qcow2\"},\"m\":{\"b\":2,\"a\":1,\"c\":null},"
                          "\"list\":[1,2,3],\"n\":null,\"pi\":3.14159,\"big\":1e21,\"s\":\"hi\"}";

/* Renders text over DATA; returns the output (static) or NULL with err filled. */
static const char *render(const char *text, tmpl_error *err)
{
    static char out[4096];
    _cleanup_json_ json_t *data = json_loads(DATA, 0, NULL);
    assert_non_null(data);
    _cleanup_sbuf_ sbuf b = SBUF_INIT;
    if (tmpl_render("t", text, data, &b, err) < 0)
        return NULL;
    snprintf(out, sizeof out, "%s", sbuf_str(&b));
    return out;
}

static void assert_renders(const char *text, const char *want)
{
    tmpl_error err = { "" };
    const char *got = render(text, &err);
    if (!got)
        fail_msg("%s: unexpected error: %s", text, err.msg);
    assert_string_equal(got, want);
}

static void assert_fails(const char *text, const char *want_msg)
{
    tmpl_error err = { "" };
    const char *got = render(text, &err);
    if (got)
        fail_msg("%s: expected error, got output %s", text, got);
    assert_string_equal(err.msg, want_msg);
}

static void test_missing_key_reports_line_column_and_field(void **state)
{
    (void)state;
    assert_fails("port\n  {{.vm.ssh.prot}}",
                 "template: t:2:7: executing \"t\" at <.vm.ssh.prot>: map has no entry for key \"prot\"");
}

static void test_index_of_missing_key_is_an_error_unlike_go(void **state)
{
    (void)state;
    assert_fails("{{index .img \"ubuntu\"}}",
                 "template: t:1:2: executing \"t\" at <index .img \"ubuntu\">: error calling index: "
                 "map has no entry for key \"ubuntu\"");
    assert_renders("{{index .img \"deb-12\"}}", "/i/deb.qcow2");
}

static void test_null_value_prints_no_value_but_nil_through_print(void **state)
{
    (void)state;
    assert_renders("{{.n}}|{{print .n}}|{{.m}}", "<no value>|<nil>|map[a:1 b:2 c:<nil>]");
}

static void test_range_over_map_is_in_sorted_key_order(void **state)
{
    (void)state;
    assert_renders("{{range $k, $v := .m}}{{$k}}={{$v}};{{end}}", "a=1;b=2;c=<no value>;");
}

static void test_trim_markers_eat_surrounding_space(void **state)
{
    (void)state;
    assert_renders("a  \n {{- .s -}} \n  b", "ahib");
    assert_renders("x{{- 3}}", "x3");
    assert_renders("{{-3}}", "-3");
}

static void test_printf_formats_like_go(void **state)
{
    (void)state;
    assert_renders("{{printf \"%5.2f|%d|%x|%q|%v\" .pi .vm.ssh.port 255 .s .big}}", " 3.14|2222|ff|\"hi\"|1e+21");
    assert_renders("{{printf \"%d\" .s}}", "%!d(string=hi)");
    assert_renders("{{printf \"%d %d\" 1}}", "1 %!d(MISSING)");
    assert_renders("{{printf \"%d\" 1 \"x\"}}", "1%!(EXTRA string=x)");
}

static void test_int_float_comparison_is_an_error(void **state)
{
    (void)state;
    assert_fails("{{lt 1 1.5}}",
                 "template: t:1:2: executing \"t\" at <lt 1 1.5>: error calling lt: incompatible types for comparison");
}

static void test_parse_error_names_line(void **state)
{
    (void)state;
    tmpl_error err;
    assert_null(tmpl_parse("t", "ok\n{{if .s}}x", &err));
    assert_string_equal(err.msg, "template: t:2: unexpected EOF");
    assert_null(tmpl_parse("t", "{{.vm-name}}", &err));
    assert_string_equal(err.msg, "template: t:1: bad character U+002D '-'");
}

static void test_self_recursive_template_stops_with_error(void **state)
{
    (void)state;
    tmpl_error err = { "" };
    assert_null(render("{{define \"r\"}}{{template \"r\" .}}{{end}}{{template \"r\" .}}", &err));
    assert_non_null(strstr(err.msg, "exceeded maximum template depth"));
}

static void test_exec_named_template_and_plain_text(void **state)
{
    (void)state;
    tmpl_error err;
    tmpl *t = tmpl_parse("main", "{{define \"x\"}}X{{.}}{{end}}main", &err);
    assert_non_null(t);
    _cleanup_json_ json_t *d = json_string("d");
    _cleanup_sbuf_ sbuf b = SBUF_INIT;
    assert_int_equal(tmpl_exec(t, "x", d, &b, &err), 0);
    assert_string_equal(sbuf_str(&b), "Xd");
    assert_int_equal(tmpl_exec(t, "nope", d, &b, &err), -1);
    tmpl_free(t);
    assert_true(tmpl_is_plain("no actions { }"));
    assert_false(tmpl_is_plain("a {{.x}}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_key_reports_line_column_and_field),
        cmocka_unit_test(test_index_of_missing_key_is_an_error_unlike_go),
        cmocka_unit_test(test_null_value_prints_no_value_but_nil_through_print),
        cmocka_unit_test(test_range_over_map_is_in_sorted_key_order),
        cmocka_unit_test(test_trim_markers_eat_surrounding_space),
        cmocka_unit_test(test_printf_formats_like_go),
        cmocka_unit_test(test_int_float_comparison_is_an_error),
        cmocka_unit_test(test_parse_error_names_line),
        cmocka_unit_test(test_self_recursive_template_stops_with_error),
        cmocka_unit_test(test_exec_named_template_and_plain_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
