/* Unit tests of leftover's repair of an own-run restore that replaces the
 * VM's disks (leftover_note_replace): a qqmgr killed while it copied the
 * layers leaves the disks as they were, one killed among the renames has
 * them all put back as saved — never some disks of each. The kill -9 of a
 * real restore during its copy is pinned end to end in
 * tests/e2e/test_mapped.py; the renames last microseconds, so here a child
 * process stands for the killed qqmgr and stops exactly there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/app/leftover.h"
#include "../../src/base/cleanup.h"
#include "../../src/base/xalloc.h"
#include "../../src/infra/fs.h"

static char dir[256];
static char *tmps[3], *disks[3];

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *got(const char *path)
{
    char *s = NULL;
    if (fs_read_file(path, &s, NULL, NULL) < 0)
        return xstrdup("<missing>");
    return s;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/qq-test-leftover-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    for (int i = 0; i < 2; i++) {
        disks[i] = xasprintf("%s/disk%d.qcow2", dir, i);
        tmps[i] = xasprintf("%s/disk%d.qcow2.restore.tmp", dir, i);
        put(disks[i], "as it was");
    }
    tmps[2] = disks[2] = NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        free(tmps[i]);
        free(disks[i]);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A restore that dies after `copied` complete copies (the next one begun),
 * having renamed `renamed` of them. */
static void dead_restore(int copied, int renamed)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        qq_err e = { 0 };
        if (leftover_begin(dir, "restore", "s1", true, NULL, &e) < 0 ||
            leftover_note_replace(dir, tmps, disks, &e) < 0)
            _exit(1);
        for (int i = 0; i < 2; i++)
            put(tmps[i], i < copied ? "as saved" : "as sa");
        if (copied == 2 && leftover_mark(dir, "renaming", &e) < 0)
            _exit(1);
        for (int i = 0; i < renamed; i++)
            if (rename(tmps[i], disks[i]) < 0)
                _exit(1);
        _exit(0);   /* stands for SIGKILL: no cleanup */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void repaired(const char *want_disks, const char *want_said)
{
    char *what = NULL;
    qq_err e = { 0 };
    assert_int_equal(leftover_repair(dir, &what, &e), 1);
    assert_non_null(what);
    assert_non_null(strstr(what, want_said));
    assert_non_null(strstr(what, "stopped"));
    free(what);
    for (int i = 0; i < 2; i++) {
        _cleanup_free_ char *s = got(disks[i]);
        assert_string_equal(s, want_disks);
        assert_false(fs_exists(tmps[i]));
    }
    _cleanup_free_ char *rec = xasprintf("%s/inflight.json", dir);
    assert_false(fs_exists(rec));
    assert_int_equal(leftover_repair(dir, NULL, &e), 0);   /* once */
}

static void a_restore_killed_while_copying_leaves_every_disk_as_it_was(void **state)
{
    (void)state;
    dead_restore(1, 0);
    repaired("as it was", "partial copies of its disks removed");
}

static void a_restore_killed_after_its_copies_before_a_rename_puts_every_disk_back_as_saved(void **state)
{
    (void)state;
    dead_restore(2, 0);
    repaired("as saved", "disks put back as saved");
}

static void a_restore_killed_among_the_renames_puts_every_disk_back_as_saved(void **state)
{
    (void)state;
    dead_restore(2, 1);
    repaired("as saved", "disks put back as saved");
}

static void a_live_restores_record_is_left_alone(void **state)
{
    (void)state;
    qq_err e = { 0 };
    assert_int_equal(leftover_begin(dir, "restore", "s1", true, NULL, &e), 0);
    assert_int_equal(leftover_note_replace(dir, tmps, disks, &e), 0);
    put(tmps[0], "as sa");
    assert_int_equal(leftover_repair(dir, NULL, &e), 0);
    assert_true(fs_exists(tmps[0]));
    leftover_end(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_restore_killed_while_copying_leaves_every_disk_as_it_was, setup, teardown),
        cmocka_unit_test_setup_teardown(a_restore_killed_after_its_copies_before_a_rename_puts_every_disk_back_as_saved,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_restore_killed_among_the_renames_puts_every_disk_back_as_saved, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_live_restores_record_is_left_alone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
