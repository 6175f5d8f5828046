/* multi — one command on several VMs: `start a b`, `stop --all` (see cmd.h).
 *
 * A child's result travels as data: the child keeps what qq_report and
 * qq_print_json would have printed (qq_capture_to) and sends it as one JSON
 * object {"exit": N, "errors": [MSG…]|null, "doc": DOC|null} through its
 * result file (par.h); the parent prints from that, never from what the
 * child's stderr happens to say. What the child wrote to stderr itself
 * (QEMU's stderr tail, warnings that name their VM) is passed on as it is. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app/recorded.h"
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

static int child(size_t i, void *arg, sbuf *result)
{
    fanout *f = arg;
    qq_capture cap = { 0 };
    qq_capture_to(&cap);
    int rc = f->one(f->ctx, f->names[i]);
    qq_capture_to(NULL);
    json_t *r = json_object();
    json_object_set_new(r, "exit", json_integer(rc));
    json_object_set_new(r, "errors", cap.errors ? cap.errors : json_null());
    json_object_set_new(r, "doc", cap.doc ? cap.doc : json_null());
    char *text = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text)
        sbuf_adds(result, text);
    free(text);
    json_decref(r);
    return rc;
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

/* "qqmgr: MSG" about VM name: "qqmgr: NAME: MSG" unless MSG names it already. */
static void say(const char *name, const char *msg, size_t len)
{
    if (names_vm(msg, len, name, strlen(name)))
        fprintf(stderr, "qqmgr: %.*s\n", (int)len, msg);
    else
        fprintf(stderr, "qqmgr: %s: %.*s\n", name, (int)len, msg);
}


static void done(size_t i, const par_result *r, void *arg)
{
    fanout *f = arg;
    const char *name = f->names[i];
    _cleanup_json_ json_t *res = json_loads(r->data, 0, NULL);
    /* no result: the child died first (a signal); its status says how */
    int status = res ? (int)json_integer_value(json_object_get(res, "exit")) : r->status;
    if (status == 0 && r->status != 0)
        status = r->status;
    json_t *errors = json_object_get(res, "errors");
    const char *error = json_string_value(json_array_get(errors, json_array_size(errors) - 1));
    json_t *doc = json_object_get(res, "doc");
    if (status > f->worst)
        f->worst = status;
    if (f->docs) {
        if (status == 0 && json_is_object(doc))
            json_array_append(f->docs, doc);
        else
            json_array_append_new(f->docs,
                                  json_pack("{s:s, s:s?, s:i}", "name", name, "error", error, "exit", status));
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
    /* what the child wrote itself, as it is: QEMU's words stay QEMU's */
    fwrite(r->err, 1, r->err_len, stderr);
    if (r->err_len && r->err[r->err_len - 1] != '\n')
        fputc('\n', stderr);
    size_t k;
    json_t *e;
    json_array_foreach(errors, k, e)
        say(name, json_string_value(e), strlen(json_string_value(e) ?: ""));
    if (!res)
        say(name, "ended without a result", strlen("ended without a result"));
}

int qq_for_vms(qq_ctx *ctx, int argc, char **argv, bool all)
{
    const qq_command *cmd = ctx->cmd;
    config *c = ctx->cfg;
    if (!all && argc == 2)
        return cmd->each(ctx, argv[1]);
    _cleanup_strv_ char **names = NULL;
    size_t n = 0;
    if (all) {
        for (size_t i = 0; i < config_vm_count(c); i++) {
            const char *vm = config_vm_name(c, i);
            if (cmd->each_all == QQ_ALL_RUNNING) {
                _cleanup_free_ char *dir = config_vm_dir(c, vm);
                vm_state st;
                vm_probe(dir, false, &st);
                if (!st.running)
                    continue;
            }
            strv_push(&names, &n, xstrdup(vm));
        }
        if (cmd->each_all == QQ_ALL_RUNNING) {   /* then those that left the config running */
            size_t nd = 0;
            _cleanup_strv_ char **departed = recorded_departed_all(c, &nd);
            for (size_t i = 0; i < nd; i++)
                strv_push(&names, &n, xstrdup(departed[i]));
        }
    } else {
        /* a typo is a usage error before anything starts or stops; a command
         * on running VMs reaches one that left the config by name */
        qq_err err = { 0 };
        for (int i = 1; i < argc; i++)
            if ((cmd->each_all == QQ_ALL_RUNNING ? recorded_check_vm(c, argv[i], &err)
                                                 : config_check_vm(c, argv[i], &err)) < 0)
                return qq_report(&err);
        for (int i = 1; i < argc; i++)
            strv_push(&names, &n, xstrdup(argv[i]));
    }
    if (n == 0 && !ctx->json)
        fprintf(stderr, "qqmgr: %s --all: no %sVM\n", cmd->name, cmd->each_all == QQ_ALL_RUNNING ? "running " : "");
    fanout f = { .ctx = ctx, .names = names, .one = cmd->each, .docs = ctx->json ? json_array() : NULL };
    qq_err err = { 0 };
    int rc = par_run(n, cmd->each_waits ? n : par_default_parallel(), child, done, &f, &err);
    if (f.docs)
        qq_print_json(f.docs);
    if (rc < 0)
        return qq_report(&err);
    return f.worst > QQ_EXIT_USAGE ? QQ_EXIT_FAIL : f.worst;
}
