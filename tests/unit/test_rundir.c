/* Unit tests for rundir: which runtime directories are accepted, and the
 * private fallback used (and recorded) when the preferred one is not ours. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/base/cleanup.h"
#include "../../src/base/xalloc.h"
#include "../../src/infra/fs.h"
#include "../../src/infra/rundir.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qq-test-rundir-XXXXXX");
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

static void accepts_only_our_0700_directory(void **state)
{
    (void)state;
    _cleanup_free_ char *ok = at("ok"), *wide = at("wide"), *link = at("link"), *file = at("file"),
                        *missing = at("missing");
    assert_int_equal(mkdir(ok, 0700), 0);
    assert_int_equal(mkdir(wide, 0700), 0);
    assert_int_equal(chmod(wide, 0777), 0);
    assert_int_equal(symlink(ok, link), 0);
    assert_int_equal(fs_write_atomic(file, "x", 1, 0600, NULL), 0);
    qq_err e = { 0 };
    assert_int_equal(rundir_check(ok, &e), 0);
    assert_int_equal(rundir_check(wide, &e), -1);
    assert_non_null(strstr(e.msg, "0777"));
    assert_int_equal(rundir_check(link, &e), -1);
    assert_non_null(strstr(e.msg, "symlink"));
    assert_int_equal(rundir_check(file, &e), -1);
    assert_non_null(strstr(e.msg, "not a directory"));
    assert_int_equal(rundir_check(missing, &e), -1);
    assert_int_equal(chmod(wide, 0750), 0);
    assert_int_equal(rundir_check(wide, NULL), -1);
    assert_int_equal(chmod(wide, 01700), 0);
    assert_int_equal(rundir_check(wide, NULL), -1);
}

static void refuses_another_users_directory(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    struct passwd *pw = getpwnam("nobody");
    if (!pw)
        skip();
    _cleanup_free_ char *d = at("theirs");
    assert_int_equal(mkdir(d, 0700), 0);
    assert_int_equal(chown(d, pw->pw_uid, pw->pw_gid), 0);
    qq_err e = { 0 };
    assert_int_equal(rundir_check(d, &e), -1);
    assert_non_null(strstr(e.msg, "belongs to uid"));
}

static void makes_the_preferred_directory_0700(void **state)
{
    (void)state;
    _cleanup_free_ char *pref = at("qqmgr-1"), *rec = at("record");
    mode_t um = umask(0);
    _cleanup_free_ char *got = rundir_get(pref, rec, true, NULL);
    umask(um);
    assert_string_equal(got, pref);
    struct stat st;
    assert_int_equal(lstat(pref, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_false(fs_exists(rec));
}

static void falls_back_to_a_recorded_private_directory(void **state)
{
    (void)state;
    _cleanup_free_ char *pref = at("qqmgr-2"), *rec = at("record2"), *other = at("other");
    assert_int_equal(mkdir(other, 0700), 0);
    assert_int_equal(symlink(other, pref), 0);
    /* without create nothing is made and the foreign one is not named */
    _cleanup_free_ char *guess = rundir_get(pref, rec, false, NULL);
    assert_string_not_equal(guess, pref);
    assert_false(fs_exists(rec));
    _cleanup_free_ char *got = rundir_get(pref, rec, true, NULL);
    assert_non_null(got);
    assert_string_not_equal(got, pref);
    assert_int_equal(strncmp(got, pref, strlen(pref)), 0);
    assert_int_equal(rundir_check(got, NULL), 0);
    _cleanup_free_ char *text = NULL;
    assert_int_equal(fs_read_file(rec, &text, NULL, NULL), 0);
    text[strcspn(text, "\n")] = '\0';
    assert_string_equal(text, got);
    struct stat st;
    assert_int_equal(lstat(rec, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* the next use finds the same one, with or without create */
    _cleanup_free_ char *again = rundir_get(pref, rec, true, NULL);
    assert_string_equal(again, got);
    _cleanup_free_ char *look = rundir_get(pref, rec, false, NULL);
    assert_string_equal(look, got);
    /* a recorded dir that was widened is dropped for a fresh one */
    assert_int_equal(chmod(got, 0777), 0);
    _cleanup_free_ char *fresh = rundir_get(pref, rec, true, NULL);
    assert_string_not_equal(fresh, got);
    assert_int_equal(rundir_check(fresh, NULL), 0);
    assert_int_equal(chmod(got, 0700), 0);
    /* the symlink's target was never touched */
    assert_int_equal(lstat(other, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
}

static void preferred_is_xdg_runtime_dir_only_when_it_passes(void **state)
{
    (void)state;
    _cleanup_free_ char *xdg = at("xdg");
    assert_int_equal(mkdir(xdg, 0700), 0);
    setenv("XDG_RUNTIME_DIR", xdg, 1);
    _cleanup_free_ char *a = rundir_preferred();
    _cleanup_free_ char *want = xasprintf("%s/qqmgr", xdg);
    assert_string_equal(a, want);
    assert_int_equal(chmod(xdg, 0755), 0);
    setenv("TMPDIR", tmpdir, 1);
    _cleanup_free_ char *b = rundir_preferred();
    _cleanup_free_ char *want2 = xasprintf("%s/qqmgr-%lu", tmpdir, (unsigned long)geteuid());
    assert_string_equal(b, want2);
    unsetenv("XDG_RUNTIME_DIR");
    setenv("TMPDIR", "relative", 1);
    _cleanup_free_ char *c = rundir_preferred();
    _cleanup_free_ char *want3 = xasprintf("/tmp/qqmgr-%lu", (unsigned long)geteuid());
    assert_string_equal(c, want3);
    unsetenv("TMPDIR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(accepts_only_our_0700_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_another_users_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(makes_the_preferred_directory_0700, setup, teardown),
        cmocka_unit_test_setup_teardown(falls_back_to_a_recorded_private_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(preferred_is_xdg_runtime_dir_only_when_it_passes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
