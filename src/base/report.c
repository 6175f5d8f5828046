/* report — see report.h. */
#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static report_sink sink;

void report_set_sink(const report_sink *s)
{
    sink = s ? *s : (report_sink){ 0 };
}

bool report_watched(void) { return sink.emit && sink.watched; }

static void emit(report_kind kind, const char *fmt, va_list ap)
{
    if (!sink.emit || ((kind != REPORT_LINE) && !sink.watched))
        return;
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    if (n < 0)
        abort();
    sink.emit(sink.ud, kind, text, (size_t)n);
    free(text);
}

#define REPORT_FN(name, kind)                      \
    void name(const char *fmt, ...)                \
    {                                              \
        va_list ap;                                \
        va_start(ap, fmt);                         \
        emit(kind, fmt, ap);                       \
        va_end(ap);                                \
    }

REPORT_FN(report_progress, REPORT_PROGRESS)
REPORT_FN(report_progress_end, REPORT_PROGRESS_END)
REPORT_FN(report_note, REPORT_NOTE)
REPORT_FN(report_line, REPORT_LINE)

void report_progress_break(void)
{
    if (sink.emit && sink.watched)
        sink.emit(sink.ud, REPORT_PROGRESS_END, NULL, 0);
}

void report_output(const char *buf, size_t len)
{
    if (sink.emit && sink.watched && len)
        sink.emit(sink.ud, REPORT_OUTPUT, buf, len);
}
