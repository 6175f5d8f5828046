/* cmd — the command table's types, the one option parser, and what every
 * command file shares.
 *
 * Each command is one `qq_command` row (defined in its file, listed in
 * main.c's table). The row declares the command's positional arguments and
 * its options as data (`qq_opt`); main() parses the command line with the
 * row before the handler runs, and `CMD -h`, the overview and the shell
 * completion are generated from the same rows, so help cannot drift.
 *
 * How to add a command (e.g. `snapshot save VM NAME [--force]`):
 *
 *   1. src/cmd/snapshot.c:
 *
 *        typedef struct { bool force; int timeout; } save_opts;
 *        static const save_opts save_defaults = { .timeout = 30 };
 *        static const qq_opt save_options[] = {
 *            QQ_FLAG('f', "force", save_opts, force, "replace a snapshot of that name"),
 *            QQ_SECONDS("timeout", save_opts, timeout, 1, "give up after S seconds"),
 *            QQ_OPT_END,
 *        };
 *        static int save(qq_ctx *ctx, int argc, char **argv)
 *        {
 *            const save_opts *o = ctx->opts;   // parsed, defaults applied
 *            // argv[0] = "snapshot save", argv[1..argc-1] = VM NAME (count checked)
 *            ...
 *        }
 *        const qq_command qq_cmd_snapshot_save = {
 *            .name = "snapshot save", .handler = save, .args = "VM NAME", .min_args = 2, .max_args = 2,
 *            .summary = "save the VM's state under NAME",
 *            QQ_OPTIONS(save_opts, save_options, &save_defaults),
 *            .json = "{name, snapshot, elapsed_ms}",
 *        };
 *
 *   2. cmd.h: `extern const qq_command qq_cmd_snapshot_save;`
 *   3. main.c: `&qq_cmd_snapshot_save,` in `commands[]` (its place is its place in the overview)
 *   4. meson.build: the file in cmd_src; README/reference/man page: the command.
 *
 * Words of `args` name what completion offers: VM, IMAGE, SNAPSHOT (names from
 * the config / the VM), LOCAL (files); anything else is free text.
 *
 * What every command would repeat, the dispatcher (main.c) does from the row,
 * in this order:
 *   1. parse the command line against the row (qq_parse);
 *   2. `.check`: usage checks that need no config (option combinations,
 *      words); -1 with err (code 2, qq_usage_error) is reported, then the
 *      usage line when qq_usage_error asked for it (or the check printed the
 *      usage line itself and returned 2);
 *   3. `.needs_config`: load the config into ctx->cfg; an error is reported
 *      and is the exit status (a handler never loads the config itself);
 *   4. `.each` (commands on VMs: start, stop, status, wait, rm): `CMD VM`,
 *      `CMD VM VM…` or `CMD --all` (the command's option named "all"), through
 *      qq_for_vms (multi.c); else `.handler`.
 *
 * A handler gets argv[0] = the command's name and argv[1..argc-1] = its
 * positional arguments only (options removed, count checked; use argc, argv
 * is NULL-terminated only when there is no rest); `--json`
 * anywhere among a command's own arguments sets ctx->json. For commands with
 * `.rest`, the arguments that are not qqmgr's (a remote command, gdb's
 * arguments) are in ctx->rest / ctx->nrest. It calls the app layer, prints
 * text or one JSON document, and returns the exit status (0, 1, 2, or a
 * remote status for ssh). Errors, usage errors too, are a qq_err printed by
 * qq_report(). It holds no logic of its own.
 */
#ifndef QQ_CMD_H
#define QQ_CMD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../app/config.h"
#include "../base/err.h"
#include "../base/sbuf.h"

typedef struct qq_ctx {
    const char *config_path;   /* -c FILE, or NULL for discovery */
    bool debug;                /* -d: print what is run */
    bool json;                 /* --json */
    config *cfg;               /* loaded on first qq_config() */
    const struct qq_command *cmd;
    const void *opts;          /* the command's parsed option struct (NULL without options) */
    char **rest;               /* arguments that are not qqmgr's (see qq_command.rest) */
    int nrest;
    bool usage_line;           /* a usage error: the usage line follows its message */
} qq_ctx;

typedef int (*qq_handler)(qq_ctx *ctx, int argc, char **argv);
/* Usage checks before the config is loaded: 0 to go on, -1 with err
 * (qq_usage_error), or the exit status of what it reported itself (the usage
 * line alone: `return qq_usage(ctx, false)`). */
typedef int (*qq_check)(qq_ctx *ctx, int argc, char **argv, qq_err *err);
/* One VM of a command on VMs (see qq_for_vms): prints its result, returns its
 * exit status; errors through qq_report. ctx->cfg is loaded. */
typedef int (*qq_vm_fn)(qq_ctx *ctx, const char *name);
/* Which VMs `--all` means: every VM of the config (file order), or the
 * running ones — those of the config, then running VMs of its state dir that
 * left the config (by name). */
enum qq_all { QQ_ALL_CONFIGURED, QQ_ALL_RUNNING };

typedef enum qq_opt_kind {
    QQ_OPT_FLAG = 1,   /* bool: given or not */
    QQ_OPT_SECONDS,    /* int: whole seconds, min..86400 (no fractions, nan, inf or sign) */
    QQ_OPT_INT,        /* long: a whole number >= min */
    QQ_OPT_STRING,     /* const char *: any text */
    QQ_OPT_ENUM,       /* const char *: one of values[] */
} qq_opt_kind;

typedef struct qq_opt {
    qq_opt_kind kind;
    char short_name;            /* 'f' for -f, or 0 */
    const char *long_name;      /* "force" for --force, or NULL */
    const char *arg;            /* the value's name in help: "S", "N", "STAGE" */
    size_t offset;              /* where the value goes in the command's option struct */
    const char *help;           /* one line for `CMD -h` */
    const char *const *values;  /* QQ_OPT_ENUM: the accepted values, NULL-terminated */
    const char *implicit;       /* the value is optional (only as --name=VALUE): this when absent */
    long min;                   /* QQ_OPT_SECONDS / QQ_OPT_INT: the least accepted value */
} qq_opt;

#define QQ_OPT_END { 0 }
#define QQ_FLAG(s, l, T, field, h) \
    { .kind = QQ_OPT_FLAG, .short_name = (s), .long_name = (l), .offset = offsetof(T, field), .help = (h) }
#define QQ_SECONDS(l, T, field, mn, h) \
    { .kind = QQ_OPT_SECONDS, .long_name = (l), .arg = "S", .offset = offsetof(T, field), .help = (h), .min = (mn) }
#define QQ_INT(s, l, a, T, field, mn, h) \
    { .kind = QQ_OPT_INT, .short_name = (s), .long_name = (l), .arg = (a), .offset = offsetof(T, field), \
      .help = (h), .min = (mn) }
#define QQ_STRING(s, l, a, T, field, h) \
    { .kind = QQ_OPT_STRING, .short_name = (s), .long_name = (l), .arg = (a), .offset = offsetof(T, field), .help = (h) }
#define QQ_ENUM(l, a, T, field, vals, h) \
    { .kind = QQ_OPT_ENUM, .long_name = (l), .arg = (a), .offset = offsetof(T, field), .help = (h), .values = (vals) }
/* --name[=N]: without a value, `implicit` */
#define QQ_INT_OPTIONAL(l, a, T, field, mn, impl, h) \
    { .kind = QQ_OPT_INT, .long_name = (l), .arg = (a), .offset = offsetof(T, field), .help = (h), .min = (mn), \
      .implicit = (impl) }
/* --name[=VALUE]: without a value, `implicit` */
#define QQ_ENUM_OPTIONAL(l, a, T, field, vals, impl, h) \
    { .kind = QQ_OPT_ENUM, .long_name = (l), .arg = (a), .offset = offsetof(T, field), .help = (h), \
      .values = (vals), .implicit = (impl) }

/* in a qq_command: the option struct type, its options, its defaults (or NULL) */
#define QQ_OPTIONS(T, list, defaults) .opts = (list), .opts_size = sizeof(T), .opts_defaults = (defaults)

enum qq_rest {
    QQ_REST_NONE = 0,
    QQ_REST_AFTER_FIRST,   /* after the first positional (ssh VM COMMAND...): nothing is ours; a leading `--` is dropped */
    QQ_REST_AFTER_DASHDASH /* after `--` (gdb VM -- GDB_ARGS); `--json` only before the first positional */
};

typedef struct qq_command {
    const char *name;          /* "stop", or two words: "img build" */
    qq_handler handler;
    const char *args;          /* positional arguments as usage shows them: "VM", "VM LOCAL REMOTE" */
    int min_args, max_args;    /* positional argument count; max -1 = any */
    const char *summary;       /* one line for the overview; NULL hides the row (aliases, internal) */
    const qq_opt *opts;        /* the options, ending with QQ_OPT_END; NULL = none */
    size_t opts_size;          /* size of the option struct the offsets point into */
    const void *opts_defaults; /* copied into the struct before parsing; NULL = all zero */
    const char *json;          /* what --json prints, for help; NULL: --json is accepted, prints as text */
    enum qq_rest rest;         /* arguments that are not qqmgr's */
    const char *rest_args;     /* how usage shows them: "[COMMAND...]", "[-- GDB_ARGS...]" */
    const char *alias_of;      /* hidden alias: help shows that command's name */
    qq_check check;            /* usage checks before the config is loaded, or NULL */
    bool needs_config;         /* load the config before the handler runs (ctx->cfg); a
                                * config error is reported and is the exit status */
    qq_vm_fn each;             /* a command on VMs: this for each (instead of handler) */
    enum qq_all each_all;      /* what its --all means */
    bool each_waits;           /* its work is waiting, not CPU: every VM at once */
} qq_command;

/* The global options (before the command), in overview order, ending with
 * { 0 }: main's getopt, the overview, the misplaced-option hint and the
 * completion all read this one table. */
typedef struct qq_global_opt {
    int val;                   /* getopt's value: the short letter, or a code of its own */
    bool has_short;            /* -val exists */
    const char *long_name;
    const char *arg;           /* the value's name, NULL for none */
    const char *help;          /* NULL: not shown (still accepted) */
} qq_global_opt;
extern const qq_global_opt qq_globals[];
/* The global option that word a spells (-c, -cFILE, --config=FILE...), or NULL. */
const qq_global_opt *qq_global_option(const char *a);

/* The command table (main.c), in overview order, NULL-terminated. */
extern const qq_command *const qq_commands[];

/* Parse a command's own arguments (argv[0] = its name) against its row:
 * options into opts (already holding the defaults), positionals compacted
 * into argv[1..*argc-1], `--json` into ctx->json, the rest into ctx->rest.
 * Returns -1 to go on, or the exit code (help printed: 0; usage error
 * reported: 2). */
int qq_parse(qq_ctx *ctx, const qq_command *c, int *argc, char **argv, void *opts);

/* The help of one command (stdout, 0) or its usage line (stderr, 2). */
int qq_usage(qq_ctx *ctx, bool help);
/* The overview of every visible command. */
void qq_overview(FILE *f);
/* Help on a group of two-word commands ("img"): its subcommands. */
void qq_group_usage(FILE *f, const char *group);
/* "VM [--timeout S] [-f|--force]": the synopsis after the command's name. */
void qq_synopsis(sbuf *out, const qq_command *c);

/* The config, loaded once; NULL with err filled on failure. */
config *qq_config(qq_ctx *ctx, qq_err *err);

/* Print err as "qqmgr: MSG" on stderr and return its exit code. */
int qq_report(const qq_err *err);

/* Where a child of qq_for_vms keeps its result instead of printing it:
 * qq_report() appends the error's message to errors (a JSON array, made on
 * the first), qq_print_json() keeps the document. NULL: print (the default). */
typedef struct qq_capture {
    json_t *errors;
    json_t *doc;
} qq_capture;
void qq_capture_to(qq_capture *cap);

/* Route the app and infra layers' reports (base/report.h) to stderr:
 * progress and notes only when stderr is a terminal. */
void qq_install_reporter(void);

/* Print a JSON document on stdout (indented, one trailing newline) and decref it. */
void qq_print_json(json_t *doc);

/* A listing: with --json the array as it is, else row() for each element;
 * decrefs list, returns 0. */
int qq_print_rows(const qq_ctx *ctx, json_t *list, void (*row)(json_t *item));

/* A usage error: err filled (code 2, "CMD: MSG"), the usage line to follow
 * when usage_line; returns -1 (for .check and handlers: `return qq_usage_error(…)`
 * in a check, `return qq_report(&err)` after it in a handler). */
int qq_usage_error(qq_ctx *ctx, qq_err *err, bool usage_line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Report a usage error made with qq_usage_error (message, then the usage
 * line when asked): returns 2. */
int qq_report_usage(qq_ctx *ctx, const qq_err *err);

/* Parse whole seconds (min..86400): the one seconds parser. 0 with *out set, or -1. */
int qq_parse_seconds(const char *text, long min, int *out);

/* Commands on VMs (the rows with .each): `CMD VM`, `CMD VM VM…` or `CMD --all`
 * (enum qq_all). Names are checked first: an unknown one is a usage error
 * before anything runs (a running VM of the state dir that left the config
 * counts as known for QQ_ALL_RUNNING commands). One VM: one(ctx, VM) in this
 * process, as always. Several: each in a child process of its own (its own
 * lock), all at once for a row with each_waits, else CPUs × 2 at a time. A
 * child returns its result as data — exit status, error message, --json
 * document — not as text to pick out of its stderr. Output in the order
 * given; an error message gets the VM's name in front unless it names the
 * VM; what a child wrote to stderr itself (QEMU's stderr tail, warnings
 * that name their VM) is passed on as it is; --json
 * prints an array of the single-VM documents (a failed VM: {name, error,
 * exit}). Returns 0 only when every VM's one() returned 0, else the largest
 * status (1 or 2). */
int qq_for_vms(qq_ctx *ctx, int argc, char **argv, bool all);

/* A disk usage for people: "812 KiB", "1.4 GiB" (binary units). */
void qq_format_bytes(char *buf, size_t len, unsigned long long bytes);

/* .check of `VM COMMAND [JSON_ARGS]` commands (qmp, ga): JSON_ARGS, when given, is one JSON
 * object, else a usage error naming why. */
int qq_check_json_args(qq_ctx *ctx, int argc, char **argv, qq_err *err);

/* Shell-quote one argument for a copy-pasteable command line (appends to out). */
void qq_shell_quote(sbuf *out, const char *arg);

/* init's image catalogue (data/images.toml, compiled in): {NAME: {title, image,
 * url, sha256, sha512, sums, source, user, qemu_args}}, a new reference. */
json_t *qq_image_catalogue(void);

/* What a restore did to the guest's clock (guestclock.h), on stderr: under
 * -d what was done; a warning with how far behind it is when it could not
 * be set. Nothing when r was not tried. */
struct guestclock_result;
void qq_clock_report(const qq_ctx *ctx, const char *vm, const struct guestclock_result *r);

/* "45s", "3m05s", "2h07m", "4d03h": a running VM's uptime in seconds */
void qq_fmt_uptime(char *buf, size_t len, long long s);
/* The forwards of forward_ports() as "127.0.0.1:2222->22, udp 0.0.0.0:53->53": each
 * joined by sep; with short_form the host address 127.0.0.1 is left out. */
void qq_fmt_ports(sbuf *out, json_t *ports, const char *sep, bool short_form);

/* The rows, one per command (each in its file). */
extern const qq_command qq_cmd_list, qq_cmd_show, qq_cmd_start, qq_cmd_stop, qq_cmd_status, qq_cmd_serial,
    qq_cmd_stdout, qq_cmd_stderr, qq_cmd_console, qq_cmd_ssh, qq_cmd_ssh_config, qq_cmd_ssh_keys_reset, qq_cmd_put, qq_cmd_get,
    qq_cmd_wait, qq_cmd_img_list, qq_cmd_img_build, qq_cmd_gdb, qq_cmd_qemu, qq_cmd_qmp, qq_cmd_monitor,
    qq_cmd_completion, qq_cmd_complete, qq_cmd_connect, qq_cmd_ga, qq_cmd_init, qq_cmd_trace, qq_cmd_events, qq_cmd_forward,
    qq_cmd_snapshot_save, qq_cmd_snapshot_restore, qq_cmd_snapshot_list, qq_cmd_snapshot_delete,
    qq_cmd_snapshot_export, qq_cmd_snapshot_import, qq_cmd_run;
extern const qq_command qq_cmd_rm, qq_cmd_prune, qq_cmd_img_rm;

#endif
