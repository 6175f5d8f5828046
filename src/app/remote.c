/* remote — see remote.h. */
#include "remote.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/report.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "../infra/proc.h"
#include "ssh.h"
#include "sshconf.h"

/* ------------------------------------------------------------------ HOST */

/* A user or host name ssh and a shell take as one word, and a file name. */
static bool plain_word(const char *s)
{
    if (!*s || *s == '-' || *s == '.')
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == 0x7f || strchr("'\"\\`$;&|<>(){}*?!#~/%", *p))
            return false;
    return true;
}

int remote_parse(const char *spec, remote_host *out, qq_err *err)
{
    memset(out, 0, sizeof *out);
    const char *s = spec;
    bool url = strncmp(s, "ssh://", 6) == 0;
    if (url)
        s += 6;
    _cleanup_free_ char *copy = xstrdup(s);
    char *p = copy;
    size_t len = strlen(p);
    if (url && len && p[len - 1] == '/')
        p[--len] = '\0';
    char *at = strrchr(p, '@');
    if (at) {
        *at = '\0';
        if (!plain_word(p) || strlen(p) >= sizeof out->user)
            goto bad;
        snprintf(out->user, sizeof out->user, "%s", p);
        p = at + 1;
    }
    char *port = NULL;
    if (*p == '[') {                      /* [IPv6]:PORT */
        char *close = strchr(p, ']');
        if (!close || (close[1] && close[1] != ':'))
            goto bad;
        *close = '\0';
        port = close[1] ? close + 2 : NULL;
        p++;
    } else {
        char *colon = strchr(p, ':');
        if (colon && !strchr(colon + 1, ':')) {   /* one colon: HOST:PORT; more: a bare IPv6 address */
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (!plain_word(p) || strlen(p) >= sizeof out->host)
        goto bad;
    snprintf(out->host, sizeof out->host, "%s", p);
    if (port) {
        char *end;
        long v = strtol(port, &end, 10);
        if (!*port || *end || v < 1 || v > 65535)
            goto bad;
        out->port = (int)v;
    }
    return 0;
bad:
    return qq_fail(err, QQ_EXIT_USAGE, "-H: expected [ssh://][USER@]HOST[:PORT], not \"%s\"", spec);
}

/* ------------------------------------------------------------------ ssh */

static const char *remote_bin(void)
{
    const char *b = getenv("QQMGR_REMOTE_BIN");
    return b && *b ? b : "qqmgr";
}

/* "ssh [-F CONFIG] [-l USER] [-p PORT]" (without the destination) */
static int ssh_base(const remote_host *h, char ***v, size_t *n, qq_err *err)
{
    strv_push(v, n, xstrdup("ssh"));
    const char *cfg = getenv("QQMGR_SSH_CONFIG");
    if (cfg && *cfg) {
        for (const unsigned char *c = (const unsigned char *)cfg; *c; c++)
            if (*c < ' ')
                return qq_fail(err, QQ_EXIT_USAGE, "QQMGR_SSH_CONFIG: a control character in the path");
        strv_push(v, n, xstrdup("-F"));
        strv_push(v, n, xstrdup(cfg));
    }
    if (h->user[0]) {
        strv_push(v, n, xstrdup("-l"));
        strv_push(v, n, xstrdup(h->user));
    }
    if (h->port) {
        strv_push(v, n, xstrdup("-p"));
        strv_push(v, n, xasprintf("%d", h->port));
    }
    return 0;
}

/* The command line the remote shell runs. */
static char *remote_command(const char *config_path, bool debug, int argc, char **argv)
{
    sbuf b = SBUF_INIT;
    sbuf_adds(&b, remote_bin());
    if (debug)
        sbuf_adds(&b, " -d");
    if (config_path) {
        sbuf_adds(&b, " -c ");
        sbuf_add_shell_quoted(&b, config_path);
    }
    for (int i = 0; i < argc; i++) {
        sbuf_addc(&b, ' ');
        sbuf_add_shell_quoted(&b, argv[i]);
    }
    return sbuf_steal(&b);
}

/* Run av, wait for it; with capture, its stdout is collected there. Ctrl-C
 * and Ctrl-\ reach ssh (same process group), qqmgr waits for its status.
 * Returns the exit status (128+N for a signal), or -1 with err when ssh
 * could not be run at all. */
static int run_ssh(char **av, sbuf *capture, qq_err *err)
{
    struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    fflush(NULL);
    proc_run_opts o = { .out = capture };   /* the child gets default signal dispositions */
    proc_result r;
    int rc = proc_run(av, &o, &r, err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    if (rc < 0)
        return -1;
    return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : 128 + WTERMSIG(r.status);
}

/* ssh's own failures and a missing remote qqmgr become one clear line. */
static int map_status(const remote_host *h, int rc, qq_err *err)
{
    if (rc == 255)
        return qq_fail(err, QQ_EXIT_FAIL, "-H %s: ssh failed (its message is above)", h->host);
    if (rc == 127)
        return qq_fail(err, QQ_EXIT_FAIL, "qqmgr not found on %s (QQMGR_REMOTE_BIN: %s)", h->host, remote_bin());
    if (rc == 126)
        return qq_fail(err, QQ_EXIT_FAIL, "%s on %s cannot be executed", remote_bin(), h->host);
    return rc;
}

/* Run qqmgr on the host: argv is the command line after the global options. */
static int run_remote(const remote_host *h, const char *config_path, bool debug, int argc, char **argv,
                      const char *tty_flag, sbuf *capture, qq_err *err)
{
    _cleanup_strv_ char **av = NULL;
    size_t n = 0;
    if (ssh_base(h, &av, &n, err) < 0)
        return -1;
    if (tty_flag)
        strv_push(&av, &n, xstrdup(tty_flag));
    strv_push(&av, &n, xstrdup(h->host));
    strv_push(&av, &n, xstrdup("--"));
    strv_push(&av, &n, remote_command(config_path, debug, argc, argv));
    if (debug)
        proc_echo(av);
    int rc = run_ssh(av, capture, err);
    return rc < 0 ? -1 : map_status(h, rc, err);
}

/* ------------------------------------------------------------------ ssh, put, get */

/* What of the host's ssh config of a VM is copied into the local one. The host's
 * config is data: whoever edits it must not get more from this machine than
 * `ssh HOST` gives. So only keywords that cannot run a command, forward a
 * connection, the agent or X11, load a library or read another config here are
 * copied; the host's connection sharing (its paths) is left out silently, the
 * rest with one warning naming the keywords. Paths (keys, known hosts files)
 * are copied only as plain absolute paths (no %-tokens, no ${}); keys and
 * certificates must be regular files here. */
static const char *const copied[] = {
    "HostName", "Port", "User", "HostKeyAlias", "HostKeyAlgorithms", "PubkeyAcceptedAlgorithms",
    "PubkeyAcceptedKeyTypes", "CASignatureAlgorithms", "Ciphers", "MACs", "KexAlgorithms", "Compression",
    "ConnectTimeout", "ConnectionAttempts", "ServerAliveInterval", "ServerAliveCountMax", "TCPKeepAlive",
    "LogLevel", "StrictHostKeyChecking", "CheckHostIP", "HashKnownHosts", "UpdateHostKeys", "VerifyHostKeyDNS",
    "IdentitiesOnly", "PubkeyAuthentication", "PasswordAuthentication", "KbdInteractiveAuthentication",
    "ChallengeResponseAuthentication", "PreferredAuthentications", "BatchMode", "NumberOfPasswordPrompts",
    "RequestTTY", "SetEnv", "AddressFamily", "RekeyLimit", "IPQoS", "EscapeChar", "ClearAllForwardings",
    "ExitOnForwardFailure", "FingerprintHash",
    /* paths, checked */
    "IdentityFile", "CertificateFile", "UserKnownHostsFile", "GlobalKnownHostsFile", NULL
};
static const char *const silent[] = { "ControlMaster", "ControlPath", "ControlPersist", "ProxyUseFdpass", NULL };

/* Is ProxyCommand value v the one a qqmgr writes (its path, then SSHCONF_PROXY_ARGS)? */
static bool ours_proxy(const char *v)
{
    size_t n = strlen(v), an = strlen(" " SSHCONF_PROXY_ARGS);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        n--;
    return n > an && strncmp(v + n - an, " " SSHCONF_PROXY_ARGS, an) == 0;
}

static const char *in_list(const char *const *list, const char *key, size_t n)
{
    for (; *list; list++)
        if (strlen(*list) == n && strncasecmp(*list, key, n) == 0)
            return *list;
    return NULL;
}

/* The words of an ssh_config value (quotes removed), NULL when it has none
 * or they cannot be read back. */
static char **value_words(const char *v)
{
    char **w = NULL;
    size_t n = 0;
    while (*v) {
        while (*v == ' ' || *v == '\t')
            v++;
        if (!*v)
            break;
        sbuf b = SBUF_INIT;
        char quote = 0;
        for (; *v && (quote || (*v != ' ' && *v != '\t')); v++) {
            if (!quote && (*v == '"' || *v == '\''))
                quote = *v;
            else if (quote && *v == quote)
                quote = 0;
            else if (*v == '\\' && v[1])
                sbuf_addc(&b, *++v);
            else
                sbuf_addc(&b, *v);
        }
        strv_push(&w, &n, sbuf_steal(&b));
        if (quote) {
            strv_free(w);
            return NULL;
        }
    }
    return w;
}

/* A path the local ssh may use: plain and absolute ("%%" is a "%"), a regular
 * file for keys; "none" and /dev/null as they are. */
static bool path_ok(const char *key, const char *path)
{
    if (strcasecmp(path, "none") == 0 || strcmp(path, "/dev/null") == 0)
        return true;
    if (path[0] != '/' || strstr(path, "${"))
        return false;
    for (const char *c = path; *c; c++) {
        if (*c == '%' && c[1] != '%')
            return false;
        if (*c == '%')
            c++;
    }
    if (strcasecmp(key, "IdentityFile") == 0 || strcasecmp(key, "CertificateFile") == 0) {
        struct stat st;
        _cleanup_free_ char *plain = xstrdup(path);
        char *o = plain;
        for (const char *c = path; *c; c++) {
            *o++ = *c;
            if (*c == '%')
                c++;
        }
        *o = '\0';
        return stat(plain, &st) == 0 && S_ISREG(st.st_mode);
    }
    return true;
}

/* The VM's ssh config as the host wrote it, reached through the host: our
 * Host line (the alias), ProxyCommand right after it (ssh keeps the first
 * value), then the host's lines that `copied` allows. */
static char *local_config(const remote_host *h, const char *alias, const char *text, const char *known_hosts,
                          qq_err *err)
{
    _cleanup_strv_ char **pv = NULL;
    size_t pn = 0;
    if (ssh_base(h, &pv, &pn, err) < 0)
        return NULL;
    sbuf proxy = SBUF_INIT;
    for (size_t i = 0; i < pn; i++) {
        sbuf one = SBUF_INIT;
        sbuf_add_shell_quoted(&one, pv[i]);
        for (const char *c = sbuf_str(&one); *c; c++) {   /* ssh expands %-tokens */
            if (*c == '%')
                sbuf_addc(&proxy, '%');
            sbuf_addc(&proxy, *c);
        }
        sbuf_free(&one);
        sbuf_addc(&proxy, ' ');
    }
    sbuf_adds(&proxy, "-W %h:%p ");
    sbuf_adds(&proxy, h->host);   /* a plain word (remote_parse) */

    sbuf b = SBUF_INIT;
    sbuf_addf(&b, "# the host's ssh config of the VM, reached through %s\n", h->host);
    sbuf_addf(&b, "Host %s\n", alias);
    sbuf_addf(&b, "    ProxyCommand %s\n    ControlMaster no\n    ControlPath none\n", sbuf_str(&proxy));
    sbuf_free(&proxy);
    _cleanup_sbuf_ sbuf left = SBUF_INIT;   /* "K1, K2" */
    _cleanup_json_ json_t *named = json_object();
    _cleanup_free_ char *copy = xstrdup(text);
    bool in_host = false, past_host = false;
    for (char *line = copy, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *k = line;
        while (*k == ' ' || *k == '\t')
            k++;
        if (!*k || *k == '#')
            continue;
        size_t kn = strcspn(k, " \t=");
        char *v = k + kn;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v == '=')
            v++;
        while (*v == ' ' || *v == '\t')
            v++;
        /* the first Host line is the alias (ours above); what a second Host
         * or a Match would apply to is left out */
        if (kn == 4 && strncasecmp(k, "Host", 4) == 0 && !in_host) {
            in_host = true;
            continue;
        }
        if ((kn == 4 && strncasecmp(k, "Host", 4) == 0) || (kn == 5 && strncasecmp(k, "Match", 5) == 0))
            past_host = true;   /* what follows applies elsewhere: nothing of it is copied */
        const char *key = in_host && !past_host ? in_list(copied, k, kn) : NULL;
        _cleanup_strv_ char **words = key ? value_words(v) : NULL;
        bool ok = key && words && words[0];
        for (char **w = words; ok && *w; w++) {
            for (const unsigned char *c = (const unsigned char *)*w; *c; c++)
                ok = ok && *c >= 0x20 && *c != 0x7f;
            if (ok && (strcasecmp(key, "IdentityFile") == 0 || strcasecmp(key, "CertificateFile") == 0 ||
                       strcasecmp(key, "UserKnownHostsFile") == 0 || strcasecmp(key, "GlobalKnownHostsFile") == 0))
                ok = path_ok(key, *w);
        }
        if (key && known_hosts && strcasecmp(key, "UserKnownHostsFile") == 0) {   /* the host's pins, mirrored here */
            sbuf_adds(&b, "    UserKnownHostsFile \"");
            for (const char *c = known_hosts; *c; c++) {
                if (*c == '%' || *c == '"' || *c == '\\')
                    sbuf_addc(&b, *c == '%' ? '%' : '\\');
                sbuf_addc(&b, *c);
            }
            sbuf_adds(&b, "\"\n");
            known_hosts = NULL;
            continue;
        }
        if (ok) {
            sbuf_addf(&b, "    %s %s\n", key, v);
            continue;
        }
        if (in_list(silent, k, kn))
            continue;
        if (kn == 12 && strncasecmp(k, "ProxyCommand", 12) == 0 && ours_proxy(v))
            continue;   /* the host's own qqmgr connecting there: here ours goes through the host */
        /* named once, as the host spelled it (a word: other bytes shown as ?) */
        _cleanup_free_ char *name = xstrndup(k, kn > 40 ? 40 : kn);
        for (char *c = name; *c; c++)
            if (!isalnum((unsigned char)*c))
                *c = '?';
        _cleanup_free_ char *lower = xstrdup(name);
        for (char *c = lower; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (json_object_get(named, lower))
            continue;
        json_object_set_new(named, lower, json_true());
        sbuf_addf(&left, "%s%s", left.len ? ", " : "", name);
    }
    if (left.len)
        report_line("qqmgr: -H %s: the host's ssh options for %s that could run, forward or read something on this "
                    "machine were left out: %s", h->host, alias, sbuf_str(&left));
    return sbuf_steal(&b);
}

/* The directory of the configs for host h:
 * ${XDG_CACHE_HOME:-~/.cache}/qqmgr/remote/[USER@]HOST[:PORT] (made 0700). */
static char *local_dir(const remote_host *h, qq_err *err)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    _cleanup_free_ char *base = xdg && xdg[0] == '/' ? xasprintf("%s/qqmgr/remote", xdg)
                              : home && home[0] == '/' ? xasprintf("%s/.cache/qqmgr/remote", home) : NULL;
    if (!base) {
        qq_fail(err, QQ_EXIT_FAIL, "-H: nowhere to write the VM's ssh config: neither XDG_CACHE_HOME nor HOME is set");
        return NULL;
    }
    char port[16] = "";
    if (h->port)
        snprintf(port, sizeof port, ":%d", h->port);
    char *dir = xasprintf("%s/%s%s%s%s", base, h->user, h->user[0] ? "@" : "", h->host, port);
    if (fs_mkdir_p(dir, 0700, err) < 0) {
        free(dir);
        return NULL;
    }
    return dir;
}

static int via_host(const remote_host *h, const char *config_path, bool debug, int argc, char **argv,
                    qq_err *err)
{
    const char *vm = argv[1];
    char *q[] = { "ssh-config", (char *)vm, "--json" };
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    int rc = run_remote(h, config_path, debug, 3, q, "-n", &out, err);
    if (rc != 0)
        return rc;
    json_error_t je;
    _cleanup_json_ json_t *doc = json_loads(sbuf_str(&out), 0, &je);
    const char *text = json_string_value(json_object_get(doc, "config"));
    const char *alias = json_string_value(json_object_get(doc, "host"));
    json_t *port = json_object_get(doc, "port");
    if (!text || !alias || !json_is_integer(port))
        return qq_fail(err, QQ_EXIT_FAIL,
                       "-H %s: `ssh-config %s --json` there gave no config (is its qqmgr older than this one?)",
                       h->host, vm);
    bool plain = alias[0] && strlen(alias) < 200;
    for (const char *c = alias; plain && *c; c++)
        plain = isalnum((unsigned char)*c) || strchr("._-", *c);
    if (!plain || json_integer_value(port) < 1 || json_integer_value(port) > 65535)
        return qq_fail(err, QQ_EXIT_FAIL, "-H %s: `ssh-config %s --json` there gave a host alias or port that is not "
                       "one (%.40s…)", h->host, vm, alias);
    /* ssh closes every inherited descriptor before it reads -F: files they are,
     * VM.ssh.conf and (when the host pins the VM's host keys) a copy of its
     * known_hosts, VM.known_hosts, both rewritten on each use */
    _cleanup_free_ char *dir = local_dir(h, err);
    if (!dir)
        return -1;
    json_t *known = json_object_get(doc, "known_hosts");
    _cleanup_free_ char *khpath = NULL;
    if (json_is_object(known)) {
        const char *pins = json_string_value(json_object_get(known, "text"));
        khpath = xasprintf("%s/%s.known_hosts", dir, vm);
        if (fs_write_atomic(khpath, pins ? pins : "", pins ? strlen(pins) : 0, 0600, err) < 0)
            return -1;
    }
    _cleanup_free_ char *conf = local_config(h, alias, text, khpath, err);
    if (!conf)
        return -1;
    ssh_target t = { .port = (int)json_integer_value(port) };
    int n = snprintf(t.conf, sizeof t.conf, "%s/%s.ssh.conf", dir, vm);
    if (n < 0 || (size_t)n >= sizeof t.conf)
        return qq_fail(err, QQ_EXIT_FAIL, "-H: path too long under %s", dir);
    if (fs_write_atomic(t.conf, conf, strlen(conf), 0600, err) < 0)
        return -1;
    snprintf(t.alias, sizeof t.alias, "%s", alias);
    if (debug) {
        report_line("+ cat %s", t.conf);
        size_t n = strlen(conf);
        report_line("%.*s", (int)(n && conf[n - 1] == '\n' ? n - 1 : n), conf);
    }
    if (strcmp(argv[0], "ssh") == 0) {
        int rest = argc - 2;
        char **cmd = argv + 2;
        if (rest > 0 && strcmp(cmd[0], "--") == 0) {
            rest--;
            cmd++;
        }
        ssh_exec(&t, debug, rest, cmd, err);   /* returns only on failure */
        return -1;
    }
    bool put = strcmp(argv[0], "put") == 0;
    return ssh_copy(&t, debug, put, argv[2], argv[3], err);
}

/* Is this `ssh VM …`, `put VM A B` or `get VM A B` (no options), the
 * commands that reach the guest from here? */
static bool reaches_guest(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-')
        return false;
    if (strcmp(argv[0], "ssh") == 0)
        return true;
    if (strcmp(argv[0], "put") != 0 && strcmp(argv[0], "get") != 0)
        return false;
    if (argc != 4)
        return false;
    for (int i = 2; i < argc; i++)
        if (argv[i][0] == '-')
            return false;
    return true;
}

/* `snapshot export VM S [FILE|-]` / `snapshot import VM [FILE|-]` with the
 * stream on our stdout / stdin: a terminal there is refused here, as the
 * command refuses one on its own host (the remote end is a pipe). */
static int stream_on_terminal(int argc, char **argv, qq_err *err)
{
    if (argc < 2 || strcmp(argv[0], "snapshot") != 0)
        return 0;
    bool ex = strcmp(argv[1], "export") == 0, im = strcmp(argv[1], "import") == 0;
    if (!ex && !im)
        return 0;
    int pos = 0;
    const char *file = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--as") == 0) {
            i++;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            continue;
        pos++;
        if (pos == (ex ? 3 : 2))
            file = argv[i];
    }
    bool stdio = !file || strcmp(file, "-") == 0;
    if (stdio && ex && isatty(1))
        return qq_fail(err, QQ_EXIT_USAGE, "snapshot export: the stream is binary: give a FILE (on the host), or "
                       "send stdout to a file or a pipe");
    if (stdio && im && isatty(0))
        return qq_fail(err, QQ_EXIT_USAGE, "snapshot import: the stream is read from stdin, which is a terminal: "
                       "give a FILE (on the host), or pipe one in");
    return 0;
}

int remote_run(const remote_host *h, const char *config_path, bool debug, int argc, char **argv, qq_err *err)
{
    if (stream_on_terminal(argc, argv, err) < 0)
        return -1;
    if (reaches_guest(argc, argv))
        return via_host(h, config_path, debug, argc, argv, err);
    bool terminal = strcmp(argv[0], "console") == 0 || strcmp(argv[0], "gdb") == 0 ||
                    strcmp(argv[0], "qemu") == 0;
    /* snapshot import reads its stream from stdin: ssh passes ours on (no
     * -n, no terminal: every byte as it is) */
    bool reads_stdin = argc >= 2 && strcmp(argv[0], "snapshot") == 0 && strcmp(argv[1], "import") == 0;
    const char *tty = terminal ? (isatty(0) ? "-t" : NULL) : reads_stdin ? NULL : "-n";
    return run_remote(h, config_path, debug, argc, argv, tty, NULL, err);
}
