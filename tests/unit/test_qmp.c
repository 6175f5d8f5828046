/* Unit tests for the QMP client: a real QEMU (guestless, TCG) for the normal
 * path, and a fake server only for what a real QEMU cannot show on demand
 * (silence → timeout, a reply arriving after events, a closed connection). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/base/cleanup.h"
#include "../../src/infra/qmp.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qq-test-qmp-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int listen_at(const char *p)
{
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p);
    unlink(p);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l, 4), 0);
    return l;
}

/* A scripted fake QMP server in a child process: sends greeting, answers
 * qmp_capabilities, then for the next command runs `mode`. */
enum fake_mode { FAKE_SILENT_AFTER_CAPS, FAKE_EVENTS_THEN_REPLY, FAKE_CLOSE_AFTER_CAPS,
                 FAKE_ERROR_REPLY, FAKE_FLOOD_EVENTS, FAKE_FLOOD_BLANK, FAKE_FLOOD_LINE,
                 FAKE_2000_EVENTS_THEN_REPLY, FAKE_BLANK_BEFORE_GREETING, FAKE_HUGE_ARRAY_REPLY };

/* Write the same chunk until the client goes away (EPIPE), then exit. */
_Noreturn static void flood(int c, const char *chunk)
{
    signal(SIGPIPE, SIG_IGN);
    size_t n = strlen(chunk);
    char buf[65536];
    size_t k = 0;
    while (k + n <= sizeof buf) {
        memcpy(buf + k, chunk, n);
        k += n;
    }
    for (;;)
        if (write(c, buf, k) < 0)
            _exit(0);
}

static void read_line(int c, char *buf, size_t n)
{
    size_t i = 0;
    while (i + 1 < n && read(c, buf + i, 1) == 1 && buf[i] != '\n')
        i++;
    buf[i] = '\0';
}

static void reply_id(int c, const char *line, const char *body)
{
    json_t *req = json_loads(line, 0, NULL);
    const char *id = json_string_value(json_object_get(req, "id"));
    dprintf(c, "{%s, \"id\": \"%s\"}\r\n", body, id ? id : "");
    json_decref(req);
}

static pid_t fake_server(const char *p, enum fake_mode mode)
{
    int l = listen_at(p);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0) {
        close(l);
        return pid;
    }
    int c = accept(l, NULL, NULL);
    char line[4096];
    if (mode == FAKE_BLANK_BEFORE_GREETING)
        flood(c, "\r\n");
    dprintf(c, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
    read_line(c, line, sizeof line);
    reply_id(c, line, "\"return\": {}");
    if (mode == FAKE_CLOSE_AFTER_CAPS)
        _exit(0);
    read_line(c, line, sizeof line);
    if (mode == FAKE_FLOOD_EVENTS)
        flood(c, "{\"event\": \"RTC_CHANGE\", \"data\": {\"offset\": 1}, "
                 "\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n");
    if (mode == FAKE_FLOOD_BLANK)
        flood(c, "\r\n");
    if (mode == FAKE_FLOOD_LINE)
        flood(c, "{\"return\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    if (mode == FAKE_HUGE_ARRAY_REPLY) {
        /* one 8 MiB message of 4 Mi tiny values: under the byte cap, over the value cap */
        signal(SIGPIPE, SIG_IGN);
        dprintf(c, "{\"return\": [0");
        static char zeros[1 << 16];
        for (size_t i = 0; i < sizeof zeros; i += 2)
            memcpy(zeros + i, ",0", 2);
        for (int i = 0; i < 128; i++)
            if (write(c, zeros, sizeof zeros) < 0)
                _exit(0);
        dprintf(c, "]}\r\n");
        pause();
        _exit(0);
    }
    if (mode == FAKE_2000_EVENTS_THEN_REPLY) {
        for (int i = 0; i < 2000; i++)
            dprintf(c, "{\"event\": \"E\", \"data\": {\"n\": %d}}\r\n", i);
        reply_id(c, line, "\"return\": {}");
        pause();
        _exit(0);
    }
    if (mode == FAKE_SILENT_AFTER_CAPS) {
        pause();
        _exit(0);
    }
    if (mode == FAKE_ERROR_REPLY) {
        reply_id(c, line, "\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}");
        pause();
        _exit(0);
    }
    /* two events, a stale reply with another id, then the reply, split across writes */
    dprintf(c, "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n");
    dprintf(c, "{\"return\": {\"stale\": true}, \"id\": \"other\"}\r\n{\"event\": \"RESU");
    usleep(20000);
    dprintf(c, "ME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 3}}\r\n");
    reply_id(c, line, "\"return\": {\"status\": \"paused\"}");
    pause();
    _exit(0);
}

/* A fake server in mode at tmpdir/name, and a client past the handshake. */
static qmp *open_fake(const char *name, enum fake_mode mode, pid_t *srv)
{
    char p[300];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    *srv = fake_server(p, mode);
    qq_err e = { 0 };
    qmp *q = qmp_open(p, 2000, &e);
    if (!q)
        fail_msg("%s", e.msg);
    return q;
}

static void kill_child(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void test_no_greeting_times_out_with_a_clear_error(void **state)
{
    (void)state;
    char p[300];
    snprintf(p, sizeof p, "%s/silent.sock", tmpdir);
    int l = listen_at(p);   /* listens, never accepts: like a QEMU busy with another client */
    qq_err e = { 0 };
    long long t0 = now_ms();
    qmp *q = qmp_open(p, 300, &e);
    long long took = now_ms() - t0;
    assert_null(q);
    assert_true(took >= 290 && took < 3000);
    assert_non_null(strstr(e.msg, "no greeting within 0.3 s"));
    assert_non_null(strstr(e.msg, "silent.sock"));
    close(l);
}

static void test_command_without_reply_times_out(void **state)
{
    (void)state;
    pid_t srv;
    qmp *q = open_fake("wedged.sock", FAKE_SILENT_AFTER_CAPS, &srv);
    qq_err e = { 0 };
    long long t0 = now_ms();
    json_t *r = qmp_execute(q, "query-status", NULL, 200, &e);
    assert_null(r);
    assert_true(now_ms() - t0 < 3000);
    assert_non_null(strstr(e.msg, "no reply to query-status within 0.2 s"));
    qmp_close(q);
    kill_child(srv);
}

static void test_events_before_the_reply_are_kept(void **state)
{
    (void)state;
    pid_t srv;
    qmp *q = open_fake("events.sock", FAKE_EVENTS_THEN_REPLY, &srv);
    qq_err e = { 0 };
    _cleanup_json_ json_t *r = qmp_execute(q, "query-status", NULL, 2000, &e);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "paused");
    _cleanup_json_ json_t *ev = qmp_take_events(q);
    assert_int_equal(json_array_size(ev), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "event")), "STOP");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 1), "event")), "RESUME");
    qmp_close(q);
    kill_child(srv);
}

static void test_closed_connection_is_reported(void **state)
{
    (void)state;
    pid_t srv;
    qmp *q = open_fake("closed.sock", FAKE_CLOSE_AFTER_CAPS, &srv);
    qq_err e = { 0 };
    waitpid(srv, NULL, 0);
    assert_null(qmp_execute(q, "query-status", NULL, 2000, &e));
    assert_non_null(strstr(e.msg, "closed the connection"));
    qmp_close(q);
}

static void test_error_reply_carries_class_and_description(void **state)
{
    (void)state;
    pid_t srv;
    qmp *q = open_fake("err.sock", FAKE_ERROR_REPLY, &srv);
    qq_err e = { 0 };
    assert_null(qmp_execute(q, "cont", NULL, 2000, &e));
    assert_string_equal(e.msg, "QMP cont: GenericError: nope");
    qmp_close(q);
    kill_child(srv);
}

static void test_missing_socket_names_the_path(void **state)
{
    (void)state;
    qq_err e = { 0 };
    assert_null(qmp_open("/nonexistent/qmp.socket", 500, &e));
    assert_non_null(strstr(e.msg, "/nonexistent/qmp.socket"));
    assert_non_null(strstr(e.msg, "No such file"));
}


/* ---- floods and stalls: every call ends by its own deadline, memory stays bounded ---- */

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void flood_call_ends_at_its_deadline(enum fake_mode mode, const char *sockname)
{
    pid_t srv;
    qmp *q = open_fake(sockname, mode, &srv);
    qq_err e = { 0 };
    long long t0 = now_ms();
    json_t *r = qmp_execute(q, "query-status", NULL, 500, &e);
    long long took = now_ms() - t0;
    assert_null(r);
    print_message("%s: call ended after %lld ms: %s\n", sockname, took, e.msg);
    assert_true(took >= 490 && took < 1500);
    assert_non_null(strstr(e.msg, "no reply to query-status within 0.5 s"));
    if (mode == FAKE_FLOOD_EVENTS) {
        assert_true(qmp_events_dropped(q) > 0);
        _cleanup_json_ json_t *ev = qmp_take_events(q);
        assert_int_equal(json_array_size(ev), QMP_MAX_EVENTS);
    }
    qmp_close(q);
    kill_child(srv);
}

static void test_endless_events_cannot_extend_a_call_and_the_queue_drops_oldest(void **state)
{
    (void)state;
    flood_call_ends_at_its_deadline(FAKE_FLOOD_EVENTS, "flood-events.sock");
}

static void test_endless_blank_lines_cannot_extend_a_call(void **state)
{
    (void)state;
    flood_call_ends_at_its_deadline(FAKE_FLOOD_BLANK, "flood-blank.sock");
}

static void test_endless_blank_lines_before_the_greeting_end_the_open_at_its_deadline(void **state)
{
    (void)state;
    char p[300];
    snprintf(p, sizeof p, "%s/blank-greeting.sock", tmpdir);
    pid_t srv = fake_server(p, FAKE_BLANK_BEFORE_GREETING);
    qq_err e = { 0 };
    long long t0 = now_ms();
    qmp *q = qmp_open(p, 400, &e);
    long long took = now_ms() - t0;
    assert_null(q);
    assert_true(took >= 390 && took < 1400);
    assert_non_null(strstr(e.msg, "no greeting within 0.4 s"));
    kill_child(srv);
}

static void test_endless_line_is_malformed_past_16_mib_and_memory_stays_bounded(void **state)
{
    (void)state;
    pid_t srv;
    qmp *q = open_fake("flood-line.sock", FAKE_FLOOD_LINE, &srv);
    qq_err e = { 0 };
    long before = maxrss_kib();
    long long t0 = now_ms();
    json_t *r = qmp_execute(q, "query-status", NULL, 20000, &e);
    long long took = now_ms() - t0;
    assert_null(r);
    print_message("endless line: %lld ms, max RSS %ld -> %ld KiB: %s\n", took, before, maxrss_kib(), e.msg);
    assert_non_null(strstr(e.msg, "malformed message from QEMU (longer than 16 MiB)"));
    assert_true(took < 20000);
    qmp_close(q);
    kill_child(srv);
}

static void test_message_of_millions_of_tiny_values_is_malformed(void **state)
{
    (void)state;
    pid_t srv;
    qmp *q = open_fake("huge-array.sock", FAKE_HUGE_ARRAY_REPLY, &srv);
    qq_err e = { 0 };
    assert_null(qmp_execute(q, "query-status", NULL, 20000, &e));
    assert_non_null(strstr(e.msg, "malformed message from QEMU (too many values)"));
    qmp_close(q);
    kill_child(srv);
}

static void test_event_queue_keeps_the_newest_and_counts_the_dropped(void **state)
{
    (void)state;
    pid_t srv;
    qmp *q = open_fake("2000-events.sock", FAKE_2000_EVENTS_THEN_REPLY, &srv);
    qq_err e = { 0 };
    _cleanup_json_ json_t *r = qmp_execute(q, "query-status", NULL, 5000, &e);
    assert_non_null(r);
    assert_int_equal(qmp_events_dropped(q), 2000 - QMP_MAX_EVENTS);
    _cleanup_json_ json_t *ev = qmp_take_events(q);
    assert_int_equal(json_array_size(ev), QMP_MAX_EVENTS);
    json_t *first = json_object_get(json_object_get(json_array_get(ev, 0), "data"), "n");
    json_t *last = json_object_get(json_object_get(json_array_get(ev, QMP_MAX_EVENTS - 1), "data"), "n");
    assert_int_equal(json_integer_value(first), 2000 - QMP_MAX_EVENTS);
    assert_int_equal(json_integer_value(last), 1999);
    qmp_close(q);
    kill_child(srv);
}

static void test_listener_that_never_accepts_with_a_full_backlog_bounds_the_open(void **state)
{
    (void)state;
    char p[300];
    snprintf(p, sizeof p, "%s/full.sock", tmpdir);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    assert_true(strlen(p) < sizeof sa.sun_path);
    memcpy(sa.sun_path, p, strlen(p) + 1);
    unlink(p);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l, 0), 0);
    /* fill the backlog: further connects would block */
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
    }
    qq_err e = { 0 };
    long long t0 = now_ms();
    qmp *q = qmp_open(p, 300, &e);
    long long took = now_ms() - t0;
    assert_null(q);
    assert_true(took < 1300);
    assert_non_null(strstr(e.msg, "full.sock"));
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(l);
}

/* ---- real QEMU ---- */

static pid_t qemu_pid;
static char qemu_sock[300];

static qmp *open_real(void)
{
    qq_err e = { 0 };
    long long deadline = now_ms() + 20000;
    for (;;) {
        qmp *q = qmp_open(qemu_sock, 5000, &e);
        if (q)
            return q;
        if (now_ms() > deadline)
            fail_msg("QMP never answered: %s", e.msg);
        poll(NULL, 0, 20);
    }
}

static int qemu_setup(void **state)
{
    (void)state;
    snprintf(qemu_sock, sizeof qemu_sock, "%s/qemu-qmp.sock", tmpdir);
    char qmparg[400];
    snprintf(qmparg, sizeof qmparg, "unix:%s,server=on,wait=off", qemu_sock);
    qemu_pid = fork();
    if (qemu_pid == 0) {
        execlp("qemu-system-x86_64", "qemu-system-x86_64", "-nodefaults", "-machine", "q35",
               "-m", "64", "-display", "none", "-accel", "tcg", "-qmp", qmparg, (char *)NULL);
        _exit(127);
    }
    return qemu_pid > 0 ? 0 : -1;
}

static int qemu_teardown(void **state)
{
    (void)state;
    if (qemu_pid > 0)
        kill_child(qemu_pid);
    return 0;
}

static void test_real_qemu_query_status_stop_event_and_hmp(void **state)
{
    (void)state;
    qq_err e = { 0 };
    qmp *q = open_real();
    assert_non_null(json_object_get(qmp_greeting(q), "QMP"));
    json_t *r = qmp_execute(q, "query-status", NULL, 5000, &e);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "running");
    json_decref(r);

    r = qmp_execute(q, "stop", NULL, 5000, &e);
    assert_non_null(r);
    json_decref(r);
    assert_int_equal(qmp_wait_event(q, 5000, &e), 1);
    json_t *ev = qmp_take_events(q);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "event")), "STOP");
    json_decref(ev);

    _cleanup_free_ char *text = qmp_hmp(q, "info status", 5000, &e);
    assert_non_null(text);
    assert_non_null(strstr(text, "paused"));

    _cleanup_json_ json_t *args = json_pack("{s:s}", "path", "/machine");
    r = qmp_execute(q, "qom-list", args, 5000, &e);
    assert_true(json_is_array(r));
    json_decref(r);
    qmp_close(q);
}

static void test_real_qemu_unknown_command_is_commandnotfound(void **state)
{
    (void)state;
    qq_err e = { 0 };
    qmp *q = open_real();
    assert_null(qmp_execute(q, "query-nothing", NULL, 5000, &e));
    assert_non_null(strstr(e.msg, "QMP query-nothing: CommandNotFound"));
    /* the connection stays usable after a QEMU error */
    json_t *r = qmp_execute(q, "query-version", NULL, 5000, &e);
    assert_non_null(r);
    json_decref(r);
    qmp_close(q);
}

static void test_real_qemu_second_client_waits_for_greeting_then_times_out(void **state)
{
    (void)state;
    qq_err e = { 0 };
    qmp *q = open_real();
    qmp *q2 = qmp_open(qemu_sock, 300, &e);
    assert_null(q2);
    assert_non_null(strstr(e.msg, "no greeting"));
    qmp_close(q);
}

/* HMP `info registers` of a CPU at the x86 reset vector (real mode: EIP; long-mode builds
 * print RIP) against one that ran. */
static void test_regs_at_reset_vector_are_recognised(void **state)
{
    (void)state;
    const char *real_mode = "EAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1\r\n"
                            "EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0\r\n"
                            "ES =0000 00000000 0000ffff 00009300\r\nCS =f000 ffff0000 0000ffff 00009b00\r\n";
    const char *long_mode = "RAX=0000000000000000\nRIP=000000000000fff0 RFL=00000002\nCS =f000 ffff0000 0000ffff 00009b00\n";
    const char *ran = "EIP=0000e05b EFL=00000002\nCS =f000 000f0000 0000ffff 00009b00\n";
    const char *booted = "RIP=ffffffff81e0b3ab RFL=00000246\nCS =0010 0000000000000000 ffffffff 00a09b00\n";
    assert_true(qmp_regs_at_reset(real_mode));
    assert_true(qmp_regs_at_reset(long_mode));
    assert_false(qmp_regs_at_reset(ran));
    assert_false(qmp_regs_at_reset(booted));
    assert_false(qmp_regs_at_reset(NULL));
}

int main(void)
{
    const struct CMUnitTest fake[] = {
        cmocka_unit_test(test_no_greeting_times_out_with_a_clear_error),
        cmocka_unit_test(test_command_without_reply_times_out),
        cmocka_unit_test(test_events_before_the_reply_are_kept),
        cmocka_unit_test(test_closed_connection_is_reported),
        cmocka_unit_test(test_error_reply_carries_class_and_description),
        cmocka_unit_test(test_missing_socket_names_the_path),
        cmocka_unit_test(test_endless_events_cannot_extend_a_call_and_the_queue_drops_oldest),
        cmocka_unit_test(test_endless_blank_lines_cannot_extend_a_call),
        cmocka_unit_test(test_endless_blank_lines_before_the_greeting_end_the_open_at_its_deadline),
        cmocka_unit_test(test_endless_line_is_malformed_past_16_mib_and_memory_stays_bounded),
        cmocka_unit_test(test_message_of_millions_of_tiny_values_is_malformed),
        cmocka_unit_test(test_event_queue_keeps_the_newest_and_counts_the_dropped),
        cmocka_unit_test(test_listener_that_never_accepts_with_a_full_backlog_bounds_the_open),
        cmocka_unit_test(test_regs_at_reset_vector_are_recognised),
    };
    const struct CMUnitTest real[] = {
        cmocka_unit_test_setup_teardown(test_real_qemu_query_status_stop_event_and_hmp, qemu_setup, qemu_teardown),
        cmocka_unit_test_setup_teardown(test_real_qemu_unknown_command_is_commandnotfound, qemu_setup, qemu_teardown),
        cmocka_unit_test_setup_teardown(test_real_qemu_second_client_waits_for_greeting_then_times_out, qemu_setup, qemu_teardown),
    };
    int r = cmocka_run_group_tests_name("qmp fake server", fake, setup, NULL);
    r += cmocka_run_group_tests_name("qmp real qemu", real, NULL, teardown);
    return r;
}
