/* img — raw and cloud-init image builders; see img.h. */
#include "img.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/report.h"
#include "../base/xalloc.h"
#include "../base/sbuf.h"
#include "../base/tmpl.h"
#include "../infra/sig.h"
#include "../infra/copy.h"
#include "../infra/download.h"
#include "../infra/fs.h"
#include "../infra/hash.h"
#include "../infra/iso.h"
#include "../infra/proc.h"
#include "../infra/qmp.h"
#include "launch.h"
#include "layout.h"
#include "snapshot.h"
#include "vm.h"

typedef struct build {
    const config *c;
    const img_build_opts *o;
    img_spec s;
    json_t *stages;          /* report array */
    bool tty;                /* progress lines on stderr */
    char *building;          /* <path>.building */
    long long deadline_ms;   /* --timeout: the whole build ends by then (clock_ms); 0 none */
} build;

/* What is left of --timeout for a child (proc_run's timeout_ms): 0 no bound. */
static int left_ms(const build *b)
{
    if (!b->deadline_ms)
        return 0;
    long long l = b->deadline_ms - clock_ms();
    return l < 1 ? 1 : l > 0x7fffffff ? 0x7fffffff : (int)l;
}

static void stage(build *b, const char *name, const char *action, const char *detail)
{
    json_t *o = json_pack("{s:s, s:s}", "stage", name, "action", action);
    if (detail)
        json_object_set_new(o, "detail", json_string(detail));
    json_array_append_new(b->stages, o);
    if (b->tty)
        report_note("img %s: %-8s %s%s%s", b->s.name, name, action, detail ? ": " : "", detail ? detail : "");
}

/* ---------------------------------------------------------------- running */

static void debug_argv(const build *b, char *const *argv)
{
    if (b->o->debug)
        proc_echo(argv);
}

/* Run qemu-img; failure → "img NAME: what: <qemu-img's last stderr line>". */
static int qemu_img(build *b, const char *what, char *const *args, sbuf *out, qq_err *err)
{
    const char *bin = config_qemu_img(b->c);
    size_t n = 0;
    while (args[n])
        n++;
    _cleanup_free_ char **argv = calloc(n + 2, sizeof *argv);
    argv[0] = (char *)bin;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = args[i];
    debug_argv(b, argv);
    _cleanup_sbuf_ sbuf o = SBUF_INIT, e = SBUF_INIT;
    proc_run_opts po = { .out = out ? out : &o, .err = &e, .null_stdio = true, .timeout_ms = left_ms(b) };
    proc_result pr;
    mode_t um = umask(077);   /* the images it makes are private */
    int rc = proc_run(argv, &po, &pr, err);
    umask(um);
    if (rc < 0) {
        qq_err_prefix(err, "img %s: %s", b->s.name, what);
        return -1;
    }
    if (pr.timed_out)
        return qq_fail(err, QQ_EXIT_FAIL, "img %s: %s: --timeout %d s ran out (%s killed)", b->s.name, what,
                       b->o->timeout_s, bin);
    int st = pr.status;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *msg = e.buf ? e.buf : (char *)"";
        while (e.len && (msg[e.len - 1] == '\n' || msg[e.len - 1] == ' '))
            msg[--e.len] = '\0';
        char *nl = strrchr(msg, '\n');
        return qq_fail(err, QQ_EXIT_FAIL, "img %s: %s: %s failed: %s", b->s.name, what, bin,
                       nl ? nl + 1 : msg[0] ? msg : "no message");
    }
    return 0;
}

/* ------------------------------------------------------------------ stamps */

static bool stamp_matches(const char *path, const char *hex)
{
    _cleanup_free_ char *s = NULL;
    if (fs_read_file(path, &s, NULL, NULL) < 0)
        return false;
    return strncmp(s, hex, HASH_HEX_LEN) == 0;
}

static int stamp_write(const char *path, const char *hex, json_t *inputs, qq_err *err)
{
    _cleanup_free_ char *doc = json_dumps(inputs, JSON_COMPACT | JSON_PRESERVE_ORDER);
    _cleanup_free_ char *text = xasprintf("%s\n%s\n", hex, doc ? doc : "");
    return fs_write_atomic(path, text, strlen(text), 0600, err);
}

static int stamp_of(json_t *inputs, char hex[HASH_HEX_LEN + 1], qq_err *err)
{
    _cleanup_free_ char *doc = json_dumps(inputs, JSON_COMPACT | JSON_PRESERVE_ORDER);
    return hash_bytes(doc, strlen(doc), hex, err);
}

char *img_running_user(const config *c, const char *image)
{
    for (size_t i = 0; i < config_vm_count(c); i++) {
        const char *vm = config_vm_name(c, i);
        _cleanup_free_ char *dir = config_vm_dir(c, vm);
        vm_state st;
        if (!dir || vm_probe(dir, false, &st) < 0 || !st.running)
            continue;
        vm_spec spec = { 0 };
        qq_err ignored = { 0 };
        if (config_vm(c, vm, st.ssh_port, &spec, &ignored) < 0)
            continue;           /* cannot tell what it uses */
        bool uses = false;
        for (char **p = spec.images; p && *p; p++)
            uses = uses || strcmp(*p, image) == 0;
        vm_spec_free(&spec);
        if (uses)
            return xstrdup(vm);
    }
    return NULL;
}

/* A build replaces the image: refuse while a running VM uses it. */
static int refuse_if_in_use(build *b, qq_err *err)
{
    /* snapshots live inside the disk: a rebuild loses them (unless forced) */
    if (!b->o->force && fs_exists(b->s.path)) {
        _cleanup_free_ char *snaps = snap_names_in_image(b->c, b->s.path);
        if (snaps) {
            return qq_fail(err, QQ_EXIT_FAIL,
                           "img %s: its disk holds snapshots that a rebuild would lose: %s "
                           "(`%s img build %s --force` rebuilds anyway)",
                           b->s.name, snaps, config_cli(b->c), b->s.name);
        }
    }
    _cleanup_free_ char *vm = img_running_user(b->c, b->s.name);
    if (vm)
        return qq_fail(err, QQ_EXIT_FAIL,
                       "img %s: VM %s is running and uses this image; stop it first: %s stop %s",
                       b->s.name, vm, config_cli(b->c), vm);
    return 0;
}

/* A new image means new host keys in the guest: the VMs that use it forget
 * the ones they pinned. */
static void forget_host_keys(build *b)
{
    for (size_t i = 0; i < config_vm_count(b->c); i++) {
        const char *vm = config_vm_name(b->c, i);
        _cleanup_free_ char *dir = config_vm_dir(b->c, vm);
        vm_spec spec = { 0 };
        qq_err ignored = { 0 };
        if (config_vm(b->c, vm, layout_read_port(dir), &spec, &ignored) < 0)
            continue;
        bool uses = false;
        for (char **p = spec.images; p && *p; p++)
            uses = uses || strcmp(*p, b->s.name) == 0;
        vm_spec_free(&spec);
        if (uses && layout_forget_host_keys(dir) && b->tty)
            report_note("img %s: VM %s's pinned ssh host keys forgotten (a new image, new keys)", b->s.name, vm);
    }
}

/* ------------------------------------------------------------------- raw */

static int build_raw(build *b, bool *up_to_date, qq_err *err)
{
    const char *format = b->s.format;
    _cleanup_json_ json_t *inputs = json_pack("{s:s, s:I}", "builder", "raw", "size",
                                              (json_int_t)b->s.size_bytes);
    if (strcmp(format, "raw") != 0)   /* a raw image's stamp stays as it was */
        json_object_set_new(inputs, "format", json_string(format));
    char hex[HASH_HEX_LEN + 1];
    if (stamp_of(inputs, hex, err) < 0)
        return -1;
    _cleanup_free_ char *stamp = layout_beside(b->s.path, ".stamp");
    if (!b->o->force && fs_exists(b->s.path) && stamp_matches(stamp, hex)) {
        *up_to_date = true;
        stage(b, "create", "skipped", NULL);
        return 0;
    }
    if (refuse_if_in_use(b, err) < 0)
        return -1;
    char size[32];
    snprintf(size, sizeof size, "%llu", b->s.size_bytes);
    fs_remove(b->building, NULL);
    char *args[] = { "create", "-q", "-f", (char *)format, b->building, size, NULL };
    if (qemu_img(b, "create", args, NULL, err) < 0) {
        fs_remove(b->building, NULL);
        return -1;
    }
    if (rename(b->building, b->s.path) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "img %s: %s: %s", b->s.name, b->s.path, strerror(errno));
    if (stamp_write(stamp, hex, inputs, err) < 0)
        return -1;
    stage(b, "create", "done", NULL);
    return 0;
}

/* ------------------------------------------------------------- cloud-init */

/* qemu-img info → format and virtual size. */
static int img_info(build *b, const char *path, char **fmt, unsigned long long *vsize, qq_err *err)
{
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    char *args[] = { "info", "--output=json", (char *)path, NULL };
    if (qemu_img(b, "info", args, &out, err) < 0)
        return -1;
    _cleanup_json_ json_t *j = json_loads(sbuf_str(&out), 0, NULL);
    const char *f = json_string_value(json_object_get(j, "format"));
    json_t *v = json_object_get(j, "virtual-size");
    if (!f || !json_is_integer(v))
        return qq_fail(err, QQ_EXIT_FAIL, "img %s: cannot read qemu-img info of %s", b->s.name, path);
    *fmt = strdup(f);
    *vsize = (unsigned long long)json_integer_value(v);
    return 0;
}

/* The env after env_hook (new reference). */
static json_t *run_env_hook(build *b, qq_err *err)
{
    json_t *env = json_deep_copy(b->s.env);
    if (!b->s.hook_argv)
        return env;
    _cleanup_json_ json_t *in_env = env;
    _cleanup_free_ char *line = json_dumps(in_env, JSON_COMPACT | JSON_PRESERVE_ORDER);
    _cleanup_free_ char *input = xasprintf("%s\n", line);
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    char **argv = b->s.hook_argv;
    const char *script = argv[strv_len(argv) - 1];
    debug_argv(b, argv);
    proc_run_opts po = { .cwd = config_dir(b->c), .in = input, .out = &out, .timeout_ms = left_ms(b),
                         .own_group = b->deadline_ms != 0 };
    proc_result pr;
    if (proc_run(argv, &po, &pr, err) < 0) {
        qq_err_prefix(err, "img %s: env_hook", b->s.name);
        return NULL;
    }
    if (pr.timed_out) {
        qq_fail(err, QQ_EXIT_FAIL, "img %s: env_hook %s: --timeout %d s ran out (killed)", b->s.name, script,
                b->o->timeout_s);
        return NULL;
    }
    int st = pr.status;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        _cleanup_sbuf_ sbuf interp = SBUF_INIT;
        for (char **w = argv; w[1]; w++)
            sbuf_addf(&interp, "%s%s", w == argv ? "" : " ", *w);
        qq_fail(err, QQ_EXIT_FAIL, "img %s: env_hook %s %s failed (%s %d)", b->s.name, sbuf_str(&interp), script,
                WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        return NULL;
    }
    /* the last non-empty line of stdout */
    char *s = out.buf ? out.buf : (char *)"";
    size_t end = out.len;
    while (end && (s[end - 1] == '\n' || s[end - 1] == '\r' || s[end - 1] == ' ' || s[end - 1] == '\t'))
        end--;
    size_t start = end;
    while (start && s[start - 1] != '\n')
        start--;
    s[end] = '\0';
    json_error_t je;
    json_t *newenv = json_loads(s + start, 0, &je);
    if (!newenv || !json_is_object(newenv)) {
        if (newenv)
            json_decref(newenv);
        qq_fail(err, QQ_EXIT_FAIL, "img %s: env_hook %s: its last output line is not a JSON object: %.200s",
                b->s.name, script, s + start);
        return NULL;
    }
    return newenv;
}

static char *read_template(build *b, const char *rel, qq_err *err)
{
    _cleanup_free_ char *p = rel[0] == '/' ? strdup(rel) : xasprintf("%s/%s", config_dir(b->c), rel);
    char *text = NULL;
    if (fs_read_file(p, &text, NULL, err) < 0) {
        qq_err_prefix(err, "img %s: template", b->s.name);
        return NULL;
    }
    return text;
}


/* Ask the build QEMU for its run state (connecting on first use; QEMU makes
 * the socket a moment after it starts). Returns the state (caller frees) or
 * NULL when QMP is not (or no longer) reachable. */
static char *build_run_state(qmp **q, const char *sock, bool *gone)
{
    qq_err e = { 0 };
    if (!*q) {
        if (*gone || !fs_exists(sock))
            return NULL;
        *q = qmp_open(sock, 2000, &e);
        if (!*q)
            return NULL;
    }
    json_t *r = qmp_execute(*q, "query-status", NULL, 2000, &e);
    if (!r) {
        /* QEMU is exiting (or wedged): its exit or the timeout decides */
        qmp_close(*q);
        *q = NULL;
        *gone = true;
        return NULL;
    }
    const char *st = json_string_value(json_object_get(r, "status"));
    char *out = st ? strdup(st) : NULL;
    json_decref(r);
    return out;
}

/* End the build QEMU: SIGTERM, then SIGKILL after 5 s; reap it. */
static void end_qemu(pid_t pid, int pfd)
{
    kill(pid, SIGTERM);
    long long kd = clock_ms() + 5000;
    while (clock_ms() < kd && !proc_reap(pid, NULL)) {
        if (pfd >= 0)
            proc_wait_pidfd(pfd, 100);
        else
            usleep(50000);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Run QEMU with the build args until it exits; copy its log to the terminal.
 * QEMU runs in its own session (a terminal's Ctrl-C reaches only us, and we
 * end it) and dies with us (kill -9 of qqmgr leaves no QEMU). A QMP monitor
 * is added so a guest stuck in internal-error fails the build at once. */
static int boot(build *b, char **args, const char *log, int timeout_s, qq_err *err)
{
    _cleanup_free_ char *sock = layout_build_qmp(b->s.dir, err);
    if (!sock)
        return -1;
    _cleanup_strv_ char **argv = launch_build_argv(config_qemu_bin(b->c), args, sock);
    debug_argv(b, argv);

    sig_scope ss;
    sig_catch(&ss);

    int rc = -1;
    qmp *q = NULL;
    unlink(sock);
    pid_t pid = launch_spawn(argv, config_dir(b->c), log, log, true, err);
    if (pid < 0) {
        qq_err_prefix(err, "img %s: boot", b->s.name);
        goto out;
    }
    {
        _cleanup_close_ int pfd = proc_pidfd(pid, NULL);
        _cleanup_close_ int lfd = open(log, O_RDONLY | O_CLOEXEC);
        bool show = !b->o->quiet && report_watched();
        long long deadline = timeout_s > 0 ? clock_ms() + timeout_s * 1000LL : -1;
        if (b->deadline_ms && (deadline < 0 || b->deadline_ms < deadline))
            deadline = b->deadline_ms;   /* what --timeout left of the whole build */
        long long next_query = clock_ms() + 100;
        bool qmp_gone = false;
        char buf[8192];
        int st = 0;
        for (;;) {
            bool ended;
            if (pfd >= 0) {
                ended = proc_wait_pidfd(pfd, 100) == 1 && proc_reap(pid, &st);
            } else {
                ended = proc_reap(pid, &st);
                if (!ended)
                    usleep(100000);
            }
            if (show && lfd >= 0) {
                ssize_t k;
                while ((k = read(lfd, buf, sizeof buf)) > 0)
                    report_output(buf, (size_t)k);
            }
            if (ended)
                break;
            if (sig_caught()) {
                end_qemu(pid, pfd);
                qq_fail(err, QQ_EXIT_FAIL, "img %s: build interrupted by signal %d (QEMU ended; previous image kept)",
                        b->s.name, (int)sig_caught());
                goto out;
            }
            if (deadline >= 0 && clock_ms() >= deadline) {
                end_qemu(pid, pfd);
                qq_fail(err, QQ_EXIT_FAIL,
                        "img %s: the build boot did not power off within %d s (QEMU killed; see %s)",
                        b->s.name, timeout_s, log);
                goto out;
            }
            if (clock_ms() >= next_query) {
                next_query = clock_ms() + 500;
                _cleanup_free_ char *state = build_run_state(&q, sock, &qmp_gone);
                if (state && (strcmp(state, "internal-error") == 0 || strcmp(state, "guest-panicked") == 0)) {
                    end_qemu(pid, pfd);
                    qq_fail(err, QQ_EXIT_FAIL, "img %s: the guest stopped in state %s during the build boot "
                            "(QEMU killed; see %s)", b->s.name, state, log);
                    goto out;
                }
                /* a guest kernel that panicked never powers off (its console may be in the log) */
                _cleanup_sbuf_ sbuf tail = SBUF_INIT;
                char why[200];
                if (fs_tail(log, 10, &tail, NULL) == 0 && vm_console_panic(sbuf_str(&tail), why, sizeof why)) {
                    end_qemu(pid, pfd);
                    qq_fail(err, QQ_EXIT_FAIL, "img %s: the guest kernel panicked during the build boot (\"Kernel "
                            "panic - not syncing: %s\"; QEMU killed; see %s)", b->s.name, why, log);
                    goto out;
                }
            }
        }
        if (sig_caught()) {
            qq_fail(err, QQ_EXIT_FAIL, "img %s: build interrupted by signal %d (previous image kept)",
                    b->s.name, (int)sig_caught());
            goto out;
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            _cleanup_sbuf_ sbuf tail = SBUF_INIT;
            fs_tail(log, 1, &tail, NULL);
            while (tail.len && tail.buf[tail.len - 1] == '\n')
                tail.buf[--tail.len] = '\0';
            qq_fail(err, QQ_EXIT_FAIL, "img %s: QEMU %s %d during the build boot (see %s)%s%s", b->s.name,
                    WIFEXITED(st) ? "exited with status" : "was killed by signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), log, tail.len ? ": " : "",
                    sbuf_str(&tail));
            goto out;
        }
    }
    rc = 0;
out:
    qmp_close(q);
    unlink(sock);
    sig_release(&ss);
    return rc;
}

/* Remove base copies other than keep. */
static void remove_old_bases(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (layout_is_base_copy(e->d_name) && strcmp(e->d_name, keep) != 0) {
            _cleanup_free_ char *p = xasprintf("%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

/* A cloud-init build: what the planning steps work out (every input of the
 * stamps) and what the build stages hand on to each other. */
typedef struct ci {
    build *b;
    char base_sum[HASH_HEX_LEN + 1];    /* lower case; "" when base_img has only a sha512sum */
    char base_sum512[HASH512_HEX_LEN + 1]; /* lower case; "" when it has none */
    char *iso, *cidir, *log;
    json_t *data;                       /* env (after env_hook) + img_self + cloud_init_iso */
    sbuf *rendered;                     /* per template */
    json_t *files;                      /* ISO name → sha256 of the rendered content */
    json_t *srcsum;                     /* ISO name → sha256sum of a source */
    char **args;                        /* rendered build_args */
    size_t nargs;
    char copy_hex[HASH_HEX_LEN + 1], iso_hex[HASH_HEX_LEN + 1], final_hex[HASH_HEX_LEN + 1];
    json_t *iso_in, *final_in;          /* stamp inputs */
    char *copy_name, *copy, *final_stamp;
    char *cached;                       /* the base image in the download cache */
    char *fmt;                          /* the copy's format */
    iso_entry *entries;                 /* files of the ISO */
    char **paths;
    size_t nent;
    int dflags;
} ci;

static void ci_free(ci *x)
{
    free(x->iso);
    free(x->cidir);
    free(x->log);
    if (x->data)
        json_decref(x->data);
    for (size_t i = 0; x->rendered && i < x->b->s.ntemplates; i++)
        sbuf_free(&x->rendered[i]);
    free(x->rendered);
    json_decref(x->files);
    json_decref(x->srcsum);
    strv_free(x->args);
    json_decref(x->iso_in);
    json_decref(x->final_in);
    free(x->copy_name);
    free(x->copy);
    free(x->final_stamp);
    free(x->cached);
    free(x->fmt);
    free(x->entries);
    strv_free(x->paths);
}

/* ---- planning: the inputs, computed before anything is built */

static int plan_env(ci *x, qq_err *err)
{
    build *b = x->b;
    _cleanup_json_ json_t *env = run_env_hook(b, err);
    if (!env)
        return -1;
    stage(b, "env", b->s.hook_argv ? "done" : "skipped", NULL);
    x->data = json_deep_copy(env);
    json_object_set_new(x->data, "img_self", json_string(b->building));
    json_object_set_new(x->data, "cloud_init_iso", json_string(x->iso));
    return 0;
}

static int plan_templates(ci *x, qq_err *err)
{
    build *b = x->b;
    x->rendered = xcalloc(b->s.ntemplates + 1, sizeof *x->rendered);
    x->files = json_object();
    for (size_t i = 0; i < b->s.ntemplates; i++) {
        const img_template *t = &b->s.templates[i];
        _cleanup_free_ char *text = read_template(b, t->template, err);
        if (!text)
            return -1;
        tmpl_error te;
        if (tmpl_render(t->template, text, x->data, &x->rendered[i], &te) < 0)
            return qq_fail(err, QQ_EXIT_USAGE, "img %s: templates[%zu] (%s): %s", b->s.name, i, t->template,
                           te.msg);
        char h[HASH_HEX_LEN + 1];
        if (hash_bytes(sbuf_str(&x->rendered[i]), x->rendered[i].len, h, err) < 0)
            return -1;
        json_object_set_new(x->files, t->output, json_string(h));
    }
    return 0;
}

/* What a stamp records of a download's sums: the sha256sum as written (as
 * before sha512sum existed), with " sha512:<sum>" when a sha512sum is given. */
static json_t *sums_of(const img_download *d)
{
    if (!d->sha512sum)
        return json_string(d->sha256sum);
    _cleanup_free_ char *s = xasprintf("%s%ssha512:%s", d->sha256sum ? d->sha256sum : "", d->sha256sum ? " " : "",
                                       d->sha512sum);
    return json_string(s);
}

static int plan_sources(ci *x, qq_err *err)
{
    build *b = x->b;
    x->srcsum = json_object();
    for (size_t i = 0; i < b->s.nsources; i++) {
        const img_download *d = &b->s.sources[i];
        if (json_object_get(x->files, d->filename) || json_object_get(x->srcsum, d->filename))
            return qq_fail(err, QQ_EXIT_USAGE, "img %s: two files named \"%s\" for the ISO", b->s.name,
                           d->filename);
        json_object_set_new(x->srcsum, d->filename, sums_of(d));
    }
    return 0;
}

/* Each build_args element is exactly one argument, rendered, never split
 * (the original's exec.Command(bin, args...)). */
static int plan_args(ci *x, qq_err *err)
{
    build *b = x->b;
    x->args = xcalloc(1, sizeof *x->args);
    for (size_t i = 0; i < b->s.nbuild_args; i++) {
        _cleanup_sbuf_ sbuf out = SBUF_INIT;
        tmpl_error te;
        if (tmpl_render("build_args", b->s.build_args[i], x->data, &out, &te) < 0)
            return qq_fail(err, QQ_EXIT_USAGE, "img %s: build_args[%zu]: %s", b->s.name, i, te.msg);
        strv_push(&x->args, &x->nargs, sbuf_steal(&out));
    }
    return 0;
}

static int plan_stamps(ci *x, qq_err *err)
{
    build *b = x->b;
    json_t *jargs = json_array();
    for (size_t k = 0; k < x->nargs; k++)
        json_array_append_new(jargs, json_string(x->args[k]));
    _cleanup_json_ json_t *copy_in = json_pack("{s:s, s:I}", "base", x->base_sum, "size",
                                               (json_int_t)b->s.size_bytes);
    if (x->base_sum512[0])    /* stamps of sha256-only configs stay as they were */
        json_object_set_new(copy_in, "base_sha512", json_string(x->base_sum512));
    if (stamp_of(copy_in, x->copy_hex, err) < 0) {
        json_decref(jargs);
        return -1;
    }
    x->copy_name = layout_base_copy_name(x->copy_hex);
    x->copy = xasprintf("%s/%s", b->s.dir, x->copy_name);
    x->iso_in = json_pack("{s:O, s:O}", "files", x->files, "sources", x->srcsum);
    if (stamp_of(x->iso_in, x->iso_hex, err) < 0) {
        json_decref(jargs);
        return -1;
    }
    x->final_in = json_pack("{s:s, s:s, s:s, s:s, s:o}", "builder", "cloud-init", "copy", x->copy_hex, "iso",
                            x->iso_hex, "qemu", config_qemu_bin(b->c), "args", jargs);
    if (stamp_of(x->final_in, x->final_hex, err) < 0)
        return -1;
    x->final_stamp = layout_beside(b->s.path, ".stamp");
    return 0;
}

/* ---- the build stages, run in order once the image is out of date */

static int stage_base(ci *x, qq_err *err)
{
    build *b = x->b;
    dl_result dr;
    _cleanup_free_ char *url = download_url(b->s.base_img.url, config_dir(b->c));
    dl_opts o = { .flags = x->dflags, .deadline_ms = b->deadline_ms,
                  .sha512 = x->base_sum512[0] ? x->base_sum512 : NULL };
    x->cached = download_fetch(url, x->base_sum[0] ? x->base_sum : NULL, &o, &dr, err);
    if (!x->cached) {
        qq_err_prefix(err, "img %s: base_img", b->s.name);
        return -1;
    }
    stage(b, "base", dr.fetched ? "downloaded" : "cached", x->cached);
    return 0;
}

/* A sparse copy of the base, resized to img_size. */
static int stage_copy(ci *x, qq_err *err)
{
    build *b = x->b;
    unsigned long long vsize = 0;
    if (!b->o->force && fs_exists(x->copy)) {
        stage(b, "copy", "skipped", x->copy);
    } else {
        _cleanup_free_ char *tmp = layout_beside(x->copy, ".tmp");
        _cleanup_free_ char *fmt = NULL;
        if (copy_sparse(x->cached, tmp, NULL, err) < 0 || img_info(b, tmp, &fmt, &vsize, err) < 0) {
            qq_err_prefix(err, "img %s: copy", b->s.name);
            unlink(tmp);
            return -1;
        }
        if (b->s.size_bytes < vsize) {
            unlink(tmp);
            return qq_fail(err, QQ_EXIT_USAGE, "img %s: img_size %s is smaller than the base image (%llu bytes)",
                           b->s.name, b->s.img_size, vsize);
        }
        if (b->s.size_bytes > vsize) {
            char size[32];
            snprintf(size, sizeof size, "%llu", b->s.size_bytes);
            char *rargs[] = { "resize", "-q", "-f", fmt, tmp, size, NULL };
            if (qemu_img(b, "resize", rargs, NULL, err) < 0) {
                unlink(tmp);
                return -1;
            }
        }
        if (rename(tmp, x->copy) < 0) {
            qq_fail(err, QQ_EXIT_FAIL, "img %s: %s: %s", b->s.name, x->copy, strerror(errno));
            unlink(tmp);
            return -1;
        }
        stage(b, "copy", "done", x->copy);
    }
    return img_info(b, x->copy, &x->fmt, &vsize, err);
}

static int stage_render(ci *x, qq_err *err)
{
    build *b = x->b;
    if (layout_make_dir(x->cidir, err) < 0)
        return -1;
    size_t n = b->s.ntemplates + b->s.nsources;
    x->entries = xcalloc(n + 1, sizeof *x->entries);
    x->paths = xcalloc(n + 1, sizeof *x->paths);
    for (size_t k = 0; k < b->s.ntemplates; k++) {
        const char *outname = b->s.templates[k].output;
        x->paths[x->nent] = xasprintf("%s/%s", x->cidir, outname);
        if (fs_write_atomic(x->paths[x->nent], sbuf_str(&x->rendered[k]), x->rendered[k].len, 0600, err) < 0)
            return -1;
        x->entries[x->nent].name = outname;
        x->entries[x->nent].path = x->paths[x->nent];
        x->nent++;
    }
    stage(b, "render", b->s.ntemplates ? "done" : "skipped", NULL);
    return 0;
}

static int stage_sources(ci *x, qq_err *err)
{
    build *b = x->b;
    size_t fetched = 0;
    for (size_t i = 0; i < b->s.nsources; i++) {
        const img_download *d = &b->s.sources[i];
        dl_result dr;
        _cleanup_free_ char *url = download_url(d->url, config_dir(b->c));
        dl_opts o = { .label = d->filename, .flags = x->dflags, .deadline_ms = b->deadline_ms, .sha512 = d->sha512sum };
        x->paths[x->nent] = download_fetch(url, d->sha256sum, &o, &dr, err);
        if (!x->paths[x->nent]) {
            qq_err_prefix(err, "img %s: sources[%zu]", b->s.name, i);
            return -1;
        }
        fetched += dr.fetched;
        x->entries[x->nent].name = d->filename;
        x->entries[x->nent].path = x->paths[x->nent];
        x->nent++;
    }
    if (b->s.nsources)
        stage(b, "sources", fetched ? "downloaded" : "cached", NULL);
    return 0;
}

static int stage_iso(ci *x, qq_err *err)
{
    build *b = x->b;
    _cleanup_free_ char *iso_stamp = layout_beside(x->iso, ".stamp");
    if (!b->o->force && fs_exists(x->iso) && stamp_matches(iso_stamp, x->iso_hex)) {
        stage(b, "iso", "skipped", x->iso);
        return 0;
    }
    if (iso_write_cidata(x->iso, "cidata", x->entries, x->nent, err) < 0) {
        qq_err_prefix(err, "img %s: iso", b->s.name);
        return -1;
    }
    if (stamp_write(iso_stamp, x->iso_hex, x->iso_in, err) < 0)
        return -1;
    stage(b, "iso", "done", x->iso);
    return 0;
}

/* A qcow2 overlay on the copy, booted with build_args until the guest powers
 * off; then it replaces the image (rename) and the stamp is written. */
static int stage_boot(ci *x, qq_err *err)
{
    build *b = x->b;
    fs_remove(b->building, NULL);
    char *oargs[] = { "create", "-q", "-f", "qcow2", "-b", x->copy, "-F", x->fmt, b->building, NULL };
    if (qemu_img(b, "overlay", oargs, NULL, err) < 0)
        return -1;
    int timeout = b->o->timeout_s > 0 ? b->o->timeout_s : b->s.build_timeout;
    if (boot(b, x->args, x->log, timeout, err) < 0) {
        fs_remove(b->building, NULL);
        return -1;
    }
    if (rename(b->building, b->s.path) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "img %s: %s: %s", b->s.name, b->s.path, strerror(errno));
    if (stamp_write(x->final_stamp, x->final_hex, x->final_in, err) < 0)
        return -1;
    stage(b, "boot", "done", x->log);
    remove_old_bases(b->s.dir, x->copy_name);
    return 0;
}

typedef int (*ci_step)(ci *x, qq_err *err);

/* Planning: env → templates → sources → args → stamps; every input of the
 * final stamp is known before anything is downloaded or built. */
static const ci_step ci_plan[] = { plan_env, plan_templates, plan_sources, plan_args, plan_stamps };

/* The stages of an out-of-date image, in order (each reports itself). */
static const ci_step ci_stages[] = { stage_base, stage_copy, stage_render, stage_sources, stage_iso, stage_boot };

static int build_cloud_init(build *b, bool *up_to_date, qq_err *err)
{
    _cleanup_(ci_free) ci x = { .b = b, .dflags = b->o->quiet ? DL_QUIET : 0 };
    snprintf(x.base_sum, sizeof x.base_sum, "%s", b->s.base_img.sha256sum ? b->s.base_img.sha256sum : "");
    snprintf(x.base_sum512, sizeof x.base_sum512, "%s", b->s.base_img.sha512sum ? b->s.base_img.sha512sum : "");
    for (char *p = x.base_sum; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    for (char *p = x.base_sum512; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    x.iso = layout_path(b->s.dir, LAYOUT_IMG_ISO);
    x.cidir = layout_path(b->s.dir, LAYOUT_IMG_CIDATA);
    x.log = layout_path(b->s.dir, LAYOUT_IMG_BUILD_LOG);
    for (size_t i = 0; i < sizeof ci_plan / sizeof *ci_plan; i++)
        if (ci_plan[i](&x, err) < 0)
            return -1;
    if (!b->o->force && fs_exists(b->s.path) && fs_exists(x.copy) && stamp_matches(x.final_stamp, x.final_hex)) {
        *up_to_date = true;
        stage(b, "boot", "skipped", NULL);
        return 0;
    }
    if (refuse_if_in_use(b, err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof ci_stages / sizeof *ci_stages; i++)
        if (ci_stages[i](&x, err) < 0)
            return -1;
    return 0;
}

int img_build(const config *c, const char *name, const img_build_opts *opts, json_t **report,
              qq_err *err)
{
    static const img_build_opts dflt = { 0 };
    build b = { .c = c, .o = opts ? opts : &dflt };
    if (b.o->timeout_s > 0)
        b.deadline_ms = clock_ms() + b.o->timeout_s * 1000LL;
    *report = NULL;
    if (config_img(c, name, &b.s, err) < 0)
        return -1;
    b.tty = !b.o->quiet && report_watched();
    b.stages = json_array();
    b.building = layout_beside(b.s.path, ".building");
    int rc = -1;
    bool up = false;
    int lfd = layout_lock(b.s.dir, 0, NULL);
    if (lfd < 0 && errno == EWOULDBLOCK) {
        if (b.tty)
            report_note("img %s: waiting for another build of this image, or a start of a VM using it", name);
        lfd = layout_lock(b.s.dir, LOCKFILE_FOREVER, err);
    } else if (lfd < 0) {
        lfd = layout_lock(b.s.dir, LOCKFILE_FOREVER, err);
    }
    if (lfd < 0)
        goto out;
    unlink(b.building);        /* left by a build that was killed: we hold the lock */
    rc = b.s.cloud_init ? build_cloud_init(&b, &up, err) : build_raw(&b, &up, err);
    if (rc == 0 && !up)
        forget_host_keys(&b);
    close(lfd);
out:
    *report = json_pack("{s:s, s:s, s:s, s:b, s:O}", "image", b.s.name, "builder", b.s.builder, "path",
                        b.s.path, "up_to_date", up && rc == 0, "stages", b.stages);
    json_decref(b.stages);
    free(b.building);
    img_spec_free(&b.s);
    return rc;
}
