/* node — parse tree nodes (text/template/parse/node.go): building lists and
 * printing a node back as template text, for error messages. */
#include "node.h"

void nvec_add(arena *a, nvec *v, node *n)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 4;
        node **nv = aalloc(a, sizeof *nv * (size_t)cap);
        if (v->n)
            memcpy(nv, v->v, sizeof *nv * (size_t)v->n);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = n;
}

static void idents_string(sbuf *b, const node *n, int lead_dot)
{
    for (int i = 0; i < n->nident; i++) {
        if (i > 0 || lead_dot)
            sbuf_addc(b, '.');
        sbuf_add(b, n->ident[i].p, n->ident[i].n);
    }
}

void node_string(sbuf *b, const node *n)
{
    switch (n->type) {
    case N_TEXT: sbuf_add(b, n->text.p, n->text.n); break;
    case N_COMMENT: sbuf_adds(b, "{{"); sbuf_add(b, n->text.p, n->text.n); sbuf_adds(b, "}}"); break;
    case N_ACTION: sbuf_adds(b, "{{"); node_string(b, n->sub); sbuf_adds(b, "}}"); break;
    case N_BOOL: sbuf_adds(b, n->b ? "true" : "false"); break;
    case N_CHAIN:
        if (n->sub->type == N_PIPE) {
            sbuf_addc(b, '(');
            node_string(b, n->sub);
            sbuf_addc(b, ')');
        } else {
            node_string(b, n->sub);
        }
        idents_string(b, n, 1);
        break;
    case N_COMMAND:
        for (int i = 0; i < n->list.n; i++) {
            if (i > 0)
                sbuf_addc(b, ' ');
            if (n->list.v[i]->type == N_PIPE) {
                sbuf_addc(b, '(');
                node_string(b, n->list.v[i]);
                sbuf_addc(b, ')');
            } else {
                node_string(b, n->list.v[i]);
            }
        }
        break;
    case N_DOT: sbuf_addc(b, '.'); break;
    case N_FIELD: idents_string(b, n, 1); break;
    case N_VARIABLE: idents_string(b, n, 0); break;
    case N_IDENT: sbuf_add(b, n->text.p, n->text.n); break;
    case N_NIL: sbuf_adds(b, "nil"); break;
    case N_NUMBER: sbuf_add(b, n->text.p, n->text.n); break;
    case N_STRING: sbuf_add(b, n->quoted.p, n->quoted.n); break;
    case N_LIST:
        for (int i = 0; i < n->list.n; i++)
            node_string(b, n->list.v[i]);
        break;
    case N_PIPE:
        if (n->decl.n > 0) {
            for (int i = 0; i < n->decl.n; i++) {
                if (i > 0)
                    sbuf_adds(b, ", ");
                node_string(b, n->decl.v[i]);
            }
            sbuf_adds(b, " := ");
        }
        for (int i = 0; i < n->list.n; i++) {
            if (i > 0)
                sbuf_adds(b, " | ");
            node_string(b, n->list.v[i]);
        }
        break;
    case N_IF: case N_RANGE: case N_WITH:
        sbuf_adds(b, n->type == N_IF ? "{{if " : n->type == N_RANGE ? "{{range " : "{{with ");
        node_string(b, n->sub);
        sbuf_adds(b, "}}");
        node_string(b, n->blist);
        if (n->belse) {
            sbuf_adds(b, "{{else}}");
            node_string(b, n->belse);
        }
        sbuf_adds(b, "{{end}}");
        break;
    case N_TEMPLATE:
        sbuf_adds(b, "{{template ");
        go_quote(b, n->text.p, n->text.n, 0);
        if (n->sub) {
            sbuf_addc(b, ' ');
            node_string(b, n->sub);
        }
        sbuf_adds(b, "}}");
        break;
    case N_BREAK: sbuf_adds(b, "{{break}}"); break;
    case N_CONTINUE: sbuf_adds(b, "{{continue}}"); break;
    case N_END: sbuf_adds(b, "{{end}}"); break;
    case N_ELSE: sbuf_adds(b, "{{else}}"); break;
    }
}
