/* snapxfer — see snapxfer.h. */
#include "snapxfer.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/clock.h"
#include "../base/sbuf.h"
#include "../base/xalloc.h"
#include "../infra/fs.h"
#include "../infra/hash.h"
#include "../infra/proc.h"
#include "../infra/sig.h"
#include "../infra/tree.h"
#include "layout.h"
#include "leftover.h"
#include "snapargs.h"
#include "snapshot.h"

#define MAGIC "qqsnap\n\001"
#define MAGIC_LEN 8
#define HEADER_MAX (1u << 20)
#define REC_HDR 9
#define LOCK_S 30
#define PIPE_SIZE (1 << 20)          /* a pipe at either end: fewer wake-ups per MiB */
#define WRITEBACK_STEP (8ull << 20)  /* import starts writeback every 8 MiB: the closing fsync is short */

/* A pipe at fd gets a 1 MiB buffer when the system allows (else it stays as it is). */
static void widen_pipe(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
        fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE);
}

/* ------------------------------------------------------------ the arguments */

static bool name_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '.' || ch == '_' || ch == '-';
}

static void args_digest(json_t *args, char hex[HASH_HEX_LEN + 1])
{
    /* each argument followed by a NUL: no two lists give the same bytes */
    hash_ctx h = { 0 };
    hex[0] = '\0';
    if (hash_init(&h, NULL) < 0)
        return;
    size_t i;
    json_t *a;
    json_array_foreach(args, i, a)
        hash_update(&h, json_string_value(a), json_string_length(a) + 1);
    hash_final(&h, hex);
}

static void add_quoted(sbuf *b, const char *s)
{
    sbuf_addc(b, '"');
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sbuf_addc(b, '\\');
        sbuf_addc(b, *p);
    }
    sbuf_addc(b, '"');
}

/* "argument 3 is "256" in the snapshot, "512" here (after "-m")", up to
 * five such, or the two differing runs when the counts differ. */
static char *args_diff(json_t *theirs, json_t *ours)
{
    size_t nt = json_array_size(theirs), no = json_array_size(ours), pre = 0, suf = 0;
    while (pre < nt && pre < no &&
           strcmp(json_string_value(json_array_get(theirs, pre)), json_string_value(json_array_get(ours, pre))) == 0)
        pre++;
    while (suf < nt - pre && suf < no - pre &&
           strcmp(json_string_value(json_array_get(theirs, nt - 1 - suf)),
                  json_string_value(json_array_get(ours, no - 1 - suf))) == 0)
        suf++;
    sbuf b = SBUF_INIT;
    if (nt - pre - suf == no - pre - suf) {
        int shown = 0, more = 0;
        for (size_t i = pre; i < nt - suf; i++) {
            const char *t = json_string_value(json_array_get(theirs, i)), *o = json_string_value(json_array_get(ours, i));
            if (strcmp(t, o) == 0)
                continue;
            if (shown == 5) {
                more++;
                continue;
            }
            sbuf_adds(&b, shown++ ? "; " : "");
            sbuf_addf(&b, "argument %zu is ", i + 1);
            add_quoted(&b, t);
            sbuf_adds(&b, " in the snapshot, ");
            add_quoted(&b, o);
            sbuf_adds(&b, " here");
            if (i > 0) {
                sbuf_adds(&b, " (after ");
                add_quoted(&b, json_string_value(json_array_get(ours, i - 1)));
                sbuf_adds(&b, ")");
            }
        }
        if (more)
            sbuf_addf(&b, "; and %d more", more);
        return sbuf_steal(&b);
    }
    sbuf_addf(&b, "from argument %zu", pre + 1);
    if (pre > 0) {
        sbuf_adds(&b, " (after ");
        add_quoted(&b, json_string_value(json_array_get(ours, pre - 1)));
        sbuf_adds(&b, ")");
    }
    sbuf_adds(&b, " the snapshot has");
    for (size_t i = pre; i < nt - suf; i++) {
        sbuf_addc(&b, ' ');
        add_quoted(&b, json_string_value(json_array_get(theirs, i)));
    }
    if (nt - suf == pre)
        sbuf_adds(&b, " nothing");
    sbuf_adds(&b, ", here");
    for (size_t i = pre; i < no - suf; i++) {
        sbuf_addc(&b, ' ');
        add_quoted(&b, json_string_value(json_array_get(ours, i)));
    }
    if (no - suf == pre)
        sbuf_adds(&b, " nothing");
    return sbuf_steal(&b);
}

/* ------------------------------------------------------------ writing */

typedef struct out {
    int fd;
    const char *shown;          /* "stdout" or the file */
    hash_ctx file;              /* the current file's records */
    bool in_file;
    unsigned long long bytes;
    qq_err *err;
} out;

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static int out_write(out *o, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        if (sig_caught())
            return qq_fail(o->err, QQ_EXIT_FAIL, "interrupted");
        ssize_t w = write(o->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EPIPE)
            return qq_fail(o->err, QQ_EXIT_FAIL, "the reader closed the stream (its message says why)");
        if (w < 0)
            return qq_fail(o->err, QQ_EXIT_FAIL, "write %s: %s", o->shown, strerror(errno));
        p += w;
        n -= (size_t)w;
        o->bytes += (unsigned long long)w;
    }
    return 0;
}

static int out_record(out *o, char type, const void *payload, size_t n)
{
    unsigned char h[REC_HDR];
    h[0] = (unsigned char)type;
    put_u64(h + 1, n);
    if (o->in_file) {
        hash_update(&o->file, h, sizeof h);
        hash_update(&o->file, payload, n);
    }
    if (out_write(o, h, sizeof h) < 0)
        return -1;
    return out_write(o, payload, n);
}

static int out_hole(out *o, unsigned long long n)
{
    unsigned char p[8];
    put_u64(p, n);
    return n ? out_record(o, 'Z', p, sizeof p) : 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    if (n < 16)
        return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
    static const unsigned char z[16];
    return memcmp(p, z, 16) == 0 && memcmp(p, p + 16, n - 16) == 0;
}

/* One file: F, D/Z records, E; the E value appended to digests. */
static int send_file(out *o, int fd, const char *name, unsigned long long size, unsigned char *buf, sbuf *digests)
{
    if (hash_init(&o->file, o->err) < 0)
        return -1;
    o->in_file = true;
    int rc = -1;
    _cleanup_json_ json_t *f = json_pack("{s:s, s:I}", "name", name, "size", (json_int_t)size);
    _cleanup_free_ char *ftext = json_dumps(f, JSON_COMPACT);
    if (out_record(o, 'F', ftext, strlen(ftext)) < 0)
        goto out;
    unsigned long long off = 0, zeros = 0;
    while (off < size) {
        /* the next data; none (ENXIO) or no SEEK_DATA: read all */
        off_t data = lseek(fd, (off_t)off, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            data = (off_t)size;
        else if (data < 0)
            data = (off_t)off;
        if ((unsigned long long)data > size)
            data = (off_t)size;
        zeros += (unsigned long long)data - off;
        off = (unsigned long long)data;
        off_t hole = off < size ? lseek(fd, data, SEEK_HOLE) : (off_t)size;
        if (hole < 0 || (unsigned long long)hole > size)
            hole = (off_t)size;
        while (off < (unsigned long long)hole) {
            size_t want = (unsigned long long)hole - off < SNAPX_CHUNK ? (size_t)((unsigned long long)hole - off)
                                                                       : SNAPX_CHUNK;
            ssize_t n = pread(fd, buf, want, (off_t)off);
            if (n < 0 && errno == EINTR) {
                if (sig_caught()) {
                    qq_fail(o->err, QQ_EXIT_FAIL, "interrupted");
                    goto out;
                }
                continue;
            }
            if (n < 0) {
                qq_fail(o->err, QQ_EXIT_FAIL, "read %s: %s", name, strerror(errno));
                goto out;
            }
            if (n == 0) {
                qq_fail(o->err, QQ_EXIT_FAIL, "read %s: it shrank while being exported", name);
                goto out;
            }
            if (all_zero(buf, (size_t)n)) {
                zeros += (unsigned long long)n;
            } else {
                if (out_hole(o, zeros) < 0 || out_record(o, 'D', buf, (size_t)n) < 0)
                    goto out;
                zeros = 0;
            }
            off += (unsigned long long)n;
        }
    }
    if (out_hole(o, zeros) < 0)
        goto out;
    char hex[HASH_HEX_LEN + 1];
    hash_final(&o->file, hex);
    o->in_file = false;
    if (out_record(o, 'E', hex, HASH_HEX_LEN) < 0)
        goto out;
    sbuf_add(digests, hex, HASH_HEX_LEN);
    rc = 0;
out:
    hash_free(&o->file);
    o->in_file = false;
    return rc;
}

static int open_in(int dfd, const char *name, const char *shown, int *fd, unsigned long long *size, qq_err *err)
{
    *fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (*fd < 0 || fstat(*fd, &st) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", shown, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return qq_fail(err, QQ_EXIT_FAIL, "%s: not a regular file", shown);
    *size = (unsigned long long)st.st_size;
    return 0;
}

/* What the export sends: the files (open), the record, the header's parts. */
#define MAX_FILES 32
typedef struct source {
    const char *kind;           /* "state-file" or "mapped" */
    char *names[MAX_FILES];     /* the names in the stream (the files of the snapshot) */
    int fds[MAX_FILES];
    unsigned long long sizes[MAX_FILES];
    int n;
    json_t *meta;               /* the snapshot's record (NAME.json, meta.json): sent last, as "meta" */
    json_t *args;               /* normalised, for the header */
    json_t *bases;              /* mapped: [{layer, image, file, format}], bases not sent */
} source;

static void source_close(source *s)
{
    for (int i = 0; i < s->n; i++) {
        if (s->fds[i] >= 0)
            close(s->fds[i]);
        free(s->names[i]);
    }
    json_decref(s->meta);
    json_decref(s->args);
    json_decref(s->bases);
}

static int add_file(source *s, int dfd, const char *name, const char *shown_dir, qq_err *err)
{
    if (s->n == MAX_FILES)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: more than %d files", shown_dir, MAX_FILES);
    _cleanup_free_ char *shown = xasprintf("%s/%s", shown_dir, name);
    s->names[s->n] = xstrdup(name);
    s->fds[s->n] = -1;
    s->n++;
    return open_in(dfd, name, shown, &s->fds[s->n - 1], &s->sizes[s->n - 1], err);
}

/* Does text match pattern, where each "{ssh.port}" of pattern stands for a run of digits? */
static bool port_match(const char *pattern, const char *text)
{
    static const char tok[] = "{ssh.port}";
    for (;;) {
        const char *t = strstr(pattern, tok);
        size_t lit = t ? (size_t)(t - pattern) : strlen(pattern);
        if (strncmp(pattern, text, lit) != 0)
            return false;
        text += lit;
        if (!t)
            return *text == '\0';
        if (!isdigit((unsigned char)*text))
            return false;
        while (isdigit((unsigned char)*text))
            text++;
        pattern = t + strlen(tok);
    }
}

/* Arguments recorded raw (mapped meta.json: rendered with the port of that
 * run), normalised: the two dirs replaced; the port where this config's
 * rendering has it (a run of digits there). */
static json_t *normalise_raw(const config *c, const char *vm, json_t *raw, qq_err *err)
{
    _cleanup_json_ json_t *pattern = snapargs_of(c, vm, 0, err);
    if (!pattern)
        return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(raw, i, x) {
        _cleanup_free_ char *a = snapargs_replace_path(json_string_value(x) ?: "", config_state_dir(c), "{state}");
        _cleanup_free_ char *b = snapargs_replace_path(a, config_dir(c), "{config}");
        const char *p = json_string_value(json_array_get(pattern, i));
        json_array_append_new(out, json_string(p && strstr(p, "{ssh.port}") && port_match(p, b) ? p : b));
    }
    return out;
}

static json_t *img_info(const config *c, const char *path, qq_err *err)
{
    char *argv[] = { (char *)config_qemu_img(c), "info", "-U", "--output=json", (char *)path, NULL };
    _cleanup_sbuf_ sbuf out = SBUF_INIT;
    _cleanup_sbuf_ sbuf e = SBUF_INIT;
    proc_run_opts po = { .out = &out, .err = &e, .timeout_ms = 60000 };
    proc_result pr;
    if (proc_run(argv, &po, &pr, err) < 0)
        return NULL;
    json_t *j = WIFEXITED(pr.status) && WEXITSTATUS(pr.status) == 0 ? json_loads(sbuf_str(&out), 0, NULL) : NULL;
    if (!j)
        qq_fail(err, QQ_EXIT_FAIL, "qemu-img info %s: %s", path, e.len ? sbuf_str(&e) : "failed");
    return j;
}

/* A qcow2 layer of a mapped snapshot: its base, when it has one, must be an
 * image qqmgr built (STATE/img.X/ENTRY): recorded in bases, not sent. */
static int layer_base(const config *c, const char *vm, const char *name, const char *layer_path, const char *layer,
                      json_t *bases, qq_err *err)
{
    _cleanup_json_ json_t *info = img_info(c, layer_path, err);
    if (!info)
        return -1;
    const char *backing = json_string_value(json_object_get(info, "full-backing-filename"));
    if (!backing)
        backing = json_string_value(json_object_get(info, "backing-filename"));
    if (!backing)
        return 0;   /* a whole disk: sent as it is */
    const char *sd = config_state_dir(c);
    size_t n = strlen(sd);
    const char *rest = strncmp(backing, sd, n) == 0 && backing[n] == '/' ? backing + n + 1 : NULL;
    const char *slash = rest ? strchr(rest, '/') : NULL;
    _cleanup_free_ char *img = rest && slash && strncmp(rest, "img.", 4) == 0 ? xstrndup(rest + 4, (size_t)(slash - rest - 4))
                                                                           : NULL;
    if (!img || strchr(slash + 1, '/') || config_check_img(c, img, NULL) < 0)
        return qq_fail(err, QQ_EXIT_FAIL,
                       "%s: snapshot '%s': layer %s is backed by %s, which is not an image this config builds: a "
                       "stream carries layers on qqmgr-built images only", vm, name, layer, backing);
    const char *fmt = json_string_value(json_object_get(info, "backing-filename-format"));
    json_array_append_new(bases, json_pack("{s:s, s:s, s:s, s:s}", "layer", layer, "image", img, "file", slash + 1,
                                           "format", fmt ? fmt : "raw"));
    return 0;
}

static int find_mapped(const config *c, const char *vm, const char *name, int sdfd, const char *sd, source *s,
                       qq_err *err)
{
    _cleanup_free_ char *shown = xasprintf("%s/%s", sd, name);
    _cleanup_close_ int dfd = openat(sdfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", shown, strerror(errno));
    _cleanup_close_ int mfd = openat(dfd, "meta.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    s->meta = mfd >= 0 ? json_loadfd(mfd, 0, NULL) : NULL;
    if (!json_is_object(s->meta))
        return qq_fail(err, QQ_EXIT_FAIL, "%s/meta.json: missing or not JSON", shown);
    s->kind = "mapped";
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(s->meta, "files"), i, x) {
        const char *f = json_string_value(json_object_get(x, "name"));
        if (!f || !*f || *f == '.' || strchr(f, '/') || strcmp(f, "meta.json") == 0 || strcmp(f, "meta") == 0)
            return qq_fail(err, QQ_EXIT_FAIL, "%s/meta.json: a file named \"%s\"", shown, f ? f : "");
        if (add_file(s, dfd, f, shown, err) < 0)
            return -1;
    }
    s->bases = json_array();
    json_array_foreach(json_object_get(s->meta, "disks"), i, x) {
        const char *layer = json_string_value(json_object_get(x, "layer"));
        const char *fmt = json_string_value(json_object_get(x, "format"));
        if (!layer || !fmt || strchr(layer, '/'))
            return qq_fail(err, QQ_EXIT_FAIL, "%s/meta.json: disk %zu has no plain layer and format", shown, i);
        _cleanup_free_ char *lp = xasprintf("%s/%s", shown, layer);
        if (strcmp(fmt, "qcow2") == 0 && layer_base(c, vm, name, lp, layer, s->bases, err) < 0)
            return -1;
    }
    json_t *raw = json_object_get(s->meta, "args");
    s->args = json_is_array(raw) ? normalise_raw(c, vm, raw, err) : snapargs_of(c, vm, 0, err);
    return s->args ? 0 : -1;
}

static int find_source(const config *c, const char *vm, const char *name, source *s, qq_err *err)
{
    memset(s, 0, sizeof *s);
    _cleanup_json_ json_t *list = snap_list(c, vm, err);
    if (!list)
        return -1;
    bool have = false;
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
        have = have || strcmp(json_string_value(json_object_get(x, "name")) ?: "", name) == 0;
    if (!have)
        return qq_fail(err, QQ_EXIT_FAIL, "%s has no snapshot '%s' (`%s snapshot list %s` shows its snapshots)", vm,
                       name, config_cli(c), vm);
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    _cleanup_free_ char *sd = layout_path(dir, LAYOUT_SNAPSHOTS);
    _cleanup_close_ int dfd = tree_open(sd);
    _cleanup_free_ char *state = xasprintf("%s.state", name), *meta = xasprintf("%s.json", name);
    struct stat st;
    if (dfd >= 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
        return find_mapped(c, vm, name, dfd, sd, s, err);
    if (dfd < 0 || fstatat(dfd, state, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return qq_fail(err, QQ_EXIT_FAIL,
                       "%s: snapshot '%s' is an internal qcow2 snapshot, kept inside the VM's disks, which a "
                       "snapshot stream does not carry: save a mapped snapshot of it instead (a VM with mapped "
                       "RAM saves those), or a state-file one (a VM without writable disks)", vm, name);
    s->kind = "state-file";
    if (add_file(s, dfd, state, sd, err) < 0)
        return -1;
    free(s->names[0]);
    s->names[0] = xstrdup("state");
    /* the record (date, args…) travels as it is; none: the file's date */
    _cleanup_close_ int mfd = openat(dfd, meta, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    s->meta = mfd >= 0 ? json_loadfd(mfd, 0, NULL) : NULL;
    if (!json_is_object(s->meta)) {
        json_decref(s->meta);
        s->meta = json_pack("{s:I}", "date", (json_int_t)st.st_mtime);
    }
    /* the arguments it was saved with (recorded by save), else the config's now */
    json_t *args = json_object_get(s->meta, "args");
    bool recorded = json_is_array(args);
    json_array_foreach(args, i, x)
        recorded = recorded && json_is_string(x);
    s->args = recorded ? json_incref(args) : snapargs_of(c, vm, 0, err);
    return s->args ? 0 : -1;
}

static int export_to(const config *c, const char *vm, const char *name, out *o, snapx_result *r, qq_err *err)
{
    source s;
    /* the VM's lock while every file is opened: a save --force or delete
     * of this snapshot at the same time never mixes an old file with a new
     * one (what is open stays as it was, whatever is renamed after) */
    int lock = -1;
    {
        _cleanup_free_ char *dir = config_vm_dir(c, vm);
        /* no dir, no snapshot (find_source says so): nothing is made for a lock */
        if (access(dir, F_OK) == 0 &&
            (lock = layout_lock_vm(vm, dir, "snapshot export", clock_ms() + LOCK_S * 1000LL, LOCK_S,
                                   "the snapshot commands' bound", err)) < 0)
            return -1;
    }
    int found = find_source(c, vm, name, &s, err);
    if (lock >= 0)
        close(lock);
    if (found < 0) {
        source_close(&s);
        return -1;
    }
    r->kind = s.kind;
    int rc = -1;
    unsigned char *buf = NULL;
    sbuf digests = SBUF_INIT;
    /* declared before the first goto: the cleanups run on every path */
    _cleanup_free_ char *metatext = NULL, *htext = NULL, *ftext = NULL;
    _cleanup_json_ json_t *h = NULL, *f = NULL;
    char ahex[HASH_HEX_LEN + 1];
    args_digest(s.args, ahex);
    metatext = json_dumps(s.meta, JSON_INDENT(2) | JSON_SORT_KEYS);
    size_t metalen = strlen(metatext);
    json_t *files = json_array();
    for (int i = 0; i < s.n; i++) {
        json_array_append_new(files, json_pack("{s:s, s:I}", "name", s.names[i], "size", (json_int_t)s.sizes[i]));
        r->data += s.sizes[i];
    }
    json_array_append_new(files, json_pack("{s:s, s:I}", "name", "meta", "size", (json_int_t)metalen));
    r->data += metalen;
    json_t *date = json_object_get(s.meta, "date");
    h = json_pack("{s:i, s:s, s:s, s:s, s:I, s:O, s:s, s:o, s:s, s:s}", "format", SNAPX_FORMAT, "vm", vm, "snapshot",
                  name, "kind", s.kind, "date", (json_int_t)(json_is_number(date) ? json_number_value(date) : 0),
                  "args", s.args, "args_sha256", ahex, "files", files, "state_dir", config_state_dir(c),
                  "config_dir", config_dir(c));
    if (s.bases)
        json_object_set(h, "bases", s.bases);
    htext = json_dumps(h, JSON_COMPACT);
    size_t hlen = strlen(htext);
    /* S: the digest of the magic and the H record */
    hash_ctx hh = { 0 };
    if (hash_init(&hh, err) < 0)
        goto out;
    unsigned char rh[REC_HDR] = { 'H' };
    put_u64(rh + 1, hlen);
    hash_update(&hh, MAGIC, MAGIC_LEN);
    hash_update(&hh, rh, sizeof rh);
    hash_update(&hh, htext, hlen);
    char shex[HASH_HEX_LEN + 1];
    hash_final(&hh, shex);
    sbuf_add(&digests, shex, HASH_HEX_LEN);
    if (out_write(o, MAGIC, MAGIC_LEN) < 0 || out_record(o, 'H', htext, hlen) < 0 ||
        out_record(o, 'S', shex, HASH_HEX_LEN) < 0)
        goto out;
    buf = xmalloc(SNAPX_CHUNK);
    widen_pipe(o->fd);
    for (int i = 0; i < s.n; i++)
        posix_fadvise(s.fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
    for (int i = 0; i < s.n; i++)
        if (send_file(o, s.fds[i], s.names[i], s.sizes[i], buf, &digests) < 0)
            goto out;
    /* the record, from memory: a file's worth of D */
    if (hash_init(&o->file, err) < 0)
        goto out;
    o->in_file = true;
    f = json_pack("{s:s, s:I}", "name", "meta", "size", (json_int_t)metalen);
    ftext = json_dumps(f, JSON_COMPACT);
    if (out_record(o, 'F', ftext, strlen(ftext)) < 0 || (metalen && out_record(o, 'D', metatext, metalen) < 0)) {
        hash_free(&o->file);
        goto out;
    }
    char mhex[HASH_HEX_LEN + 1];
    hash_final(&o->file, mhex);
    o->in_file = false;
    if (out_record(o, 'E', mhex, HASH_HEX_LEN) < 0)
        goto out;
    sbuf_add(&digests, mhex, HASH_HEX_LEN);
    char thex[HASH_HEX_LEN + 1];
    if (hash_bytes(digests.buf, digests.len, thex, err) < 0 || out_record(o, 'T', thex, HASH_HEX_LEN) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0 && sig_caught() && strcmp(err->msg, "interrupted") == 0)
        qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: the export of snapshot '%s' is incomplete", vm, name);
    free(buf);
    sbuf_free(&digests);
    source_close(&s);
    return rc;
}

/* An anonymous file (O_TMPFILE) in the directory of path, else path.tmp-PID
 * (*named set): a killed export leaves nothing, or that name. */
static int open_out(const char *path, char **tmp, bool *named, qq_err *err)
{
    _cleanup_free_ char *copy = xstrdup(path);
    char *slash = strrchr(copy, '/');
    const char *dir = slash ? (slash == copy ? "/" : (*slash = '\0', copy)) : ".";
    *tmp = xasprintf("%s.tmp-%ld", path, (long)getpid());
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    *named = fd < 0;
    if (fd < 0)   /* a file system without O_TMPFILE */
        fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", *named ? *tmp : dir, strerror(errno));
    return fd;
}

/* The complete file fd gets its name: linked as tmp (unless it has it), renamed over path. */
static int name_out(int fd, const char *tmp, bool named, const char *path, qq_err *err)
{
    if (!named) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        unlink(tmp);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", path, strerror(e));
    }
    return 0;
}

int snapx_export(const config *c, const char *vm, const char *name, const char *path, snapx_result *r,
                 qq_err *err)
{
    memset(r, 0, sizeof *r);
    if (config_check_vm(c, vm, err) < 0 || snap_check_name(name, err) < 0)
        return -1;
    snprintf(r->snapshot, sizeof r->snapshot, "%s", name);
    long long t0 = clock_ms();
    bool to_stdout = !path || strcmp(path, "-") == 0, named = false;
    _cleanup_free_ char *tmp = NULL;
    out o = { .fd = 1, .shown = "stdout", .err = err };
    if (!to_stdout) {
        o.fd = open_out(path, &tmp, &named, err);
        if (o.fd < 0)
            return -1;
        o.shown = path;
    }
    struct sigaction ign = { .sa_handler = SIG_IGN }, old_pipe;
    sigaction(SIGPIPE, &ign, &old_pipe);
    sig_scope ss;
    sig_catch(&ss);
    int rc = export_to(c, vm, name, &o, r, err);
    if (!to_stdout) {
        if (rc == 0 && fsync(o.fd) < 0)
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s: %s", path, strerror(errno));
        if (rc == 0 && sig_caught())
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: %s was not written", vm, path);
        if (rc == 0)
            rc = name_out(o.fd, tmp, named, path, err);
        else if (named)
            unlink(tmp);
        if (close(o.fd) < 0 && rc == 0)
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s: %s", path, strerror(errno));
    }
    sig_release(&ss);
    sigaction(SIGPIPE, &old_pipe, NULL);
    r->bytes = o.bytes;
    r->seconds = (double)(clock_ms() - t0) / 1000.0;
    return rc;
}

/* ------------------------------------------------------------ reading */

typedef struct in {
    int fd;
    const char *shown;           /* "stdin" or the file */
    unsigned long long pos;
    hash_ctx file;
    bool in_file;
    const char *where;           /* what is being read, for "ended in …" */
    qq_err *err;
} in;

/* Read exactly n bytes; 1 at a clean end before the first byte, -1 on error
 * (a short read is a truncated stream). */
static int in_read(in *i, void *data, size_t n, bool eof_ok)
{
    char *p = data;
    size_t got = 0;
    while (got < n) {
        if (sig_caught())
            return qq_fail(i->err, QQ_EXIT_FAIL, "interrupted");
        ssize_t r = read(i->fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return qq_fail(i->err, QQ_EXIT_FAIL, "read %s: %s", i->shown, strerror(errno));
        if (r == 0) {
            if (got == 0 && eof_ok)
                return 1;
            return qq_fail(i->err, QQ_EXIT_FAIL, "truncated stream: it ends at byte %llu, %s",
                           i->pos + got, i->where);
        }
        got += (size_t)r;
    }
    i->pos += n;
    return 0;
}

/* A record's type and length; inside a file, the header bytes go into the
 * file's digest (not E's: the digest ends before it). */
static int in_record(in *i, char *type, uint64_t *len)
{
    unsigned char h[REC_HDR];
    if (in_read(i, h, sizeof h, false) < 0)
        return -1;
    *type = (char)h[0];
    *len = get_u64(h + 1);
    if (i->in_file && *type != 'E')
        hash_update(&i->file, h, sizeof h);
    return 0;
}

static int corrupt(in *i, const char *what)
{
    return qq_fail(i->err, QQ_EXIT_FAIL, "corrupted stream: %s at byte %llu", what, i->pos);
}

/* A record of type want with a payload of at most max bytes, into buf (NUL-terminated). */
static int in_small(in *i, char want, size_t max, char *buf, size_t *len)
{
    char type;
    uint64_t n;
    if (in_record(i, &type, &n) < 0)
        return -1;
    if (type != want || n > max) {
        char what[96];
        snprintf(what, sizeof what, "record '%c' (%llu bytes) where '%c' belongs", isprint((unsigned char)type) ? type : '?',
                 (unsigned long long)n, want);
        return corrupt(i, what);
    }
    if (in_read(i, buf, (size_t)n, false) < 0)
        return -1;
    buf[n] = '\0';
    if (i->in_file)
        hash_update(&i->file, buf, (size_t)n);
    if (len)
        *len = (size_t)n;
    return 0;
}

static bool plain_name(const char *s)
{
    if (!s || !*s || *s == '.' || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!name_char(*p))
            return false;
    return true;
}

/* Receive one file into dfd/name; its E value appended to digests. */
static int recv_file(in *i, int dfd, const char *name, unsigned long long size, unsigned char *buf, sbuf *digests)
{
    int rc = -1;
    int fd = -1;
    _cleanup_json_ json_t *f = NULL;
    _cleanup_free_ char *where = xasprintf("inside file '%s'", name);
    i->where = where;
    if (hash_init(&i->file, i->err) < 0)
        return -1;
    i->in_file = true;
    size_t flen;
    if (in_small(i, 'F', 4096, (char *)buf, &flen) < 0)
        goto out;
    f = json_loads((char *)buf, 0, NULL);
    if (!f || strcmp(json_string_value(json_object_get(f, "name")) ?: "", name) != 0 ||
        (unsigned long long)json_integer_value(json_object_get(f, "size")) != size) {
        char what[128];
        snprintf(what, sizeof what, "file record '%.60s' where '%s' belongs", (char *)buf, name);
        corrupt(i, what);
        goto out;
    }
    fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        qq_fail(i->err, QQ_EXIT_FAIL, "create %s: %s", name, strerror(errno));
        goto out;
    }
    unsigned long long off = 0;
    for (;;) {
        char type;
        uint64_t n;
        if (in_record(i, &type, &n) < 0)
            goto out;
        if (type == 'E') {
            if (n != HASH_HEX_LEN) {
                corrupt(i, "a digest record of the wrong length");
                goto out;
            }
            char hex[HASH_HEX_LEN + 1], want[HASH_HEX_LEN + 1];
            i->in_file = false;
            hash_final(&i->file, hex);
            if (in_read(i, want, HASH_HEX_LEN, false) < 0)
                goto out;
            want[HASH_HEX_LEN] = '\0';
            if (strcmp(hex, want) != 0) {
                qq_fail(i->err, QQ_EXIT_FAIL, "corrupted stream: file '%s' does not match its sha256 "
                        "(the stream says %.12s…, its bytes give %.12s…)", name, want, hex);
                goto out;
            }
            if (off != size) {
                corrupt(i, "a file shorter than its size");
                goto out;
            }
            sbuf_add(digests, want, HASH_HEX_LEN);
            break;
        }
        if (type == 'D') {
            if (n == 0 || n > SNAPX_CHUNK || n > size - off) {
                corrupt(i, "a data record past the file's size");
                goto out;
            }
            if (in_read(i, buf, (size_t)n, false) < 0)
                goto out;
            hash_update(&i->file, buf, (size_t)n);
            for (size_t done = 0; done < n;) {
                ssize_t w = pwrite(fd, buf + done, (size_t)n - done, (off_t)(off + done));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w < 0) {
                    qq_fail(i->err, QQ_EXIT_FAIL, "write %s: %s", name, strerror(errno));
                    goto out;
                }
                done += (size_t)w;
            }
            /* start writing back what came so far: the fsync at the end then waits for little */
            if ((off + n) / WRITEBACK_STEP != off / WRITEBACK_STEP)
                sync_file_range(fd, (off_t)((off + n) / WRITEBACK_STEP - 1) * (off_t)WRITEBACK_STEP,
                                (off_t)WRITEBACK_STEP, SYNC_FILE_RANGE_WRITE);
            off += n;
        } else if (type == 'Z') {
            unsigned char z[8];
            if (n != 8 || in_read(i, z, 8, false) < 0) {
                if (n != 8)
                    corrupt(i, "a hole record of the wrong length");
                goto out;
            }
            hash_update(&i->file, z, 8);
            uint64_t h = get_u64(z);
            if (h > size - off) {
                corrupt(i, "a hole past the file's size");
                goto out;
            }
            off += h;
        } else {
            corrupt(i, "an unknown record inside a file");
            goto out;
        }
    }
    if (ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0) {
        qq_fail(i->err, QQ_EXIT_FAIL, "%s: %s", name, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    hash_free(&i->file);
    i->in_file = false;
    return rc;
}

/* The snapshot names the VM has (any kind), or NULL with err. */
static bool has_name(json_t *list, const char *name)
{
    size_t k;
    json_t *x;
    json_array_foreach(list, k, x)
        if (strcmp(json_string_value(json_object_get(x, "name")) ?: "", name) == 0)
            return true;
    return false;
}

/* Refuse an existing name (unless force on a state-file one); *replaced. */
/* Refuse an existing name, unless force replaces one of the same kind; *replaced. */
static int check_free(const config *c, const char *vm, const char *dir, const char *name, const char *kind,
                      bool force, bool *replaced, qq_err *err)
{
    _cleanup_json_ json_t *list = snap_list(c, vm, err);
    if (!list)
        return -1;
    *replaced = false;
    _cleanup_free_ char *sd = layout_path(dir, LAYOUT_SNAPSHOTS);
    _cleanup_free_ char *state = xasprintf("%s/%s.state", sd, name), *mdir = xasprintf("%s/%s", sd, name);
    struct stat st;
    bool state_file = lstat(state, &st) == 0 && S_ISREG(st.st_mode);
    bool mapped = lstat(mdir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!has_name(list, name) && !state_file && !mapped)
        return 0;
    if (!force)
        return qq_fail(err, QQ_EXIT_FAIL,
                       "%s has a snapshot '%s' already: import it under another name (--as NAME), or replace "
                       "it (--force)", vm, name);
    bool same = strcmp(kind, "mapped") == 0 ? mapped && !state_file : state_file && !mapped;
    if (!same)
        return qq_fail(err, QQ_EXIT_FAIL,
                       "%s has a snapshot '%s' already, of another kind than this %s one, which an import does not "
                       "replace: import it under another name (--as NAME)", vm, name, kind);
    *replaced = true;
    return 0;
}

/* What import_from learnt from the header. */
typedef struct plan {
    const char *kind;
    const char *name;
    json_t *files;               /* the header's [{name, size}] */
    json_t *bases;               /* mapped: [{layer, image, file, format}] */
    const char *state_dir, *config_dir;   /* the exporting config's */
} plan;

static int run_qemu_img(const config *c, char **args, qq_err *err)
{
    char *argv[16];
    size_t n = 0;
    argv[n++] = (char *)config_qemu_img(c);
    for (; *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    _cleanup_sbuf_ sbuf e = SBUF_INIT;
    proc_run_opts po = { .err = &e, .timeout_ms = 120000 };
    proc_result pr;
    if (proc_run(argv, &po, &pr, err) < 0)
        return -1;
    if (!WIFEXITED(pr.status) || WEXITSTATUS(pr.status) != 0)
        return qq_fail(err, QQ_EXIT_FAIL, "qemu-img %s: %s", args[0] ? argv[1] : "", e.len ? sbuf_str(&e) : "failed");
    return 0;
}

/* A string of the exporting host's paths, in this host's. */
static char *rehome(const plan *p, const config *c, const char *s)
{
    char *a = p->state_dir ? snapargs_replace_path(s, p->state_dir, config_state_dir(c)) : xstrdup(s);
    if (!p->config_dir || strcmp(a, s) != 0)   /* a path in the state dir is rewritten once */
        return a;
    char *b = snapargs_replace_path(a, p->config_dir, config_dir(c));
    free(a);
    return b;
}

static void rehome_strings(const plan *p, const config *c, json_t *arr, const char *key)
{
    size_t k;
    json_t *x;
    json_array_foreach(arr, k, x) {
        json_t *v = key ? json_object_get(x, key) : x;
        if (!json_is_string(v))
            continue;
        _cleanup_free_ char *n = rehome(p, c, json_string_value(v));
        json_string_set(v, n);
    }
}

/* The received files in tdfd made a snapshot of this host: the record's
 * paths rewritten, each layer rebased onto this host's image. */
static int finish_mapped(const config *c, const char *vm, const plan *p, int tdfd, const char *tmp, qq_err *err)
{
    _cleanup_close_ int mfd = openat(tdfd, "meta", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_json_ json_t *m = mfd >= 0 ? json_loadfd(mfd, 0, NULL) : NULL;
    if (!json_is_object(m) || strcmp(json_string_value(json_object_get(m, "kind")) ?: "", "mapped") != 0)
        return qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: the snapshot's meta.json is not a mapped one");
    rehome_strings(p, c, json_object_get(m, "args"), NULL);
    rehome_strings(p, c, json_object_get(m, "disks"), "file");
    /* a restore writes each layer back over its disk: only a disk the VM's cmd names here */
    vm_spec s;
    if (config_vm(c, vm, 0, &s, err) < 0)
        return -1;
    size_t k;
    json_t *x;
    const char *stray = NULL;
    json_array_foreach(json_object_get(m, "disks"), k, x) {
        const char *file = json_string_value(json_object_get(x, "file"));
        bool used = false;
        for (size_t a = 0; file && *file && a < s.nargs && !used; a++)
            used = strstr(s.args[a], file) != NULL;
        if (!used && !stray)
            stray = file ? file : "(none)";
    }
    int rc = stray ? qq_fail(err, QQ_EXIT_FAIL, "the snapshot's disk %s is not one this host's config gives the VM",
                             stray)
                   : 0;
    vm_spec_free(&s);
    if (rc < 0)
        return -1;
    _cleanup_free_ char *text = json_dumps(m, JSON_INDENT(2));
    _cleanup_free_ char *metap = xasprintf("%s/meta.json", tmp);
    if (fs_write_atomic(metap, text, strlen(text), 0600, err) < 0)
        return -1;
    unlinkat(tdfd, "meta", 0);
    json_array_foreach(p->bases, k, x) {
        _cleanup_free_ char *layer = xasprintf("%s/%s", tmp, json_string_value(json_object_get(x, "layer")));
        _cleanup_free_ char *base = xasprintf("%s/img.%s/%s", config_state_dir(c),
                                              json_string_value(json_object_get(x, "image")),
                                              json_string_value(json_object_get(x, "file")));
        char *args[] = { "rebase", "-u", "-b", base, "-F", (char *)json_string_value(json_object_get(x, "format")),
                         layer, NULL };
        if (run_qemu_img(c, args, err) < 0)
            return -1;
    }
    json_array_foreach(json_object_get(m, "disks"), k, x) {   /* layers are read-only, as a save leaves them */
        const char *l = json_string_value(json_object_get(x, "layer"));
        if (l && plain_name(l))
            fchmodat(tdfd, l, 0400, 0);
    }
    return 0;
}

static int install(const config *c, const char *vm, const char *dir, int tdfd, const char *tmp, const plan *p,
                   bool force, snapx_result *r, qq_err *err)
{
    _cleanup_close_ int lock = layout_lock_vm(vm, dir, "snapshot import", clock_ms() + LOCK_S * 1000LL, LOCK_S,
                                              "the snapshot commands' bound", err);
    if (lock < 0)
        return -1;
    if (check_free(c, vm, dir, p->name, p->kind, force, &r->replaced, err) < 0)
        return -1;
    if (sig_caught())
        return qq_fail(err, QQ_EXIT_FAIL, "interrupted");
    _cleanup_free_ char *sd = layout_path(dir, LAYOUT_SNAPSHOTS);
    _cleanup_close_ int sdfd = tree_open(sd);
    if (sdfd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", sd, strerror(errno));
    if (strcmp(p->kind, "mapped") == 0) {
        /* the whole dir in one rename; one it replaces is swapped out, then removed */
        const char *base = strrchr(tmp, '/') + 1;
        int rc = r->replaced ? renameat2(sdfd, base, sdfd, p->name, RENAME_EXCHANGE)
                             : renameat2(sdfd, base, sdfd, p->name, RENAME_NOREPLACE);
        if (rc < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "install %s/%s: %s", sd, p->name, strerror(errno));
        if (r->replaced)
            tree_remove_at(sdfd, base, tmp, NULL);
    } else {
        _cleanup_free_ char *meta = xasprintf("%s.json", p->name), *state = xasprintf("%s.state", p->name);
        /* the record first: a snapshot is listed once its .state is there */
        if (renameat(tdfd, "meta", sdfd, meta) < 0 || renameat(tdfd, "state", sdfd, state) < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "install %s/%s: %s", sd, p->name, strerror(errno));
    }
    if (fsync(sdfd) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", sd, strerror(errno));
    return 0;
}

/* The header's files: plain, distinct names with sizes, "meta" last (at
 * most 1 MiB); a state-file snapshot has exactly "state" and "meta". */
static int check_files(const char *kind, json_t *files, qq_err *err)
{
    size_t n = json_array_size(files);
    if (n < 2 || n > MAX_FILES + 1)
        return qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: a snapshot of %zu files", n);
    for (size_t f = 0; f < n; f++) {
        json_t *x = json_array_get(files, f);
        const char *fn = json_string_value(json_object_get(x, "name"));
        json_t *sz = json_object_get(x, "size");
        if (!plain_name(fn) || !json_is_integer(sz) || json_integer_value(sz) < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: its header's file %zu has no plain name and size",
                           f + 1);
        for (size_t g = 0; g < f; g++)
            if (strcmp(fn, json_string_value(json_object_get(json_array_get(files, g), "name"))) == 0)
                return qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: file '%s' twice", fn);
        bool last = f == n - 1;
        if (last != (strcmp(fn, "meta") == 0) || (last && json_integer_value(sz) > HEADER_MAX))
            return qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: its record ('meta', at most 1 MiB) is not last");
        if (strcmp(kind, "state-file") == 0 && (n != 2 || (f == 0 && strcmp(fn, "state") != 0)))
            return qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: a state-file snapshot is 'state' and 'meta'");
    }
    return 0;
}

/* Each base a layer needs must be built here: "build image X first". */
static int check_bases(const config *c, const char *hname, json_t *bases, qq_err *err)
{
    size_t k;
    json_t *x;
    json_array_foreach(bases, k, x) {
        const char *layer = json_string_value(json_object_get(x, "layer"));
        const char *img = json_string_value(json_object_get(x, "image"));
        const char *file = json_string_value(json_object_get(x, "file"));
        const char *fmt = json_string_value(json_object_get(x, "format"));
        if (!plain_name(layer) || !img || snap_check_name(img, NULL) < 0 || !plain_name(file) || !fmt ||
            (strcmp(fmt, "raw") != 0 && strcmp(fmt, "qcow2") != 0))
            return qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: its header's base %zu", k + 1);
        if (config_check_img(c, img, NULL) < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "snapshot '%s' has disk layer %s on image %s, which this host's config "
                           "(%s) does not have", hname, layer, img, config_path(c));
        _cleanup_free_ char *base = xasprintf("%s/img.%s/%s", config_state_dir(c), img, file);
        struct stat st;
        if (stat(base, &st) < 0 || !S_ISREG(st.st_mode))
            return qq_fail(err, QQ_EXIT_FAIL, "snapshot '%s' has disk layer %s on image %s (%s), which is not built "
                           "here: build image %s first (`%s img build %s`)", hname, layer, img, file, img,
                           config_cli(c), img);
    }
    return 0;
}

static int import_from(const config *c, const char *vm, in *i, const snapx_import_opts *o, snapx_result *r,
                       qq_err *err)
{
    _cleanup_free_ char *dir = config_vm_dir(c, vm);
    leftover_sweep_imports(dir);
    char magic[MAGIC_LEN];
    i->where = "before its first byte";
    int m = in_read(i, magic, MAGIC_LEN, true);
    if (m == 1)
        return qq_fail(err, QQ_EXIT_FAIL, "%s is empty: no snapshot stream (did the export fail?)", i->shown);
    if (m < 0)
        return -1;
    if (memcmp(magic, MAGIC, MAGIC_LEN - 1) != 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s is not a qqmgr snapshot stream (`qqmgr snapshot export` writes one)",
                       i->shown);
    if ((unsigned char)magic[MAGIC_LEN - 1] != SNAPX_FORMAT)
        return qq_fail(err, QQ_EXIT_FAIL, "%s is a snapshot stream of format %d, which this qqmgr does not read "
                       "(it reads format %d): import it with a newer qqmgr", i->shown,
                       (unsigned char)magic[MAGIC_LEN - 1], SNAPX_FORMAT);
    i->where = "inside its header";
    /* the header, checked against S before it is believed */
    hash_ctx hh = { 0 };
    if (hash_init(&hh, err) < 0)
        return -1;
    hash_update(&hh, magic, MAGIC_LEN);
    i->file = hh;
    i->in_file = true;
    _cleanup_free_ char *htext = xmalloc(HEADER_MAX + 1);
    size_t hlen;
    if (in_small(i, 'H', HEADER_MAX, htext, &hlen) < 0) {
        hash_free(&i->file);
        i->in_file = false;
        return -1;
    }
    char shex[HASH_HEX_LEN + 1], want[HASH_HEX_LEN + 1];
    i->in_file = false;
    hash_final(&i->file, shex);
    if (in_small(i, 'S', HASH_HEX_LEN, want, NULL) < 0)
        return -1;
    if (strcmp(shex, want) != 0)
        return qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: its header does not match its sha256");
    _cleanup_json_ json_t *h = json_loads(htext, 0, NULL);
    const char *hvm = json_string_value(json_object_get(h, "vm"));
    const char *hname = json_string_value(json_object_get(h, "snapshot"));
    const char *kind = json_string_value(json_object_get(h, "kind"));
    json_t *args = json_object_get(h, "args"), *files = json_object_get(h, "files");
    if (!hvm || !hname || !kind || !json_is_array(args) || !json_is_array(files))
        return qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: its header lacks vm, snapshot, kind, args or files");
    if (strcmp(hvm, vm) != 0)
        return qq_fail(err, QQ_EXIT_FAIL,
                       "the stream holds snapshot '%s' of VM '%s', not of %s: import it into %s (a snapshot loads "
                       "only into the VM it was saved from)", hname, hvm, vm, hvm);
    if (strcmp(kind, "state-file") != 0 && strcmp(kind, "mapped") != 0)
        return qq_fail(err, QQ_EXIT_FAIL, "the stream holds a snapshot of kind '%s', which this qqmgr does not "
                       "import (it imports state-file and mapped snapshots)", kind);
    plan p = { .kind = strcmp(kind, "mapped") == 0 ? "mapped" : "state-file", .name = o->as ? o->as : hname,
               .files = files, .bases = json_object_get(h, "bases"),
               .state_dir = json_string_value(json_object_get(h, "state_dir")),
               .config_dir = json_string_value(json_object_get(h, "config_dir")) };
    if (snap_check_name(p.name, err) < 0)
        return -1;
    snprintf(r->snapshot, sizeof r->snapshot, "%s", p.name);
    r->kind = p.kind;
    _cleanup_json_ json_t *ours = snapargs_of(c, vm, 0, err);
    if (!ours)
        return -1;
    size_t k;
    json_t *a;
    bool strings = true;
    json_array_foreach(args, k, a)
        strings = strings && json_is_string(a);
    if (!strings)
        return qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: its header's args are not strings");
    if (!json_equal(args, ours)) {
        _cleanup_free_ char *d = args_diff(args, ours);
        return qq_fail(err, QQ_EXIT_FAIL, "the QEMU arguments of snapshot '%s' differ from this host's config "
                       "(%s): %s", hname, config_path(c), d);
    }
    if (check_files(p.kind, files, err) < 0 || check_bases(c, hname, p.bases, err) < 0)
        return -1;
    json_array_foreach(files, k, a)
        r->data += (unsigned long long)json_integer_value(json_object_get(a, "size"));
    bool replaced;
    if (check_free(c, vm, dir, p.name, p.kind, o->force, &replaced, err) < 0)
        return -1;
    /* into the temp dir */
    _cleanup_free_ char *sd = layout_path(dir, LAYOUT_SNAPSHOTS);
    if (layout_make_dir(sd, err) < 0)
        return -1;
    _cleanup_free_ char *tmp = leftover_import_dir(dir);
    if (mkdir(tmp, 0700) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", tmp, strerror(errno));
    int rc = -1;
    unsigned char *buf = xmalloc(SNAPX_CHUNK + 1);
    widen_pipe(i->fd);
    sbuf digests = SBUF_INIT;
    sbuf_add(&digests, want, HASH_HEX_LEN);
    _cleanup_close_ int tdfd = tree_open(tmp);
    if (tdfd < 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    json_array_foreach(files, k, a)
        if (recv_file(i, tdfd, json_string_value(json_object_get(a, "name")),
                      (unsigned long long)json_integer_value(json_object_get(a, "size")), buf, &digests) < 0)
            goto out;
    i->where = "before its last record";
    char thex[HASH_HEX_LEN + 1], twant[HASH_HEX_LEN + 1];
    if (in_small(i, 'T', HASH_HEX_LEN, twant, NULL) < 0 || hash_bytes(digests.buf, digests.len, thex, err) < 0)
        goto out;
    if (strcmp(thex, twant) != 0) {
        qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: its files do not match the stream's sha256");
        goto out;
    }
    char extra;
    i->where = "after its last record";
    int e = in_read(i, &extra, 1, true);
    if (e < 0)
        goto out;
    if (e == 0) {
        qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: bytes after its last record (at byte %llu)", i->pos - 1);
        goto out;
    }
    /* the record must be one snapshot list reads */
    {
        _cleanup_close_ int mfd = openat(tdfd, "meta", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_json_ json_t *mj = mfd >= 0 ? json_loadfd(mfd, 0, NULL) : NULL;
        if (!json_is_object(mj)) {
            qq_fail(err, QQ_EXIT_FAIL, "corrupted stream: the snapshot's record is not a JSON object");
            goto out;
        }
    }
    if (strcmp(p.kind, "mapped") == 0 && finish_mapped(c, vm, &p, tdfd, tmp, err) < 0)
        goto out;
    if (sig_caught()) {
        qq_fail(err, QQ_EXIT_FAIL, "interrupted");
        goto out;
    }
    if (install(c, vm, dir, tdfd, tmp, &p, o->force, r, err) < 0)
        goto out;
    rc = 0;
out:
    free(buf);
    sbuf_free(&digests);
    int pfd = tree_open(sd);
    if (pfd >= 0) {
        const char *base = strrchr(tmp, '/') + 1;
        tree_remove_at(pfd, base, tmp, NULL);
        close(pfd);
    }
    return rc;
}

int snapx_import(const config *c, const char *vm, const char *path, const snapx_import_opts *o,
                 snapx_result *r, qq_err *err)
{
    memset(r, 0, sizeof *r);
    if (config_check_vm(c, vm, err) < 0 || (o->as && snap_check_name(o->as, err) < 0))
        return -1;
    long long t0 = clock_ms();
    bool from_stdin = !path || strcmp(path, "-") == 0;
    in i = { .fd = 0, .shown = "stdin", .err = err };
    if (!from_stdin) {
        i.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (i.fd < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", path, strerror(errno));
        i.shown = path;
    }
    sig_scope ss;
    sig_catch(&ss);
    int rc = import_from(c, vm, &i, o, r, err);
    if (rc < 0 && sig_caught())
        qq_fail(err, QQ_EXIT_FAIL, "%s: interrupted: nothing was imported", vm);
    else if (rc < 0)
        qq_err_prefix(err, "import into %s", vm);
    sig_release(&ss);
    if (!from_stdin)
        close(i.fd);
    r->bytes = i.pos;
    r->seconds = (double)(clock_ms() - t0) / 1000.0;
    return rc;
}
