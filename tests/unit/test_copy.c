/* Unit tests for infra/copy: sparse-aware copies keep content and holes. */
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
#include "../../src/base/err.h"
#include "../../src/infra/copy.h"

static char dir[] = "/tmp/qq-test-copy-XXXXXX";

static char *path(const char *name)
{
    static char buf[4][300];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* 64 MiB file: 1 MiB of data at 0, 8 MiB and the last 4 KiB; holes elsewhere. */
#define SIZE (64LL << 20)
static void make_sparse(const char *p)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    static unsigned char block[1 << 20];
    for (size_t i = 0; i < sizeof block; i++)
        block[i] = (unsigned char)(i * 13 + i / 4099 + 1);
    assert_int_equal(pwrite(fd, block, sizeof block, 0), sizeof block);
    assert_int_equal(pwrite(fd, block, sizeof block, 8 << 20), sizeof block);
    assert_int_equal(pwrite(fd, block, 4096, SIZE - 4096), 4096);
    close(fd);
}

static void assert_same_content(const char *a, const char *b)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
    assert_int_equal(system(cmd), 0);
}

static void test_copy_keeps_content_and_holes(void **state)
{
    (void)state;
    make_sparse(path("sparse"));
    qq_err e = { 0 };
    copy_stats cs;
    assert_int_equal(copy_sparse(path("sparse"), path("copy"), &cs, &e), 0);
    assert_same_content(path("sparse"), path("copy"));
    struct stat st;
    assert_int_equal(stat(path("copy"), &st), 0);
    assert_int_equal(st.st_size, SIZE);
    /* about 2 MiB allocated, not 64 (unless the blocks are shared) */
    if (!cs.reflinked) {
        assert_true(st.st_blocks * 512 < (8LL << 20));
        assert_true(cs.data >= (2LL << 20) + 4096 && cs.data < (8LL << 20));
    }
}

static void test_copy_of_a_file_ending_in_a_hole_has_the_full_size(void **state)
{
    (void)state;
    int fd = open(path("tail-hole"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(write(fd, "head", 4), 4);
    assert_int_equal(ftruncate(fd, 32 << 20), 0);
    close(fd);
    qq_err e = { 0 };
    assert_int_equal(copy_sparse(path("tail-hole"), path("tail-copy"), NULL, &e), 0);
    assert_same_content(path("tail-hole"), path("tail-copy"));
}

static void test_copy_replaces_a_longer_destination(void **state)
{
    (void)state;
    int fd = open(path("long"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, 100 << 20), 0);
    close(fd);
    fd = open(path("short"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(write(fd, "short file\n", 11), 11);
    close(fd);
    qq_err e = { 0 };
    assert_int_equal(copy_sparse(path("short"), path("long"), NULL, &e), 0);
    assert_same_content(path("short"), path("long"));
}

static void test_missing_source_is_an_error_naming_it(void **state)
{
    (void)state;
    qq_err e = { 0 };
    assert_int_equal(copy_sparse(path("nope"), path("out"), NULL, &e), -1);
    assert_non_null(strstr(e.msg, "nope"));
    assert_int_equal(e.code, QQ_EXIT_FAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_keeps_content_and_holes),
        cmocka_unit_test(test_copy_of_a_file_ending_in_a_hole_has_the_full_size),
        cmocka_unit_test(test_copy_replaces_a_longer_destination),
        cmocka_unit_test(test_missing_source_is_an_error_naming_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
