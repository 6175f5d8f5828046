/* fs — see fs.h. */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"

int fs_mkdir_p(const char *path, mode_t mode, qq_err *err)
{
    if (!path || !*path)
        return qq_fail(err, QQ_EXIT_FAIL, "mkdir: empty path");
    _cleanup_free_ char *p = strdup(path);
    if (!p)
        abort();
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return qq_fail_errno(err, "mkdir %s", p);
        *s = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    int sr = stat(p, &st);
    if (sr < 0 || !S_ISDIR(st.st_mode)) {
        int e = sr < 0 ? errno : ENOTDIR;
        qq_fail(err, QQ_EXIT_FAIL, "mkdir %s: %s", p, strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, qq_err *err)
{
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
        abort();
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            errno = e;
            return qq_fail(err, QQ_EXIT_FAIL, "write %s: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return qq_fail(err, QQ_EXIT_FAIL, "write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return qq_fail(err, QQ_EXIT_FAIL, "rename %s: %s", path, strerror(e));
    }
    return 0;
}

int fs_read_file(const char *path, char **out, size_t *len, qq_err *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qq_fail_errno(err, "%s", path);
    sbuf b = SBUF_INIT;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            sbuf_free(&b);
            qq_fail(err, QQ_EXIT_FAIL, "read %s: %s", path, strerror(e));
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        sbuf_add(&b, chunk, (size_t)n);
    }
    if (len)
        *len = b.len;
    *out = sbuf_steal(&b);
    return 0;
}

int fs_tail(const char *path, size_t n, sbuf *out, qq_err *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qq_fail_errno(err, "%s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return qq_fail_errno(err, "%s", path);
    if (n == 0 || st.st_size == 0)
        return 0;
    off_t end = st.st_size, pos = end, start = 0;
    size_t seen = 0;
    bool first = true, found = false;
    char buf[65536];
    while (pos > 0 && !found) {
        size_t chunk = pos > (off_t)sizeof buf ? sizeof buf : (size_t)pos;
        pos -= (off_t)chunk;
        ssize_t r = pread(fd, buf, chunk, pos);
        if (r < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "read %s: %s", path, strerror(errno));
        for (ssize_t i = r - 1; i >= 0; i--) {
            if (buf[i] != '\n')
                continue;
            /* the newline that ends the file does not start a line */
            if (first && pos + i == end - 1) {
                first = false;
                continue;
            }
            first = false;
            if (++seen == n) {
                start = pos + i + 1;
                found = true;
                break;
            }
        }
        first = false;
    }
    for (off_t off = start; off < end;) {
        size_t want = end - off > (off_t)sizeof buf ? sizeof buf : (size_t)(end - off);
        ssize_t r = pread(fd, buf, want, off);
        if (r < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "read %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        sbuf_add(out, buf, (size_t)r);
        off += r;
    }
    return 0;
}

int fs_remove(const char *path, qq_err *err)
{
    if (unlink(path) < 0 && errno != ENOENT)
        return qq_fail(err, QQ_EXIT_FAIL, "remove %s: %s", path, strerror(errno));
    return 0;
}

bool fs_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

char *fs_self_exe(void)
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0 || buf[0] != '/')
        return NULL;
    buf[n] = '\0';
    static const char deleted[] = " (deleted)";
    size_t dl = sizeof deleted - 1;
    if ((size_t)n > dl && strcmp(buf + n - dl, deleted) == 0)
        buf[n - dl] = '\0';
    if (access(buf, X_OK) != 0)
        return NULL;
    return strdup(buf);   /* NULL when out of memory: the caller does without */
}
