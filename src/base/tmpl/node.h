/* node.h — the parse tree (text/template/parse/node.go): node kinds, the node
 * struct every kind shares, and a parsed template set. */
#ifndef QQ_TMPL_NODE_H
#define QQ_TMPL_NODE_H

#include "tmpl_int.h"

enum ntype {
    N_TEXT, N_ACTION, N_BOOL, N_CHAIN, N_COMMAND, N_DOT, N_FIELD, N_IDENT, N_IF, N_LIST, N_NIL,
    N_NUMBER, N_PIPE, N_RANGE, N_STRING, N_TEMPLATE, N_VARIABLE, N_WITH, N_COMMENT, N_BREAK,
    N_CONTINUE, N_END, N_ELSE,
};

typedef struct node node;

typedef struct nvec {
    node **v;
    int n, cap;
} nvec;

struct node {
    int type, pos, line;
    str text;          /* TEXT, COMMENT, IDENT, STRING (unquoted), NUMBER, TEMPLATE name */
    str quoted;        /* STRING as written */
    nvec list;         /* LIST nodes, COMMAND args, PIPE commands */
    nvec decl;         /* PIPE declared variables */
    int is_assign;
    str *ident;        /* FIELD, VARIABLE idents; CHAIN fields */
    int nident;
    node *sub;         /* CHAIN term; ACTION/branch/TEMPLATE pipe */
    node *blist, *belse;
    int b;
    int isint, isuint, isfloat, iscomplex;
    int64_t i64;
    uint64_t u64;
    double f64, cre, cim;
};

typedef struct ttree {
    str name;
    node *root;
} ttree;

struct tmpl {
    arena a;
    const char *name;   /* ParseName: the name given to tmpl_parse */
    const char *text;
    ttree **trees;
    int ntrees, cap;
};

/* node.c */
void nvec_add(arena *a, nvec *v, node *n);

#endif
