/* lockfile — see lockfile.h. */
#include "lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/clock.h"
#include "sig.h"

/* The inode at the name is the one fd holds. */
static bool still_ours(int dirfd, const char *path, int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && fstatat(dirfd, path, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

static int fail(const char *path, int e, qq_err *err)
{
    qq_fail(err, QQ_EXIT_FAIL, "lock %s: %s", path,
            e == EWOULDBLOCK ? "held by another qqmgr" : e == EINTR ? "interrupted" : strerror(e));
    errno = e;
    return -1;
}

int lockfile_take_at(int dirfd, const char *path, const lockfile_opts *o, qq_err *err)
{
    static const lockfile_opts dflt = { 0 };
    if (!o)
        o = &dflt;
    int how = o->shared ? LOCK_SH : LOCK_EX;
    int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (o->no_create ? 0 : O_CREAT);
    bool told = false;
    int pause_ms = 10;
    for (;;) {
        int fd = openat(dirfd, path, flags, o->mode ? o->mode : 0600);
        if (fd < 0)
            return fail(path, errno, err);
        int r;
        do
            r = flock(fd, how | LOCK_NB);
        while (r < 0 && errno == EINTR);
        if (r == 0) {
            if (still_ours(dirfd, path, fd))
                return fd;
            close(fd);   /* removed or replaced while we waited: the new one */
            continue;
        }
        int e = errno;
        close(fd);
        if (e != EWOULDBLOCK)
            return fail(path, e, err);
        if (o->deadline_ms == 0 || (o->deadline_ms != LOCKFILE_FOREVER && clock_ms() >= o->deadline_ms))
            return fail(path, EWOULDBLOCK, err);
        if (sig_caught())
            return fail(path, EINTR, err);
        if (!told && o->on_wait)
            o->on_wait(o->arg);
        told = true;
        int nap = pause_ms;
        if (o->deadline_ms != LOCKFILE_FOREVER)
            nap = clock_left_ms(o->deadline_ms, 1, pause_ms);
        poll(NULL, 0, nap);
        if (pause_ms < 100)
            pause_ms += 10;
    }
}

int lockfile_take(const char *path, const lockfile_opts *o, qq_err *err)
{
    return lockfile_take_at(AT_FDCWD, path, o, err);
}
