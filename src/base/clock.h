/* clock — the one clock qqmgr measures time on: CLOCK_MONOTONIC, in
 * milliseconds. Every duration, timeout and deadline is taken from it (a wall
 * clock set back or forward changes none of them). A deadline is a clock_ms()
 * value; a command computes its deadline once and passes it down, so lock
 * waits, QMP and ssh share it. Wall-clock dates (snapshot dates, file ages)
 * are time(NULL) and are not measured here.
 */
#ifndef QQ_CLOCK_H
#define QQ_CLOCK_H

/* Milliseconds on the monotonic clock. */
long long clock_ms(void);

/* Milliseconds from now until deadline, clamped to [lo, hi]. */
int clock_left_ms(long long deadline, int lo, int hi);

#endif
