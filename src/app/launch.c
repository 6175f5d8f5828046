/* launch — see launch.h. */
#include "launch.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "../infra/lockfile.h"
#include "../infra/net.h"
#include "../infra/proc.h"
#include "../infra/qmp.h"
#include "../infra/sig.h"
#include "guestgdb.h"
#include "layout.h"
#include "leftover.h"
#include "ramfile.h"
#include "vnet.h"

void launch_escape(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == ',')
            sbuf_addc(b, ',');
        sbuf_addc(b, *s);
    }
}

/* ------------------------------------------------------------ argv */

void launch_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

static const char *const injected[] = { "pidfile", "qmp", "qmp-pretty", "monitor", "serial", "daemonize", NULL };

/* "FILE:LINE:COL: vm.NAME.cmd[i]" of argument i (located only for an error) */
static const char *arg_where(const vm_spec *s, size_t i, char *buf, size_t len)
{
    if (!s->arg_where || !s->cfg)
        return s->name;
    char loc[PATH_MAX + 32];
    config_where(s->cfg, s->arg_where[i], loc, sizeof loc);
    snprintf(buf, len, "%s: %s", loc, s->arg_where[i]);
    return buf;
}

/* Whether the QEMU option list opts has key=val (",," is a comma inside a value). */
static bool has_option(const char *opts, const char *key, const char *val)
{
    size_t kl = strlen(key), vl = strlen(val);
    const char *p = opts;
    while (*p) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=' && strncmp(p + kl + 1, val, vl) == 0 &&
            (p[kl + 1 + vl] == '\0' || (p[kl + 1 + vl] == ',' && p[kl + 2 + vl] != ',')))
            return true;
        /* the next option */
        for (; *p; p++) {
            if (p[0] == ',' && p[1] == ',') {
                p++;
                continue;
            }
            if (*p == ',') {
                p++;
                break;
            }
        }
    }
    return false;
}

static int check_user_args(const vm_spec *s, qq_err *err)
{
    char wb[PATH_MAX + 300];
    for (size_t i = 0; i < s->nargs; i++) {
        const char *a = s->args[i];
        if (a[0] != '-')
            continue;
        const char *opt = a + 1 + (a[1] == '-');
        for (const char *const *p = injected; *p; p++) {
            if (strcmp(opt, *p) == 0) {
                const char *val = (strcmp(*p, "daemonize") != 0 && i + 1 < s->nargs) ? s->args[i + 1] : NULL;
                return qq_fail(err, QQ_EXIT_USAGE,
                               "%s: '%s%s%s' sets what qqmgr injects itself (-pidfile, -qmp, "
                               "-monitor, -serial; QEMU runs in the background without -daemonize): "
                               "remove it (use `qqmgr qmp`, `monitor`, `console`, `serial`)",
                               arg_where(s, i, wb, sizeof wb), a, val ? " " : "", val ? val : "");
            }
        }
        if ((strcmp(opt, "chardev") == 0 || strcmp(opt, "mon") == 0) && i + 1 < s->nargs &&
            (strstr(s->args[i + 1], "id=" LAUNCH_SERIAL_CHARDEV) || strstr(s->args[i + 1], "id=" LAUNCH_EVENTS_CHARDEV) ||
             strstr(s->args[i + 1], "id=" LAUNCH_QGA_CHARDEV)))
            return qq_fail(err, QQ_EXIT_USAGE, "%s: '%s %s': the ids " LAUNCH_SERIAL_CHARDEV ", " LAUNCH_EVENTS_CHARDEV
                           " and " LAUNCH_QGA_CHARDEV " are qqmgr's",
                           arg_where(s, i, wb, sizeof wb), a, s->args[i + 1]);
        if (strcmp(opt, "object") == 0 && i + 1 < s->nargs && has_option(s->args[i + 1], "id", RAMFILE_ID))
            return qq_fail(err, QQ_EXIT_USAGE, "%s: '%s %s': the id " RAMFILE_ID " is qqmgr's (the guest's RAM "
                           "backend)", arg_where(s, i, wb, sizeof wb), a, s->args[i + 1]);
        if ((strcmp(opt, "fsdev") == 0 || strcmp(opt, "virtfs") == 0 || strcmp(opt, "device") == 0) &&
            i + 1 < s->nargs && strstr(s->args[i + 1], "id=" LAUNCH_SHARE_ID))
            return qq_fail(err, QQ_EXIT_USAGE, "%s: '%s %s': ids starting " LAUNCH_SHARE_ID " are qqmgr's (its "
                           "[vm.NAME.share.TAG] devices)", arg_where(s, i, wb, sizeof wb), a, s->args[i + 1]);
        /* a share's tag in the user's own 9p device: two devices, one tag */
        for (size_t k = 0; k < s->nshares && i + 1 < s->nargs; k++)
            if (has_option(s->args[i + 1], "mount_tag", s->shares[k].tag))
                return qq_fail(err, QQ_EXIT_USAGE,
                               "%s: '%s %s': the tag %s is [vm.%s.share.%s], which qqmgr adds itself: remove one",
                               arg_where(s, i, wb, sizeof wb), a, s->args[i + 1], s->shares[k].tag, s->name,
                               s->shares[k].tag);
    }
    return 0;
}


/* prefix PATH suffix, PATH escaped */
static char *option(const char *prefix, const char *path, const char *suffix)
{
    sbuf b = SBUF_INIT;
    sbuf_adds(&b, prefix);
    launch_escape(&b, path);
    sbuf_adds(&b, suffix);
    return sbuf_steal(&b);
}

/* The words of the wrapper, or -1 (QQ_EXIT_USAGE) when it does not split or is empty. */
static int wrapper_words(const char *wrap, char ***w, qq_err *err)
{
    size_t nw = 0;
    *w = NULL;
    if (config_split_args(wrap, w, &nw, err) < 0) {
        strv_free(*w);
        *w = NULL;
        qq_err_prefix(err, "--wrap");
        return -1;
    }
    if (nw == 0) {
        strv_free(*w);
        *w = NULL;
        return qq_fail(err, QQ_EXIT_USAGE, "--wrap: expected a command (such as 'strace -f -o qemu.strace'), got '%s'",
                       wrap);
    }
    return 0;
}

/* A user argument with every FROM of replace (pairs) turned into its TO. */
static char *replaced(const char *arg, char *const *replace)
{
    char *v = xstrdup(arg);
    for (char *const *r = replace; r && r[0] && r[1]; r += 2) {
        char *at = strstr(v, r[0]);
        if (!at)
            continue;
        char *t = xasprintf("%.*s%s%s", (int)(at - v), v, r[1], at + strlen(r[0]));
        free(v);
        v = t;
    }
    return v;
}

int launch_argv(const vm_spec *s, const launch_opts *o, char ***argv, qq_err *err)
{
    static const launch_opts none = { 0 };
    if (!o)
        o = &none;
    if (check_user_args(s, err) < 0 || config_check_shares(s, err) < 0)
        return -1;
    char **v = NULL;
    size_t n = 0;
    if (o->wrap && wrapper_words(o->wrap, &v, err) < 0)
        return -1;
    n = strv_len(v);
    strv_push(&v, &n, xstrdup(s->qemu_bin));
    for (size_t i = 0; i < s->nargs; i++)
        strv_push(&v, &n, replaced(s->args[i], o->replace));
    if (o->ram.file && !o->ram.plain) {
        unsigned long long bytes = 0;
        char why[256];
        if (ramfile_check(s, false, &bytes, why, sizeof why) == 0) {
            strv_free(v);
            return qq_fail(err, QQ_EXIT_FAIL, "%s: its RAM cannot be a file (%s)", s->name, why);
        }
        strv_push(&v, &n, xstrdup("-object"));
        sbuf rb = SBUF_INIT;
        const char *id = ramfile_id(s);
        sbuf_addf(&rb, "memory-backend-file,id=%s,size=%llu,mem-path=", id, bytes);
        launch_escape(&rb, o->ram.file);
        sbuf_adds(&rb, o->ram.private_map ? ",share=off" : ",share=on");
        strv_push(&v, &n, sbuf_steal(&rb));
        strv_push(&v, &n, xstrdup("-machine"));
        strv_push(&v, &n, xasprintf("memory-backend=%s", id));
    }
    /* what start made (without it, the name it would make) */
    _cleanup_free_ char *sd = layout_socket_dir(s->state_dir, false, NULL);
    _cleanup_free_ char *pid = layout_path(s->state_dir, LAYOUT_PID);
    _cleanup_free_ char *serial_log = layout_path(s->state_dir, LAYOUT_SERIAL);
    _cleanup_free_ char *qmp_sock = layout_path(sd, LAYOUT_QMP);
    _cleanup_free_ char *mon_sock = layout_path(sd, LAYOUT_MONITOR);
    _cleanup_free_ char *ser_sock = layout_path(sd, LAYOUT_SERIAL_SOCKET);
    _cleanup_free_ char *gdb_sock = layout_path(sd, LAYOUT_GDB_SOCKET);
    _cleanup_free_ char *events_sock = layout_path(sd, LAYOUT_EVENTS_SOCKET);
    strv_push(&v, &n, xstrdup("-pidfile"));
    strv_push(&v, &n, xstrdup(pid));
    strv_push(&v, &n, xstrdup("-qmp"));
    strv_push(&v, &n, option("unix:", qmp_sock, ",server=on,wait=off"));
    strv_push(&v, &n, xstrdup("-monitor"));
    strv_push(&v, &n, option("unix:", mon_sock, ",server=on,wait=off"));
    strv_push(&v, &n, xstrdup("-chardev"));
    sbuf b = SBUF_INIT;
    sbuf_adds(&b, "socket,id=" LAUNCH_SERIAL_CHARDEV ",path=");
    launch_escape(&b, ser_sock);
    sbuf_adds(&b, ",server=on,wait=off,logfile=");
    launch_escape(&b, serial_log);
    sbuf_adds(&b, ",logappend=off");
    strv_push(&v, &n, sbuf_steal(&b));
    strv_push(&v, &n, xstrdup("-serial"));
    strv_push(&v, &n, xstrdup("chardev:" LAUNCH_SERIAL_CHARDEV));
    for (size_t i = 0; i < s->nshares; i++) {
        const vm_share *sh = &s->shares[i];
        strv_push(&v, &n, xstrdup("-virtfs"));
        sbuf vb = SBUF_INIT;
        sbuf_adds(&vb, "local,path=");
        launch_escape(&vb, sh->path);
        sbuf_addf(&vb, ",mount_tag=%s,security_model=mapped-xattr,id=" LAUNCH_SHARE_ID "%s%s", sh->tag, sh->tag,
                  sh->readonly ? ",readonly=on" : "");
        strv_push(&v, &n, sbuf_steal(&vb));
    }
    if (s->guest_agent) {   /* the guest agent's channel (guestagent.h) */
        _cleanup_free_ char *qga_sock = layout_path(sd, LAYOUT_QGA_SOCKET);
        strv_push(&v, &n, xstrdup("-chardev"));
        strv_push(&v, &n, option("socket,id=" LAUNCH_QGA_CHARDEV ",path=", qga_sock, ",server=on,wait=off"));
        strv_push(&v, &n, xstrdup("-device"));
        strv_push(&v, &n, xstrdup("virtio-serial-pci,id=" LAUNCH_QGA_CHARDEV "-serial"));
        strv_push(&v, &n, xstrdup("-device"));
        strv_push(&v, &n, xstrdup("virtserialport,bus=" LAUNCH_QGA_CHARDEV "-serial.0,chardev=" LAUNCH_QGA_CHARDEV
                                  ",name=org.qemu.guest_agent.0"));
    }
    for (char *const *e = o->extra; e && *e; e++)
        strv_push(&v, &n, xstrdup(*e));
    /* the debugging kit: gdbstub, events monitor, -S */
    if (guestgdb_user_option(s) < 0) {
        strv_push(&v, &n, xstrdup("-gdb"));
        strv_push(&v, &n, option("unix:", gdb_sock, ",server=on,wait=off"));
    }
    strv_push(&v, &n, xstrdup("-chardev"));
    strv_push(&v, &n, option("socket,id=" LAUNCH_EVENTS_CHARDEV ",path=", events_sock, ",server=on,wait=off"));
    strv_push(&v, &n, xstrdup("-mon"));
    strv_push(&v, &n, xstrdup("chardev=" LAUNCH_EVENTS_CHARDEV ",mode=control"));
    if (o->paused)
        strv_push(&v, &n, xstrdup("-S"));
    *argv = v;
    return 0;
}

char **launch_build_argv(const char *qemu_bin, char *const *args, const char *qmp_sock)
{
    char **v = NULL;
    size_t n = 0;
    strv_push(&v, &n, xstrdup(qemu_bin));
    for (char *const *a = args; a && *a; a++)
        strv_push(&v, &n, xstrdup(*a));
    strv_push(&v, &n, xstrdup("-qmp"));
    strv_push(&v, &n, option("unix:", qmp_sock, ",server=on,wait=off"));
    return v;
}

pid_t launch_spawn(char *const *argv, const char *cwd, const char *out_path, const char *err_path,
                   bool die_with_parent, qq_err *err)
{
    proc_opts po = { .cwd = cwd, .stdout_path = out_path, .stderr_path = err_path, .truncate = true,
                     .new_session = true, .die_with_parent = die_with_parent };
    mode_t um = umask(077);
    pid_t pid = proc_spawn(argv, &po, err);
    umask(um);
    return pid;
}

/* ------------------------------------------------------------ start */

/* The VM's lock (start, stop, gdb; img build for the images it uses), by
 * the start's deadline: its state dir is made first. Returns the descriptor
 * holding it. */
static int lock_vm(const char *name, const char *dir, long long deadline, int timeout_s, qq_err *err)
{
    return layout_lock_vm(name, dir, "start", deadline, timeout_s, "--timeout", err);
}

static int check_name(const config *cfg, const char *name, qq_err *err)
{
    return config_check_vm(cfg, name, err);
}

/* Which VM of ours uses host port `port` (running ones), or NULL. */
static const char *port_owner(const config *cfg, int port, pid_t *pid)
{
    for (size_t i = 0; i < config_vm_count(cfg); i++) {
        const char *n = config_vm_name(cfg, i);
        _cleanup_free_ char *d = config_vm_dir(cfg, n);
        vm_state st;
        vm_probe(d, false, &st);
        int p = st.ssh_port ? st.ssh_port : config_vm_ssh_port(cfg, n);
        if (st.running && p == port) {
            *pid = st.pid;
            return n;
        }
    }
    return NULL;
}

/* Choose the ssh host port; 0 when the VM has none. An automatic one is
 * reserved for this process (net_reserve_port) and never one of avoid[]. */
static int choose_port(const config *cfg, const char *name, const int *avoid, size_t navoid, qq_err *err)
{
    int port = config_vm_ssh_port(cfg, name);
    if (port == SSH_PORT_NONE)
        return 0;
    if (port == SSH_PORT_AUTO)
        return net_reserve_port(avoid, navoid, err);
    if (!net_tcp_port_free(port)) {
        pid_t pid = 0;
        const char *owner = port_owner(cfg, port, &pid);
        if (owner)
            return qq_fail(err, QQ_EXIT_FAIL, "%s: ssh port %d is in use by VM '%s' (pid %ld)", name, port,
                           owner, (long)pid);
        return qq_fail(err, QQ_EXIT_FAIL, "%s: ssh port %d is already in use by another program", name, port);
    }
    return port;
}

/* Prepare the state dir for a QEMU about to run with the argv of VM name:
 * port chosen and recorded, stale runtime files gone, short socket dir made. */
static int prepare_run(const config *cfg, const char *name, const int *avoid, size_t navoid,
                       const launch_opts *ro, vm_spec *spec, char ***argv, char **auto_ram, qq_err *err)
{
    int port = choose_port(cfg, name, avoid, navoid, err);
    if (port < 0)
        return -1;
    if (config_vm(cfg, name, port, spec, err) < 0)
        return -1;
    layout_remove_runtime(spec->state_dir);
    _cleanup_free_ char *sd = layout_socket_dir(spec->state_dir, true, err);
    if (!sd)
        return -1;
    launch_opts o = *ro;
    unsigned long long bytes;
    char why[256];
    if (!o.ram.file && !o.ram.plain && auto_ram && ramfile_check(spec, true, &bytes, why, sizeof why) == 1) {
        /* the guest's RAM in a fresh tmpfs file (mapped.h); unlinked once QMP answers */
        ramfile_sweep();
        *auto_ram = ramfile_new_path(NULL);
        o.ram.file = *auto_ram;
    }
    if (launch_argv(spec, &o, argv, err) < 0)
        return -1;
    if (layout_write_port(spec->state_dir, port, err) < 0)
        return -1;
    json_t *a = json_array();
    for (char **p = *argv; *p; p++)
        json_array_append_new(a, json_string(*p));
    _cleanup_free_ char *text = json_dumps(a, JSON_INDENT(2));
    json_decref(a);
    return layout_write(spec->state_dir, LAYOUT_ARGV, text, err);
}

static char *stderr_tail(const char *dir, size_t lines)
{
    _cleanup_free_ char *p = layout_path(dir, LAYOUT_STDERR);
    sbuf b = SBUF_INIT;
    if (fs_tail(p, lines, &b, NULL) < 0 || b.len == 0) {
        sbuf_free(&b);
        return NULL;
    }
    return sbuf_steal(&b);
}

/* Did QEMU fail to bind host port `port` ("Could not set up host forwarding
 * rule 'tcp:127.0.0.1:PORT-:22'")? */
static bool hostfwd_failed(const char *tail, int port)
{
    char needle[32];
    snprintf(needle, sizeof needle, ":%d-", port);
    for (const char *l = tail; l && (l = strstr(l, "host forwarding rule")); l++) {
        const char *eol = strchr(l, '\n');
        const char *hit = strstr(l, needle);
        if (hit && (!eol || hit < eol))
            return true;
    }
    return false;
}

/* One attempt of launch_start; *port_taken: QEMU could not bind the automatic
 * port it was given (another program took it after it was chosen). */
/* ------------------------------------------------------------ start: image locks, own QEMU */

/* Take the lock of every image dir in dirs shared (img build takes it
 * exclusively while it checks that no VM uses the image and replaces it), so a
 * build never replaces an image under a starting QEMU. Waits for a running
 * build until deadline_ms, then refuses naming the image. fds[i] receives
 * the descriptors (close_fds them once QMP answered: QEMU has the images open
 * then, and a build sees the VM running). */
static int lock_images_shared(const char *name, char **names, char **dirs, int *fds, long long deadline_ms,
                              qq_err *err)
{
    for (size_t i = 0; dirs && dirs[i]; i++) {
        _cleanup_free_ char *lockp = layout_path(dirs[i], LAYOUT_LOCK);
        lockfile_opts lo = { .shared = true, .deadline_ms = deadline_ms };
        fds[i] = lockfile_take(lockp, &lo, err);
        if (fds[i] < 0 && errno == EWOULDBLOCK)
            return qq_fail(err, QQ_EXIT_FAIL,
                           "%s uses image %s, which is being built (qqmgr img build %s): "
                           "start it again when the build is done", name, names[i], names[i]);
        if (fds[i] < 0)
            return -1;
    }
    return 0;
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

/* The records prepare_run rewrites (port, argv), as they were before it: an
 * earlier start's QEMU that takes the VM meanwhile keeps its own. */
typedef struct prev_records {
    char *text[2];   /* NULL: the file did not exist */
} prev_records;

static const layout_file prev_files[2] = { LAYOUT_SSH_PORT, LAYOUT_ARGV };

static void prev_save(const char *dir, prev_records *p)
{
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *path = layout_path(dir, prev_files[i]);
        p->text[i] = NULL;
        if (fs_read_file(path, &p->text[i], NULL, NULL) < 0)
            p->text[i] = NULL;
    }
}

static void prev_restore(const char *dir, const prev_records *p)
{
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *path = layout_path(dir, prev_files[i]);
        if (p->text[i])
            fs_write_atomic(path, p->text[i], strlen(p->text[i]), 0600, NULL);
        else
            unlink(path);
    }
}

static void prev_free(prev_records *p)
{
    for (size_t i = 0; i < 2; i++)
        free(p->text[i]);
}

/* After a start failed: remove the runtime files only when they are ours —
 * not when another QEMU holds the pid file (one an earlier, killed start
 * launched, which took the VM meanwhile). Returns that QEMU's pid, or 0. */
static pid_t remove_own_runtime(const char *dir)
{
    pid_t other = layout_pid_holder(dir);
    if (other > 0)
        return other;
    layout_remove_runtime(dir);
    return 0;
}

static int start_locked(const config *cfg, const char *name, const char *dir, long long t0, long long deadline,
                        int timeout_s,
                        const int *avoid, size_t navoid, const launch_opts *ro, launch_result *r, bool *port_taken,
                        qq_err *err);

static void unlink_freep(char **p)
{
    if (*p)
        unlink(*p);
    free(*p);
}

static int start_once(const config *cfg, const char *name, long long t0, long long deadline, int timeout_s,
                      const int *avoid,
                      size_t navoid, const launch_opts *ro, launch_result *r, bool *port_taken, qq_err *err)
{
    memset(r, 0, sizeof *r);
    if (check_name(cfg, name, err) < 0)
        return -1;
    /* arguments are checked before anything is created or locked */
    vm_spec s0;
    if (config_vm(cfg, name, 0, &s0, err) < 0)
        return -1;
    char **a0 = NULL;
    int rc = launch_argv(&s0, ro, &a0, err);
    launch_argv_free(a0);
    /* an image the arguments use must exist before QEMU runs */
    _cleanup_strv_ char **img_names = strv_dup(s0.images);
    _cleanup_strv_ char **img_dirs = NULL;
    size_t nimg = 0;
    for (char **im = s0.images; rc == 0 && *im; im++) {
        img_spec is;
        if (config_img(cfg, *im, &is, err) < 0) {
            rc = -1;
            break;
        }
        if (access(is.path, F_OK) != 0)
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s uses image %s, which is not built yet (%s): run `%s img build %s`",
                         name, *im, is.path, config_cli(cfg), *im);
        strv_push(&img_dirs, &nimg, xstrdup(is.dir));
        img_spec_free(&is);
    }
    _cleanup_free_ char *dir = strdup(s0.state_dir);
    vm_spec_free(&s0);
    if (rc < 0)
        return -1;
    _cleanup_close_ int lock = ro->lock_held ? -1 : lock_vm(name, dir, deadline, timeout_s, err);
    if (lock < 0 && !ro->lock_held)
        return -1;
    _cleanup_free_ int *img_locks = xcalloc(nimg + 1, sizeof *img_locks);
    for (size_t i = 0; i <= nimg; i++)
        img_locks[i] = -1;
    if (lock_images_shared(name, img_names, img_dirs, img_locks, deadline, err) < 0) {
        close_fds(img_locks, nimg);
        return -1;
    }
    rc = start_locked(cfg, name, dir, t0, deadline, timeout_s, avoid, navoid, ro, r, port_taken, err);
    close_fds(img_locks, nimg);
    return rc;
}

/* start_once, with the VM's lock and its images' shared locks held. */
static int start_locked(const config *cfg, const char *name, const char *dir, long long t0, long long deadline,
                        int timeout_s,
                        const int *avoid, size_t navoid, const launch_opts *ro, launch_result *r, bool *port_taken,
                        qq_err *err)
{
    vm_state st;
    /* a restore or save whose qqmgr died left the guest paused: repair it first */
    if (leftover_repair(dir, NULL, err) < 0)
        return -1;
    vm_probe(dir, true, &st);
    if (st.running) {
        r->already_running = true;
        r->pid = st.pid;
        r->ssh_port = st.ssh_port;
        snprintf(r->state, sizeof r->state, "%s", st.state);
        return 0;
    }

    _cleanup_(prev_free) prev_records prev;
    prev_save(dir, &prev);
    vm_spec spec = { 0 };
    char **argv = NULL;
    /* QEMU has the RAM file open once QMP answers (or never will): the name goes */
    __attribute__((cleanup(unlink_freep))) char *auto_ram = NULL;
    if (prepare_run(cfg, name, avoid, navoid, ro, &spec, &argv, &auto_ram, err) < 0) {
        launch_argv_free(argv);
        vm_spec_free(&spec);
        return -1;
    }
    r->ssh_port = spec.ssh_port_used > 0 ? spec.ssh_port_used : 0;
    bool auto_port = spec.ssh_port == SSH_PORT_AUTO;
    vm_spec_free(&spec);
    /* the [net] switches it joins run; held (shared) until QEMU runs */
    _cleanup_close_ int netlock = vnet_up(config_state_dir(cfg), argv, err);
    if (netlock == -1) {
        launch_argv_free(argv);
        return -1;
    }

    _cleanup_free_ char *outp = layout_path(dir, LAYOUT_STDOUT);
    _cleanup_free_ char *errp = layout_path(dir, LAYOUT_STDERR);
    _cleanup_free_ char *sock = layout_path(dir, LAYOUT_QMP);
    /* the logs of earlier runs are kept (a retry with another port is the
     * same run) */
    if (navoid == 0)
        layout_rotate_logs(dir);
    pid_t pid = launch_spawn(argv, config_dir(cfg), outp, errp, ro->die_with_qqmgr, err);
    launch_argv_free(argv);
    if (pid < 0)
        return -1;
    _cleanup_close_ int pidfd = proc_pidfd(pid, err);
    if (pidfd < 0)
        return -1;
    /* wake on: QEMU exits (pidfd), the QMP socket appears (inotify) */
    _cleanup_close_ int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ino >= 0)
        inotify_add_watch(ino, dir, IN_CREATE | IN_MOVED_TO);
    for (;;) {
        int status;
        if (proc_reap(pid, &status) == 1) {
            r->stderr_tail = stderr_tail(dir, 20);
            pid_t other = remove_own_runtime(dir);
            if (other > 0)
                prev_restore(dir, &prev);
            if (other > 0)
                return qq_fail(err, QQ_EXIT_FAIL,
                               "%s: another QEMU (pid %ld) took the VM while this start ran (launched by an "
                               "earlier start that was killed?); it is left running: `%s stop %s` ends it",
                               name, (long)other, config_cli(cfg), name);
            *port_taken = auto_port && r->ssh_port > 0 && hostfwd_failed(r->stderr_tail, r->ssh_port);
            if (WIFSIGNALED(status))
                return qq_fail(err, QQ_EXIT_FAIL, "%s: QEMU was killed by signal %d before QMP answered",
                               name, WTERMSIG(status));
            return qq_fail(err, QQ_EXIT_FAIL, "%s: QEMU exited with status %d before QMP answered (%s)", name,
                           WEXITSTATUS(status), errp);
        }
        long long left = deadline - clock_ms();
        int sig = sig_caught();
        if (left <= 0 || sig) {
            pid_t qemu = layout_pid_holder(dir);   /* under a wrapper, QEMU is not our child */
            if (qemu > 0 && qemu != pid)
                kill(qemu, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            if (remove_own_runtime(dir) > 0)
                prev_restore(dir, &prev);
            r->stderr_tail = stderr_tail(dir, 20);
            if (sig)
                return qq_fail(err, QQ_EXIT_FAIL, "%s: start interrupted by signal %d; QEMU was killed", name, sig);
            return qq_fail(err, QQ_EXIT_FAIL, "%s: QMP did not answer within %d s; QEMU was killed", name,
                           timeout_s);
        }
        qq_err e = { 0 };
        if (fs_exists(sock)) {
            qmp *q = qmp_open(sock, (int)left, &e);
            if (q) {
                json_t *res = qmp_execute(q, "query-status", NULL, (int)(left > 0 ? left : 1), &e);
                qmp_close(q);
                /* success only when the QEMU that answers is ours: the pid-file
                 * lock holder is our child (not one a killed start launched),
                 * or under --wrap the wrapper's descendant */
                if (res && !proc_descends_from(layout_pid_holder(dir), pid)) {
                    json_decref(res);
                    res = NULL;
                }
                if (res) {
                    const char *s = json_string_value(json_object_get(res, "status"));
                    snprintf(r->state, sizeof r->state, "%s", s ? s : "unknown");
                    json_decref(res);
                    pid_t qemu = layout_pid_holder(dir);   /* under --wrap, pid is the wrapper's */
                    r->pid = qemu > 0 ? qemu : pid;
                    r->mapped_ram = auto_ram || (ro->ram.file && !ro->ram.private_map && !ro->ram.plain);
                    r->seconds = (double)(clock_ms() - t0) / 1000.0;
                    return 0;
                }
            }
        }
        struct pollfd p[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = ino, .events = POLLIN } };
        /* the cap covers a connect refused before QEMU's listen() */
        poll(p, ino >= 0 ? 2 : 1, left < 20 ? (int)left : 20);
        if (ino >= 0 && (p[1].revents & POLLIN)) {
            char buf[4096];
            while (read(ino, buf, sizeof buf) > 0) {
            }
        }
    }
}

/* An automatic port another program took between qqmgr's choice and QEMU's
 * bind is retried with a new one (as syzkaller does), a few times. */
#define START_PORT_TRIES 8
#define START_DEFAULT_MS 60000

int launch_start(const config *cfg, const char *name, const launch_opts *o, launch_result *r, qq_err *err)
{
    static const launch_opts none = { 0 };
    if (!o)
        o = &none;
    int failed[START_PORT_TRIES];
    size_t nfailed = 0;
    long long now = clock_ms();
    long long deadline = o->deadline_ms > 0 ? o->deadline_ms : now + START_DEFAULT_MS;
    int timeout_s = (int)((deadline - now + 999) / 1000);   /* as the messages say it */
    /* SIGINT, SIGTERM, SIGHUP end the start: no QEMU is left half-started */
    _cleanup_(sig_release) sig_scope ss;
    sig_catch(&ss);
    for (;;) {
        bool port_taken = false;
        int rc = start_once(cfg, name, now, deadline, timeout_s, failed, nfailed, o, r, &port_taken, err);
        snprintf(r->instance, sizeof r->instance, "%s", name);
        if (r->ssh_port > 0)
            net_release_port(r->ssh_port);   /* QEMU holds it now, or it was given up */
        long long left = deadline - clock_ms();
        if (rc == 0 || !port_taken || nfailed + 1 >= START_PORT_TRIES || left < 1000 || sig_caught()) {
            if (rc < 0) {   /* a switch started for it alone stops again */
                _cleanup_free_ char *dir = config_vm_dir(cfg, name);
                vnet_down(config_state_dir(cfg), dir);
            }
            return rc;
        }
        failed[nfailed++] = r->ssh_port;
        free(r->stderr_tail);
    }
}

int launch_prepare(const config *cfg, const char *name, const launch_opts *o, char ***argv, qq_err *err)
{
    vm_spec spec = { 0 };
    /* QEMU runs under gdb, not under qqmgr: its own RAM (no tmpfs file to unlink) */
    launch_opts lo = o ? *o : (launch_opts){ 0 };
    int rc = prepare_run(cfg, name, NULL, 0, &lo, &spec, argv, NULL, err);
    vm_spec_free(&spec);
    int netlock = rc < 0 ? -2 : vnet_up(config_state_dir(cfg), *argv, err);
    if (netlock == -1)
        rc = -1;
    else if (netlock >= 0)
        close(netlock);
    if (rc < 0) {
        launch_argv_free(*argv);
        *argv = NULL;
    }
    return rc;
}
