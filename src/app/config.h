/* config — find, load, validate and resolve a qqmgr.toml.
 *
 * config_load() finds the file (explicit path, else ./qqmgr.toml, else
 * ${XDG_CONFIG_HOME:-~/.config}/qqmgr/conf.toml), parses it (toml), checks
 * every section and key against the schema (types, unknown keys and ssh
 * keywords, ranges, names, NUL and control characters). Every error is one
 * line "FILE:LINE:COL: PATH: message" naming the value it got, code
 * QQ_EXIT_USAGE.
 * The state dir is derived from the file's real path (see docs/design.md):
 *   qqmgr.toml → DIR/.qqmgr, other names → DIR/.qqmgr/config.NAME, the
 *   global file → ${XDG_STATE_HOME:-~/.local/state}/qqmgr (layout.h, "Whose
 *   directory"). Nothing is created on disk by loading (an older qqmgr's
 *   DIR/.qqmgr/NAME is moved to its new place when idle).
 *
 * config_vm() renders one VM's cmd with the template data (global vars at top
 * level, .vm = VM vars + ssh{port, vm_port}, .img = image name → absolute
 * path of the built image) and splits each entry into arguments ('…' and "…"
 * keep white space); [ssh] and [vm.NAME.ssh] values are rendered with the same
 * data. Its [vm.NAME.share.TAG] tables become vm_share (config_check_shares
 * checks their paths, at launch). Variables are resolved by the template engine itself, lazily (tmpl's
 * lookup hook renders a var when a template first reads it): vars may use vars
 * to any depth through any construct; a real cycle is an error naming its
 * chain. The returned vm_spec is owned by the caller.
 *
 * config_img() gives one image as a typed img_spec (builder, size, paths,
 * base_img, templates, sources, env_hook argv, build_args, build_timeout,
 * env): the builders never read the raw TOML.
 *
 * Files: config_load.c (finding, parsing, places, the accessors below),
 * config_schema.c (the schema as data: one row per key — type, required,
 * check, default — walked at load and read through by every reader),
 * config_img.c (config_img, sizes),
 * config_resolve.c (config_vm), config_args.c (config_split_args);
 * config_int.h is what they share.
 */
#ifndef QQ_CONFIG_H
#define QQ_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "../base/err.h"

typedef struct config config;

/* ssh port: SSH_PORT_NONE when [vm.NAME.ssh] has no port, SSH_PORT_AUTO for 0/"auto". */
enum { SSH_PORT_NONE = -1, SSH_PORT_AUTO = 0 };

/* One [vm.NAME.share.TAG]: a host directory the guest sees over 9p. */
typedef struct vm_share {
    char *tag;             /* TAG: the 9p mount tag */
    char *path;            /* absolute host directory (path, relative to the config's directory), checked to exist */
    bool readonly;         /* default true */
    char *mount;           /* absolute guest directory qqmgr mounts it on, or NULL */
} vm_share;

typedef struct vm_spec {
    char *name;
    char *qemu_bin;        /* [qemu] bin */
    char **args;           /* user arguments, rendered and split; NULL-terminated */
    size_t nargs;
    char **arg_where;      /* per argument: the config path of its cmd entry ("vm.NAME.cmd[i]") */
    const config *cfg;     /* borrowed: the config it came from (for config_where) */
    char *state_dir;       /* absolute <state dir>/vm.NAME (not created) */
    int ssh_port;          /* as configured: SSH_PORT_NONE, SSH_PORT_AUTO or 1..65535 */
    int ssh_port_used;     /* the port the args were rendered with (the chosen one when auto) */
    int ssh_vm_port;       /* default 22 */
    json_t *ssh_opts;      /* owned: the VM's [vm.NAME.ssh] keys except port/vm_port, in file order, rendered */
    json_t *ssh_global;    /* owned: the [ssh] keys, in file order, rendered with this VM's data */
    char **images;         /* names of the images the args use (via .img), NULL-terminated */
    json_t *vars;          /* owned: the VM's vars, resolved (as .vm sees them; `symbols` for gdb --guest) */
    vm_share *shares;      /* [vm.NAME.share.TAG] in file order */
    size_t nshares;
    bool mapped_ram;       /* [vm.NAME] mapped_ram (default true): RAM in a tmpfs file, mapped snapshots (mapped.h) */
    bool guest_agent;      /* [vm.NAME] guest_agent (default false): a qemu-guest-agent channel (guestagent.h) */
} vm_spec;

/* A file an image build downloads: base_img, or one of sources. */
typedef struct img_download {
    char *url;
    char *sha256sum;       /* as written: 64 hex digits, or NULL */
    char *sha512sum;       /* as written: 128 hex digits, or NULL (at least one of the two is set) */
    char *filename;        /* sources: as given, else the URL's last path segment; base_img: NULL */
} img_download;

typedef struct img_template {
    char *template;        /* as written: relative to the config's directory, or absolute */
    char *output;          /* its plain file name inside the ISO */
} img_template;

/* One [img.NAME], validated and typed; everything owned. */
typedef struct img_spec {
    char *name;
    char *builder;         /* "raw" or "cloud-init" */
    bool cloud_init;
    const char *format;    /* the disk's format: "raw" or "qcow2" (raw builder: format key; cloud-init: qcow2) */
    char *img_size;        /* as written ("10G"); */
    unsigned long long size_bytes;
    char *path;            /* absolute path VMs use: <dir>/disk.raw (raw) or <dir>/disk.qcow2 (qcow2) */
    char *dir;             /* absolute <state dir>/img.NAME */
    /* cloud-init (empty for raw): */
    img_download base_img;
    img_template *templates;
    size_t ntemplates;
    img_download *sources;
    size_t nsources;
    char **hook_argv;      /* env_hook: interpreter (split like a cmd entry) + script; NULL: no hook */
    char **build_args;     /* templates, one argument each (rendered, never split); NULL-terminated */
    size_t nbuild_args;
    int build_timeout;     /* seconds; 0: unbounded */
    json_t *env;           /* owned: [img.NAME.env] (an empty object when absent) */
} img_spec;

/* ---- Loading (config_load.c) */
config *config_load(const char *explicit_path, qq_err *err);
void config_free(config *c);

const char *config_path(const config *c);       /* real path of the file */
/* How a hint spells a qqmgr command for this config, copy-pasteable:
 * "qqmgr", or "qqmgr -c FILE" (FILE as given, shell-quoted) when -c named it.
 * Every message that suggests a command starts it with this. */
const char *config_cli(const config *c);
const char *config_dir(const config *c);        /* its directory */
const char *config_state_dir(const config *c);
const char *config_qemu_bin(const config *c);
const char *config_qemu_img(const config *c);
json_t *config_root(const config *c);           /* borrowed: the parsed document */

size_t config_vm_count(const config *c);
const char *config_vm_name(const config *c, size_t i);   /* file order */
bool config_has_vm(const config *c, const char *name);
/* 0 when the config has VM (image) name; else QQ_EXIT_USAGE "no VM named "x"",
 * with the nearest name ("did you mean") and the names that exist. A VM
 * name may also name a throwaway copy of the VM, "VM#N" (below): 0 when VM
 * is the config's and the copy's state dir exists; else the unknown VM's
 * QQ_EXIT_USAGE, or QQ_EXIT_FAIL "VM#N: no such copy of VM (…)". */
int config_check_vm(const config *c, const char *name, qq_err *err);

/* Throwaway copies. `start VM --rm` / `run VM --rm` while the VM's own
 * place is taken run as a copy, named "VM#N" (N = 1…CONFIG_COPY_MAX, no
 * leading zero; '#' never occurs in a VM name). Wherever a command takes a
 * VM name it takes a copy's name too: the copy is the VM's entry with its
 * own state dir (config_vm_dir: <state dir>/vm.VM/copy.N, layout.h) and an
 * automatic ssh port (config_vm_ssh_port: SSH_PORT_AUTO unless the VM has
 * no port). config_has_vm() is about the config's names only (false for a
 * copy). Parse: 0 when name has no '#' (a plain VM name), 1 for "BASE#N"
 * (*base malloc'd, *n; either may be NULL), -1 with err (QQ_EXIT_USAGE) for
 * any other name with a '#' ("VM#", "VM#0", "VM#01", "#3", "VM#x"). */
#define CONFIG_COPY_MAX 9999
int config_copy_parse(const char *name, char **base, unsigned *n, qq_err *err);
/* The VM a name is of: "VM" for "VM#N", else the name itself (malloc'd). */
char *config_base_vm(const char *name);
int config_check_img(const config *c, const char *name, qq_err *err);
size_t config_img_count(const config *c);
const char *config_img_name(const config *c, size_t i);  /* file order */

/* Cheap per-VM facts that need no rendering (for list): the configured ssh
 * port (SSH_PORT_NONE / SSH_PORT_AUTO / port) and the VM's state dir (malloc'd). */
int config_vm_ssh_port(const config *c, const char *name);
char *config_vm_dir(const config *c, const char *name);

/* Location "FILE:LINE:COL" of a path such as "vm.test.cmd[1]" (or "FILE" when unknown). */
void config_where(const config *c, const char *path, char *buf, size_t len);

/* ---- Resolving a VM (config_resolve.c) */
/* All the text config_vm makes for one VM (its vars, cmd entries and ssh
 * values, with the template engine's temporaries) comes out of one budget,
 * charged before the memory is taken: past it, QQ_EXIT_USAGE naming the var
 * (or entry) being rendered, "renders past 64 MiB, the budget …". */
#define CONFIG_RENDER_BUDGET ((size_t)64 << 20)
/* Resolve VM name (or a copy "VM#N": spec->name is VM, state_dir the copy's). ssh_port: the port to render {{.vm.ssh.port}} with when the
 * VM's port is automatic (pass 0 when none is chosen yet: renders as 0). Unknown
 * VM → QQ_EXIT_USAGE "no VM named …". */
int config_vm(const config *c, const char *name, int auto_port, vm_spec *out, qq_err *err);
void vm_spec_free(vm_spec *s);
/* 0 when every share's path is a directory; else QQ_EXIT_USAGE
 * "FILE:L:C: vm.NAME.share.TAG.path: "DIR": not a directory (…)". Checked
 * by launch_argv (show, start, gdb), not by config_vm: a running VM whose
 * share dir went away stays reachable (ssh, stop, status). */
int config_check_shares(const vm_spec *s, qq_err *err);

/* ---- Images (config_img.c) */
int config_img(const config *c, const char *name, img_spec *out, qq_err *err);
void img_spec_free(img_spec *s);

/* "10G", "512M", "1024K", "1T", "4096" (bytes; binary units) → bytes; -1 if malformed. */
int config_parse_size(const char *s, unsigned long long *out);

/* ---- Arguments (config_args.c) */
/* Split one rendered cmd entry into arguments at white space; '…' and "…"
 * keep white space inside one argument (no other shell syntax). Appends to
 * the NULL-terminated *argv (realloc'd). Unterminated quote → -1. */
int config_split_args(const char *s, char ***argv, size_t *argc, qq_err *err);

#endif
