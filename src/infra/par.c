/* par — see par.h. */
#include "par.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/sbuf.h"
#include "../base/xalloc.h"

typedef struct item {
    pid_t pid;          /* 0: not started, -1: ended */
    int out, err, res;  /* memory files (-1 when closed) */
    int status;
    bool ended;
} item;

size_t par_default_parallel(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n * 2 : 2;
}

/* How many children may run at once: asked, within what the descriptor
 * limit leaves (3 memory files each, a margin for the rest of the process). */
static size_t fd_bound(size_t asked)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return asked;
    rlim_t want = (rlim_t)asked * 3 + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t raised = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (raised > rl.rlim_cur) {
            struct rlimit nl = { .rlim_cur = raised, .rlim_max = rl.rlim_max };
            if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
                rl.rlim_cur = raised;
        }
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return asked;
    size_t fit = rl.rlim_cur > 64 + 3 ? (size_t)(rl.rlim_cur - 64) / 3 : 1;
    return fit < asked ? fit : asked;
}

static void slurp(int fd, sbuf *b)
{
    char buf[8192];
    off_t off = 0;
    ssize_t k;
    while ((k = pread(fd, buf, sizeof buf, off)) > 0) {
        sbuf_add(b, buf, (size_t)k);
        off += k;
    }
}

/* SIGINT/SIGTERM/SIGHUP while children run: the last one caught */
static volatile sig_atomic_t caught;
static void on_signal(int sig) { caught = sig; }
static const int par_signals[3] = { SIGINT, SIGTERM, SIGHUP };

static int start_one(item *it, size_t i, par_fn fn, void *arg, const struct sigaction *old, qq_err *err)
{
    it->out = memfd_create("qqmgr-stdout", MFD_CLOEXEC);
    it->err = memfd_create("qqmgr-stderr", MFD_CLOEXEC);
    it->res = memfd_create("qqmgr-result", MFD_CLOEXEC);
    if (it->out < 0 || it->err < 0 || it->res < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "memfd_create: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "fork: %s", strerror(errno));
    if (pid == 0) {
        for (int k = 0; k < 3; k++)   /* the child handles signals as the command does alone */
            sigaction(par_signals[k], &old[k], NULL);
        dup2(it->out, 1);
        dup2(it->err, 2);
        sbuf result = SBUF_INIT;
        int rc = fn(i, arg, &result);
        fflush(NULL);
        for (size_t off = 0; off < result.len;) {
            ssize_t k = write(it->res, result.buf + off, result.len - off);
            if (k <= 0)
                break;
            off += (size_t)k;
        }
        _exit(rc & 0xff);
    }
    it->pid = pid;
    return 0;
}

int par_run(size_t n, size_t max_parallel, par_fn fn, par_done done, void *arg, qq_err *err)
{
    max_parallel = fd_bound(max_parallel);
    if (max_parallel < 1)
        max_parallel = 1;
    item *items = xcalloc(n ? n : 1, sizeof *items);
    for (size_t i = 0; i < n; i++)
        items[i].out = items[i].err = items[i].res = -1;
    size_t next = 0, reported = 0, running = 0;
    int rc = 0;
    bool interrupted = false;
    struct sigaction sa = { .sa_handler = on_signal }, old[3];
    sigemptyset(&sa.sa_mask);
    caught = 0;
    for (int k = 0; k < 3; k++)
        sigaction(par_signals[k], &sa, &old[k]);
    while (reported < n) {
        if (caught) {
            /* passed on to every child still running (Ctrl-C on a terminal reached them
             * already; a repeat is harmless); nothing more is started */
            int sig = caught;
            caught = 0;
            interrupted = true;
            for (size_t i = 0; i < next; i++)
                if (!items[i].ended)
                    kill(items[i].pid, sig);
        }
        while (rc == 0 && !interrupted && next < n && running < max_parallel) {
            if (start_one(&items[next], next, fn, arg, old, err) < 0) {
                rc = -1;
                break;
            }
            next++;
            running++;
        }
        /* report what is done, in order */
        while (reported < next && items[reported].ended) {
            item *it = &items[reported];
            sbuf o = SBUF_INIT, e = SBUF_INIT, d = SBUF_INIT;
            slurp(it->out, &o);
            slurp(it->err, &e);
            slurp(it->res, &d);
            close(it->out);
            close(it->err);
            close(it->res);
            it->out = it->err = it->res = -1;
            par_result r = { .status = it->status, .out = sbuf_str(&o), .out_len = o.len,
                             .err = sbuf_str(&e), .err_len = e.len, .data = sbuf_str(&d), .data_len = d.len };
            done(reported, &r, arg);
            sbuf_free(&o);
            sbuf_free(&e);
            sbuf_free(&d);
            reported++;
        }
        if (reported >= next && (rc < 0 || interrupted || next >= n))
            break;
        if (running == 0)
            continue;
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            rc = qq_fail(err, QQ_EXIT_FAIL, "waitpid: %s", strerror(errno));
            break;
        }
        for (size_t i = 0; i < next; i++) {
            if (items[i].pid == pid && !items[i].ended) {
                items[i].ended = true;
                items[i].status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                running--;
                break;
            }
        }
    }
    for (int k = 0; k < 3; k++)
        sigaction(par_signals[k], &old[k], NULL);
    for (size_t i = 0; i < n; i++) {
        if (items[i].out >= 0)
            close(items[i].out);
        if (items[i].err >= 0)
            close(items[i].err);
        if (items[i].res >= 0)
            close(items[i].res);
    }
    free(items);
    return rc;
}
