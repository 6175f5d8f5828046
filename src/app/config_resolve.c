/* config_resolve — render one VM's cmd, ssh values and vars with the
 * template data (see config.h, "Resolving a VM"). */
#include "config.h"
#include "config_int.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "../base/tmpl.h"
#include "../base/toml.h"
#include "../base/xalloc.h"
#include "layout.h"

/* .net.NAME = {sock}: the switch's socket dir (layout_net_dir: derived from
 * the state dir and the name, so every VM of the config and every start
 * gets the same one, another config another). The keys of the multicast
 * networks (port, group, mcast) are there only for lookup() to explain. */
static const char *const net_retired[] = { "port", "group", "mcast", NULL };

json_t *config_net_data(const config *c)
{
    json_t *out = json_object();
    const char *k;
    json_t *net;
    json_object_foreach(c->nets, k, net) {
        _cleanup_free_ char *sock = layout_net_dir(c->state_dir, k, false, NULL);
        json_t *o = json_object();
        json_object_set_new(o, "sock", json_string(sock));
        for (const char *const *r = net_retired; *r; r++)
            json_object_set_new(o, *r, json_null());
        json_object_set_new(out, k, o);
    }
    return out;
}

/* A read of a retired key of .net.NAME: the message saying what to write. */
static bool net_retired_read(json_t *nets, json_t *container, const char *key, tmpl_error *te)
{
    const char *name;
    json_t *o;
    json_object_foreach(nets, name, o) {
        if (o != container || !key)
            continue;
        for (const char *const *r = net_retired; *r; r++)
            if (strcmp(key, *r) == 0) {
                snprintf(te->msg, sizeof te->msg,
                         ".net.%s.%s is gone: networks are private switches now, join one with "
                         "`-netdev vde,id=ID,sock={{.net.%s.sock}}`", name, key, name);
                return true;
            }
    }
    return false;
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
    json_t *nets;           /* data's .net (NULL without [net]) */
    unit *units;            /* open addressing by raw pointer; nslots a power of 2 */
    size_t nslots, nunits;
    unit *stack[64];        /* units being rendered, outermost first */
    size_t depth;
    json_t *images_used;    /* object used as a set */
    qq_err err;             /* the first error inside a unit (reported instead of the outer one) */
    bool failed;
    sbuf_budget budget;     /* every byte of text the resolution makes: see CONFIG_RENDER_BUDGET */
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
        cfg_path_key(&p, base, k);
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

/* A template that failed at path (text s): the budget when it ran out
 * (this is where it did: the innermost var being rendered), else tmpl's message. */
static int render_fail(resolver *r, qq_err *err, const char *path, const char *s, const char *msg)
{
    if (r->budget.over)
        return cfg_fail(r->c, err, path, "renders past %zu MiB, the budget of all the text one VM's vars, "
                        "cmd and ssh values make together", CONFIG_RENDER_BUDGET >> 20);
    return cfg_fail(r->c, err, path, "%s (in \"%.*s%s\")", msg, 120, s, strlen(s) > 120 ? "…" : "");
}

/* tmpl's lookup hook: see above. */
static json_t *lookup(void *ud, json_t *container, const char *key, json_t *value, tmpl_error *te)
{
    resolver *r = ud;
    if (container && container == r->imgs && key)
        json_object_set_new(r->images_used, key, json_true());
    if (r->nets && net_retired_read(r->nets, container, key, te))
        return NULL;
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
        cfg_fail(r->c, &r->err, u->path, "variable cycle: %s", sbuf_str(&cyc));
        return unit_fail(r, te);
    }
    if (r->depth >= sizeof r->stack / sizeof *r->stack) {
        cfg_fail(r->c, &r->err, u->path, "variables nest too deeply (more than %zu levels)", r->depth);
        return unit_fail(r, te);
    }
    u->state = 1;
    r->stack[r->depth++] = u;
    const char *s = json_string_value(u->raw);
    _cleanup_sbuf_ sbuf out = { .budget = &r->budget };
    tmpl_error ie = { { 0 } };
    int rc = tmpl_render_with(u->path, s, r->data, lookup, r, &out, &ie);
    r->depth--;
    if (rc == 0 && sbuf_budget_take(&r->budget, out.len + 1) < 0)   /* the copy below */
        rc = -1;
    if (rc < 0) {
        if (!r->failed)
            render_fail(r, &r->err, u->path, s, ie.msg);
        return unit_fail(r, te);
    }
    u->value = json_string(sbuf_str(&out));
    if (!u->value) {
        cfg_fail(r->c, &r->err, u->path, "renders to text that is not valid UTF-8");
        return unit_fail(r, te);
    }
    u->state = 2;
    return u->value;
}

/* Render the template text s (at config path `path`) with the VM's data,
 * into out (which takes from the resolution's budget). */
static int render_text(resolver *r, const char *path, const char *s, sbuf *out, qq_err *err)
{
    tmpl_error te = { { 0 } };
    out->budget = &r->budget;
    if (tmpl_render_with(path, s, r->data, lookup, r, out, &te) == 0 &&
        sbuf_budget_take(&r->budget, out->len + 1) == 0)   /* the copy the caller makes */
        return 0;
    if (r->failed) {
        if (err)
            *err = r->err;
        return -1;
    }
    return render_fail(r, err, path, s, te.msg);
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
            _cleanup_free_ char *g = j ? cfg_got(j) : xstrdup("?");
            cfg_fail(r->c, err, path, "renders to an ssh value with a control character: %s", g);
            return NULL;
        }
    json_t *nv = json_string(sbuf_str(&out));
    if (!nv)
        cfg_fail(r->c, err, path, "renders to text that is not valid UTF-8");
    return nv;
}

/* [ssh] or [vm.NAME.ssh] (without port and vm_port), rendered into dst. */
static int render_ssh_table(resolver *r, json_t *src, const cfg_schema *s, const char *base, json_t *dst,
                            qq_err *err)
{
    const char *k;
    json_t *v;
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    json_object_foreach(src, k, v) {
        if (cfg_row_of(s, k))
            continue;   /* qqmgr's own keys (port, vm_port) are not ssh options */
        cfg_path_key(&p, base, k);
        json_t *nv = render_ssh_value(r, v, sbuf_str(&p), err);
        if (!nv)
            return -1;
        json_object_set_new(dst, k, nv);
    }
    return 0;
}

/* [vm.NAME.share.TAG] → out->shares: the path made absolute (relative to
 * the config's directory); whether it is a directory is config_check_shares'
 * (at launch: a running VM stays reachable when its share dir went away). */
static void resolve_shares(const config *c, json_t *vm, vm_spec *out)
{
    json_t *shares = cfg_get(vm, &cfg_vm, VM_SHARE);
    if (!shares || !json_object_size(shares))
        return;
    out->shares = calloc(json_object_size(shares), sizeof *out->shares);
    if (!out->shares)
        abort();
    const char *tag;
    json_t *t;
    json_object_foreach(shares, tag, t) {
        const char *path = cfg_str(t, &cfg_share, SHARE_PATH);
        const char *mount = cfg_str(t, &cfg_share, SHARE_MOUNT);
        vm_share *sh = &out->shares[out->nshares++];
        sh->tag = xstrdup(tag);
        sh->path = path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", c->dir, path);
        sh->readonly = cfg_bool(t, &cfg_share, SHARE_READONLY, true);
        sh->mount = mount ? xstrdup(mount) : NULL;
    }
}

int config_check_shares(const vm_spec *s, qq_err *err)
{
    _cleanup_sbuf_ sbuf p = SBUF_INIT;
    for (size_t i = 0; i < s->nshares; i++) {
        const vm_share *sh = &s->shares[i];
        struct stat st;
        const char *why = NULL;
        if (stat(sh->path, &st) < 0)
            why = errno == ENOENT ? "no such directory" : strerror(errno);
        else if (!S_ISDIR(st.st_mode))
            why = "not a directory";
        if (!why)
            continue;
        sbuf_reset(&p);
        sbuf_adds(&p, "vm");
        toml_path_append(&p, s->name);
        toml_path_append(&p, "share");
        toml_path_append(&p, sh->tag);
        toml_path_append(&p, "path");
        if (!s->cfg)
            return qq_fail(err, QQ_EXIT_USAGE, "%s: \"%s\": %s", sbuf_str(&p), sh->path, why);
        return cfg_fail(s->cfg, err, sbuf_str(&p), "\"%s\": %s (the host directory to share; a relative path "
                        "is relative to the config's directory)", sh->path, why);
    }
    return 0;
}

int config_vm(const config *c, const char *instance, int auto_port, vm_spec *out, qq_err *err)
{
    memset(out, 0, sizeof *out);
    /* a copy (VM#N) is its VM's entry with the copy's state dir and port */
    if (config_check_vm(c, instance, err) < 0)
        return -1;
    _cleanup_free_ char *name = config_base_vm(instance);
    json_t *vm = json_object_get(c->vms, name);
    _cleanup_sbuf_ sbuf base = SBUF_INIT;
    sbuf_adds(&base, "vm");
    toml_path_append(&base, name);

    out->name = xstrdup(name);
    out->cfg = c;
    out->qemu_bin = xstrdup(c->qemu_bin);
    out->state_dir = config_vm_dir(c, instance);
    out->ssh_opts = json_object();
    out->ssh_global = json_object();
    json_t *ssh = cfg_get(vm, &cfg_vm, VM_SSH);
    out->ssh_port = config_vm_ssh_port(c, instance);
    out->ssh_vm_port = (int)cfg_int(ssh, &cfg_vm_ssh, VMSSH_VM_PORT);
    out->ssh_port_used = out->ssh_port == SSH_PORT_AUTO ? auto_port : out->ssh_port;

    /* the data tree: globals at top level, .vm, .img. Only the top levels
     * are new (they get vm/img/net and ssh); below them the data is the
     * document's own nodes: nothing here changes them, and a deep copy
     * would lose what jansson cannot copy (nan and inf floats: json_real()
     * refuses them, see toml.h). */
    _cleanup_json_ json_t *data = c->vars ? json_copy(c->vars) : json_object();
    json_t *vmvars = cfg_get(vm, &cfg_vm, VM_VARS);
    json_t *vmdata = vmvars ? json_copy(vmvars) : json_object();
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
            _cleanup_free_ char *p = config_img_path_of(c, k, v);
            json_object_set_new(imgs, k, json_string(p));
        }
    }
    json_object_set_new(data, "img", imgs);
    json_t *nets = c->nets ? config_net_data(c) : NULL;
    if (nets)
        json_object_set_new(data, "net", nets);

    _cleanup_json_ json_t *used = json_object();
    _cleanup_(resolver_free) resolver r = { .c = c, .data = data, .imgs = imgs, .nets = nets, .images_used = used,
                                            .budget = { .left = CONFIG_RENDER_BUDGET } };
    static const char *const root_skip[] = { "vm", "img", "net", NULL };
    static const char *const vm_skip[] = { "ssh", NULL };
    collect_scope(&r, data, "vars", root_skip);
    _cleanup_sbuf_ sbuf vbase = SBUF_INIT;
    sbuf_adds(&vbase, sbuf_str(&base));
    toml_path_append(&vbase, "vars");
    collect_scope(&r, vmdata, sbuf_str(&vbase), vm_skip);
    int rc = 0;

    json_t *cmd = cfg_get(vm, &cfg_vm, VM_CMD);
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
        rc = render_ssh_table(&r, c->ssh, cfg_top.rows[TOP_SSH].sub, "ssh", out->ssh_global, err);
    if (rc == 0 && ssh) {
        sbuf_reset(&p);
        sbuf_adds(&p, sbuf_str(&base));
        toml_path_append(&p, "ssh");
        rc = render_ssh_table(&r, ssh, &cfg_vm_ssh, sbuf_str(&p), out->ssh_opts, err);
    }
    if (rc == 0 && !(out->vars = resolved_copy(&r, vmdata, err)))
        rc = -1;
    if (rc == 0)
        resolve_shares(c, vm, out);
    out->mapped_ram = cfg_bool(vm, &cfg_vm, VM_MAPPED_RAM, true);
    out->guest_agent = cfg_bool(vm, &cfg_vm, VM_GUEST_AGENT, false);

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
    for (size_t i = 0; i < s->nshares; i++) {
        free(s->shares[i].tag);
        free(s->shares[i].path);
        free(s->shares[i].mount);
    }
    free(s->shares);
    memset(s, 0, sizeof *s);
}
