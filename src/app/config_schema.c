/* config_schema — check a parsed qqmgr.toml against the schema: sections,
 * keys, types, ranges, names, ssh keywords, NUL characters (see config_int.h). */
#include "config.h"
#include "config_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "../base/strdist.h"
#include "../base/toml.h"
#include "../base/xalloc.h"
#include "ssh_keywords.h"

static int check_ssh_value(const config *c, qq_err *err, const char *path, json_t *v)
{
    if (json_is_string(v)) {
        for (const unsigned char *s = (const unsigned char *)json_string_value(v); *s; s++)
            if (*s < 0x20 || *s == 0x7f) {
                _cleanup_free_ char *g = cfg_got(v);
                return cfg_fail(c, err, path, "an ssh option value cannot contain a control character (%s), not %s",
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
                return cfg_fail(c, err, sbuf_str(&p), "an ssh option value must be a string, number or boolean, not %s",
                             json_is_array(e) ? "an array" : "a table");
            if (check_ssh_value(c, err, sbuf_str(&p), e) < 0)
                return -1;
        }
        return 0;
    }
    _cleanup_free_ char *g = cfg_got_typed(v);
    return cfg_fail(c, err, path, "an ssh option must be a string, number, boolean or array, not %s", g);
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
    _cleanup_free_ char *g = j ? cfg_got(j) : xstrdup("?");
    if (best)
        return cfg_fail(c, err, path, "unknown ssh_config keyword %s (did you mean %s?)", g, best);
    return cfg_fail(c, err, path, "unknown ssh_config keyword %s (see ssh_config(5)%s)", g,
                 vm ? "; qqmgr's own keys here are port and vm_port" : "");
}

static int check_ssh_table(const config *c, qq_err *err, const char *base, json_t *t, bool vm)
{
    const char *k;
    json_t *v;
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    json_object_foreach(t, k, v) {
        cfg_path_key(&p, base, k);
        if (vm && strcmp(k, "port") == 0) {
            if (json_is_string(v)) {
                if (strcmp(json_string_value(v), "auto") != 0)
                    return cfg_fail(c, err, sbuf_str(&p), "must be a port number (1-65535), 0 or \"auto\", not \"%s\"",
                                 json_string_value(v));
            } else if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535) {
                _cleanup_free_ char *g = cfg_got(v);
                return cfg_fail(c, err, sbuf_str(&p), "must be a port number (1-65535), 0 or \"auto\", not %s", g);
            }
            continue;
        }
        if (vm && strcmp(k, "vm_port") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
                _cleanup_free_ char *g = cfg_got(v);
                return cfg_fail(c, err, sbuf_str(&p), "must be a port number (1-65535), not %s", g);
            }
            continue;
        }
        if (strcasecmp(k, "Host") == 0 || strcasecmp(k, "Match") == 0)
            return cfg_fail(c, err, sbuf_str(&p), "%s cannot be set: qqmgr writes the VM's Host block itself", k);
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
    _cleanup_free_ char *g = cfg_got_typed(v);
    return cfg_fail(c, err, path, "must be %s, not %s", what, g);
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
            _cleanup_free_ char *g = cfg_got_typed(e);
            return cfg_fail(c, err, sbuf_str(&p), "must be a string, not %s", g);
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
    _cleanup_free_ char *g = j ? cfg_got(j) : xstrdup("?");
    return cfg_fail(c, err, path, "the %s name %s is not valid: a name has " NAME_RULE, kind, g);
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
            return cfg_fail(c, err, sbuf_str(path), "contains a NUL character (\\u0000), which no argument, path, "
                         "name or ssh value can hold");
    } else if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            const char *k = json_object_iter_key(it);
            toml_path_append_n(path, k, json_object_iter_key_len(it));
            if (strlen(k) != json_object_iter_key_len(it))
                return cfg_fail(c, err, sbuf_str(path), "this key contains a NUL character (\\u0000), "
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
            cfg_path_key(&p, base, k);
            _cleanup_sbuf_ sbuf list = SBUF_INIT;
            for (const char *const *a = allowed; *a; a++)
                sbuf_addf(&list, "%s%s", a == allowed ? "" : ", ", *a);
            return cfg_fail(c, err, sbuf_str(&p), "unknown key (expected one of: %s)", sbuf_str(&list));
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
        return cfg_fail(c, err, sbuf_str(&base), "missing required key \"cmd\"");
    cfg_path_key(&p, sbuf_str(&base), "cmd");
    if (want_string_array(c, err, sbuf_str(&p), cmd) < 0)
        return -1;
    json_t *vars = json_object_get(vm, "vars");
    if (vars) {
        cfg_path_key(&p, sbuf_str(&base), "vars");
        if (want_type(c, err, sbuf_str(&p), vars, JSON_OBJECT, "a table") < 0)
            return -1;
        if (json_object_get(vars, "ssh")) {
            _cleanup_sbuf_ sbuf q = SBUF_INIT;
            cfg_path_key(&q, sbuf_str(&p), "ssh");
            return cfg_fail(c, err, sbuf_str(&q), "reserved name: .vm.ssh holds the VM's ssh port and vm_port");
        }
    }
    json_t *ssh = json_object_get(vm, "ssh");
    if (ssh) {
        cfg_path_key(&p, sbuf_str(&base), "ssh");
        if (want_type(c, err, sbuf_str(&p), ssh, JSON_OBJECT, "a table") < 0)
            return -1;
        if (check_ssh_table(c, err, sbuf_str(&p), ssh, true) < 0)
            return -1;
    }
    return 0;
}

/* [net.NAME]: a private network the VMs of the config share (vnet.h). It
 * has no keys: the UDP port and multicast group of the multicast networks
 * it replaced are an error that says what to write now. */
static int check_net(const config *c, qq_err *err, const char *name, json_t *net)
{
    _cleanup_sbuf_ sbuf base = SBUF_INIT, p = SBUF_INIT;
    if (named_table(c, err, "net", "network", name, net, &base) < 0)
        return -1;
    static const char *const retired[] = { "port", "group", NULL };
    for (const char *const *k = retired; *k; k++)
        if (json_object_get(net, *k)) {
            cfg_path_key(&p, sbuf_str(&base), *k);
            return cfg_fail(c, err, sbuf_str(&p),
                            "networks are private switches now, with no UDP port or group: remove it, and join the "
                            "network with `-netdev vde,id=ID,sock={{.net.%s.sock}}`", name);
        }
    static const char *const keys[] = { NULL };
    return check_table_keys(c, err, sbuf_str(&base), net, keys);
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
        cfg_path_key(&p, base, *k);
        if (!v && strcmp(*k, "filename") == 0) {
            /* optional: the URL's last path segment */
            const char *url = json_string_value(json_object_get(t, "url"));
            const char *slash = url ? strrchr(url, '/') : NULL;
            const char *last = slash ? slash + 1 : url;
            if (!last || !plain_name(last) || strpbrk(last, "?#"))
                return cfg_fail(c, err, base, "the url names no file: give filename = \"…\"");
            continue;
        }
        if (!v)
            return cfg_fail(c, err, base, "missing required key \"%s\"", *k);
        if (want_type(c, err, sbuf_str(&p), v, JSON_STRING, "a string") < 0)
            return -1;
        const char *s = json_string_value(v);
        if (strcmp(*k, "sha256sum") == 0) {
            if (strlen(s) != 64 || strspn(s, "0123456789abcdefABCDEF") != 64) {
                _cleanup_free_ char *g = cfg_got(v);
                return cfg_fail(c, err, sbuf_str(&p), "must be 64 hexadecimal digits, not %s", g);
            }
        } else if (strcmp(*k, "filename") == 0) {
            if (!plain_name(s))
                return cfg_fail(c, err, sbuf_str(&p), "must be a plain file name (no '/', no '..'), not \"%s\"", s);
        } else if (!*s) {
            return cfg_fail(c, err, sbuf_str(&p), "must not be empty");
        }
    }
    return 0;
}

/* An image's env goes to env_hook and into the build's record as JSON,
 * which has no nan or inf: such a float is refused by place. */
static int check_finite(const config *c, qq_err *err, sbuf *path, json_t *v)
{
    size_t mark = path->len;
    int r = 0;
    if (json_is_real(v) && !isfinite(json_real_value(v))) {
        _cleanup_free_ char *g = cfg_got(v);
        return cfg_fail(c, err, sbuf_str(path), "an image's env cannot hold %s: it goes to env_hook as JSON, "
                        "which has no nan or inf (write it as a string, \"%s\")", g, g);
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            toml_path_append(path, k);
            r = check_finite(c, err, path, e);
            path->len = mark;
            path->buf[mark] = '\0';
            if (r < 0)
                return -1;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            toml_path_append_index(path, i);
            r = check_finite(c, err, path, json_array_get(v, i));
            path->len = mark;
            path->buf[mark] = '\0';
            if (r < 0)
                return -1;
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
        return cfg_fail(c, err, b, "missing required key \"builder\" (\"raw\" or \"cloud-init\")");
    cfg_path_key(&p, b, "builder");
    if (want_type(c, err, sbuf_str(&p), builder, JSON_STRING, "a string") < 0)
        return -1;
    const char *bs = json_string_value(builder);
    bool ci = strcmp(bs, "cloud-init") == 0;
    if (!ci && strcmp(bs, "raw") != 0)
        return cfg_fail(c, err, sbuf_str(&p), "unknown builder \"%s\" (expected \"raw\" or \"cloud-init\")", bs);
    json_t *format = json_object_get(img, "format");
    if (format) {
        cfg_path_key(&p, b, "format");
        if (ci)
            return cfg_fail(c, err, sbuf_str(&p), "only the raw builder takes a format (cloud-init images are qcow2)");
        if (!json_is_string(format) ||
            (strcmp(json_string_value(format), "raw") != 0 && strcmp(json_string_value(format), "qcow2") != 0))
            return cfg_fail(c, err, sbuf_str(&p), "expected \"raw\" or \"qcow2\"");
    }
    json_t *size = json_object_get(img, "img_size");
    if (!size)
        return cfg_fail(c, err, b, "missing required key \"img_size\" (such as \"10G\")");
    cfg_path_key(&p, b, "img_size");
    unsigned long long bytes;
    if (json_is_integer(size) ? json_integer_value(size) <= 0
                              : !json_is_string(size) || config_parse_size(json_string_value(size), &bytes) < 0 ||
                                    bytes == 0) {
        _cleanup_free_ char *g = cfg_got(size);
        return cfg_fail(c, err, sbuf_str(&p),
                     "must be a size such as \"10G\", \"512M\" or a positive number of bytes, not %s", g);
    }
    json_t *v;
    if ((v = json_object_get(img, "build_args"))) {
        cfg_path_key(&p, b, "build_args");
        if (want_string_array(c, err, sbuf_str(&p), v) < 0)
            return -1;
    }
    if ((v = json_object_get(img, "build_timeout"))) {
        cfg_path_key(&p, b, "build_timeout");
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            _cleanup_free_ char *g = cfg_got(v);
            return cfg_fail(c, err, sbuf_str(&p), "must be a positive number of seconds, not %s", g);
        }
    }
    if ((v = json_object_get(img, "base_img"))) {
        cfg_path_key(&p, b, "base_img");
        if (check_url_sum(c, err, sbuf_str(&p), v, false) < 0)
            return -1;
    } else if (ci) {
        return cfg_fail(c, err, b, "a cloud-init image needs [%s.base_img] with url and sha256sum", b);
    }
    if ((v = json_object_get(img, "env"))) {
        cfg_path_key(&p, b, "env");
        if (want_type(c, err, sbuf_str(&p), v, JSON_OBJECT, "a table") < 0 || check_finite(c, err, &p, v) < 0)
            return -1;
    }
    if ((v = json_object_get(img, "env_hook"))) {
        cfg_path_key(&p, b, "env_hook");
        static const char *const hk[] = { "interpreter", "script", NULL };
        if (want_type(c, err, sbuf_str(&p), v, JSON_OBJECT, "a table") < 0 ||
            check_table_keys(c, err, sbuf_str(&p), v, hk) < 0)
            return -1;
        for (const char *const *k = hk; *k; k++) {
            json_t *e = json_object_get(v, *k);
            cfg_path_key(&q, sbuf_str(&p), *k);
            if (!e)
                return cfg_fail(c, err, sbuf_str(&p), "missing required key \"%s\"", *k);
            if (want_type(c, err, sbuf_str(&q), e, JSON_STRING, "a string") < 0)
                return -1;
            if (strcmp(*k, "interpreter") == 0) {
                /* split like a cmd entry: "python3 -u" */
                _cleanup_strv_ char **words = NULL;
                size_t n = 0;
                qq_err why = { 0 };
                if (config_split_args(json_string_value(e), &words, &n, &why) < 0)
                    return cfg_fail(c, err, sbuf_str(&q), "%s", why.msg);
                if (n == 0) {
                    _cleanup_free_ char *g = cfg_got(e);
                    return cfg_fail(c, err, sbuf_str(&q), "must name a program, not %s", g);
                }
            }
        }
    }
    if ((v = json_object_get(img, "templates"))) {
        cfg_path_key(&p, b, "templates");
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
                cfg_path_key(&q, tp, *k);
                if (!e)
                    return cfg_fail(c, err, tp, "missing required key \"%s\"", *k);
                if (want_type(c, err, sbuf_str(&q), e, JSON_STRING, "a string") < 0)
                    return -1;
                if (strcmp(*k, "output") == 0 && !plain_name(json_string_value(e)))
                    return cfg_fail(c, err, sbuf_str(&q), "must be a plain file name (no '/', no '..'), not \"%s\"",
                                 json_string_value(e));
            }
        }
    }
    if ((v = json_object_get(img, "sources"))) {
        cfg_path_key(&p, b, "sources");
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

int config_check_schema(config *c, qq_err *err)
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
                return cfg_fail(c, err, p, "must not be empty");
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
                return cfg_fail(c, err, p, "reserved name: .%s is set by qqmgr", *r);
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
            return cfg_fail(c, err, "vars.net", "reserved name when the config has [net] sections: .net holds the networks");
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
