/* debug — see debug.h. */
#include "debug.h"

#include <stdlib.h>
#include <string.h>

#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "guestgdb.h"
#include "layout.h"
#include "vm.h"

/* QEMU option values: a comma is written twice. */
static void add_escaped(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == ',')
            sbuf_addc(b, ',');
        sbuf_addc(b, *s);
    }
}

static char *socket_arg(const char *prefix, const char *sock_dir, layout_file file, const char *suffix)
{
    sbuf b = SBUF_INIT;
    _cleanup_free_ char *path = layout_path(sock_dir, file);
    sbuf_adds(&b, prefix);
    add_escaped(&b, path);
    sbuf_adds(&b, suffix);
    return sbuf_steal(&b);
}

int debug_argv_finish(const vm_spec *s, const vm_run_opts *ro, const char *sock_dir, char ***argv, qq_err *err)
{
    char **v = *argv;
    size_t n = strv_len(v);
    if (guestgdb_user_option(s) < 0) {
        strv_push(&v, &n, xstrdup("-gdb"));
        strv_push(&v, &n, socket_arg("unix:", sock_dir, LAYOUT_GDB_SOCKET, ",server=on,wait=off"));
    }
    strv_push(&v, &n, xstrdup("-chardev"));
    strv_push(&v, &n, socket_arg("socket,id=" DEBUG_EVENTS_CHARDEV ",path=", sock_dir, LAYOUT_EVENTS_SOCKET,
                                 ",server=on,wait=off"));
    strv_push(&v, &n, xstrdup("-mon"));
    strv_push(&v, &n, xstrdup("chardev=" DEBUG_EVENTS_CHARDEV ",mode=control"));
    if (ro && ro->paused)
        strv_push(&v, &n, xstrdup("-S"));
    *argv = v;
    if (!ro || !ro->wrap)
        return 0;
    char **w = NULL;
    size_t nw = 0;
    if (config_split_args(ro->wrap, &w, &nw, err) < 0) {
        strv_free(w);
        qq_err_prefix(err, "--wrap");
        return -1;
    }
    if (nw == 0) {
        strv_free(w);
        return qq_fail(err, QQ_EXIT_USAGE, "--wrap: expected a command (such as 'strace -f -o qemu.strace'), got '%s'",
                       ro->wrap);
    }
    char **all = xcalloc(nw + n + 1, sizeof *all);
    memcpy(all, w, nw * sizeof *w);
    memcpy(all + nw, v, n * sizeof *v);
    free(w);
    free(v);
    *argv = all;
    return 0;
}

int debug_running(const config *cfg, const char *name, pid_t *pid, char **state_dir, qq_err *err)
{
    if (config_check_vm(cfg, name, err) < 0)
        return -1;
    _cleanup_free_ char *dir = config_vm_dir(cfg, name);
    vm_state st;
    vm_probe(dir, false, &st);
    if (!st.running)
        return qq_fail(err, QQ_EXIT_FAIL, "%s is not running (start it: %s start %s)", name, config_cli(cfg), name);
    if (pid)
        *pid = st.pid;
    if (state_dir)
        *state_dir = TAKE_PTR(dir);
    return 0;
}
