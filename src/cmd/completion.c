/* completion — shell completion from the command table.
 *
 * `qqmgr completion bash|zsh|fish` prints a small script; on each Tab it runs
 * the hidden `qqmgr __complete INDEX WORD...` (the words after "qqmgr", INDEX
 * that of the word being completed), which answers from the command rows:
 * the first line says what to offer ("words", or "files" for the shell's own
 * file completion), the candidates follow one per line. Names (VM, IMAGE,
 * SNAPSHOT) come from the config that -c names on the line, or the default one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../app/copies.h"
#include "../app/snapshot.h"
#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "cmd.h"

/* a global option whose value is the next word (-c FILE, not -cFILE) */
static bool global_takes_value(const char *w)
{
    const qq_global_opt *g = qq_global_option(w);
    return g && g->arg && !strchr(w, '=') && !(w[1] != '-' && w[2]);
}

static sbuf cands;      /* the candidates, one per line */
static bool want_files; /* let the shell complete file names */

static void offer(const char *cand, const char *prefix)
{
    if (strncmp(cand, prefix, strlen(prefix)) == 0)
        sbuf_addf(&cands, "%s\n", cand);
}

/* the word of `args` for positional p: "VM", "IMAGE", "add|remove|list", ... */
static char *arg_word(const char *args, int p)
{
    _cleanup_free_ char *copy = xstrdup(args ? args : "");
    char *last = NULL, *save = NULL;
    int i = 0;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save), i++) {
        /* '[VM...]' → VM (repeating), 'HMP COMMAND' quoted → free text */
        char *w = t + strspn(t, "[");
        w[strcspn(w, "]")] = '\0';
        bool many = strstr(w, "...") != NULL;
        if (many)
            *strstr(w, "...") = '\0';
        if (i == p)
            return xstrdup(w);
        last = many ? w : NULL;
    }
    return last ? xstrdup(last) : NULL;
}

static void offer_names(qq_ctx *ctx, const char *kind, const char *vm, const char *prefix)
{
    if (strcmp(kind, "SHELL") == 0) {
        offer("bash", prefix), offer("zsh", prefix), offer("fish", prefix);
        return;
    }
    if (strchr(kind, '|') && kind[0] != '\'') {
        _cleanup_free_ char *copy = xstrdup(kind);
        char *save = NULL;
        for (char *t = strtok_r(copy, "|", &save); t; t = strtok_r(NULL, "|", &save))
            offer(t, prefix);
        return;
    }
    bool vms = strcmp(kind, "VM") == 0, imgs = strcmp(kind, "IMAGE") == 0, snaps = strcmp(kind, "SNAPSHOT") == 0;
    if (!vms && !imgs && !snaps)
        return;
    qq_err err = { 0 };
    config *c = qq_config(ctx, &err);
    if (!c)
        return;
    if (vms)
        for (size_t i = 0; i < config_vm_count(c); i++) {
            const char *v = config_vm_name(c, i);
            offer(v, prefix);
            /* after "VM#": the VM's throwaway copies VM#N (copies.h) */
            size_t vl = strlen(v);
            if (strncmp(prefix, v, vl) == 0 && prefix[vl] == '#') {
                size_t nc = 0;
                _cleanup_strv_ char **copies = copies_list(c, v, &nc);
                for (size_t k = 0; k < nc; k++)
                    offer(copies[k], prefix);
            }
        }
    if (imgs)
        for (size_t i = 0; i < config_img_count(c); i++)
            offer(config_img_name(c, i), prefix);
    if (snaps && vm && config_has_vm(c, vm)) {
        json_t *arr = snap_list(c, vm, &err);
        size_t i;
        json_t *s;
        json_array_foreach(arr, i, s) {
            if (json_string_value(json_object_get(s, "name")))
                offer(json_string_value(json_object_get(s, "name")), prefix);
        }
        json_decref(arr);
    }
}

static const qq_opt *find_opt(const qq_command *c, const char *w)
{
    for (const qq_opt *o = c->opts; o && o->kind; o++) {
        if (w[0] == '-' && w[1] == '-' && o->long_name && strcmp(w + 2, o->long_name) == 0)
            return o;
        if (w[0] == '-' && w[1] && !w[2] && o->short_name == w[1])
            return o;
    }
    return NULL;
}

static void offer_values(const qq_opt *o, const char *prefix)
{
    if (o->kind == QQ_OPT_ENUM)
        for (const char *const *v = o->values; *v; v++)
            offer(*v, prefix);
}

static void complete_words(qq_ctx *ctx, char **argv);

static int complete(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    complete_words(ctx, argv);
    printf("%s\n%s", want_files ? "files" : "words", sbuf_str(&cands));
    sbuf_free(&cands);
    return 0;
}

static void complete_words(qq_ctx *ctx, char **argv)
{
    /* argv[1] = INDEX, then the words; the word at INDEX may be missing (empty) */
    int k = atoi(argv[1]);
    char **w = ctx->rest;
    int n = ctx->nrest;
    const char *cur = k < n ? w[k] : "";
    int i = 0;
    /* global options */
    for (; i < k && w[i][0] == '-'; i++) {
        if (strncmp(w[i], "--config=", 9) == 0)
            ctx->config_path = w[i] + 9;
        else if (strncmp(w[i], "-c", 2) == 0 && w[i][2])
            ctx->config_path = w[i] + 2;
        else if (global_takes_value(w[i]) && i + 1 < n) {
            if (strcmp(w[i], "-c") == 0 || strcmp(w[i], "--config") == 0)
                ctx->config_path = w[i + 1];
            i++;
        }
    }
    if (i > k || (i == k && k > 0 && global_takes_value(w[k - 1]))) {
        want_files = true;   /* the value of -c (or -H: any word) */
        return;
    }
    if (i < k && strcmp(w[i], "help") == 0)
        i++;   /* help COMMAND: complete the command */
    if (i == k) {
        if (cur[0] == '-') {
            for (const qq_global_opt *g = qq_globals; g->val; g++) {
                char s[64];
                if (g->has_short) {
                    snprintf(s, sizeof s, "-%c", g->val);
                    offer(s, cur);
                }
                snprintf(s, sizeof s, "--%s", g->long_name);
                offer(s, cur);
            }
            return;
        }
        char last[64] = "";
        for (const qq_command *const *p = qq_commands; *p; p++) {
            const qq_command *c = *p;
            if (!c->summary && !c->alias_of)
                continue;   /* hidden */
            char first[64];
            snprintf(first, sizeof first, "%.*s", (int)strcspn(c->name, " "), c->name);
            if (strcmp(first, last) != 0)   /* a group's rows follow each other: offered once */
                offer(first, cur);
            memcpy(last, first, sizeof last);
        }
        if (i == 0 || strcmp(w[i - 1], "help") != 0)
            offer("help", cur);
        return;
    }
    /* the command: one word, or a group and its subcommand */
    const qq_command *cmd = NULL;
    int words = 0;
    for (const qq_command *const *p = qq_commands; *p && !cmd; p++) {
        const char *name = (*p)->name, *sp = strchr(name, ' ');
        if (!sp && strcmp(name, w[i]) == 0)
            cmd = *p, words = 1;
        else if (sp && strncmp(name, w[i], (size_t)(sp - name)) == 0 && w[i][sp - name] == '\0') {
            if (i + 1 == k) {   /* completing the subcommand */
                for (const qq_command *const *q = qq_commands; *q; q++)
                    if ((*q)->summary && strncmp((*q)->name, name, (size_t)(sp - name + 1)) == 0)
                        offer((*q)->name + (sp - name) + 1, cur);
                return;
            }
            if (i + 1 < n && strcmp(sp + 1, w[i + 1]) == 0)
                cmd = *p, words = 2;
        }
    }
    if (!cmd)
        return;
    /* walk the command's words before the current one */
    int pos = 0;
    const char *first_pos = NULL;
    bool dashdash = false;
    for (int j = i + words; j < k; j++) {
        const char *a = w[j];
        if (!dashdash && strcmp(a, "--") == 0) {
            dashdash = true;
            if (cmd->rest)
                return;   /* gdb's own arguments */
            continue;
        }
        if (!dashdash && a[0] == '-' && a[1]) {
            const qq_opt *o = find_opt(cmd, a);
            if (o && o->kind != QQ_OPT_FLAG && !o->implicit && !strchr(a, '='))
                j++;   /* its value */
            continue;
        }
        if (strcmp(a, "=") == 0 || (j > 0 && strcmp(w[j - 1], "=") == 0))
            continue;   /* bash splits --opt=value at '=' */
        if (!first_pos)
            first_pos = a;
        pos++;
        if (cmd->rest == QQ_REST_AFTER_FIRST)
            return;   /* the remote command's */
    }
    /* an option's value: `--for STAGE`, or `--wait=STAGE` (split or not) */
    const char *prev = k > i + words ? w[k - 1] : "";
    if (strcmp(prev, "=") == 0 && k >= 2) {
        const qq_opt *o = find_opt(cmd, w[k - 2]);
        if (o)
            offer_values(o, cur);
        return;
    }
    if (strcmp(cur, "=") == 0 && k >= 1) {
        const qq_opt *o = find_opt(cmd, prev);
        if (o)
            offer_values(o, "");
        return;
    }
    const char *eq = strchr(cur, '=');
    if (cur[0] == '-' && eq) {
        _cleanup_free_ char *name = xstrndup(cur, (size_t)(eq - cur));
        const qq_opt *o = find_opt(cmd, name);
        if (o && o->kind == QQ_OPT_ENUM)
            for (const char *const *v = o->values; *v; v++) {
                _cleanup_free_ char *full = xasprintf("%s=%s", name, *v);
                offer(full, cur);
            }
        return;
    }
    const qq_opt *po = prev[0] == '-' ? find_opt(cmd, prev) : NULL;
    if (po && po->kind != QQ_OPT_FLAG && !po->implicit) {
        if (po->kind == QQ_OPT_STRING && po->arg &&
            (strcmp(po->arg, "SNAPSHOT") == 0 || strcmp(po->arg, "VM") == 0 || strcmp(po->arg, "IMAGE") == 0)) {
            /* `start VM --restore <TAB>`: that VM's snapshots (the VM may also follow) */
            for (int j = k + 1; !first_pos && j < n; j++) {
                const qq_opt *o = w[j][0] == '-' ? find_opt(cmd, w[j]) : NULL;
                if (o && o->kind != QQ_OPT_FLAG && !o->implicit && !strchr(w[j], '='))
                    j++;
                else if (w[j][0] != '-' && strcmp(w[j], "=") != 0)
                    first_pos = w[j];
            }
            offer_names(ctx, po->arg, first_pos, cur);
            return;
        }
        if (po->kind == QQ_OPT_STRING && po->arg && strcmp(po->arg, "TEMPLATE") == 0) {
            _cleanup_json_ json_t *cat = qq_image_catalogue();   /* init --template */
            const char *name;
            json_t *e;
            json_object_foreach(cat, name, e) offer(name, cur);
            return;
        }
        want_files = po->kind == QQ_OPT_STRING;
        offer_values(po, cur);
        return;
    }
    if (cur[0] == '-') {
        for (const qq_opt *o = cmd->opts; o && o->kind; o++) {
            if (o->long_name) {
                _cleanup_free_ char *s = xasprintf("--%s", o->long_name);
                offer(s, cur);
            }
            if (o->short_name) {
                char s[3] = { '-', o->short_name, 0 };
                offer(s, cur);
            }
        }
        if (cmd->json)
            offer("--json", cur);
        offer("--help", cur);
        return;
    }
    _cleanup_free_ char *kind = arg_word(cmd->args, pos);
    if (!kind)
        return;
    if (strcmp(kind, "LOCAL") == 0 || strcmp(kind, "FILE") == 0) {
        want_files = true;
        return;
    }
    offer_names(ctx, kind, first_pos, cur);
    return;
}

static const char bash_script[] =
    "# qqmgr bash completion (qqmgr completion bash): source it, or put it in\n"
    "# ~/.local/share/bash-completion/completions/qqmgr\n"
    "_qqmgr() {\n"
    "    local cur=${COMP_WORDS[COMP_CWORD]} IFS=$'\\n'\n"
    "    local -a out\n"
    "    out=($(\"${COMP_WORDS[0]}\" __complete \"$((COMP_CWORD - 1))\" \"${COMP_WORDS[@]:1}\" 2>/dev/null))\n"
    "    [ \"$cur\" = = ] && cur=\n"
    "    case ${out[0]} in\n"
    "    files) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
    "    words) COMPREPLY=(\"${out[@]:1}\")\n"
    "           [ ${#COMPREPLY[@]} -eq 0 ] && [ \"${COMP_WORDS[COMP_CWORD-1]}\" != = ] &&\n"
    "               COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
    "    esac\n"
    "}\n"
    "complete -o filenames -F _qqmgr qqmgr\n";

static const char zsh_script[] =
    "#compdef qqmgr\n"
    "# qqmgr zsh completion (qqmgr completion zsh): source it after compinit, or save it\n"
    "# as _qqmgr in a directory of $fpath\n"
    "_qqmgr() {\n"
    "    local -a out\n"
    "    out=(\"${(@f)$(${words[1]} __complete $((CURRENT - 2)) \"${(@)words[2,-1]}\" 2>/dev/null)}\")\n"
    "    case $out[1] in\n"
    "    files) _files ;;\n"
    "    words) (( $#out > 1 )) && compadd -- \"${(@)out[2,-1]}\" || _files ;;\n"
    "    esac\n"
    "}\n"
    "if [ \"$funcstack[1]\" = _qqmgr ]; then _qqmgr \"$@\"; else compdef _qqmgr qqmgr; fi\n";

static const char fish_script[] =
    "# qqmgr fish completion (qqmgr completion fish): source it, or save it as\n"
    "# ~/.config/fish/completions/qqmgr.fish\n"
    "function __qqmgr_complete\n"
    "    set -l words (commandline -opc)\n"
    "    set -l cur (commandline -ct)\n"
    "    set -l out ($words[1] __complete (math (count $words) - 1) $words[2..-1] \"$cur\" 2>/dev/null)\n"
    "    switch \"$out[1]\"\n"
    "        case files\n"
    "            __fish_complete_path \"$cur\"\n"
    "        case words\n"
    "            if test (count $out) -gt 1\n"
    "                printf '%s\\n' $out[2..-1]\n"
    "            else\n"
    "                __fish_complete_path \"$cur\"\n"
    "            end\n"
    "    end\n"
    "end\n"
    "complete -c qqmgr -f -a '(__qqmgr_complete)'\n";

static int completion(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    const char *s = strcmp(argv[1], "bash") == 0  ? bash_script
                    : strcmp(argv[1], "zsh") == 0 ? zsh_script
                    : strcmp(argv[1], "fish") == 0 ? fish_script
                                                   : NULL;
    if (!s) {
        qq_err err = { 0 };
        qq_usage_error(ctx, &err, false, "expected bash, zsh or fish, got '%s'", argv[1]);
        return qq_report(&err);
    }
    fputs(s, stdout);
    return 0;
}

const qq_command qq_cmd_completion = {
    .name = "completion", .handler = completion, .args = "SHELL", .min_args = 1, .max_args = 1,
    .summary = "print the shell completion script for bash, zsh or fish",
};
/* hidden: what the completion scripts ask */
const qq_command qq_cmd_complete = {
    .name = "__complete", .handler = complete, .args = "INDEX", .min_args = 1, .max_args = 1,
    .rest = QQ_REST_AFTER_FIRST,
};
