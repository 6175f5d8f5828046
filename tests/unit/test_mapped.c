/* Unit tests of mapped.h's pure part: which VMs can have their RAM in a file
 * and how big it is (the cmd's -m), the backend launch_argv injects, and the
 * guest clock read from a migration stream's "timer" section.
 * Saves and restores are pinned end to end in tests/e2e/test_mapped.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <string.h>

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "../../src/app/launch.h"
#include "../../src/app/mapped.h"
#include "../../src/app/ramfile.h"

/* ramfile_check of a VM whose cmd is the words of line (space-split) */
static int check(const char *line, bool mapped_ram, unsigned long long *bytes, char *why)
{
    char *copy = strdup(line), *args[32], *save = NULL;
    size_t n = 0;
    for (char *w = strtok_r(copy, " ", &save); w && n < 31; w = strtok_r(NULL, " ", &save))
        args[n++] = w;
    args[n] = NULL;
    vm_spec s = { .name = "t", .qemu_bin = "qemu-system-x86_64", .args = args, .nargs = n,
                  .state_dir = "/tmp/qq-unit-mapped/vm.t", .mapped_ram = mapped_ram };
    int rc = ramfile_check(&s, false, bytes, why, 320);
    free(copy);
    return rc;
}

static void test_the_ram_size_is_the_cmds_m(void **state)
{
    (void)state;
    static const struct { const char *cmd; unsigned long long bytes; } ok[] = {
        { "-accel tcg -display none", 128ULL << 20 },     /* QEMU's default */
        { "-m 512", 512ULL << 20 },
        { "-m 2G", 2ULL << 30 },
        { "-m 2048M", 2ULL << 30 },
        { "-m size=1.5G", 3ULL << 29 },
        { "-m 256 -m 768", 768ULL << 20 },                  /* the last one wins, as in QEMU */
        { "--m 64", 64ULL << 20 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        unsigned long long b = 0;
        char why[320] = "";
        assert_int_equal(check(ok[i].cmd, true, &b, why), 1);
        assert_int_equal(b, ok[i].bytes);
    }
}

static void test_what_cannot_map_its_ram_says_why(void **state)
{
    (void)state;
    static const struct { const char *cmd; const char *why; } no[] = {
        { "-m 1G,slots=2,maxmem=4G", "slots or maxmem" },
        { "-m lots", "not a size" },
        { "-numa node,nodeid=0", "-numa" },
        { "-object memory-backend-ram,id=m0,size=1G", "own memory backend" },
        { "-machine q35,memory-backend=m0", "memory-backend= itself" },
        { "-mem-path /dev/hugepages", "hugepages" },
        { "-mem-prealloc", "hugepages" },
        { "-device virtio-balloon-pci,id=b", "virtio-balloon-pci device" },
        { "-device virtio-mem-pci,id=v", "virtio-mem-pci device" },
    };
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        unsigned long long b = 0;
        char why[320] = "";
        assert_int_equal(check(no[i].cmd, true, &b, why), 0);
        assert_non_null(strstr(why, no[i].why));
    }
    unsigned long long b = 0;
    char why[320] = "";
    assert_int_equal(check("-m 512", false, &b, why), 0);
    assert_string_equal(why, "mapped_ram = false in [vm.t]");
}

static void test_launch_argv_injects_the_backend_after_the_user_args(void **state)
{
    (void)state;
    char *args[] = { "-m", "512", "-drive", "file=a,,b.qcow2", NULL };
    vm_spec s = { .name = "t", .qemu_bin = "qemu-system-x86_64", .args = args, .nargs = 4,
                  .state_dir = "/tmp/qq-unit-mapped/vm.t", .mapped_ram = true };
    launch_opts o = { .ram = { .file = "/snap/x,y/ram", .private_map = true } };
    char **argv = NULL;
    qq_err e = { 0 };
    assert_int_equal(launch_argv(&s, &o, &argv, &e), 0);
    assert_string_equal(argv[5], "-object");
    /* x86, no machine type given: pc, whose default RAM's id it takes */
    assert_string_equal(argv[6], "memory-backend-file,id=pc.ram,size=536870912,mem-path=/snap/x,,y/ram,share=off");
    assert_string_equal(argv[7], "-machine");
    assert_string_equal(argv[8], "memory-backend=pc.ram");
    launch_argv_free(argv);
    /* without a file: no backend of qqmgr's */
    o.ram.file = NULL;
    assert_int_equal(launch_argv(&s, &o, &argv, &e), 0);
    for (char **p = argv; *p; p++)
        assert_null(strstr(*p, "memory-backend"));
    launch_argv_free(argv);
    /* a user's object with qqmgr's id is refused */
    char *bad[] = { "-object", "memory-backend-ram,id=qq-ram,size=1G", NULL };
    vm_spec b = s;
    b.args = bad;
    b.nargs = 2;
    assert_int_equal(launch_argv(&b, NULL, &argv, &e), -1);
    assert_int_equal(e.code, QQ_EXIT_USAGE);
}

static void test_the_backend_takes_the_machines_default_ram_id_where_known(void **state)
{
    (void)state;
    static const struct { const char *bin; const char *machine; const char *id; } cases[] = {
        { "qemu-system-x86_64", NULL, "pc.ram" },
        { "/usr/bin/qemu-system-x86_64", "q35,accel=tcg", "pc.ram" },
        { "qemu-system-x86_64", "pc-i440fx-7.2", "pc.ram" },
        { "qemu-system-x86_64", "accel=tcg,type=q35", "pc.ram" },
        { "qemu-system-i386", "pc", "pc.ram" },
        { "qemu-system-x86_64", "microvm", "qq-ram" },
        { "qemu-system-aarch64", "virt", "qq-ram" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *args[] = { "-machine", (char *)cases[i].machine, NULL };
        vm_spec s = { .name = "t", .qemu_bin = (char *)cases[i].bin, .args = args,
                      .nargs = cases[i].machine ? 2 : 0, .mapped_ram = true };
        assert_string_equal(ramfile_id(&s), cases[i].id);
        assert_int_equal(ramfile_loads_older(&s), strcmp(cases[i].id, "pc.ram") == 0);
    }
}

/* A migration stream: "QEVM" v3, then parts (each given as bytes), to a temp file. */
static char *stream(const unsigned char *body, size_t n)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/qq-unit-state-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "QEVM\0\0\0\3", 8), 8);
    assert_int_equal(write(fd, body, n), (ssize_t)n);
    close(fd);
    return path;
}

/* a FULL section "timer" (id 7, instance 0, version ver) with the clock in ns */
static size_t timer_section(unsigned char *p, unsigned char type, unsigned ver, unsigned long long ns)
{
    size_t k = 0;
    p[k++] = type;
    const unsigned char id[] = { 0, 0, 0, 7, 5, 't', 'i', 'm', 'e', 'r', 0, 0, 0, 0, 0, 0, 0 };
    memcpy(p + k, id, sizeof id);
    k += sizeof id;
    p[k++] = (unsigned char)ver;
    for (int i = 0; i < 16; i++)   /* cpu_ticks_offset, unused */
        p[k++] = 0xab;
    for (int i = 7; i >= 0; i--)
        p[k++] = (unsigned char)(ns >> (8 * i));
    return k;
}

static void test_the_guest_clock_is_read_from_the_streams_timer_section(void **state)
{
    (void)state;
    unsigned char b[256];
    size_t n = 0;
    memcpy(b, "\x05timer", 6);   /* the name alone, not a section header: passed over */
    n += 6;
    n += timer_section(b + n, 0x02, 2, 1);   /* a section part, not a full one: passed over */
    n += timer_section(b + n, 0x04, 2, 12345000000ULL);
    double secs = -1;
    char *p = stream(b, n);
    assert_int_equal(mapped_state_vm_clock_at(AT_FDCWD, p, &secs), 0);
    assert_true(secs > 12.344999 && secs < 12.345001);
    unlink(p);
    /* version 1 has no cpu_clock_offset; no section at all; not a stream */
    n = timer_section(b, 0x04, 1, 12345000000ULL);
    p = stream(b, n);
    assert_int_equal(mapped_state_vm_clock_at(AT_FDCWD, p, &secs), -1);
    unlink(p);
    p = stream((const unsigned char *)"nothing here", 12);
    assert_int_equal(mapped_state_vm_clock_at(AT_FDCWD, p, &secs), -1);
    unlink(p);
    assert_int_equal(mapped_state_vm_clock_at(AT_FDCWD, "/etc/hostname", &secs), -1);
    assert_int_equal(mapped_state_vm_clock_at(AT_FDCWD, "/nonexistent/state", &secs), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_ram_size_is_the_cmds_m),
        cmocka_unit_test(test_what_cannot_map_its_ram_says_why),
        cmocka_unit_test(test_launch_argv_injects_the_backend_after_the_user_args),
        cmocka_unit_test(test_the_backend_takes_the_machines_default_ram_id_where_known),
        cmocka_unit_test(test_the_guest_clock_is_read_from_the_streams_timer_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
