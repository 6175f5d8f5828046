/* leftover — see leftover.h. */
#include "leftover.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/clock.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "../infra/proc.h"
#include "../infra/qmp.h"
#include "../infra/tree.h"
#include "layout.h"

#define COPY_PREFIX "throwaway."
#define LOAD_WAIT_MS 60000     /* an incoming state still loading */
#define CANCEL_WAIT_MS 30000   /* a cancelled migration winding down */

/* The start time of process pid (clock ticks since boot, /proc/PID/stat
 * field 22), 0 when it is gone: with the pid, it names one process, never a
 * later one that reuses the number. */
static unsigned long long start_time(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    _cleanup_free_ char *s = NULL;
    if (fs_read_file(path, &s, NULL, NULL) < 0)
        return 0;
    char *p = strrchr(s, ')');   /* the command name may hold spaces and parentheses */
    if (!p)
        return 0;
    /* after ") ": field 3 (state) … field 22 (starttime) */
    unsigned long long v = 0;
    p++;
    for (int field = 3; field <= 22 && p; field++) {
        while (*p == ' ')
            p++;
        if (field == 22)
            v = strtoull(p, NULL, 10);
        p = strchr(p, ' ');
    }
    return v;
}

static bool alive(pid_t pid, unsigned long long started)
{
    if (pid <= 0)
        return false;
    unsigned long long now = start_time(pid);
    return now != 0 && (started == 0 || now == started);
}

static char *record_path(const char *dir)
{
    return layout_path(dir, LAYOUT_INFLIGHT);
}

int leftover_begin(const char *dir, const char *op, const char *name, bool was_running, const char *tmp,
                   qq_err *err)
{
    _cleanup_free_ char *p = record_path(dir);
    pid_t me = getpid();
    _cleanup_json_ json_t *r = json_pack("{s:s, s:I, s:I, s:s, s:b}", "op", op, "pid", (json_int_t)me, "started",
                                         (json_int_t)start_time(me), "snapshot", name, "was_running", was_running);
    if (tmp)
        json_object_set_new(r, "tmp", json_string(tmp));
    _cleanup_free_ char *text = json_dumps(r, 0);
    return fs_write_atomic(p, text, strlen(text), 0600, err);
}

int leftover_mark(const char *dir, const char *key, qq_err *err)
{
    _cleanup_free_ char *p = record_path(dir);
    _cleanup_json_ json_t *r = json_load_file(p, 0, NULL);
    if (!r)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: no record of the operation", p);
    json_object_set_new(r, key, json_true());
    _cleanup_free_ char *text = json_dumps(r, 0);
    return fs_write_atomic(p, text, strlen(text), 0600, err);
}

int leftover_note_replace(const char *dir, char *const *tmps, char *const *disks, qq_err *err)
{
    _cleanup_free_ char *p = record_path(dir);
    _cleanup_json_ json_t *r = json_load_file(p, 0, NULL);
    if (!r)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: no record of the operation", p);
    json_t *pairs = json_array();
    for (size_t i = 0; tmps[i] && disks[i]; i++)
        json_array_append_new(pairs, json_pack("{s:s, s:s}", "tmp", tmps[i], "disk", disks[i]));
    json_object_set_new(r, "replace", pairs);
    _cleanup_free_ char *text = json_dumps(r, 0);
    return fs_write_atomic(p, text, strlen(text), 0600, err);
}

/* A dead restore's disk copies (leftover_note_replace): finished when it
 * had begun to rename them, else removed. Returns what was done, or NULL. */
static const char *repair_replace(json_t *r)
{
    json_t *pairs = json_object_get(r, "replace");
    bool renaming = json_is_true(json_object_get(r, "renaming"));
    size_t i;
    json_t *x;
    int n = 0;
    json_array_foreach(pairs, i, x) {
        const char *tmp = json_string_value(json_object_get(x, "tmp"));
        const char *disk = json_string_value(json_object_get(x, "disk"));
        if (!tmp || !disk)
            continue;
        if (renaming ? rename(tmp, disk) == 0 : unlink(tmp) == 0)
            n++;
    }
    if (!n)
        return NULL;
    return renaming ? ", its disks put back as saved (the restore had begun to replace them)"
                    : ", the partial copies of its disks removed (the disks are as they were)";
}

void leftover_end(const char *dir)
{
    _cleanup_free_ char *p = record_path(dir);
    unlink(p);
}

static const char *status_of(qmp *q, json_t **keep)
{
    *keep = qmp_execute(q, "query-status", NULL, 5000, NULL);
    return json_string_value(json_object_get(*keep, "status"));
}

static bool is(const char *s, const char *what)
{
    return s && strcmp(s, what) == 0;
}

static int qmp_do(qmp *q, const char *cmd, qq_err *err)
{
    json_t *r = qmp_execute(q, cmd, NULL, 10000, err);
    if (!r)
        return -1;
    json_decref(r);
    return 0;
}

int leftover_resume(qmp *q, bool run, qq_err *err)
{
    for (long long end = clock_ms() + CANCEL_WAIT_MS;;) {
        _cleanup_json_ json_t *st = NULL;
        const char *s = status_of(q, &st);
        if (!s)
            return qq_fail(err, QQ_EXIT_FAIL, "QEMU does not answer query-status");
        if (is(s, "finish-migrate")) {
            /* the migration's end still moves the guest to postmigrate: a cont
             * now would be undone */
            if (clock_ms() > end)
                return qq_fail(err, QQ_EXIT_FAIL, "QEMU stays in finish-migrate");
            usleep(10 * 1000);
            continue;
        }
        if (is(s, "postmigrate") || (run && is(s, "paused"))) {
            /* QEMU leaves postmigrate only by running: a paused guest runs
             * for an instant and is paused again */
            if (qmp_do(q, "cont", err) < 0)
                return -1;
            if (!run && qmp_do(q, "stop", err) < 0)
                return -1;
        }
        return 0;
    }
}

/* A save's leftovers: the migration stopped, the guest as it was before. */
static int repair_save(qmp *q, bool was_running, qq_err *err)
{
    _cleanup_json_ json_t *m = qmp_execute(q, "query-migrate", NULL, 5000, err);
    if (!m)
        return -1;
    const char *ms = json_string_value(json_object_get(m, "status"));
    if (ms && !is(ms, "completed") && !is(ms, "failed") && !is(ms, "cancelled") && !is(ms, "none")) {
        json_decref(qmp_execute(q, "migrate_cancel", NULL, 10000, NULL));
        for (long long end = clock_ms() + CANCEL_WAIT_MS;;) {
            _cleanup_json_ json_t *x = qmp_execute(q, "query-migrate", NULL, 5000, err);
            if (!x)
                return -1;
            const char *s = json_string_value(json_object_get(x, "status"));
            if (!s || is(s, "completed") || is(s, "failed") || is(s, "cancelled"))
                break;
            if (clock_ms() > end)
                return qq_fail(err, QQ_EXIT_FAIL, "the interrupted save's migration does not end (%s)", s);
            usleep(20 * 1000);
        }
    }
    /* a mapped save's capability (mapped.h) must not outlive it: a later
     * savevm would leave the RAM out */
    _cleanup_json_ json_t *caps = json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "x-ignore-shared",
                                            "state", false);
    json_decref(qmp_execute(q, "migrate-set-capabilities", caps, 5000, NULL));
    return leftover_resume(q, was_running, err);
}

/* A restore's leftovers: the incoming state loaded, the guest running as
 * the restore would have left it. */
static int repair_restore(qmp *q, const char *dir, bool run, bool never_asked, bool *stopped, qq_err *err)
{
    for (long long end = clock_ms() + LOAD_WAIT_MS;;) {
        _cleanup_json_ json_t *st = NULL;
        const char *s = status_of(q, &st);
        if (!s)
            return qq_fail(err, QQ_EXIT_FAIL, "QEMU does not answer query-status");
        if (!is(s, "inmigrate")) {
            if (run && is(s, "paused"))
                return qmp_do(q, "cont", err);
            return 0;
        }
        /* -incoming defer whose migrate-incoming never came (a mapped
         * restore killed before it): the state will never load, the start
         * did not happen */
        if (never_asked) {
            pid_t pid = layout_pid_holder(dir);
            if (pid > 0)
                kill(pid, SIGKILL);
            for (long long gone = clock_ms() + 5000; layout_pid_holder(dir) > 0 && clock_ms() < gone;)
                usleep(10 * 1000);
            layout_remove_runtime(dir);
            *stopped = true;
            return 0;
        }
        if (clock_ms() > end)
            return qq_fail(err, QQ_EXIT_FAIL, "the interrupted restore's state is still loading after %d s",
                           LOAD_WAIT_MS / 1000);
        usleep(50 * 1000);
    }
}

int leftover_repair(const char *dir, char **what, qq_err *err)
{
    if (what)
        *what = NULL;
    leftover_sweep_copies(dir);
    leftover_sweep_imports(dir);
    _cleanup_free_ char *p = record_path(dir);
    _cleanup_json_ json_t *r = json_load_file(p, 0, NULL);
    if (!r)
        return 0;
    if (alive((pid_t)json_integer_value(json_object_get(r, "pid")),
              (unsigned long long)json_integer_value(json_object_get(r, "started"))))
        return 0;
    const char *op = json_string_value(json_object_get(r, "op")) ?: "?";
    const char *name = json_string_value(json_object_get(r, "snapshot")) ?: "?";
    const char *tmp = json_string_value(json_object_get(r, "tmp"));
    bool was_running = json_is_true(json_object_get(r, "was_running"));
    bool stopped = false;
    int rc = 0;
    bool qemu = layout_pid_holder(dir) > 0;
    if (!qemu && is(op, "restore"))
        stopped = true;   /* killed before its QEMU started: the VM did not start */
    if (qemu) {
        _cleanup_free_ char *sock = layout_path(dir, LAYOUT_QMP);
        qmp *q = qmp_open(sock, 5000, err);
        if (!q)
            return -1;
        rc = is(op, "save") ? repair_save(q, was_running, err) : repair_restore(q, dir, was_running,
                                                            json_is_true(json_object_get(r, "deferred")) &&
                                                                !json_is_true(json_object_get(r, "incoming")),
                                                            &stopped, err);
        qmp_close(q);
    }
    if (rc < 0)
        return -1;
    if (tmp && unlink(tmp) < 0 && errno == EISDIR)
        tree_remove_at(AT_FDCWD, tmp, tmp, NULL);   /* a mapped save's temp dir */
    const char *disks = repair_replace(r);
    unlink(p);
    if (what)
        *what = xasprintf("repaired what an interrupted %s of snapshot '%s' left: the guest is %s%s%s", op, name,
                          stopped ? "stopped (its state never loaded)" : was_running ? "running" : "paused",
                          tmp ? ", the partial snapshot removed" : "", disks ? disks : "");
    return 1;
}

int leftover_explain(const char *vm, const char *cli, const char *state, qq_err *err)
{
    if (is(state, "postmigrate") || is(state, "finish-migrate"))
        return qq_fail(err, QQ_EXIT_FAIL,
                       "%s is paused after a migration or save that another program started (QEMU state %s): "
                       "`%s qmp %s cont` lets it run again", vm, state, cli, vm);
    if (is(state, "inmigrate"))
        return qq_fail(err, QQ_EXIT_FAIL,
                       "%s is waiting for an incoming migration that nothing sends (QEMU state inmigrate): "
                       "`%s stop %s --force` ends it", vm, cli, vm);
    return 0;
}

json_t *leftover_dead_copies(const char *dir)
{
    json_t *out = json_array();
    DIR *d = opendir(dir);
    if (!d)
        return out;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, COPY_PREFIX, strlen(COPY_PREFIX)) != 0)
            continue;
        const char *s = de->d_name + strlen(COPY_PREFIX);
        char *end;
        long pid = strtol(s, &end, 10);
        if (end == s || *end != '.' || pid <= 0)
            continue;
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 6, ".qcow2") != 0)
            continue;
        if (alive((pid_t)pid, 0))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
        json_array_append_new(out, json_pack("{s:s, s:I}", "path", path, "bytes", (json_int_t)st.st_blocks * 512));
    }
    closedir(d);
    return out;
}

int leftover_sweep_copies(const char *dir)
{
    _cleanup_json_ json_t *dead = leftover_dead_copies(dir);
    int n = 0;
    size_t i;
    json_t *x;
    json_array_foreach(dead, i, x) {
        if (unlink(json_string_value(json_object_get(x, "path"))) == 0)
            n++;
    }
    return n;
}

char *leftover_copy_path(const char *dir, unsigned n)
{
    return xasprintf("%s/" COPY_PREFIX "%ld.%u.qcow2", dir, (long)getpid(), n);
}

/* ------------------------------------------------------------ imports */

#define IMPORT_PREFIX ".import."

char *leftover_import_dir(const char *dir)
{
    _cleanup_free_ char *sd = layout_path(dir, LAYOUT_SNAPSHOTS);
    return xasprintf("%s/" IMPORT_PREFIX "%ld.%llu", sd, (long)getpid(), start_time(getpid()));
}

int leftover_sweep_imports(const char *dir)
{
    _cleanup_free_ char *sd = layout_path(dir, LAYOUT_SNAPSHOTS);
    int dfd = tree_open(sd);   /* a symlinked snapshots/ is never entered */
    if (dfd < 0)
        return 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, IMPORT_PREFIX, strlen(IMPORT_PREFIX)) != 0)
            continue;
        const char *s = de->d_name + strlen(IMPORT_PREFIX);
        char *end;
        long pid = strtol(s, &end, 10);
        if (end == s || *end != '.' || pid <= 0)
            continue;
        unsigned long long started = strtoull(end + 1, NULL, 10);
        if (alive((pid_t)pid, started))
            continue;
        if (tree_remove_at(dirfd(d), de->d_name, de->d_name, NULL) == 0)
            n++;
    }
    closedir(d);
    return n;
}
