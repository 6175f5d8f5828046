/* config_load — find, read and parse a qqmgr.toml, name places in it, and
 * answer what it defines (see config.h, "Loading"). */
#include "config.h"
#include "config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/json_arena.h"
#include "../base/sbuf.h"
#include "../base/strdist.h"
#include "../base/toml.h"
#include "../base/xalloc.h"
#include "layout.h"

/* ------------------------------------------------------------------ places and messages */

void config_where(const config *cc, const char *path, char *buf, size_t len)
{
    /* Locations cost more than the parse itself; they are only needed for an
     * error message, so the document is parsed a second time then. */
    config *c = (config *)cc;
    if (!c->locs && c->text) {
        c->locs = json_object();
        json_t *doc = toml_parse(c->text, c->text_len, 0, c->locs, NULL);
        if (doc)
            json_decref(doc);
    }
    json_t *loc = c->locs ? json_object_get(c->locs, path) : NULL;
    if (json_is_array(loc))
        snprintf(buf, len, "%s:%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT, c->shown,
                 json_integer_value(json_array_get(loc, 0)),
                 json_integer_value(json_array_get(loc, 1)));
    else
        snprintf(buf, len, "%s", c->shown);
}

/* Error at a config path: "FILE:L:C: PATH: message". */
int cfg_fail(const config *c, qq_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cfg_fail(const config *c, qq_err *err, const char *path, const char *fmt, ...)
{
    char where[PATH_MAX + 64], msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    config_where(c, path, where, sizeof where);
    return qq_fail(err, QQ_EXIT_USAGE, "%s: %s: %s", where, path, msg);
}

/* The value an error got, as the user wrote it: 70000, "atuo", true, 1.5,
 * a table, an array (strings quoted and escaped, cut after 80 bytes). */
char *cfg_got(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return xstrdup("a table");
    case JSON_ARRAY: return xstrdup("an array");
    case JSON_INTEGER: return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_TRUE: return xstrdup("true");
    case JSON_FALSE: return xstrdup("false");
    case JSON_REAL:
        /* as TOML writes them (json_dumps would say "nan.0", or nothing) */
        if (isnan(json_real_value(v)))
            return xstrdup(signbit(json_real_value(v)) ? "-nan" : "nan");
        if (isinf(json_real_value(v)))
            return xstrdup(json_real_value(v) < 0 ? "-inf" : "inf");
        /* fall through */
    case JSON_STRING: {
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        if (!s)
            abort();
        if (strlen(s) > 80) {
            char *cut = xasprintf("%.80s…", s);
            free(s);
            return cut;
        }
        return s;
    }
    default: return xstrdup("null");
    }
}

/* "the string \"x\"", "the integer 5", "a table": what a type error got. */
char *cfg_got_typed(const json_t *v)
{
    _cleanup_free_ char *g = cfg_got(v);
    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY: return xstrdup(g);
    case JSON_STRING: return xasprintf("the string %s", g);
    case JSON_INTEGER: return xasprintf("the integer %s", g);
    case JSON_REAL: return xasprintf("the float %s", g);
    default: return xasprintf("the boolean %s", g);
    }
}

void cfg_path_key(sbuf *p, const char *base, const char *key)
{
    sbuf_reset(p);
    sbuf_adds(p, base);
    toml_path_append(p, key);
}

/* ------------------------------------------------------------------ discovery */

static char *home_dir(void)
{
    const char *h = getenv("HOME");
    return xstrdup(h && *h ? h : "/");
}

static char *xdg_dir(const char *var, const char *fallback_under_home)
{
    const char *v = getenv(var);
    if (v && v[0] == '/')
        return xstrdup(v);
    _cleanup_free_ char *home = home_dir();
    return xasprintf("%s/%s", home, fallback_under_home);
}

static int read_file(const char *path, char **data, size_t *len, qq_err *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qq_fail(err, QQ_EXIT_USAGE, "%s: %s", path, strerror(errno));
    /* one buffer of the file's size (plus a byte to see the end), read in
     * place: no copies, and no pages touched but the text's */
    struct stat st;
    size_t cap = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
    size_t n = 0;
    char *b = malloc(cap + 1);
    if (!b)
        abort();
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(b, cap + 1);
            if (!nb)
                abort();
            b = nb;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            free(b);
            return qq_fail(err, QQ_EXIT_USAGE, "%s: %s", path, strerror(errno));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    b[n] = '\0';
    *len = n;
    *data = b;
    return 0;
}

/* ------------------------------------------------------------------ load */

static int find_config(const char *explicit_path, char **path, char **shown, bool *global, qq_err *err)
{
    *global = false;
    if (explicit_path) {
        if (access(explicit_path, R_OK) != 0)
            return qq_fail(err, QQ_EXIT_USAGE, "%s: %s", explicit_path, strerror(errno));
        *shown = xstrdup(explicit_path);
    } else if (access("qqmgr.toml", F_OK) == 0) {
        *shown = xstrdup("qqmgr.toml");
    } else {
        _cleanup_free_ char *dir = xdg_dir("XDG_CONFIG_HOME", ".config");
        *shown = xasprintf("%s/qqmgr/conf.toml", dir);
        if (access(*shown, F_OK) != 0) {
            qq_fail(err, QQ_EXIT_USAGE,
                    "no config: no ./qqmgr.toml and no %s (give one with -c FILE)", *shown);
            free(*shown);
            *shown = NULL;
            return -1;
        }
        *global = true;
    }
    *path = realpath(*shown, NULL);
    if (!*path) {
        qq_fail(err, QQ_EXIT_USAGE, "%s: %s", *shown, strerror(errno));
        free(*shown);
        *shown = NULL;
        return -1;
    }
    if (!*global) {
        /* -c naming the global file is the global file */
        _cleanup_free_ char *dir = xdg_dir("XDG_CONFIG_HOME", ".config");
        _cleanup_free_ char *g = xasprintf("%s/qqmgr/conf.toml", dir);
        _cleanup_free_ char *greal = realpath(g, NULL);
        if (greal && strcmp(greal, *path) == 0)
            *global = true;
    }
    return 0;
}

config *config_load(const char *explicit_path, qq_err *err)
{
    config *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    bool global;
    if (explicit_path) {
        sbuf cli = SBUF_INIT;
        sbuf_adds(&cli, "qqmgr -c ");
        sbuf_add_shell_quoted(&cli, explicit_path);
        c->cli = sbuf_steal(&cli);
    } else {
        c->cli = xstrdup("qqmgr");
    }
    if (find_config(explicit_path, &c->path, &c->shown, &global, err) < 0)
        goto fail;
    char *slash = strrchr(c->path, '/');
    c->dir = slash == c->path ? xstrdup("/") : strndup(c->path, (size_t)(slash - c->path));
    const char *base = slash + 1;
    if (global) {
        _cleanup_free_ char *st = xdg_dir("XDG_STATE_HOME", ".local/state");
        c->state_dir = xasprintf("%s/qqmgr", st);
    } else if (!(c->state_dir = layout_config_state_dir(c->dir, base, err))) {
        goto fail;   /* qqmgr.toml → DIR/.qqmgr, NAME → DIR/.qqmgr/config.NAME (layout.h) */
    }
    layout_set_config(c->state_dir, c->path);

    if (read_file(c->path, &text, &len, err) < 0)
        goto fail;
    toml_error te = { 0 };
    /* the document lives as long as the config: its allocations are
     * bump-allocated; jansson needs about 6 bytes per byte of TOML */
    json_arena_begin(len * 6);
    c->root = toml_parse(text, len, 0, NULL, &te);
    json_arena_end();
    if (!c->root) {
        qq_fail(err, QQ_EXIT_USAGE, "%s:%d:%d: %s", c->shown, te.line, te.col, te.msg);
        goto fail;
    }
    c->text = TAKE_PTR(text);
    c->text_len = len;
    if (config_check_schema(c, err) < 0)
        goto fail;
    return c;
fail:
    config_free(c);
    return NULL;
}

void config_free(config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->shown);
    free(c->cli);
    free(c->dir);
    free(c->state_dir);
    free(c->text);
    if (c->root)
        json_decref(c->root);
    if (c->locs)
        json_decref(c->locs);
    free(c);
}

const char *config_cli(const config *c)
{
    return c->cli;
}

const char *config_path(const config *c) { return c->path; }
const char *config_dir(const config *c) { return c->dir; }
const char *config_state_dir(const config *c) { return c->state_dir; }
const char *config_qemu_bin(const config *c) { return c->qemu_bin; }
const char *config_qemu_img(const config *c) { return c->qemu_img; }
json_t *config_root(const config *c) { return c->root; }

/* The i-th key of obj. Walks from the last position when asked for the next
 * one, so listing every VM in order stays linear. */
static const char *nth_key(const config *cc, json_t *obj, size_t i)
{
    config *c = (config *)cc;
    if (!obj)
        return NULL;
    if (c->it_obj != obj || !c->it || i < c->it_idx) {
        c->it_obj = obj;
        c->it = json_object_iter(obj);
        c->it_idx = 0;
    }
    while (c->it && c->it_idx < i) {
        c->it = json_object_iter_next(obj, c->it);
        c->it_idx++;
    }
    return c->it ? json_object_iter_key(c->it) : NULL;
}

size_t config_vm_count(const config *c) { return c->vms ? json_object_size(c->vms) : 0; }
const char *config_vm_name(const config *c, size_t i) { return nth_key(c, c->vms, i); }
bool config_has_vm(const config *c, const char *name) { return c->vms && json_object_get(c->vms, name); }

/* "no VM named "x"; did you mean "y"? (VMs in FILE: a, b, …)" */
static int no_such(const config *c, json_t *table, const char *what, const char *whats, const char *name,
                   qq_err *err)
{
    _cleanup_json_ json_t *jn = json_string(name);
    _cleanup_free_ char *g = jn ? cfg_got(jn) : xstrdup("?");
    size_t n = table ? json_object_size(table) : 0;
    if (!n)
        return qq_fail(err, QQ_EXIT_USAGE, "%s: no %s named %s (the config defines no %s)", c->shown, what, g,
                       whats);
    _cleanup_sbuf_ sbuf list = SBUF_INIT;
    _cleanup_free_ const char **names = xcalloc(n + 1, sizeof *names);
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(table, k, v) {
        if (i < 12)
            sbuf_addf(&list, "%s%s", i ? ", " : "", k);
        names[i++] = k;
    }
    if (n > 12)
        sbuf_addf(&list, ", … (%zu in all)", n);
    const char *near = str_closest(name, names);
    return qq_fail(err, QQ_EXIT_USAGE, "%s: no %s named %s%s%s%s (%s: %s)", c->shown, what, g,
                   near ? "; did you mean \"" : "", near ? near : "", near ? "\"?" : "", whats, sbuf_str(&list));
}

int config_copy_parse(const char *name, char **base, unsigned *n, qq_err *err)
{
    if (base)
        *base = NULL;
    const char *hash = strchr(name, '#');
    if (!hash)
        return 0;
    const char *d = hash + 1;
    unsigned long v = 0;
    bool ok = hash > name && d[0] >= '1' && d[0] <= '9';
    for (; ok && *d; d++) {
        if (*d < '0' || *d > '9' || (v = v * 10 + (unsigned long)(*d - '0')) > CONFIG_COPY_MAX)
            ok = false;
    }
    if (!ok)
        return qq_fail(err, QQ_EXIT_USAGE, "\"%s\": a throwaway copy is named VM#N (N a number from 1 to %d, "
                       "as `status VM` lists them)", name, CONFIG_COPY_MAX);
    if (base)
        *base = xstrndup(name, (size_t)(hash - name));
    if (n)
        *n = (unsigned)v;
    return 1;
}

char *config_base_vm(const char *name)
{
    const char *hash = strchr(name, '#');
    return hash ? xstrndup(name, (size_t)(hash - name)) : xstrdup(name);
}

int config_check_vm(const config *c, const char *name, qq_err *err)
{
    _cleanup_free_ char *base = NULL;
    int k = config_copy_parse(name, &base, NULL, err);
    if (k < 0)
        return -1;
    if (k == 0)
        return config_has_vm(c, name) ? 0 : no_such(c, c->vms, "VM", "VMs", name, err);
    if (!config_has_vm(c, base))
        return no_such(c, c->vms, "VM", "VMs", base, err);
    _cleanup_free_ char *dir = config_vm_dir(c, name);
    struct stat st;
    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return qq_fail(err, QQ_EXIT_FAIL, "%s: no such copy of %s (`%s status %s` lists its copies)", name, base,
                       c->cli, base);
    return 0;
}

int config_check_img(const config *c, const char *name, qq_err *err)
{
    return c->imgs && json_object_get(c->imgs, name) ? 0 : no_such(c, c->imgs, "image", "images", name, err);
}
size_t config_img_count(const config *c) { return c->imgs ? json_object_size(c->imgs) : 0; }
const char *config_img_name(const config *c, size_t i) { return nth_key(c, c->imgs, i); }

int config_vm_ssh_port(const config *c, const char *name)
{
    _cleanup_free_ char *base = config_base_vm(name);
    json_t *vm = c->vms ? json_object_get(c->vms, base) : NULL;
    int port = cfg_ssh_port(cfg_get(vm, &cfg_vm, VM_SSH));
    /* a copy runs beside its VM: a port of its own, always a free one */
    return strcmp(base, name) != 0 && port != SSH_PORT_NONE ? SSH_PORT_AUTO : port;
}

char *config_vm_dir(const config *c, const char *name)
{
    _cleanup_free_ char *base = NULL;
    unsigned n = 0;
    if (config_copy_parse(name, &base, &n, NULL) == 1) {
        _cleanup_free_ char *vdir = layout_vm_dir(c->state_dir, base);
        return layout_copy_dir(vdir, n);
    }
    return layout_vm_dir(c->state_dir, name);
}
