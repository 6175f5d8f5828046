/* ramfile — see ramfile.h. */
#include "ramfile.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "../infra/rundir.h"
#include "layout.h"


static char *option_value(const char *opts, const char *key);

/* A QEMU size: a number (fractions allowed) with an optional unit K M G T
 * (plain: MiB, as -m reads it). */
static int parse_size(const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    if (errno || end == v || n <= 0)
        return -1;
    double mul = 1024.0 * 1024;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    case 'b': case 'B': mul = 1; end++; break;
    default: break;
    }
    if (*end)
        return -1;
    *out = (unsigned long long)(n * mul);
    return *out ? 0 : -1;
}

char *ramfile_dir(void)
{
    return xasprintf("/dev/shm/qqmgr-%u", (unsigned)geteuid());
}

/* RAM_DIR made (0700) and checked: 0, or -1 with err. */
static int ram_dir_ready(const char *d, qq_err *err)
{
    if (mkdir(d, 0700) < 0 && errno != EEXIST)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", d, strerror(errno));
    return rundir_check(d, err);
}

int ramfile_check(const vm_spec *s, bool tmpfs, unsigned long long *bytes, char *why, size_t len)
{
    *bytes = 128ULL << 20;   /* QEMU's default */
    if (!s->mapped_ram) {
        snprintf(why, len, "mapped_ram = false in [vm.%s]", s->name);
        return 0;
    }
    for (size_t i = 0; i < s->nargs; i++) {
        const char *a = s->args[i];
        if (a[0] != '-')
            continue;
        const char *opt = a + 1 + (a[1] == '-');
        const char *val = i + 1 < s->nargs ? s->args[i + 1] : "";
        if (strcmp(opt, "m") == 0) {
            _cleanup_free_ char *v = xstrdup(val);
            char *save = NULL;
            for (char *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (strncmp(tok, "slots=", 6) == 0 || strncmp(tok, "maxmem=", 7) == 0) {
                    snprintf(why, len, "its -m %s has slots or maxmem (memory hotplug)", val);
                    return 0;
                }
                const char *sz = strncmp(tok, "size=", 5) == 0 ? tok + 5 : tok;
                if (parse_size(sz, bytes) < 0) {
                    snprintf(why, len, "its -m %s is not a size qqmgr reads", val);
                    return 0;
                }
            }
        } else if (strcmp(opt, "object") == 0 && strncmp(val, "memory-backend", 14) == 0) {
            snprintf(why, len, "its cmd has its own memory backend (-object %.*s…)", 40, val);
            return 0;
        } else if ((strcmp(opt, "machine") == 0 || strcmp(opt, "M") == 0) && strstr(val, "memory-backend=")) {
            snprintf(why, len, "its cmd sets -machine memory-backend= itself");
            return 0;
        } else if (strcmp(opt, "numa") == 0) {
            snprintf(why, len, "its cmd has -numa");
            return 0;
        } else if (strcmp(opt, "mem-path") == 0 || strcmp(opt, "mem-prealloc") == 0) {
            snprintf(why, len, "its cmd has -%s (hugepages)", opt);
            return 0;
        } else if (strcmp(opt, "device") == 0 &&
                   (strncmp(val, "virtio-balloon", 14) == 0 || strncmp(val, "virtio-mem", 10) == 0)) {
            snprintf(why, len, "its cmd has a %.*s device (a discarded page would punch a hole in the "
                     "snapshot's RAM file)", (int)strcspn(val, ","), val);
            return 0;
        }
    }
    if (!tmpfs)
        return 1;
    _cleanup_free_ char *d = ramfile_dir();
    qq_err e = { 0 };
    if (ram_dir_ready(d, &e) < 0) {
        snprintf(why, len, "no private tmpfs dir for its RAM (%s)", e.msg);
        return 0;
    }
    struct statvfs vfs;
    if (statvfs(d, &vfs) < 0 || (unsigned long long)vfs.f_bavail * vfs.f_frsize < *bytes) {
        snprintf(why, len, "%s has %llu MiB free, less than its RAM (%llu MiB)", d,
                 (unsigned long long)vfs.f_bavail * vfs.f_frsize >> 20, *bytes >> 20);
        return 0;
    }
    return 1;
}

const char *ramfile_id(const vm_spec *s)
{
    const char *bin = strrchr(s->qemu_bin, '/') ? strrchr(s->qemu_bin, '/') + 1 : s->qemu_bin;
    if (!strstr(bin, "x86_64") && !strstr(bin, "i386"))
        return RAMFILE_ID;
    const char *type = NULL;
    size_t tlen = 0;
    for (size_t i = 0; i + 1 < s->nargs; i++) {
        const char *opt = s->args[i] + 1 + (s->args[i][0] == '-' && s->args[i][1] == '-');
        if (s->args[i][0] != '-' || (strcmp(opt, "machine") != 0 && strcmp(opt, "M") != 0))
            continue;
        const char *v = s->args[i + 1];
        _cleanup_free_ char *t = option_value(v, "type");
        size_t first = strcspn(v, ",");
        if (t) {
            type = strstr(v, "type=") + 5;
            tlen = strcspn(type, ",");
        } else if (!memchr(v, '=', first)) {
            type = v;
            tlen = first;
        }
    }
    if (!type || (tlen >= 2 && strncmp(type, "pc", 2) == 0) || (tlen >= 3 && strncmp(type, "q35", 3) == 0))
        return RAMFILE_PC_ID;
    return RAMFILE_ID;
}

bool ramfile_loads_older(const vm_spec *s)
{
    return strcmp(ramfile_id(s), RAMFILE_PC_ID) == 0;
}

char *ramfile_new_path(qq_err *err)
{
    static unsigned n;
    _cleanup_free_ char *d = ramfile_dir();
    if (ram_dir_ready(d, err) < 0)
        return NULL;
    return xasprintf("%s/ram.%ld.%u", d, (long)getpid(), n++);
}

char *ramfile_shown_path(void)
{
    _cleanup_free_ char *d = ramfile_dir();
    return xasprintf("%s/ram.PID.N", d);
}

void ramfile_sweep(void)
{
    _cleanup_free_ char *d = ramfile_dir();
    if (rundir_check(d, NULL) < 0)
        return;
    DIR *dir = opendir(d);
    if (!dir)
        return;
    struct dirent *de;
    while ((de = readdir(dir))) {
        long pid;
        unsigned n;
        if (sscanf(de->d_name, "ram.%ld.%u", &pid, &n) != 2 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
            unlinkat(dirfd(dir), de->d_name, 0);
    }
    closedir(dir);
}

/* An option's value in a QEMU option list (",," a comma), or NULL. Caller frees. */
static char *option_value(const char *opts, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = opts; *p;) {
        bool hit = strncmp(p, key, kl) == 0 && p[kl] == '=';
        sbuf v = SBUF_INIT;
        const char *q = p + (hit ? kl + 1 : 0);
        for (; *q; q++) {
            if (q[0] == ',' && q[1] == ',') {
                sbuf_addc(&v, ',');
                q++;
                continue;
            }
            if (*q == ',')
                break;
            sbuf_addc(&v, *q);
        }
        if (hit)
            return sbuf_steal(&v) ?: xstrdup("");
        sbuf_free(&v);
        p = *q ? q + 1 : q;
    }
    return NULL;
}

char *ramfile_of_run(const char *dir, pid_t pid, unsigned long long *bytes)
{
    _cleanup_free_ char *p = layout_path(dir, LAYOUT_ARGV);
    _cleanup_json_ json_t *argv = json_load_file(p, 0, NULL);
    _cleanup_free_ char *path = NULL;
    size_t i;
    json_t *a;
    json_array_foreach(argv, i, a) {
        const char *s = json_string_value(a) ?: "";
        if (strncmp(s, "memory-backend-file,id=" RAMFILE_ID ",", 24 + strlen(RAMFILE_ID)) != 0 &&
            strncmp(s, "memory-backend-file,id=" RAMFILE_PC_ID ",", 24 + strlen(RAMFILE_PC_ID)) != 0)
            continue;
        _cleanup_free_ char *share = option_value(s, "share");
        _cleanup_free_ char *size = option_value(s, "size");
        if (!share || strcmp(share, "on") != 0 || !size)
            return NULL;
        *bytes = strtoull(size, NULL, 10);
        path = option_value(s, "mem-path");
    }
    if (!path || pid <= 0)
        return NULL;
    char fds[64];
    snprintf(fds, sizeof fds, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(fds);
    if (!d)
        return NULL;
    _cleanup_free_ char *deleted = xasprintf("%s (deleted)", path);
    char *found = NULL;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        char link[PATH_MAX + 16];
        ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, path) == 0 || strcmp(link, deleted) == 0)
            found = xasprintf("%s/%s", fds, de->d_name);
    }
    closedir(d);
    return found;
}

void ramfile_why_not(const config *c, const char *vm, char *why, size_t len)
{
    vm_spec s;
    qq_err e = { 0 };
    unsigned long long bytes;
    if (config_vm(c, vm, 0, &s, &e) < 0) {
        snprintf(why, len, "%s", e.msg);
        return;
    }
    if (ramfile_check(&s, true, &bytes, why, len) == 1)
        snprintf(why, len, "its QEMU was started without mapped RAM (by an older qqmgr, under `gdb`, or from an "
                 "older kind of snapshot that loads only into QEMU's own RAM): stop and start it again for mapped "
                 "snapshots");
    vm_spec_free(&s);
}

