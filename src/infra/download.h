/* download — fetch a URL into a cache keyed by its sha256, verified while streaming.
 *
 * The cache is a directory of files named by their sha256 (lowercase hex):
 *   ${XDG_CACHE_HOME:-~/.cache}/qqmgr/sha256/<hex>
 * Directories it makes are 0700 and its files 0600 (sources may be private);
 * a directory that exists keeps the mode its user gave it.
 * A file only ever appears under that name after its sum was checked. The
 * sha256 is computed by a second thread that follows the file as it is
 * written, so hashing overlaps the transfer. The verified file is renamed
 * without an fdatasync; <hex>.ok records the boot it was verified in. An
 * existing <hex> whose record names this boot (or says "durable") is trusted
 * and returned at the cost of one small read; one from an earlier boot (a
 * crash may have cost it data) is rehashed once, then synced and marked
 * durable, or fetched again if it is damaged. Without /proc's boot_id every
 * download is synced before its rename.
 * While downloading, bytes go to <hex>.part; an interrupted transfer leaves the
 * .part, and the next call rehashes it and resumes with a Range request (a
 * server that ignores the range restarts from zero). <hex>.lock is flock'ed for
 * the whole transfer, so concurrent callers never fetch one file twice: the
 * second waits, then finds it cached. The lock file is removed afterwards.
 *
 * URLs: http://, https:// (redirects followed) and file://; a local path
 * becomes a file:// URL through download_url(). HTTP status >= 400,
 * a refused connection, a short transfer or a wrong sum are one-line errors
 * that name the URL (code QQ_EXIT_FAIL). A wrong sum deletes the .part; so
 * does a write error (a full disk, ENOSPC, or a file size limit, EFBIG: the
 * signal SIGXFSZ is ignored while fetching) and a body longer than the
 * expected size (download_cached_max: a body that never ends stops there).
 * Other failures keep a non-empty .part for resuming ("N bytes kept": what
 * the .part holds) and remove an empty one.
 * Bounds (so a hostile or broken server cannot fill the disk or hold a
 * build for ever):
 *   size   a body longer than the expected size (dl_opts.max_bytes), else
 *          than the server's Content-Length, else — no length given — than
 *          the cap $QQMGR_DOWNLOAD_MAX (a size: bytes, or K/M/G/T, binary;
 *          default 16G) fails, and its .part is removed
 *   rate   a transfer slower than $QQMGR_DOWNLOAD_MIN_RATE ("BYTES/SECONDS":
 *          under BYTES per second for SECONDS on end; default 1024/30) fails
 *          (libcurl's low-speed limit), keeping its .part to resume
 *   time   dl_opts.deadline_ms (clock_ms(), base/clock.h) bounds the whole
 *          call, the wait for another process's transfer included
 * A malformed variable is QQ_EXIT_USAGE naming it.
 * A progress bar and "waiting for another process" go to the reporter
 * (base/report.h), which shows them only to a person watching.
 */
#ifndef QQ_DOWNLOAD_H
#define QQ_DOWNLOAD_H

#include <stdbool.h>

#include "../base/err.h"

enum {
    DL_QUIET = 1 << 0,      /* never draw a progress bar */
};

typedef struct dl_result {
    bool fetched;                  /* false: was already cached */
    unsigned long long bytes;      /* bytes transferred by this call */
    unsigned long long resumed_at; /* offset a resumed transfer started from, else 0 */
} dl_result;

/* The URL of where: where itself when it starts with a scheme ("https://",
 * "file://"), else a local path made absolute against base_dir when relative
 * and turned into a file:// URL (its bytes outside [A-Za-z0-9/._~-] percent-
 * encoded). malloc'd. */
char *download_url(const char *where, const char *base_dir);

/* The default cache directory (…/qqmgr/sha256), malloc'd; not created. */
char *download_cache_dir(qq_err *err);

/* Make sure the file with this sha256 is in cache_dir (NULL = the default,
 * created if missing), fetching it from url if needed. label names the file in
 * the progress bar (NULL: the URL's last segment). Returns the cached file's
 * path (malloc'd) or NULL with err filled. res may be NULL. */
char *download_cached(const char *url, const char *sha256, const char *cache_dir,
                      const char *label, int flags, dl_result *res, qq_err *err);

/* The same, with the file's expected size when it is known (0: unknown): a
 * body longer than max_bytes fails the download. */
char *download_cached_max(const char *url, const char *sha256, const char *cache_dir, const char *label,
                          int flags, unsigned long long max_bytes, dl_result *res, qq_err *err);

typedef struct dl_opts {
    const char *cache_dir;         /* NULL: the default */
    const char *label;             /* NULL: the URL's last segment */
    int flags;                     /* DL_* */
    unsigned long long max_bytes;  /* the file's expected size, 0 unknown */
    long long deadline_ms;         /* clock_ms() time the call must end by, 0 none */
    const char *sha512;            /* 128 hex digits, or NULL: see download_fetch */
} dl_opts;

/* download_cached with every option; o may be NULL. With o->sha512 the file's
 * sha512 is checked as well (computed while streaming, like the sha256), and
 * sha256 may be NULL: the file still lands under its sha256 name, and
 * <cache_dir>/../sha512/<hex> (written atomically after both were computed
 * from the same bytes: "<sha256>\n") names it. An entry is used only when it
 * is well formed and names a trusted cached file; else it is a miss and the
 * file is fetched (keyed by the sha512: sha512/<hex>.part and .lock). A
 * cached file without an entry is rehashed with sha512 once. A wrong sha512
 * fails like a wrong sha256 ("sha512 mismatch: expected …, got …") and keeps
 * nothing. */
char *download_fetch(const char *url, const char *sha256, const dl_opts *o, dl_result *res, qq_err *err);

#endif
