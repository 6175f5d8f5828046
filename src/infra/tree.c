/* tree — see tree.h. */
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/xalloc.h"

static bool dot(const char *n)
{
    return strcmp(n, ".") == 0 || strcmp(n, "..") == 0;
}

int tree_open(const char *path)
{
    return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

unsigned long long tree_usage_at(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    unsigned long long n = (unsigned long long)st.st_blocks * 512;
    if (!S_ISDIR(st.st_mode))
        return n;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return n;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return n;
    }
    for (struct dirent *e; (e = readdir(d));)
        if (!dot(e->d_name))
            n += tree_usage_at(dirfd(d), e->d_name);
    closedir(d);
    return n;
}

unsigned long long tree_usage(const char *path)
{
    return tree_usage_at(AT_FDCWD, path);
}

int tree_remove_contents(int fd, const char *keep, const char *shown, qq_err *err)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", shown, strerror(errno));
    DIR *d = fdopendir(dup_fd);
    if (!d) {
        close(dup_fd);
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", shown, strerror(errno));
    }
    rewinddir(d);   /* the dup shares its offset with fd */
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (dot(e->d_name) || (keep && strcmp(e->d_name, keep) == 0))
            continue;
        _cleanup_free_ char *sub = xasprintf("%s/%s", shown, e->d_name);
        rc = tree_remove_at(dirfd(d), e->d_name, sub, err);
    }
    closedir(d);
    return rc;
}

int tree_remove_at(int dfd, const char *name, const char *shown, qq_err *err)
{
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return qq_fail(err, QQ_EXIT_FAIL, "remove %s: %s", shown, strerror(errno));
    _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "remove %s: %s", shown, strerror(errno));
    if (tree_remove_contents(fd, NULL, shown, err) < 0)
        return -1;
    if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return qq_fail(err, QQ_EXIT_FAIL, "remove %s: %s", shown, strerror(errno));
    return 0;
}
