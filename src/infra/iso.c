/* iso — NoCloud ISO writer over libisofs (loaded on first use); see iso.h. */
#include "iso.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>

#include "../base/cleanup.h"
#include "../base/sbuf.h"
#include "dl.h"

/* libisofs is dlopen()ed by isofs_load() when an ISO is written (see dl.h):
 * only `img build` writes one. Each function below is called through the
 * table; the macros keep the code reading as plain libisofs calls (a macro
 * does not expand inside its own expansion, so the field keeps the name). */
#define ISOFS_FNS(X) \
    X(iso_init) \
    X(iso_finish) \
    X(iso_set_msgs_severities) \
    X(iso_error_to_msg) \
    X(iso_image_new) \
    X(iso_image_set_volume_id) \
    X(iso_image_get_root) \
    X(iso_tree_add_new_node) \
    X(iso_write_opts_new) \
    X(iso_write_opts_set_iso_level) \
    X(iso_write_opts_set_rockridge) \
    X(iso_write_opts_set_joliet) \
    X(iso_write_opts_set_relaxed_vol_atts) \
    X(iso_write_opts_set_omit_version_numbers) \
    X(iso_write_opts_set_no_force_dots) \
    X(iso_write_opts_set_replace_mode) \
    X(iso_image_create_burn_source) \
    X(iso_write_opts_free) \
    X(iso_image_unref)

static struct {
#define X(f) __typeof__(f) *f;
    ISOFS_FNS(X)
#undef X
} isofs;

#define iso_init (*isofs.iso_init)
#define iso_finish (*isofs.iso_finish)
#define iso_set_msgs_severities (*isofs.iso_set_msgs_severities)
#define iso_error_to_msg (*isofs.iso_error_to_msg)
#define iso_image_new (*isofs.iso_image_new)
#define iso_image_set_volume_id (*isofs.iso_image_set_volume_id)
#define iso_image_get_root (*isofs.iso_image_get_root)
#define iso_tree_add_new_node (*isofs.iso_tree_add_new_node)
#define iso_write_opts_new (*isofs.iso_write_opts_new)
#define iso_write_opts_set_iso_level (*isofs.iso_write_opts_set_iso_level)
#define iso_write_opts_set_rockridge (*isofs.iso_write_opts_set_rockridge)
#define iso_write_opts_set_joliet (*isofs.iso_write_opts_set_joliet)
#define iso_write_opts_set_relaxed_vol_atts (*isofs.iso_write_opts_set_relaxed_vol_atts)
#define iso_write_opts_set_omit_version_numbers (*isofs.iso_write_opts_set_omit_version_numbers)
#define iso_write_opts_set_no_force_dots (*isofs.iso_write_opts_set_no_force_dots)
#define iso_write_opts_set_replace_mode (*isofs.iso_write_opts_set_replace_mode)
#define iso_image_create_burn_source (*isofs.iso_image_create_burn_source)
#define iso_write_opts_free (*isofs.iso_write_opts_free)
#define iso_image_unref (*isofs.iso_image_unref)

static int isofs_load(qq_err *err)
{
    static const char *const sonames[] = { "libisofs.so.6", "libisofs.so", NULL };
    static const char *const syms[] = {
#define X(f) #f,
        ISOFS_FNS(X)
#undef X
        NULL,
    };
    static qq_dl_lib lib = { "libisofs", "libisofs6", sonames, syms, &isofs, sizeof isofs, NULL };
    return qq_dl_load(&lib, err);
}

#define SECTOR 2048
#define OUTBUF (1024 * 1024)

static bool plain_name(const char *s)
{
    return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Pull the image out of libisofs's writer thread into fd. */
static int drain(struct burn_source *src, int fd, const char *tmp, qq_err *err)
{
    _cleanup_free_ unsigned char *buf = malloc(OUTBUF);
    if (!buf)
        abort();
    off_t total = src->get_size(src), done = 0;
    size_t fill = 0;
    for (;;) {
        /* one sector per call: the ring buffer reports EOF, not a short read */
        int n = src->read_xt(src, buf + fill, SECTOR);
        if (n < 0)
            return qq_fail(err, QQ_EXIT_FAIL, "%s: libisofs failed while writing the image", tmp);
        fill += (size_t)n;
        if (fill + SECTOR > OUTBUF || n < SECTOR) {
            if (write_all(fd, buf, fill) < 0)
                return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", tmp, strerror(errno));
            done += (off_t)fill;
            fill = 0;
        }
        if (n < SECTOR)
            break;
    }
    if (done != total)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: short image (%lld of %lld bytes)", tmp,
                       (long long)done, (long long)total);
    return 0;
}

static int build(const char *out, const char *tmp, const char *volid, const iso_entry *files,
                 size_t n, qq_err *err)
{
    IsoImage *image = NULL;
    IsoWriteOpts *opts = NULL;
    struct burn_source *src = NULL;
    int rc = -1, r;

    if ((r = iso_image_new(volid, &image)) < 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: libisofs: %s", out, iso_error_to_msg(r));
        goto done;
    }
    iso_image_set_volume_id(image, volid);
    IsoDir *root = iso_image_get_root(image);
    for (size_t i = 0; i < n; i++) {
        IsoNode *node = NULL;
        if (access(files[i].path, R_OK) < 0) {
            qq_fail(err, QQ_EXIT_FAIL, "%s: %s: %s", out, files[i].path, strerror(errno));
            goto done;
        }
        r = iso_tree_add_new_node(image, root, files[i].name, files[i].path, &node);
        if (r < 0) {
            qq_fail(err, QQ_EXIT_FAIL, "%s: adding %s (from %s): %s", out, files[i].name,
                    files[i].path, iso_error_to_msg(r));
            goto done;
        }
    }
    if ((r = iso_write_opts_new(&opts, 0)) < 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: libisofs: %s", out, iso_error_to_msg(r));
        goto done;
    }
    iso_write_opts_set_iso_level(opts, 3);           /* files over 4 GiB */
    iso_write_opts_set_rockridge(opts, 1);
    iso_write_opts_set_joliet(opts, 1);
    iso_write_opts_set_relaxed_vol_atts(opts, 1);    /* "cidata", not "CIDATA" */
    iso_write_opts_set_omit_version_numbers(opts, 3); /* Joliet "user-data", not */
    iso_write_opts_set_no_force_dots(opts, 3);        /* "user-data.;1" */
    iso_write_opts_set_replace_mode(opts, 1, 1, 1, 1); /* 0555/0444, root:root */
    if ((r = iso_image_create_burn_source(image, opts, &src)) < 0) {
        src = NULL;
        qq_fail(err, QQ_EXIT_FAIL, "%s: libisofs: %s", out, iso_error_to_msg(r));
        goto done;
    }
    {
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            qq_fail(err, QQ_EXIT_FAIL, "%s: %s", tmp, strerror(errno));
            src->cancel(src);
            goto done;
        }
        if (drain(src, fd, tmp, err) < 0) {
            src->cancel(src);
            goto done;
        }
        if (fsync(fd) < 0) {
            qq_fail(err, QQ_EXIT_FAIL, "%s: %s", tmp, strerror(errno));
            goto done;
        }
    }
    rc = 0;
done:
    if (src) {
        src->free_data(src);
        free(src);
    }
    if (opts)
        iso_write_opts_free(opts);
    if (image)
        iso_image_unref(image);
    return rc;
}

int iso_write_cidata(const char *out, const char *volid, const iso_entry *files, size_t n,
                     qq_err *err)
{
    if (!volid)
        volid = "cidata";
    for (size_t i = 0; i < n; i++) {
        if (!plain_name(files[i].name))
            return qq_fail(err, QQ_EXIT_USAGE,
                           "%s: \"%s\" is not a plain file name (no '/', '.' or '..')", out,
                           files[i].name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(files[i].name, files[j].name) == 0)
                return qq_fail(err, QQ_EXIT_USAGE, "%s: two files named \"%s\"", out,
                               files[i].name);
    }
    if (isofs_load(err) < 0)
        return -1;
    int r = iso_init();
    if (r < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "libisofs: %s", iso_error_to_msg(r));
    /* errors come back as return codes; keep libisofs itself quiet */
    iso_set_msgs_severities("NEVER", "NEVER", "qqmgr");

    sbuf tb = SBUF_INIT;
    sbuf_addf(&tb, "%s.tmp", out);
    _cleanup_free_ char *tmp = sbuf_steal(&tb);
    r = build(out, tmp, volid, files, n, err);
    iso_finish();
    if (r == 0 && rename(tmp, out) < 0)
        r = qq_fail(err, QQ_EXIT_FAIL, "%s: %s", out, strerror(errno));
    if (r < 0)
        unlink(tmp);
    return r;
}
