/* snapargs — see snapargs.h. */
#include "snapargs.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"

static bool name_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '.' || ch == '_' || ch == '-';
}

/* Replace whole-path occurrences of path in s by token. */
char *snapargs_replace_path(const char *s, const char *path, const char *token)
{
    size_t pl = strlen(path);
    if (pl < 2)   /* "/" would match everything */
        return xstrdup(s);
    sbuf b = SBUF_INIT;
    const char *p = s;
    for (;;) {
        const char *hit = strstr(p, path);
        while (hit && name_char(hit[pl]))
            hit = strstr(hit + 1, path);
        if (!hit) {
            sbuf_adds(&b, p);
            break;
        }
        sbuf_add(&b, p, (size_t)(hit - p));
        sbuf_adds(&b, token);
        p = hit + pl;
    }
    return sbuf_steal(&b);
}

/* Replace the number port where it stands alone (no digit on either side). */
static char *replace_port(const char *s, int port)
{
    char num[16];
    snprintf(num, sizeof num, "%d", port);
    size_t nl = strlen(num);
    sbuf b = SBUF_INIT;
    const char *p = s;
    for (;;) {
        const char *hit = strstr(p, num);
        while (hit && ((hit > s && isdigit((unsigned char)hit[-1])) || isdigit((unsigned char)hit[nl])))
            hit = strstr(hit + 1, num);
        if (!hit) {
            sbuf_adds(&b, p);
            break;
        }
        sbuf_add(&b, p, (size_t)(hit - p));
        sbuf_adds(&b, "{ssh.port}");
        p = hit + nl;
    }
    return sbuf_steal(&b);
}

json_t *snapargs_of(const config *c, const char *vm, int port, qq_err *err)
{
    bool autoport = config_vm_ssh_port(c, vm) == SSH_PORT_AUTO;
    if (port <= 0 && autoport)
        port = SNAPARGS_AUTO_PORT;
    vm_spec s;
    if (config_vm(c, vm, port > 0 ? port : 0, &s, err) < 0)
        return NULL;
    if (port <= 0)
        port = s.ssh_port_used;
    json_t *out = json_array();
    for (size_t i = 0; i < s.nargs; i++) {
        _cleanup_free_ char *a = snapargs_replace_path(s.args[i], config_state_dir(c), "{state}");
        _cleanup_free_ char *b = snapargs_replace_path(a, config_dir(c), "{config}");
        char *d = port > 0 ? replace_port(b, port) : xstrdup(b);
        json_array_append_new(out, json_string(d));
        free(d);
    }
    vm_spec_free(&s);
    return out;
}
