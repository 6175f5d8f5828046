/* trace — see trace.h. */
#include "trace.h"

#include <stdlib.h>
#include <string.h>

#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "../infra/qmp.h"
#include "running.h"
#include "vm.h"

/* One QMP command on the running VM; its "return" (new reference) or NULL. */
static json_t *call(const config *cfg, const char *name, const char *command, json_t *args, qq_err *err)
{
    if (running_require(cfg, name, NULL, NULL, err) < 0)
        return NULL;
    _cleanup_json_ json_t *reply = vm_qmp(cfg, name, command, args, err);
    if (!reply)
        return NULL;
    const char *desc;
    json_t *ret = qmp_reply_return(reply, NULL, &desc);
    if (!ret)
        qq_fail(err, QQ_EXIT_FAIL, "%s: QMP %s: %s", name, command, desc ?: "error");
    return ret;
}

static int by_name(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return strcmp(json_string_value(json_object_get(x, "name")) ?: "",
                  json_string_value(json_object_get(y, "name")) ?: "");
}

json_t *trace_list(const config *cfg, const char *name, const char *pattern, qq_err *err)
{
    const char *pat = pattern ? pattern : "*";
    _cleanup_json_ json_t *args = json_pack("{s:s}", "name", pat);
    qq_err e = { 0 };
    _cleanup_json_ json_t *ret = call(cfg, name, "trace-event-get-state", args, &e);
    /* an exact name QEMU does not know is an error there, an empty list for a glob */
    if (!ret && strstr(e.msg, "unknown event"))
        ret = json_array();
    if (!ret) {
        *err = e;
        return NULL;
    }
    size_t n = json_array_size(ret);
    if (n == 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: no trace event matches '%s' (see `%s trace %s list`)", name, pat, config_cli(cfg), name);
        return NULL;
    }
    json_t **v = xcalloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(ret, i);
    qsort(v, n, sizeof *v, by_name);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, json_pack("{s:O, s:O}", "name", json_object_get(v[i], "name"), "state",
                                             json_object_get(v[i], "state")));
    free(v);
    return out;
}

int trace_set(const config *cfg, const char *name, const char *pattern, bool on, size_t *count, qq_err *err)
{
    _cleanup_json_ json_t *list = trace_list(cfg, name, pattern, err);
    if (!list)
        return -1;
    size_t n = 0, i;
    json_t *ev;
    json_array_foreach(list, i, ev) {
        if (strcmp(json_string_value(json_object_get(ev, "state")) ?: "", "unavailable") != 0)
            n++;
    }
    if (n == 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: the trace events matching '%s' are not available in this QEMU", name,
                       pattern);
    _cleanup_json_ json_t *args =
        json_pack("{s:s, s:b, s:b}", "name", pattern, "enable", on, "ignore-unavailable", 1);
    _cleanup_json_ json_t *ret = call(cfg, name, "trace-event-set-state", args, err);
    if (!ret)
        return -1;
    *count = n;
    return 0;
}

int trace_log(const config *cfg, const char *name, size_t n, bool follow, int out, qq_err *err)
{
    vm_spec s;
    if (config_vm(cfg, name, 0, &s, err) < 0)
        return -1;
    const char *dfile = NULL;
    for (size_t i = 0; i + 1 < s.nargs; i++)
        if (strcmp(s.args[i], "-D") == 0)
            dfile = s.args[i + 1];
    if (dfile) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: QEMU's log (and the trace events) go to %s (-D in its cmd): read it there",
                name, dfile);
        vm_spec_free(&s);
        return -1;
    }
    vm_spec_free(&s);
    return vm_log(cfg, name, VM_LOG_STDERR, n, follow, out, err);
}
