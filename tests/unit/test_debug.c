/* Unit tests for the debugging kit's parsers: which gdbstub `gdb --guest`
 * connects to (guestgdb_target), the forward specs (forward_parse), and what
 * start adds to QEMU's argv for it (launch_argv). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../src/app/forward.h"
#include "../../src/app/guestgdb.h"
#include "../../src/app/launch.h"
#include "../../src/base/xalloc.h"

/* A spec with these user arguments (NULL-terminated), no config. */
static vm_spec spec_of(const char *const *args)
{
    vm_spec s = { 0 };
    s.name = xstrdup("t");
    s.qemu_bin = xstrdup("qemu-system-x86_64");
    s.state_dir = xstrdup("/state/vm.t");
    for (; *args; args++)
        strv_push(&s.args, &s.nargs, xstrdup(*args));
    return s;
}

static void expect_target(const char *const *args, const char *want)
{
    vm_spec s = spec_of(args);
    qq_err err = { 0 };
    char *t = guestgdb_target(&s, &err);
    assert_non_null(t);
    assert_string_equal(t, want);
    free(t);
    vm_spec_free(&s);
}

static void test_gdb_target_is_ours_unless_the_cmd_sets_one(void **state)
{
    (void)state;
    expect_target((const char *[]){ "-m", "64", NULL }, "/state/vm.t/gdb.socket");
    expect_target((const char *[]){ "-s", NULL }, "localhost:1234");
    expect_target((const char *[]){ "-gdb", "tcp::4444", NULL }, "localhost:4444");
    expect_target((const char *[]){ "--gdb", "tcp:0.0.0.0:4444,server=on", NULL }, "localhost:4444");
    expect_target((const char *[]){ "-gdb", "tcp:10.1.2.3:99", NULL }, "10.1.2.3:99");
    expect_target((const char *[]){ "-gdb", "4321", NULL }, "localhost:4321");
    expect_target((const char *[]){ "-gdb", "unix:/tmp/a,,b/g.sock,server=on,wait=off", NULL }, "/tmp/a,b/g.sock");
    /* QEMU keeps the last one */
    expect_target((const char *[]){ "-s", "-gdb", "tcp::5555", NULL }, "localhost:5555");
    expect_target((const char *[]){ "-gdb", "tcp::5555", "-s", NULL }, "localhost:1234");
}

static void test_gdb_device_qqmgr_cannot_reach_is_a_usage_error_naming_it(void **state)
{
    (void)state;
    const char *const bad[] = { "pty", "stdio", "none", "tcp::70000", "tcp:host", "unix:", "udp::1234" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        vm_spec s = spec_of((const char *[]){ "-gdb", bad[i], NULL });
        qq_err err = { 0 };
        assert_null(guestgdb_target(&s, &err));
        assert_int_equal(err.code, QQ_EXIT_USAGE);
        assert_non_null(strstr(err.msg, bad[i]));
        assert_non_null(strstr(err.msg, "-gdb"));
        vm_spec_free(&s);
    }
}

static void test_forward_specs(void **state)
{
    (void)state;
    forward f;
    qq_err err = { 0 };
    assert_int_equal(forward_parse("tcp:8080:80", true, &f, &err), 0);
    assert_string_equal(f.proto, "tcp");
    assert_string_equal(f.host_addr, "127.0.0.1");
    assert_int_equal(f.host_port, 8080);
    assert_int_equal(f.guest_port, 80);
    assert_int_equal(forward_parse("tcp:0.0.0.0:auto:22", true, &f, &err), 0);
    assert_string_equal(f.host_addr, "0.0.0.0");
    assert_int_equal(f.host_port, 0);
    assert_int_equal(forward_parse("tcp:0:22", true, &f, &err), 0);
    assert_int_equal(f.host_port, 0);
    assert_int_equal(forward_parse("udp:5353:53", true, &f, &err), 0);
    assert_string_equal(f.proto, "udp");
    assert_int_equal(forward_parse("tcp:10.0.0.1:8080", false, &f, &err), 0);
    assert_string_equal(f.host_addr, "10.0.0.1");
    assert_int_equal(f.host_port, 8080);
    const char *const bad_add[] = { "tcp:80", "tcp:80:", "tcp::80:22", "sctp:1:2", "tcp:1:2:3:4", "tcp:65536:22",
                                    "tcp:x:1:2", "tcp:80:auto", "tcp:80:0", "udp:auto:53", "tcp:1:2:3", "",
                                    "tcp:-1:22", "tcp:+80:22" };
    for (size_t i = 0; i < sizeof bad_add / sizeof *bad_add; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(forward_parse(bad_add[i], true, &f, &err), -1);
        assert_int_equal(err.code, QQ_EXIT_USAGE);
    }
    const char *const bad_rm[] = { "tcp:1:2", "tcp:auto", "tcp:0", "tcp", "tcp:80:22:1" };
    for (size_t i = 0; i < sizeof bad_rm / sizeof *bad_rm; i++)
        assert_int_equal(forward_parse(bad_rm[i], false, &f, &err), -1);
}

/* index of the first element equal to want, or -1 */
static int find(char **v, const char *want)
{
    for (int i = 0; v[i]; i++)
        if (strcmp(v[i], want) == 0)
            return i;
    return -1;
}

static void test_argv_gets_gdbstub_events_monitor_paused_and_wrapper(void **state)
{
    (void)state;
    vm_spec s = spec_of((const char *[]){ "-m", "64", NULL });
    free(s.state_dir);
    s.state_dir = xstrdup("/sock,dir");
    char **v = NULL;
    launch_opts ro = { .paused = true, .wrap = "strace -f -o 'my log'" };
    qq_err err = { 0 };
    assert_int_equal(launch_argv(&s, &ro, &v, &err), 0);
    const char *const wrap[] = { "strace", "-f", "-o", "my log", "qemu-system-x86_64", NULL };
    for (size_t i = 0; wrap[i]; i++)
        assert_string_equal(v[i], wrap[i]);
    int g = find(v, "-gdb");
    assert_true(g > 4);
    const char *const kit[] = { "-gdb", "unix:/sock,,dir/gdb.socket,server=on,wait=off", "-chardev",
                                "socket,id=qq-events,path=/sock,,dir/events.socket,server=on,wait=off", "-mon",
                                "chardev=qq-events,mode=control", "-S", NULL };
    for (size_t i = 0; kit[i]; i++)
        assert_string_equal(v[(size_t)g + i], kit[i]);
    assert_null(v[(size_t)g + sizeof kit / sizeof *kit - 1]);
    launch_argv_free(v);
    vm_spec_free(&s);

    /* the user's -s: no gdbstub of ours; no options: no -S, QEMU first */
    s = spec_of((const char *[]){ "-s", NULL });
    v = NULL;
    assert_int_equal(launch_argv(&s, NULL, &v, &err), 0);
    assert_string_equal(v[0], "qemu-system-x86_64");
    assert_int_equal(find(v, "-gdb"), -1);
    assert_int_equal(find(v, "-S"), -1);
    assert_true(find(v, "chardev=qq-events,mode=control") > 0);
    launch_argv_free(v);
    vm_spec_free(&s);
}

static void test_guest_agent_gets_its_channel_in_the_state_dir_and_its_id_is_ours(void **state)
{
    (void)state;
    vm_spec s = spec_of((const char *[]){ "-m", "64", NULL });
    free(s.state_dir);
    s.state_dir = xstrdup("/sock,dir");
    char **v = NULL;
    qq_err err = { 0 };
    /* without guest_agent: no channel */
    assert_int_equal(launch_argv(&s, NULL, &v, &err), 0);
    assert_int_equal(find(v, "virtio-serial-pci,id=qq-qga-serial"), -1);
    launch_argv_free(v);
    s.guest_agent = true;
    v = NULL;
    assert_int_equal(launch_argv(&s, NULL, &v, &err), 0);
    int c = find(v, "socket,id=qq-qga,path=/sock,,dir/qga.socket,server=on,wait=off");
    assert_true(c > 0);
    const char *const ch[] = { "-chardev", "socket,id=qq-qga,path=/sock,,dir/qga.socket,server=on,wait=off",
                               "-device", "virtio-serial-pci,id=qq-qga-serial", "-device",
                               "virtserialport,bus=qq-qga-serial.0,chardev=qq-qga,name=org.qemu.guest_agent.0",
                               NULL };
    for (size_t i = 0; ch[i]; i++)
        assert_string_equal(v[(size_t)c - 1 + i], ch[i]);
    assert_true(c > find(v, "64"));   /* after the user's arguments: their devices keep their slots */
    launch_argv_free(v);
    vm_spec_free(&s);
    /* a chardev of the user's with that id */
    s = spec_of((const char *[]){ "-chardev", "socket,id=qq-qga,path=/x", NULL });
    v = NULL;
    assert_int_equal(launch_argv(&s, NULL, &v, &err), -1);
    assert_int_equal(err.code, QQ_EXIT_USAGE);
    assert_non_null(strstr(err.msg, "qq-qga are qqmgr's"));
    vm_spec_free(&s);
}

static void test_wrapper_that_does_not_split_is_a_usage_error(void **state)
{
    (void)state;
    const char *const bad[] = { "strace 'unterminated", "   ", "" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        vm_spec s = spec_of((const char *[]){ NULL });
        char **v = NULL;
        launch_opts ro = { .wrap = bad[i] };
        qq_err err = { 0 };
        assert_int_equal(launch_argv(&s, &ro, &v, &err), -1);
        assert_int_equal(err.code, QQ_EXIT_USAGE);
        assert_non_null(strstr(err.msg, "--wrap"));
        assert_null(v);
        vm_spec_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gdb_target_is_ours_unless_the_cmd_sets_one),
        cmocka_unit_test(test_gdb_device_qqmgr_cannot_reach_is_a_usage_error_naming_it),
        cmocka_unit_test(test_forward_specs),
        cmocka_unit_test(test_argv_gets_gdbstub_events_monitor_paused_and_wrapper),
        cmocka_unit_test(test_wrapper_that_does_not_split_is_a_usage_error),
        cmocka_unit_test(test_guest_agent_gets_its_channel_in_the_state_dir_and_its_id_is_ours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
