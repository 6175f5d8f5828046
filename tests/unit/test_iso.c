/* Unit tests for infra/iso: NoCloud ISOs readable by isoinfo (genisoimage). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/base/cleanup.h"
#include "../../src/base/err.h"
#include "../../src/base/sbuf.h"
#include "../../src/infra/iso.h"

static char dir[] = "/tmp/qq-test-iso-XXXXXX";
static char ud[300], md[300], blob[300], out[300];
static bool have_isoinfo;

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(ud, sizeof ud, "%s/ud.rendered", dir);
    snprintf(md, sizeof md, "%s/md.rendered", dir);
    snprintf(blob, sizeof blob, "%s/source.tgz", dir);
    snprintf(out, sizeof out, "%s/cidata.iso", dir);
    const char *u = "#cloud-config\nruncmd:\n  - [touch, /root/ok]\n";
    write_file(ud, u, strlen(u));
    write_file(md, "instance-id: qq\n", 16);
    static unsigned char big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + i / 251);
    write_file(blob, big, sizeof big);
    have_isoinfo = system("command -v isoinfo >/dev/null 2>&1") == 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* stdout of a shell command. */
static char *run(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    sbuf b = SBUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        sbuf_add(&b, buf, n);
    assert_int_equal(pclose(p), 0);
    return sbuf_steal(&b);
}

static void write_standard(void)
{
    iso_entry e[] = { { "user-data", ud }, { "meta-data", md }, { "libvfn-5.1.0.tar.gz", blob } };
    qq_err err = { 0 };
    if (iso_write_cidata(out, NULL, e, 3, &err) < 0)
        fail_msg("%s", err.msg);
}

static void test_volume_id_is_cidata(void **state)
{
    (void)state;
    write_standard();
    FILE *f = fopen(out, "rb");
    assert_non_null(f);
    unsigned char pvd[2048];
    assert_int_equal(fseek(f, 16 * 2048, SEEK_SET), 0);
    assert_int_equal(fread(pvd, 1, sizeof pvd, f), sizeof pvd);
    fclose(f);
    assert_int_equal(pvd[0], 1);                        /* primary volume descriptor */
    assert_memory_equal(pvd + 1, "CD001", 5);
    assert_memory_equal(pvd + 40, "cidata                          ", 32);  /* offset 32808 */
}

static void test_files_keep_their_names_with_rock_ridge_and_joliet(void **state)
{
    (void)state;
    if (!have_isoinfo)
        skip();
    write_standard();
    _cleanup_free_ char *rr = run("isoinfo -i %s -R -f | sort", out);
    assert_string_equal(rr, "/libvfn-5.1.0.tar.gz\n/meta-data\n/user-data\n");
    _cleanup_free_ char *joliet = run("isoinfo -i %s -J -f | sort", out);
    assert_string_equal(joliet, "/libvfn-5.1.0.tar.gz\n/meta-data\n/user-data\n");
    _cleanup_free_ char *d = run("isoinfo -d -i %s", out);
    assert_non_null(strstr(d, "Volume id: cidata"));
    assert_non_null(strstr(d, "Rock Ridge signatures version"));
    assert_non_null(strstr(d, "Joliet with UCS level"));
}

static void test_file_contents_are_copied_byte_for_byte(void **state)
{
    (void)state;
    if (!have_isoinfo)
        skip();
    write_standard();
    _cleanup_free_ char *u = run("isoinfo -i %s -R -x /user-data", out);
    assert_string_equal(u, "#cloud-config\nruncmd:\n  - [touch, /root/ok]\n");
    _cleanup_free_ char *same = run("isoinfo -i %s -R -x /libvfn-5.1.0.tar.gz | cmp - %s && echo same",
                                    out, blob);
    assert_string_equal(same, "same\n");
}

static void test_no_temporary_file_is_left_beside_the_iso(void **state)
{
    (void)state;
    write_standard();
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    assert_int_equal(access(tmp, F_OK), -1);
}

static void test_name_with_slash_is_refused_and_old_iso_kept(void **state)
{
    (void)state;
    write_standard();
    struct stat before, after;
    assert_int_equal(stat(out, &before), 0);
    iso_entry e[] = { { "user-data", ud }, { "../etc/passwd", md } };
    qq_err err = { 0 };
    assert_int_equal(iso_write_cidata(out, NULL, e, 2, &err), -1);
    assert_int_equal(err.code, QQ_EXIT_USAGE);
    assert_non_null(strstr(err.msg, "../etc/passwd"));
    assert_int_equal(stat(out, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
}

static void test_duplicate_names_are_refused(void **state)
{
    (void)state;
    iso_entry e[] = { { "user-data", ud }, { "user-data", md } };
    qq_err err = { 0 };
    assert_int_equal(iso_write_cidata(out, NULL, e, 2, &err), -1);
    assert_non_null(strstr(err.msg, "user-data"));
}

static void test_missing_host_file_fails_naming_it_and_leaves_no_file(void **state)
{
    (void)state;
    char o[320];
    snprintf(o, sizeof o, "%s/never.iso", dir);
    iso_entry e[] = { { "user-data", "/nonexistent/qq-user-data" } };
    qq_err err = { 0 };
    assert_int_equal(iso_write_cidata(o, NULL, e, 1, &err), -1);
    assert_int_equal(err.code, QQ_EXIT_FAIL);
    assert_non_null(strstr(err.msg, "/nonexistent/qq-user-data"));
    assert_int_equal(access(o, F_OK), -1);
    char tmp[330];
    snprintf(tmp, sizeof tmp, "%s.tmp", o);
    assert_int_equal(access(tmp, F_OK), -1);
}

static void test_unwritable_destination_fails_naming_it(void **state)
{
    (void)state;
    iso_entry e[] = { { "user-data", ud } };
    qq_err err = { 0 };
    assert_int_equal(iso_write_cidata("/nonexistent/dir/x.iso", NULL, e, 1, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/x.iso"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_volume_id_is_cidata),
        cmocka_unit_test(test_files_keep_their_names_with_rock_ridge_and_joliet),
        cmocka_unit_test(test_file_contents_are_copied_byte_for_byte),
        cmocka_unit_test(test_no_temporary_file_is_left_beside_the_iso),
        cmocka_unit_test(test_name_with_slash_is_refused_and_old_iso_kept),
        cmocka_unit_test(test_duplicate_names_are_refused),
        cmocka_unit_test(test_missing_host_file_fails_naming_it_and_leaves_no_file),
        cmocka_unit_test(test_unwritable_destination_fails_naming_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
