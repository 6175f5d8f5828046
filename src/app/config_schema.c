/* config_schema — the schema of qqmgr.toml as data (one row per key, see
 * config_int.h), the walk that checks a document against it at load, and
 * the readers that read keys through the same rows. */
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
 * table, qqmgr's own keys, the rows of s, first). */
static int unknown_ssh_keyword(const cfg_ctx *x, const char *path, const char *k, const cfg_schema *s)
{
    const char *own[8] = { NULL };
    size_t n = 0;
    for (const cfg_row *r = s->rows; r->key && n + 1 < sizeof own / sizeof *own; r++)
        own[n++] = r->key;
    const char *mine = n ? str_closest(k, own) : NULL;
    const char *theirs = str_closest(k, ssh_keywords);
    const char *best = mine && (!theirs || str_distance(k, mine) <= str_distance(k, theirs)) ? mine : theirs;
    _cleanup_json_ json_t *j = json_string(k);
    _cleanup_free_ char *g = j ? cfg_got(j) : xstrdup("?");
    if (best)
        return cfg_fail(x->c, x->err, path, "unknown ssh_config keyword %s (did you mean %s?)", g, best);
    _cleanup_sbuf_ sbuf mention = SBUF_INIT;
    for (size_t i = 0; i < n; i++)
        sbuf_addf(&mention, "%s%s", i == 0 ? "; qqmgr's own keys here are " : i + 1 == n ? " and " : ", ", own[i]);
    return cfg_fail(x->c, x->err, path, "unknown ssh_config keyword %s (see ssh_config(5)%s)", g, sbuf_str(&mention));
}

/* A key of an ssh table that is not qqmgr's own: an ssh_config keyword. */
static int ssh_other(const cfg_ctx *x, const char *path, const char *k, json_t *v, const cfg_schema *s)
{
    if (strcasecmp(k, "Host") == 0 || strcasecmp(k, "Match") == 0)
        return cfg_fail(x->c, x->err, path, "%s cannot be set: qqmgr writes the VM's Host block itself", k);
    if (!ssh_keyword(k))
        return unknown_ssh_keyword(x, path, k, s);
    return check_ssh_value(x->c, x->err, path, v);
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


/* ------------------------------------------------------------------ row checks */

static int check_nonempty(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    return *json_string_value(v) ? 0 : cfg_fail(x->c, x->err, path, "must not be empty");
}

static int check_plain_name(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    if (plain_name(json_string_value(v)))
        return 0;
    return cfg_fail(x->c, x->err, path, "must be a plain file name (no '/', no '..'), not \"%s\"", json_string_value(v));
}

static int check_sha256(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    const char *s = json_string_value(v);
    if (strlen(s) == 64 && strspn(s, "0123456789abcdefABCDEF") == 64)
        return 0;
    _cleanup_free_ char *g = cfg_got(v);
    return cfg_fail(x->c, x->err, path, "must be 64 hexadecimal digits, not %s", g);
}

static int check_sha512(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    const char *s = json_string_value(v);
    if (strlen(s) == 128 && strspn(s, "0123456789abcdefABCDEF") == 128)
        return 0;
    _cleanup_free_ char *g = cfg_got(v);
    return cfg_fail(x->c, x->err, path, "must be 128 hexadecimal digits, not %s", g);
}

static int check_port_or_auto(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "auto") == 0)
            return 0;
        return cfg_fail(x->c, x->err, path, "must be a port number (1-65535), 0 or \"auto\", not \"%s\"",
                        json_string_value(v));
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 65535)
        return 0;
    _cleanup_free_ char *g = cfg_got(v);
    return cfg_fail(x->c, x->err, path, "must be a port number (1-65535), 0 or \"auto\", not %s", g);
}

static int check_port(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 65535)
        return 0;
    _cleanup_free_ char *g = cfg_got(v);
    return cfg_fail(x->c, x->err, path, "must be a port number (1-65535), not %s", g);
}

static int check_top_vars(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)path, (void)parent;
    static const char *const reserved[] = { "vm", "img", "img_self", "cloud_init_iso", NULL };
    for (const char *const *r = reserved; *r; r++)
        if (json_object_get(v, *r)) {
            char p[64];
            snprintf(p, sizeof p, "vars.%s", *r);
            return cfg_fail(x->c, x->err, p, "reserved name: .%s is set by qqmgr", *r);
        }
    return 0;
}

static int check_vm_vars(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    if (!json_object_get(v, "ssh"))
        return 0;
    _cleanup_sbuf_ sbuf q = SBUF_INIT;
    cfg_path_key(&q, path, "ssh");
    return cfg_fail(x->c, x->err, sbuf_str(&q), "reserved name: .vm.ssh holds the VM's ssh port and vm_port");
}

/* [net.NAME] port and group: the keys of the multicast networks that private
 * switches (vnet.h) replaced, explained. */
static int check_retired_net_key(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)v, (void)parent;
    return cfg_fail(x->c, x->err, path,
                    "networks are private switches now, with no UDP port or group: remove it, and join the "
                    "network with `-netdev vde,id=ID,sock={{.net.%s.sock}}`", x->name);
}

static int check_builder(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    const char *bs = json_string_value(v);
    if (strcmp(bs, "cloud-init") == 0 || strcmp(bs, "raw") == 0)
        return 0;
    return cfg_fail(x->c, x->err, path, "unknown builder \"%s\" (expected \"raw\" or \"cloud-init\")", bs);
}

static bool is_cloud_init(json_t *img)
{
    return strcmp(cfg_str(img, &cfg_img, IMG_BUILDER), "cloud-init") == 0;
}

static int check_format(const cfg_ctx *x, const char *path, json_t *v, json_t *img)
{
    if (is_cloud_init(img))
        return cfg_fail(x->c, x->err, path, "only the raw builder takes a format (cloud-init images are qcow2)");
    if (!json_is_string(v) || (strcmp(json_string_value(v), "raw") != 0 && strcmp(json_string_value(v), "qcow2") != 0))
        return cfg_fail(x->c, x->err, path, "expected \"raw\" or \"qcow2\"");
    return 0;
}

static int check_size(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    unsigned long long bytes;
    if (json_is_integer(v) ? json_integer_value(v) > 0
                           : json_is_string(v) && config_parse_size(json_string_value(v), &bytes) == 0 && bytes > 0)
        return 0;
    _cleanup_free_ char *g = cfg_got(v);
    return cfg_fail(x->c, x->err, path, "must be a size such as \"10G\", \"512M\" or a positive number of bytes, not %s", g);
}

static int check_timeout(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    if (json_is_integer(v) && json_integer_value(v) > 0)
        return 0;
    _cleanup_free_ char *g = cfg_got(v);
    return cfg_fail(x->c, x->err, path, "must be a positive number of seconds, not %s", g);
}

static int check_env(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    sbuf_adds(&p, path);
    return check_finite(x->c, x->err, &p, v);
}

/* split like a cmd entry: "python3 -u" */
static int check_interpreter(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    _cleanup_strv_ char **words = NULL;
    size_t n = 0;
    qq_err why = { 0 };
    if (config_split_args(json_string_value(v), &words, &n, &why) < 0)
        return cfg_fail(x->c, x->err, path, "%s", why.msg);
    if (n == 0) {
        _cleanup_free_ char *g = cfg_got(v);
        return cfg_fail(x->c, x->err, path, "must name a program, not %s", g);
    }
    return 0;
}

static int check_bool(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    if (json_is_boolean(v))
        return 0;
    _cleanup_free_ char *g = cfg_got_typed(v);
    return cfg_fail(x->c, x->err, path, "must be true or false, not %s", g);
}

/* a share's mount: an absolute guest directory, one line (it goes to the
 * guest's mount command over ssh, and into an fstab line) */
static int check_mount(const cfg_ctx *x, const char *path, json_t *v, json_t *parent)
{
    (void)parent;
    const char *s = json_string_value(v);
    bool plain = s[0] == '/';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == ' ')
            plain = false;
    if (plain)
        return 0;
    _cleanup_free_ char *g = cfg_got(v);
    return cfg_fail(x->c, x->err, path, "must be an absolute guest directory (starting with '/', no spaces or "
                    "control characters), not %s", g);
}

/* ------------------------------------------------------------------ table checks */

/* [vm.NAME.share.TAG]: TAG is the 9p mount tag the guest mounts by; QEMU
 * and the guest's kernel keep it short */
#define SHARE_TAG_MAX 31
static int check_share_table(const cfg_ctx *x, const char *path, json_t *t)
{
    (void)t;
    if (strlen(x->name) <= SHARE_TAG_MAX)
        return 0;
    return cfg_fail(x->c, x->err, path, "the share name \"%s\" is its 9p mount tag: at most %d characters",
                    x->name, SHARE_TAG_MAX);
}

static int check_top(const cfg_ctx *x, const char *path, json_t *t)
{
    (void)path;
    /* a config without [net] may keep a variable of that name */
    if (cfg_get(t, &cfg_top, TOP_NET) && json_object_get(cfg_get(t, &cfg_top, TOP_VARS), "net"))
        return cfg_fail(x->c, x->err, "vars.net", "reserved name when the config has [net] sections: .net holds the networks");
    return 0;
}

static int check_img_table(const cfg_ctx *x, const char *path, json_t *img)
{
    if (is_cloud_init(img) && !cfg_get(img, &cfg_img, IMG_BASE_IMG))
        return cfg_fail(x->c, x->err, path, "a cloud-init image needs [%s.base_img] with url and sha256sum or sha512sum", path);
    return 0;
}

/* a source without filename: the URL's last path segment names the file */
/* base_img and sources: sha256sum or sha512sum (or both: both are checked) */
static int check_download(const cfg_ctx *x, const char *path, json_t *t)
{
    if (cfg_get(t, &cfg_download, DL_SHA256SUM) || cfg_get(t, &cfg_download, DL_SHA512SUM))
        return 0;
    return cfg_fail(x->c, x->err, path, "missing required key \"sha256sum\" or \"sha512sum\"");
}

static int check_source(const cfg_ctx *x, const char *path, json_t *t)
{
    if (check_download(x, path, t) < 0)
        return -1;
    if (cfg_get(t, &cfg_source, DL_FILENAME))
        return 0;
    const char *url = cfg_str(t, &cfg_source, DL_URL);
    const char *slash = strrchr(url, '/');
    const char *last = slash ? slash + 1 : url;
    if (!plain_name(last) || strpbrk(last, "?#"))
        return cfg_fail(x->c, x->err, path, "the url names no file: give filename = \"…\"");
    return 0;
}

/* ------------------------------------------------------------------ the schema */

static const cfg_row qemu_rows[] = {
    [QEMU_BIN] = { "bin", CT_STRING, .def_str = "qemu-system-x86_64", .check = check_nonempty },
    [QEMU_IMG] = { "img", CT_STRING, .def_str = "qemu-img", .check = check_nonempty },
    { 0 },
};
const cfg_schema cfg_qemu = { qemu_rows, NULL, NULL };

static const cfg_row no_rows[] = { { 0 } };
static const cfg_schema ssh_schema = { no_rows, ssh_other, NULL };

static const cfg_row vm_ssh_rows[] = {
    [VMSSH_PORT] = { "port", CT_ANY, .own_type = true, .check = check_port_or_auto },
    [VMSSH_VM_PORT] = { "vm_port", CT_INT, .own_type = true, .def_int = 22, .check = check_port },
    { 0 },
};
const cfg_schema cfg_vm_ssh = { vm_ssh_rows, ssh_other, NULL };

static const cfg_row share_rows[] = {
    [SHARE_PATH] = { "path", CT_STRING, .required = " (the host directory to share)", .check = check_nonempty },
    [SHARE_READONLY] = { "readonly", CT_ANY, .own_type = true, .check = check_bool },
    [SHARE_MOUNT] = { "mount", CT_STRING, .check = check_mount },
    { 0 },
};
const cfg_schema cfg_share = { share_rows, NULL, check_share_table };

static const cfg_row vm_rows[] = {
    [VM_CMD] = { "cmd", CT_STRINGS, .required = "" },
    [VM_VARS] = { "vars", CT_TABLE, .check = check_vm_vars },
    [VM_SSH] = { "ssh", CT_TABLE, .sub = &cfg_vm_ssh },
    [VM_SHARE] = { "share", CT_NAMED, .what = "a table of shares", .kind = "share", .sub = &cfg_share },
    [VM_MAPPED_RAM] = { "mapped_ram", CT_ANY, .own_type = true, .check = check_bool },
    [VM_GUEST_AGENT] = { "guest_agent", CT_ANY, .own_type = true, .check = check_bool },
    { 0 },
};
const cfg_schema cfg_vm = { vm_rows, NULL, NULL };

static const cfg_row net_rows[] = {
    { "port", CT_ANY, .own_type = true, .hidden = true, .check = check_retired_net_key },
    { "group", CT_ANY, .own_type = true, .hidden = true, .check = check_retired_net_key },
    { 0 },
};
static const cfg_schema net_schema = { net_rows, NULL, NULL };

static const cfg_row download_rows[] = {
    [DL_URL] = { "url", CT_STRING, .required = "", .check = check_nonempty },
    [DL_SHA256SUM] = { "sha256sum", CT_STRING, .check = check_sha256 },
    [DL_SHA512SUM] = { "sha512sum", CT_STRING, .check = check_sha512 },
    { 0 },
};
const cfg_schema cfg_download = { download_rows, NULL, check_download };

static const cfg_row source_rows[] = {
    [DL_URL] = { "url", CT_STRING, .required = "", .check = check_nonempty },
    [DL_SHA256SUM] = { "sha256sum", CT_STRING, .check = check_sha256 },
    [DL_SHA512SUM] = { "sha512sum", CT_STRING, .check = check_sha512 },
    [DL_FILENAME] = { "filename", CT_STRING, .check = check_plain_name },
    { 0 },
};
const cfg_schema cfg_source = { source_rows, NULL, check_source };

static const cfg_row template_rows[] = {
    [TPL_TEMPLATE] = { "template", CT_STRING, .required = "" },
    [TPL_OUTPUT] = { "output", CT_STRING, .required = "", .check = check_plain_name },
    { 0 },
};
const cfg_schema cfg_template = { template_rows, NULL, NULL };

static const cfg_row hook_rows[] = {
    [HOOK_INTERPRETER] = { "interpreter", CT_STRING, .required = "", .check = check_interpreter },
    [HOOK_SCRIPT] = { "script", CT_STRING, .required = "" },
    { 0 },
};
const cfg_schema cfg_hook = { hook_rows, NULL, NULL };

static const cfg_row img_rows[] = {
    [IMG_BUILDER] = { "builder", CT_STRING, .required = " (\"raw\" or \"cloud-init\")", .check = check_builder },
    [IMG_SIZE] = { "img_size", CT_ANY, .own_type = true, .required = " (such as \"10G\")", .check = check_size },
    [IMG_BUILD_ARGS] = { "build_args", CT_STRINGS },
    [IMG_BUILD_TIMEOUT] = { "build_timeout", CT_INT, .own_type = true, .check = check_timeout },
    [IMG_BASE_IMG] = { "base_img", CT_TABLE, .sub = &cfg_download },
    [IMG_TEMPLATES] = { "templates", CT_TABLES, .sub = &cfg_template },
    [IMG_ENV] = { "env", CT_TABLE, .check = check_env },
    [IMG_ENV_HOOK] = { "env_hook", CT_TABLE, .sub = &cfg_hook },
    [IMG_SOURCES] = { "sources", CT_TABLES, .sub = &cfg_source },
    [IMG_FORMAT] = { "format", CT_STRING, .own_type = true, .def_str = "raw", .check = check_format },
    { 0 },
};
const cfg_schema cfg_img = { img_rows, NULL, check_img_table };

static const cfg_row top_rows[] = {
    [TOP_QEMU] = { "qemu", CT_TABLE, .sub = &cfg_qemu },
    [TOP_VARS] = { "vars", CT_TABLE, .check = check_top_vars },
    [TOP_SSH] = { "ssh", CT_TABLE, .sub = &ssh_schema },
    [TOP_VM] = { "vm", CT_NAMED, .what = "a table of VMs", .kind = "VM", .sub = &cfg_vm },
    [TOP_IMG] = { "img", CT_NAMED, .what = "a table of images", .kind = "image", .sub = &cfg_img },
    [TOP_NET] = { "net", CT_NAMED, .what = "a table of networks", .kind = "network", .sub = &net_schema },
    { 0 },
};
const cfg_schema cfg_top = { top_rows, NULL, check_top };

/* ------------------------------------------------------------------ the walk */

const cfg_row *cfg_row_of(const cfg_schema *s, const char *key)
{
    for (const cfg_row *r = s->rows; r->key; r++)
        if (strcmp(r->key, key) == 0)
            return r;
    return NULL;
}

static int check_table(const cfg_ctx *x, const char *path, json_t *t, const cfg_schema *s);

/* One value against its row: the type, what is inside, then the row's check. */
static int check_value(const cfg_ctx *x, const char *path, json_t *v, const cfg_row *r, json_t *parent)
{
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    if (!r->own_type) {
        switch (r->type) {
        case CT_ANY:
            break;
        case CT_STRING:
            if (want_type(x->c, x->err, path, v, JSON_STRING, r->what ? r->what : "a string") < 0)
                return -1;
            break;
        case CT_INT:
            if (want_type(x->c, x->err, path, v, JSON_INTEGER, r->what ? r->what : "an integer") < 0)
                return -1;
            break;
        case CT_STRINGS:
            if (want_string_array(x->c, x->err, path, v) < 0)
                return -1;
            break;
        case CT_TABLE:
            if (want_type(x->c, x->err, path, v, JSON_OBJECT, r->what ? r->what : "a table") < 0 ||
                (r->sub && check_table(x, path, v, r->sub) < 0))
                return -1;
            break;
        case CT_TABLES:
            if (want_type(x->c, x->err, path, v, JSON_ARRAY, r->what ? r->what : "an array of tables") < 0)
                return -1;
            for (size_t i = 0; i < json_array_size(v); i++) {
                json_t *e = json_array_get(v, i);
                sbuf_reset(&p);
                sbuf_adds(&p, path);
                toml_path_append_index(&p, i);
                if (want_type(x->c, x->err, sbuf_str(&p), e, JSON_OBJECT, "a table") < 0 ||
                    check_table(x, sbuf_str(&p), e, r->sub) < 0)
                    return -1;
            }
            break;
        case CT_NAMED: {
            if (want_type(x->c, x->err, path, v, JSON_OBJECT, r->what ? r->what : "a table") < 0)
                return -1;
            const char *k;
            json_t *e;
            json_object_foreach(v, k, e) {
                /* every [SECTION.NAME] is a table with a valid name: it becomes
                 * a directory name, an ssh Host, an argument */
                cfg_path_key(&p, path, k);
                if (want_type(x->c, x->err, sbuf_str(&p), e, JSON_OBJECT, "a table") < 0)
                    return -1;
                if (!valid_name(k))
                    return bad_name(x->c, x->err, sbuf_str(&p), r->kind, k);
                cfg_ctx named = *x;
                named.name = k;
                if (check_table(&named, sbuf_str(&p), e, r->sub) < 0)
                    return -1;
            }
            break;
        }
        }
    }
    return r->check ? r->check(x, path, v, parent) : 0;
}

/* Table t at path against schema s: keys without a row, then the rows in
 * order (missing required ones, each value), then the table's own rule. */
static int check_table(const cfg_ctx *x, const char *path, json_t *t, const cfg_schema *s)
{
    const char *k;
    json_t *v;
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    json_object_foreach(t, k, v) {
        if (cfg_row_of(s, k))
            continue;
        cfg_path_key(&p, path, k);
        if (s->other) {
            if (s->other(x, sbuf_str(&p), k, v, s) < 0)
                return -1;
            continue;
        }
        _cleanup_sbuf_ sbuf list = SBUF_INIT;
        for (const cfg_row *r = s->rows; r->key; r++)
            if (!r->hidden)
                sbuf_addf(&list, "%s%s", list.len ? ", " : "", r->key);
        return cfg_fail(x->c, x->err, sbuf_str(&p), "unknown key (expected one of: %s)", sbuf_str(&list));
    }
    for (const cfg_row *r = s->rows; r->key; r++) {
        if (!(v = json_object_get(t, r->key))) {
            if (r->required)
                return cfg_fail(x->c, x->err, path, "missing required key \"%s\"%s", r->key, r->required);
            continue;
        }
        cfg_path_key(&p, path, r->key);
        if (check_value(x, sbuf_str(&p), v, r, t) < 0)
            return -1;
    }
    return s->check ? s->check(x, path, t) : 0;
}

/* ------------------------------------------------------------------ readers */

json_t *cfg_get(json_t *t, const cfg_schema *s, int i)
{
    return t ? json_object_get(t, s->rows[i].key) : NULL;
}

const char *cfg_str(json_t *t, const cfg_schema *s, int i)
{
    if (s->rows[i].type != CT_STRING)
        abort();   /* a reader asking a row for what it does not check */
    json_t *v = cfg_get(t, s, i);
    return v ? json_string_value(v) : s->rows[i].def_str;
}

long long cfg_int(json_t *t, const cfg_schema *s, int i)
{
    if (s->rows[i].type != CT_INT)
        abort();
    json_t *v = cfg_get(t, s, i);
    return v ? (long long)json_integer_value(v) : s->rows[i].def_int;
}

bool cfg_bool(json_t *t, const cfg_schema *s, int i, bool def)
{
    json_t *v = cfg_get(t, s, i);
    return v ? json_is_true(v) : def;
}

int cfg_ssh_port(json_t *vm_ssh)
{
    json_t *v = cfg_get(vm_ssh, &cfg_vm_ssh, VMSSH_PORT);
    if (!v)
        return SSH_PORT_NONE;
    return json_is_string(v) ? SSH_PORT_AUTO : (int)json_integer_value(v);
}

int config_check_schema(config *c, qq_err *err)
{
    _cleanup_sbuf_ sbuf path = SBUF_INIT;
    sbuf_adds(&path, "");
    if (nul_escape(c->text, c->text_len) && check_nul(c, err, &path, c->root) < 0)
        return -1;
    cfg_ctx x = { .c = c, .err = err };
    if (check_table(&x, "", c->root, &cfg_top) < 0)
        return -1;
    json_t *qemu = cfg_get(c->root, &cfg_top, TOP_QEMU);
    c->qemu_bin = cfg_str(qemu, &cfg_qemu, QEMU_BIN);
    c->qemu_img = cfg_str(qemu, &cfg_qemu, QEMU_IMG);
    c->vars = cfg_get(c->root, &cfg_top, TOP_VARS);
    c->ssh = cfg_get(c->root, &cfg_top, TOP_SSH);
    c->vms = cfg_get(c->root, &cfg_top, TOP_VM);
    c->nets = cfg_get(c->root, &cfg_top, TOP_NET);
    c->imgs = cfg_get(c->root, &cfg_top, TOP_IMG);
    return 0;
}
