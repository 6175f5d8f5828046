/* copy — sparse-aware file copy; see copy.h. */
#include "copy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"

#define COPY_STEP ((size_t)64 << 20)   /* bytes per copy_file_range call */

/* One extent [*io, end) with read/write, for kernels or file systems that
 * refuse copy_file_range. */
static int copy_rw(int in, int out, off_t *io, off_t *oo, off_t end, const volatile sig_atomic_t *stop)
{
    size_t bufsz = 1 << 20;
    _cleanup_free_ char *buf = malloc(bufsz);
    if (!buf)
        abort();
    while (*io < end) {
        if (stop && *stop) {
            errno = EINTR;
            return -1;
        }
        size_t want = (size_t)(end - *io) < bufsz ? (size_t)(end - *io) : bufsz;
        ssize_t r = pread(in, buf, want, *io);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -1 : 0;      /* 0: the source shrank under us */
        for (ssize_t done = 0; done < r;) {
            ssize_t w = pwrite(out, buf + done, (size_t)(r - done), *oo + done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -1;
            done += w;
        }
        *io += r;
        *oo += r;
    }
    return 0;
}

int copy_sparse(const char *src, const char *dst, copy_stats *stats, qq_err *err)
{
    return copy_sparse_until(src, dst, NULL, stats, err);
}

/* An interrupted copy: one line, errno EINTR. */
static int stopped(const char *dst, qq_err *err)
{
    qq_fail(err, QQ_EXIT_FAIL, "copy to %s: interrupted", dst);
    errno = EINTR;
    return -1;
}

int copy_sparse_until(const char *src, const char *dst, const volatile sig_atomic_t *stop, copy_stats *stats,
                      qq_err *err)
{
    copy_stats dummy;
    if (!stats)
        stats = &dummy;
    *stats = (copy_stats){ 0 };
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", src, strerror(errno));
    _cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", dst, strerror(errno));
    struct stat st;
    if (fstat(in, &st) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", src, strerror(errno));
    if (ioctl(out, FICLONE, in) == 0) {
        stats->reflinked = true;
        stats->data = (unsigned long long)st.st_blocks * 512;
        return 0;
    }
    (void)posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
    bool use_cfr = true;
    off_t pos = 0;
    while (pos < st.st_size) {
        off_t data = lseek(in, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO)
                break;          /* only a hole is left */
            data = pos;         /* no SEEK_DATA: one extent to the end */
        }
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0 || hole > st.st_size)
            hole = st.st_size;
        off_t io = data, oo = data;
        while (io < hole) {
            if (stop && *stop)
                return stopped(dst, err);
            if (!use_cfr) {
                if (copy_rw(in, out, &io, &oo, hole, stop) < 0)
                    return stop && *stop ? stopped(dst, err) : qq_fail(err, QQ_EXIT_FAIL, "copy %s to %s: %s", src, dst, strerror(errno));
                break;
            }
            /* in steps, so that a stop request is seen soon */
            size_t step = (size_t)(hole - io) < COPY_STEP ? (size_t)(hole - io) : COPY_STEP;
            ssize_t n = copy_file_range(in, &io, out, &oo, step, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
                use_cfr = false;       /* old kernel or odd file system */
                continue;
            }
            if (n < 0)
                return qq_fail(err, QQ_EXIT_FAIL, "copy %s to %s: %s", src, dst, strerror(errno));
            if (n == 0)
                break;          /* the source shrank under us */
        }
        stats->data += (unsigned long long)(io - data);
        pos = hole;
    }
    if (ftruncate(out, st.st_size) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", dst, strerror(errno));
    return 0;
}
