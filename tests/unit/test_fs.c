/* Unit tests for the infra helpers fs (files, locks, tail), net (ports,
 * long unix socket paths) and proc (spawn, pidfd wait). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/base/cleanup.h"
#include "../../src/base/clock.h"
#include "../../src/infra/fs.h"
#include "../../src/infra/lockfile.h"
#include "../../src/infra/net.h"
#include "../../src/infra/proc.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qq-test-fs-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *path(const char *rel)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, rel);
    return buf[i];
}

static void write_text(const char *p, const char *s)
{
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static void test_mkdir_p_creates_parents_with_mode(void **state)
{
    (void)state;
    qq_err e = { 0 };
    assert_int_equal(fs_mkdir_p(path("a/b/c/"), 0700, &e), 0);
    struct stat st;
    assert_int_equal(stat(path("a/b/c"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    /* existing: fine */
    assert_int_equal(fs_mkdir_p(path("a/b/c"), 0700, &e), 0);
}

static void test_mkdir_p_over_a_file_names_the_path(void **state)
{
    (void)state;
    qq_err e = { 0 };
    write_text(path("file"), "x");
    assert_int_equal(fs_mkdir_p(path("file/sub"), 0700, &e), -1);
    assert_int_equal(e.code, QQ_EXIT_FAIL);
    assert_non_null(strstr(e.msg, "file/sub"));
    assert_non_null(strstr(e.msg, "Not a directory"));
}

static void test_atomic_write_replaces_content_and_leaves_no_temp(void **state)
{
    (void)state;
    qq_err e = { 0 };
    write_text(path("f"), "old content");
    assert_int_equal(fs_write_atomic(path("f"), "new", 3, 0600, &e), 0);
    _cleanup_free_ char *s = NULL;
    size_t len = 0;
    assert_int_equal(fs_read_file(path("f"), &s, &len, &e), 0);
    assert_string_equal(s, "new");
    assert_int_equal(len, 3);
    _cleanup_free_ char *tmp = NULL;
    assert_true(asprintf(&tmp, "%s.tmp.%ld", path("f"), (long)getpid()) > 0);
    assert_false(fs_exists(tmp));
}

static void test_atomic_write_into_missing_dir_fails_with_path(void **state)
{
    (void)state;
    qq_err e = { 0 };
    assert_int_equal(fs_write_atomic(path("nodir/f"), "x", 1, 0600, &e), -1);
    assert_non_null(strstr(e.msg, "nodir/f"));
}

static void test_read_missing_file_keeps_enoent(void **state)
{
    (void)state;
    qq_err e = { 0 };
    char *s = NULL;
    assert_int_equal(fs_read_file(path("missing"), &s, NULL, &e), -1);
    assert_int_equal(errno, ENOENT);
    assert_non_null(strstr(e.msg, "missing"));
}

static void test_lock_is_exclusive_until_closed(void **state)
{
    (void)state;
    qq_err e = { 0 };
    int a = lockfile_take(path("lock"), &(lockfile_opts){ .deadline_ms = LOCKFILE_FOREVER }, &e);
    assert_true(a >= 0);
    int b = lockfile_take(path("lock"), NULL, &e);
    assert_int_equal(b, -1);
    assert_int_equal(errno, EWOULDBLOCK);
    assert_non_null(strstr(e.msg, "held by another qqmgr"));
    /* shared holders: any number, none beside an exclusive one */
    assert_int_equal(lockfile_take(path("lock"), &(lockfile_opts){ .shared = true }, &e), -1);
    close(a);
    a = lockfile_take(path("lock"), &(lockfile_opts){ .shared = true }, &e);
    b = lockfile_take(path("lock"), &(lockfile_opts){ .shared = true }, &e);
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(lockfile_take(path("lock"), NULL, &e), -1);
    close(a);
    close(b);
}

static void test_lock_wait_ends_at_the_deadline(void **state)
{
    (void)state;
    qq_err e = { 0 };
    int a = lockfile_take(path("lock"), NULL, &e);
    assert_true(a >= 0);
    long long t0 = clock_ms();
    int b = lockfile_take(path("lock"), &(lockfile_opts){ .deadline_ms = t0 + 300 }, &e);
    long long took = clock_ms() - t0;
    assert_int_equal(b, -1);
    assert_int_equal(errno, EWOULDBLOCK);
    assert_true(took >= 300 && took < 2000);
    close(a);
}

/* A holder that unlinks the lock file when done (a download's <hex>.lock; rm
 * removing a VM's dir): the waiter must lock the file now at the name, not
 * the removed one it opened. */
static void test_lock_of_a_file_unlinked_while_waiting_is_taken_anew(void **state)
{
    (void)state;
    qq_err e = { 0 };
    int a = lockfile_take(path("lock"), NULL, &e);
    assert_true(a >= 0);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(200 * 1000);
        unlink(path("lock"));   /* done: remove, then release */
        _exit(0);
    }
    close(a);   /* the child holds the lock (inherited descriptor) */
    int b = lockfile_take(path("lock"), &(lockfile_opts){ .deadline_ms = clock_ms() + 5000 }, &e);
    assert_true(b >= 0);
    waitpid(pid, NULL, 0);
    struct stat held, named;
    assert_int_equal(fstat(b, &held), 0);
    assert_int_equal(stat(path("lock"), &named), 0);
    assert_true(held.st_ino == named.st_ino);
    /* nobody else can take the lock at the name */
    assert_int_equal(lockfile_take(path("lock"), NULL, &e), -1);
    close(b);
}

static void check_tail(const char *content, size_t n, const char *want)
{
    qq_err e = { 0 };
    write_text(path("log"), content);
    sbuf b = SBUF_INIT;
    assert_int_equal(fs_tail(path("log"), n, &b, &e), 0);
    assert_string_equal(sbuf_str(&b), want);
    sbuf_free(&b);
}

static void test_tail_returns_last_lines(void **state)
{
    (void)state;
    check_tail("a\nb\nc\n", 2, "b\nc\n");
    check_tail("a\nb\nc", 2, "b\nc");          /* last line without newline counts */
    check_tail("a\nb\n", 10, "a\nb\n");        /* fewer lines than asked */
    check_tail("", 3, "");
    check_tail("a\n\n\n", 2, "\n\n");          /* empty lines are lines */
    check_tail("only", 1, "only");
    check_tail("a\nb\n", 0, "");
}

static void test_tail_of_a_big_file_crosses_chunks(void **state)
{
    (void)state;
    qq_err e = { 0 };
    FILE *f = fopen(path("big"), "w");
    for (int i = 0; i < 100000; i++)
        fprintf(f, "line %d\n", i);
    fclose(f);
    sbuf b = SBUF_INIT;
    assert_int_equal(fs_tail(path("big"), 20000, &b, &e), 0);
    assert_true(strncmp(b.buf, "line 80000\n", 11) == 0);
    assert_true(b.len > 11 && strcmp(b.buf + b.len - 11, "line 99999\n") == 0);
    sbuf_free(&b);
}

static void test_port_in_use_is_not_free_and_picked_port_is(void **state)
{
    (void)state;
    qq_err e = { 0 };
    int port = net_pick_port(&e);
    assert_true(port > 0);
    assert_true(net_tcp_port_free(port));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_false(net_tcp_port_free(port));
    close(fd);
}

static void test_unix_connect_reaches_a_socket_beyond_107_bytes(void **state)
{
    (void)state;
    qq_err e = { 0 };
    char deep[1024];
    snprintf(deep, sizeof deep, "%s/%s/%s", tmpdir,
             "a-rather-long-directory-name-to-go-past-the-sun-path-limit",
             "and-another-one-because-one-is-not-always-enough-here");
    assert_int_equal(fs_mkdir_p(deep, 0700, &e), 0);
    /* bind through a short relative path from inside the directory */
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(deep), 0);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "s.sock" };
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(chdir(cwd), 0);
    char full[1100];
    snprintf(full, sizeof full, "%s/s.sock", deep);
    assert_true(strlen(full) > 107);
    int c = net_unix_connect(full, &e);
    assert_true(c >= 0);
    close(c);
    close(l);
    /* nobody listening: a clear error naming the path */
    unlink(full);
    assert_int_equal(net_unix_connect(full, &e), -1);
    assert_non_null(strstr(e.msg, "s.sock"));
}

static void test_spawn_redirects_output_and_pidfd_sees_exit(void **state)
{
    (void)state;
    qq_err e = { 0 };
    char *argv[] = { "sh", "-c", "echo out; echo err >&2; pwd; read x; echo \"stdin=$x\"", NULL };
    write_text(path("stdout"), "previous run\n");
    proc_opts o = { .cwd = tmpdir, .stdout_path = path("stdout"), .stderr_path = path("stderr"),
                    .truncate = true, .new_session = true };
    pid_t pid = proc_spawn(argv, &o, &e);
    assert_true(pid > 0);
    int pfd = proc_pidfd(pid, &e);
    assert_true(pfd >= 0);
    assert_int_equal(proc_wait_pidfd(pfd, 10000), 1);
    int st;
    assert_int_equal(proc_reap(pid, &st), 1);
    assert_true(WIFEXITED(st));
    close(pfd);
    _cleanup_free_ char *out = NULL, *err = NULL;
    assert_int_equal(fs_read_file(path("stdout"), &out, NULL, &e), 0);
    assert_int_equal(fs_read_file(path("stderr"), &err, NULL, &e), 0);
    char want[600];
    snprintf(want, sizeof want, "out\n%s\nstdin=\n", tmpdir);
    assert_string_equal(out, want);
    assert_string_equal(err, "err\n");
}

static void test_spawn_in_new_session_and_wait_times_out_then_kill(void **state)
{
    (void)state;
    qq_err e = { 0 };
    char *argv[] = { "sleep", "30", NULL };
    proc_opts o = { .new_session = true };
    pid_t pid = proc_spawn(argv, &o, &e);
    assert_true(pid > 0);
    int pfd = proc_pidfd(pid, &e);
    assert_int_equal(proc_wait_pidfd(pfd, 50), 0);
    assert_int_equal(getsid(pid), pid);
    assert_int_equal(proc_signal(pfd, SIGKILL), 0);
    assert_int_equal(proc_wait_pidfd(pfd, 10000), 1);
    int st;
    assert_int_equal(proc_reap(pid, &st), 1);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    close(pfd);
}

static void test_spawn_of_missing_program_names_it(void **state)
{
    (void)state;
    qq_err e = { 0 };
    char *argv[] = { "qq-no-such-program", NULL };
    proc_opts o = { 0 };
    assert_int_equal(proc_spawn(argv, &o, &e), -1);
    assert_non_null(strstr(e.msg, "qq-no-such-program"));
    assert_non_null(strstr(e.msg, "No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkdir_p_creates_parents_with_mode),
        cmocka_unit_test(test_mkdir_p_over_a_file_names_the_path),
        cmocka_unit_test(test_atomic_write_replaces_content_and_leaves_no_temp),
        cmocka_unit_test(test_atomic_write_into_missing_dir_fails_with_path),
        cmocka_unit_test(test_read_missing_file_keeps_enoent),
        cmocka_unit_test(test_lock_is_exclusive_until_closed),
        cmocka_unit_test(test_lock_wait_ends_at_the_deadline),
        cmocka_unit_test(test_lock_of_a_file_unlinked_while_waiting_is_taken_anew),
        cmocka_unit_test(test_tail_returns_last_lines),
        cmocka_unit_test(test_tail_of_a_big_file_crosses_chunks),
        cmocka_unit_test(test_port_in_use_is_not_free_and_picked_port_is),
        cmocka_unit_test(test_unix_connect_reaches_a_socket_beyond_107_bytes),
        cmocka_unit_test(test_spawn_redirects_output_and_pidfd_sees_exit),
        cmocka_unit_test(test_spawn_in_new_session_and_wait_times_out_then_kill),
        cmocka_unit_test(test_spawn_of_missing_program_names_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
