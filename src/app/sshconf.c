/* sshconf — see sshconf.h. */
#include "sshconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "layout.h"

#define CONTROL_PERSIST "10m"

static bool in(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (strcasecmp(*list, key) == 0)
            return true;
    return false;
}

/* keywords whose value ssh takes as the rest of the line */
static const char *const raw_keys[] = { "ProxyCommand", "RemoteCommand", "LocalCommand", "KnownHostsCommand", NULL };
/* keywords that take several arguments on one line */
static const char *const words_keys[] = { "LocalForward", "RemoteForward", "SendEnv", "SetEnv",
                                          "UserKnownHostsFile", "GlobalKnownHostsFile", "CanonicalDomains",
                                          "CanonicalizePermittedCNAMEs", "PermitRemoteOpen", "IgnoreUnknown",
                                          "ChannelTimeout", NULL };
/* keywords where ssh expands %-tokens (ssh_config(5) TOKENS) */
static const char *const token_keys[] = { "CertificateFile", "ControlPath", "IdentityAgent", "IdentityFile",
                                          "KnownHostsCommand", "LocalForward", "RemoteForward", "RemoteCommand",
                                          "RevokedHostKeys", "UserKnownHostsFile", "ProxyCommand", "ProxyJump",
                                          "LocalCommand", "HostName", NULL };
/* keywords where ssh expands ${ENV} */
static const char *const env_keys[] = { "CertificateFile", "ControlPath", "IdentityAgent", "IdentityFile",
                                        "KnownHostsCommand", "UserKnownHostsFile", NULL };
/* keywords naming local files: a relative path is relative to the config's
 * directory (as QEMU's paths are), not to wherever ssh happens to run */
static const char *const path_keys[] = { "IdentityFile", "CertificateFile", "UserKnownHostsFile",
                                         "GlobalKnownHostsFile", "IdentityAgent", NULL };

void sshconf_alias(const char *vm, char *buf, size_t len)
{
    bool plain = *vm && strlen(vm) <= 200;
    for (const char *p = vm; plain && *p; p++)
        plain = isalnum((unsigned char)*p) || strchr("._-", *p);
    snprintf(buf, len, "%s", plain ? vm : "qqmgr-vm");
}

static bool has_key(json_t *obj, const char *key)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (strcasecmp(k, key) == 0)
            return true;
    }
    return false;
}

bool sshconf_user_sets(const config *c, const vm_spec *s, const char *key)
{
    (void)c;    /* [ssh] comes rendered with the VM (vm_spec.ssh_global) */
    return has_key(s->ssh_opts, key) || has_key(s->ssh_global, key);
}

static int control_char(const char *key, const char *s, qq_err *err)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return qq_fail(err, QQ_EXIT_USAGE, "ssh option %s: the value holds a control character (0x%02x): %s",
                           key, *p, "it cannot be written into ssh.conf");
    return 0;
}

/* one piece of a quoted argument (the caller writes the quotes) */
static void quote_part(sbuf *out, const char *s, bool percent)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sbuf_addc(out, '\\');
        else if (*s == '%' && percent)
            sbuf_addc(out, '%');
        sbuf_addc(out, *s);
    }
}

int sshconf_quote(sbuf *out, const char *s, bool percent, qq_err *err)
{
    if (control_char("value", s, err) < 0)
        return -1;
    sbuf_addc(out, '"');
    quote_part(out, s, percent);
    sbuf_addc(out, '"');
    return 0;
}

/* What qqmgr itself puts into a value of key: a path it chose. */
static int check_ours(const char *key, const char *s, qq_err *err)
{
    if (control_char(key, s, err) < 0)
        return -1;
    if (in(env_keys, key) && strstr(s, "${"))
        return qq_fail(err, QQ_EXIT_USAGE,
                       "ssh option %s: the path %s holds \"${\", which ssh would expand: move the config "
                       "to a directory without it", key, s);
    return 0;
}

static bool relative_path(const char *key, const char *s)
{
    return *s && in(path_keys, key) && !strchr("/~%$", s[0]) && strcasecmp(s, "none") != 0 &&
           strcasecmp(s, "SSH_AUTH_SOCK") != 0;
}

/* One argument of key: the config's dir in front of a relative path. */
static int add_word(sbuf *out, const char *key, const char *w, const char *base_dir, qq_err *err)
{
    sbuf_addc(out, '"');
    if (relative_path(key, w)) {
        if (check_ours(key, base_dir, err) < 0)
            return -1;
        quote_part(out, base_dir, in(token_keys, key));
        sbuf_addc(out, '/');
    }
    quote_part(out, w, false);
    sbuf_addc(out, '"');
    return 0;
}

static int add_value(sbuf *out, const char *key, json_t *v, const char *base_dir, qq_err *err)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (add_value(out, key, e, base_dir, err) < 0)
                return -1;
        }
        return 0;
    }
    sbuf_addf(out, "    %s ", key);
    if (json_is_true(v))
        sbuf_adds(out, "yes");
    else if (json_is_false(v))
        sbuf_adds(out, "no");
    else if (json_is_integer(v))
        sbuf_addf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        sbuf_addf(out, "%g", json_real_value(v));
    else {
        const char *s = json_string_value(v);
        if (!s)
            s = "";
        if (control_char(key, s, err) < 0)
            return -1;
        if (in(raw_keys, key) || (in(words_keys, key) && strpbrk(s, "\"'\\"))) {
            sbuf_adds(out, s);
        } else if (in(words_keys, key)) {
            _cleanup_free_ char *copy = xstrdup(s);
            char *save = NULL;
            bool first = true;
            for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                if (!first)
                    sbuf_addc(out, ' ');
                first = false;
                if (add_word(out, key, w, base_dir, err) < 0)
                    return -1;
            }
            if (first)
                sbuf_adds(out, "\"\"");
        } else if (add_word(out, key, s, base_dir, err) < 0) {
            return -1;
        }
    }
    sbuf_addc(out, '\n');
    return 0;
}

static int check_key(const char *key, qq_err *err)
{
    bool ok = *key;
    for (const char *p = key; ok && *p; p++)
        ok = isalnum((unsigned char)*p);
    if (!ok)
        return qq_fail(err, QQ_EXIT_USAGE, "ssh option \"%s\": not an ssh_config keyword (letters and digits)",
                       key);
    return 0;
}

int ssh_config_text(const config *c, const vm_spec *s, int port, sbuf *out, qq_err *err)
{
    json_t *vm = s->ssh_opts, *global = s->ssh_global;
    char alias[256];
    sshconf_alias(s->name, alias, sizeof alias);
    /* the comment names the config; a control character in its path is not copied */
    sbuf_addf(out, "# ssh config of VM %s, written by qqmgr (", alias);
    for (const unsigned char *p = (const unsigned char *)config_path(c); *p; p++)
        sbuf_addc(out, *p < 0x20 || *p == 0x7f ? '?' : (char)*p);
    sbuf_adds(out, ")\n");
    sbuf_addf(out, "Host %s\n", alias);
    sbuf_adds(out, "    HostName 127.0.0.1\n");
    sbuf_addf(out, "    Port %d\n", port);
    if (!sshconf_user_sets(c, s, "HostKeyAlias"))
        sbuf_addf(out, "    HostKeyAlias qqmgr-%s\n", alias);
    /* connection sharing on unless the user's keys say otherwise */
    if (!sshconf_user_sets(c, s, "ControlMaster"))
        sbuf_adds(out, "    ControlMaster auto\n");
    if (!sshconf_user_sets(c, s, "ControlPath")) {
        _cleanup_free_ char *ctl = layout_control_path(s->state_dir, false, NULL);
        if (check_ours("ControlPath", ctl, err) < 0)
            return -1;
        sbuf_adds(out, "    ControlPath \"");
        quote_part(out, ctl, true);
        sbuf_adds(out, "\"\n");
    }
    if (!sshconf_user_sets(c, s, "ControlPersist"))
        sbuf_adds(out, "    ControlPersist " CONTROL_PERSIST "\n");
    /* host keys pinned per VM unless the user's keys say otherwise */
    if (!sshconf_user_sets(c, s, "UserKnownHostsFile")) {
        _cleanup_free_ char *kh = layout_path(s->state_dir, LAYOUT_KNOWN_HOSTS);
        if (check_ours("UserKnownHostsFile", kh, err) < 0)
            return -1;
        sbuf_adds(out, "    UserKnownHostsFile \"");
        quote_part(out, kh, true);
        sbuf_adds(out, "\"\n");
    }
    if (!sshconf_user_sets(c, s, "StrictHostKeyChecking"))
        sbuf_adds(out, "    StrictHostKeyChecking accept-new\n");
    /* the connection never leaves this host (127.0.0.1, QEMU's port forward),
     * where a post-quantum hybrid key exchange protects nothing and costs a
     * guest under TCG a fifth of a second per login: curve25519 first */
    if (!sshconf_user_sets(c, s, "KexAlgorithms"))
        sbuf_adds(out, "    KexAlgorithms " SSHCONF_KEX "\n");
    /* ssh connects through `qqmgr __connect`, which sets TCP_NODELAY (see
     * sshconf.h); unless the user routes the connection, or qqmgr's own path
     * is unknown (then ssh connects itself) */
    _cleanup_free_ char *self = NULL;
    if (!sshconf_user_sets(c, s, "ProxyCommand") && !sshconf_user_sets(c, s, "ProxyJump") &&
        !sshconf_user_sets(c, s, "ProxyUseFdpass") && (self = fs_self_exe()) && !strchr(self, '\n')) {
        sbuf_adds(out, "    ProxyCommand ");
        _cleanup_sbuf_ sbuf q = SBUF_INIT;
        sbuf_add_shell_quoted(&q, self);
        for (const char *p = sbuf_str(&q); *p; p++) {   /* ssh expands %-tokens */
            if (*p == '%')
                sbuf_addc(out, '%');
            sbuf_addc(out, *p);
        }
        sbuf_adds(out, " " SSHCONF_PROXY_ARGS "\n    ProxyUseFdpass yes\n");
    }
    json_t *tables[] = { vm, global };
    for (size_t t = 0; t < 2; t++) {
        const char *k;
        json_t *v;
        json_object_foreach(tables[t], k, v) {
            if (check_key(k, err) < 0 || add_value(out, k, v, config_dir(c), err) < 0) {
                qq_err_prefix(err, "%s: %s", config_path(c), t == 0 ? "[vm.NAME.ssh]" : "[ssh]");
                return -1;
            }
        }
    }
    return 0;
}

static char *missing_in(json_t *v, const char *base_dir)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            char *m = missing_in(e, base_dir);
            if (m)
                return m;
        }
        return NULL;
    }
    const char *s = json_string_value(v);
    if (!s || !*s || strchr(s, '%') || strstr(s, "${") || strcasecmp(s, "none") == 0)
        return NULL;
    _cleanup_free_ char *path = NULL;
    if (s[0] == '~' && s[1] == '/') {
        const char *home = getenv("HOME");
        if (!home)
            return NULL;
        path = xasprintf("%s%s", home, s + 1);
    } else if (s[0] == '~') {
        return NULL;   /* ~user/: not ours to judge */
    } else {
        path = s[0] == '/' ? xstrdup(s) : xasprintf("%s/%s", base_dir, s);
    }
    return access(path, F_OK) == 0 ? NULL : TAKE_PTR(path);
}

char *sshconf_missing_identity(const config *c, const vm_spec *s)
{
    json_t *tables[] = { s->ssh_opts, s->ssh_global };
    for (size_t t = 0; t < 2; t++) {
        const char *k;
        json_t *v;
        json_object_foreach(tables[t], k, v) {
            if (strcasecmp(k, "IdentityFile") != 0)
                continue;
            char *m = missing_in(v, config_dir(c));
            if (m)
                return m;
        }
    }
    return NULL;
}

char *sshconf_get(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, key, klen) != 0 || !strchr(" \t=", p[klen]))
            continue;
        p += klen;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '=')
            p++;
        while (*p == ' ' || *p == '\t')
            p++;
        sbuf v = SBUF_INIT;
        char quote = 0;
        for (; *p && *p != '\n'; p++) {
            if (*p == '\\' && (p[1] == '"' || p[1] == '\'' || p[1] == '\\' || (!quote && p[1] == ' ')))
                sbuf_addc(&v, *++p);
            else if (!quote && (*p == ' ' || *p == '\t'))
                break;
            else if (!quote && (*p == '"' || *p == '\''))
                quote = *p;
            else if (quote && *p == quote)
                quote = 0;
            else
                sbuf_addc(&v, *p);
        }
        char *s = sbuf_steal(&v);
        if (!s)
            s = xstrdup("");
        if (in(token_keys, key)) {
            char *w = s;
            for (char *r = s; *r; r++) {
                *w++ = *r;
                if (*r == '%' && r[1] == '%')
                    r++;
            }
            *w = '\0';
        }
        return s;
    }
    return NULL;
}
