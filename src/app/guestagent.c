/* guestagent — see guestagent.h. */
#include "guestagent.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/clock.h"
#include "../base/sbuf.h"
#include "../infra/net.h"
#include "../infra/sig.h"
#include "layout.h"
#include "running.h"

char *guestagent_socket(const config *c, const char *vm)
{
    vm_spec s;
    qq_err e = { 0 };
    if (config_vm(c, vm, 0, &s, &e) < 0)
        return NULL;
    bool on = s.guest_agent;
    vm_spec_free(&s);
    if (!on)
        return NULL;
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    _cleanup_free_ char *sd = layout_socket_dir(dir, false, NULL);   /* where QEMU was told */
    return layout_path(sd ? sd : dir, LAYOUT_QGA_SOCKET);
}

static int send_all(int fd, const char *text, qq_err *err)
{
    for (size_t off = 0, n = strlen(text); off < n;) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "the guest agent's socket: %s", strerror(errno));
        off += (size_t)w;
    }
    return 0;
}

/* One line of the agent's (without its newline) into line; after_ff: skip
 * everything up to a 0xFF byte first. */
static int read_line(int fd, bool after_ff, long long deadline_ms, sbuf *line, qq_err *err)
{
    bool seen = !after_ff;
    for (;;) {
        if (sig_caught())
            return qq_fail(err, QQ_EXIT_FAIL, "interrupted");
        long long left = deadline_ms - clock_ms();
        if (left <= 0)
            return qq_fail(err, QQ_EXIT_FAIL, "the guest agent did not answer (is qemu-ga running in the guest?)");
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, (int)(left > 100 ? 100 : left));   /* a signal is seen within 0.1 s */
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return qq_fail(err, QQ_EXIT_FAIL, "the guest agent's socket closed");
        if (!seen) {
            seen = (unsigned char)c == 0xff;
            continue;
        }
        if (c == '\n')
            return 0;
        if (line->len >= 1 << 20)
            return qq_fail(err, QQ_EXIT_FAIL, "the guest agent's answer is longer than 1 MiB");
        sbuf_addc(line, c);
    }
}

static json_t *request(int fd, const char *command, json_t *args, bool sync, long long deadline_ms, qq_err *err)
{
    _cleanup_json_ json_t *req = json_pack("{s:s}", "execute", command);
    if (args)
        json_object_set(req, "arguments", args);
    _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
    _cleanup_sbuf_ sbuf t = SBUF_INIT;
    sbuf_addf(&t, "%s\n", text);
    if (send_all(fd, sbuf_str(&t), err) < 0)
        return NULL;
    _cleanup_sbuf_ sbuf line = SBUF_INIT;
    if (read_line(fd, sync, deadline_ms, &line, err) < 0)
        return NULL;
    _cleanup_json_ json_t *reply = json_loads(sbuf_str(&line), 0, NULL);
    json_t *ret = json_object_get(reply, "return");
    if (ret)
        return json_incref(ret);
    const char *desc = json_string_value(json_object_get(json_object_get(reply, "error"), "desc"));
    qq_fail(err, QQ_EXIT_FAIL, "the guest agent's %s failed: %.200s", command,
            desc ? desc : reply ? "no return value" : "an answer that is not JSON");
    return NULL;
}

int guestagent_open(const char *sock, long long deadline_ms, qq_err *err)
{
    long long left = deadline_ms - clock_ms();
    int fd = net_unix_connect_ms(sock, left > 0 ? (int)left : 0, err);
    if (fd < 0)
        return -1;
    unsigned int id = 0;
    if (getrandom(&id, sizeof id, 0) != sizeof id)
        id = (unsigned int)clock_ms();
    id &= 0x7fffffff;
    _cleanup_json_ json_t *args = json_pack("{s:I}", "id", (json_int_t)id);
    /* an answer to an earlier client's sync may come first: read until ours */
    for (int tries = 0; tries < 4; tries++) {
        _cleanup_json_ json_t *r = request(fd, "guest-sync-delimited", args, true, deadline_ms, err);
        if (!r)
            break;
        if (json_integer_value(r) == (json_int_t)id)
            return fd;
    }
    if (!err->msg[0])
        qq_fail(err, QQ_EXIT_FAIL, "the guest agent did not answer our guest-sync-delimited");
    close(fd);
    return -1;
}

json_t *guestagent_execute(int fd, const char *command, json_t *args, long long deadline_ms, qq_err *err)
{
    return request(fd, command, args, false, deadline_ms, err);
}

json_t *guestagent_run(const config *c, const char *vm, const char *command, json_t *args, int timeout_ms,
                       qq_err *err)
{
    long long deadline = clock_ms() + timeout_ms;
    if (running_require(c, vm, NULL, NULL, err) < 0)
        return NULL;
    _cleanup_free_ char *sock = guestagent_socket(c, vm);
    if (!sock) {
        _cleanup_free_ char *base = config_base_vm(vm);
        qq_fail(err, QQ_EXIT_FAIL, "%s has no guest agent channel: set guest_agent = true in [vm.%s] (the guest "
                "must run qemu-ga) and restart it", vm, base);
        return NULL;
    }
    if (access(sock, F_OK) != 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s runs without the guest agent's channel (%s): it was started before "
                "guest_agent = true was set; restart it", vm, sock);
        return NULL;
    }
    int fd = guestagent_open(sock, deadline, err);
    if (fd < 0) {
        qq_err_prefix(err, "%s", vm);
        return NULL;
    }
    json_t *r = guestagent_execute(fd, command, args, deadline, err);
    close(fd);
    if (!r)
        qq_err_prefix(err, "%s", vm);
    return r;
}
