/* report — how the app and infra layers tell the user what long work is doing,
 * without printing themselves (and without exit(): they return errors).
 *
 * The cmd layer installs one sink (report_set_sink) that decides where text
 * goes; without a sink every report is dropped. Three kinds:
 *   REPORT_PROGRESS  a transient status line, redrawn in place (a download's
 *                    bar, "waiting for sshd... 3s"); REPORT_PROGRESS_END ends
 *                    it with a final text (text NULL: just ends the line)
 *   REPORT_NOTE      a line about long work ("img x: base downloaded: …",
 *                    "waiting for another process downloading …")
 *   REPORT_LINE      a line always shown (-d command traces, console notices)
 *   REPORT_OUTPUT    raw bytes of a child's output relayed to a watching person
 * Progress and notes are for a person watching: the sink says whether anyone
 * is (report_watched(): stderr is a terminal and output is not quiet), and
 * callers skip the work of composing them otherwise. Text has no trailing
 * newline; the sink adds it.
 */
#ifndef QQ_REPORT_H
#define QQ_REPORT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum report_kind {
    REPORT_PROGRESS,
    REPORT_PROGRESS_END,
    REPORT_NOTE,
    REPORT_LINE,
    REPORT_OUTPUT,         /* raw bytes relayed as they are (a build QEMU's console) */
} report_kind;

typedef struct report_sink {
    /* text is NUL-terminated except for REPORT_OUTPUT, where len counts it */
    void (*emit)(void *ud, report_kind kind, const char *text, size_t len);
    void *ud;
    bool watched;          /* progress and notes are shown */
} report_sink;

/* Install the sink (copied; NULL: drop everything). */
void report_set_sink(const report_sink *sink);

/* Whether progress and notes are shown. */
bool report_watched(void);

void report_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Replace the progress line with a final text; report_progress_break ends
 * the line as it stands (the sink gets text NULL). */
void report_progress_end(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void report_progress_break(void);
void report_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void report_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Relay len raw bytes (shown like progress). */
void report_output(const char *buf, size_t len);

#endif
