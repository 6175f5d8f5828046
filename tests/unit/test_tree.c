/* Unit tests for tree: a tree is removed and measured without ever leaving
 * it through a symlink. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/base/cleanup.h"
#include "../../src/base/xalloc.h"
#include "../../src/infra/tree.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qq-test-tree-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *at(const char *name) { return xasprintf("%s/%s", tmpdir, name); }

static void put(const char *name, size_t n)
{
    _cleanup_free_ char *p = at(name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputc('x', f);
    fclose(f);
}

static void removes_a_tree_and_never_what_its_symlinks_point_at(void **state)
{
    (void)state;
    _cleanup_free_ char *t = at("t"), *sub = at("t/sub"), *out = at("out"), *keep = at("out/keep");
    assert_int_equal(mkdir(t, 0700), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(mkdir(out, 0700), 0);
    put("t/sub/a", 10);
    put("out/keep", 10);
    _cleanup_free_ char *l1 = at("t/link-dir"), *l2 = at("t/sub/link-file");
    assert_int_equal(symlink(out, l1), 0);
    assert_int_equal(symlink(keep, l2), 0);
    qq_err err = { 0 };
    assert_int_equal(tree_remove_at(AT_FDCWD, t, t, &err), 0);
    struct stat st;
    assert_int_equal(lstat(t, &st), -1);
    assert_int_equal(stat(keep, &st), 0);   /* the target stays */
    /* a missing entry is done */
    assert_int_equal(tree_remove_at(AT_FDCWD, t, t, &err), 0);
}

static void a_symlink_to_a_tree_is_removed_as_a_name(void **state)
{
    (void)state;
    _cleanup_free_ char *out = at("out"), *keep = at("out/keep"), *l = at("l");
    assert_int_equal(mkdir(out, 0700), 0);
    put("out/keep", 10);
    assert_int_equal(symlink(out, l), 0);
    assert_int_equal(tree_open(l), -1);   /* O_NOFOLLOW */
    qq_err err = { 0 };
    assert_int_equal(tree_remove_at(AT_FDCWD, l, l, &err), 0);
    struct stat st;
    assert_int_equal(lstat(l, &st), -1);
    assert_int_equal(stat(keep, &st), 0);
}

static void contents_go_but_the_kept_entry(void **state)
{
    (void)state;
    _cleanup_free_ char *t = at("t"), *lock = at("t/lock"), *a = at("t/a");
    assert_int_equal(mkdir(t, 0700), 0);
    put("t/lock", 1);
    put("t/a", 1);
    _cleanup_close_ int fd = tree_open(t);
    assert_true(fd >= 0);
    qq_err err = { 0 };
    assert_int_equal(tree_remove_contents(fd, "lock", t, &err), 0);
    struct stat st;
    assert_int_equal(stat(lock, &st), 0);
    assert_int_equal(stat(a, &st), -1);
}

static void usage_counts_a_symlink_as_itself(void **state)
{
    (void)state;
    _cleanup_free_ char *t = at("t"), *out = at("out"), *l = at("t/l");
    assert_int_equal(mkdir(t, 0700), 0);
    assert_int_equal(mkdir(out, 0700), 0);
    put("out/big", 1 << 20);
    put("t/small", 100);
    assert_int_equal(symlink(out, l), 0);
    unsigned long long u = tree_usage(t);
    assert_true(u > 0 && u < (1 << 20));
    assert_true(tree_usage(out) >= (1 << 20));
    _cleanup_free_ char *missing = at("missing");
    assert_int_equal(tree_usage(missing), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(removes_a_tree_and_never_what_its_symlinks_point_at, setup, teardown),
        cmocka_unit_test_setup_teardown(a_symlink_to_a_tree_is_removed_as_a_name, setup, teardown),
        cmocka_unit_test_setup_teardown(contents_go_but_the_kept_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(usage_counts_a_symlink_as_itself, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
