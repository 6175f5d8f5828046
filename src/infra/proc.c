/* proc — see proc.h. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/report.h"
#include "../base/sbuf.h"

extern char **environ;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static bool same_file(const proc_opts *o)
{
    return o->stdout_path && o->stderr_path && strcmp(o->stdout_path, o->stderr_path) == 0;
}

/* In a forked child: open path onto descriptor `to`. */
static int open_onto(const char *path, int flags, int to)
{
    int fd = open(path, flags, 0600);
    if (fd < 0)
        return -1;
    if (fd != to) {
        if (dup2(fd, to) < 0)
            return -1;
        close(fd);
    }
    return 0;
}

/* In a forked child about to exec: every descriptor above 2 closes at exec
 * (the error pipe too, which is close-on-exec already). */
static void only_stdio(void)
{
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC))
            fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    }
}

/* die_with_parent needs prctl() in the child, which posix_spawn cannot do:
 * fork and set the child up the same way; a failure before or in exec comes
 * back as an errno on a close-on-exec pipe. */
static pid_t spawn_forked(char *const argv[], const proc_opts *o, int oflags, qq_err *err)
{
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "cannot run %s: pipe: %s", argv[0], strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pp[0]);
        close(pp[1]);
        return qq_fail(err, QQ_EXIT_FAIL, "cannot run %s: fork: %s", argv[0], strerror(e));
    }
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);           /* the parent is already gone */
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (o->new_session)
            setsid();
        if (open_onto("/dev/null", O_RDONLY, 0) < 0)
            goto fail;
        if (o->stdout_path && open_onto(o->stdout_path, oflags, 1) < 0)
            goto fail;
        if (same_file(o) ? dup2(1, 2) < 0 : o->stderr_path && open_onto(o->stderr_path, oflags, 2) < 0)
            goto fail;
        if (o->cwd && chdir(o->cwd) < 0)
            goto fail;
        only_stdio();
        execvp(argv[0], argv);
    fail:;
        int e = errno;
        (void)!write(pp[1], &e, sizeof e);
        _exit(127);
    }
    close(pp[1]);
    int e = 0;
    ssize_t n;
    while ((n = read(pp[0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
    close(pp[0]);
    if (n == (ssize_t)sizeof e) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        errno = e;
        return qq_fail(err, QQ_EXIT_FAIL, "cannot run %s: %s", argv[0], strerror(e));
    }
    return pid;
}

pid_t proc_spawn(char *const argv[], const proc_opts *o, qq_err *err)
{
    int oflags = O_WRONLY | O_CREAT | O_CLOEXEC | (o->truncate ? O_TRUNC : O_APPEND);
    if (o->die_with_parent)
        return spawn_forked(argv, o, oflags & ~O_CLOEXEC, err);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (o->stdout_path)
        posix_spawn_file_actions_addopen(&fa, 1, o->stdout_path, oflags & ~O_CLOEXEC, 0600);
    if (same_file(o))
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
    else if (o->stderr_path)
        posix_spawn_file_actions_addopen(&fa, 2, o->stderr_path, oflags & ~O_CLOEXEC, 0600);
    if (o->cwd)
        posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (o->new_session)
        flags |= POSIX_SPAWN_SETSID;
    posix_spawnattr_setflags(&attr, flags);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    pid_t pid;
    int r = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (r != 0) {
        errno = r;
        return qq_fail(err, QQ_EXIT_FAIL, "cannot run %s: %s", argv[0], strerror(r));
    }
    return pid;
}

int proc_pidfd(pid_t pid, qq_err *err)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return qq_fail_errno(err, "pidfd_open %ld", (long)pid);
    /* pidfd_open sets O_CLOEXEC itself */
    return fd;
}

int proc_wait_pidfd(int pidfd, int timeout_ms)
{
    long long deadline = timeout_ms < 0 ? -1 : clock_ms() + timeout_ms;
    for (;;) {
        int left = -1;
        if (deadline >= 0) {
            long long l = deadline - clock_ms();
            left = l < 0 ? 0 : (int)l;
        }
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        return r > 0 ? 1 : 0;
    }
}

int proc_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int proc_reap(pid_t pid, int *status)
{
    int st = 0;
    pid_t r;
    do
        r = waitpid(pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == pid) {
        if (status)
            *status = st;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ run */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int proc_run(char *const argv[], const proc_run_opts *o, proc_result *r, qq_err *e)
{
    *r = (proc_result){ 0 };
    int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
    bool dialog = o->answer && o->out;
    if (((o->in || dialog) && pipe2(pin, O_CLOEXEC) < 0) || (o->out && pipe2(pout, O_CLOEXEC) < 0) ||
        (o->err && pipe2(perr, O_CLOEXEC) < 0)) {
        int en = errno;
        for (int i = 0; i < 2; i++) {
            close_fd(&pin[i]);
            close_fd(&pout[i]);
            close_fd(&perr[i]);
        }
        errno = en;
        return qq_fail(e, QQ_EXIT_FAIL, "cannot run %s: pipe: %s", argv[0], strerror(en));
    }
    /* posix_spawn (vfork-like): no copy of our page tables, and exec errors
     * come back from it */
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    int pipes[3][2] = { { pin[0], pin[1] }, { pout[1], pout[0] }, { perr[1], perr[0] } };
    for (int fd = 0; fd < 3; fd++) {
        if (pipes[fd][0] >= 0)
            posix_spawn_file_actions_adddup2(&fa, pipes[fd][0], fd);
        else if (o->null_stdio)
            posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
    }
    if (o->cwd)
        posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        (o->own_group ? POSIX_SPAWN_SETPGROUP : 0));
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close_fd(&pin[0]);
    close_fd(&pout[1]);
    close_fd(&perr[1]);
    if (rc != 0) {
        close_fd(&pin[1]);
        close_fd(&pout[0]);
        close_fd(&perr[0]);
        qq_fail(e, QQ_EXIT_FAIL, "cannot run %s%s%s: %s", argv[0], o->cwd ? " in " : "", o->cwd ? o->cwd : "",
                strerror(rc));
        errno = rc;
        return -1;
    }

    const char *in = dialog ? NULL : o->in;   /* a dialog's: once answer gave it */
    size_t inlen = in ? strlen(in) : 0, inoff = 0;
    if (pin[1] >= 0 && !inlen && !dialog)
        close_fd(&pin[1]);
    /* our end never blocks: a child that writes while we write its stdin
     * must not deadlock with us */
    if (pin[1] >= 0)
        fcntl(pin[1], F_SETFL, fcntl(pin[1], F_GETFL) | O_NONBLOCK);
    struct sigaction ign = { .sa_handler = SIG_IGN }, old;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);
    long long deadline = o->timeout_ms > 0 ? clock_ms() + o->timeout_ms : -1;
    _cleanup_close_ int pfd = proc_pidfd(pid, NULL);
    bool ended = false;
    int st = 0;
    char buf[65536];
    while (!ended || pin[1] >= 0 || pout[0] >= 0 || perr[0] >= 0) {
        if (o->stop && *o->stop) {
            if (!ended) {
                kill(o->own_group ? -pid : pid, SIGKILL);
                r->stopped = true;
            }
            break;
        }
        int left = -1;
        if (deadline >= 0) {
            long long l = deadline - clock_ms();
            if (l <= 0) {
                if (!ended) {
                    kill(o->own_group ? -pid : pid, SIGKILL);
                    r->timed_out = true;
                }
                break;
            }
            left = (int)l;
        }
        if (ended && pfd < 0 && pin[1] < 0 && pout[0] < 0 && perr[0] < 0)
            break;
        /* a signal that lands just before poll is seen within 100 ms */
        if (o->stop && (left < 0 || left > 100))
            left = 100;
        /* without a pidfd the child's end is polled every 50 ms */
        if (!ended && pfd < 0 && (left < 0 || left > 50))
            left = 50;
        /* a dialog's stdin waits for its answer: polled only for an error */
        struct pollfd p[4] = { { pin[1], in ? POLLOUT : 0, 0 }, { pout[0], POLLIN, 0 }, { perr[0], POLLIN, 0 },
                               { ended ? -1 : pfd, POLLIN, 0 } };
        int n = poll(p, 4, left);
        if (n < 0 && errno != EINTR)
            break;
        if (n < 0)
            continue;
        if (pin[1] >= 0 && !in && (p[0].revents & (POLLERR | POLLHUP)))
            close_fd(&pin[1]);   /* the child closed its stdin before the answer */
        if (pin[1] >= 0 && in && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(pin[1], in + inoff, inlen - inoff);
            if (w > 0)
                inoff += (size_t)w;
            if ((w < 0 && errno != EINTR && errno != EAGAIN) || inoff == inlen)
                close_fd(&pin[1]);
        }
        for (int i = 1; i < 3; i++) {
            int *fd = i == 1 ? &pout[0] : &perr[0];
            if (*fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t k = read(*fd, buf, sizeof buf);
                if (k > 0) {
                    sbuf_add(i == 1 ? o->out : o->err, buf, (size_t)k);
                    if (i == 1 && dialog && !in && pin[1] >= 0 && (in = o->answer(o->out, o->answer_arg))) {
                        inlen = strlen(in);
                        if (!inlen)
                            close_fd(&pin[1]);
                    }
                } else if (k == 0 || errno != EINTR) {
                    close_fd(fd);
                }
            }
        }
        if (!ended && (pfd < 0 || (p[3].revents & POLLIN)))
            ended = proc_reap(pid, &st) == 1;
        /* the child is gone and nothing is left to read or write */
        if (ended && pin[1] < 0 && pout[0] < 0 && perr[0] < 0)
            break;
        if (ended && pin[1] >= 0)
            close_fd(&pin[1]);
    }
    close_fd(&pin[1]);
    close_fd(&pout[0]);
    close_fd(&perr[0]);
    sigaction(SIGPIPE, &old, NULL);
    if (!ended)
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
    r->status = st;
    return 0;
}

bool proc_descends_from(pid_t pid, pid_t ancestor)
{
    for (int depth = 0; pid > 1 && depth < 64; depth++) {
        if (pid == ancestor)
            return true;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (n <= 0)
            return false;
        buf[n] = '\0';
        /* "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses */
        const char *p = strrchr(buf, ')');
        long ppid;
        if (!p || sscanf(p + 1, " %*c %ld", &ppid) != 1)
            return false;
        pid = (pid_t)ppid;
    }
    return false;
}

void proc_echo(char *const argv[])
{
    _cleanup_sbuf_ sbuf l = SBUF_INIT;
    sbuf_adds(&l, "+");
    for (char *const *p = argv; *p; p++) {
        sbuf_addc(&l, ' ');
        sbuf_add_shell_quoted(&l, *p);
    }
    report_line("%s", sbuf_str(&l));
}

int proc_exec(char *const argv[], bool echo, qq_err *e)
{
    if (echo)
        proc_echo(argv);
    fflush(NULL);
    execvp(argv[0], argv);
    return qq_fail(e, QQ_EXIT_FAIL, "cannot run %s: %s", argv[0], strerror(errno));
}

const char *proc_last_line(char *text)
{
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = '\0';
    char *nl = strrchr(text, '\n');
    char *s = nl ? nl + 1 : text;
    if (strncmp(s, "Error: ", 7) == 0)
        s += 7;
    return s;
}

int proc_tool(const char *bin, const char *name, char *const *args, char **out, qq_err *err)
{
    size_t n = 0;
    while (args[n])
        n++;
    char **argv = calloc(n + 2, sizeof *argv);
    if (!argv)
        abort();
    argv[0] = (char *)bin;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = args[i];
    sbuf o = SBUF_INIT, e = SBUF_INIT;
    proc_run_opts po = { .out = &o, .err = &e, .null_stdio = true, .timeout_ms = 10 * 60 * 1000 };
    proc_result pr;
    int rc = proc_run(argv, &po, &pr, err);
    free(argv);
    if (rc == 0 && (!WIFEXITED(pr.status) || WEXITSTATUS(pr.status) != 0)) {
        char *text = sbuf_steal(&e);
        rc = qq_fail(err, QQ_EXIT_FAIL, "%s %s: %s", name, args[0], text ? proc_last_line(text) : "failed");
        free(text);
    }
    if (rc == 0 && out)
        *out = sbuf_steal(&o) ?: strdup("");
    sbuf_free(&o);
    sbuf_free(&e);
    return rc;
}
