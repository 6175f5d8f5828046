/* multi — one command on several VMs: `start a b`, `stop --all` (see cmd.h). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app/vm.h"
#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "../infra/par.h"
#include "cmd.h"

typedef struct fanout {
    qq_ctx *ctx;
    char **names;
    qq_vm_fn one;
    json_t *docs;     /* --json: the array being built */
    int last_lines;   /* lines of the last VM's output printed (0: none yet) */
    int worst;        /* the largest exit status so far */
} fanout;

static int child(size_t i, void *arg)
{
    fanout *f = arg;
    return f->one(f->ctx, f->names[i]);
}

/* Whether msg names VM `name` as a word of its own ("a: …", "VM a is …"). */
static bool names_vm(const char *msg, size_t len, const char *name, size_t nl)
{
    for (const char *p = msg; p + nl <= msg + len; p++) {
        if (strncmp(p, name, nl) != 0)
            continue;
        bool before = p == msg || !(isalnum((unsigned char)p[-1]) || strchr("._-", p[-1]));
        char c = p + nl < msg + len ? p[nl] : ' ';
        bool after = !(isalnum((unsigned char)c) || (c && strchr("_-", c)) || (c == '.' && p + nl + 1 < msg + len &&
                                                                              isalnum((unsigned char)p[nl + 1])));
        if (before && after)
            return true;
    }
    return false;
}

/* Each line "qqmgr: MSG" of a VM's stderr becomes "qqmgr: VM: MSG" unless
 * it names the VM already; other lines (QEMU's stderr tail) stay as they are. */
static void relay_stderr(const char *name, const char *text)
{
    size_t nl = strlen(name);
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) + 1 : strlen(line);
        if (strncmp(line, "qqmgr: ", 7) == 0 && !names_vm(line + 7, len - 7, name, nl))
            fprintf(stderr, "qqmgr: %s: %.*s", name, (int)(len - 7), line + 7);
        else
            fprintf(stderr, "%.*s", (int)len, line);
        line += len;
    }
    if (*text && text[strlen(text) - 1] != '\n')
        fputc('\n', stderr);
}

/* The last "qqmgr: " line of a VM's stderr: its error. */
static char *last_error(const char *text)
{
    const char *best = NULL;
    for (const char *p = text; (p = strstr(p, "qqmgr: ")); p++)
        if (p == text || p[-1] == '\n')
            best = p + 7;
    if (!best)
        return NULL;
    return xstrndup(best, strcspn(best, "\n"));
}

static void done(size_t i, const par_result *r, void *arg)
{
    fanout *f = arg;
    const char *name = f->names[i];
    if (r->status > f->worst)
        f->worst = r->status;
    if (f->docs) {
        json_t *doc = r->status == 0 ? json_loads(r->out, 0, NULL) : NULL;
        if (!doc) {
            _cleanup_free_ char *msg = last_error(r->err);
            doc = json_pack("{s:s, s:s?, s:i}", "name", name, "error", msg, "exit", r->status);
        }
        json_array_append_new(f->docs, doc);
    } else if (r->out_len) {
        /* a block of several lines (status) is set apart from its neighbours by a blank line;
         * one-line results (start, stop, wait) follow each other */
        int lines = 0;
        for (size_t k = 0; k < r->out_len; k++)
            lines += r->out[k] == '\n';
        if (f->last_lines && (lines > 1 || f->last_lines > 1))
            putchar('\n');
        f->last_lines = lines ? lines : 1;
        fwrite(r->out, 1, r->out_len, stdout);
        fflush(stdout);
    }
    relay_stderr(name, r->err);
}

int qq_for_vms(qq_ctx *ctx, int argc, char **argv, bool all, enum qq_all which, qq_vm_fn one)
{
    if (!all && argc == 2)
        return one(ctx, argv[1]);
    if (all && argc > 1) {
        fprintf(stderr, "qqmgr: %s: give VM names or --all, not both\n", ctx->cmd->name);
        return QQ_EXIT_USAGE;
    }
    if (!all && argc < 2)
        return qq_usage(ctx, false);
    _cleanup_strv_ char **names = NULL;
    size_t n = 0;
    if (all) {
        qq_err err = { 0 };
        config *c = qq_config(ctx, &err);
        if (!c)
            return qq_report(&err);
        for (size_t i = 0; i < config_vm_count(c); i++) {
            const char *vm = config_vm_name(c, i);
            if (which == QQ_ALL_RUNNING) {
                _cleanup_free_ char *dir = config_vm_dir(c, vm);
                vm_state st;
                vm_probe(dir, false, &st);
                if (!st.running)
                    continue;
            }
            strv_push(&names, &n, xstrdup(vm));
        }
    } else {
        /* a typo is a usage error before anything starts or stops */
        qq_err err = { 0 };
        config *c = qq_config(ctx, &err);
        if (!c)
            return qq_report(&err);
        for (int i = 1; i < argc; i++)
            if (config_check_vm(c, argv[i], &err) < 0)
                return qq_report(&err);
        for (int i = 1; i < argc; i++)
            strv_push(&names, &n, xstrdup(argv[i]));
    }
    if (n == 0 && !ctx->json)
        fprintf(stderr, "qqmgr: %s --all: no %sVM\n", ctx->cmd->name, which == QQ_ALL_RUNNING ? "running " : "");
    fanout f = { .ctx = ctx, .names = names, .one = one, .docs = ctx->json ? json_array() : NULL };
    qq_err err = { 0 };
    int rc = par_run(n, par_default_parallel(), child, done, &f, &err);
    if (f.docs)
        qq_print_json(f.docs);
    if (rc < 0)
        return qq_report(&err);
    return f.worst > QQ_EXIT_USAGE ? QQ_EXIT_FAIL : f.worst;
}
