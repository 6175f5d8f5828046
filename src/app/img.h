/* img — build the images of a config: raw, and cloud-init customised.
 *
 * img_build() builds image NAME into <state dir>/img.NAME/ (img_spec.path is
 * the file VMs use). It takes the image's lock (<dir>/lock; a second build of
 * the same image waits, then usually finds it up to date).
 *
 * raw: `qemu-img create -f raw` of img_size. cloud-init, stage by stage:
 *   base     download base_img into the shared cache (download.h)
 *   copy     sparse-aware copy of the base + `qemu-img resize` to img_size,
 *            named base-<inputs hash>.<fmt> so an older overlay keeps its backing
 *   env      env_hook run from the config's directory (env as one JSON line on
 *            stdin; the last non-empty stdout line is the new env)
 *   render   templates rendered with env + img_self + cloud_init_iso
 *   sources  fetched through the cache
 *   iso      NoCloud ISO (volume cidata) of the rendered files and sources
 *   boot     a qcow2 overlay on the copy, then QEMU runs build_args in the
 *            foreground until it exits; success only when it exits 0 by itself
 *            within build_timeout (or what opts->timeout_s left); its output
 *            goes to <dir>/build.log (and to
 *            stderr when that is a terminal and opts->quiet is false). A QMP
 *            socket is added (-qmp) and polled: a guest in internal-error or
 *            guest-panicked fails the build at once. That QEMU runs in its own
 *            session and is killed when qqmgr dies (even by kill -9); SIGINT,
 *            SIGTERM or SIGHUP of qqmgr end it and fail the build.
 * Each stage records the hash of its inputs (a stamp) and is skipped when
 * they did not change; opts->force redoes everything. The image VMs use is
 * only ever replaced by rename() after a successful build: a failed, timed
 * out or interrupted build leaves the previous image as it was (a
 * <path>.building left by a killed build is removed by the next one). A build
 * that would replace the image while a running VM of the config uses it
 * (vm_spec.images) is refused, QQ_EXIT_FAIL naming the VM; an up-to-date image
 * is no build and is not refused.
 *
 * The report (always set on success, may be set on failure; caller decrefs)
 * is {"image", "builder", "path", "up_to_date", "stages": [{"stage",
 * "action": "done"|"skipped"|"downloaded"|"cached", ...}]}.
 * Errors: QQ_EXIT_USAGE for config/template problems, QQ_EXIT_FAIL otherwise;
 * one line naming the image and the stage.
 */
#ifndef QQ_IMG_H
#define QQ_IMG_H

#include <jansson.h>
#include <stdbool.h>

#include "../base/err.h"
#include "config.h"

typedef struct img_build_opts {
    bool force;            /* redo every stage */
    int timeout_s;         /* > 0: bound on the whole build, every stage (downloads, qemu-img,
                              env_hook, the boot: it overrides build_timeout) */
    bool quiet;            /* no progress bars or QEMU output on the terminal */
    bool debug;            /* print the commands that are run (stderr) */
} img_build_opts;

int img_build(const config *c, const char *name, const img_build_opts *opts, json_t **report,
              qq_err *err);

/* The running VM of the config that uses image (its rendered arguments name
 * it through {{.img.NAME}}), or NULL (malloc'd): what refuses a build, and
 * `img rm`. */
char *img_running_user(const config *c, const char *image);

#endif
