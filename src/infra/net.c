/* net — see net.h. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../base/cleanup.h"

int net_unix_connect(const char *path, qq_err *err)
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
        if (dirfd < 0) {
            int e = errno;
            qq_fail(err, QQ_EXIT_FAIL, "connect %s: %s", path, strerror(e));
            errno = e;
            return -1;
        }
        int n = snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dirfd, base);
        if (n < 0 || (size_t)n >= sizeof sa.sun_path) {
            errno = ENAMETOOLONG;
            return qq_fail(err, QQ_EXIT_FAIL, "connect %s: socket name too long", path);
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "socket: %s", strerror(errno));
    int r;
    do
        r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (r < 0 && errno == EINTR);
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
