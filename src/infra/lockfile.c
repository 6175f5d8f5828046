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
        /* wait on this descriptor (it shows in /proc as the one waited on) */
        for (;;) {
            if (flock(fd, how | LOCK_NB) == 0)
                break;
            int e = errno;
            if (e == EINTR)
                continue;
            bool expired = o->deadline_ms == 0 ||
                           (o->deadline_ms != LOCKFILE_FOREVER && clock_ms() >= o->deadline_ms);
            if (e != EWOULDBLOCK || expired || sig_caught()) {
                close(fd);
                return fail(path, e != EWOULDBLOCK ? e : expired ? EWOULDBLOCK : EINTR, err);
            }
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
        if (still_ours(dirfd, path, fd))
            return fd;
        close(fd);   /* removed or replaced while we waited: lock the one at the name now */
    }
}

int lockfile_take(const char *path, const lockfile_opts *o, qq_err *err)
{
    return lockfile_take_at(AT_FDCWD, path, o, err);
}
