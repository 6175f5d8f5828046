/* forward — see forward.h. */
#include "forward.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "../base/cleanup.h"
#include "../base/clock.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "../infra/net.h"
#include "../infra/sig.h"
#include "running.h"
#include "layout.h"
#include "vm.h"

/* ------------------------------------------------------------ parse */

static int parse_port(const char *s, size_t len, bool allow_auto, int *out)
{
    if (allow_auto && ((len == 4 && strncmp(s, "auto", 4) == 0) || (len == 1 && s[0] == '0'))) {
        *out = 0;
        return 0;
    }
    if (len == 0 || len > 5 || strspn(s, "0123456789") < len)
        return -1;
    long v = strtol(s, NULL, 10);
    if (v < 1 || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

int forward_parse(const char *spec, bool with_guest, forward *f, qq_err *err)
{
    memset(f, 0, sizeof *f);
    const char *want = with_guest ? "tcp:[HOSTADDR:]HOSTPORT:GUESTPORT (HOSTPORT 0 or auto: a free one)"
                                  : "tcp:[HOSTADDR:]HOSTPORT";
    /* fields: proto, [addr], hostport, [guestport] */
    const char *parts[5];
    size_t lens[5], n = 0;
    const char *p = spec;
    for (;;) {
        const char *c = strchr(p, ':');
        if (n == 5)
            goto bad;
        parts[n] = p;
        lens[n++] = c ? (size_t)(c - p) : strlen(p);
        if (!c)
            break;
        p = c + 1;
    }
    size_t need = with_guest ? 3 : 2;
    if (n != need && n != need + 1)
        goto bad;
    if (!((lens[0] == 3 && (strncmp(parts[0], "tcp", 3) == 0 || strncmp(parts[0], "udp", 3) == 0))))
        goto bad;
    memcpy(f->proto, parts[0], 3);
    size_t i = 1;
    if (n == need + 1) {
        struct in_addr a;
        if (lens[1] == 0 || lens[1] >= sizeof f->host_addr)
            goto bad;
        memcpy(f->host_addr, parts[1], lens[1]);
        if (inet_pton(AF_INET, f->host_addr, &a) != 1)
            goto bad;
        i = 2;
    } else {
        snprintf(f->host_addr, sizeof f->host_addr, "127.0.0.1");
    }
    if (parse_port(parts[i], lens[i], with_guest && strcmp(f->proto, "tcp") == 0, &f->host_port) < 0)
        goto bad;
    if (with_guest && parse_port(parts[i + 1], lens[i + 1], false, &f->guest_port) < 0)
        goto bad;
    return 0;
bad:
    return qq_fail(err, QQ_EXIT_USAGE, "forward '%s': expected %s", spec, want);
}

/* ------------------------------------------------------------ the record */

static char *record_path(const char *dir) { return layout_path(dir, LAYOUT_FORWARDS); }

/* The recorded forwards of the QEMU with this pid (a new array). */
static json_t *load_record(const char *dir, pid_t pid)
{
    _cleanup_free_ char *p = record_path(dir);
    _cleanup_json_ json_t *doc = json_load_file(p, 0, NULL);
    json_t *list = json_object_get(doc, "forwards");
    if (!json_is_array(list) || json_integer_value(json_object_get(doc, "pid")) != (json_int_t)pid)
        return json_array();
    return json_incref(list);
}

static int save_record(const char *dir, pid_t pid, json_t *list, qq_err *err)
{
    _cleanup_free_ char *p = record_path(dir);
    _cleanup_json_ json_t *doc = json_pack("{s:I, s:O}", "pid", (json_int_t)pid, "forwards", list);
    _cleanup_free_ char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    return fs_write_atomic(p, text, strlen(text), 0600, err);
}

static bool same_host(const json_t *r, const forward *f)
{
    return strcmp(json_string_value(json_object_get(r, "proto")) ?: "", f->proto) == 0 &&
           strcmp(json_string_value(json_object_get(r, "host_addr")) ?: "", f->host_addr) == 0 &&
           json_integer_value(json_object_get(r, "host_port")) == f->host_port;
}

/* ------------------------------------------------------------ netdev */

/* The user-mode netdev to use: the named one, the one with a host forward
 * from the ssh port, or the only one. From HMP `info usernet`, whose sections
 * start "Hub -1 (ID):" (QEMU 7: "VLAN -1 (ID):") and list rules as
 * "TCP[HOST_FORWARD]  FD  SRCADDR SRCPORT  DSTADDR DSTPORT …". */
static int find_netdev(const config *cfg, const char *name, int ssh_port, forward *f, qq_err *err)
{
    _cleanup_free_ char *out = vm_hmp(cfg, name, "info usernet", err);
    if (!out)
        return -1;
    char ids[8][64];
    size_t nids = 0;
    const char *ssh_id = NULL;
    for (char *line = strtok(out, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        char *open = strrchr(line, '('), *close = strrchr(line, ')');
        if (line[0] != ' ' && open && close && close > open && close[1] == ':') {
            if (nids < 8) {
                snprintf(ids[nids], sizeof ids[nids], "%.*s", (int)(close - open - 1), open + 1);
                nids++;
            }
            continue;
        }
        if (nids == 0 || !strstr(line, "[HOST_FORWARD]"))
            continue;
        char proto[32], src[64], dst[64];
        int fd, sport, dport;
        if (sscanf(line, " %31s %d %63s %d %63s %d", proto, &fd, src, &sport, dst, &dport) == 6 &&
            ssh_port > 0 && sport == ssh_port && !ssh_id)
            ssh_id = ids[nids - 1];
    }
    if (ssh_id || nids == 1) {
        snprintf(f->netdev, sizeof f->netdev, "%s", ssh_id ? ssh_id : ids[0]);
        return 0;
    }
    if (nids == 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s has no user-mode network (-netdev user / -nic user) to forward to", name);
    sbuf b = SBUF_INIT;
    for (size_t i = 0; i < nids; i++)
        sbuf_addf(&b, "%s%s", i ? ", " : "", ids[i]);
    qq_fail(err, QQ_EXIT_USAGE, "%s has several user-mode netdevs (%s): name one with --netdev ID", name, sbuf_str(&b));
    sbuf_free(&b);
    return -1;
}

/* HMP's answer, one line, without the trailing line break. */
static char *trimmed(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    return s;
}

/* ------------------------------------------------------------ add, remove, list */

/* A running VM being changed: its pid, state dir, ssh port, and its lock
 * (held until vm_end closes it). */
typedef struct running_vm {
    pid_t pid;
    char *dir;
    int ssh_port;
    int lock;
} running_vm;

static void vm_end(running_vm *v)
{
    free(v->dir);
    if (v->lock >= 0)
        close(v->lock);
}

/* add and remove wait at most FORWARD_LOCK_S for the VM's lock (a start,
 * stop or snapshot command holding it), then fail naming it. */
#define FORWARD_LOCK_S 30
static int begin(const config *cfg, const char *name, running_vm *v, qq_err *err)
{
    *v = (running_vm){ .lock = -1 };
    if (running_require(cfg, name, &v->pid, &v->dir, err) < 0)
        return -1;
    vm_state st;
    vm_probe(v->dir, false, &st);
    v->ssh_port = st.ssh_port;
    v->lock = layout_lock_vm(name, v->dir, "forward", clock_ms() + FORWARD_LOCK_S * 1000LL, FORWARD_LOCK_S,
                             "forward's bound", err);
    return v->lock;
}

int forward_add(const config *cfg, const char *name, const char *netdev, forward *f, qq_err *err)
{
    __attribute__((cleanup(vm_end))) running_vm v;
    if (begin(cfg, name, &v, err) < 0)
        return -1;
    if (netdev)
        snprintf(f->netdev, sizeof f->netdev, "%s", netdev);
    else if (find_netdev(cfg, name, v.ssh_port, f, err) < 0)
        return -1;
    /* an automatic port is reserved (net.h) until QEMU holds it */
    bool reserved = f->host_port == 0;
    if (reserved && (f->host_port = net_reserve_port(NULL, 0, err)) < 0)
        return -1;
    _cleanup_free_ char *cmd = xasprintf("hostfwd_add %s %s:%s:%d-:%d", f->netdev, f->proto, f->host_addr,
                                         f->host_port, f->guest_port);
    _cleanup_free_ char *out = vm_hmp(cfg, name, cmd, err);
    if (reserved)
        net_release_port(f->host_port);
    if (!out)
        return -1;
    if (*trimmed(out) && strstr(out, "Could not set up host forwarding"))
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s (is host port %d in use?)", name, out, f->host_port);
    if (*out)   /* QEMU's own words: an unknown netdev, ... */
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", name, out);
    _cleanup_json_ json_t *list = load_record(v.dir, v.pid);
    json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:i, s:s}", "proto", f->proto, "host_addr", f->host_addr,
                                          "host_port", f->host_port, "guest_port", f->guest_port, "netdev", f->netdev));
    return save_record(v.dir, v.pid, list, err);
}

int forward_remove(const config *cfg, const char *name, const char *netdev, forward *f, qq_err *err)
{
    __attribute__((cleanup(vm_end))) running_vm v;
    if (begin(cfg, name, &v, err) < 0)
        return -1;
    _cleanup_json_ json_t *list = load_record(v.dir, v.pid);
    size_t i, at = (size_t)-1;
    json_t *r;
    json_array_foreach(list, i, r) {
        if (same_host(r, f))
            at = i;
    }
    if (netdev)
        snprintf(f->netdev, sizeof f->netdev, "%s", netdev);
    else if (at != (size_t)-1)
        snprintf(f->netdev, sizeof f->netdev, "%s",
                 json_string_value(json_object_get(json_array_get(list, at), "netdev")) ?: "");
    if (!f->netdev[0] && find_netdev(cfg, name, v.ssh_port, f, err) < 0)
        return -1;
    if (at != (size_t)-1)
        f->guest_port = (int)json_integer_value(json_object_get(json_array_get(list, at), "guest_port"));
    _cleanup_free_ char *cmd = xasprintf("hostfwd_remove %s %s:%s:%d", f->netdev, f->proto, f->host_addr, f->host_port);
    _cleanup_free_ char *out = vm_hmp(cfg, name, cmd, err);
    if (!out)
        return -1;
    if (!strstr(trimmed(out), " removed"))
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", name, *out ? out : "hostfwd_remove failed");
    if (at == (size_t)-1)
        return 0;
    json_array_remove(list, at);
    return save_record(v.dir, v.pid, list, err);
}

/* "tcp:127.0.0.1:2222-:22" (hostfwd's value) → a forward; false when it is not one */
static bool parse_hostfwd(const char *v, size_t len, forward *f)
{
    char buf[160];
    if (len >= sizeof buf)
        return false;
    memcpy(buf, v, len);
    buf[len] = '\0';
    *f = (forward){ .proto = "tcp" };
    char *s = buf, *c = strchr(s, ':');
    if (c && (strncmp(s, "tcp:", 4) == 0 || strncmp(s, "udp:", 4) == 0)) {
        memcpy(f->proto, s, 3);
        s = c + 1;
    } else if (c == s) {
        s++;
    }
    char *dash = strchr(s, '-');
    if (!dash)
        return false;
    *dash = '\0';
    char *hp = strrchr(s, ':');   /* [hostaddr]:hostport */
    snprintf(f->host_addr, sizeof f->host_addr, "%.*s", hp ? (int)(hp - s) : 0, s);
    f->host_port = atoi(hp ? hp + 1 : s);
    char *gp = strrchr(dash + 1, ':');   /* [guestaddr]:guestport */
    f->guest_port = atoi(gp ? gp + 1 : dash + 1);
    return f->host_port > 0 && f->guest_port > 0;
}

json_t *forward_ports(const char *vm_dir, pid_t pid)
{
    json_t *out = json_array();
    _cleanup_free_ char *argv_path = layout_path(vm_dir, LAYOUT_ARGV);
    _cleanup_json_ json_t *argv = json_load_file(argv_path, 0, NULL);
    size_t i;
    json_t *a;
    json_array_foreach(argv, i, a) {
        const char *s = json_string_value(a);
        if (!s || !strstr(s, "hostfwd="))
            continue;
        char id[64] = "";
        const char *idp = strstr(s, "id=");
        if (idp && (idp == s || idp[-1] == ','))
            snprintf(id, sizeof id, "%.*s", (int)strcspn(idp + 3, ","), idp + 3);
        for (const char *p = s; (p = strstr(p, "hostfwd=")); p += 8) {
            forward f;
            if ((p == s || p[-1] == ',') && parse_hostfwd(p + 8, strcspn(p + 8, ","), &f))
                json_array_append_new(out, json_pack("{s:s, s:s, s:i, s:i, s:s, s:s}", "proto", f.proto, "host_addr",
                                                     f.host_addr[0] ? f.host_addr : "0.0.0.0", "host_port",
                                                     f.host_port, "guest_port", f.guest_port, "netdev", id, "from",
                                                     "cmd"));
        }
    }
    _cleanup_json_ json_t *added = load_record(vm_dir, pid);
    json_array_foreach(added, i, a) {
        json_t *o = json_deep_copy(a);
        json_object_set_new(o, "from", json_string("forward"));
        json_array_append_new(out, o);
    }
    return out;
}

json_t *forward_list(const config *cfg, const char *name, qq_err *err)
{
    _cleanup_free_ char *dir = NULL;
    pid_t pid;
    if (running_require(cfg, name, &pid, &dir, err) < 0)
        return NULL;
    return load_record(dir, pid);
}
