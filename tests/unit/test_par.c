/* Unit tests for par_run: a child per item, a bounded number at a time, each
 * item's status and output reported in item order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/base/sbuf.h"
#include "../../src/infra/par.h"

typedef struct seen {
    size_t order[64];
    int status[64];
    char out[64][64], err[64][64], data[64][64];
    size_t n;
} seen;

static void record(size_t i, const par_result *r, void *arg)
{
    seen *s = arg;
    s->order[s->n] = i;
    s->status[i] = r->status;
    snprintf(s->out[i], sizeof s->out[i], "%s", r->out);
    snprintf(s->err[i], sizeof s->err[i], "%s", r->err);
    snprintf(s->data[i], sizeof s->data[i], "%s", r->data);
    s->n++;
}

/* item i sleeps (n - i) * 20 ms, so later items end first */
static int sleepy(size_t i, void *arg, sbuf *result)
{
    (void)arg;
    sbuf_addf(result, "{\"item\": %zu}", i);
    struct timespec ts = { 0, (long)(6 - i) * 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    printf("out %zu\n", i);
    fprintf(stderr, "err %zu\n", i);
    if (i == 3)
        raise(SIGKILL);
    return (int)i;
}

static void test_each_item_status_and_output_in_item_order(void **state)
{
    (void)state;
    seen s = { 0 };
    qq_err e = { 0 };
    assert_int_equal(par_run(6, 6, sleepy, record, &s, &e), 0);
    assert_int_equal(s.n, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(s.order[i], i);
        char want[32];
        if (i == 3) {
            /* killed after writing: no result (it is sent when fn returns) */
            assert_int_equal(s.status[i], 128 + SIGKILL);
            assert_string_equal(s.data[i], "");
            continue;
        }
        snprintf(want, sizeof want, "{\"item\": %zu}", i);
        assert_string_equal(s.data[i], want);
        assert_int_equal(s.status[i], (int)i);
        snprintf(want, sizeof want, "out %zu\n", i);
        assert_string_equal(s.out[i], want);
        snprintf(want, sizeof want, "err %zu\n", i);
        assert_string_equal(s.err[i], want);
    }
}

/* Each child counts itself into a shared file under flock, and records the
 * most that were inside at once. */
static char counter[64];

static int counted(size_t i, void *arg, sbuf *result)
{
    (void)i;
    (void)result;
    (void)arg;
    int fd = open(counter, O_RDWR);
    flock(fd, LOCK_EX);
    char buf[32] = "";
    pread(fd, buf, sizeof buf - 1, 0);
    int in = 0, most = 0;
    sscanf(buf, "%d %d", &in, &most);
    in++;
    if (in > most)
        most = in;
    snprintf(buf, sizeof buf, "%d %d\n", in, most);
    ftruncate(fd, 0);
    pwrite(fd, buf, strlen(buf), 0);
    flock(fd, LOCK_UN);
    struct timespec ts = { 0, 30 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    flock(fd, LOCK_EX);
    memset(buf, 0, sizeof buf);
    pread(fd, buf, sizeof buf - 1, 0);
    sscanf(buf, "%d %d", &in, &most);
    snprintf(buf, sizeof buf, "%d %d\n", in - 1, most);
    ftruncate(fd, 0);
    pwrite(fd, buf, strlen(buf), 0);
    flock(fd, LOCK_UN);
    close(fd);
    return 0;
}

static void test_at_most_max_parallel_children_at_once(void **state)
{
    (void)state;
    snprintf(counter, sizeof counter, "/tmp/qq-test-par-%ld", (long)getpid());
    FILE *f = fopen(counter, "w");
    assert_non_null(f);
    fclose(f);
    seen s = { 0 };
    qq_err e = { 0 };
    assert_int_equal(par_run(9, 3, counted, record, &s, &e), 0);
    assert_int_equal(s.n, 9);
    char buf[32] = "";
    f = fopen(counter, "r");
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    unlink(counter);
    int in = -1, most = -1;
    assert_int_equal(sscanf(buf, "%d %d", &in, &most), 2);
    assert_int_equal(in, 0);
    assert_true(most >= 2 && most <= 3);
}

/* 40 children asked at once under a descriptor limit that fits fewer: all
 * still run (fewer at a time) and none is lost to EMFILE. */
static void test_a_low_descriptor_limit_bounds_the_children_not_the_items(void **state)
{
    (void)state;
    struct rlimit old, low = { .rlim_cur = 100, .rlim_max = 100 };
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* in a child: the lowered hard limit cannot be raised again */
        if (setrlimit(RLIMIT_NOFILE, &low) < 0)
            _exit(3);
        snprintf(counter, sizeof counter, "/tmp/qq-test-par-fd-%ld", (long)getpid());
        FILE *f = fopen(counter, "w");
        if (!f)
            _exit(4);
        fclose(f);
        seen s = { 0 };
        qq_err e = { 0 };
        int rc = par_run(40, 40, counted, record, &s, &e);
        unlink(counter);
        _exit(rc == 0 && s.n == 40 ? 0 : 5);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_no_items_is_no_call(void **state)
{
    (void)state;
    seen s = { 0 };
    qq_err e = { 0 };
    assert_int_equal(par_run(0, 4, sleepy, record, &s, &e), 0);
    assert_int_equal(s.n, 0);
    assert_true(par_default_parallel() >= 2);
}

/* items 0 and 1 wait for a signal (as they would for a guest); item 2 would start later */
static int waits_for_a_signal(size_t i, void *arg, sbuf *result)
{
    (void)arg;
    (void)result;
    if (i >= 2)
        return 7;   /* never started: the interrupt came first */
    pause();
    return 0;
}

static void test_sigterm_to_the_parent_reaches_every_running_child_and_starts_no_more(void **state)
{
    (void)state;
    /* a process of its own sends SIGTERM to us once the children wait */
    pid_t me = getpid(), killer = fork();
    assert_true(killer >= 0);
    if (killer == 0) {
        struct timespec ts = { 1, 0 };
        nanosleep(&ts, NULL);
        kill(me, SIGTERM);
        _exit(0);
    }
    struct sigaction before, after;
    sigaction(SIGTERM, NULL, &before);
    seen s = { 0 };
    qq_err e = { 0 };
    /* at most 2 at once: item 2 waits for a free slot that only the interrupt makes */
    assert_int_equal(par_run(3, 2, waits_for_a_signal, record, &s, &e), 0);
    waitpid(killer, NULL, 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.status[0], 128 + SIGTERM);
    assert_int_equal(s.status[1], 128 + SIGTERM);
    sigaction(SIGTERM, NULL, &after);
    assert_ptr_equal(after.sa_handler, before.sa_handler);   /* the caller's disposition is back */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_item_status_and_output_in_item_order),
        cmocka_unit_test(test_at_most_max_parallel_children_at_once),
        cmocka_unit_test(test_a_low_descriptor_limit_bounds_the_children_not_the_items),
        cmocka_unit_test(test_no_items_is_no_call),
        cmocka_unit_test(test_sigterm_to_the_parent_reaches_every_running_child_and_starts_no_more),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
