/* Unit tests for remote_parse: the -H HOST forms, and what is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../../src/app/remote.h"

static void want(const char *spec, const char *user, const char *host, int port)
{
    remote_host h;
    qq_err e = { 0 };
    assert_int_equal(remote_parse(spec, &h, &e), 0);
    assert_string_equal(h.user, user);
    assert_string_equal(h.host, host);
    assert_int_equal(h.port, port);
}

static void test_host_forms(void **state)
{
    (void)state;
    want("build3", "", "build3", 0);
    want("ci@build3", "ci", "build3", 0);
    want("ci@build3:2222", "ci", "build3", 2222);
    want("ssh://ci@10.0.0.7:22/", "ci", "10.0.0.7", 22);
    want("ssh://10.0.0.7", "", "10.0.0.7", 0);
    want("[::1]:2200", "", "::1", 2200);
    want("fe80::1", "", "fe80::1", 0);
    want("host.example.org", "", "host.example.org", 0);
}

static void test_refused_forms_are_usage_errors_naming_them(void **state)
{
    (void)state;
    static const char *const bad[] = { "", "-oProxyCommand=x", "a b", "host:", "host:0", "host:65536",
                                       "host:22x", "@host", "us er@host", "host;rm", "$(x)", "[::1", "a/b",
                                       "ssh://", NULL };
    for (const char *const *b = bad; *b; b++) {
        remote_host h;
        qq_err e = { 0 };
        assert_int_equal(remote_parse(*b, &h, &e), -1);
        assert_int_equal(e.code, QQ_EXIT_USAGE);
        assert_non_null(strstr(e.msg, "-H: expected [ssh://][USER@]HOST[:PORT]"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_forms),
        cmocka_unit_test(test_refused_forms_are_usage_errors_naming_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
