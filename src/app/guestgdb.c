/* guestgdb — see guestgdb.h. */
#include "guestgdb.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/report.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "../infra/lockfile.h"
#include "../infra/proc.h"
#include "running.h"
#include "layout.h"

#define SUN_PATH_MAX 107

static const char *option_name(const char *a)
{
    if (a[0] != '-')
        return NULL;
    return a + 1 + (a[1] == '-');
}

int guestgdb_user_option(const vm_spec *s)
{
    int last = -1;
    for (size_t i = 0; i < s->nargs; i++) {
        const char *o = option_name(s->args[i]);
        if (o && (strcmp(o, "s") == 0 || (strcmp(o, "gdb") == 0 && i + 1 < s->nargs)))
            last = (int)i;
    }
    return last;
}

/* The value up to its first lone comma, with ",," unescaped. */
static char *first_field(const char *v)
{
    sbuf b = SBUF_INIT;
    for (const char *p = v; *p; p++) {
        if (*p == ',') {
            if (p[1] != ',')
                break;
            p++;
        }
        sbuf_addc(&b, *p);
    }
    return sbuf_steal(&b);
}

static bool all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

static bool valid_port(const char *s)
{
    return all_digits(s) && strlen(s) <= 5 && atol(s) > 0 && atol(s) <= 65535;
}

char *guestgdb_target(const vm_spec *s, qq_err *err)
{
    int i = guestgdb_user_option(s);
    if (i < 0) {   /* ours: where QEMU was told it is (a short alias of the state dir when needed) */
        _cleanup_free_ char *sd = layout_socket_dir(s->state_dir, false, NULL);
        return layout_path(sd ? sd : s->state_dir, LAYOUT_GDB_SOCKET);
    }
    if (strcmp(option_name(s->args[i]), "s") == 0)
        return xstrdup("localhost:1234");
    const char *val = s->args[i + 1];
    _cleanup_free_ char *dev = first_field(val);
    if (valid_port(dev))
        return xasprintf("localhost:%s", dev);
    if (strncmp(dev, "tcp:", 4) == 0) {
        const char *hp = dev + 4, *colon = strrchr(hp, ':');
        if (colon && valid_port(colon + 1)) {
            int hl = (int)(colon - hp);
            bool any = hl == 0 || (hl == 7 && strncmp(hp, "0.0.0.0", 7) == 0);
            return xasprintf("%.*s:%s", any ? 9 : hl, any ? "localhost" : hp, colon + 1);
        }
    } else if (strncmp(dev, "unix:", 5) == 0 && dev[5]) {
        const char *p = dev + 5;
        if (p[0] == '/' || !s->cfg || !config_dir(s->cfg))
            return xstrdup(p);
        return xasprintf("%s/%s", config_dir(s->cfg), p);
    }
    char where[PATH_MAX + 64] = "";
    if (s->cfg && s->arg_where) {
        config_where(s->cfg, s->arg_where[i], where, sizeof where);
        snprintf(where + strlen(where), sizeof where - strlen(where), ": %s: ", s->arg_where[i]);
    }
    qq_fail(err, QQ_EXIT_USAGE,
            "%s'%s %s': qqmgr cannot connect gdb to this gdbstub (it takes tcp:[HOST]:PORT, PORT or unix:PATH)",
            where, s->args[i], val);
    return NULL;
}

/* The VM var `symbols`, or NULL; a relative path is the config directory's. */
static char *symbols_var(const config *cfg, const vm_spec *s)
{
    const char *v = json_string_value(json_object_get(s->vars, "symbols"));
    if (!v || !*v)
        return NULL;
    if (v[0] == '/' || !config_dir(cfg))
        return xstrdup(v);
    return xasprintf("%s/%s", config_dir(cfg), v);
}

int guestgdb_exec(const config *cfg, const char *name, const char *symbols, char **extra, int nextra, bool debug,
                  qq_err *err)
{
    vm_spec s;
    if (config_vm(cfg, name, 0, &s, err) < 0)
        return -1;
    _cleanup_free_ char *target = guestgdb_target(&s, err);
    _cleanup_free_ char *sym = symbols ? xstrdup(symbols) : symbols_var(cfg, &s);
    bool ours = guestgdb_user_option(&s) < 0;
    vm_spec_free(&s);
    if (!target)
        return -1;
    _cleanup_free_ char *dir = NULL;
    if (running_require(cfg, name, NULL, &dir, err) < 0)
        return -1;
    if (sym && access(sym, R_OK) != 0)
        return qq_fail(err, QQ_EXIT_FAIL, "--symbols %s: %s", sym, strerror(errno));
    if (ours && access(target, F_OK) != 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s has no gdbstub socket (%s): it was started by an older qqmgr; restart it",
                       name, target);
    if (ours && strlen(target) > SUN_PATH_MAX) {
        /* too long for a socket address: gdb reaches it through this
         * descriptor of the state dir, inherited across exec */
        int dfd = open(dir, O_PATH | O_DIRECTORY);
        if (dfd < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "open %s: %s", dir, strerror(errno));
        free(target);
        target = xasprintf("/proc/self/fd/%d/%s", dfd, layout_name(LAYOUT_GDB_SOCKET));
    }
    /* the one debugger of the gdbstub: gdb keeps this lock (inherited across
     * exec) until it exits */
    {
        _cleanup_free_ char *lp = layout_path(dir, LAYOUT_GDB_LOCK);
        qq_err le = { 0 };
        int lfd = lockfile_take(lp, NULL, &le);
        if (lfd < 0 && errno == EWOULDBLOCK) {
            _cleanup_free_ char *held = NULL;
            fs_read_file(lp, &held, NULL, NULL);
            long pid = held ? strtol(held, NULL, 10) : 0;
            char who[40] = "";
            if (pid > 0)
                snprintf(who, sizeof who, " (pid %ld)", pid);
            return qq_fail(err, QQ_EXIT_FAIL, "%s: another gdb is on its gdbstub%s: QEMU's gdbstub serves one "
                           "debugger at a time (detach or quit that one first)", name, who);
        }
        if (lfd < 0) {
            *err = le;
            return -1;
        }
        char pid[32];
        int pn = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());   /* exec keeps the pid */
        if (ftruncate(lfd, 0) < 0 || pwrite(lfd, pid, (size_t)pn, 0) != pn || fcntl(lfd, F_SETFD, 0) < 0) {
            int e = errno;
            close(lfd);
            return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", lp, strerror(e));
        }
    }
    _cleanup_free_ char *remote = xasprintf("target remote %s", target);
    char **gv = xcalloc((size_t)nextra + 8, sizeof *gv);
    size_t n = 0;
    gv[n++] = "gdb";
    gv[n++] = "-q";
    if (sym)
        gv[n++] = sym;
    gv[n++] = "-ex";
    gv[n++] = remote;
    for (int i = 0; i < nextra; i++)
        gv[n++] = extra[i];
    gv[n] = NULL;
    int rc = proc_exec(gv, debug, err);
    free(gv);
    return rc;
}
