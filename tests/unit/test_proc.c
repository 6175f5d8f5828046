/* Unit tests for proc_run, the one way qqmgr runs a program to its end:
 * cwd, stdin text, stdout/stderr capture, exit status, timeout kills. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/base/clock.h"
#include "../../src/base/sbuf.h"
#include "../../src/infra/proc.h"
#include "../../src/infra/sig.h"

static void test_run_captures_stdout_and_stderr_apart(void **state)
{
    (void)state;
    sbuf out = SBUF_INIT, err = SBUF_INIT;
    char *argv[] = { "sh", "-c", "echo to-out; echo to-err >&2; exit 3", NULL };
    proc_run_opts o = { .out = &out, .err = &err };
    proc_result r;
    qq_err e = { 0 };
    assert_int_equal(proc_run(argv, &o, &r, &e), 0);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 3);
    assert_false(r.timed_out);
    assert_string_equal(sbuf_str(&out), "to-out\n");
    assert_string_equal(sbuf_str(&err), "to-err\n");
    sbuf_free(&out);
    sbuf_free(&err);
}

static void test_run_delivers_stdin_text_then_closes_it(void **state)
{
    (void)state;
    /* 1 MiB: more than a pipe holds, so writing and reading must interleave */
    size_t n = 1 << 20;
    char *in = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)('a' + i % 26);
    in[n] = '\0';
    sbuf out = SBUF_INIT;
    char *argv[] = { "cat", NULL };
    proc_run_opts o = { .in = in, .out = &out };
    proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.buf, in, n);
    sbuf_free(&out);
    free(in);
}

/* answers "B\n" once stdout holds a whole line starting with "A" */
static const char *answer_a(const sbuf *out, void *arg)
{
    int *calls = arg;
    (*calls)++;
    return strstr(sbuf_str(out), "A\n") ? "B\n" : NULL;
}

static void test_run_dialog_answers_what_the_child_printed_then_closes_stdin(void **state)
{
    (void)state;
    sbuf out = SBUF_INIT;
    int calls = 0;
    /* the question comes in two writes: the answer waits for the whole line */
    char *argv[] = { "sh", "-c", "printf x; sleep 0.1; echo A; read a; echo got $a; cat; echo end", NULL };
    proc_run_opts o = { .out = &out, .answer = answer_a, .answer_arg = &calls, .timeout_ms = 10000 };
    proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    assert_false(r.timed_out);
    assert_string_equal(sbuf_str(&out), "xA\ngot B\nend\n");
    assert_true(calls >= 2);
    sbuf_free(&out);
}

static void test_run_dialog_child_that_never_asks_ends_without_an_answer(void **state)
{
    (void)state;
    sbuf out = SBUF_INIT;
    int calls = 0;
    char *argv[] = { "sh", "-c", "echo no", NULL };
    proc_run_opts o = { .out = &out, .answer = answer_a, .answer_arg = &calls, .timeout_ms = 10000 };
    proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    assert_false(r.timed_out);
    assert_string_equal(sbuf_str(&out), "no\n");
    sbuf_free(&out);
}

static void test_run_ends_a_child_at_once_when_a_signal_is_caught(void **state)
{
    (void)state;
    sig_scope ss;
    sig_catch(&ss);
    /* a SIGTERM to us 0.2 s from now, from a process of its own */
    pid_t me = getpid();
    pid_t k = fork();
    if (k == 0) {
        usleep(200 * 1000);
        kill(me, SIGTERM);
        _exit(0);
    }
    char *argv[] = { "sleep", "30", NULL };
    proc_run_opts o = { .timeout_ms = 20000, .own_group = true, .stop = sig_flag() };
    proc_result r;
    long long t0 = clock_ms();
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    long long took = clock_ms() - t0;
    waitpid(k, NULL, 0);
    assert_int_equal(sig_caught(), SIGTERM);
    sig_release(&ss);
    assert_true(r.stopped);
    assert_false(r.timed_out);
    assert_true(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL);
    assert_true(took < 5000);
}

static void test_run_without_stdin_text_reads_dev_null_when_asked(void **state)
{
    (void)state;
    sbuf out = SBUF_INIT;
    char *argv[] = { "sh", "-c", "cat; echo end", NULL };
    proc_run_opts o = { .out = &out, .null_stdio = true };
    proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    assert_string_equal(sbuf_str(&out), "end\n");
    sbuf_free(&out);
}

static void test_run_in_the_given_directory(void **state)
{
    (void)state;
    char dir[] = "/tmp/qq-test-proc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    sbuf out = SBUF_INIT;
    char *argv[] = { "pwd", "-P", NULL };
    proc_run_opts o = { .cwd = dir, .out = &out };
    proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    char *real = realpath(dir, NULL);
    char want[300];
    snprintf(want, sizeof want, "%s\n", real);
    assert_string_equal(sbuf_str(&out), want);
    free(real);
    sbuf_free(&out);
    rmdir(dir);
}

static void test_run_timeout_kills_the_child(void **state)
{
    (void)state;
    sbuf out = SBUF_INIT;
    char *argv[] = { "sh", "-c", "echo started; exec sleep 30", NULL };
    proc_run_opts o = { .out = &out, .timeout_ms = 300 };
    proc_result r;
    long long t0 = clock_ms();
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    long long took = clock_ms() - t0;
    assert_true(r.timed_out);
    assert_true(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL);
    assert_true(took >= 250 && took < 5000);
    assert_string_equal(sbuf_str(&out), "started\n");
    sbuf_free(&out);
}

static void test_run_timeout_also_bounds_a_grandchild_holding_the_pipe(void **state)
{
    (void)state;
    sbuf out = SBUF_INIT, err = SBUF_INIT;
    /* the child exits at once; its background child keeps stdout open (and
     * only that: not the runner's stderr, or the test harness would wait for
     * it too), and is killed here once it has served */
    char *argv[] = { "sh", "-c", "sleep 30 2>/dev/null </dev/null & echo $! >&2; echo bye", NULL };
    proc_run_opts o = { .out = &out, .err = &err, .timeout_ms = 300 };
    proc_result r;
    long long t0 = clock_ms();
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    assert_true(clock_ms() - t0 < 5000);
    pid_t sleeper = (pid_t)atol(sbuf_str(&err));
    assert_true(sleeper > 1);
    assert_int_equal(kill(sleeper, SIGKILL), 0);
    assert_false(r.timed_out);
    assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    assert_string_equal(sbuf_str(&out), "bye\n");
    sbuf_free(&out);
    sbuf_free(&err);
}

static void test_run_of_a_missing_program_fails_with_enoent(void **state)
{
    (void)state;
    char *argv[] = { "qq-no-such-program-here", NULL };
    proc_run_opts o = { .cwd = "/" };
    proc_result r;
    qq_err e = { 0 };
    assert_int_equal(proc_run(argv, &o, &r, &e), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(e.code, QQ_EXIT_FAIL);
    assert_non_null(strstr(e.msg, "cannot run qq-no-such-program-here in /"));
}

static void test_run_child_that_ignores_its_stdin_does_not_kill_us(void **state)
{
    (void)state;
    /* the child exits without reading: writing the rest must not SIGPIPE us */
    size_t n = 1 << 20;
    char *in = malloc(n + 1);
    memset(in, 'x', n);
    in[n] = '\0';
    char *argv[] = { "true", NULL };
    proc_run_opts o = { .in = in };
    proc_result r;
    assert_int_equal(proc_run(argv, &o, &r, NULL), 0);
    assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    free(in);
}

static void test_descends_from_finds_a_grandchild_not_a_parent(void **state)
{
    (void)state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    if (child == 0) {
        /* a wrapper: its child (QEMU under strace -f) is our grandchild */
        pid_t g = fork();
        if (g == 0) {
            pid_t me = getpid();
            if (write(ready[1], &me, sizeof me) != (ssize_t)sizeof me)
                _exit(1);
            pause();
            _exit(0);
        }
        waitpid(g, NULL, 0);
        _exit(0);
    }
    pid_t grandchild = 0;
    assert_int_equal(read(ready[0], &grandchild, sizeof grandchild), (ssize_t)sizeof grandchild);
    bool got[] = { proc_descends_from(grandchild, child), proc_descends_from(grandchild, getpid()),
                   proc_descends_from(child, child), proc_descends_from(child, grandchild),
                   proc_descends_from(getppid(), getpid()), proc_descends_from(0, child) };
    kill(grandchild, SIGKILL);   /* before any assert: a failure leaves no process behind */
    waitpid(child, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    assert_true(got[0] && got[1] && got[2]);
    assert_false(got[3] || got[4] || got[5]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_captures_stdout_and_stderr_apart),
        cmocka_unit_test(test_descends_from_finds_a_grandchild_not_a_parent),
        cmocka_unit_test(test_run_delivers_stdin_text_then_closes_it),
        cmocka_unit_test(test_run_without_stdin_text_reads_dev_null_when_asked),
        cmocka_unit_test(test_run_in_the_given_directory),
        cmocka_unit_test(test_run_timeout_kills_the_child),
        cmocka_unit_test(test_run_timeout_also_bounds_a_grandchild_holding_the_pipe),
        cmocka_unit_test(test_run_of_a_missing_program_fails_with_enoent),
        cmocka_unit_test(test_run_child_that_ignores_its_stdin_does_not_kill_us),
        cmocka_unit_test(test_run_dialog_answers_what_the_child_printed_then_closes_stdin),
        cmocka_unit_test(test_run_dialog_child_that_never_asks_ends_without_an_answer),
        cmocka_unit_test(test_run_ends_a_child_at_once_when_a_signal_is_caught),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
