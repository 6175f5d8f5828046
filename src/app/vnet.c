/* vnet — see vnet.h. */
#include "vnet.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "../infra/lockfile.h"
#include "../infra/fs.h"
#include "../infra/net.h"
#include "../infra/proc.h"
#include "layout.h"

/* Is a switch listening in dir? (its control socket accepts) */
static bool switch_alive(const char *dir)
{
    _cleanup_free_ char *ctl = xasprintf("%s/ctl", dir);
    int fd = net_unix_connect_ms(ctl, 1000, NULL);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* The switch's pid from its pid file, when that process is a vde_switch of dir. */
static pid_t switch_pid(const char *dir)
{
    _cleanup_free_ char *pidp = layout_beside(dir, ".pid");
    _cleanup_free_ char *text = NULL;
    if (fs_read_file(pidp, &text, NULL, NULL) < 0)
        return 0;
    long pid = strtol(text, NULL, 10);
    if (pid <= 1)
        return 0;
    _cleanup_free_ char *cl = xasprintf("/proc/%ld/cmdline", pid);
    _cleanup_free_ char *cmd = NULL;
    size_t n = 0;
    if (fs_read_file(cl, &cmd, &n, NULL) < 0)
        return 0;
    /* argv is NUL-separated: vde_switch … -s DIR … */
    bool is_switch = false, has_dir = false;
    for (size_t i = 0; i < n; i += strlen(cmd + i) + 1) {
        const char *a = cmd + i, *base = strrchr(a, '/');
        if (i == 0)
            is_switch = strcmp(base ? base + 1 : a, "vde_switch") == 0;
        else if (strcmp(a, dir) == 0)
            has_dir = true;
    }
    return is_switch && has_dir ? (pid_t)pid : 0;
}

static void switch_stop(const char *dir)
{
    pid_t pid = switch_pid(dir);
    if (pid > 0) {
        int pfd = proc_pidfd(pid, NULL);
        if (pfd >= 0) {
            proc_signal(pfd, SIGTERM);
            if (proc_wait_pidfd(pfd, 2000) == 0) {
                proc_signal(pfd, SIGKILL);
                proc_wait_pidfd(pfd, 2000);
            }
            close(pfd);
        }
    }
    _cleanup_free_ char *pidp = layout_beside(dir, ".pid");
    unlink(pidp);
    fs_remove(dir, NULL);
}

static int switch_start(const char *dir, qq_err *err)
{
    switch_stop(dir);   /* what a dead one left */
    _cleanup_free_ char *pidp = layout_beside(dir, ".pid");
    char *argv[] = { "vde_switch", "--daemon", "--sock", (char *)dir, "--dirmode", "0700", "--mode", "0600",
                     "--pidfile", pidp, NULL };
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    proc_run_opts o = { .err = &out, .out = &out, .timeout_ms = 10000 };
    proc_result r;
    if (proc_run(argv, &o, &r, err) < 0) {
        if (errno == ENOENT)
            return qq_fail(err, QQ_EXIT_FAIL, "cannot run vde_switch, which [net] networks need: install vde2");
        return -1;
    }
    if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
        return qq_fail(err, QQ_EXIT_FAIL, "vde_switch for %s failed: %s", dir, sbuf_str(&out));
    /* daemonised: ready once its control socket answers */
    for (long long end = clock_ms() + 10000; !switch_alive(dir);) {
        if (clock_ms() > end)
            return qq_fail(err, QQ_EXIT_FAIL, "vde_switch for %s did not come up", dir);
        usleep(20000);
    }
    return 0;
}

/* Add to set the switch dirs of this state dir that an argument joins
 * (sock=DIR of a vde netdev, DIR named by layout_net_dir: <rundir>/HASH.net). */
static void add_joined(json_t *set, const char *rd, const char *arg)
{
    size_t rl = rd ? strlen(rd) : 0;
    if (!rd || strncmp(arg, "vde,", 4) != 0)
        return;
    const char *k = strstr(arg, ",sock=");
    if (!k)
        return;
    k += strlen(",sock=");
    size_t n = strcspn(k, ",");
    if (n != rl + 1 + 16 + 4 || strncmp(k, rd, rl) != 0 || k[rl] != '/' || strncmp(k + n - 4, ".net", 4) != 0)
        return;
    _cleanup_free_ char *d = xstrndup(k, n);
    json_object_set_new(set, d, json_true());
}

/* The switch dirs a VM's recorded argv joins. */
static json_t *joined(const char *rd, const char *vm_dir)
{
    _cleanup_free_ char *p = layout_path(vm_dir, LAYOUT_ARGV);
    json_t *a = json_load_file(p, 0, NULL);
    json_t *out = json_object();
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (json_is_string(v))
            add_joined(out, rd, json_string_value(v));
    }
    json_decref(a);
    return out;
}

int vnet_up(const char *state_dir, char *const *argv, qq_err *err)
{
    _cleanup_free_ char *rd = layout_runtime_dir(state_dir, false, NULL);
    _cleanup_json_ json_t *set = json_object();
    for (char *const *a = argv; *a; a++)
        add_joined(set, rd, *a);
    if (json_object_size(set) == 0)
        return -2;
    _cleanup_free_ char *lockp = layout_net_lock(state_dir, err);
    if (!lockp)
        return -1;
    /* shared while every switch runs; exclusive to start one. flock's
     * conversion is not atomic, so the check is repeated under the shared lock. */
    for (;;) {
        int fd = lockfile_take(lockp, &(lockfile_opts){ .shared = true, .deadline_ms = LOCKFILE_FOREVER }, err);
        if (fd < 0)
            return -1;
        bool all = true;
        const char *n;
        json_t *v;
        json_object_foreach(set, n, v) all = all && switch_alive(n);
        if (all)
            return fd;
        close(fd);
        _cleanup_close_ int ex = lockfile_take(lockp, &(lockfile_opts){ .deadline_ms = LOCKFILE_FOREVER }, err);
        if (ex < 0)
            return -1;
        json_object_foreach(set, n, v) {
            if (!switch_alive(n) && switch_start(n, err) < 0)
                return -1;
        }
    }
}

void vnet_down(const char *state_dir, const char *vm_dir)
{
    if (layout_pid_holder(vm_dir) > 0)
        return;   /* it runs after all */
    _cleanup_free_ char *rd = layout_runtime_dir(state_dir, false, NULL);
    _cleanup_json_ json_t *mine = joined(rd, vm_dir);
    if (json_object_size(mine) == 0)
        return;
    _cleanup_free_ char *lockp = layout_net_lock(state_dir, NULL);
    if (!lockp)
        return;
    _cleanup_close_ int fd = lockfile_take(lockp, &(lockfile_opts){ .deadline_ms = LOCKFILE_FOREVER }, NULL);
    if (fd < 0)
        return;
    DIR *d = opendir(state_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *vm = layout_vm_of_entry(e->d_name);
        if (!vm)
            continue;
        _cleanup_free_ char *other = layout_vm_dir(state_dir, vm);
        if (strcmp(other, vm_dir) == 0 || layout_pid_holder(other) <= 0)
            continue;
        _cleanup_json_ json_t *theirs = joined(rd, other);
        const char *k;
        json_t *v;
        json_object_foreach(theirs, k, v) json_object_del(mine, k);
    }
    if (d)
        closedir(d);
    const char *k;
    json_t *v;
    json_object_foreach(mine, k, v) switch_stop(k);
}
