/* Unit tests for what `start` runs (launch_argv): the user's arguments first and
 * untouched, then the injected ones (-pidfile, -qmp, -monitor, the logged
 * serial chardev) pointing into the state dir with commas doubled, and the
 * refusal of a cmd that sets what qqmgr injects (exit 2, naming the option). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../src/app/launch.h"
#include "../../src/app/vm.h"
#include "../../src/base/xalloc.h"

static vm_spec spec_of(const char *state_dir, const char *const *args)
{
    vm_spec s = { 0 };
    s.name = xstrdup("t");
    s.qemu_bin = xstrdup("/opt/qemu/bin/qemu-system-x86_64");
    s.state_dir = xstrdup(state_dir);
    for (; *args; args++)
        strv_push(&s.args, &s.nargs, xstrdup(*args));
    return s;
}

/* index of the first element equal to want, or -1 */
static int find(char **v, const char *want)
{
    for (int i = 0; v[i]; i++)
        if (strcmp(v[i], want) == 0)
            return i;
    return -1;
}

static void test_user_arguments_come_first_and_untouched(void **state)
{
    (void)state;
    const char *const args[] = { "-m", "64", "-append", "console=ttyS0 quiet", "-drive", "file=a,,b,if=virtio", NULL };
    vm_spec s = spec_of("/state/vm.t", args);
    char **v = NULL;
    qq_err e = { 0 };
    assert_int_equal(launch_argv(&s, NULL, &v, &e), 0);
    assert_string_equal(v[0], "/opt/qemu/bin/qemu-system-x86_64");
    for (int i = 0; args[i]; i++)
        assert_string_equal(v[i + 1], args[i]);
    launch_argv_free(v);
    vm_spec_free(&s);
}

static void test_injected_arguments_point_into_the_state_dir(void **state)
{
    (void)state;
    unsetenv("XDG_RUNTIME_DIR");
    vm_spec s = spec_of("/state/vm.t", (const char *[]){ "-m", "64", NULL });
    char **v = NULL;
    qq_err e = { 0 };
    assert_int_equal(launch_argv(&s, NULL, &v, &e), 0);
    int i = find(v, "-pidfile");
    assert_true(i > 2);
    assert_string_equal(v[i + 1], "/state/vm.t/pid");
    i = find(v, "-qmp");
    assert_true(i > 0);
    assert_string_equal(v[i + 1], "unix:/state/vm.t/qmp.socket,server=on,wait=off");
    i = find(v, "-monitor");
    assert_true(i > 0);
    assert_string_equal(v[i + 1], "unix:/state/vm.t/monitor.socket,server=on,wait=off");
    i = find(v, "-serial");
    assert_true(i > 0);
    assert_string_equal(v[i + 1], "chardev:qq-serial");
    assert_true(find(v, "socket,id=qq-serial,path=/state/vm.t/serial.socket,server=on,wait=off,"
                        "logfile=/state/vm.t/serial,logappend=off") > 0);
    assert_int_equal(find(v, "-daemonize"), -1);
    launch_argv_free(v);
    vm_spec_free(&s);
}

static void test_commas_in_the_state_dir_are_doubled_in_option_values(void **state)
{
    (void)state;
    vm_spec s = spec_of("/st,ate/vm.t", (const char *[]){ NULL });
    char **v = NULL;
    qq_err e = { 0 };
    assert_int_equal(launch_argv(&s, NULL, &v, &e), 0);
    int i = find(v, "-qmp");
    assert_true(i > 0);
    assert_string_equal(v[i + 1], "unix:/st,,ate/vm.t/qmp.socket,server=on,wait=off");
    /* -pidfile takes a plain path, not an option list */
    i = find(v, "-pidfile");
    assert_string_equal(v[i + 1], "/st,ate/vm.t/pid");
    launch_argv_free(v);
    vm_spec_free(&s);
}

static void test_a_deep_state_dir_still_gets_socket_paths_that_fit(void **state)
{
    (void)state;
    char deep[400];
    memset(deep, 'd', sizeof deep);
    deep[0] = '/';
    deep[sizeof deep - 1] = '\0';
    vm_spec s = spec_of(deep, (const char *[]){ NULL });
    char **v = NULL;
    qq_err e = { 0 };
    assert_int_equal(launch_argv(&s, NULL, &v, &e), 0);
    int i = find(v, "-qmp");
    assert_true(i > 0);
    const char *path = v[i + 1] + strlen("unix:");
    size_t len = strcspn(path, ",");
    assert_true(len <= 107);
    launch_argv_free(v);
    vm_spec_free(&s);
}

static void expect_refused(const char *const *args, const char *named)
{
    vm_spec s = spec_of("/state/vm.t", args);
    char **v = NULL;
    qq_err e = { 0 };
    assert_int_equal(launch_argv(&s, NULL, &v, &e), -1);
    assert_null(v);
    assert_int_equal(e.code, QQ_EXIT_USAGE);
    if (!strstr(e.msg, named))
        fail_msg("message does not name '%s': %s", named, e.msg);
    vm_spec_free(&s);
}

static void test_a_cmd_that_sets_what_qqmgr_injects_is_a_usage_error(void **state)
{
    (void)state;
    expect_refused((const char *[]){ "-m", "64", "-pidfile", "/tmp/p", NULL }, "-pidfile /tmp/p");
    expect_refused((const char *[]){ "--qmp", "tcp::4444", NULL }, "--qmp tcp::4444");
    expect_refused((const char *[]){ "-qmp-pretty", "unix:/x", NULL }, "-qmp-pretty");
    expect_refused((const char *[]){ "-monitor", "stdio", NULL }, "-monitor stdio");
    expect_refused((const char *[]){ "-serial", "mon:stdio", NULL }, "-serial mon:stdio");
    expect_refused((const char *[]){ "-daemonize", NULL }, "-daemonize");
    expect_refused((const char *[]){ "-chardev", "socket,id=qq-serial,path=/x", NULL }, "qq-serial");
}

static void test_options_that_only_look_alike_are_kept(void **state)
{
    (void)state;
    const char *const args[] = { "-qmpx", "-monitorless", "-chardev", "socket,id=mine,path=/x", "-nographic", NULL };
    vm_spec s = spec_of("/state/vm.t", args);
    char **v = NULL;
    qq_err e = { 0 };
    assert_int_equal(launch_argv(&s, NULL, &v, &e), 0);
    assert_int_equal(find(v, "-qmpx"), 1);
    assert_int_equal(find(v, "-monitorless"), 2);
    launch_argv_free(v);
    vm_spec_free(&s);
}

static void test_the_build_boot_argv_doubles_commas_in_its_qmp_socket(void **state)
{
    (void)state;
    char *args[] = { "-m", "64", "-drive", "file=a,,b", NULL };
    char **v = launch_build_argv("qemu-system-x86_64", args, "/imgs,x/img.t/build-qmp.sock");
    const char *const want[] = { "qemu-system-x86_64", "-m", "64", "-drive", "file=a,,b", "-qmp",
                                 "unix:/imgs,,x/img.t/build-qmp.sock,server=on,wait=off", NULL };
    for (size_t i = 0; want[i]; i++)
        assert_string_equal(v[i], want[i]);
    assert_null(v[sizeof want / sizeof *want - 1]);
    launch_argv_free(v);
}

static void test_a_console_panic_is_found_with_its_last_reason(void **state)
{
    (void)state;
    char why[64];
    /* the end marker repeats the reason: its brackets and dashes are not part of it */
    const char *log = "[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n"
                      "[    2.1]  panic+0x118/0x2f4\n"
                      "[    2.2] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs ]---\r\n";
    assert_true(vm_console_panic(log, why, sizeof why));
    assert_string_equal(why, "VFS: Unable to mount root fs");
    /* control characters cannot reach the terminal; a long reason is cut to the buffer */
    assert_true(vm_console_panic("Kernel panic - not syncing: Attempted to kill init!\x1b[0m exitcode=0x0000000b", why,
                                 sizeof why));
    assert_string_equal(why, "Attempted to kill init!?[0m exitcode=0x0000000b");
    assert_true(vm_console_panic("Kernel panic - not syncing: ]---", why, sizeof why));
    assert_string_equal(why, "(no reason given)");
    char small[8];
    assert_true(vm_console_panic("Kernel panic - not syncing: Out of memory and no killable processes", small,
                                 sizeof small));
    assert_string_equal(small, "Out of ");
    /* other kernel words about panics are not one */
    assert_false(vm_console_panic("[    0.5] panic=10 on the command line\nKernel panic - syncing? no\n", why,
                                  sizeof why));
    assert_false(vm_console_panic("", why, sizeof why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_arguments_come_first_and_untouched),
        cmocka_unit_test(test_injected_arguments_point_into_the_state_dir),
        cmocka_unit_test(test_commas_in_the_state_dir_are_doubled_in_option_values),
        cmocka_unit_test(test_a_deep_state_dir_still_gets_socket_paths_that_fit),
        cmocka_unit_test(test_a_cmd_that_sets_what_qqmgr_injects_is_a_usage_error),
        cmocka_unit_test(test_options_that_only_look_alike_are_kept),
        cmocka_unit_test(test_the_build_boot_argv_doubles_commas_in_its_qmp_socket),
        cmocka_unit_test(test_a_console_panic_is_found_with_its_last_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
