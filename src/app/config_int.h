/* config_int — what the config_*.c files share, private to them.
 *
 * The parts of config (public API in config.h):
 *   config_load.c     finding, reading, parsing the file; places and messages
 *                     (config_where, cfg_fail); the loaded config's accessors
 *   config_schema.c   config_check_schema: every section and key checked once,
 *                     at load, so the readers below never meet a wrong type
 *   config_img.c      one [img.NAME] as a typed img_spec; sizes
 *   config_resolve.c  rendering a VM's cmd, ssh values and vars (the resolver)
 *   config_args.c     splitting a rendered cmd entry into arguments
 */
#ifndef QQ_CONFIG_INT_H
#define QQ_CONFIG_INT_H

#include <jansson.h>

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

/* Check c->root against the schema; sets c->vars, ssh, vms, nets, imgs,
 * qemu_bin, qemu_img (borrowed from root). */
int config_check_schema(config *c, qq_err *err);

/* The disk path VMs use for image NAME (img the validated [img.NAME] table). malloc'd. */
char *config_img_path_of(const config *c, const char *name, json_t *img);

/* .net.NAME = {port, group, mcast} for every [net.NAME]. */
json_t *config_net_data(const config *c);

#endif
