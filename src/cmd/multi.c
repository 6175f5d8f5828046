/* multi — one command on several VMs: `start a b`, `stop --all` (see cmd.h).
 *
 * A child's result travels as data: the child keeps what qq_report and
 * qq_print_json would have printed (qq_capture_to) and sends it as one JSON
 * object {"exit": N, "errors": [MSG…]|null, "doc": DOC|null} through its
 * result file (par.h); the parent prints from that, never from what the
 * child's stderr happens to say. What the child wrote to stderr itself
 * (QEMU's stderr tail, warnings that name their VM) is passed on as it is. */
#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../app/copies.h"
#include "../app/recorded.h"
#include "../app/vm.h"
#include "../base/cleanup.h"
#include "../base/clock.h"
#include "../base/report.h"
#include "../base/xalloc.h"
#include "../infra/par.h"
#include "cmd.h"

/* On a terminal, several VMs' progress lines (what report_progress says in
 * each child: "waiting for sshd... 3s") are shown as a block of lines below
 * the results printed so far, one line per VM still running, redrawn in
 * place. Children write "INDEX\tTEXT\n" into a pipe (non-blocking: a full
 * pipe drops a line, never stalls a child); a thread of the parent reads it
 * and draws; the parent's done() takes the block away, prints a VM's result
 * and draws it again below. */
typedef struct board {
    int rd, wr;
    size_t n;
    char **lines;         /* per VM: its last progress text (NULL: none yet) */
    bool *gone;           /* its result is printed: no line any more */
    int drawn;            /* lines of the block on the screen now */
    bool dirty;
    long long since;      /* nothing is drawn in a command's first BOARD_QUIET_MS */
    pthread_mutex_t mu;
    pthread_t thread;
} board;

#define BOARD_QUIET_MS 300
#define BOARD_REDRAW_MS 100

static void board_erase(board *b)
{
    if (b->drawn)
        fprintf(stderr, "\033[%dA\r\033[J", b->drawn);
    b->drawn = 0;
}

static void board_draw(board *b)
{
    if (clock_ms() - b->since < BOARD_QUIET_MS)
        return;
    struct winsize ws;
    int cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10 ? ws.ws_col : 80;
    fflush(stdout);
    board_erase(b);
    for (size_t i = 0; i < b->n; i++) {
        if (!b->lines[i] || b->gone[i])
            continue;
        /* bytes ≥ columns: a line cut to cols-1 bytes never wraps; cut on a character boundary */
        size_t len = strlen(b->lines[i]);
        if (len > (size_t)cols - 1) {
            len = (size_t)cols - 1;
            while (len && ((unsigned char)b->lines[i][len] & 0xC0) == 0x80)
                len--;
        }
        fprintf(stderr, "%.*s\033[K\n", (int)len, b->lines[i]);
        b->drawn++;
    }
    fflush(stderr);
    b->dirty = false;
}

static void *board_thread(void *arg)
{
    board *b = arg;
    char buf[8192];
    size_t have = 0;
    long long last = 0;
    for (;;) {
        struct pollfd p = { .fd = b->rd, .events = POLLIN };
        int r = poll(&p, 1, BOARD_REDRAW_MS);
        bool eof = false;
        if (r > 0) {
            ssize_t k = read(b->rd, buf + have, sizeof buf - 1 - have);
            if (k <= 0)
                eof = true;
            else
                have += (size_t)k;
        }
        pthread_mutex_lock(&b->mu);
        char *line = buf, *nl;
        while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
            *nl = '\0';
            char *end;
            unsigned long i = strtoul(line, &end, 10);
            if (*end == '\t' && i < b->n) {
                free(b->lines[i]);
                b->lines[i] = xstrdup(end + 1);
                b->dirty = true;
            }
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
        if (have == sizeof buf - 1)
            have = 0;   /* a line too long: dropped */
        if (b->dirty && clock_ms() - last >= BOARD_REDRAW_MS) {
            board_draw(b);
            last = clock_ms();
        }
        pthread_mutex_unlock(&b->mu);
        if (eof)
            return NULL;
    }
}

/* The child's reporter: progress into the board's pipe, the rest to its stderr. */
static int board_fd = -1;
static size_t board_index;

static void board_sink(void *ud, report_kind kind, const char *text, size_t len)
{
    (void)ud;
    if ((kind == REPORT_PROGRESS || kind == REPORT_PROGRESS_END) && text) {
        char line[512];
        int k = snprintf(line, sizeof line, "%zu\t%s", board_index, text);
        if (k >= (int)sizeof line)
            k = (int)sizeof line - 1;
        for (int j = 0; j < k; j++)
            if (line[j] == '\n' || line[j] == '\r')
                line[j] = ' ';
        line[k] = '\n';
        ssize_t w = write(board_fd, line, (size_t)k + 1);
        (void)w;
    } else if (kind == REPORT_OUTPUT) {
        fwrite(text, 1, len, stderr);
    } else if (kind != REPORT_PROGRESS && kind != REPORT_PROGRESS_END) {
        fprintf(stderr, "%s\n", text);
    }
}

typedef struct fanout {
    qq_ctx *ctx;
    board *board;     /* NULL: no progress shown */
    char **names;
    qq_vm_fn one;
    json_t *docs;     /* --json: the array being built */
    int last_lines;   /* lines of the last VM's output printed (0: none yet) */
    int worst;        /* the largest exit status so far */
} fanout;

static int child(size_t i, void *arg, sbuf *result)
{
    fanout *f = arg;
    if (f->board) {
        board_fd = f->board->wr;
        board_index = i;
        report_sink s = { .emit = board_sink, .watched = true };
        report_set_sink(&s);
        report_progress("qqmgr: %s: %s...", f->names[i], f->ctx->cmd->name);
    }
    qq_capture cap = { 0 };
    qq_capture_to(&cap);
    int rc = f->one(f->ctx, f->names[i]);
    qq_capture_to(NULL);
    json_t *r = json_object();
    json_object_set_new(r, "exit", json_integer(rc));
    json_object_set_new(r, "errors", cap.errors ? cap.errors : json_null());
    json_object_set_new(r, "doc", cap.doc ? cap.doc : json_null());
    char *text = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text)
        sbuf_adds(result, text);
    free(text);
    json_decref(r);
    return rc;
}

/* Whether msg names VM `name` as a word of its own ("a: …", "VM a is …"). */
static bool names_vm(const char *msg, size_t len, const char *name, size_t nl)
{
    for (const char *p = msg; p + nl <= msg + len; p++) {
        if (strncmp(p, name, nl) != 0)
            continue;
        bool before = p == msg || !(isalnum((unsigned char)p[-1]) || strchr("._-", p[-1]));
        char c = p + nl < msg + len ? p[nl] : ' ';
        bool after = !(isalnum((unsigned char)c) || (c && strchr("_-", c)) || (c == '.' && p + nl + 1 < msg + len &&
                                                                              isalnum((unsigned char)p[nl + 1])));
        if (before && after)
            return true;
    }
    return false;
}

/* "qqmgr: MSG" about VM name: "qqmgr: NAME: MSG" unless MSG names it already. */
static void say(const char *name, const char *msg, size_t len)
{
    if (names_vm(msg, len, name, strlen(name)))
        fprintf(stderr, "qqmgr: %.*s\n", (int)len, msg);
    else
        fprintf(stderr, "qqmgr: %s: %.*s\n", name, (int)len, msg);
}


static void report_of(fanout *f, size_t i, const par_result *r);

static void done(size_t i, const par_result *r, void *arg)
{
    fanout *f = arg;
    if (f->board) {
        pthread_mutex_lock(&f->board->mu);
        board_erase(f->board);
        f->board->gone[i] = true;
    }
    report_of(f, i, r);
    if (f->board) {
        fflush(stdout);
        board_draw(f->board);
        pthread_mutex_unlock(&f->board->mu);
    }
}

static void report_of(fanout *f, size_t i, const par_result *r)
{
    const char *name = f->names[i];
    _cleanup_json_ json_t *res = json_loads(r->data, 0, NULL);
    /* no result: the child died first (a signal); its status says how */
    int status = res ? (int)json_integer_value(json_object_get(res, "exit")) : r->status;
    if (status == 0 && r->status != 0)
        status = r->status;
    json_t *errors = json_object_get(res, "errors");
    const char *error = json_string_value(json_array_get(errors, json_array_size(errors) - 1));
    json_t *doc = json_object_get(res, "doc");
    if (status > f->worst)
        f->worst = status;
    if (f->docs) {
        if (status == 0 && json_is_object(doc))
            json_array_append(f->docs, doc);
        else
            json_array_append_new(f->docs,
                                  json_pack("{s:s, s:s?, s:i}", "name", name, "error", error, "exit", status));
    } else if (r->out_len) {
        /* a block of several lines (status) is set apart from its neighbours by a blank line;
         * one-line results (start, stop, wait) follow each other */
        int lines = 0;
        for (size_t k = 0; k < r->out_len; k++)
            lines += r->out[k] == '\n';
        if (f->last_lines && (lines > 1 || f->last_lines > 1))
            putchar('\n');
        f->last_lines = lines ? lines : 1;
        fwrite(r->out, 1, r->out_len, stdout);
        fflush(stdout);
    }
    /* what the child wrote itself, as it is: QEMU's words stay QEMU's */
    fwrite(r->err, 1, r->err_len, stderr);
    if (r->err_len && r->err[r->err_len - 1] != '\n')
        fputc('\n', stderr);
    size_t k;
    json_t *e;
    json_array_foreach(errors, k, e)
        say(name, json_string_value(e), strlen(json_string_value(e) ?: ""));
    if (!res)
        say(name, "ended without a result", strlen("ended without a result"));
}

int qq_for_vms(qq_ctx *ctx, int argc, char **argv, bool all)
{
    const qq_command *cmd = ctx->cmd;
    config *c = ctx->cfg;
    if (!all && argc == 2)
        return cmd->each(ctx, argv[1]);
    _cleanup_strv_ char **names = NULL;
    size_t n = 0;
    if (all && argc > 1) {
        /* VM... --all (stop, status): each VM, then its throwaway copies VM#N */
        qq_err err = { 0 };
        for (int i = 1; i < argc; i++)
            if (recorded_check_vm(c, argv[i], &err) < 0)
                return qq_report(&err);
        for (int i = 1; i < argc; i++) {
            strv_push(&names, &n, xstrdup(argv[i]));
            if (config_copy_parse(argv[i], NULL, NULL, NULL) == 1)
                continue;
            size_t nc = 0;
            _cleanup_strv_ char **copies = copies_of(c, argv[i], &nc);
            for (size_t k = 0; k < nc; k++)
                strv_push(&names, &n, xstrdup(copies[k]));
        }
    } else if (all) {
        for (size_t i = 0; i < config_vm_count(c); i++) {
            const char *vm = config_vm_name(c, i);
            if (cmd->each_all == QQ_ALL_RUNNING) {
                _cleanup_free_ char *dir = config_vm_dir(c, vm);
                vm_state st;
                vm_probe(dir, false, &st);
                if (!st.running)
                    continue;
            }
            strv_push(&names, &n, xstrdup(vm));
        }
        if (cmd->each_all == QQ_ALL_RUNNING) {   /* then every VM's throwaway copies */
            for (size_t i = 0; i < config_vm_count(c); i++) {
                size_t nc = 0;
                _cleanup_strv_ char **copies = copies_of(c, config_vm_name(c, i), &nc);
                for (size_t k = 0; k < nc; k++)
                    strv_push(&names, &n, xstrdup(copies[k]));
            }
        }
        if (cmd->each_all == QQ_ALL_RUNNING) {   /* then those that left the config running */
            size_t nd = 0;
            _cleanup_strv_ char **departed = recorded_departed_all(c, &nd);
            for (size_t i = 0; i < nd; i++)
                strv_push(&names, &n, xstrdup(departed[i]));
        }
    } else {
        /* a typo is a usage error before anything starts or stops; a command
         * on running VMs reaches one that left the config by name */
        qq_err err = { 0 };
        for (int i = 1; i < argc; i++)
            if ((cmd->each_all == QQ_ALL_RUNNING ? recorded_check_vm(c, argv[i], &err)
                                                 : config_check_vm(c, argv[i], &err)) < 0)
                return qq_report(&err);
        for (int i = 1; i < argc; i++)
            strv_push(&names, &n, xstrdup(argv[i]));
    }
    if (n == 0 && !ctx->json)
        fprintf(stderr, "qqmgr: %s --all: no %sVM\n", cmd->name, cmd->each_all == QQ_ALL_RUNNING ? "running " : "");
    fanout f = { .ctx = ctx, .names = names, .one = cmd->each, .docs = ctx->json ? json_array() : NULL };
    board b = { .rd = -1, .wr = -1, .n = n, .since = clock_ms(), .mu = PTHREAD_MUTEX_INITIALIZER };
    int pfd[2];
    if (report_watched() && !ctx->json && n > 1 && pipe2(pfd, O_CLOEXEC) == 0) {
        b.rd = pfd[0];
        b.wr = pfd[1];
        fcntl(b.wr, F_SETFL, O_NONBLOCK);
        b.lines = xcalloc(n, sizeof *b.lines);
        b.gone = xcalloc(n, sizeof *b.gone);
        /* the drawing thread never takes SIGINT/TERM/HUP: they must wake par_run's waitpid */
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        int made = pthread_create(&b.thread, NULL, board_thread, &b);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (made == 0) {
            f.board = &b;
        } else {
            close(b.rd);
            close(b.wr);
        }
    }
    qq_err err = { 0 };
    int rc = par_run(n, cmd->each_waits ? n : par_default_parallel(), child, done, &f, &err);
    if (f.board) {
        close(b.wr);   /* the children are gone: the thread reads to the end */
        pthread_join(b.thread, NULL);
        close(b.rd);
        board_erase(&b);
        fflush(stderr);
    }
    for (size_t i = 0; b.lines && i < n; i++)
        free(b.lines[i]);
    free(b.lines);
    free(b.gone);
    if (f.docs)
        qq_print_json(f.docs);
    if (rc < 0)
        return qq_report(&err);
    return f.worst > QQ_EXIT_USAGE ? QQ_EXIT_FAIL : f.worst;
}
