/* tmpl_int.h — what the files of the template engine share (src/base/tmpl/).
 *
 * A port of Go 1.19's text/template (lexer, parser, executor) and of the parts
 * of fmt and strconv it needs, over jansson values; src/base/tmpl.h is the only
 * public API. The files follow Go's package so behaviour, including error text,
 * can be checked line by line against Go's sources:
 *   arena.c    allocation for one parse or one execution
 *   strconv.c  strconv: quoting, unquoting, number literals, rune classes
 *   lex.c      parse/lex.go: text to items
 *   node.h/.c  parse/node.go: the tree, printed back for messages
 *   parse.c    parse/parse.go: items to trees; tmpl_parse, tmpl_free
 *   value.c    reflect-like values over jansson, truth, eq/lt
 *   fmt.c      fmt's Sprint/Sprintln/Sprintf and strconv's float formatting
 *   funcs.c    funcs.go: the builtins as a table
 *   exec.c     exec.go: walking a tree over data; tmpl_exec, tmpl_render
 * Go's panics become a longjmp to the entry point (tmpl_parse, tmpl_exec_with);
 * everything they allocate lives in an arena freed in one go, so no longjmp leaks.
 */
#ifndef QQ_TMPL_INT_H
#define QQ_TMPL_INT_H

#include <jansson.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../sbuf.h"
#include "../tmpl.h"

/* Bounds Go does not have (its stack grows); the error names them. */
#define MAX_EXEC_DEPTH 1000        /* nested {{template}} calls */
#define MAX_PARSE_DEPTH 400        /* nested control structures and parens */
#define MAX_EXEC_STEPS 20000000L   /* nodes walked and commands evaluated */
#define MAX_EXEC_BYTES ((size_t)256 << 20) /* output plus temporaries, when the caller's out has no budget */
#define MAX_EXEC_STACK ((size_t)3 << 20)    /* C stack used by all nested executions */

typedef struct node node;   /* node.h */
typedef struct ttree ttree; /* node.h */

/* ---- arena.c: blocks freed together ---- */

typedef struct ablock {
    struct ablock *next;
    size_t used, cap;
    max_align_t data[];
} ablock;

typedef struct arena {
    ablock *head;
    size_t total;          /* bytes held */
    sbuf_budget *budget;   /* an execution's arena: what it hands out is charged there (never
                            * refused: the executor sees budget->over at its next step) */
} arena;

void *aalloc(arena *a, size_t n); /* zeroed */
void afree(arena *a);
char *astrndup(arena *a, const char *s, size_t n);

/* a slice of bytes (Go's string) */
typedef struct str {
    const char *p;
    size_t n;
} str;

static inline int str_eq(str a, const char *b) { return strlen(b) == a.n && memcmp(a.p, b, a.n) == 0; }
static inline int str_eqs(str a, str b) { return a.n == b.n && memcmp(a.p, b.p, a.n) == 0; }

/* ---- strconv.c ---- */

#define RUNE_ERROR 0xFFFD

int32_t decode_rune(const unsigned char *s, size_t n, int *w); /* utf8.DecodeRune over utf8.h */
int encode_rune(char *buf, int32_t r);
size_t rune_count(const char *s, size_t n);
int is_alnum(int32_t r);
int is_print(int32_t r);
static inline int is_space(int32_t r) { return r == ' ' || r == '\t' || r == '\r' || r == '\n'; }
void go_quote(sbuf *b, const char *s, size_t n, int ascii);
void go_quote_rune(sbuf *b, int32_t r, int ascii);
void go_unicode_sharp(sbuf *b, int32_t r);
int unquote_char(const char *s, size_t n, char quote, int32_t *value, int *multibyte, size_t *used);
int go_unquote(arena *a, const char *in, size_t n, str *out);
int parse_int_base0(const char *s, size_t n, int is_signed, uint64_t *out, int *neg);
int parse_float(const char *s, size_t n, double *out);

/* ---- lex.c ---- */

enum itype {
    I_ERROR, I_BOOL, I_CHAR, I_CHARCONST, I_COMMENT, I_COMPLEX, I_ASSIGN, I_DECLARE, I_EOF,
    I_FIELD, I_IDENT, I_LEFTDELIM, I_LEFTPAREN, I_NUMBER, I_PIPE, I_RAWSTRING, I_RIGHTDELIM,
    I_RIGHTPAREN, I_SPACE, I_STRING, I_TEXT, I_VARIABLE,
    I_KEYWORD, I_BLOCK, I_BREAK, I_CONTINUE, I_DOT, I_DEFINE, I_ELSE, I_END, I_IF, I_NIL,
    I_RANGE, I_TEMPLATE, I_WITH,
};

typedef struct item {
    int typ;
    int pos;
    str val;
    int line;
} item;

typedef struct lexer lexer;

lexer *lx_new(arena *a, const char *text); /* allocated in a; text must outlive it */
item lx_item(lexer *l);                    /* the next item; I_EOF or I_ERROR at the end */

/* ---- node.c, parse.c ---- */

void node_string(sbuf *b, const node *n);
ttree *tmpl_lookup(const tmpl *t, str name);

/* ---- value.c ---- */

/* A reflect.Value over the data: iface marks a value read out of a
 * map[string]any or []any (Kind Interface in Go), which matters for error
 * messages ("in type interface {}") and for how nil prints. */
enum vkind {
    V_INVALID, V_MISSING, V_NIL, V_BOOL, V_INT, V_INT64, V_UINT8, V_FLOAT, V_COMPLEX, V_STRING,
    V_MAP, V_SLICE,
};

typedef struct val {
    int k;
    int iface;
    int64_t i;
    double f, im;
    str s;
    json_t *j;
    size_t off, len, cap;  /* V_SLICE: a window on the json array */
} val;

static inline val v_make(int k) { val v; memset(&v, 0, sizeof v); v.k = k; return v; }
static inline val v_bool(int b) { val v = v_make(V_BOOL); v.i = b != 0; return v; }
static inline val v_int(int64_t i) { val v = v_make(V_INT); v.i = i; return v; }
static inline val v_string(const char *p, size_t n) { val v = v_make(V_STRING); v.s.p = p; v.s.n = n; return v; }

/* indirectInterface: the concrete value inside an interface (nil -> invalid) */
static inline val v_concrete(val v)
{
    if (v.k == V_NIL)
        return v_make(V_INVALID);
    v.iface = 0;
    return v;
}

static inline json_t *v_slice_elem(const val *v, size_t i) { return json_array_get(v->j, v->off + i); }

val v_from_json(json_t *j, int iface);
const char *v_concrete_type(const val *v);
const char *v_type(const val *v); /* reflect.Value.Type().String() */
const char **sorted_keys(json_t *obj, size_t *n); /* fmtsort order; caller frees */
int is_true(val v, int *ok);
int truth(val v);

/* How the executor reads elements out of containers: through the caller's
 * lookup hook when there is one. Printing cannot unwind (it holds malloc'd
 * key lists), so a failed read sets failed and err, printing stops, and the
 * executor reports err once printing has returned. */
typedef struct reader {
    tmpl_lookup_fn fn;
    void *ud;
    int failed;
    tmpl_error err;
} reader;

/* the value to use for container[key] (key NULL for arrays); NULL after a failure */
json_t *rd_read(reader *r, json_t *container, const char *key, json_t *value);

/* ---- fmt.c ---- */

typedef struct fmtf {
    int wid_present, prec_present, minus, plus, sharp, space, zero, plusV, sharpV;
    int wid, prec;
} fmtf;

typedef struct pp {
    sbuf *buf;
    fmtf f;
    reader *rd;
} pp;

void print_arg(pp *p, val a, int verb);
void go_sprintf(sbuf *out, reader *rd, const char *fmt, size_t end, const val *a, int nargs);
void go_sprint(sbuf *out, reader *rd, const val *a, int n);
void go_sprintln(sbuf *out, reader *rd, const val *a, int n);

/* ---- exec.c ---- */

typedef struct var {
    str name;
    val v;
} var;

typedef struct state {
    const tmpl *t;
    str tname;            /* name of the executing template */
    const node *node;     /* current node, for errors */
    var *vars;
    int nvars, capvars, base;
    int depth;
    long steps;
    sbuf *out;
    sbuf_budget *budget;  /* out's, else own_budget: output, temporaries and the arena */
    sbuf_budget own_budget; /* MAX_EXEC_BYTES */
    arena a;              /* strings made during execution */
    jmp_buf jb;
    tmpl_error *err;
    const char *stack_base;
    reader rd;            /* the caller's lookup hook */
} state;

const char *s_quote(state *s, const char *p, size_t n); /* %q of p, in the arena */
/* b (a temporary of a builtin) copied into the arena and freed; NULL when the
 * copy does not fit the budget (b is freed, budget->over set). */
const char *s_keep(state *s, sbuf *b);
const char *s_fmtv(state *s, val v, int verb);         /* v formatted, in the arena */
val s_read(state *s, json_t *container, const char *key, json_t *value); /* through the hook */

/* eq and lt of funcs.go (value.c) */
int fn_eq(state *s, val a1, const val *a2, int n, int *res, char *err, size_t errsz);
int fn_lt(val a1, val a2, int *res, char *err, size_t errsz);

/* ---- funcs.c ---- */

/* parameter types of the builtins */
enum { T_NONE, T_RV, T_ANY, T_STR };

/* A builtin function: Go's signature and the implementation, which gets argc
 * arguments converted to the parameter types and returns 0 with *res set or -1
 * with err set. fn is NULL for and/or: the executor evaluates them lazily. */
typedef struct builtin {
    const char *name;
    int nin, variadic;
    int in[2];            /* parameter types (T_*); the last repeats when variadic */
    int (*fn)(state *s, const val *argv, int argc, val *res, char *err, size_t errsz);
} builtin;

/* the builtin called name, or NULL */
const builtin *builtin_lookup(str name);

#endif
