/* exec — the executor (text/template/exec.go): walks a tree over data, and the
 * public tmpl_exec/tmpl_render. Go's panics become a longjmp to the entry point. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "node.h"

enum { WALK_OK, WALK_BREAK, WALK_CONTINUE };

/* The outermost execution's stack base: an execution started from inside a
 * lookup hook shares its budget instead of starting a fresh one. */
static _Thread_local const char *outer_stack_base;

static void s_errorf(state *s, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void s_errorf(state *s, const char *fmt, ...)
{
    char msg[sizeof s->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sbuf b = SBUF_INIT;
    sbuf_adds(&b, "template: ");
    if (!s->node) {
        sbuf_add(&b, s->tname.p, s->tname.n);
        sbuf_addf(&b, ": %s", msg);
    } else {
        int pos = s->node->pos;
        const char *text = s->t->text;
        int line = 1, lastnl = -1;
        for (int i = 0; i < pos; i++)
            if (text[i] == '\n') {
                line++;
                lastnl = i;
            }
        int col = lastnl < 0 ? pos : pos - (lastnl + 1);
        sbuf_addf(&b, "%s:%d:%d: executing ", s->t->name, line, col);
        go_quote(&b, s->tname.p, s->tname.n, 0);
        sbuf_adds(&b, " at <");
        node_string(&b, s->node);
        sbuf_addf(&b, ">: %s", msg);
    }
    snprintf(s->err->msg, sizeof s->err->msg, "%s", sbuf_str(&b));
    sbuf_free(&b);
    longjmp(s->jb, 1);
}

/* a %q or %v argument rendered into the arena, for error messages */
const char *s_quote(state *s, const char *p, size_t n)
{
    sbuf b = SBUF_INIT;
    go_quote(&b, p, n, 0);
    char *r = astrndup(&s->a, b.buf, b.len);
    sbuf_free(&b);
    return r;
}

const char *s_fmtv(state *s, val v, int verb)
{
    sbuf b = SBUF_INIT;
    pp p;
    memset(&p, 0, sizeof p);
    p.buf = &b;
    p.rd = &s->rd;
    print_arg(&p, v, verb);
    if (b.len > 300)
        b.len = 300, b.buf[300] = 0;
    char *r = astrndup(&s->a, sbuf_str(&b), b.len);
    sbuf_free(&b);
    return r;
}

static void s_at(state *s, const node *n) { s->node = n; }

const char *s_keep(state *s, sbuf *b)
{
    size_t n = b->len;
    if (s->budget->over || n + 16 > s->budget->left) {
        s->budget->over = 1;
        sbuf_free(b);
        return NULL;
    }
    const char *r = astrndup(&s->a, b->buf ? b->buf : "", n);
    sbuf_free(b);
    return r;
}

/* Fails the execution once the budget refused memory (the output or a
 * temporary stopped short), at the node that asked for it. */
static void s_check_budget(state *s)
{
    if (!s->budget->over)
        return;
    if (s->budget == &s->own_budget)
        s_errorf(s, "output too large (more than %zu bytes)", MAX_EXEC_BYTES);
    s_errorf(s, "output too large (the output's budget is spent)");
}

/* Fails the execution at the current node when a read through the hook failed
 * (or the budget refused memory). */
static void s_check_read(state *s)
{
    if (s->rd.failed)
        s_errorf(s, "%s", s->rd.err.msg);
    s_check_budget(s);
}

/* container[key] (key NULL for arrays) as the hook sees it */
val s_read(state *s, json_t *container, const char *key, json_t *value)
{
    if (!s->rd.fn)
        return v_from_json(value, 1);
    json_t *got = rd_read(&s->rd, container, key, value);
    s_check_read(s);
    return v_from_json(got, 1);
}

static void s_step(state *s)
{
    char here;
    if (s->stack_base && (size_t)(s->stack_base - &here) > MAX_EXEC_STACK)
        s_errorf(s, "exceeded maximum template depth (nesting too deep for the stack)");
    if (++s->steps > MAX_EXEC_STEPS)
        s_errorf(s, "execution too long (more than %ld steps)", MAX_EXEC_STEPS);
    s_check_budget(s);
}

static void s_push(state *s, str name, val v)
{
    if (s->nvars == s->capvars) {
        int cap = s->capvars ? s->capvars * 2 : 16;
        var *nv = realloc(s->vars, sizeof *nv * (size_t)cap);
        if (!nv)
            abort();
        s->vars = nv;
        s->capvars = cap;
    }
    s->vars[s->nvars].name = name;
    s->vars[s->nvars].v = v;
    s->nvars++;
}

static void s_set_var(state *s, str name, val v)
{
    for (int i = s->nvars - 1; i >= s->base; i--)
        if (str_eqs(s->vars[i].name, name)) {
            s->vars[i].v = v;
            return;
        }
    s_errorf(s, "undefined variable: %.*s", (int)name.n, name.p);
}

static void s_set_top_var(state *s, int n, val v)
{
    if (s->nvars - n >= s->base)
        s->vars[s->nvars - n].v = v;
}

static val s_var_value(state *s, str name)
{
    for (int i = s->nvars - 1; i >= s->base; i--)
        if (str_eqs(s->vars[i].name, name))
            return s->vars[i].v;
    s_errorf(s, "undefined variable: %.*s", (int)name.n, name.p);
}

static val eval_pipeline(state *s, val dot, const node *pipe);

static val eval_arg(state *s, val dot, int typ, const node *n);

static int walk(state *s, val dot, const node *n);

static void not_a_function(state *s, const nvec *args, int nargs, val final)
{
    if (nargs > 1 || final.k != V_MISSING) {
        sbuf b = SBUF_INIT;
        node_string(&b, args->v[0]);
        const char *a0 = astrndup(&s->a, b.buf ? b.buf : "", b.len);
        sbuf_free(&b);
        s_errorf(s, "can't give argument to non-function %s", a0);
    }
}

static val eval_field(state *s, str field, const node *n, int nargs, val final, val recv)
{
    (void)n;
    if (recv.k == V_INVALID)
        s_errorf(s, "nil data; no entry for key %s", s_quote(s, field.p, field.n));
    const char *typ = v_type(&recv);
    if (recv.k == V_NIL)
        s_errorf(s, "nil pointer evaluating %s.%.*s", typ, (int)field.n, field.p);
    recv = v_concrete(recv);
    int has_args = nargs > 1 || final.k != V_MISSING;
    if (recv.k == V_MAP) {
        if (has_args)
            s_errorf(s, "%.*s is not a method but has arguments", (int)field.n, field.p);
        char *key = astrndup(&s->a, field.p, field.n);
        json_t *x = json_object_get(recv.j, key);
        if (!x)
            s_errorf(s, "map has no entry for key %s", s_quote(s, field.p, field.n));
        return s_read(s, recv.j, key, x);
    }
    s_errorf(s, "can't evaluate field %.*s in type %s", (int)field.n, field.p, typ);
}

static val eval_field_chain(state *s, val recv, const node *n, const str *ident, int nident, int nargs, val final)
{
    val missing = v_make(V_MISSING);
    for (int i = 0; i < nident - 1; i++)
        recv = eval_field(s, ident[i], n, 0, missing, recv);
    return eval_field(s, ident[nident - 1], n, nargs, final, recv);
}

static val eval_field_node(state *s, val dot, const node *f, int nargs, val final)
{
    s_at(s, f);
    return eval_field_chain(s, dot, f, f->ident, f->nident, nargs, final);
}

static val eval_chain_node(state *s, val dot, const node *c, int nargs, val final)
{
    s_at(s, c);
    if (c->sub->type == N_NIL) {
        sbuf b = SBUF_INIT;
        node_string(&b, c);
        const char *cs = astrndup(&s->a, b.buf, b.len);
        sbuf_free(&b);
        s_errorf(s, "indirection through explicit nil in %s", cs);
    }
    val pipe = eval_arg(s, dot, T_NONE, c->sub);
    return eval_field_chain(s, pipe, c, c->ident, c->nident, nargs, final);
}

static val eval_variable_node(state *s, val dot, const node *v, const nvec *args, int nargs, val final)
{
    (void)dot;
    s_at(s, v);
    val value = s_var_value(s, v->ident[0]);
    if (v->nident == 1) {
        if (args)
            not_a_function(s, args, nargs, final);
        return value;
    }
    return eval_field_chain(s, value, v, v->ident + 1, v->nident - 1, nargs, final);
}

static val ideal_constant(state *s, const node *c)
{
    s_at(s, c);
    const char *t = c->text.p;
    size_t n = c->text.n;
    int is_hex = n > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') && !memchr(t, 'p', n) && !memchr(t, 'P', n);
    int is_rune = n > 0 && t[0] == '\'';
    int has_fl = memchr(t, '.', n) || memchr(t, 'e', n) || memchr(t, 'E', n) || memchr(t, 'p', n) || memchr(t, 'P', n);
    if (c->iscomplex) {
        val v = v_make(V_COMPLEX);
        v.f = c->cre;
        v.im = c->cim;
        return v;
    }
    if (c->isfloat && !is_hex && !is_rune && has_fl) {
        val v = v_make(V_FLOAT);
        v.f = c->f64;
        return v;
    }
    if (c->isint)
        return v_int(c->i64);
    if (c->isuint)
        s_errorf(s, "%.*s overflows int", (int)n, t);
    return v_make(V_INVALID);
}

/* validateType: value passed to a parameter of type typ */
static val validate_type(state *s, val v, int typ)
{
    if (v.k == V_INVALID) {
        if (typ == T_NONE || typ == T_RV)
            return v;
        if (typ == T_ANY) {
            val n = v_make(V_NIL);
            n.iface = 1;
            return n;
        }
        s_errorf(s, "invalid value; expected string");
    }
    if (typ == T_STR) {
        val c = v;
        if (c.k == V_STRING)
            return v_concrete(c);
        if (c.iface && c.k != V_NIL)
            c = v_concrete(c);
        s_errorf(s, "wrong type for value; expected string; got %s", v_type(&c));
    }
    return v;
}

static val eval_empty_interface(state *s, val dot, const node *n);

static val eval_function(state *s, val dot, const node *id, const node *cmd, const nvec *args, int nargs, val final);

static val eval_arg(state *s, val dot, int typ, const node *n)
{
    s_at(s, n);
    val missing = v_make(V_MISSING);
    switch (n->type) {
    case N_DOT: return validate_type(s, dot, typ);
    case N_NIL:
        if (typ == T_RV)
            return v_make(V_INVALID);
        if (typ == T_ANY) {
            val z = v_make(V_NIL);
            z.iface = 1;
            return z;
        }
        s_errorf(s, "cannot assign nil to string");
    case N_FIELD: return validate_type(s, eval_field_node(s, dot, n, 1, missing), typ);
    case N_VARIABLE: return validate_type(s, eval_variable_node(s, dot, n, NULL, 0, missing), typ);
    case N_PIPE: return validate_type(s, eval_pipeline(s, dot, n), typ);
    case N_IDENT: return validate_type(s, eval_function(s, dot, n, n, NULL, 0, missing), typ);
    case N_CHAIN: return validate_type(s, eval_chain_node(s, dot, n, 0, missing), typ);
    }
    if (typ == T_STR) {
        s_at(s, n);
        if (n->type == N_STRING)
            return v_string(n->text.p, n->text.n);
        sbuf b = SBUF_INIT;
        node_string(&b, n);
        const char *ns = astrndup(&s->a, b.buf, b.len);
        sbuf_free(&b);
        s_errorf(s, "expected string; found %s", ns);
    }
    return eval_empty_interface(s, dot, n);
}

static val eval_empty_interface(state *s, val dot, const node *n)
{
    (void)dot;
    s_at(s, n);
    switch (n->type) {
    case N_BOOL: return v_bool(n->b);
    case N_NUMBER: return ideal_constant(s, n);
    case N_STRING: return v_string(n->text.p, n->text.n);
    }
    s_errorf(s, "can't handle assignment of node to empty interface argument");
}

static val eval_call(state *s, val dot, const builtin *sg, const node *n, const nvec *args, int nargs_total, val final)
{
    const char *name = sg->name;
    node *const *args_v = args ? args->v + 1 : NULL;
    int nargs = args ? nargs_total - 1 : 0;
    int num_in = nargs + (final.k != V_MISSING);
    int num_fixed = nargs;
    if (sg->variadic) {
        num_fixed = sg->nin - 1;
        if (num_in < num_fixed)
            s_errorf(s, "wrong number of args for %s: want at least %d got %d", name, sg->nin - 1, nargs);
    } else if (num_in != sg->nin) {
        s_errorf(s, "wrong number of args for %s: want %d got %d", name, sg->nin, num_in);
    }
    if (!sg->fn) { /* and, or */
        int is_or = name[0] == 'o';
        val v = v_make(V_INVALID);
        for (int i = 0; i < nargs; i++) {
            v = eval_arg(s, dot, T_RV, args_v[i]);
            if (truth(v) == is_or)
                return v;
        }
        if (final.k != V_MISSING)
            v = validate_type(s, final, T_RV);
        return v;
    }
    val *argv = aalloc(&s->a, sizeof *argv * (size_t)(num_in > 0 ? num_in : 1));
    int i = 0;
    for (; i < num_fixed && i < nargs; i++)
        argv[i] = eval_arg(s, dot, sg->in[i], args_v[i]);
    if (sg->variadic)
        for (; i < nargs; i++)
            argv[i] = eval_arg(s, dot, sg->in[sg->nin - 1], args_v[i]);
    if (final.k != V_MISSING) {
        int t = sg->in[sg->nin - 1];
        if (sg->variadic && num_in - 1 < num_fixed)
            t = sg->in[num_in - 1];
        argv[i] = validate_type(s, final, t);
    }
    char err[600];
    val r = v_make(V_INVALID);
    const node *last = s->node; /* Go reports later errors at the last argument */
    s_at(s, n);                 /* where a failed read through the hook is reported */
    int failed = sg->fn(s, argv, num_in, &r, err, sizeof err) < 0;
    s_check_read(s);
    if (failed)
        s_errorf(s, "error calling %s: %s", name, err);
    s_at(s, last);
    return r;
}

static val eval_function(state *s, val dot, const node *id, const node *cmd, const nvec *args, int nargs, val final)
{
    s_at(s, id);
    const builtin *fn = builtin_lookup(id->text);
    if (!fn)
        s_errorf(s, "%s is not a defined function", s_quote(s, id->text.p, id->text.n));
    return eval_call(s, dot, fn, cmd, args, nargs, final);
}

static val eval_command(state *s, val dot, const node *cmd, val final)
{
    s_step(s);
    const node *first = cmd->list.v[0];
    int nargs = cmd->list.n;
    switch (first->type) {
    case N_FIELD: return eval_field_node(s, dot, first, nargs, final);
    case N_CHAIN: return eval_chain_node(s, dot, first, nargs, final);
    case N_IDENT: return eval_function(s, dot, first, cmd, &cmd->list, nargs, final);
    case N_PIPE:
        not_a_function(s, &cmd->list, nargs, final);
        return eval_pipeline(s, dot, first);
    case N_VARIABLE: return eval_variable_node(s, dot, first, &cmd->list, nargs, final);
    }
    s_at(s, first);
    not_a_function(s, &cmd->list, nargs, final);
    switch (first->type) {
    case N_BOOL: return v_bool(first->b);
    case N_DOT: return dot;
    case N_NIL: s_errorf(s, "nil is not a command");
    case N_NUMBER: return ideal_constant(s, first);
    case N_STRING: return v_string(first->text.p, first->text.n);
    }
    s_errorf(s, "can't evaluate command");
}

static val eval_pipeline(state *s, val dot, const node *pipe)
{
    if (!pipe)
        return v_make(V_INVALID);
    s_at(s, pipe);
    val value = v_make(V_MISSING);
    for (int i = 0; i < pipe->list.n; i++) {
        value = eval_command(s, dot, pipe->list.v[i], value);
        if (value.iface)
            value = v_concrete(value);
    }
    for (int i = 0; i < pipe->decl.n; i++) {
        if (pipe->is_assign)
            s_set_var(s, pipe->decl.v[i]->ident[0], value);
        else
            s_push(s, pipe->decl.v[i]->ident[0], value);
    }
    return value;
}

static void print_value_node(state *s, const node *n, val v)
{
    s_at(s, n);
    if (v.k == V_INVALID) {
        sbuf_adds(s->out, "<no value>");
        return;
    }
    pp p;
    memset(&p, 0, sizeof p);
    p.buf = s->out;
    p.rd = &s->rd;
    print_arg(&p, v, 'v');
    s_check_read(s);
}

static int walk_if_or_with(state *s, int type, val dot, const node *n)
{
    int mark = s->nvars;
    val v = eval_pipeline(s, dot, n->sub);
    int ok;
    int t = is_true(v, &ok);
    int rc = WALK_OK;
    if (t)
        rc = walk(s, type == N_WITH ? v : dot, n->blist);
    else if (n->belse)
        rc = walk(s, dot, n->belse);
    s->nvars = mark;
    return rc;
}

static int range_iteration(state *s, const node *r, int mark, val index, val elem)
{
    if (r->sub->decl.n > 0)
        s_set_top_var(s, 1, elem);
    if (r->sub->decl.n > 1)
        s_set_top_var(s, 2, index);
    int rc = walk(s, elem, r->blist);
    s->nvars = mark;
    return rc;
}

static int walk_range(state *s, val dot, const node *r)
{
    s_at(s, r);
    int mark0 = s->nvars;
    val v = v_concrete(eval_pipeline(s, dot, r->sub));
    int mark = s->nvars;
    int rc = WALK_OK;
    switch (v.k) {
    case V_SLICE:
        if (v.len == 0)
            break;
        for (size_t i = 0; i < v.len; i++) {
            s_at(s, r->sub);
            rc = range_iteration(s, r, mark, v_int((int64_t)i), s_read(s, v.j, NULL, v_slice_elem(&v, i)));
            if (rc == WALK_BREAK)
                break;
        }
        s->nvars = mark0;
        return WALK_OK;
    case V_MAP: {
        if (json_object_size(v.j) == 0)
            break;
        size_t n;
        const char **keys = sorted_keys(v.j, &n);
        /* keys are freed on every path: copy them into the arena first */
        const char **ak = aalloc(&s->a, sizeof *ak * n);
        for (size_t i = 0; i < n; i++)
            ak[i] = keys[i];
        free(keys);
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_object_get(v.j, ak[i]);
            s_at(s, r->sub);
            rc = range_iteration(s, r, mark, v_string(ak[i], strlen(ak[i])), s_read(s, v.j, ak[i], x));
            if (rc == WALK_BREAK)
                break;
        }
        s->nvars = mark0;
        return WALK_OK;
    }
    case V_INVALID:
        break;
    default:
        s_errorf(s, "range can't iterate over %s", s_fmtv(s, v, 'v'));
    }
    if (r->belse) {
        rc = walk(s, dot, r->belse);
        if (rc == WALK_BREAK)
            rc = WALK_OK;
    }
    s->nvars = mark0;
    return rc;
}

static int walk_template(state *s, val dot, const node *t)
{
    s_at(s, t);
    ttree *tr = tmpl_lookup(s->t, t->text);
    if (!tr || !tr->root)
        s_errorf(s, "template %s not defined", s_quote(s, t->text.p, t->text.n));
    if (s->depth >= MAX_EXEC_DEPTH)
        s_errorf(s, "exceeded maximum template depth (%d)", MAX_EXEC_DEPTH);
    dot = eval_pipeline(s, dot, t->sub);
    str oname = s->tname;
    int obase = s->base, onvars = s->nvars;
    const node *onode = s->node;
    s->depth++;
    s->tname = tr->name;
    s->base = s->nvars;
    s_push(s, (str){ "$", 1 }, dot);
    walk(s, dot, tr->root);
    s->depth--;
    s->tname = oname;
    s->base = obase;
    s->nvars = onvars;
    s->node = onode;
    return WALK_OK;
}

static int walk(state *s, val dot, const node *n)
{
    s_step(s);
    s_at(s, n);
    switch (n->type) {
    case N_ACTION: {
        val v = eval_pipeline(s, dot, n->sub);
        if (n->sub->decl.n == 0)
            print_value_node(s, n, v);
        return WALK_OK;
    }
    case N_BREAK: return WALK_BREAK;
    case N_CONTINUE: return WALK_CONTINUE;
    case N_COMMENT: return WALK_OK;
    case N_IF: return walk_if_or_with(s, N_IF, dot, n);
    case N_WITH: return walk_if_or_with(s, N_WITH, dot, n);
    case N_LIST:
        for (int i = 0; i < n->list.n; i++) {
            int rc = walk(s, dot, n->list.v[i]);
            if (rc != WALK_OK)
                return rc;
        }
        return WALK_OK;
    case N_RANGE: return walk_range(s, dot, n);
    case N_TEMPLATE: return walk_template(s, dot, n);
    case N_TEXT: sbuf_add(s->out, n->text.p, n->text.n); return WALK_OK;
    }
    s_errorf(s, "unknown node");
}

int tmpl_exec(const tmpl *t, const char *name, json_t *data, sbuf *out, tmpl_error *err)
{
    return tmpl_exec_with(t, name, data, NULL, NULL, out, err);
}

int tmpl_exec_with(const tmpl *t, const char *name, json_t *data, tmpl_lookup_fn fn, void *ud,
                   sbuf *out, tmpl_error *err)
{
    str want = { name ? name : t->name, strlen(name ? name : t->name) };
    ttree *tr = tmpl_lookup(t, want);
    if (!tr) {
        sbuf b = SBUF_INIT;
        sbuf_adds(&b, "template: no template ");
        go_quote(&b, want.p, want.n, 0);
        sbuf_adds(&b, " associated with template ");
        go_quote(&b, t->name, strlen(t->name), 0);
        snprintf(err->msg, sizeof err->msg, "%s", sbuf_str(&b));
        sbuf_free(&b);
        return -1;
    }
    state *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->t = t;
    s->tname = tr->name;
    s->out = out;
    /* the output's budget bounds everything the execution takes; without
     * one, the execution has its own */
    s->own_budget = (sbuf_budget){ .left = MAX_EXEC_BYTES };
    s->budget = out->budget ? out->budget : &s->own_budget;
    out->budget = s->budget;
    s->a.budget = s->budget;
    s->err = err;
    s->rd.fn = fn;
    s->rd.ud = ud;
    val dot = v_from_json(data, 0);
    char base;
    const char *volatile outer = outer_stack_base;
    if (!outer)
        outer_stack_base = &base;
    s->stack_base = outer_stack_base;
    volatile int rc = 0;
    if (setjmp(s->jb)) {
        rc = -1;
    } else {
        s_push(s, (str){ "$", 1 }, dot);
        if (!tr->root)
            s_errorf(s, "%s is an incomplete or empty template", s_quote(s, tr->name.p, tr->name.n));
        walk(s, dot, tr->root);
        s_check_budget(s);   /* the last write may have been refused */
    }
    if (out->budget == &s->own_budget)
        out->budget = NULL;
    outer_stack_base = outer;
    free(s->vars);
    afree(&s->a);
    free(s);
    return rc;
}

int tmpl_render(const char *name, const char *text, json_t *data, sbuf *out, tmpl_error *err)
{
    return tmpl_render_with(name, text, data, NULL, NULL, out, err);
}

int tmpl_render_with(const char *name, const char *text, json_t *data, tmpl_lookup_fn fn,
                     void *ud, sbuf *out, tmpl_error *err)
{
    tmpl *t = tmpl_parse(name, text, err);
    if (!t)
        return -1;
    int rc = tmpl_exec_with(t, NULL, data, fn, ud, out, err);
    tmpl_free(t);
    return rc;
}
