/* net — see net.h. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "fs.h"
#include "lockfile.h"

int net_unix_connect_ms(const char *path, int timeout_ms, qq_err *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    _cleanup_close_ int dirfd = -1;
    if (strlen(path) < sizeof sa.sun_path) {
        memcpy(sa.sun_path, path, strlen(path) + 1);
    } else {
        /* too long for sun_path: go through an O_PATH descriptor of the directory */
        _cleanup_free_ char *d1 = strdup(path), *d2 = strdup(path);
        if (!d1 || !d2)
            abort();
        const char *dir = dirname(d1), *base = basename(d2);
        dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
            return qq_fail_errno(err, "connect %s", path);
        int n = snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dirfd, base);
        if (n < 0 || (size_t)n >= sizeof sa.sun_path) {
            errno = ENAMETOOLONG;
            return qq_fail(err, QQ_EXIT_FAIL, "connect %s: socket name too long", path);
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (timeout_ms >= 0 ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "socket: %s", strerror(errno));
    long long t0 = clock_ms();
    int r;
    for (;;) {
        r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
        if (r == 0)
            break;
        if (errno == EINTR)
            continue;
        /* a listener whose backlog is full (it never accepts): retry until the deadline */
        if (errno == EAGAIN && timeout_ms >= 0) {
            if (clock_ms() - t0 < timeout_ms) {
                poll(NULL, 0, 10);
                continue;
            }
            close(fd);
            qq_fail(err, QQ_EXIT_FAIL, "connect %s: not accepted within %.1f s", path, timeout_ms / 1000.0);
            errno = ETIMEDOUT;
            return -1;
        }
        break;
    }
    if (r == 0 && timeout_ms >= 0)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (r < 0) {
        int e = errno;
        close(fd);
        qq_fail(err, QQ_EXIT_FAIL, "connect %s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    return fd;
}

bool net_tcp_port_free(int port)
{
    if (port <= 0 || port > 65535)
        return false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_ANY) };
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

int net_pick_port(qq_err *err)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "socket: %s", strerror(errno));
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof sa;
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
            int e = errno;
            close(fd);
            return qq_fail(err, QQ_EXIT_FAIL, "choosing a free port: %s", strerror(e));
        }
        close(fd);
        int port = ntohs(sa.sin_port);
        /* QEMU binds every address: the port must be free there too */
        if (net_tcp_port_free(port))
            return port;
    }
    return qq_fail(err, QQ_EXIT_FAIL, "no free TCP port found");
}

/* ------------------------------------------------------------ reserved ports */

/* The owner's start time in clock ticks (field 22 of /proc/PID/stat); 0 when
 * the process is gone (or a zombie). */
static unsigned long long proc_start_ticks(long pid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *s = strrchr(buf, ')');
    if (!s || s[1] != ' ' || s[2] == 'Z' || s[2] == 'X')
        return 0;
    int field = 2;
    for (char *tok = strtok(s + 1, " "); tok; tok = strtok(NULL, " "))
        if (++field == 22)
            return strtoull(tok, NULL, 10);
    return 0;
}

static char *registry_path(void)
{
    const char *env = getenv("QQMGR_PORT_REGISTRY");
    if (env && *env)
        return xstrdup(env);
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        return xasprintf("%s/qqmgr/ports", xdg);
    if (home && home[0] == '/')
        return xasprintf("%s/.cache/qqmgr/ports", home);
    return NULL;
}

typedef struct port_entry {
    int port;
    long pid;
    unsigned long long start;
} port_entry;

/* Open and lock the registry, read its live entries. Returns the locked
 * descriptor, or -1 when there is no usable registry. */
static int registry_open(port_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    _cleanup_free_ char *path = registry_path();
    if (!path)
        return -1;
    _cleanup_free_ char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (fs_mkdir_p(dir, 0700, NULL) < 0)
            return -1;
    }
    /* never through a symlink (lockfile_take opens with O_NOFOLLOW): such a
     * registry is not used; one left readable by others is made private */
    int fd = lockfile_take(path, &(lockfile_opts){ .deadline_ms = LOCKFILE_FOREVER }, NULL);
    if (fd < 0)
        return -1;
    _cleanup_free_ char *text = NULL;
    struct stat st;
    if (fstat(fd, &st) == 0 && (!S_ISREG(st.st_mode) || st.st_uid != geteuid())) {
        close(fd);
        return -1;
    }
    if ((st.st_mode & 07777) != 0600)
        fchmod(fd, 0600);
    if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < (1 << 20)) {
        text = xmalloc((size_t)st.st_size + 1);
        ssize_t k = pread(fd, text, (size_t)st.st_size, 0);
        text[k > 0 ? k : 0] = '\0';
    }
    size_t cap = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        port_entry e;
        if (sscanf(line, "%d %ld %llu", &e.port, &e.pid, &e.start) != 3 || e.port <= 0 || e.port > 65535)
            continue;
        if (e.pid <= 0 || proc_start_ticks(e.pid) != e.start)
            continue;   /* the owner is gone: the reservation with it */
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        (*out)[(*n)++] = e;
    }
    return fd;
}

static void registry_write(int fd, const port_entry *e, size_t n)
{
    sbuf b = SBUF_INIT;
    for (size_t i = 0; i < n; i++)
        sbuf_addf(&b, "%d %ld %llu\n", e[i].port, e[i].pid, e[i].start);
    if (ftruncate(fd, 0) == 0 && b.len && pwrite(fd, b.buf, b.len, 0) < 0) {
        /* a lost write only loses reservations: QEMU's own failure is still retried */
    }
    sbuf_free(&b);
}

static bool port_listed(int port, const port_entry *e, size_t n, const int *avoid, size_t navoid)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].port == port)
            return true;
    for (size_t i = 0; i < navoid; i++)
        if (avoid[i] == port)
            return true;
    return false;
}

int net_reserve_port(const int *avoid, size_t navoid, qq_err *err)
{
    _cleanup_free_ port_entry *e = NULL;
    size_t n = 0;
    _cleanup_close_ int fd = registry_open(&e, &n);
    for (int attempt = 0; attempt < 64; attempt++) {
        int port = net_pick_port(err);
        if (port < 0)
            return -1;
        if (port_listed(port, e, n, avoid, navoid))
            continue;
        if (fd >= 0) {
            unsigned long long start = proc_start_ticks((long)getpid());
            e = xrealloc(e, (n + 1) * sizeof *e);
            e[n++] = (port_entry){ port, (long)getpid(), start };
            registry_write(fd, e, n);
        }
        return port;
    }
    return qq_fail(err, QQ_EXIT_FAIL, "no free TCP port found that no other qqmgr has reserved");
}

void net_release_port(int port)
{
    _cleanup_free_ port_entry *e = NULL;
    size_t n = 0;
    _cleanup_close_ int fd = registry_open(&e, &n);
    if (fd < 0)
        return;
    size_t out = 0;
    for (size_t i = 0; i < n; i++)
        if (!(e[i].port == port && e[i].pid == (long)getpid()))
            e[out++] = e[i];
    registry_write(fd, e, out);
}

int net_unix_connect(const char *path, qq_err *err) { return net_unix_connect_ms(path, -1, err); }

int net_tcp_connect_nodelay(const char *host, const char *port, qq_err *err)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        qq_fail(err, QQ_EXIT_FAIL, "connect to host %s port %s: %s", host, port,
                g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
        errno = ENOENT;
        return -1;
    }
    int fd = -1, e = ECONNREFUSED;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int r;
        while ((r = connect(fd, a->ai_addr, a->ai_addrlen)) < 0 && errno == EINTR)
            ;
        if (r < 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        qq_fail(err, QQ_EXIT_FAIL, "connect to host %s port %s: %s", host, port, strerror(e));
        errno = e;
        return -1;
    }
    /* OpenSSH sets TCP_NODELAY only on interactive sessions: without it the
     * client's two small writes after the key exchange (NEWKEYS, then
     * SERVICE_REQUEST) wait for a delayed ACK, 40 ms on Linux */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int net_send_fd(int sock, int fd, qq_err *err)
{
    char byte = 0;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t n;
    while ((n = sendmsg(sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    if (n != 1) {
        int e = n < 0 ? errno : EIO;
        qq_fail(err, QQ_EXIT_FAIL, "pass the connection: %s", strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}
