/* rundir — see rundir.h. */
#include "rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "fs.h"

/* A runtime dir leaves room for "/" + a 16-char name + ".XXXXXXXXXXXXXXXX"
 * (what ssh appends while binding its ControlPath) within sun_path. */
#define RUNDIR_MAX 64

int rundir_check(const char *path, qq_err *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP || e == ENOTDIR) {
            struct stat ls;
            if (lstat(path, &ls) == 0 && S_ISLNK(ls.st_mode))
                return qq_fail(err, QQ_EXIT_FAIL, "%s is a symlink", path);
            return qq_fail(err, QQ_EXIT_FAIL, "%s is not a directory", path);
        }
        return qq_fail_errno(err, "%s", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return qq_fail_errno(err, "%s", path);
    if (!S_ISDIR(st.st_mode))
        return qq_fail(err, QQ_EXIT_FAIL, "%s is not a directory", path);
    if (st.st_uid != geteuid())
        return qq_fail(err, QQ_EXIT_FAIL, "%s belongs to uid %lu, not to us (uid %lu)", path,
                       (unsigned long)st.st_uid, (unsigned long)geteuid());
    if ((st.st_mode & 07777) != 0700)
        return qq_fail(err, QQ_EXIT_FAIL, "%s has mode %04o, not 0700", path, (unsigned)(st.st_mode & 07777));
    return 0;
}

char *rundir_preferred(void)
{
    const char *rt = getenv("XDG_RUNTIME_DIR");
    if (rt && rt[0] == '/' && strlen(rt) + strlen("/qqmgr") < RUNDIR_MAX && rundir_check(rt, NULL) == 0)
        return xasprintf("%s/qqmgr", strcmp(rt, "/") ? rt : "");
    const char *tmp = getenv("TMPDIR");
    if (!tmp || tmp[0] != '/' || strlen(tmp) + strlen("/qqmgr-4294967295.XXXXXX") >= RUNDIR_MAX)
        tmp = "/tmp";
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/')
        n--;
    return xasprintf("%.*s/qqmgr-%lu", (int)n, tmp, (unsigned long)geteuid());
}

/* The fallback named in record, when it still passes the check. */
static char *recorded(const char *record)
{
    if (!record)
        return NULL;
    char *s = NULL;
    if (fs_read_file(record, &s, NULL, NULL) < 0)
        return NULL;
    s[strcspn(s, "\n")] = '\0';
    if (s[0] != '/' || rundir_check(s, NULL) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

char *rundir_get(const char *preferred, const char *record, bool create, qq_err *err)
{
    if (create)
        (void)mkdir(preferred, 0700);   /* whatever is there, the check decides */
    struct stat st;
    if (rundir_check(preferred, NULL) == 0 || (!create && lstat(preferred, &st) < 0 && errno == ENOENT))
        return xstrdup(preferred);   /* (a missing one would be made) */
    char *r = recorded(record);
    if (r)
        return r;
    char *tmpl = xasprintf("%s.XXXXXX", preferred);
    if (!create)
        return tmpl;
    if (!mkdtemp(tmpl)) {
        qq_fail(err, QQ_EXIT_FAIL, "mkdtemp %s: %s", tmpl, strerror(errno));
        free(tmpl);
        return NULL;
    }
    /* mkdtemp makes it 0700 (whatever the umask); check it like any other */
    if (rundir_check(tmpl, err) < 0) {
        rmdir(tmpl);
        free(tmpl);
        return NULL;
    }
    if (record) {
        _cleanup_free_ char *text = xasprintf("%s\n", tmpl);
        if (fs_write_atomic(record, text, strlen(text), 0600, err) < 0) {
            rmdir(tmpl);
            free(tmpl);
            return NULL;
        }
    }
    return tmpl;
}
