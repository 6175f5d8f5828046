/* Unit tests of the snapshot module's pure parts: the snapshot-name rule and
 * the per-run argument rewriting (launch_argv with extra/replace) that
 * start --restore/--rm relies on. Saving and loading are pinned end to end on
 * real guests in tests/e2e/test_snapshot.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <string.h>

#include "../../src/app/snapshot.h"

static void test_snapshot_names_follow_the_vm_name_rule(void **state)
{
    (void)state;
    static const char *const good[] = { "s1", "a.b_c-d", "Z9", "x..", "_x", NULL };
    static const char *const bad[] = { "", ".x", "-x", "a/b", "a b", "a\nb", "\xc3\xbc", "a:b", NULL };
    for (const char *const *g = good; *g; g++) {
        qq_err e = { 0 };
        assert_int_equal(snap_check_name(*g, &e), 0);
    }
    for (const char *const *b = bad; *b; b++) {
        qq_err e = { 0 };
        assert_int_equal(snap_check_name(*b, &e), -1);
        assert_int_equal(e.code, QQ_EXIT_USAGE);
        assert_non_null(strstr(e.msg, "snapshot name"));
    }
}

static void test_run_opts_rewrite_user_args_and_append_extra(void **state)
{
    (void)state;
    char *args[] = { "-m", "256", "-drive", "file=/img/disk.qcow2,format=qcow2", NULL };
    char *where[] = { "vm.t.cmd[0]", "vm.t.cmd[0]", "vm.t.cmd[1]", "vm.t.cmd[1]", NULL };
    vm_spec s = { .name = "t", .qemu_bin = "qemu-system-x86_64", .args = args, .nargs = 4, .arg_where = where,
                  .state_dir = "/tmp/qq-unit-snapshot/vm.t" };
    char *extra[] = { "-loadvm", "s1", NULL };
    char *replace[] = { "/img/disk.qcow2", "/tmp/copy.qcow2", NULL };
    launch_opts ro = { .extra = extra, .replace = replace };
    char **argv = NULL;
    qq_err e = { 0 };
    assert_int_equal(launch_argv(&s, &ro, &argv, &e), 0);
    assert_string_equal(argv[4], "file=/tmp/copy.qcow2,format=qcow2");
    int loadvm = -1;
    for (int i = 0; argv[i]; i++)
        if (strcmp(argv[i], "-loadvm") == 0)
            loadvm = i;
    assert_true(loadvm > 4);
    assert_string_equal(argv[loadvm + 1], "s1");
    launch_argv_free(argv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_names_follow_the_vm_name_rule),
        cmocka_unit_test(test_run_opts_rewrite_user_args_and_append_extra),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
