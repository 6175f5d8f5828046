/* parse — the parser (text/template/parse/parse.go): items to trees, one per
 * {{define}}, and the public tmpl_parse/tmpl_free. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "node.h"

typedef struct pctx {
    tmpl *t;
    lexer *lex;
    jmp_buf *jb;
    tmpl_error *err;
    int depth;
} pctx;

typedef struct parser {
    pctx *c;
    str name;
    node *root;
    item token[3];
    int peek_count;
    str *vars;
    int nvars, capvars;
    int action_line;
    int range_depth;
} parser;

static node *p_new(parser *p, int type, int pos)
{
    node *n = aalloc(&p->c->t->a, sizeof *n);
    n->type = type;
    n->pos = pos;
    return n;
}

static void p_fail(parser *p, const char *msg) __attribute__((noreturn));
static void p_fail(parser *p, const char *msg)
{
    snprintf(p->c->err->msg, sizeof p->c->err->msg, "template: %s:%d: %s", p->c->t->name, p->token[0].line, msg);
    longjmp(*p->c->jb, 1);
}

static void p_errorf(parser *p, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void p_errorf(parser *p, const char *fmt, ...)
{
    char buf[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    p_fail(p, buf);
}

/* fails with before, n as template text, after */
static void p_fail_node(parser *p, const char *before, const node *n, const char *after) __attribute__((noreturn));
static void p_fail_node(parser *p, const char *before, const node *n, const char *after)
{
    sbuf b = SBUF_INIT;
    node_string(&b, n);
    char msg[900];
    snprintf(msg, sizeof msg, "%s%s%s", before, sbuf_str(&b), after);
    sbuf_free(&b);
    p_fail(p, msg);
}

/* fails with before, s quoted like Go's %q, after */
static void p_fail_quoted(parser *p, const char *before, str s, const char *after) __attribute__((noreturn));
static void p_fail_quoted(parser *p, const char *before, str s, const char *after)
{
    sbuf b = SBUF_INIT;
    go_quote(&b, s.p, s.n, 0);
    char msg[900];
    snprintf(msg, sizeof msg, "%s%s%s", before, sbuf_str(&b), after);
    sbuf_free(&b);
    p_fail(p, msg);
}

static item p_next(parser *p)
{
    if (p->peek_count > 0)
        p->peek_count--;
    else
        p->token[0] = lx_item(p->c->lex);
    return p->token[p->peek_count];
}

static void p_backup(parser *p) { p->peek_count++; }

static void p_backup2(parser *p, item t1) { p->token[1] = t1; p->peek_count = 2; }

static void p_backup3(parser *p, item t2, item t1) { p->token[1] = t1; p->token[2] = t2; p->peek_count = 3; }

static item p_peek(parser *p)
{
    if (p->peek_count > 0)
        return p->token[p->peek_count - 1];
    p->peek_count = 1;
    p->token[0] = lx_item(p->c->lex);
    return p->token[0];
}

static item p_next_nonspace(parser *p)
{
    item t;
    do
        t = p_next(p);
    while (t.typ == I_SPACE);
    return t;
}

static item p_peek_nonspace(parser *p)
{
    item t = p_next_nonspace(p);
    p_backup(p);
    return t;
}

/* item.String() */
static void item_string(sbuf *b, item it)
{
    if (it.typ == I_EOF) {
        sbuf_adds(b, "EOF");
    } else if (it.typ == I_ERROR) {
        sbuf_add(b, it.val.p, it.val.n);
    } else if (it.typ > I_KEYWORD) {
        sbuf_addc(b, '<');
        sbuf_add(b, it.val.p, it.val.n);
        sbuf_addc(b, '>');
    } else if (rune_count(it.val.p, it.val.n) > 10) {
        size_t i = 0;
        for (int k = 0; k < 10; k++) {
            int w;
            decode_rune((const unsigned char *)it.val.p + i, it.val.n - i, &w);
            i += (size_t)w;
        }
        go_quote(b, it.val.p, i, 0);
        sbuf_adds(b, "...");
    } else {
        go_quote(b, it.val.p, it.val.n, 0);
    }
}

static void p_unexpected(parser *p, item tok, const char *context) __attribute__((noreturn));
static void p_unexpected(parser *p, item tok, const char *context)
{
    sbuf b = SBUF_INIT;
    char msg[900];
    if (tok.typ == I_ERROR) {
        item_string(&b, tok);
        if (p->action_line != 0 && p->action_line != tok.line) {
            int action = b.len >= 7 && memcmp(b.buf + b.len - 7, " action", 7) == 0;
            sbuf_addf(&b, "%s started at %s:%d", action ? "" : " in action", p->c->t->name, p->action_line);
        }
        snprintf(msg, sizeof msg, "%s", sbuf_str(&b));
    } else {
        sbuf_adds(&b, "unexpected ");
        item_string(&b, tok);
        snprintf(msg, sizeof msg, "%s in %s", sbuf_str(&b), context);
    }
    sbuf_free(&b);
    p_fail(p, msg);
}

static item p_expect(parser *p, int typ, const char *context)
{
    item t = p_next_nonspace(p);
    if (t.typ != typ)
        p_unexpected(p, t, context);
    return t;
}

static void p_init(parser *p, pctx *c, str name)
{
    memset(p, 0, sizeof *p);
    p->c = c;
    p->name = name;
    p->capvars = 8;
    p->vars = aalloc(&c->t->a, sizeof *p->vars * 8);
    p->vars[0] = (str){ "$", 1 };
    p->nvars = 1;
}

static void p_push_var(parser *p, str v)
{
    if (p->nvars == p->capvars) {
        str *nv = aalloc(&p->c->t->a, sizeof *nv * (size_t)p->capvars * 2);
        memcpy(nv, p->vars, sizeof *nv * (size_t)p->nvars);
        p->vars = nv;
        p->capvars *= 2;
    }
    p->vars[p->nvars++] = v;
}

static int is_empty_tree(const node *n)
{
    if (!n)
        return 1;
    switch (n->type) {
    case N_COMMENT: return 1;
    case N_LIST:
        for (int i = 0; i < n->list.n; i++)
            if (!is_empty_tree(n->list.v[i]))
                return 0;
        return 1;
    case N_TEXT:
        for (size_t i = 0; i < n->text.n; i++) {
            unsigned char ch = (unsigned char)n->text.p[i];
            /* bytes.TrimSpace: ASCII white space plus U+0085, U+00A0 */
            if (!(ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r'))
                return 0;
        }
        return 1;
    }
    return 0;
}

ttree *tmpl_lookup(const tmpl *t, str name)
{
    for (int i = 0; i < t->ntrees; i++)
        if (str_eqs(t->trees[i]->name, name))
            return t->trees[i];
    return NULL;
}

static void p_add(parser *p)
{
    tmpl *t = p->c->t;
    ttree *tr = tmpl_lookup(t, p->name);
    if (!tr || is_empty_tree(tr->root)) {
        if (!tr) {
            if (t->ntrees == t->cap) {
                int cap = t->cap ? t->cap * 2 : 8;
                ttree **nt = aalloc(&t->a, sizeof *nt * (size_t)cap);
                if (t->ntrees)
                    memcpy(nt, t->trees, sizeof *nt * (size_t)t->ntrees);
                t->trees = nt;
                t->cap = cap;
            }
            tr = aalloc(&t->a, sizeof *tr);
            tr->name = p->name;
            t->trees[t->ntrees++] = tr;
        }
        tr->root = p->root;
        return;
    }
    if (!is_empty_tree(p->root)) {
        p_fail_quoted(p, "template: multiple definition of template ", (str){ p->name.p, p->name.n }, "");
    }
}

static node *p_text_or_action(parser *p);

static void p_item_list(parser *p, node **list, node **next);

static node *p_pipeline(parser *p, const char *context, int end);

static void p_enter(parser *p)
{
    if (++p->c->depth > MAX_PARSE_DEPTH)
        p_errorf(p, "nesting too deep (more than %d levels)", MAX_PARSE_DEPTH);
}

static str p_unquote(parser *p, item tok)
{
    str s;
    if (go_unquote(&p->c->t->a, tok.val.p, tok.val.n, &s) < 0)
        p_fail(p, "invalid syntax");
    return s;
}

/* the item list of a define or a block must end with {{end}} */
static void p_expect_end(parser *p, const node *end, const char *context)
{
    if (end->type == N_END)
        return;
    char after[100];
    snprintf(after, sizeof after, " in %s", context);
    p_fail_node(p, "unexpected ", end, after);
}

static void p_parse_definition(parser *p)
{
    const char *context = "define clause";
    item name = p_next_nonspace(p);
    if (name.typ != I_STRING && name.typ != I_RAWSTRING)
        p_unexpected(p, name, context);
    p->name = p_unquote(p, name);
    p_expect(p, I_RIGHTDELIM, context);
    node *end;
    p_item_list(p, &p->root, &end);
    p_expect_end(p, end, context);
    p_add(p);
}

static void p_parse(parser *p)
{
    p->root = p_new(p, N_LIST, p_peek(p).pos);
    while (p_peek(p).typ != I_EOF) {
        if (p_peek(p).typ == I_LEFTDELIM) {
            item delim = p_next(p);
            if (p_next_nonspace(p).typ == I_DEFINE) {
                parser nt;
                p_init(&nt, p->c, (str){ "definition", 10 });
                p_parse_definition(&nt);
                continue;
            }
            p_backup2(p, delim);
        }
        node *n = p_text_or_action(p);
        if (n->type == N_END || n->type == N_ELSE) {
            p_fail_node(p, "unexpected ", n, "");
        }
        nvec_add(&p->c->t->a, &p->root->list, n);
    }
}

static void p_item_list(parser *p, node **list, node **next)
{
    *list = p_new(p, N_LIST, p_peek_nonspace(p).pos);
    while (p_peek_nonspace(p).typ != I_EOF) {
        node *n = p_text_or_action(p);
        if (n->type == N_END || n->type == N_ELSE) {
            *next = n;
            return;
        }
        nvec_add(&p->c->t->a, &(*list)->list, n);
    }
    p_errorf(p, "unexpected EOF");
}

static node *p_action(parser *p);

static node *p_text_or_action(parser *p)
{
    item tok = p_next_nonspace(p);
    switch (tok.typ) {
    case I_TEXT: {
        node *n = p_new(p, N_TEXT, tok.pos);
        n->text = tok.val;
        return n;
    }
    case I_LEFTDELIM: {
        p->action_line = tok.line;
        node *n = p_action(p);
        p->action_line = 0;
        return n;
    }
    case I_COMMENT: {
        node *n = p_new(p, N_COMMENT, tok.pos);
        n->text = tok.val;
        return n;
    }
    }
    p_unexpected(p, tok, "input");
}

static node *p_control(parser *p, int type, int allow_else_if, const char *context);

static node *p_block(parser *p);

static node *p_template(parser *p);

static node *p_action(parser *p)
{
    item tok = p_next_nonspace(p);
    node *n;
    switch (tok.typ) {
    case I_BLOCK: return p_block(p);
    case I_BREAK: case I_CONTINUE: {
        const char *what = tok.typ == I_BREAK ? "{{break}}" : "{{continue}}";
        item t2 = p_next_nonspace(p);
        if (t2.typ != I_RIGHTDELIM)
            p_unexpected(p, t2, what);
        if (p->range_depth == 0)
            p_errorf(p, "%s outside {{range}}", what);
        n = p_new(p, tok.typ == I_BREAK ? N_BREAK : N_CONTINUE, tok.pos);
        n->line = tok.line;
        return n;
    }
    case I_ELSE: {
        item pk = p_peek_nonspace(p);
        if (pk.typ == I_IF) {
            n = p_new(p, N_ELSE, pk.pos);
            n->line = pk.line;
            return n;
        }
        item t2 = p_expect(p, I_RIGHTDELIM, "else");
        n = p_new(p, N_ELSE, t2.pos);
        n->line = t2.line;
        return n;
    }
    case I_END: {
        item t2 = p_expect(p, I_RIGHTDELIM, "end");
        return p_new(p, N_END, t2.pos);
    }
    case I_IF: return p_control(p, N_IF, 1, "if");
    case I_RANGE: return p_control(p, N_RANGE, 0, "range");
    case I_TEMPLATE: return p_template(p);
    case I_WITH: return p_control(p, N_WITH, 0, "with");
    }
    p_backup(p);
    item t = p_peek(p);
    n = p_new(p, N_ACTION, t.pos);
    n->line = t.line;
    n->sub = p_pipeline(p, "command", I_RIGHTDELIM);
    return n;
}

static node *p_new_var(parser *p, int pos, str name)
{
    node *n = p_new(p, N_VARIABLE, pos);
    int cnt = 1;
    for (size_t i = 0; i < name.n; i++)
        cnt += name.p[i] == '.';
    n->ident = aalloc(&p->c->t->a, sizeof *n->ident * (size_t)cnt);
    size_t s = 0;
    for (size_t i = 0; i <= name.n; i++)
        if (i == name.n || name.p[i] == '.') {
            n->ident[n->nident++] = (str){ name.p + s, i - s };
            s = i + 1;
        }
    return n;
}

static node *p_new_field(parser *p, int pos, str name)
{
    /* name starts with '.' */
    node *n = p_new_var(p, pos, (str){ name.p + 1, name.n - 1 });
    n->type = N_FIELD;
    return n;
}

static node *p_command(parser *p);

static void p_check_pipeline(parser *p, node *pipe, const char *context)
{
    if (pipe->list.n == 0)
        p_errorf(p, "missing value for %s", context);
    for (int i = 1; i < pipe->list.n; i++) {
        switch (pipe->list.v[i]->list.v[0]->type) {
        case N_BOOL: case N_DOT: case N_NIL: case N_NUMBER: case N_STRING:
            p_errorf(p, "non executable command in pipeline stage %d", i + 1);
        }
    }
}

static node *p_pipeline(parser *p, const char *context, int end)
{
    p_enter(p);
    item tok = p_peek_nonspace(p);
    node *pipe = p_new(p, N_PIPE, tok.pos);
    pipe->line = tok.line;
    for (;;) {
        item v = p_peek_nonspace(p);
        if (v.typ != I_VARIABLE)
            break;
        p_next(p);
        item after = p_peek(p);
        item next = p_peek_nonspace(p);
        if (next.typ == I_ASSIGN || next.typ == I_DECLARE) {
            pipe->is_assign = next.typ == I_ASSIGN;
            p_next_nonspace(p);
            nvec_add(&p->c->t->a, &pipe->decl, p_new_var(p, v.pos, v.val));
            p_push_var(p, v.val);
        } else if (next.typ == I_CHAR && str_eq(next.val, ",")) {
            p_next_nonspace(p);
            nvec_add(&p->c->t->a, &pipe->decl, p_new_var(p, v.pos, v.val));
            p_push_var(p, v.val);
            if (strcmp(context, "range") == 0 && pipe->decl.n < 2) {
                int t = p_peek_nonspace(p).typ;
                if (t == I_VARIABLE || t == I_RIGHTDELIM || t == I_RIGHTPAREN)
                    continue;
                p_errorf(p, "range can only initialize variables");
            }
            p_errorf(p, "too many declarations in %s", context);
        } else if (after.typ == I_SPACE) {
            p_backup3(p, v, after);
        } else {
            p_backup2(p, v);
        }
        break;
    }
    for (;;) {
        item t = p_next_nonspace(p);
        if (t.typ == end) {
            p_check_pipeline(p, pipe, context);
            p->c->depth--;
            return pipe;
        }
        switch (t.typ) {
        case I_BOOL: case I_CHARCONST: case I_COMPLEX: case I_DOT: case I_FIELD: case I_IDENT:
        case I_NUMBER: case I_NIL: case I_RAWSTRING: case I_STRING: case I_VARIABLE: case I_LEFTPAREN:
            p_backup(p);
            nvec_add(&p->c->t->a, &pipe->list, p_command(p));
            break;
        default:
            p_unexpected(p, t, context);
        }
    }
}

static node *p_control(parser *p, int type, int allow_else_if, const char *context)
{
    p_enter(p);
    int nvars = p->nvars;
    node *pipe = p_pipeline(p, context, I_RIGHTDELIM);
    node *list, *next, *elselist = NULL;
    if (type == N_RANGE)
        p->range_depth++;
    p_item_list(p, &list, &next);
    if (type == N_RANGE)
        p->range_depth--;
    if (next->type == N_ELSE) {
        if (allow_else_if && p_peek(p).typ == I_IF) {
            p_next(p);
            elselist = p_new(p, N_LIST, next->pos);
            nvec_add(&p->c->t->a, &elselist->list, p_control(p, N_IF, 1, "if"));
        } else {
            p_item_list(p, &elselist, &next);
            if (next->type != N_END) {
                p_fail_node(p, "expected end; found ", next, "");
            }
        }
    }
    p->nvars = nvars;
    node *n = p_new(p, type, pipe->pos);
    n->line = pipe->line;
    n->sub = pipe;
    n->blist = list;
    n->belse = elselist;
    p->c->depth--;
    return n;
}

static str p_template_name(parser *p, item tok, const char *context)
{
    if (tok.typ != I_STRING && tok.typ != I_RAWSTRING)
        p_unexpected(p, tok, context);
    return p_unquote(p, tok);
}

static node *p_block(parser *p)
{
    const char *context = "block clause";
    item tok = p_next_nonspace(p);
    str name = p_template_name(p, tok, context);
    node *pipe = p_pipeline(p, context, I_RIGHTDELIM);
    parser bp;
    p_init(&bp, p->c, name);
    node *end;
    p_enter(p);
    p_item_list(&bp, &bp.root, &end);
    p->c->depth--;
    p_expect_end(p, end, context);
    p_add(&bp);
    node *n = p_new(p, N_TEMPLATE, tok.pos);
    n->line = tok.line;
    n->text = name;
    n->sub = pipe;
    return n;
}

static node *p_template(parser *p)
{
    const char *context = "template clause";
    item tok = p_next_nonspace(p);
    str name = p_template_name(p, tok, context);
    node *pipe = NULL;
    if (p_next_nonspace(p).typ != I_RIGHTDELIM) {
        p_backup(p);
        pipe = p_pipeline(p, context, I_RIGHTDELIM);
    }
    node *n = p_new(p, N_TEMPLATE, tok.pos);
    n->line = tok.line;
    n->text = name;
    n->sub = pipe;
    return n;
}

static node *p_operand(parser *p);

static node *p_command(parser *p)
{
    node *cmd = p_new(p, N_COMMAND, p_peek_nonspace(p).pos);
    for (;;) {
        p_peek_nonspace(p);
        node *op = p_operand(p);
        if (op)
            nvec_add(&p->c->t->a, &cmd->list, op);
        item t = p_next(p);
        if (t.typ == I_SPACE)
            continue;
        if (t.typ == I_RIGHTDELIM || t.typ == I_RIGHTPAREN)
            p_backup(p);
        else if (t.typ != I_PIPE)
            p_unexpected(p, t, "operand");
        break;
    }
    if (cmd->list.n == 0)
        p_errorf(p, "empty command");
    return cmd;
}

static node *p_term(parser *p);

static node *p_operand(parser *p)
{
    node *n = p_term(p);
    if (!n)
        return NULL;
    if (p_peek(p).typ == I_FIELD) {
        node *chain = p_new(p, N_CHAIN, p_peek(p).pos);
        chain->sub = n;
        int cap = 4;
        chain->ident = aalloc(&p->c->t->a, sizeof(str) * (size_t)cap);
        while (p_peek(p).typ == I_FIELD) {
            item f = p_next(p);
            if (chain->nident == cap) {
                str *ni = aalloc(&p->c->t->a, sizeof(str) * (size_t)cap * 2);
                memcpy(ni, chain->ident, sizeof(str) * (size_t)cap);
                chain->ident = ni;
                cap *= 2;
            }
            chain->ident[chain->nident++] = (str){ f.val.p + 1, f.val.n - 1 };
        }
        sbuf b = SBUF_INIT;
        switch (n->type) {
        case N_FIELD:
        case N_VARIABLE: {
            node_string(&b, chain);
            str s = { astrndup(&p->c->t->a, b.buf, b.len), b.len };
            sbuf_free(&b);
            return n->type == N_FIELD ? p_new_field(p, chain->pos, s) : p_new_var(p, chain->pos, s);
        }
        case N_BOOL: case N_STRING: case N_NUMBER: case N_NIL: case N_DOT: {
            node_string(&b, n);
            str term = { astrndup(&p->c->t->a, b.buf, b.len), b.len };
            sbuf_free(&b);
            p_fail_quoted(p, "unexpected . after term ", term, "");
        }
        }
        sbuf_free(&b);
        n = chain;
    }
    return n;
}

/* the exact integer values of a float constant, like Go's NumberNode */
static void p_ints_of_float(node *n, double f)
{
    if (!n->isint && f >= -9223372036854775808.0 && f < 9223372036854775808.0 && (double)(int64_t)f == f) {
        n->isint = 1;
        n->i64 = (int64_t)f;
    }
    if (!n->isuint && f >= 0 && f < 18446744073709551616.0 && (double)(uint64_t)f == f) {
        n->isuint = 1;
        n->u64 = (uint64_t)f;
    }
}

static void p_number(parser *p, node *n, item tok)
{
    str text = tok.val;
    n->text = text;
    if (tok.typ == I_CHARCONST) {
        int32_t r;
        int mb;
        size_t used;
        if (text.n < 2 || unquote_char(text.p + 1, text.n - 1, '\'', &r, &mb, &used) < 0)
            p_fail(p, "invalid syntax");
        if (!(text.n - 1 - used == 1 && text.p[1 + used] == '\''))
            p_errorf(p, "malformed character constant: %.*s", (int)text.n, text.p);
        n->i64 = r;
        n->u64 = (uint64_t)r;
        n->f64 = r;
        n->isint = n->isuint = n->isfloat = 1;
        return;
    }
    if (tok.typ == I_COMPLEX) {
        /* real part, then signed imaginary part ending in 'i' */
        size_t k = text.n - 1;
        while (k > 0 && !((text.p[k] == '+' || text.p[k] == '-') &&
                          !(text.p[k - 1] == 'e' || text.p[k - 1] == 'E' || text.p[k - 1] == 'p' || text.p[k - 1] == 'P')))
            k--;
        double re, im;
        if (k == 0 || parse_float(text.p, k, &re) < 0 || parse_float(text.p + k, text.n - k - 1, &im) < 0)
            p_fail(p, "expected integer");
        n->iscomplex = 1;
        n->cre = re;
        n->cim = im;
        goto simplify;
    }
    if (text.n > 0 && text.p[text.n - 1] == 'i') {
        double f;
        if (parse_float(text.p, text.n - 1, &f) == 0) {
            n->iscomplex = 1;
            n->cre = 0;
            n->cim = f;
            goto simplify;
        }
    }
    {
        uint64_t u, iv;
        int neg, neg2;
        if (parse_int_base0(text.p, text.n, 0, &u, &neg) == 0) {
            n->isuint = 1;
            n->u64 = u;
        }
        int r = parse_int_base0(text.p, text.n, 1, &iv, &neg2);
        if (r == 0 && ((!neg2 && iv <= (uint64_t)INT64_MAX) || (neg2 && iv <= (uint64_t)INT64_MAX + 1))) {
            n->isint = 1;
            n->i64 = neg2 ? (int64_t)(0 - iv) : (int64_t)iv;
            if (n->i64 == 0) {
                n->isuint = 1;
                n->u64 = u;
            }
        }
        if (n->isint) {
            n->isfloat = 1;
            n->f64 = (double)n->i64;
        } else if (n->isuint) {
            n->isfloat = 1;
            n->f64 = (double)n->u64;
        } else {
            double f;
            if (parse_float(text.p, text.n, &f) == 0) {
                if (!memchr(text.p, '.', text.n) && !memchr(text.p, 'e', text.n) && !memchr(text.p, 'E', text.n) &&
                    !memchr(text.p, 'p', text.n) && !memchr(text.p, 'P', text.n)) {
                    p_fail_quoted(p, "integer overflow: ", (str){ text.p, text.n }, "");
                }
                n->isfloat = 1;
                n->f64 = f;
                p_ints_of_float(n, f);
            }
        }
        if (!n->isint && !n->isuint && !n->isfloat) {
            p_fail_quoted(p, "illegal number syntax: ", (str){ text.p, text.n }, "");
        }
        return;
    }
simplify:
    if (n->cim == 0) {
        n->isfloat = 1;
        n->f64 = n->cre;
        p_ints_of_float(n, n->f64);
    }
}

static node *p_term(parser *p)
{
    item tok = p_next_nonspace(p);
    node *n;
    switch (tok.typ) {
    case I_IDENT:
        if (!builtin_lookup(tok.val)) {
            p_fail_quoted(p, "function ", (str){ tok.val.p, tok.val.n }, " not defined");
        }
        n = p_new(p, N_IDENT, tok.pos);
        n->text = tok.val;
        return n;
    case I_DOT: return p_new(p, N_DOT, tok.pos);
    case I_NIL: return p_new(p, N_NIL, tok.pos);
    case I_VARIABLE:
        n = p_new_var(p, tok.pos, tok.val);
        for (int i = 0; i < p->nvars; i++)
            if (str_eqs(p->vars[i], n->ident[0]))
                return n;
        {
            p_fail_quoted(p, "undefined variable ", (str){ n->ident[0].p, n->ident[0].n }, "");
        }
    case I_FIELD: return p_new_field(p, tok.pos, tok.val);
    case I_BOOL:
        n = p_new(p, N_BOOL, tok.pos);
        n->b = str_eq(tok.val, "true");
        return n;
    case I_CHARCONST: case I_COMPLEX: case I_NUMBER:
        n = p_new(p, N_NUMBER, tok.pos);
        p_number(p, n, tok);
        return n;
    case I_LEFTPAREN:
        return p_pipeline(p, "parenthesized pipeline", I_RIGHTPAREN);
    case I_STRING: case I_RAWSTRING:
        n = p_new(p, N_STRING, tok.pos);
        n->quoted = tok.val;
        n->text = p_unquote(p, tok);
        return n;
    }
    p_backup(p);
    return NULL;
}

static int parse_into(tmpl *t, lexer *l, parser *p, tmpl_error *err)
{
    jmp_buf jb;
    pctx c = { t, l, &jb, err, 0 };
    if (setjmp(jb))
        return -1;
    p_init(p, &c, (str){ t->name, strlen(t->name) });
    p_parse(p);
    p_add(p);
    return 0;
}

tmpl *tmpl_parse(const char *name, const char *text, tmpl_error *err)
{
    tmpl *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    t->name = astrndup(&t->a, name, strlen(name));
    t->text = astrndup(&t->a, text, strlen(text));
    lexer *l = lx_new(&t->a, t->text);
    parser *p = aalloc(&t->a, sizeof *p);
    if (parse_into(t, l, p, err) < 0) {
        tmpl_free(t);
        return NULL;
    }
    return t;
}

void tmpl_free(tmpl *t)
{
    if (!t)
        return;
    afree(&t->a);
    free(t);
}

int tmpl_is_plain(const char *text)
{
    return strstr(text, "{{") == NULL;
}
