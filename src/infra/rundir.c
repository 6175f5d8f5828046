/* rundir — see rundir.h. */
#include "rundir.h"

#include <errno.h>
#include <dirent.h>
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

/* Is name "<base>.XXXXXX" (what mkdtemp makes of "<base>.XXXXXX")? */
static bool fallback_name(const char *name, const char *base)
{
    size_t b = strlen(base);
    return strncmp(name, base, b) == 0 && name[b] == '.' && strlen(name + b + 1) == 6;
}

/* A fallback of ours made earlier (by any VM or command): one per user is
 * enough, so it is found again rather than made anew. */
static char *existing_fallback(const char *preferred)
{
    _cleanup_free_ char *parent = xstrdup(preferred);
    char *slash = strrchr(parent, '/');
    if (!slash)
        return NULL;
    const char *base = preferred + (slash - parent) + 1;
    *slash = '\0';
    DIR *d = opendir(slash == parent ? "/" : parent);
    if (!d)
        return NULL;
    char *found = NULL;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (!fallback_name(e->d_name, base))
            continue;
        char *p = xasprintf("%s/%s", parent, e->d_name);
        if (rundir_check(p, NULL) == 0)
            found = p;
        else
            free(p);
    }
    closedir(d);
    return found;
}

void rundir_release(const char *preferred, const char *dir)
{
    const char *slash = strrchr(preferred, '/');
    const char *dslash = strrchr(dir, '/');
    if (!slash || !dslash || (size_t)(dslash - dir) != (size_t)(slash - preferred) ||
        strncmp(dir, preferred, (size_t)(slash - preferred)) != 0 || !fallback_name(dslash + 1, slash + 1))
        return;
    if (rundir_check(dir, NULL) == 0)
        rmdir(dir);   /* only when empty: another VM may still use it */
}

char *rundir_get(const char *preferred, const char *record, bool create, qq_err *err)
{
    if (create)
        (void)mkdir(preferred, 0700);   /* whatever is there, the check decides */
    struct stat st;
    if (rundir_check(preferred, NULL) == 0 || (!create && lstat(preferred, &st) < 0 && errno == ENOENT))
        return xstrdup(preferred);   /* (a missing one would be made) */
    char *r = recorded(record);
    if (!r)
        r = existing_fallback(preferred);
    if (r) {
        if (record && create) {   /* where it is, for later commands */
            _cleanup_free_ char *text = xasprintf("%s\n", r);
            (void)fs_write_atomic(record, text, strlen(text), 0600, NULL);
        }
        return r;
    }
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
