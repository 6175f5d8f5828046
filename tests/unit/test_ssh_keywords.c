/* The table of ssh_config keywords against the installed ssh, and the
 * "did you mean" distance used for unknown keys. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/app/ssh_keywords.h"
#include "../../src/base/sbuf.h"
#include "../../src/base/strdist.h"
#include "../../src/infra/proc.h"

static bool have_ssh(void)
{
    char *argv[] = { "ssh", "-V", NULL };
    proc_run_opts o = { .null_stdio = true };
    proc_result r;
    return proc_run(argv, &o, &r, NULL) == 0;
}

/* ssh -F FILE -G h, where FILE sets KEY to a value: stderr. */
static void ssh_g_with(const char *key, sbuf *errout)
{
    char path[] = "/tmp/qq-test-sshkw-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "Host h\n    %s x\n", key);
    fclose(f);
    char *argv[] = { "ssh", "-F", path, "-G", "h", NULL };
    sbuf out = SBUF_INIT;
    proc_run_opts o = { .out = &out, .err = errout, .null_stdio = true, .timeout_ms = 10000 };
    proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    sbuf_free(&out);
    unlink(path);
}

static void test_every_keyword_of_the_table_is_known_to_the_installed_ssh(void **state)
{
    (void)state;
    if (!have_ssh())
        skip();
    size_t n = 0;
    for (const char *const *k = ssh_keywords; *k; k++, n++) {
        sbuf e = SBUF_INIT;
        ssh_g_with(*k, &e);
        if (strstr(sbuf_str(&e), "Bad configuration option"))
            fail_msg("ssh does not know %s: %s", *k, sbuf_str(&e));
        sbuf_free(&e);
    }
    assert_true(n > 90);
    /* and the check itself sees an unknown one */
    sbuf e = SBUF_INIT;
    ssh_g_with("StrictHostKeyCheckin", &e);
    assert_non_null(strstr(sbuf_str(&e), "Bad configuration option"));
    sbuf_free(&e);
}

static void test_every_key_ssh_g_prints_is_in_the_table(void **state)
{
    (void)state;
    if (!have_ssh())
        skip();
    char *argv[] = { "ssh", "-F", "/dev/null", "-G", "h", NULL };
    sbuf out = SBUF_INIT;
    proc_run_opts o = { .out = &out, .null_stdio = true, .timeout_ms = 10000 };
    proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    size_t n = 0;
    for (char *line = strtok(out.buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *sp = strchr(line, ' ');
        if (sp)
            *sp = '\0';
        if (strcmp(line, "host") == 0)      /* the Host block, written by qqmgr */
            continue;
        if (!ssh_keyword(line))
            fail_msg("ssh -G prints %s, which the table lacks", line);
        n++;
    }
    assert_true(n > 50);
    sbuf_free(&out);
}

static void test_keywords_are_found_regardless_of_case(void **state)
{
    (void)state;
    assert_string_equal(ssh_keyword("stricthostkeychecking"), "StrictHostKeyChecking");
    assert_string_equal(ssh_keyword("IDENTITYFILE"), "IdentityFile");
    assert_null(ssh_keyword("prot"));
    assert_null(ssh_keyword("Host"));
    assert_null(ssh_keyword(""));
}

static void test_distance_counts_edits_and_swaps_without_case(void **state)
{
    (void)state;
    assert_int_equal(str_distance("", ""), 0);
    assert_int_equal(str_distance("abc", ""), 3);
    assert_int_equal(str_distance("prot", "port"), 1);           /* a swap */
    assert_int_equal(str_distance("StrictHostKeyCheckin", "stricthostkeychecking"), 1);
    assert_int_equal(str_distance("kitten", "sitting"), 3);
    const char *const c[] = { "port", "vm_port", NULL };
    assert_string_equal(str_closest("prot", c), "port");
    assert_string_equal(str_closest("vmport", c), "vm_port");
    assert_null(str_closest("user", c));
    assert_string_equal(str_closest("StrictHostKeyCheckin", ssh_keywords), "StrictHostKeyChecking");
    assert_string_equal(str_closest("IdentityFiel", ssh_keywords), "IdentityFile");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_keyword_of_the_table_is_known_to_the_installed_ssh),
        cmocka_unit_test(test_every_key_ssh_g_prints_is_in_the_table),
        cmocka_unit_test(test_keywords_are_found_regardless_of_case),
        cmocka_unit_test(test_distance_counts_edits_and_swaps_without_case),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
