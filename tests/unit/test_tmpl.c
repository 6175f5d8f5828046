/* Unit tests for tmpl: the behaviours qqmgr relies on, pinned with Go's output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
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

/* ---- the lookup hook (tmpl_exec_with) ---- */

typedef struct hook_log {
    sbuf log;             /* "key" or "[value]" per read, space separated */
    const char *fail_key; /* fail when reading this key ... */
    json_int_t fail_int;  /* ... or an array element with this integer value (when nonzero) */
    const char *repl_key; /* return repl instead of the value of this key */
    json_t *repl;
} hook_log;

static json_t *logging_hook(void *ud, json_t *container, const char *key, json_t *value, tmpl_error *err)
{
    hook_log *h = ud;
    assert_non_null(container);
    assert_non_null(value);
    if (h->log.len)
        sbuf_addc(&h->log, ' ');
    if (key) {
        assert_ptr_equal(json_object_get(container, key), value);
        sbuf_adds(&h->log, key);
    } else {
        assert_true(json_is_array(container));
        _cleanup_free_ char *d = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
        sbuf_addf(&h->log, "[%s]", d);
    }
    if ((key && h->fail_key && !strcmp(key, h->fail_key)) ||
        (!key && h->fail_int && json_is_integer(value) && json_integer_value(value) == h->fail_int)) {
        snprintf(err->msg, sizeof err->msg, "refused by hook");
        return NULL;
    }
    if (key && h->repl_key && !strcmp(key, h->repl_key))
        return h->repl;
    return value;
}

/* Renders text over DATA through logging_hook; returns 0 or -1, the output in out. */
static int render_hooked(const char *text, hook_log *h, sbuf *out, tmpl_error *err)
{
    _cleanup_json_ json_t *data = json_loads(DATA, 0, NULL);
    assert_non_null(data);
    return tmpl_render_with("t", text, data, logging_hook, h, out, err);
}

static void assert_hook_sees(const char *text, const char *want_out, const char *want_log)
{
    hook_log h = { .log = SBUF_INIT };
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    tmpl_error err = { "" };
    if (render_hooked(text, &h, &out, &err) < 0)
        fail_msg("%s: unexpected error: %s", text, err.msg);
    assert_string_equal(sbuf_str(&out), want_out);
    assert_string_equal(sbuf_str(&h.log), want_log);
    sbuf_free(&h.log);
}

static void test_hook_sees_fields_chains_and_index(void **state)
{
    (void)state;
    assert_hook_sees("{{.s}} {{.vm.ssh.port}} {{index .list 1}} {{index .img \"deb-12\"}}",
                     "hi 2222 2 /i/deb.qcow2", "s vm ssh port list [2] img deb-12");
    assert_hook_sees("{{index . \"vm\" \"name\"}}", "web", "vm name");
}

static void test_hook_sees_range_elements_of_maps_and_arrays(void **state)
{
    (void)state;
    assert_hook_sees("{{range $k, $v := .m}}{{$k}}{{end}}|{{range $i, $e := .list}}{{$i}}{{end}}|{{range .n}}{{else}}e{{end}}",
                     "abc|012|e", "m a b c list [1] [2] [3] n");
}

static void test_hook_sees_with_parens_variables_and_template_data(void **state)
{
    (void)state;
    assert_hook_sees("{{with .vm}}{{.name}}{{end}} {{(.vm).name}} {{$x := .vm}}{{$x.ssh.port}}", "web web 2222",
                     "vm name vm name vm ssh port");
    assert_hook_sees("{{define \"d\"}}{{.port}}{{end}}{{template \"d\" .vm.ssh}} {{.s | printf \"%s!\"}}",
                     "2222 hi!", "vm ssh port s");
}

static void test_hook_sees_elements_of_printed_containers(void **state)
{
    (void)state;
    assert_hook_sees("{{.m}}", "map[a:1 b:2 c:<nil>]", "m a b c");
    assert_hook_sees("{{printf \"%v\" .list}} {{print .img}}", "[1 2 3] map[deb-12:/i/deb.qcow2]",
                     "list [1] [2] [3] img deb-12");
    /* len and truth read no element */
    assert_hook_sees("{{len .list}} {{if .m}}y{{end}}", "3 y", "list m");
}

static void test_hook_replacement_value_is_used(void **state)
{
    (void)state;
    _cleanup_json_ json_t *repl = json_pack("{s:s}", "deep", "R");
    hook_log h = { .log = SBUF_INIT, .repl_key = "name", .repl = repl };
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    tmpl_error err = { "" };
    assert_int_equal(render_hooked("{{.vm.name.deep}} {{.vm.name}} {{range .vm}}{{.}};{{end}}", &h, &out, &err), 0);
    assert_string_equal(sbuf_str(&out), "R map[deep:R] map[deep:R];map[port:2222 vm_port:22];");
    sbuf_free(&h.log);
}

static void assert_hook_fails(const char *text, hook_log h, const char *want_out, const char *want_msg)
{
    h.log = (sbuf)SBUF_INIT;
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    tmpl_error err = { "" };
    if (render_hooked(text, &h, &out, &err) == 0)
        fail_msg("%s: expected error, got output %s", text, sbuf_str(&out));
    assert_string_equal(err.msg, want_msg);
    assert_string_equal(sbuf_str(&out), want_out);
    sbuf_free(&h.log);
}

static void test_hook_failure_fails_the_execution_at_the_node(void **state)
{
    (void)state;
    hook_log port = { .fail_key = "port" }, b = { .fail_key = "b" }, two = { .fail_int = 2 };
    assert_hook_fails("x\n {{.vm.ssh.port}}", port, "x\n ",
                      "template: t:2:6: executing \"t\" at <.vm.ssh.port>: refused by hook");
    assert_hook_fails("{{range .list}}{{.}}{{end}}", two, "1",
                      "template: t:1:8: executing \"t\" at <.list>: refused by hook");
    assert_hook_fails("{{index .list 1}}", two, "",
                      "template: t:1:2: executing \"t\" at <index .list 1>: refused by hook");
    assert_hook_fails("{{.m}}", b, "map[a:1]",
                      "template: t:1:2: executing \"t\" at <{{.m}}>: refused by hook");
    assert_hook_fails("{{printf \"%v\" .m}}", b, "",
                      "template: t:1:2: executing \"t\" at <printf \"%v\" .m>: refused by hook");
    assert_hook_fails("{{define \"d\"}}{{.ssh.port}}{{end}}{{template \"d\" .vm}}", port, "",
                      "template: t:1:20: executing \"d\" at <.ssh.port>: refused by hook");
}

/* A lazy resolver like the config's: a string value holding "{{" is a template,
 * rendered (re-entrantly) on first read and cached in place; a value read while
 * its own rendering is in progress is a cycle. */
typedef struct lazy {
    json_t *root;
    json_t *busy[8];
    int nbusy;
} lazy;

static json_t *lazy_hook(void *ud, json_t *container, const char *key, json_t *value, tmpl_error *err)
{
    lazy *z = ud;
    if (!key || !json_is_string(value) || tmpl_is_plain(json_string_value(value)))
        return value;
    for (int i = 0; i < z->nbusy; i++)
        if (z->busy[i] == value) {
            snprintf(err->msg, sizeof err->msg, "cycle through %s", key);
            return NULL;
        }
    z->busy[z->nbusy++] = value;
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    tmpl_error e = { "" };
    int rc = tmpl_render_with(key, json_string_value(value), z->root, lazy_hook, z, &out, &e);
    z->nbusy--;
    if (rc < 0) {
        snprintf(err->msg, sizeof err->msg, "%s", e.msg);
        return NULL;
    }
    json_object_set_new(container, key, json_string(sbuf_str(&out))); /* frees value */
    return json_object_get(container, key);
}

static void test_hook_may_render_re_entrantly(void **state)
{
    (void)state;
    _cleanup_json_ json_t *root = json_loads("{\"v\":{\"a\":\"x{{.v.b}}\",\"b\":\"{{with .v}}{{.c}}{{end}}y\","
                                             "\"c\":\"C\",\"loop\":\"{{.v.loop}}\"}}", 0, NULL);
    assert_non_null(root);
    lazy z = { .root = root };
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    tmpl_error err = { "" };
    assert_int_equal(tmpl_render_with("t", "{{.v.a}} {{.v.b}} {{range .v}}{{if eq . \"C\"}}{{break}}{{end}}{{.}},{{end}}",
                                      root, lazy_hook, &z, &out, &err), 0);
    assert_string_equal(sbuf_str(&out), "xCy Cy xCy,Cy,");
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "v"), "a")), "xCy");
    sbuf_reset(&out);
    assert_int_equal(tmpl_render_with("t", "{{.v.loop}}", root, lazy_hook, &z, &out, &err), -1);
    assert_string_equal(err.msg, "template: t:1:4: executing \"t\" at <.v.loop>: template: loop:1:4: "
                                 "executing \"loop\" at <.v.loop>: cycle through loop");
    assert_int_equal(z.nbusy, 0);
}

/* {"s": n bytes of 'x', "k": [0 … count-1]} */
static json_t *big_data(size_t n, int count)
{
    char *x = malloc(n + 1);
    assert_non_null(x);
    memset(x, 'x', n);
    x[n] = '\0';
    json_t *d = json_object();
    json_object_set_new(d, "s", json_string(x));
    free(x);
    json_t *k = json_array();
    for (int i = 0; i < count; i++)
        json_array_append_new(k, json_integer(i));
    json_object_set_new(d, "k", k);
    return d;
}

static void test_output_cap_is_checked_before_memory_is_taken(void **state)
{
    (void)state;
    /* 40 x 8 MiB: the output stops at 256 MiB, it does not grow past it first */
    _cleanup_json_ json_t *d = big_data((size_t)8 << 20, 40);
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    tmpl_error err = { "" };
    assert_int_equal(tmpl_render("t", "{{range .k}}{{$.s}}{{end}}", d, &out, &err), -1);
    assert_string_equal(err.msg, "template: t:1:14: executing \"t\" at <{{$.s}}>: "
                                 "output too large (more than 268435456 bytes)");
    assert_true(out.cap <= (size_t)256 << 20);
    assert_null(out.budget);   /* the execution's own budget is not left behind */
}

static void test_one_budget_bounds_outputs_and_temporaries_of_many_executions(void **state)
{
    (void)state;
    _cleanup_json_ json_t *d = big_data(300 << 10, 1);
    sbuf_budget budget = { .left = 1 << 20 };
    _cleanup_sbuf_ sbuf a = { .budget = &budget }, b = { .budget = &budget };
    tmpl_error err = { "" };
    assert_int_equal(tmpl_render("a", "{{.s}}", d, &a, &err), 0);
    assert_int_equal(a.len, 300 << 10);
    /* printf's temporary (600 KiB, in a 1 MiB buffer) does not fit what is left */
    assert_int_equal(tmpl_render("b", "{{printf \"%s%s\" .s .s}}", d, &b, &err), -1);
    assert_string_equal(err.msg, "template: b:1:2: executing \"b\" at <printf \"%s%s\" .s .s>: "
                                 "output too large (the output's budget is spent)");
    assert_true(budget.over);
    assert_true(a.cap + b.cap <= 1 << 20);
    /* once spent, it stays spent */
    sbuf_reset(&b);
    assert_int_equal(tmpl_render("c", "x", d, &b, &err), -1);
    assert_int_equal(b.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_key_reports_line_column_and_field),
        cmocka_unit_test(test_output_cap_is_checked_before_memory_is_taken),
        cmocka_unit_test(test_one_budget_bounds_outputs_and_temporaries_of_many_executions),
        cmocka_unit_test(test_index_of_missing_key_is_an_error_unlike_go),
        cmocka_unit_test(test_null_value_prints_no_value_but_nil_through_print),
        cmocka_unit_test(test_range_over_map_is_in_sorted_key_order),
        cmocka_unit_test(test_trim_markers_eat_surrounding_space),
        cmocka_unit_test(test_printf_formats_like_go),
        cmocka_unit_test(test_int_float_comparison_is_an_error),
        cmocka_unit_test(test_parse_error_names_line),
        cmocka_unit_test(test_self_recursive_template_stops_with_error),
        cmocka_unit_test(test_exec_named_template_and_plain_text),
        cmocka_unit_test(test_hook_sees_fields_chains_and_index),
        cmocka_unit_test(test_hook_sees_range_elements_of_maps_and_arrays),
        cmocka_unit_test(test_hook_sees_with_parens_variables_and_template_data),
        cmocka_unit_test(test_hook_sees_elements_of_printed_containers),
        cmocka_unit_test(test_hook_replacement_value_is_used),
        cmocka_unit_test(test_hook_failure_fails_the_execution_at_the_node),
        cmocka_unit_test(test_hook_may_render_re_entrantly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
