/* proc — see proc.h. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/cleanup.h"

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
    if (fd < 0) {
        int e = errno;
        qq_fail(err, QQ_EXIT_FAIL, "pidfd_open %ld: %s", (long)pid, strerror(e));
        errno = e;
        return -1;
    }
    /* pidfd_open sets O_CLOEXEC itself */
    return fd;
}

long long proc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int proc_wait_pidfd(int pidfd, int timeout_ms)
{
    long long deadline = timeout_ms < 0 ? -1 : proc_now_ms() + timeout_ms;
    for (;;) {
        int left = -1;
        if (deadline >= 0) {
            long long l = deadline - proc_now_ms();
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
