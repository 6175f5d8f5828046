/* config — find, load, validate and resolve a qqmgr.toml (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/json_arena.h"
#include "../base/sbuf.h"
#include "../base/strdist.h"
#include "../base/tmpl.h"
#include "../base/toml.h"
#include "../base/xalloc.h"
#include "layout.h"
#include "ssh_keywords.h"

struct config {
    char *path;        /* real path */
    char *shown;       /* the name errors use: as given, or the discovered path */
    char *cli;         /* "qqmgr" or "qqmgr -c FILE": how hints spell a command */
    char *dir;
    char *state_dir;
    json_t *root;      /* the document */
    json_t *locs;      /* path → [line, col]: parsed again, with locations, on first need */
    char *text;        /* the file's text, kept for that */
    size_t text_len;
    json_t *vms;       /* borrowed from root: object (may be empty) */
    json_t *imgs;      /* borrowed from root: object (may be empty) */
    json_t *vars;      /* borrowed: object */
    json_t *ssh;       /* borrowed: object */
    json_t *nets;      /* borrowed: object, or NULL */
    const char *qemu_bin, *qemu_img;
    json_t *it_obj;    /* nth_key()'s position */
    void *it;
    size_t it_idx;
};

/* ------------------------------------------------------------------ helpers */

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
static int cfail(const config *c, qq_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cfail(const config *c, qq_err *err, const char *path, const char *fmt, ...)
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
static char *got(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return xstrdup("a table");
    case JSON_ARRAY: return xstrdup("an array");
    case JSON_INTEGER: return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_TRUE: return xstrdup("true");
    case JSON_FALSE: return xstrdup("false");
    case JSON_STRING:
    case JSON_REAL: {
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
static char *got_typed(const json_t *v)
{
    _cleanup_free_ char *g = got(v);
    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY: return xstrdup(g);
    case JSON_STRING: return xasprintf("the string %s", g);
    case JSON_INTEGER: return xasprintf("the integer %s", g);
    case JSON_REAL: return xasprintf("the float %s", g);
    default: return xasprintf("the boolean %s", g);
    }
}

static void path_key(sbuf *p, const char *base, const char *key)
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

/* ------------------------------------------------------------------ schema */

static int check_ssh_value(const config *c, qq_err *err, const char *path, json_t *v)
{
    if (json_is_string(v)) {
        for (const unsigned char *s = (const unsigned char *)json_string_value(v); *s; s++)
            if (*s < 0x20 || *s == 0x7f) {
                _cleanup_free_ char *g = got(v);
                return cfail(c, err, path, "an ssh option value cannot contain a control character (%s), not %s",
                             *s == '\n' ? "a newline" : *s == '\t' ? "a tab" : "such as \\r or \\u001b", g);
            }
        return 0;
    }
    if (json_is_integer(v) || json_is_boolean(v) || json_is_real(v))
        return 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        _cleanup_sbuf_ sbuf p = SBUF_INIT;
        json_array_foreach(v, i, e) {
            sbuf_reset(&p);
            sbuf_adds(&p, path);
            toml_path_append_index(&p, i);
            if (json_is_array(e) || json_is_object(e))
                return cfail(c, err, sbuf_str(&p), "an ssh option value must be a string, number or boolean, not %s",
                             json_is_array(e) ? "an array" : "a table");
            if (check_ssh_value(c, err, sbuf_str(&p), e) < 0)
                return -1;
        }
        return 0;
    }
    _cleanup_free_ char *g = got_typed(v);
    return cfail(c, err, path, "an ssh option must be a string, number, boolean or array, not %s", g);
}

/* An unknown ssh_config keyword: "did you mean" the nearest one (in a VM's
 * table, qqmgr's own port and vm_port first). */
static int unknown_ssh_keyword(const config *c, qq_err *err, const char *path, const char *k, bool vm)
{
    static const char *const own[] = { "port", "vm_port", NULL };
    const char *mine = vm ? str_closest(k, own) : NULL;
    const char *theirs = str_closest(k, ssh_keywords);
    const char *best = mine && (!theirs || str_distance(k, mine) <= str_distance(k, theirs)) ? mine : theirs;
    _cleanup_json_ json_t *j = json_string(k);
    _cleanup_free_ char *g = j ? got(j) : xstrdup("?");
    if (best)
        return cfail(c, err, path, "unknown ssh_config keyword %s (did you mean %s?)", g, best);
    return cfail(c, err, path, "unknown ssh_config keyword %s (see ssh_config(5)%s)", g,
                 vm ? "; qqmgr's own keys here are port and vm_port" : "");
}

static int check_ssh_table(const config *c, qq_err *err, const char *base, json_t *t, bool vm)
{
    const char *k;
    json_t *v;
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    json_object_foreach(t, k, v) {
        path_key(&p, base, k);
        if (vm && strcmp(k, "port") == 0) {
            if (json_is_string(v)) {
                if (strcmp(json_string_value(v), "auto") != 0)
                    return cfail(c, err, sbuf_str(&p), "must be a port number (1-65535), 0 or \"auto\", not \"%s\"",
                                 json_string_value(v));
            } else if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535) {
                _cleanup_free_ char *g = got(v);
                return cfail(c, err, sbuf_str(&p), "must be a port number (1-65535), 0 or \"auto\", not %s", g);
            }
            continue;
        }
        if (vm && strcmp(k, "vm_port") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
                _cleanup_free_ char *g = got(v);
                return cfail(c, err, sbuf_str(&p), "must be a port number (1-65535), not %s", g);
            }
            continue;
        }
        if (strcasecmp(k, "Host") == 0 || strcasecmp(k, "Match") == 0)
            return cfail(c, err, sbuf_str(&p), "%s cannot be set: qqmgr writes the VM's Host block itself", k);
        if (!ssh_keyword(k))
            return unknown_ssh_keyword(c, err, sbuf_str(&p), k, vm);
        if (check_ssh_value(c, err, sbuf_str(&p), v) < 0)
            return -1;
    }
    return 0;
}

static int want_type(const config *c, qq_err *err, const char *path, json_t *v, json_type t, const char *what)
{
    if (json_typeof(v) == t || (t == JSON_TRUE && json_is_boolean(v)))
        return 0;
    _cleanup_free_ char *g = got_typed(v);
    return cfail(c, err, path, "must be %s, not %s", what, g);
}

static int want_string_array(const config *c, qq_err *err, const char *path, json_t *v)
{
    if (want_type(c, err, path, v, JSON_ARRAY, "an array of strings") < 0)
        return -1;
    size_t i;
    json_t *e;
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
            sbuf_adds(&p, path);
            toml_path_append_index(&p, i);
            _cleanup_free_ char *g = got_typed(e);
            return cfail(c, err, sbuf_str(&p), "must be a string, not %s", g);
        }
    }
    return 0;
}

/* VM and image names: letters, digits, '.', '_', '-', not starting with '.'
 * or '-' (they become file names, ssh Host names and command arguments). */
#define NAME_RULE "letters, digits, '.', '_' and '-', not starting with '.' or '-'"
static bool valid_name(const char *s)
{
    if (!*s || *s == '.' || *s == '-' || strlen(s) > 200)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return false;
    return true;
}

static int bad_name(const config *c, qq_err *err, const char *path, const char *kind, const char *name)
{
    _cleanup_json_ json_t *j = json_string(name);
    _cleanup_free_ char *g = j ? got(j) : xstrdup("?");
    return cfail(c, err, path, "the %s name %s is not valid: a name has " NAME_RULE, kind, g);
}

/* A NUL (\u0000) anywhere in the document: a string or key that C would cut
 * short ("-m 64\u0000-daemonize" is not "-m 64"). Keys and values become
 * arguments, paths, names and ssh values, so each is refused, by place. */
static bool has_nul(json_t *v)
{
    if (json_is_string(v))
        return strlen(json_string_value(v)) != json_string_length(v);
    if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it))
            if (strlen(json_object_iter_key(it)) != json_object_iter_key_len(it) ||
                has_nul(json_object_iter_value(it)))
                return true;
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (has_nul(json_array_get(v, i)))
                return true;
    }
    return false;
}

/* The walk that names the place runs only when has_nul found one. */
static int check_nul(const config *c, qq_err *err, sbuf *path, json_t *v)
{
    if (!path->len && !has_nul(v))
        return 0;
    size_t mark = path->len;
    if (json_is_string(v)) {
        if (strlen(json_string_value(v)) != json_string_length(v))
            return cfail(c, err, sbuf_str(path), "contains a NUL character (\\u0000), which no argument, path, "
                         "name or ssh value can hold");
    } else if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            const char *k = json_object_iter_key(it);
            toml_path_append_n(path, k, json_object_iter_key_len(it));
            if (strlen(k) != json_object_iter_key_len(it))
                return cfail(c, err, sbuf_str(path), "this key contains a NUL character (\\u0000), "
                             "which no argument, path, name or ssh value can hold");
            int r = check_nul(c, err, path, json_object_iter_value(it));
            path->len = mark;
            path->buf[mark] = '\0';
            if (r < 0)
                return -1;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            toml_path_append_index(path, i);
            int r = check_nul(c, err, path, json_array_get(v, i));
            path->len = mark;
            path->buf[mark] = '\0';
            if (r < 0)
                return -1;
        }
    }
    return 0;
}

/* A plain file name: no '/', not "." or "..", not empty. */
static bool plain_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strstr(s, "..");
}

int config_parse_size(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return -1;
    }
    if (*end == 'i' && shift && end[1] == 'B')
        end += 2;
    else if (*end == 'B' && shift)
        end++;
    if (*end)
        return -1;
    if (shift && n > (ULLONG_MAX >> shift))
        return -1;
    *out = n << shift;
    return 0;
}

static int check_table_keys(const config *c, qq_err *err, const char *base, json_t *t,
                            const char *const *allowed)
{
    const char *k;
    json_t *v;
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    json_object_foreach(t, k, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0)
                ok = true;
        if (!ok) {
            path_key(&p, base, k);
            _cleanup_sbuf_ sbuf list = SBUF_INIT;
            for (const char *const *a = allowed; *a; a++)
                sbuf_addf(&list, "%s%s", a == allowed ? "" : ", ", *a);
            return cfail(c, err, sbuf_str(&p), "unknown key (expected one of: %s)", sbuf_str(&list));
        }
    }
    return 0;
}

/* The start of every [SECTION.NAME]: a table with a valid name (it becomes a
 * directory name, an ssh Host, an argument). base gets "SECTION.NAME". */
static int named_table(const config *c, qq_err *err, const char *section, const char *kind, const char *name,
                       json_t *t, sbuf *base)
{
    sbuf_adds(base, section);
    toml_path_append(base, name);
    if (want_type(c, err, sbuf_str(base), t, JSON_OBJECT, "a table") < 0)
        return -1;
    if (!valid_name(name))
        return bad_name(c, err, sbuf_str(base), kind, name);
    return 0;
}

static int check_vm(const config *c, qq_err *err, const char *name, json_t *vm)
{
    _cleanup_sbuf_ sbuf base = SBUF_INIT, p = SBUF_INIT;
    if (named_table(c, err, "vm", "VM", name, vm, &base) < 0)
        return -1;
    static const char *const keys[] = { "cmd", "vars", "ssh", NULL };
    if (check_table_keys(c, err, sbuf_str(&base), vm, keys) < 0)
        return -1;
    json_t *cmd = json_object_get(vm, "cmd");
    if (!cmd)
        return cfail(c, err, sbuf_str(&base), "missing required key \"cmd\"");
    path_key(&p, sbuf_str(&base), "cmd");
    if (want_string_array(c, err, sbuf_str(&p), cmd) < 0)
        return -1;
    json_t *vars = json_object_get(vm, "vars");
    if (vars) {
        path_key(&p, sbuf_str(&base), "vars");
        if (want_type(c, err, sbuf_str(&p), vars, JSON_OBJECT, "a table") < 0)
            return -1;
        if (json_object_get(vars, "ssh")) {
            _cleanup_sbuf_ sbuf q = SBUF_INIT;
            path_key(&q, sbuf_str(&p), "ssh");
            return cfail(c, err, sbuf_str(&q), "reserved name: .vm.ssh holds the VM's ssh port and vm_port");
        }
    }
    json_t *ssh = json_object_get(vm, "ssh");
    if (ssh) {
        path_key(&p, sbuf_str(&base), "ssh");
        if (want_type(c, err, sbuf_str(&p), ssh, JSON_OBJECT, "a table") < 0)
            return -1;
        if (check_ssh_table(c, err, sbuf_str(&p), ssh, true) < 0)
            return -1;
    }
    return 0;
}

/* [net.NAME]: a network the VMs of the config share (port, group). */
static int check_net(const config *c, qq_err *err, const char *name, json_t *net)
{
    _cleanup_sbuf_ sbuf base = SBUF_INIT, p = SBUF_INIT;
    if (named_table(c, err, "net", "network", name, net, &base) < 0)
        return -1;
    static const char *const keys[] = { "port", "group", NULL };
    if (check_table_keys(c, err, sbuf_str(&base), net, keys) < 0)
        return -1;
    json_t *v = json_object_get(net, "port");
    path_key(&p, sbuf_str(&base), "port");
    if (v && !(json_is_string(v) && strcmp(json_string_value(v), "auto") == 0) &&
        !(json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 65535)) {
        _cleanup_free_ char *g = got(v);
        return cfail(c, err, sbuf_str(&p), "must be a port number (1-65535), 0 or \"auto\", not %s", g);
    }
    v = json_object_get(net, "group");
    sbuf_reset(&p);
    path_key(&p, sbuf_str(&base), "group");
    if (v) {
        unsigned a, b, cc, d;
        char tail;
        const char *g = json_is_string(v) ? json_string_value(v) : NULL;
        if (!g || (strcmp(g, "auto") != 0 && (sscanf(g, "%u.%u.%u.%u%c", &a, &b, &cc, &d, &tail) != 4 ||
                                                a < 224 || a > 239 || b > 255 || cc > 255 || d > 255))) {
            _cleanup_free_ char *gv = got(v);
            return cfail(c, err, sbuf_str(&p), "must be an IPv4 multicast address (224.0.0.0-239.255.255.255) or \"auto\", not %s",
                         gv);
        }
    }
    return 0;
}

/* .net.NAME = {port, group, mcast}: "auto" values are derived from the state
 * dir and the name, so every VM of the config (and every start) gets the
 * same ones, and another config almost surely others. */
static json_t *net_data(const config *c)
{
    json_t *out = json_object();
    const char *k;
    json_t *net;
    json_object_foreach(c->nets, k, net) {
        uint32_t h = 2166136261u;   /* FNV-1a of "STATE_DIR\0NAME" */
        for (const char *s = c->state_dir; *s; s++)
            h = (h ^ (unsigned char)*s) * 16777619u;
        h *= 16777619u;
        for (const char *s = k; *s; s++)
            h = (h ^ (unsigned char)*s) * 16777619u;
        json_t *pv = json_object_get(net, "port"), *gv = json_object_get(net, "group");
        int port = json_is_integer(pv) && json_integer_value(pv) > 0 ? (int)json_integer_value(pv)
                                                                      : 10000 + (int)(h % 22768);   /* below the ephemeral range */
        _cleanup_free_ char *group = gv && strcmp(json_string_value(gv), "auto") != 0
                                         ? xstrdup(json_string_value(gv))
                                         : xasprintf("239.%u.%u.%u", (h >> 8) & 0xff, (h >> 16) & 0xff, 1 + (h >> 24) % 254);
        json_t *o = json_object();
        json_object_set_new(o, "port", json_integer(port));
        json_object_set_new(o, "group", json_string(group));
        json_object_set_new(o, "mcast", json_sprintf("%s:%d", group, port));
        json_object_set_new(out, k, o);
    }
    return out;
}

static int check_url_sum(const config *c, qq_err *err, const char *base, json_t *t, bool with_filename)
{
    static const char *const k2[] = { "url", "sha256sum", NULL };
    static const char *const k3[] = { "url", "sha256sum", "filename", NULL };
    if (want_type(c, err, base, t, JSON_OBJECT, "a table") < 0)
        return -1;
    if (check_table_keys(c, err, base, t, with_filename ? k3 : k2) < 0)
        return -1;
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    for (const char *const *k = with_filename ? k3 : k2; *k; k++) {
        json_t *v = json_object_get(t, *k);
        path_key(&p, base, *k);
        if (!v && strcmp(*k, "filename") == 0) {
            /* optional: the URL's last path segment */
            const char *url = json_string_value(json_object_get(t, "url"));
            const char *slash = url ? strrchr(url, '/') : NULL;
            const char *last = slash ? slash + 1 : url;
            if (!last || !plain_name(last) || strpbrk(last, "?#"))
                return cfail(c, err, base, "the url names no file: give filename = \"…\"");
            continue;
        }
        if (!v)
            return cfail(c, err, base, "missing required key \"%s\"", *k);
        if (want_type(c, err, sbuf_str(&p), v, JSON_STRING, "a string") < 0)
            return -1;
        const char *s = json_string_value(v);
        if (strcmp(*k, "sha256sum") == 0) {
            if (strlen(s) != 64 || strspn(s, "0123456789abcdefABCDEF") != 64) {
                _cleanup_free_ char *g = got(v);
                return cfail(c, err, sbuf_str(&p), "must be 64 hexadecimal digits, not %s", g);
            }
        } else if (strcmp(*k, "filename") == 0) {
            if (!plain_name(s))
                return cfail(c, err, sbuf_str(&p), "must be a plain file name (no '/', no '..'), not \"%s\"", s);
        } else if (!*s) {
            return cfail(c, err, sbuf_str(&p), "must not be empty");
        }
    }
    return 0;
}

static int check_img(const config *c, qq_err *err, const char *name, json_t *img)
{
    _cleanup_sbuf_ sbuf base = SBUF_INIT, p = SBUF_INIT, q = SBUF_INIT;
    if (named_table(c, err, "img", "image", name, img, &base) < 0)
        return -1;
    const char *b = sbuf_str(&base);
    static const char *const keys[] = { "builder", "img_size", "build_args", "build_timeout", "base_img",
                                        "templates", "env", "env_hook", "sources", "format", NULL };
    if (check_table_keys(c, err, b, img, keys) < 0)
        return -1;
    json_t *builder = json_object_get(img, "builder");
    if (!builder)
        return cfail(c, err, b, "missing required key \"builder\" (\"raw\" or \"cloud-init\")");
    path_key(&p, b, "builder");
    if (want_type(c, err, sbuf_str(&p), builder, JSON_STRING, "a string") < 0)
        return -1;
    const char *bs = json_string_value(builder);
    bool ci = strcmp(bs, "cloud-init") == 0;
    if (!ci && strcmp(bs, "raw") != 0)
        return cfail(c, err, sbuf_str(&p), "unknown builder \"%s\" (expected \"raw\" or \"cloud-init\")", bs);
    json_t *format = json_object_get(img, "format");
    if (format) {
        path_key(&p, b, "format");
        if (ci)
            return cfail(c, err, sbuf_str(&p), "only the raw builder takes a format (cloud-init images are qcow2)");
        if (!json_is_string(format) ||
            (strcmp(json_string_value(format), "raw") != 0 && strcmp(json_string_value(format), "qcow2") != 0))
            return cfail(c, err, sbuf_str(&p), "expected \"raw\" or \"qcow2\"");
    }
    json_t *size = json_object_get(img, "img_size");
    if (!size)
        return cfail(c, err, b, "missing required key \"img_size\" (such as \"10G\")");
    path_key(&p, b, "img_size");
    unsigned long long bytes;
    if (json_is_integer(size) ? json_integer_value(size) <= 0
                              : !json_is_string(size) || config_parse_size(json_string_value(size), &bytes) < 0 ||
                                    bytes == 0) {
        _cleanup_free_ char *g = got(size);
        return cfail(c, err, sbuf_str(&p),
                     "must be a size such as \"10G\", \"512M\" or a positive number of bytes, not %s", g);
    }
    json_t *v;
    if ((v = json_object_get(img, "build_args"))) {
        path_key(&p, b, "build_args");
        if (want_string_array(c, err, sbuf_str(&p), v) < 0)
            return -1;
    }
    if ((v = json_object_get(img, "build_timeout"))) {
        path_key(&p, b, "build_timeout");
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            _cleanup_free_ char *g = got(v);
            return cfail(c, err, sbuf_str(&p), "must be a positive number of seconds, not %s", g);
        }
    }
    if ((v = json_object_get(img, "base_img"))) {
        path_key(&p, b, "base_img");
        if (check_url_sum(c, err, sbuf_str(&p), v, false) < 0)
            return -1;
    } else if (ci) {
        return cfail(c, err, b, "a cloud-init image needs [%s.base_img] with url and sha256sum", b);
    }
    if ((v = json_object_get(img, "env"))) {
        path_key(&p, b, "env");
        if (want_type(c, err, sbuf_str(&p), v, JSON_OBJECT, "a table") < 0)
            return -1;
    }
    if ((v = json_object_get(img, "env_hook"))) {
        path_key(&p, b, "env_hook");
        static const char *const hk[] = { "interpreter", "script", NULL };
        if (want_type(c, err, sbuf_str(&p), v, JSON_OBJECT, "a table") < 0 ||
            check_table_keys(c, err, sbuf_str(&p), v, hk) < 0)
            return -1;
        for (const char *const *k = hk; *k; k++) {
            json_t *e = json_object_get(v, *k);
            path_key(&q, sbuf_str(&p), *k);
            if (!e)
                return cfail(c, err, sbuf_str(&p), "missing required key \"%s\"", *k);
            if (want_type(c, err, sbuf_str(&q), e, JSON_STRING, "a string") < 0)
                return -1;
            if (strcmp(*k, "interpreter") == 0) {
                /* split like a cmd entry: "python3 -u" */
                _cleanup_strv_ char **words = NULL;
                size_t n = 0;
                qq_err why = { 0 };
                if (config_split_args(json_string_value(e), &words, &n, &why) < 0)
                    return cfail(c, err, sbuf_str(&q), "%s", why.msg);
                if (n == 0) {
                    _cleanup_free_ char *g = got(e);
                    return cfail(c, err, sbuf_str(&q), "must name a program, not %s", g);
                }
            }
        }
    }
    if ((v = json_object_get(img, "templates"))) {
        path_key(&p, b, "templates");
        if (want_type(c, err, sbuf_str(&p), v, JSON_ARRAY, "an array of tables") < 0)
            return -1;
        size_t i;
        json_t *t;
        static const char *const tk[] = { "template", "output", NULL };
        json_array_foreach(v, i, t) {
            sbuf_reset(&q);
            sbuf_adds(&q, sbuf_str(&p));
            toml_path_append_index(&q, i);
            _cleanup_free_ char *tp = xstrdup(sbuf_str(&q));
            if (want_type(c, err, tp, t, JSON_OBJECT, "a table") < 0 || check_table_keys(c, err, tp, t, tk) < 0)
                return -1;
            for (const char *const *k = tk; *k; k++) {
                json_t *e = json_object_get(t, *k);
                path_key(&q, tp, *k);
                if (!e)
                    return cfail(c, err, tp, "missing required key \"%s\"", *k);
                if (want_type(c, err, sbuf_str(&q), e, JSON_STRING, "a string") < 0)
                    return -1;
                if (strcmp(*k, "output") == 0 && !plain_name(json_string_value(e)))
                    return cfail(c, err, sbuf_str(&q), "must be a plain file name (no '/', no '..'), not \"%s\"",
                                 json_string_value(e));
            }
        }
    }
    if ((v = json_object_get(img, "sources"))) {
        path_key(&p, b, "sources");
        if (want_type(c, err, sbuf_str(&p), v, JSON_ARRAY, "an array of tables") < 0)
            return -1;
        size_t i;
        json_t *t;
        json_array_foreach(v, i, t) {
            sbuf_reset(&q);
            sbuf_adds(&q, sbuf_str(&p));
            toml_path_append_index(&q, i);
            if (check_url_sum(c, err, sbuf_str(&q), t, true) < 0)
                return -1;
        }
    }
    return 0;
}

/* A NUL can only come from an escape (\u0000, \U00000000): the walk that
 * finds it runs only when the text holds one (memchr is far cheaper than
 * walking the document, or memmem). */
static bool nul_escape(const char *t, size_t n)
{
    if (!t)
        return false;
    for (const char *p = t; (p = memchr(p, '\\', n - (size_t)(p - t))); p++) {
        size_t left = n - (size_t)(p - t);
        if ((left >= 6 && memcmp(p, "\\u0000", 6) == 0) || (left >= 10 && memcmp(p, "\\U00000000", 10) == 0))
            return true;
    }
    return false;
}

static int check_schema(config *c, qq_err *err)
{
    static const char *const top[] = { "qemu", "vars", "ssh", "vm", "img", "net", NULL };
    _cleanup_sbuf_ sbuf path = SBUF_INIT;
    sbuf_adds(&path, "");
    if ((nul_escape(c->text, c->text_len) && check_nul(c, err, &path, c->root) < 0) ||
        check_table_keys(c, err, "", c->root, top) < 0)
        return -1;
    json_t *v;
    if ((v = json_object_get(c->root, "qemu"))) {
        static const char *const qk[] = { "bin", "img", NULL };
        if (want_type(c, err, "qemu", v, JSON_OBJECT, "a table") < 0 || check_table_keys(c, err, "qemu", v, qk) < 0)
            return -1;
        for (const char *const *k = qk; *k; k++) {
            json_t *e = json_object_get(v, *k);
            char p[16];
            snprintf(p, sizeof p, "qemu.%s", *k);
            if (e && (want_type(c, err, p, e, JSON_STRING, "a string") < 0))
                return -1;
            if (e && !*json_string_value(e))
                return cfail(c, err, p, "must not be empty");
        }
        json_t *b = json_object_get(v, "bin"), *i = json_object_get(v, "img");
        if (b)
            c->qemu_bin = json_string_value(b);
        if (i)
            c->qemu_img = json_string_value(i);
    }
    if ((v = json_object_get(c->root, "vars"))) {
        if (want_type(c, err, "vars", v, JSON_OBJECT, "a table") < 0)
            return -1;
        static const char *const reserved[] = { "vm", "img", "img_self", "cloud_init_iso", NULL };
        for (const char *const *r = reserved; *r; r++)
            if (json_object_get(v, *r)) {
                char p[64];
                snprintf(p, sizeof p, "vars.%s", *r);
                return cfail(c, err, p, "reserved name: .%s is set by qqmgr", *r);
            }
        c->vars = v;
    }
    if ((v = json_object_get(c->root, "ssh"))) {
        if (want_type(c, err, "ssh", v, JSON_OBJECT, "a table") < 0 || check_ssh_table(c, err, "ssh", v, false) < 0)
            return -1;
        c->ssh = v;
    }
    if ((v = json_object_get(c->root, "vm"))) {
        if (want_type(c, err, "vm", v, JSON_OBJECT, "a table of VMs") < 0)
            return -1;
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            if (check_vm(c, err, k, e) < 0)
                return -1;
        }
        c->vms = v;
    }
    if ((v = json_object_get(c->root, "net"))) {
        if (want_type(c, err, "net", v, JSON_OBJECT, "a table of networks") < 0)
            return -1;
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            if (check_net(c, err, k, e) < 0)
                return -1;
        }
        /* a config without [net] may keep a variable of that name */
        if (c->vars && json_object_get(c->vars, "net"))
            return cfail(c, err, "vars.net", "reserved name when the config has [net] sections: .net holds the networks");
        c->nets = v;
    }
    if ((v = json_object_get(c->root, "img"))) {
        if (want_type(c, err, "img", v, JSON_OBJECT, "a table of images") < 0)
            return -1;
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            if (check_img(c, err, k, e) < 0)
                return -1;
        }
        c->imgs = v;
    }
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
    c->qemu_bin = "qemu-system-x86_64";
    c->qemu_img = "qemu-img";
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
    } else if (strcmp(base, "qqmgr.toml") == 0) {
        c->state_dir = xasprintf("%s/.qqmgr", strcmp(c->dir, "/") ? c->dir : "");
    } else {
        c->state_dir = xasprintf("%s/.qqmgr/%s", strcmp(c->dir, "/") ? c->dir : "", base);
    }

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
    if (check_schema(c, err) < 0)
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
    _cleanup_free_ char *g = jn ? got(jn) : xstrdup("?");
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

int config_check_vm(const config *c, const char *name, qq_err *err)
{
    return config_has_vm(c, name) ? 0 : no_such(c, c->vms, "VM", "VMs", name, err);
}

int config_check_img(const config *c, const char *name, qq_err *err)
{
    return c->imgs && json_object_get(c->imgs, name) ? 0 : no_such(c, c->imgs, "image", "images", name, err);
}
size_t config_img_count(const config *c) { return c->imgs ? json_object_size(c->imgs) : 0; }
const char *config_img_name(const config *c, size_t i) { return nth_key(c, c->imgs, i); }

int config_vm_ssh_port(const config *c, const char *name)
{
    json_t *vm = c->vms ? json_object_get(c->vms, name) : NULL;
    json_t *port = vm ? json_object_get(json_object_get(vm, "ssh"), "port") : NULL;
    if (!port)
        return SSH_PORT_NONE;
    return json_is_string(port) ? SSH_PORT_AUTO : (int)json_integer_value(port);
}

char *config_vm_dir(const config *c, const char *name)
{
    return layout_vm_dir(c->state_dir, name);
}

/* ------------------------------------------------------------------ images */

static char *img_path_of(const config *c, const char *name, json_t *img)
{
    const char *builder = json_string_value(json_object_get(img, "builder"));
    const char *format = json_string_value(json_object_get(img, "format"));
    bool raw = builder && strcmp(builder, "raw") == 0 && !(format && strcmp(format, "qcow2") == 0);
    _cleanup_free_ char *dir = layout_img_dir(c->state_dir, name);
    return layout_path(dir, raw ? LAYOUT_IMG_RAW : LAYOUT_IMG_QCOW2);
}

static void download_of(json_t *t, img_download *d)
{
    d->url = xstrdup(json_string_value(json_object_get(t, "url")));
    d->sha256sum = xstrdup(json_string_value(json_object_get(t, "sha256sum")));
}

static void download_free(img_download *d)
{
    free(d->url);
    free(d->sha256sum);
    free(d->filename);
}

int config_img(const config *c, const char *name, img_spec *out, qq_err *err)
{
    memset(out, 0, sizeof *out);
    json_t *img = c->imgs ? json_object_get(c->imgs, name) : NULL;
    if (!img)
        return config_check_img(c, name, err);
    out->name = xstrdup(name);
    out->builder = xstrdup(json_string_value(json_object_get(img, "builder")));
    out->cloud_init = strcmp(out->builder, "cloud-init") == 0;
    const char *fmt = json_string_value(json_object_get(img, "format"));
    out->format = out->cloud_init || (fmt && strcmp(fmt, "qcow2") == 0) ? "qcow2" : "raw";
    json_t *size = json_object_get(img, "img_size");
    if (json_is_integer(size)) {
        out->size_bytes = (unsigned long long)json_integer_value(size);
        out->img_size = xasprintf("%llu", out->size_bytes);
    } else {
        out->img_size = xstrdup(json_string_value(size));
        config_parse_size(out->img_size, &out->size_bytes);
    }
    out->dir = layout_img_dir(c->state_dir, name);
    out->path = img_path_of(c, name, img);

    /* the rest was validated by check_img */
    json_t *v, *e;
    size_t i;
    if ((v = json_object_get(img, "base_img")))
        download_of(v, &out->base_img);
    v = json_object_get(img, "templates");
    out->ntemplates = json_array_size(v);
    out->templates = xcalloc(out->ntemplates + 1, sizeof *out->templates);
    json_array_foreach(v, i, e) {
        out->templates[i].template = xstrdup(json_string_value(json_object_get(e, "template")));
        out->templates[i].output = xstrdup(json_string_value(json_object_get(e, "output")));
    }
    v = json_object_get(img, "sources");
    out->nsources = json_array_size(v);
    out->sources = xcalloc(out->nsources + 1, sizeof *out->sources);
    json_array_foreach(v, i, e) {
        img_download *d = &out->sources[i];
        download_of(e, d);
        json_t *fn = json_object_get(e, "filename");
        const char *slash = strrchr(d->url, '/');
        d->filename = xstrdup(fn ? json_string_value(fn) : slash && slash[1] ? slash + 1 : d->url);
    }
    if ((v = json_object_get(img, "env_hook"))) {
        size_t n = 0;
        config_split_args(json_string_value(json_object_get(v, "interpreter")), &out->hook_argv, &n, NULL);
        strv_push(&out->hook_argv, &n, xstrdup(json_string_value(json_object_get(v, "script"))));
    }
    out->build_args = xcalloc(1, sizeof *out->build_args);
    json_array_foreach(json_object_get(img, "build_args"), i, e)
        strv_push(&out->build_args, &out->nbuild_args, xstrdup(json_string_value(e)));
    v = json_object_get(img, "build_timeout");
    out->build_timeout = v ? (int)(json_integer_value(v) > INT_MAX ? INT_MAX : json_integer_value(v)) : 0;
    v = json_object_get(img, "env");
    out->env = v ? json_deep_copy(v) : json_object();
    return 0;
}

void img_spec_free(img_spec *s)
{
    free(s->name);
    free(s->builder);
    free(s->img_size);
    free(s->path);
    free(s->dir);
    download_free(&s->base_img);
    for (size_t i = 0; i < s->ntemplates; i++) {
        free(s->templates[i].template);
        free(s->templates[i].output);
    }
    free(s->templates);
    for (size_t i = 0; i < s->nsources; i++)
        download_free(&s->sources[i]);
    free(s->sources);
    strv_free(s->hook_argv);
    strv_free(s->build_args);
    if (s->env)
        json_decref(s->env);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ args */

int config_split_args(const char *s, char ***argv, size_t *argc, qq_err *err)
{
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            return 0;
        sbuf arg = SBUF_INIT;
        while (*p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
            if (*p == '\'' || *p == '"') {
                char q = *p++;
                const char *end = strchr(p, q);
                if (!end) {
                    sbuf_free(&arg);
                    return qq_fail(err, QQ_EXIT_USAGE, "unterminated %c quote in \"%s\"", q, s);
                }
                sbuf_add(&arg, p, (size_t)(end - p));
                if (end == p && arg.len == 0)
                    sbuf_add(&arg, "", 0); /* '' is an empty argument */
                p = end + 1;
            } else {
                sbuf_addc(&arg, *p++);
            }
        }
        char **n = realloc(*argv, (*argc + 2) * sizeof **argv);
        if (!n)
            abort();
        *argv = n;
        (*argv)[(*argc)++] = sbuf_steal(&arg);
        (*argv)[*argc] = NULL;
    }
}

/* ------------------------------------------------------------------ variables */

/* Variables are resolved by the template engine itself, lazily: every string
 * var holding "{{" (in [vars], [vars.NS] tables and arrays, [vm.NAME.vars]) is
 * a unit. When an execution reads a unit's raw string out of the data (a field,
 * index, range, printing a container: tmpl's lookup hook), the unit is
 * rendered once with the same hook, cached, and the rendered string is what
 * the template sees. A unit read while it is being rendered is a real cycle,
 * reported with its chain. So any construct that renders in Go resolves the
 * same here, and nothing scans template text. */
typedef struct unit {
    json_t *raw;            /* the string node in the data tree (the key of the table) */
    char *path;             /* config path for errors: "vars.a", "vm.x.vars.b[2]" */
    json_t *value;          /* owned: the rendered string, once done */
    int state;              /* 0 new, 1 rendering, 2 done */
} unit;

typedef struct resolver {
    const config *c;
    json_t *data;           /* root data */
    json_t *imgs;           /* data's .img: reads of it record the images used */
    unit *units;            /* open addressing by raw pointer; nslots a power of 2 */
    size_t nslots, nunits;
    unit *stack[64];        /* units being rendered, outermost first */
    size_t depth;
    json_t *images_used;    /* object used as a set */
    qq_err err;             /* the first error inside a unit (reported instead of the outer one) */
    bool failed;
} resolver;

static size_t slot_of(const resolver *r, const json_t *raw)
{
    uint64_t h = (uint64_t)(uintptr_t)raw;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 29) & (r->nslots - 1);
}

static unit *find_unit(resolver *r, const json_t *raw)
{
    if (!r->nslots)
        return NULL;
    for (size_t i = slot_of(r, raw);; i = (i + 1) & (r->nslots - 1)) {
        if (!r->units[i].raw)
            return NULL;
        if (r->units[i].raw == raw)
            return &r->units[i];
    }
}

static void add_unit(resolver *r, json_t *raw, const char *path)
{
    if ((r->nunits + 1) * 2 > r->nslots) {
        unit *old = r->units;
        size_t oldn = r->nslots;
        r->nslots = oldn ? oldn * 2 : 16;
        r->units = xcalloc(r->nslots, sizeof *r->units);
        for (size_t i = 0; i < oldn; i++)
            if (old[i].raw) {
                size_t j = slot_of(r, old[i].raw);
                while (r->units[j].raw)
                    j = (j + 1) & (r->nslots - 1);
                r->units[j] = old[i];
            }
        free(old);
    }
    size_t j = slot_of(r, raw);
    while (r->units[j].raw)
        j = (j + 1) & (r->nslots - 1);
    r->units[j] = (unit){ .raw = raw, .path = xstrdup(path) };
    r->nunits++;
}

static void path_truncate(sbuf *path, size_t len)
{
    if (path->buf) {
        path->len = len;
        path->buf[len] = '\0';
    }
}

/* Every templated string under v (a var's value) becomes a unit. */
static void collect_units(resolver *r, json_t *v, sbuf *path)
{
    size_t mark = path->len;
    if (json_is_string(v)) {
        if (!tmpl_is_plain(json_string_value(v)))
            add_unit(r, v, sbuf_str(path));
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            toml_path_append(path, k);
            collect_units(r, e, path);
            path_truncate(path, mark);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            toml_path_append_index(path, i);
            collect_units(r, json_array_get(v, i), path);
            path_truncate(path, mark);
        }
    }
}

/* The vars of one scope (the root: every key but vm/img/net; a VM's: all but ssh). */
static void collect_scope(resolver *r, json_t *scope, const char *base, const char *const *skip)
{
    const char *k;
    json_t *v;
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    json_object_foreach(scope, k, v) {
        bool skipped = false;
        for (const char *const *s = skip; *s; s++)
            skipped = skipped || strcmp(*s, k) == 0;
        if (skipped)
            continue;
        path_key(&p, base, k);
        collect_units(r, v, &p);
    }
}

static void resolver_free(resolver *r)
{
    for (size_t i = 0; i < r->nslots; i++)
        if (r->units[i].raw) {
            free(r->units[i].path);
            if (r->units[i].value)
                json_decref(r->units[i].value);
        }
    free(r->units);
}

/* An error inside a unit: the first one recorded in r->err wins (it is the
 * most precise); the executions around it fail too. */
static json_t *unit_fail(resolver *r, tmpl_error *te)
{
    r->failed = true;
    size_t n = strlen(r->err.msg);
    if (n >= sizeof te->msg)
        n = sizeof te->msg - 1;
    memcpy(te->msg, r->err.msg, n);
    te->msg[n] = '\0';
    return NULL;
}

/* tmpl's lookup hook: see above. */
static json_t *lookup(void *ud, json_t *container, const char *key, json_t *value, tmpl_error *te)
{
    resolver *r = ud;
    if (container && container == r->imgs && key)
        json_object_set_new(r->images_used, key, json_true());
    if (!json_is_string(value))
        return value;
    unit *u = find_unit(r, value);
    if (!u)
        return value;
    if (u->state == 2)
        return u->value;
    if (r->failed)
        return unit_fail(r, te);
    if (u->state == 1) {
        /* a var that needs its own value: name the chain, from where it closes */
        _cleanup_sbuf_ sbuf cyc = SBUF_INIT;
        size_t start = 0;
        for (size_t i = 0; i < r->depth; i++)
            if (r->stack[i] == u)
                start = i;
        for (size_t i = start; i < r->depth; i++)
            sbuf_addf(&cyc, "%s -> ", r->stack[i]->path);
        sbuf_adds(&cyc, u->path);
        cfail(r->c, &r->err, u->path, "variable cycle: %s", sbuf_str(&cyc));
        return unit_fail(r, te);
    }
    if (r->depth >= sizeof r->stack / sizeof *r->stack) {
        cfail(r->c, &r->err, u->path, "variables nest too deeply (more than %zu levels)", r->depth);
        return unit_fail(r, te);
    }
    u->state = 1;
    r->stack[r->depth++] = u;
    const char *s = json_string_value(u->raw);
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    tmpl_error ie = { { 0 } };
    int rc = tmpl_render_with(u->path, s, r->data, lookup, r, &out, &ie);
    r->depth--;
    if (rc < 0) {
        if (!r->failed)
            cfail(r->c, &r->err, u->path, "%s (in \"%.*s%s\")", ie.msg, 120, s, strlen(s) > 120 ? "…" : "");
        return unit_fail(r, te);
    }
    u->value = json_string(sbuf_str(&out));
    if (!u->value) {
        cfail(r->c, &r->err, u->path, "renders to text that is not valid UTF-8");
        return unit_fail(r, te);
    }
    u->state = 2;
    return u->value;
}

/* Render the template text s (at config path `path`) with the VM's data. */
static int render_text(resolver *r, const char *path, const char *s, sbuf *out, qq_err *err)
{
    tmpl_error te = { { 0 } };
    if (tmpl_render_with(path, s, r->data, lookup, r, out, &te) == 0)
        return 0;
    if (r->failed) {
        if (err)
            *err = r->err;
        return -1;
    }
    return cfail(r->c, err, path, "%s (in \"%.*s%s\")", te.msg, 120, s, strlen(s) > 120 ? "…" : "");
}

/* A copy of v with every unit resolved (the VM's vars as .vm sees them). */
static json_t *resolved_copy(resolver *r, json_t *v, qq_err *err)
{
    if (json_is_string(v)) {
        tmpl_error te = { { 0 } };
        json_t *nv = lookup(r, NULL, NULL, v, &te);
        if (!nv) {
            if (err)
                *err = r->err;
            return NULL;
        }
        return json_incref(nv);
    }
    if (json_is_object(v) || json_is_array(v)) {
        bool obj = json_is_object(v);
        json_t *o = obj ? json_object() : json_array();
        void *it = obj ? json_object_iter(v) : NULL;
        for (size_t i = 0; obj ? it != NULL : i < json_array_size(v); i++) {
            json_t *e = obj ? json_object_iter_value(it) : json_array_get(v, i);
            json_t *ne = resolved_copy(r, e, err);
            if (!ne) {
                json_decref(o);
                return NULL;
            }
            if (obj) {
                json_object_set_new(o, json_object_iter_key(it), ne);
                it = json_object_iter_next(v, it);
            } else {
                json_array_append_new(o, ne);
            }
        }
        return o;
    }
    return json_incref(v);
}

/* Render one ssh option value (a string, or the strings of an array) into a
 * new value; a rendered control character is an error as a written one is. */
static json_t *render_ssh_value(resolver *r, json_t *v, const char *path, qq_err *err)
{
    if (json_is_array(v)) {
        json_t *a = json_array();
        _cleanup_sbuf_ sbuf p = SBUF_INIT;
        for (size_t i = 0; i < json_array_size(v); i++) {
            sbuf_reset(&p);
            sbuf_adds(&p, path);
            toml_path_append_index(&p, i);
            json_t *e = render_ssh_value(r, json_array_get(v, i), sbuf_str(&p), err);
            if (!e) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, e);
        }
        return a;
    }
    const char *s = json_string_value(v);
    if (!s || tmpl_is_plain(s))
        return json_incref(v);
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    if (render_text(r, path, s, &out, err) < 0)
        return NULL;
    for (const unsigned char *q = (const unsigned char *)sbuf_str(&out); *q; q++)
        if (*q < 0x20 || *q == 0x7f) {
            _cleanup_json_ json_t *j = json_string(sbuf_str(&out));
            _cleanup_free_ char *g = j ? got(j) : xstrdup("?");
            cfail(r->c, err, path, "renders to an ssh value with a control character: %s", g);
            return NULL;
        }
    json_t *nv = json_string(sbuf_str(&out));
    if (!nv)
        cfail(r->c, err, path, "renders to text that is not valid UTF-8");
    return nv;
}

/* [ssh] or [vm.NAME.ssh] (without port and vm_port), rendered into dst. */
static int render_ssh_table(resolver *r, json_t *src, const char *base, json_t *dst, qq_err *err)
{
    const char *k;
    json_t *v;
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    json_object_foreach(src, k, v) {
        if (strcmp(base, "ssh") != 0 && (strcmp(k, "port") == 0 || strcmp(k, "vm_port") == 0))
            continue;
        path_key(&p, base, k);
        json_t *nv = render_ssh_value(r, v, sbuf_str(&p), err);
        if (!nv)
            return -1;
        json_object_set_new(dst, k, nv);
    }
    return 0;
}

int config_vm(const config *c, const char *name, int auto_port, vm_spec *out, qq_err *err)
{
    memset(out, 0, sizeof *out);
    json_t *vm = c->vms ? json_object_get(c->vms, name) : NULL;
    if (!vm)
        return config_check_vm(c, name, err);
    _cleanup_sbuf_ sbuf base = SBUF_INIT;
    sbuf_adds(&base, "vm");
    toml_path_append(&base, name);

    out->name = xstrdup(name);
    out->cfg = c;
    out->qemu_bin = xstrdup(c->qemu_bin);
    out->state_dir = config_vm_dir(c, name);
    out->ssh_port = SSH_PORT_NONE;
    out->ssh_vm_port = 22;
    out->ssh_opts = json_object();
    out->ssh_global = json_object();
    json_t *ssh = json_object_get(vm, "ssh");
    if (ssh) {
        json_t *v;
        if ((v = json_object_get(ssh, "port")))
            out->ssh_port = json_is_string(v) ? SSH_PORT_AUTO : (int)json_integer_value(v);
        if ((v = json_object_get(ssh, "vm_port")))
            out->ssh_vm_port = (int)json_integer_value(v);
    }
    out->ssh_port_used = out->ssh_port == SSH_PORT_AUTO ? auto_port : out->ssh_port;

    /* the data tree: globals at top level, .vm, .img */
    _cleanup_json_ json_t *data = c->vars ? json_deep_copy(c->vars) : json_object();
    json_t *vmdata = json_object_get(vm, "vars") ? json_deep_copy(json_object_get(vm, "vars")) : json_object();
    json_t *sshd = json_object();
    if (out->ssh_port != SSH_PORT_NONE)
        json_object_set_new(sshd, "port", json_integer(out->ssh_port_used));
    json_object_set_new(sshd, "vm_port", json_integer(out->ssh_vm_port));
    json_object_set_new(vmdata, "ssh", sshd);
    json_object_set_new(data, "vm", vmdata);
    json_t *imgs = json_object();
    if (c->imgs) {
        const char *k;
        json_t *v;
        json_object_foreach(c->imgs, k, v) {
            _cleanup_free_ char *p = img_path_of(c, k, v);
            json_object_set_new(imgs, k, json_string(p));
        }
    }
    json_object_set_new(data, "img", imgs);
    if (c->nets)
        json_object_set_new(data, "net", net_data(c));

    _cleanup_json_ json_t *used = json_object();
    _cleanup_(resolver_free) resolver r = { .c = c, .data = data, .imgs = imgs, .images_used = used };
    static const char *const root_skip[] = { "vm", "img", "net", NULL };
    static const char *const vm_skip[] = { "ssh", NULL };
    collect_scope(&r, data, "vars", root_skip);
    _cleanup_sbuf_ sbuf vbase = SBUF_INIT;
    sbuf_adds(&vbase, sbuf_str(&base));
    toml_path_append(&vbase, "vars");
    collect_scope(&r, vmdata, sbuf_str(&vbase), vm_skip);
    int rc = 0;

    json_t *cmd = json_object_get(vm, "cmd");
    _cleanup_sbuf_ sbuf p = SBUF_INIT, outb = SBUF_INIT;
    out->args = calloc(1, sizeof *out->args);
    if (!out->args)
        abort();
    for (size_t i = 0; rc == 0 && i < json_array_size(cmd); i++) {
        sbuf_reset(&p);
        sbuf_adds(&p, sbuf_str(&base));
        toml_path_append(&p, "cmd");
        toml_path_append_index(&p, i);
        const char *s = json_string_value(json_array_get(cmd, i));
        sbuf_reset(&outb);
        if (!tmpl_is_plain(s)) {
            if ((rc = render_text(&r, sbuf_str(&p), s, &outb, err)) < 0)
                break;
            s = sbuf_str(&outb);
        }
        size_t before = out->nargs;
        if (config_split_args(s, &out->args, &out->nargs, err) == 0) {
            char **w = realloc(out->arg_where, (out->nargs + 1) * sizeof *w);
            if (!w)
                abort();
            out->arg_where = w;
            for (size_t k = before; k < out->nargs; k++)
                w[k] = xstrdup(sbuf_str(&p));
            w[out->nargs] = NULL;
        } else {
            qq_err_prefix(err, "%s", sbuf_str(&p));
            char where[PATH_MAX + 64];
            config_where(c, sbuf_str(&p), where, sizeof where);
            qq_err_prefix(err, "%s", where);
            rc = -1;
        }
    }
    /* ssh values are templates too, with the same data */
    if (rc == 0 && c->ssh)
        rc = render_ssh_table(&r, c->ssh, "ssh", out->ssh_global, err);
    if (rc == 0 && ssh) {
        sbuf_reset(&p);
        sbuf_adds(&p, sbuf_str(&base));
        toml_path_append(&p, "ssh");
        rc = render_ssh_table(&r, ssh, sbuf_str(&p), out->ssh_opts, err);
    }
    if (rc == 0 && !(out->vars = resolved_copy(&r, vmdata, err)))
        rc = -1;

    size_t n = json_object_size(used), j = 0;
    out->images = calloc(n + 1, sizeof *out->images);
    if (!out->images)
        abort();
    const char *k;
    json_t *v;
    json_object_foreach(used, k, v) out->images[j++] = xstrdup(k);
    if (rc < 0) {
        vm_spec_free(out);
        return -1;
    }
    return 0;
}

void vm_spec_free(vm_spec *s)
{
    free(s->name);
    free(s->qemu_bin);
    for (size_t i = 0; i < s->nargs; i++) {
        free(s->args[i]);
        if (s->arg_where)
            free(s->arg_where[i]);
    }
    free(s->args);
    free(s->arg_where);
    free(s->state_dir);
    if (s->ssh_opts)
        json_decref(s->ssh_opts);
    if (s->ssh_global)
        json_decref(s->ssh_global);
    if (s->images)
        for (char **p = s->images; *p; p++)
            free(*p);
    free(s->images);
    if (s->vars)
        json_decref(s->vars);
    memset(s, 0, sizeof *s);
}
