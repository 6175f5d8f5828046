/* common — the one option parser, the help generated from the command rows,
 * and the helpers every command file shares (see cmd.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/jsonw.h"
#include "../base/report.h"
#include "../app/guestclock.h"
#include "cmd.h"

config *qq_config(qq_ctx *ctx, qq_err *err)
{
    if (!ctx->cfg)
        ctx->cfg = config_load(ctx->config_path, err);
    return ctx->cfg;
}

/* The reporter's sink: stderr; progress and notes only when it is a terminal. */
static void stderr_sink(void *ud, report_kind kind, const char *text, size_t len)
{
    (void)ud;
    switch (kind) {
    case REPORT_PROGRESS:
        fprintf(stderr, "\r\033[K%s", text);
        break;
    case REPORT_PROGRESS_END:
        if (text)
            fprintf(stderr, "\r\033[K%s\n", text);
        else
            fputc('\n', stderr);
        break;
    case REPORT_NOTE:
    case REPORT_LINE:
        fprintf(stderr, "%s\n", text);
        break;
    case REPORT_OUTPUT:
        fwrite(text, 1, len, stderr);
        break;
    }
    fflush(stderr);
}

void qq_install_reporter(void)
{
    report_sink s = { .emit = stderr_sink, .watched = isatty(STDERR_FILENO) };
    report_set_sink(&s);
}

static qq_capture *capture;

void qq_capture_to(qq_capture *cap)
{
    capture = cap;
}

int qq_report(const qq_err *err)
{
    if (capture) {
        if (!capture->errors)
            capture->errors = json_array();
        json_array_append_new(capture->errors, json_string(err->msg));
    } else {
        fprintf(stderr, "qqmgr: %s\n", err->msg);
    }
    return err->code ? err->code : QQ_EXIT_FAIL;
}

int qq_usage_error(qq_ctx *ctx, qq_err *err, bool usage_line, const char *fmt, ...)
{
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->usage_line = usage_line;
    return qq_fail(err, QQ_EXIT_USAGE, "%s: %s", ctx->cmd->name, msg);
}

int qq_report_usage(qq_ctx *ctx, const qq_err *err)
{
    qq_report(err);
    if (ctx->usage_line)
        qq_usage(ctx, false);
    return QQ_EXIT_USAGE;
}

void qq_print_json(json_t *doc)
{
    if (!doc)
        return;
    if (capture) {
        json_decref(capture->doc);
        capture->doc = doc;
        return;
    }
    /* jsonw writes what json_dumps() would, minus jansson's per-token cost;
     * what it leaves to jansson (reals, invalid UTF-8) still goes there */
    sbuf b = SBUF_INIT;
    if (jsonw_value(&b, doc, 0) == 0) {
        sbuf_addc(&b, '\n');
        fwrite(b.buf, 1, b.len, stdout);
    } else {
        char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        if (s) {
            fputs(s, stdout);
            fputc('\n', stdout);
            free(s);
        }
    }
    sbuf_free(&b);
    json_decref(doc);
}

int qq_print_rows(const qq_ctx *ctx, json_t *list, void (*row)(json_t *item))
{
    if (ctx->json) {
        qq_print_json(list);
        return 0;
    }
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
        row(item);
    json_decref(list);
    return 0;
}

int qq_parse_seconds(const char *text, long min, int *out)
{
    /* digits only: no sign, fraction, exponent, blank, "nan" or "inf" */
    if (!*text || strspn(text, "0123456789") != strlen(text) || strlen(text) > 6)
        return -1;
    long v = strtol(text, NULL, 10);
    if (v < min || v > 86400)
        return -1;
    *out = (int)v;
    return 0;
}

int qq_check_json_args(qq_ctx *ctx, int argc, char **argv, qq_err *err)
{
    if (argc <= 3)
        return 0;
    json_error_t je;
    json_t *args = json_loads(argv[3], 0, &je);
    bool object = json_is_object(args);
    bool parsed = args != NULL;
    json_decref(args);
    if (!object)
        return qq_usage_error(ctx, err, false, "JSON_ARGS must be a JSON object%s%s", parsed ? "" : ": ",
                              parsed ? "" : je.text);
    return 0;
}

void qq_shell_quote(sbuf *out, const char *arg) { sbuf_add_shell_quoted(out, arg); }

void qq_clock_report(const qq_ctx *ctx, const char *vm, const guestclock_result *r)
{
    if (!r->tried)
        return;
    if (r->set) {
        if (ctx->debug)
            fprintf(stderr, "qqmgr: %s: guest clock %s; now %.1f s from the host's\n", vm, r->how, r->after_s);
        else if (r->agent[0])   /* guest_agent = true, but each restore waits for it in vain */
            fprintf(stderr, "qqmgr: %s: %s; the guest clock was set through ssh (each restore waits up to 3 s "
                    "for the agent)\n", vm, r->agent);
        return;
    }
    fprintf(stderr, "qqmgr: warning: %s: the guest clock is %.0f s behind the host (%s); set it with "
            "`%s ssh %s date -u -s @$(date +%%s)` or in the guest\n", vm, r->behind_s, r->how,
            ctx->cfg ? config_cli(ctx->cfg) : "qqmgr", vm);
}

const qq_global_opt qq_globals[] = {
    { 'c', true, "config", "FILE", "the config (default: ./qqmgr.toml, else ~/.config/qqmgr/conf.toml)" },
    { 'd', true, "debug", NULL, "print what is run" },
    { 'H', true, "host", "HOST", "run the command on [ssh://][USER@]HOST[:PORT] over ssh (also: QQMGR_HOST)" },
    { 'h', true, "help", NULL, "this help" },
    { 'V', false, "version", NULL, "print the version" },
    { 'j', false, "json", NULL, NULL },   /* documented with the commands: also after them */
    { 0 },
};

void qq_format_bytes(char *buf, size_t len, unsigned long long bytes)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof *units) {
        v /= 1024;
        u++;
    }
    if (u == 0 || v >= 100)
        snprintf(buf, len, "%.0f %s", v, units[u]);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
}

/* ------------------------------------------------------------------ help */

static const qq_command *visible(const qq_command *c)
{
    return c->alias_of ? NULL : c;
}

/* "-f|--force", "--timeout S", "--wait[=STAGE]", "-n|--lines N" */
static void opt_spelling(sbuf *out, const qq_opt *o, const char *sep)
{
    if (o->short_name)
        sbuf_addf(out, "-%c", o->short_name);
    if (o->short_name && o->long_name)
        sbuf_adds(out, sep);
    if (o->long_name)
        sbuf_addf(out, "--%s", o->long_name);
    if (o->kind != QQ_OPT_FLAG) {
        if (o->implicit)
            sbuf_addf(out, "[=%s]", o->arg);
        else
            sbuf_addf(out, " %s", o->arg);
    }
}

void qq_synopsis(sbuf *out, const qq_command *c)
{
    sbuf_adds(out, c->args ? c->args : "");
    for (const qq_opt *o = c->opts; o && o->kind; o++) {
        if (out->len && out->buf[out->len - 1] != ' ')   /* no args: "prune [-n]", not "prune  [-n]" */
            sbuf_addc(out, ' ');
        sbuf_addc(out, '[');
        opt_spelling(out, o, "|");
        sbuf_addc(out, ']');
    }
    if (c->rest_args) {
        if (out->len)
            sbuf_addc(out, ' ');
        sbuf_adds(out, c->rest_args);
    }
}

static void help_line(FILE *f, const char *left, const char *text)
{
    if (strlen(left) > 20)
        fprintf(f, "  %s\n  %-20s %s\n", left, "", text);
    else
        fprintf(f, "  %-20s %s\n", left, text);
}

/* the generated tail of a help line: accepted values and default */
static void opt_details(sbuf *out, const qq_opt *o, const void *defaults)
{
    const char *def = NULL;
    char num[32];
    if (defaults) {
        const char *p = (const char *)defaults + o->offset;
        if (o->kind == QQ_OPT_SECONDS && *(const int *)(const void *)p) {
            snprintf(num, sizeof num, "%d", *(const int *)(const void *)p);
            def = num;
        } else if (o->kind == QQ_OPT_INT && *(const long *)(const void *)p) {
            snprintf(num, sizeof num, "%ld", *(const long *)(const void *)p);
            def = num;
        } else if ((o->kind == QQ_OPT_ENUM || o->kind == QQ_OPT_STRING) && *(const char *const *)(const void *)p) {
            def = *(const char *const *)(const void *)p;
        }
    }
    if (o->kind == QQ_OPT_ENUM) {
        sbuf_addf(out, " (%s: ", o->arg);
        for (const char *const *v = o->values; *v; v++)
            sbuf_addf(out, "%s%s", v == o->values ? "" : ", ", *v);
        if (o->implicit)
            sbuf_addf(out, "; alone: %s", o->implicit);
        if (def)
            sbuf_addf(out, "; default %s", def);
        sbuf_addc(out, ')');
    } else if (o->kind == QQ_OPT_SECONDS) {
        sbuf_addf(out, " [whole seconds, %ld to 86400%s%s]", o->min, def ? "; default " : "", def ? def : "");
    } else if (def) {
        sbuf_addf(out, " (default %s)", def);
    }
}

int qq_usage(qq_ctx *ctx, bool help)
{
    FILE *f = help ? stdout : stderr;
    const qq_command *c = ctx->cmd;
    _cleanup_sbuf_ sbuf syn = SBUF_INIT;
    qq_synopsis(&syn, c);
    fprintf(f, "usage: qqmgr %s%s%s\n", c->name, syn.len ? " " : "", sbuf_str(&syn));
    if (!help) {
        fprintf(f, "(qqmgr %s -h for help)\n", c->name);
        return QQ_EXIT_USAGE;
    }
    if (c->summary)
        fprintf(f, "\n%s\n", c->summary);
    if (c->alias_of)
        fprintf(f, "\nan alias of qqmgr %s\n", c->alias_of);
    fprintf(f, "\nOptions:\n");
    for (const qq_opt *o = c->opts; o && o->kind; o++) {
        _cleanup_sbuf_ sbuf left = SBUF_INIT, text = SBUF_INIT;
        opt_spelling(&left, o, ", ");
        sbuf_adds(&text, o->help);
        opt_details(&text, o, c->opts_defaults);
        help_line(f, sbuf_str(&left), sbuf_str(&text));
    }
    if (c->json)
        help_line(f, "--json", c->json);
    help_line(f, "-h, --help", "this help");
    return 0;
}

void qq_overview(FILE *f)
{
    fprintf(f,
            "usage: qqmgr [-H HOST] [-c FILE] [-d] COMMAND [ARGS...] [--json]\n"
            "       qqmgr COMMAND -h    help on one command\n\n"
            "Global options (before the command):\n");
    for (const qq_global_opt *g = qq_globals; g->val; g++) {
        if (!g->help)
            continue;
        char left[64];
        snprintf(left, sizeof left, "%s%c%s--%s%s%s", g->has_short ? "-" : " ", g->has_short ? g->val : ' ',
                 g->has_short ? ", " : "  ", g->long_name, g->arg ? " " : "", g->arg ? g->arg : "");
        fprintf(f, "  %-18s %s\n", left, g->help);
    }
    fprintf(f, "\nCommands:\n");
    for (const qq_command *const *p = qq_commands; *p; p++) {
        const qq_command *c = visible(*p);
        if (!c || !c->summary)
            continue;
        _cleanup_sbuf_ sbuf head = SBUF_INIT;
        sbuf_addf(&head, "%s ", c->name);
        qq_synopsis(&head, c);
        if (head.len > 44)
            fprintf(f, "  %s\n  %-44s %s\n", sbuf_str(&head), "", c->summary);
        else
            fprintf(f, "  %-44s %s\n", sbuf_str(&head), c->summary);
    }
    fprintf(f, "\nExit status: 0 success, 1 failure, 2 usage or config error; ssh passes the remote status.\n");
}

void qq_group_usage(FILE *f, const char *group)
{
    size_t n = strlen(group);
    fprintf(f, "usage: qqmgr %s SUBCOMMAND ...\n\nSubcommands:\n", group);
    for (const qq_command *const *p = qq_commands; *p; p++) {
        const qq_command *c = *p;
        if (!c->summary || strncmp(c->name, group, n) != 0 || c->name[n] != ' ')
            continue;
        _cleanup_sbuf_ sbuf head = SBUF_INIT;
        sbuf_addf(&head, "%s ", c->name);
        qq_synopsis(&head, c);
        if (head.len > 44)   /* as the main usage: the summary on a line of its own */
            fprintf(f, "  %s\n  %-44s %s\n", sbuf_str(&head), "", c->summary);
        else
            fprintf(f, "  %-44s %s\n", sbuf_str(&head), c->summary);
    }
    fprintf(f, "\nqqmgr %s SUBCOMMAND -h: help on one\n", group);
}

/* ------------------------------------------------------------------ parsing */

/* A usage error of the command line: reported through qq_err ("CMD: MSG"),
 * the usage line after it when usage_line; returns 2. */
__attribute__((format(printf, 3, 4)))
static int parse_error(qq_ctx *ctx, bool usage_line, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qq_err err = { 0 };
    qq_usage_error(ctx, &err, usage_line, "%s", msg);
    return qq_report_usage(ctx, &err);
}

/* the global option a spells (-c, -cFILE, --config, --config=FILE, ...), or NULL;
 * -h and --json are the command's own too, so never "misplaced" */
const qq_global_opt *qq_global_option(const char *a)
{
    for (const qq_global_opt *g = qq_globals; g->val; g++) {
        if (g->val == 'h' || g->val == 'j')
            continue;
        if (g->has_short && a[0] == '-' && a[1] == g->val && (!a[2] || g->arg))
            return g;
        size_t n = strlen(g->long_name);
        if (a[0] == '-' && a[1] == '-' && strncmp(a + 2, g->long_name, n) == 0 &&
            (!a[2 + n] || (a[2 + n] == '=' && g->arg)))
            return g;
    }
    return NULL;
}

static bool is_global_option(const char *a)
{
    return qq_global_option(a) != NULL;
}

/* `list -c x.toml`: say where global options go, with the line that works */
static int global_misplaced(qq_ctx *ctx, int argc, char **argv, int at)
{
    _cleanup_sbuf_ sbuf line = SBUF_INIT;
    sbuf_adds(&line, "qqmgr");
    if (ctx->config_path) {
        sbuf_adds(&line, " -c ");
        qq_shell_quote(&line, ctx->config_path);
    }
    if (ctx->debug)
        sbuf_adds(&line, " -d");
    /* the global options found among the command's arguments, in order */
    bool *moved = calloc((size_t)argc, sizeof *moved);
    if (!moved)
        abort();
    for (int i = at; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *a = argv[i];
        if (!is_global_option(a))
            continue;
        moved[i] = true;
        sbuf_addc(&line, ' ');
        qq_shell_quote(&line, a);
        const qq_global_opt *g = qq_global_option(a);
        if (g->arg && !strchr(a, '=') && !(a[1] != '-' && a[2]) && i + 1 < argc) {   /* its value follows */
            moved[++i] = true;
            sbuf_addc(&line, ' ');
            qq_shell_quote(&line, argv[i]);
        }
    }
    sbuf_addf(&line, " %s", ctx->cmd->name);
    for (int i = 1; i < argc; i++) {
        if (moved[i])
            continue;
        sbuf_addc(&line, ' ');
        qq_shell_quote(&line, argv[i]);
    }
    free(moved);
    return parse_error(ctx, false, "%s is a global option; global options (-c, -d, -H) go before the command: %s",
                       argv[at], sbuf_str(&line));
}

static int unknown_option(qq_ctx *ctx, const char *spelled)
{
    return parse_error(ctx, true, "unknown option '%s'", spelled);
}

static void opt_name(char *buf, size_t n, const qq_opt *o)
{
    if (o->long_name)
        snprintf(buf, n, "--%s", o->long_name);
    else
        snprintf(buf, n, "-%c", o->short_name);
}

/* store one option's value; text NULL for a flag or an absent optional value */
static int set_opt(qq_ctx *ctx, const qq_opt *o, const char *text, void *opts)
{
    char *p = (char *)opts + o->offset;
    char name[64];
    opt_name(name, sizeof name, o);
    switch (o->kind) {
    case QQ_OPT_FLAG:
        *(bool *)(void *)p = true;
        return -1;
    case QQ_OPT_SECONDS:
        if (qq_parse_seconds(text, o->min, (int *)(void *)p) < 0) {
            return parse_error(ctx, false, "%s: expected whole seconds (%ld..86400), got '%s'", name, o->min, text);
        }
        return -1;
    case QQ_OPT_INT: {
        if (!text)
            text = o->implicit;
        long v = 0;
        if (*text && strspn(text, "0123456789") == strlen(text) && strlen(text) <= 9)
            v = strtol(text, NULL, 10);
        else
            v = o->min - 1;
        if (v < o->min) {
            return parse_error(ctx, false, "%s: expected a whole number (at least %ld), got '%s'", name, o->min,
                               text);
        }
        *(long *)(void *)p = v;
        return -1;
    }
    case QQ_OPT_STRING:
        *(const char **)(void *)p = text;
        return -1;
    case QQ_OPT_ENUM:
        if (!text)
            text = o->implicit;
        for (const char *const *v = o->values; *v; v++) {
            if (strcmp(*v, text) == 0) {
                *(const char **)(void *)p = *v;
                return -1;
            }
        }
        _cleanup_sbuf_ sbuf vals = SBUF_INIT;
        for (const char *const *v = o->values; *v; v++)
            sbuf_addf(&vals, "%s%s", v == o->values ? "" : v[1] ? ", " : " or ", *v);
        return parse_error(ctx, false, "%s: expected %s, got '%s'", name, sbuf_str(&vals), text);
    }
    return -1;
}

static const qq_opt *find_long(const qq_command *c, const char *name, size_t len)
{
    for (const qq_opt *o = c->opts; o && o->kind; o++)
        if (o->long_name && strlen(o->long_name) == len && strncmp(o->long_name, name, len) == 0)
            return o;
    return NULL;
}

static const qq_opt *find_short(const qq_command *c, char ch)
{
    for (const qq_opt *o = c->opts; o && o->kind; o++)
        if (o->short_name == ch)
            return o;
    return NULL;
}

/* `start VM --wait ssh`: the word after an optional-value option is one of
 * its values, so it was meant as that value (which needs the '=') */
static bool optional_value_hint(qq_ctx *ctx, const char *prev, const char *word)
{
    if (!prev || strncmp(prev, "--", 2) != 0 || strchr(prev, '='))
        return false;
    const qq_opt *o = find_long(ctx->cmd, prev + 2, strlen(prev + 2));
    if (!o || !o->implicit)
        return false;
    bool is_value = false;
    for (const char *const *v = o->values; v && *v; v++)
        is_value = is_value || strcmp(*v, word) == 0;
    if (o->kind == QQ_OPT_INT)
        is_value = *word && strspn(word, "0123456789") == strlen(word);
    if (!is_value)
        return false;
    parse_error(ctx, true, "%s takes its value after '=': %s=%s (alone it means %s=%s)", prev, prev, word, prev,
                o->implicit);
    return true;
}

int qq_parse(qq_ctx *ctx, const qq_command *c, int *argcp, char **argv, void *opts)
{
    int argc = *argcp, npos = 1;
    int rc = -1;
    int i = 1;
    for (; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            if (c->rest == QQ_REST_AFTER_DASHDASH) {
                ctx->rest = argv + i;
                ctx->nrest = argc - i;
                i = argc;
            }
            for (; i < argc; i++) {
                argv[npos++] = argv[i];
            }
            break;
        }
        if (strcmp(a, "--json") == 0 && !(c->rest && npos > 1)) {
            ctx->json = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            rc = qq_usage(ctx, true);
            goto out;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (i > 1 && optional_value_hint(ctx, argv[i - 1], a)) {
                rc = QQ_EXIT_USAGE;
                goto out;
            }
            argv[npos++] = a;
            if (c->rest == QQ_REST_AFTER_FIRST) {
                i++;
                if (i < argc && strcmp(argv[i], "--") == 0)
                    i++;
                ctx->rest = argv + i;
                ctx->nrest = argc - i;
                i = argc;
                break;
            }
            continue;
        }
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const qq_opt *o = find_long(c, name, len);
            if (!o) {
                rc = is_global_option(a) ? global_misplaced(ctx, argc, argv, i) : unknown_option(ctx, a);
                goto out;
            }
            const char *val = NULL;
            if (o->kind == QQ_OPT_FLAG) {
                if (eq) {
                    rc = parse_error(ctx, false, "--%s takes no value", o->long_name);
                    goto out;
                }
            } else if (eq) {
                val = eq + 1;
            } else if (!o->implicit) {
                if (i + 1 >= argc) {
                    rc = parse_error(ctx, false, "--%s needs a value (%s)", o->long_name, o->arg);
                    goto out;
                }
                val = argv[++i];
            }
            if ((rc = set_opt(ctx, o, val, opts)) >= 0)
                goto out;
            continue;
        }
        /* short options, clustered (-fn5, -n 5) */
        for (const char *s = a + 1; *s; s++) {
            const qq_opt *o = find_short(c, *s);
            if (!o) {
                char spelled[3] = { '-', *s, 0 };
                rc = qq_global_option((char[]){ '-', *s, 0 }) ? global_misplaced(ctx, argc, argv, i) : unknown_option(ctx, spelled);
                goto out;
            }
            if (o->kind == QQ_OPT_FLAG) {
                set_opt(ctx, o, NULL, opts);
                continue;
            }
            const char *val = s[1] ? s + 1 : NULL;
            if (!val) {
                if (i + 1 >= argc) {
                    rc = parse_error(ctx, false, "-%c needs a value (%s)", *s, o->arg);
                    goto out;
                }
                val = argv[++i];
            }
            if ((rc = set_opt(ctx, o, val, opts)) >= 0)
                goto out;
            break;
        }
    }
    if (!ctx->rest || argv + npos < ctx->rest)   /* the rest may start right there */
        argv[npos] = NULL;
    int n = npos - 1;
    if (n < c->min_args || (c->max_args >= 0 && n > c->max_args)) {
        rc = qq_usage(ctx, false);
        goto out;
    }
    *argcp = npos;
out:
    return rc;
}

void qq_fmt_uptime(char *buf, size_t len, long long s)
{
    if (s < 60)
        snprintf(buf, len, "%llds", s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

void qq_fmt_ports(sbuf *out, json_t *ports, const char *sep, bool short_form)
{
    size_t i;
    json_t *f;
    json_array_foreach(ports, i, f) {
        const char *proto = json_string_value(json_object_get(f, "proto"));
        const char *addr = json_string_value(json_object_get(f, "host_addr"));
        sbuf_addf(out, "%s%s%s", i ? sep : "", proto && strcmp(proto, "tcp") ? proto : "",
                  proto && strcmp(proto, "tcp") ? " " : "");
        if (!short_form || !addr || strcmp(addr, "127.0.0.1") != 0)
            sbuf_addf(out, "%s:", addr ? addr : "?");
        sbuf_addf(out, "%lld->%lld", (long long)json_integer_value(json_object_get(f, "host_port")),
                  (long long)json_integer_value(json_object_get(f, "guest_port")));
    }
}
