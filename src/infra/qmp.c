/* qmp — see qmp.h. */
#include "qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "net.h"

struct qmp {
    int fd;
    char *path;
    sbuf in;            /* bytes received: in.buf[off..len) not yet parsed */
    size_t off;         /* start of the first unparsed line */
    size_t scanned;     /* in.buf[off..scanned) holds no newline */
    json_t *ring[QMP_MAX_EVENTS];   /* kept events, oldest at ring[head] */
    size_t head, nev;
    unsigned long dropped;          /* events dropped because the queue was full */
    json_t *greeting;
    unsigned long next_id;
    bool timed_out;     /* the last read_message failed by timeout */
};

/* Keep an event (stolen); a full queue drops its oldest. */
static void keep_event(qmp *q, json_t *ev)
{
    if (q->nev == QMP_MAX_EVENTS) {
        json_decref(q->ring[q->head]);
        q->ring[q->head] = NULL;
        q->head = (q->head + 1) % QMP_MAX_EVENTS;
        q->nev--;
        q->dropped++;
    }
    q->ring[(q->head + q->nev) % QMP_MAX_EVENTS] = ev;
    q->nev++;
}

static void fail_malformed(qmp *q, qq_err *err, const char *why)
{
    qq_fail(err, QQ_EXIT_FAIL, "QMP %s: malformed message from QEMU%s", q->path, why);
}

/* More than max values (commas, colons, brackets outside strings) in s? A
 * message of 16 MiB of tiny values would cost jansson tens of times its size:
 * such a message is malformed, so parsing stays within a few times the cap. */
static bool too_many_values(const char *s, size_t len, size_t max)
{
    size_t n = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if ((c == ',' || c == ':' || c == '[' || c == '{') && ++n > max) {
            return true;
        }
    }
    return false;
}

/* Take one complete line (one JSON message) out of q->in, if there is one.
 * Each byte is looked at once, so a flood of blank lines or one endless line
 * costs linear time; a line longer than QMP_MAX_MESSAGE is malformed. */
static json_t *take_message(qmp *q, qq_err *err, bool *bad)
{
    *bad = false;
    for (;;) {
        char *start = q->in.buf + q->off;
        char *nl = q->in.len > q->scanned ? memchr(q->in.buf + q->scanned, '\n', q->in.len - q->scanned) : NULL;
        if (!nl) {
            q->scanned = q->in.len;
            if (q->in.len - q->off > QMP_MAX_MESSAGE) {
                *bad = true;
                fail_malformed(q, err, " (longer than 16 MiB)");
                return NULL;
            }
            if (q->off > 0) {   /* keep only the unfinished line */
                memmove(q->in.buf, start, q->in.len - q->off);
                q->in.len -= q->off;
                q->scanned -= q->off;
                q->off = 0;
                q->in.buf[q->in.len] = '\0';
            }
            return NULL;
        }
        size_t linelen = (size_t)(nl - start);
        q->off += linelen + 1;
        q->scanned = q->off;
        if (linelen > QMP_MAX_MESSAGE) {
            *bad = true;
            fail_malformed(q, err, " (longer than 16 MiB)");
            return NULL;
        }
        size_t sp = 0;
        while (sp < linelen && (start[sp] == ' ' || start[sp] == '\t' || start[sp] == '\r'))
            sp++;
        if (sp == linelen)
            continue;   /* a blank line */
        if (too_many_values(start, linelen, QMP_MAX_VALUES)) {
            *bad = true;
            fail_malformed(q, err, " (too many values)");
            return NULL;
        }
        json_error_t je;
        json_t *msg = json_loadb(start, linelen, 0, &je);
        if (!msg || !json_is_object(msg)) {
            json_decref(msg);
            *bad = true;
            fail_malformed(q, err, "");
            return NULL;
        }
        return msg;
    }
}

/* Read the next message, waiting until deadline_ms (monotonic). NULL with err
 * on timeout, EOF or a malformed message. Data keeps arriving does not extend
 * the deadline: once it has passed (and the socket was looked at once), the
 * call fails. what: for the timeout message. */
static json_t *read_message(qmp *q, long long deadline_ms, const char *what, qq_err *err)
{
    q->timed_out = false;
    bool looked = false;
    for (;;) {
        bool bad;
        json_t *msg = take_message(q, err, &bad);
        if (msg || bad)
            return msg;
        long long left = deadline_ms - clock_ms();
        if (left < 0)
            left = 0;
        if (left == 0 && looked) {
            q->timed_out = true;
            qq_fail(err, QQ_EXIT_FAIL, "QMP %s: %s", q->path, what);
            return NULL;
        }
        looked = true;
        struct pollfd p = { .fd = q->fd, .events = POLLIN };
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            qq_fail(err, QQ_EXIT_FAIL, "QMP %s: poll: %s", q->path, strerror(errno));
            return NULL;
        }
        if (r == 0) {
            q->timed_out = true;
            qq_fail(err, QQ_EXIT_FAIL, "QMP %s: %s", q->path, what);
            return NULL;
        }
        char buf[65536];
        ssize_t n = recv(q->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0 && errno != ECONNRESET) {
            qq_fail(err, QQ_EXIT_FAIL, "QMP %s: read: %s", q->path, strerror(errno));
            return NULL;
        }
        if (n <= 0) {
            qq_fail(err, QQ_EXIT_FAIL, "QMP %s: QEMU closed the connection", q->path);
            return NULL;
        }
        sbuf_add(&q->in, buf, (size_t)n);
    }
}

static int send_all(qmp *q, const char *s, size_t len, qq_err *err)
{
    while (len > 0) {
        ssize_t n = send(q->fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            return qq_fail(err, QQ_EXIT_FAIL, "QMP %s: QEMU closed the connection", q->path);
        if (n < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "QMP %s: write: %s", q->path, strerror(errno));
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

json_t *qmp_execute_reply(qmp *q, const char *command, json_t *args, int timeout_ms, qq_err *err)
{
    long long deadline = clock_ms() + timeout_ms;
    char id[32];
    snprintf(id, sizeof id, "qq-%lu", ++q->next_id);
    _cleanup_json_ json_t *req = json_pack("{s:s, s:s}", "execute", command, "id", id);
    if (args)
        json_object_set(req, "arguments", args);
    _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        abort();
    sbuf line = SBUF_INIT;
    sbuf_adds(&line, text);
    sbuf_adds(&line, "\n");
    int r = send_all(q, line.buf, line.len, err);
    sbuf_free(&line);
    if (r < 0)
        return NULL;
    char what[160];
    snprintf(what, sizeof what, "no reply to %s within %.1f s", command, timeout_ms / 1000.0);
    for (;;) {
        json_t *msg = read_message(q, deadline, what, err);
        if (!msg)
            return NULL;
        const char *mid = json_string_value(json_object_get(msg, "id"));
        if (json_object_get(msg, "event"))
            keep_event(q, msg);
        else if (mid && strcmp(mid, id) == 0)
            return msg;
        else
            json_decref(msg);   /* a late reply to an earlier, timed-out request */
        if (clock_ms() >= deadline) {   /* a flood of events cannot extend the call */
            q->timed_out = true;
            qq_fail(err, QQ_EXIT_FAIL, "QMP %s: %s", q->path, what);
            return NULL;
        }
    }
}

json_t *qmp_execute(qmp *q, const char *command, json_t *args, int timeout_ms, qq_err *err)
{
    _cleanup_json_ json_t *reply = qmp_execute_reply(q, command, args, timeout_ms, err);
    if (!reply)
        return NULL;
    const char *cls, *desc;
    json_t *ret = qmp_reply_return(reply, &cls, &desc);
    if (!ret)
        qq_fail(err, QQ_EXIT_FAIL, "QMP %s: %s: %s", command, cls ? cls : "error",
                desc ? desc : "(no description)");
    return ret;
}

json_t *qmp_reply_return(json_t *reply, const char **cls, const char **desc)
{
    json_t *ret = json_object_get(reply, "return");
    if (ret)
        return json_incref(ret);
    json_t *e = json_object_get(reply, "error");
    if (cls)
        *cls = json_string_value(json_object_get(e, "class"));
    if (desc)
        *desc = json_string_value(json_object_get(e, "desc"));
    return NULL;
}

qmp *qmp_open(const char *socket_path, int timeout_ms, qq_err *err)
{
    long long deadline = clock_ms() + timeout_ms;
    int fd = net_unix_connect_ms(socket_path, timeout_ms, err);
    if (fd < 0) {
        qq_err_prefix(err, "QMP");
        return NULL;
    }
    qmp *q = calloc(1, sizeof *q);
    if (!q)
        abort();
    q->fd = fd;
    q->path = strdup(socket_path);
    char what[160];
    snprintf(what, sizeof what, "no greeting within %.1f s (another client connected, or QEMU wedged?)",
             timeout_ms / 1000.0);
    q->greeting = read_message(q, deadline, what, err);
    if (!q->greeting) {
        qmp_close(q);
        return NULL;
    }
    if (!json_object_get(q->greeting, "QMP")) {
        qq_fail(err, QQ_EXIT_FAIL, "QMP %s: not a QMP greeting", socket_path);
        qmp_close(q);
        return NULL;
    }
    long long left = deadline - clock_ms();
    json_t *r = qmp_execute(q, "qmp_capabilities", NULL, left > 0 ? (int)left : 0, err);
    if (!r) {
        qmp_close(q);
        return NULL;
    }
    json_decref(r);
    return q;
}

void qmp_close(qmp *q)
{
    if (!q)
        return;
    if (q->fd >= 0)
        close(q->fd);
    sbuf_free(&q->in);
    for (size_t i = 0; i < q->nev; i++)
        json_decref(q->ring[(q->head + i) % QMP_MAX_EVENTS]);
    json_decref(q->greeting);
    free(q->path);
    free(q);
}

char *qmp_hmp(qmp *q, const char *command_line, int timeout_ms, qq_err *err)
{
    _cleanup_json_ json_t *args = json_pack("{s:s}", "command-line", command_line);
    _cleanup_json_ json_t *r = qmp_execute(q, "human-monitor-command", args, timeout_ms, err);
    if (!r)
        return NULL;
    const char *s = json_string_value(r);
    char *out = strdup(s ? s : "");
    if (!out)
        abort();
    return out;
}

int qmp_wait_event(qmp *q, int timeout_ms, qq_err *err)
{
    if (q->nev > 0)
        return 1;
    long long deadline = clock_ms() + timeout_ms;
    for (;;) {
        json_t *msg = read_message(q, deadline, "no event", err);
        if (!msg)
            return q->timed_out ? 0 : -1;
        if (json_object_get(msg, "event"))
            keep_event(q, msg);
        else
            json_decref(msg);
        if (q->nev > 0) {
            /* keep the other events already received too, without reading more */
            bool bad;
            while ((msg = take_message(q, err, &bad)) != NULL) {
                if (json_object_get(msg, "event"))
                    keep_event(q, msg);
                else
                    json_decref(msg);
            }
            return 1;   /* a malformed rest shows on the next call */
        }
        if (clock_ms() >= deadline)
            return 0;
    }
}

json_t *qmp_take_events(qmp *q)
{
    json_t *ev = json_array();
    for (size_t i = 0; i < q->nev; i++) {
        size_t k = (q->head + i) % QMP_MAX_EVENTS;
        json_array_append_new(ev, q->ring[k]);
        q->ring[k] = NULL;
    }
    q->head = q->nev = 0;
    return ev;
}

bool qmp_regs_at_reset(const char *r)
{
    return r && (strstr(r, "EIP=0000fff0") || strstr(r, "RIP=000000000000fff0")) && strstr(r, "CS =f000 ffff0000");
}

unsigned long qmp_events_dropped(const qmp *q) { return q->dropped; }
const json_t *qmp_greeting(const qmp *q) { return q->greeting; }
int qmp_fd(const qmp *q) { return q->fd; }
