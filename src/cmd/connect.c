/* __connect — hidden: the ProxyCommand of a VM's ssh config (with
 * ProxyUseFdpass yes). Connects to HOST PORT with TCP_NODELAY and hands the
 * socket to ssh over stdout, then exits: ssh talks to the guest directly, as
 * without a proxy, minus Nagle's wait for a delayed ACK (see sshconf.h). */
#include <errno.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../infra/net.h"
#include "cmd.h"

static int connect_fd(qq_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    (void)argc;
    qq_err err = { 0 };
    _cleanup_close_ int fd = net_tcp_connect_nodelay(argv[1], argv[2], &err);
    if (fd < 0)
        return qq_report(&err);
    if (net_send_fd(STDOUT_FILENO, fd, &err) < 0) {
        if (errno == ENOTSOCK)
            qq_fail(&err, QQ_EXIT_USAGE,
                    "__connect: stdout is not a socket (it is ssh's ProxyCommand with ProxyUseFdpass yes)");
        return qq_report(&err);
    }
    return 0;
}

const qq_command qq_cmd_connect = {
    .name = "__connect", .handler = connect_fd, .args = "HOST PORT", .min_args = 2, .max_args = 2,
};
