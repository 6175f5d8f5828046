/* Unit tests for base/report: the app and infra layers' one way to tell the
 * user about long work; the installed sink decides what is shown. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/base/report.h"
#include "../../src/base/sbuf.h"

static sbuf seen;

static void record(void *ud, report_kind kind, const char *text, size_t len)
{
    (void)ud;
    static const char *const names[] = { "progress", "end", "note", "line", "output" };
    sbuf_addf(&seen, "%s:", names[kind]);
    if (text)
        sbuf_add(&seen, text, len);
    else
        sbuf_adds(&seen, "(null)");
    sbuf_addc(&seen, '|');
}

static void test_unwatched_sink_gets_only_lines(void **state)
{
    (void)state;
    sbuf_free(&seen);
    report_sink s = { .emit = record, .watched = false };
    report_set_sink(&s);
    assert_false(report_watched());
    report_progress("%d%%", 50);
    report_progress_end("done");
    report_progress_break();
    report_note("img %s: waiting", "x");
    report_output("raw", 3);
    report_line("+ %s", "qemu-img create");
    assert_string_equal(sbuf_str(&seen), "line:+ qemu-img create|");
}

static void test_watched_sink_gets_everything_in_order(void **state)
{
    (void)state;
    sbuf_free(&seen);
    report_sink s = { .emit = record, .watched = true };
    report_set_sink(&s);
    assert_true(report_watched());
    report_progress("%d%%", 50);
    report_progress_end("done in %.1f s", 1.5);
    report_progress_break();
    report_note("img %s: waiting", "x");
    report_output("ab\0c", 4);
    assert_int_equal(seen.len, strlen("progress:50%|end:done in 1.5 s|end:(null)|note:img x: waiting|output:") + 5);
    assert_memory_equal(seen.buf + seen.len - 5, "ab\0c|", 5);
}

static void test_without_a_sink_nothing_is_reported(void **state)
{
    (void)state;
    sbuf_free(&seen);
    report_set_sink(NULL);
    assert_false(report_watched());
    report_line("not shown");
    report_note("not shown");
    assert_int_equal(seen.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unwatched_sink_gets_only_lines),
        cmocka_unit_test(test_watched_sink_gets_everything_in_order),
        cmocka_unit_test(test_without_a_sink_nothing_is_reported),
    };
    int r = cmocka_run_group_tests_name("report", tests, NULL, NULL);
    sbuf_free(&seen);
    return r;
}
