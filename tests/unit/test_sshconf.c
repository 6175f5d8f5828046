/* Unit tests for sshconf: ssh_config quoting and reading a value back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../src/app/sshconf.h"
#include "../../src/base/cleanup.h"
#include "../../src/base/xalloc.h"

static void quotes_with_escaped_quotes_and_backslashes(void **state)
{
    (void)state;
    _cleanup_sbuf_ sbuf b = SBUF_INIT;
    assert_int_equal(sshconf_quote(&b, "a \"b\" c\\d 'e' #f", false, NULL), 0);
    assert_string_equal(sbuf_str(&b), "\"a \\\"b\\\" c\\\\d 'e' #f\"");
}

static void percent_is_doubled_only_when_asked(void **state)
{
    (void)state;
    _cleanup_sbuf_ sbuf a = SBUF_INIT, b = SBUF_INIT;
    assert_int_equal(sshconf_quote(&a, "/x/100%d", true, NULL), 0);
    assert_string_equal(sbuf_str(&a), "\"/x/100%%d\"");
    assert_int_equal(sshconf_quote(&b, "/x/100%d", false, NULL), 0);
    assert_string_equal(sbuf_str(&b), "\"/x/100%d\"");
}

static void control_characters_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = { "a\nProxyCommand x", "a\rb", "a\tb", "a\x1b", "a\x7f", NULL };
    for (const char *const *s = bad; *s; s++) {
        _cleanup_sbuf_ sbuf b = SBUF_INIT;
        qq_err e = { 0 };
        assert_int_equal(sshconf_quote(&b, *s, false, &e), -1);
        assert_int_equal(e.code, QQ_EXIT_USAGE);
        assert_non_null(strstr(e.msg, "control character"));
    }
}

static void a_quoted_value_reads_back_as_written(void **state)
{
    (void)state;
    static const char *const vals[] = { "plain", "with space", "q\"uote", "back\\slash", "it's", "100%d", "", NULL };
    for (const char *const *v = vals; *v; v++) {
        _cleanup_sbuf_ sbuf b = SBUF_INIT;
        sbuf_adds(&b, "Host x\n    User ");
        assert_int_equal(sshconf_quote(&b, *v, false, NULL), 0);
        sbuf_adds(&b, "\n    ControlPath ");
        assert_int_equal(sshconf_quote(&b, *v, true, NULL), 0);
        sbuf_adds(&b, "\n");
        _cleanup_free_ char *user = sshconf_get(sbuf_str(&b), "User");
        _cleanup_free_ char *ctl = sshconf_get(sbuf_str(&b), "controlpath");
        assert_string_equal(user, *v);
        assert_string_equal(ctl, *v);   /* %% read back as % in a token keyword */
    }
    assert_null(sshconf_get("Host x\n    Port 22\n", "User"));
    _cleanup_free_ char *h = sshconf_get("# c\nHost x\n", "Host");
    assert_string_equal(h, "x");
}

static void alias_is_the_name_when_plain(void **state)
{
    (void)state;
    char b[256];
    sshconf_alias("web-1.a_b", b, sizeof b);
    assert_string_equal(b, "web-1.a_b");
    sshconf_alias("we b", b, sizeof b);
    assert_string_equal(b, "qqmgr-vm");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quotes_with_escaped_quotes_and_backslashes),
        cmocka_unit_test(percent_is_doubled_only_when_asked),
        cmocka_unit_test(control_characters_are_refused),
        cmocka_unit_test(a_quoted_value_reads_back_as_written),
        cmocka_unit_test(alias_is_the_name_when_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
