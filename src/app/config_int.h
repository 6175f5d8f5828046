/* config_int — what the config_*.c files share, private to them.
 *
 * The parts of config (public API in config.h):
 *   config_load.c     finding, reading, parsing the file; places and messages
 *                     (config_where, cfg_fail); the loaded config's accessors
 *   config_schema.c   the schema as data (one row per key), config_check_schema
 *                     (every key checked once, at load) and the readers
 *                     (cfg_get/cfg_str/cfg_int) that read through the same rows
 *   config_img.c      one [img.NAME] as a typed img_spec; sizes
 *   config_resolve.c  rendering a VM's cmd, ssh values and vars (the resolver)
 *   config_args.c     splitting a rendered cmd entry into arguments
 */
#ifndef QQ_CONFIG_INT_H
#define QQ_CONFIG_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "../base/err.h"
#include "../base/sbuf.h"
#include "config.h"

struct config {
    char *path;        /* real path */
    char *shown;       /* the name errors use: as given, or the discovered path */
    char *cli;         /* "qqmgr" or "qqmgr -c FILE": how hints spell a command */
    char *dir;
    char *state_dir;
    json_t *root;      /* the document */
    json_t *locs;      /* path → [line, col]: parsed again, with locations, on first need */
    char *text;        /* the file's text, kept for that */
    size_t text_len;
    json_t *vms;       /* borrowed from root: object (may be empty) */
    json_t *imgs;      /* borrowed from root: object (may be empty) */
    json_t *vars;      /* borrowed: object */
    json_t *ssh;       /* borrowed: object */
    json_t *nets;      /* borrowed: object, or NULL */
    const char *qemu_bin, *qemu_img;
    json_t *it_obj;    /* nth_key()'s position */
    void *it;
    size_t it_idx;
};

/* Error at a config path: "FILE:L:C: PATH: message", QQ_EXIT_USAGE; returns -1. */
int cfg_fail(const config *c, qq_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The value an error got, as the user wrote it: 70000, "atuo", true, 1.5,
 * a table, an array (strings quoted and escaped, cut after 80 bytes). malloc'd. */
char *cfg_got(const json_t *v);
/* "the string \"x\"", "the integer 5", "a table": what a type error got. malloc'd. */
char *cfg_got_typed(const json_t *v);
/* p = base + "." + key (quoted when the key needs it). */
void cfg_path_key(sbuf *p, const char *base, const char *key);

/* ---- The schema (config_schema.c): data, one row per key.
 *
 * Every table of the file has a cfg_schema: its rows, in the order the
 * checks run and the "expected one of" list names them. A row says what the
 * key must be (type), whether it is required (and the hint the message adds),
 * what else it must satisfy (check), its default and, for tables, the schema
 * inside. config_check_schema walks the document with them once, at load;
 * the readers (config_vm, config_img, the accessors) then read every key
 * through the same rows, by index (cfg_get, cfg_str, cfg_int): a key that is
 * not in its table cannot be read, and a reader gets the type its row checked
 * (or the row's default). The index enums below are the tables' row order. */

typedef enum cfg_type {
    CT_ANY,        /* anything (vars, env; or the row's check says what) */
    CT_STRING,     /* a string */
    CT_INT,        /* an integer */
    CT_STRINGS,    /* an array of strings */
    CT_TABLE,      /* a table: its keys per sub (NULL: any keys) */
    CT_TABLES,     /* an array of tables, each per sub */
    CT_NAMED,      /* a table of NAME → table, each per sub (NAME: a valid name) */
} cfg_type;

typedef struct cfg_ctx {
    const config *c;
    qq_err *err;
    const char *name;      /* the NAME of the [SECTION.NAME] being checked */
} cfg_ctx;

typedef struct cfg_schema cfg_schema;

typedef struct cfg_row {
    const char *key;       /* NULL ends a table */
    cfg_type type;
    bool own_type;         /* check checks the type too (its message names what it wants) */
    const char *what;      /* the type error's word when not the type's own ("a table of VMs") */
    const char *required;  /* NULL: optional; else missing → "missing required key "K"" + this */
    const char *def_str;   /* CT_STRING: the value when absent */
    long long def_int;     /* CT_INT: the value when absent */
    bool hidden;           /* not listed as expected (a retired key that check explains) */
    const char *kind;      /* CT_NAMED: what a NAME names in messages ("VM") */
    /* the value at path, after the type: 0, or -1 with the error set. parent: the table holding it */
    int (*check)(const cfg_ctx *x, const char *path, json_t *v, json_t *parent);
    const cfg_schema *sub; /* CT_TABLE, CT_TABLES, CT_NAMED */
} cfg_row;

struct cfg_schema {
    const cfg_row *rows;
    /* keys without a row: NULL → "unknown key (expected one of: …)" */
    int (*other)(const cfg_ctx *x, const char *path, const char *key, json_t *v, const cfg_schema *s);
    /* the whole table, after its rows (rules between keys) */
    int (*check)(const cfg_ctx *x, const char *path, json_t *t);
};

enum { TOP_QEMU, TOP_VARS, TOP_SSH, TOP_VM, TOP_IMG, TOP_NET };
enum { QEMU_BIN, QEMU_IMG };
enum { VM_CMD, VM_VARS, VM_SSH, VM_SHARE, VM_MAPPED_RAM, VM_GUEST_AGENT };
enum { SHARE_PATH, SHARE_READONLY, SHARE_MOUNT };
enum { VMSSH_PORT, VMSSH_VM_PORT };
enum { IMG_BUILDER, IMG_SIZE, IMG_BUILD_ARGS, IMG_BUILD_TIMEOUT, IMG_BASE_IMG, IMG_TEMPLATES, IMG_ENV,
       IMG_ENV_HOOK, IMG_SOURCES, IMG_FORMAT };
enum { DL_URL, DL_SHA256SUM, DL_SHA512SUM, DL_FILENAME };          /* base_img (no filename) and sources[] */
enum { TPL_TEMPLATE, TPL_OUTPUT };
enum { HOOK_INTERPRETER, HOOK_SCRIPT };

extern const cfg_schema cfg_top, cfg_qemu, cfg_vm, cfg_vm_ssh, cfg_share, cfg_img, cfg_download, cfg_source,
    cfg_template, cfg_hook;

/* The row of key in s, or NULL (a key the table does not define). */
const cfg_row *cfg_row_of(const cfg_schema *s, const char *key);
/* The value of row i of schema s in table t (NULL when absent or t is NULL). */
json_t *cfg_get(json_t *t, const cfg_schema *s, int i);
/* A CT_STRING row's string, or its default. */
const char *cfg_str(json_t *t, const cfg_schema *s, int i);
/* A CT_INT row's integer, or its default. */
long long cfg_int(json_t *t, const cfg_schema *s, int i);
/* A boolean row's value, or def when absent. */
bool cfg_bool(json_t *t, const cfg_schema *s, int i, bool def);
/* [vm.NAME.ssh] port as config.h says: SSH_PORT_NONE, SSH_PORT_AUTO or the port. */
int cfg_ssh_port(json_t *vm_ssh);

/* Check c->root against cfg_top; sets c->vars, ssh, vms, nets, imgs,
 * qemu_bin, qemu_img (borrowed from root). */
int config_check_schema(config *c, qq_err *err);

/* The disk path VMs use for image NAME (img the validated [img.NAME] table). malloc'd. */
char *config_img_path_of(const config *c, const char *name, json_t *img);

/* .net.NAME = {port, group, mcast} for every [net.NAME]. */
json_t *config_net_data(const config *c);

#endif
