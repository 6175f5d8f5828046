/* par — run one function per item in forked children, a bounded number at a
 * time, each with its own exit status, stdout, stderr and result.
 *
 * For work that must not share a process: the app layer keeps per-process
 * state (locks held by descriptors, cached errors, stdio), so several VMs are
 * handled each in a child of its own, all started from the same loaded
 * config (fork copies it). A child runs fn(i, arg, result) with stdout and
 * stderr going to memory files of its own; what fn appends to result (its
 * outcome as data, in whatever encoding the caller chose) goes to a third
 * one; the child then exits with fn's return value. stdin is inherited.
 *
 * par_run() keeps at most max_parallel children alive and calls done(i, r,
 * arg) in item order, as soon as items 0..i have all ended (so output stays
 * in the order given while later items still run). r->out / r->err / r->data
 * are the child's whole stdout / stderr / result (NUL-terminated, owned by
 * par_run, valid during the call; data is empty when the child died before
 * writing it). r->status: the exit status, 128+N when killed by signal N.
 * Returns 0, or -1 with err when a child could not be made (the items
 * already started are waited for and reported first).
 *
 * SIGINT, SIGTERM and SIGHUP that reach the parent while children run are
 * passed on to every running child, and nothing more is started; par_run
 * still waits for the running ones and reports them (items never started get
 * no done call). Children start with the signal dispositions the caller had.
 *
 * max_parallel is the caller's: CPU work wants par_default_parallel(); work
 * that only waits (stopping VMs) may give n. Whatever is asked, no more run
 * at once than the parent's descriptor limit allows (three per child; the
 * soft limit is raised to the hard one when that lets all run).
 */
#ifndef QQ_PAR_H
#define QQ_PAR_H

#include <stddef.h>

#include "../base/err.h"
#include "../base/sbuf.h"

typedef struct par_result {
    int status;
    const char *out, *err, *data;
    size_t out_len, err_len, data_len;
} par_result;

typedef int (*par_fn)(size_t i, void *arg, sbuf *result);
typedef void (*par_done)(size_t i, const par_result *r, void *arg);

/* The default bound: online CPUs × 2. */
size_t par_default_parallel(void);

int par_run(size_t n, size_t max_parallel, par_fn fn, par_done done, void *arg, qq_err *err);

#endif
