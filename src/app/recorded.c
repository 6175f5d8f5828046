/* recorded — see recorded.h. */
#include "recorded.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "layout.h"
#include "ramfile.h"
#include "launch.h"

/* The VM-name rule (config's): letters, digits, . _ -, not starting with . or - */
static bool plain_name(const char *name)
{
    if (!*name || *name == '.' || *name == '-')
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(name);
}

bool recorded_departed(const config *c, const char *name)
{
    if (config_has_vm(c, name) || !plain_name(name))
        return false;
    _cleanup_free_ char *dir = config_vm_dir(c, name);
    _cleanup_free_ char *why = NULL;
    if (!fs_exists(dir) || !layout_owned(dir, "vm", name, config_path(c), &why))
        return false;
    return layout_pid_holder(dir) > 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **recorded_departed_all(const config *c, size_t *n)
{
    char **names = xcalloc(1, sizeof *names);   /* an empty list is still a list */
    *n = 0;
    DIR *d = opendir(config_state_dir(c));
    if (!d)
        return names;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *vm = layout_vm_of_entry(e->d_name);
        if (vm && recorded_departed(c, vm))
            strv_push(&names, n, xstrdup(vm));
    }
    closedir(d);
    qsort(names, *n, sizeof *names, by_name);
    return names;
}

int recorded_check_vm(const config *c, const char *name, qq_err *err)
{
    qq_err mine = { 0 };
    if (config_check_vm(c, name, &mine) == 0 || recorded_departed(c, name))
        return 0;
    if (err)
        *err = mine;
    return -1;
}

/* Is recorded word rec today's word now, but for what a run substitutes for
 * itself: a throwaway run's disk copies in the VM's dir (start --rm)? */
static bool same_word(const char *rec, const char *now, const char *dir)
{
    if (strcmp(rec, now) == 0)
        return true;
    _cleanup_free_ char *copy = xasprintf("%s/throwaway.", dir);
    return strstr(rec, copy) != NULL;
}

/* Is rec[i] the start of the RAM backend launch_argv injects for mapped RAM
 * (-object memory-backend-file,id=ID,…) rather than a word of the user's? */
static bool injected_ram(json_t *rec, size_t i, const vm_spec *s)
{
    const char *w = json_string_value(json_array_get(rec, i));
    const char *v = json_string_value(json_array_get(rec, i + 1));
    if (!w || !v || strcmp(w, "-object") != 0)
        return false;
    _cleanup_free_ char *prefix = xasprintf("memory-backend-file,id=%s,", ramfile_id(s));
    return strncmp(v, prefix, strlen(prefix)) == 0;
}

bool recorded_config_changed(const config *c, const char *name, char **what)
{
    if (what)
        *what = NULL;
    if (!config_has_vm(c, name))
        return false;
    _cleanup_free_ char *dir = config_vm_dir(c, name);
    _cleanup_free_ char *path = layout_path(dir, LAYOUT_ARGV);
    _cleanup_free_ char *text = NULL;
    if (fs_read_file(path, &text, NULL, NULL) < 0)
        return false;
    _cleanup_json_ json_t *rec = json_loads(text, 0, NULL);
    if (!json_is_array(rec))
        return false;
    vm_spec s;
    if (config_vm(c, name, layout_read_port(dir), &s, NULL) < 0) {
        if (what)
            *what = xstrdup("the config no longer resolves for this VM");
        return true;
    }
    bool changed = false;
    size_t n = json_array_size(rec), k = 0;
    /* a wrapper's words come first: the binary is the first word that is it */
    while (k < n && strcmp(json_string_value(json_array_get(rec, k)) ?: "", s.qemu_bin) != 0)
        k++;
    if (k == n) {
        changed = true;
        if (what)
            *what = xasprintf("[qemu] bin is now %s", s.qemu_bin);
    }
    for (size_t i = 0; !changed && i <= s.nargs; i++) {
        const char *r = k + 1 + i < n ? json_string_value(json_array_get(rec, k + 1 + i)) : NULL;
        if (i == s.nargs) {
            /* the user's arguments end where the injected ones begin: the
             * RAM backend of mapped RAM (ramfile.h), else -pidfile */
            changed = !r || (strcmp(r, "-pidfile") != 0 && !injected_ram(rec, k + 1 + i, &s));
            if (changed && what)
                *what = xasprintf("vm.%s.cmd has %s arguments now", name, r ? "fewer" : "more");
        } else if (!r || !same_word(r, s.args[i], dir)) {
            changed = true;
            if (what)
                *what = xasprintf("%s is now '%s' (started with '%s')", s.arg_where[i], s.args[i], r ? r : "");
        }
    }
    vm_spec_free(&s);
    return changed;
}
