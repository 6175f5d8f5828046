/* cmd — what every command file shares: the context main() hands in, and the
 * small helpers that turn results into output and exit codes.
 *
 * A command is `int cmd_NAME(qq_ctx *ctx, int argc, char **argv)`: argv[0] is
 * the command's name, the rest its own arguments (global options already
 * removed; `--json` anywhere after the command sets ctx->json and is removed).
 * It parses its options (getopt_long), calls the app layer, prints text or
 * one JSON document, and returns the exit status (0, 1, 2, or a remote
 * status for ssh). It holds no logic of its own.
 */
#ifndef QQ_CMD_H
#define QQ_CMD_H

#include <jansson.h>
#include <stdbool.h>

#include "../app/config.h"
#include "../base/err.h"

typedef struct qq_ctx {
    const char *config_path;   /* -c FILE, or NULL for discovery */
    bool debug;                /* -d: print what is run */
    bool json;                 /* --json */
    config *cfg;               /* loaded on first qq_config() */
    const struct qq_command *cmd;
} qq_ctx;

typedef int (*qq_handler)(qq_ctx *ctx, int argc, char **argv);

typedef struct qq_command {
    const char *name;
    qq_handler handler;
    int min_args, max_args;    /* positional arguments after the name; -1 = any */
    const char *usage;         /* "VM [--timeout S] [--force]" */
    const char *summary;       /* one line for the overview */
    const char *options;       /* option lines for `CMD -h`, may be NULL */
} qq_command;

/* The config, loaded once; NULL with err filled on failure. */
config *qq_config(qq_ctx *ctx, qq_err *err);

/* Print err as "qqmgr: MSG" on stderr and return its exit code. */
int qq_report(const qq_err *err);

/* Print a JSON document on stdout (indented, one trailing newline) and decref it. */
void qq_print_json(json_t *doc);

/* Print the usage of ctx->cmd to stderr and return 2 (or to stdout and 0 when help). */
int qq_usage(qq_ctx *ctx, bool help);

/* Standard getopt_long loop helper for commands whose only options are -h and
 * --json: returns -1 to go on (optind set), or an exit code to return. */
int qq_parse_simple(qq_ctx *ctx, int argc, char **argv);

/* The usual start of a command whose only options are -h and --json: parse
 * them, check the argument count, load the config into *c. Returns -1 to go
 * on (optind at the first positional), or the exit code to return (errors
 * already reported). */
int qq_begin(qq_ctx *ctx, int argc, char **argv, config **c, qq_err *err);

/* Parse a --timeout value: whole seconds from min to 86400. Returns -1 with
 * *out set, or prints one line and returns QQ_EXIT_USAGE. */
int qq_opt_seconds(qq_ctx *ctx, const char *text, int min, int *out);

/* Positional-argument count check against the command table row; returns -1 to go on. */
int qq_check_args(qq_ctx *ctx, int npos);

/* Shell-quote one argument for a copy-pasteable command line (appends to out). */
#include "../base/sbuf.h"
void qq_shell_quote(sbuf *out, const char *arg);

int cmd_list(qq_ctx *ctx, int argc, char **argv);
int cmd_show(qq_ctx *ctx, int argc, char **argv);
int cmd_img(qq_ctx *ctx, int argc, char **argv);          /* img list | img build */
int cmd_img_build(qq_ctx *ctx, int argc, char **argv);
int cmd_start(qq_ctx *ctx, int argc, char **argv);
int cmd_stop(qq_ctx *ctx, int argc, char **argv);
int cmd_status(qq_ctx *ctx, int argc, char **argv);
int cmd_serial(qq_ctx *ctx, int argc, char **argv);
int cmd_stdout(qq_ctx *ctx, int argc, char **argv);
int cmd_stderr(qq_ctx *ctx, int argc, char **argv);
int cmd_console(qq_ctx *ctx, int argc, char **argv);
int cmd_gdb(qq_ctx *ctx, int argc, char **argv);
int cmd_qmp(qq_ctx *ctx, int argc, char **argv);
int cmd_monitor(qq_ctx *ctx, int argc, char **argv);
int cmd_ssh(qq_ctx *ctx, int argc, char **argv);
int cmd_ssh_config(qq_ctx *ctx, int argc, char **argv);
int cmd_put(qq_ctx *ctx, int argc, char **argv);
int cmd_get(qq_ctx *ctx, int argc, char **argv);
int cmd_wait(qq_ctx *ctx, int argc, char **argv);

#endif
