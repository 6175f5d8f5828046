/* download — a sha256-keyed download cache over libcurl; see download.h. */
#include "curl_dl.h"   /* libcurl is loaded on first use */
#include "download.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/cleanup.h"
#include "../base/report.h"
#include "../base/sbuf.h"
#include "../base/clock.h"
#include "hash.h"
#include "lockfile.h"

/* Bytes per write callback: big enough that hashing and write(2) run on
 * large blocks, small enough to keep the progress bar lively. */
#define DL_BUFFER (512 * 1024)

static void curl_cleanupp(CURL **c) { if (*c) curl_easy_cleanup(*c); }
static void slist_freep(struct curl_slist **l) { if (*l) curl_slist_free_all(*l); }

char *download_cache_dir(qq_err *err)
{
    sbuf b = SBUF_INIT;
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        sbuf_addf(&b, "%s/qqmgr/sha256", xdg);
    else if (home && home[0] == '/')
        sbuf_addf(&b, "%s/.cache/qqmgr/sha256", home);
    else {
        qq_fail(err, QQ_EXIT_FAIL, "cannot place the download cache: neither XDG_CACHE_HOME nor HOME is set");
        return NULL;
    }
    return sbuf_steal(&b);
}

static int mkdir_parents(const char *dir, qq_err *err)
{
    _cleanup_free_ char *p = strdup(dir);
    if (!p)
        abort();
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0700) < 0 && errno != EEXIST)
                return qq_fail(err, QQ_EXIT_FAIL, "%s: cannot create directory: %s", p, strerror(errno));
            *s = c;
            if (!c)
                break;
        }
    }
    return 0;
}

static void note_waiting(void *url)
{
    report_note("waiting for another process downloading %s", (const char *)url);
}

/* Take the exclusive lock of a download (lockfile.h: the previous holder
 * unlinks the file when done; then the new one is locked instead), waiting
 * until deadline_ms (0: for ever). */
static int lock_file(const char *path, const char *url, long long deadline_ms, qq_err *err)
{
    lockfile_opts o = { .deadline_ms = deadline_ms ? deadline_ms : LOCKFILE_FOREVER, .mode = 0600,
                        .on_wait = note_waiting, .arg = (void *)url };
    int fd = lockfile_take(path, &o, err);
    if (fd < 0 && errno == EWOULDBLOCK)
        qq_fail(err, QQ_EXIT_FAIL, "%s: the time ran out waiting for another process downloading it", url);
    return fd;
}

static void unlock_file(const char *path, int fd)
{
    unlink(path);       /* while still holding it: waiters notice and retry */
    close(fd);
}

/* The sha256 runs in a second thread that follows the .part file as it
 * grows (pread of what was just written, from the page cache), so hashing
 * overlaps with receiving: a download costs what the transfer costs. The
 * same thread first rehashes what an earlier interrupted transfer left. */
typedef struct hasher {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd;
    hash_ctx h;
    hash_ctx h512;                /* zeroed (md NULL: hash_update does nothing) unless with512 */
    bool with512;
    unsigned long long avail;     /* bytes in the file that may be hashed */
    unsigned long long hashed;
    bool closing;                 /* no more bytes will come */
    int read_errno;
    bool running;
} hasher;

#define HASH_CHUNK (1u << 20)

static void *hasher_main(void *arg)
{
    hasher *hs = arg;
    unsigned char *buf = malloc(HASH_CHUNK);
    if (!buf)
        abort();
    pthread_mutex_lock(&hs->mu);
    for (;;) {
        while (hs->hashed == hs->avail && !hs->closing)
            pthread_cond_wait(&hs->cv, &hs->mu);
        if (hs->hashed == hs->avail || hs->read_errno)
            break;
        unsigned long long off = hs->hashed, left = hs->avail - off;
        pthread_mutex_unlock(&hs->mu);
        size_t want = left < HASH_CHUNK ? (size_t)left : HASH_CHUNK;
        ssize_t n = pread(hs->fd, buf, want, (off_t)off);
        pthread_mutex_lock(&hs->mu);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            hs->read_errno = n < 0 ? errno : EIO;
            break;
        }
        pthread_mutex_unlock(&hs->mu);
        hash_update(&hs->h, buf, (size_t)n);
        hash_update(&hs->h512, buf, (size_t)n);
        pthread_mutex_lock(&hs->mu);
        hs->hashed += (unsigned long long)n;
    }
    pthread_mutex_unlock(&hs->mu);
    free(buf);
    return NULL;
}

/* Start hashing fd from offset 0; its first `have` bytes may be hashed at once. */
static int hasher_start(hasher *hs, int fd, unsigned long long have, bool with512, qq_err *err)
{
    *hs = (hasher){ .fd = fd, .avail = have, .with512 = with512 };
    if (hash_init(&hs->h, err) < 0)
        return -1;
    if (with512 && hash512_init(&hs->h512, err) < 0) {
        hash_free(&hs->h);
        return -1;
    }
    pthread_mutex_init(&hs->mu, NULL);
    pthread_cond_init(&hs->cv, NULL);
    int e = pthread_create(&hs->th, NULL, hasher_main, hs);
    if (e) {
        hash_free(&hs->h);
        hash_free(&hs->h512);
        return qq_fail(err, QQ_EXIT_FAIL, "sha256: cannot start a thread: %s", strerror(e));
    }
    hs->running = true;
    return 0;
}

static void hasher_feed(hasher *hs, unsigned long long bytes)
{
    pthread_mutex_lock(&hs->mu);
    hs->avail += bytes;
    pthread_cond_signal(&hs->cv);
    pthread_mutex_unlock(&hs->mu);
}

/* Wait for the thread to hash everything fed, and stop it. Returns the read
 * errno (0: hex is the digest of the file's first `avail` bytes). hex may be
 * NULL to abandon the digest. Safe to call twice. */
static int hasher_finish(hasher *hs, char hex[HASH_HEX_LEN + 1], char hex512[HASH512_HEX_LEN + 1])
{
    if (!hs->running)
        return 0;
    pthread_mutex_lock(&hs->mu);
    hs->closing = true;
    pthread_cond_signal(&hs->cv);
    pthread_mutex_unlock(&hs->mu);
    pthread_join(hs->th, NULL);
    hs->running = false;
    pthread_mutex_destroy(&hs->mu);
    pthread_cond_destroy(&hs->cv);
    if (hex && !hs->read_errno)
        hash_final(&hs->h, hex);
    else
        hash_free(&hs->h);
    if (hex512 && !hs->read_errno)
        hash512_final(&hs->h512, hex512);
    else
        hash_free(&hs->h512);
    return hs->read_errno;
}

typedef struct xfer {
    int fd;
    hasher *hs;
    unsigned long long have;      /* bytes in the .part file */
    unsigned long long got;       /* bytes received by this transfer */
    unsigned long long max_bytes; /* the file's expected size, 0 unknown */
    unsigned long long cap;       /* the size bound when the server gives no length */
    unsigned long long limit;     /* the bound of this transfer (0: not known yet) */
    bool capped;                  /* limit is cap: the server gave no length */
    bool too_long;                /* more than limit arrived */
    long min_rate, min_rate_s;    /* the low-speed limit */
    long long deadline_ms;        /* 0 none */
    CURL *curl;
    int write_errno;
    const char *label;
    bool progress;
    double last_draw;
    double t0;
} xfer;

static double now_s(void)
{
    return (double)clock_ms() / 1000.0;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    xfer *x = userdata;
    size_t len = size * nmemb;
    if (!x->limit) {
        /* the expected size, else the server's length, else the cap */
        curl_off_t cl = -1;
        if (x->max_bytes)
            x->limit = x->max_bytes;
        else if (curl_easy_getinfo(x->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0)
            x->limit = x->have + (unsigned long long)cl;
        else {
            x->limit = x->have + x->cap;
            x->capped = true;
        }
    }
    if (x->have + len > x->limit) {
        x->too_long = true;   /* a body that never ends stops at its bound */
        return 0;
    }
    const char *p = ptr;
    size_t left = len;
    while (left) {
        ssize_t n = write(x->fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            x->write_errno = errno;
            return 0;     /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        p += n;
        left -= (size_t)n;
    }
    hasher_feed(x->hs, len);
    x->have += len;
    x->got += len;
    return len;
}

static void human(double v, char *buf, size_t len)
{
    const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, unit[i]);
}

static void draw(xfer *x, double total, bool final)
{
    double t = now_s();
    if (!final && t - x->last_draw < 0.1)
        return;
    x->last_draw = t;
    char have[32], tot[32], rate[32];
    human((double)x->have, have, sizeof have);
    double el = t - x->t0;
    human(el > 0 ? (double)x->got / el : 0, rate, sizeof rate);
    int width = 80;
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        width = ws.ws_col;
    char label[40], line[512];
    snprintf(label, sizeof label, "%s", x->label);
    if (total > 0) {
        human(total, tot, sizeof tot);
        int bar = 24;
        int fill = (int)((double)x->have / total * bar);
        if (fill > bar)
            fill = bar;
        char b[32];
        for (int i = 0; i < bar; i++)
            b[i] = i < fill ? '#' : '-';
        b[bar] = '\0';
        snprintf(line, sizeof line, "%.*s [%s] %3d%% %s/%s %s/s", width - 60 > 8 ? width - 60 : 8, label, b,
                 (int)((double)x->have * 100 / total), have, tot, rate);
    } else {
        snprintf(line, sizeof line, "%s %s %s/s", label, have, rate);
    }
    if (final)
        report_progress_end("%s", line);
    else
        report_progress("%s", line);
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dlnow, (void)ultotal, (void)ulnow;
    xfer *x = userdata;
    /* dltotal counts only this transfer; what the .part held before is extra */
    double total = dltotal > 0 ? (double)(x->have - x->got) + (double)dltotal : 0;
    draw(x, total, false);
    return 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* One libcurl transfer appending to x->fd from offset x->have. */
static CURLcode transfer(const char *url, xfer *x, long *code, char *errbuf)
{
    _cleanup_(curl_cleanupp) CURL *c = curl_easy_init();
    _cleanup_(slist_freep) struct curl_slist *hdr = NULL;
    if (!c)
        return CURLE_OUT_OF_MEMORY;
    errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 20L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a stalled or dripping server: under min_rate B/s for min_rate_s s ends the transfer */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, x->min_rate);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, x->min_rate_s);
    if (x->deadline_ms) {
        long long left = x->deadline_ms - clock_ms();
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
    }
    x->curl = c;
    x->limit = 0;
    x->capped = false;
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, (long)DL_BUFFER);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "qqmgr/0.1");
    /* the bytes are hashed as they are: no transparent decompression */
    curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    hdr = curl_slist_append(hdr, "Accept-Encoding: identity");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    if (x->have)
        curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)x->have);
    if (x->progress) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    }
    CURLcode rc = curl_easy_perform(c);
    *code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    return rc;
}

static const char *url_label(const char *url)
{
    const char *end = url + strcspn(url, "?#");
    const char *s = end;
    while (s > url && s[-1] != '/')
        s--;
    return s;
}

/* Restart the .part from zero. */
static int part_reset(xfer *x, const char *part, qq_err *err)
{
    bool with512 = x->hs->with512;
    hasher_finish(x->hs, NULL, NULL);
    if (ftruncate(x->fd, 0) < 0 || lseek(x->fd, 0, SEEK_SET) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", part, strerror(errno));
    x->have = 0;
    return hasher_start(x->hs, x->fd, 0, with512, err);
}

/* Durability without an fdatasync per download: a verified file is renamed
 * to <hex> unsynced, and <hex>.ok records the boot it was verified in
 * ("boot <boot_id>"). Within that boot no crash can have damaged it, so it is
 * trusted; in a later boot (the data may have been lost in a crash) it is
 * rehashed once, then fdatasync'ed and marked "durable" for good. Without a
 * boot id (no /proc), every download is fdatasync'ed before its rename. */
static void boot_id(char out[64])
{
    out[0] = '\0';
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, out, 63);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

/* Is the cached file trusted without rehashing? */
static bool cached_trusted(const char *okpath)
{
    char buf[128], id[64];
    int fd = open(okpath, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    if (strcmp(buf, "durable\n") == 0)
        return true;
    boot_id(id);
    return id[0] && strncmp(buf, "boot ", 5) == 0 && strncmp(buf + 5, id, strlen(id)) == 0 &&
           buf[5 + strlen(id)] == '\n';
}

/* Replace okpath with text (through a temporary name; synced when durable). */
static int ok_write(const char *okpath, const char *text, bool durable, qq_err *err)
{
    sbuf tb = SBUF_INIT;
    sbuf_addf(&tb, "%s.tmp", okpath);
    _cleanup_free_ char *tmp = sbuf_steal(&tb);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || (durable && fdatasync(fd) < 0)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", okpath, strerror(e));
    }
    close(fd);
    if (rename(tmp, okpath) < 0) {
        int e = errno;
        unlink(tmp);
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", okpath, strerror(e));
    }
    return 0;
}

/* Under the lock: a cached file from an earlier boot (or without a record).
 * 1: rehashed, synced and marked durable; 0: damaged, removed; -1: error. */
static int recheck_cached(const char *final, const char *okpath, const char *hex, qq_err *err)
{
    _cleanup_close_ int fd = open(final, O_RDONLY | O_CLOEXEC);
    char got[HASH_HEX_LEN + 1];
    if (fd < 0 || hash_file(final, got, err) < 0)
        return fd < 0 ? qq_fail(err, QQ_EXIT_FAIL, "%s: %s", final, strerror(errno)) : -1;
    if (strcmp(got, hex) != 0) {
        unlink(final);
        unlink(okpath);
        return 0;
    }
    if (fdatasync(fd) < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", final, strerror(errno));
    return ok_write(okpath, "durable\n", true, err) < 0 ? -1 : 1;
}

typedef struct limits {
    unsigned long long cap;
    long min_rate, min_rate_s;
} limits;

/* Fetch url into part, verifying the sums given (hex: sha256, hex512: sha512;
 * at least one), then rename it to cache_dir/<its sha256>. */
static char *fetch_locked(const char *url, const char *hex, const char *hex512, const char *cache_dir,
                          const char *part, const char *label, const dl_opts *o, const limits *lim, dl_result *res, qq_err *err)
{
    xfer x = { .fd = -1, .label = label, .max_bytes = o->max_bytes, .cap = lim->cap, .min_rate = lim->min_rate,
               .min_rate_s = lim->min_rate_s, .deadline_ms = o->deadline_ms };
    x.progress = !(o->flags & DL_QUIET) && report_watched();
    _cleanup_close_ int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: %s", part, strerror(errno));
        return NULL;
    }
    x.fd = fd;
    /* an earlier interrupted transfer: its bytes count, and are rehashed
     * (by the hasher, while the rest arrives) */
    struct stat st;
    if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_END) < 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: %s", part, strerror(errno));
        return NULL;
    }
    x.have = (unsigned long long)st.st_size;
    hasher hs;
    x.hs = &hs;
    if (hasher_start(&hs, fd, x.have, hex512 != NULL, err) < 0)
        return NULL;
    res->resumed_at = x.have;

    char errbuf[CURL_ERROR_SIZE];
    char got[HASH_HEX_LEN + 1], got512[HASH512_HEX_LEN + 1] = "";
    for (int attempt = 0; ; attempt++) {
        x.t0 = now_s();
        x.got = 0;
        long code = 0;
        CURLcode rc = transfer(url, &x, &code, errbuf);
        res->bytes += x.got;
        if (x.progress && (rc == CURLE_OK || x.got))
            draw(&x, rc == CURLE_OK ? (double)x.have : 0, true);
        if (rc == CURLE_RANGE_ERROR && attempt == 0 && x.have) {
            /* the server cannot resume: start over */
            if (part_reset(&x, part, err) < 0)
                return NULL;
            res->resumed_at = 0;
            continue;
        }
        if (rc == CURLE_HTTP_RETURNED_ERROR && code == 416 && x.have)
            rc = CURLE_OK;      /* nothing past the kept bytes: they may be all of it */
        if (rc != CURLE_OK) {
            hasher_finish(&hs, NULL, NULL);
            char why[CURL_ERROR_SIZE + 256];
            if (rc == CURLE_WRITE_ERROR && x.too_long) {
                /* nothing of it can be the file: do not keep it */
                unlink(part);
                if (x.capped)
                    qq_fail(err, QQ_EXIT_FAIL, "%s: download failed: the server gave no length and the body passed "
                            "%llu bytes, the cap of $QQMGR_DOWNLOAD_MAX (the partial file is removed)", url, x.cap);
                else
                    qq_fail(err, QQ_EXIT_FAIL, "%s: download failed: the body is longer than the %s %llu bytes "
                            "(the partial file is removed)", url, x.max_bytes ? "expected" : "announced", x.limit);
                return NULL;
            }
            if (rc == CURLE_WRITE_ERROR && x.write_errno) {
                /* a full disk (or a file size limit): the partial file only takes space */
                unlink(part);
                qq_fail(err, QQ_EXIT_FAIL, "%s: download failed: %s: %s (the partial file is removed)", url,
                        part, strerror(x.write_errno));
                return NULL;
            }
            if (rc == CURLE_HTTP_RETURNED_ERROR)
                snprintf(why, sizeof why, "HTTP %ld", code);
            else if (rc == CURLE_OPERATION_TIMEDOUT && x.deadline_ms && clock_ms() >= x.deadline_ms - 50)
                snprintf(why, sizeof why, "the time ran out");
            else if (rc == CURLE_OPERATION_TIMEDOUT && !strstr(errbuf, "onnect"))
                snprintf(why, sizeof why, "slower than %ld bytes/s for %ld s ($QQMGR_DOWNLOAD_MIN_RATE)", x.min_rate,
                         x.min_rate_s);
            else
                snprintf(why, sizeof why, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
            /* what the .part holds, not what was counted */
            struct stat pst;
            unsigned long long kept = fstat(fd, &pst) == 0 ? (unsigned long long)pst.st_size : x.have;
            if (kept) {
                qq_fail(err, QQ_EXIT_FAIL, "%s: download failed: %s (%llu bytes kept to resume)", url, why,
                        kept);
            } else {
                unlink(part);
                qq_fail(err, QQ_EXIT_FAIL, "%s: download failed: %s", url, why);
            }
            return NULL;
        }
        int re = hasher_finish(&hs, got, hex512 ? got512 : NULL);
        if (re) {
            qq_fail(err, QQ_EXIT_FAIL, "%s: read: %s", part, strerror(re));
            return NULL;
        }
        bool bad256 = hex && strcmp(got, hex) != 0, bad512 = hex512 && strcmp(got512, hex512) != 0;
        if (!bad256 && !bad512)
            break;
        if (attempt == 0 && res->resumed_at) {
            /* the kept bytes may have been stale: one clean retry */
            if (part_reset(&x, part, err) < 0)
                return NULL;
            res->resumed_at = 0;
            continue;
        }
        unlink(part);
        if (bad256)
            qq_fail(err, QQ_EXIT_FAIL, "%s: sha256 mismatch: expected %s, got %s", url, hex, got);
        else
            qq_fail(err, QQ_EXIT_FAIL, "%s: sha512 mismatch: expected %s, got %s", url, hex512, got512);
        return NULL;
    }
    sbuf fb = SBUF_INIT;
    sbuf_addf(&fb, "%s/%s", cache_dir, got);
    _cleanup_free_ char *final = sbuf_steal(&fb);
    char id[64], rec[80];
    boot_id(id);
    snprintf(rec, sizeof rec, "boot %s\n", id);
    sbuf ob = SBUF_INIT;
    sbuf_addf(&ob, "%s.ok", final);
    _cleanup_free_ char *okpath = sbuf_steal(&ob);
    if ((!id[0] && fdatasync(fd) < 0) || ok_write(okpath, id[0] ? rec : "durable\n", !id[0], err) < 0 ||
        rename(part, final) < 0) {
        if (!err || !err->code)
            qq_fail(err, QQ_EXIT_FAIL, "%s: %s", final, strerror(errno));
        return NULL;
    }
    res->fetched = true;
    return strdup(final);
}

char *download_url(const char *where, const char *base_dir)
{
    sbuf u = SBUF_INIT;
    size_t scheme = strspn(where, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    if (scheme > 0 && strncmp(where + scheme, "://", 3) == 0) {
        sbuf_adds(&u, where);
        return sbuf_steal(&u);
    }
    sbuf abs = SBUF_INIT;
    if (where[0] != '/' && base_dir)
        sbuf_addf(&abs, "%s/", base_dir);
    sbuf_adds(&abs, where);
    sbuf_adds(&u, "file://");
    for (const unsigned char *p = (const unsigned char *)sbuf_str(&abs); *p; p++) {
        if (strchr("/._~-", *p) || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
            sbuf_addc(&u, (char)*p);
        else
            sbuf_addf(&u, "%%%02X", *p);
    }
    sbuf_free(&abs);
    return sbuf_steal(&u);
}

char *download_cached(const char *url, const char *sha256, const char *cache_dir,
                      const char *label, int flags, dl_result *res, qq_err *err)
{
    return download_cached_max(url, sha256, cache_dir, label, flags, 0, res, err);
}

char *download_cached_max(const char *url, const char *sha256, const char *cache_dir, const char *label,
                          int flags, unsigned long long max_bytes, dl_result *res, qq_err *err)
{
    dl_opts o = { .cache_dir = cache_dir, .label = label, .flags = flags, .max_bytes = max_bytes };
    return download_fetch(url, sha256, &o, res, err);
}

/* A size: digits, then K, M, G or T (binary; an optional "iB"/"B"). */
static int parse_size(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno || *s == '-')
        return -1;
    int shift = 0;
    switch (*end) {
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    case 'T': case 't': shift = 40; end++; break;
    default: break;
    }
    if (shift && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
        end += strlen(end);
    if (*end || v == 0 || (shift && v > (~0ULL >> shift)))
        return -1;
    *out = v << shift;
    return 0;
}

static int read_limits(limits *l, qq_err *err)
{
    l->cap = 16ULL << 30;
    l->min_rate = 1024;
    l->min_rate_s = 30;
    const char *v = getenv("QQMGR_DOWNLOAD_MAX");
    if (v && *v && parse_size(v, &l->cap) < 0)
        return qq_fail(err, QQ_EXIT_USAGE, "QQMGR_DOWNLOAD_MAX: must be a size (bytes, or with K, M, G or T), not \"%s\"",
                       v);
    v = getenv("QQMGR_DOWNLOAD_MIN_RATE");
    if (v && *v) {
        char *end;
        long b = strtol(v, &end, 10), t = 0;
        if (end != v && *end == '/')
            t = strtol(end + 1, &end, 10);
        if (b < 1 || t < 1 || *end || t > 86400)
            return qq_fail(err, QQ_EXIT_USAGE, "QQMGR_DOWNLOAD_MIN_RATE: must be BYTES/SECONDS (e.g. 1024/30), not \"%s\"",
                           v);
        l->min_rate = b;
        l->min_rate_s = t;
    }
    return 0;
}

static void lower_hex(char *out, const char *in, size_t n)
{
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'F' ? in[i] - 'A' + 'a' : in[i]);
}

/* The sha512 index beside the cache: <cache_dir>/../sha512, malloc'd. */
static char *index_dir(const char *cache_dir)
{
    const char *slash = strrchr(cache_dir, '/');
    size_t n = slash && slash != cache_dir ? (size_t)(slash - cache_dir) : strlen(cache_dir);
    sbuf b = SBUF_INIT;
    sbuf_addf(&b, "%.*s/sha512", (int)n, cache_dir);
    return sbuf_steal(&b);
}

/* The sha256 the index entry names (1), or 0 when there is none or it is not
 * exactly 64 hex digits and a newline (a damaged entry is a miss). */
static int index_read(const char *path, char hex[HASH_HEX_LEN + 1])
{
    char buf[HASH_HEX_LEN + 2];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n != HASH_HEX_LEN + 1 || buf[HASH_HEX_LEN] != '\n')
        return 0;
    buf[HASH_HEX_LEN] = '\0';
    if (!hash_is_hex(buf))
        return 0;
    lower_hex(hex, buf, HASH_HEX_LEN);
    return 1;
}

static int index_write(const char *idx_dir, const char *path, const char *hex, qq_err *err)
{
    if (mkdir_parents(idx_dir, err) < 0)
        return -1;
    char text[HASH_HEX_LEN + 2];
    snprintf(text, sizeof text, "%s\n", hex);
    return ok_write(path, text, false, err);
}

/* Under the lock: does the cached file final (verified by its sha256) have
 * this sha512? 1 yes (and the index now says so), 0 no (err filled), -1 error. */
static int check_512_of_cached(const char *url, const char *final, const char *hex, const char *hex512,
                               const char *idx_dir, const char *idx, qq_err *err)
{
    _cleanup_close_ int fd = open(final, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", final, strerror(errno));
    hash_ctx h = { 0 };
    if (hash512_init(&h, err) < 0)
        return -1;
    if (hash_update_fd(&h, fd, final, NULL, err) < 0) {
        hash_free(&h);
        return -1;
    }
    char got[HASH512_HEX_LEN + 1];
    hash512_final(&h, got);
    if (strcmp(got, hex512) != 0) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: sha512 mismatch: expected %s, got %s (the file of sha256 %s)", url, hex512,
                got, hex);
        return 0;
    }
    return index_write(idx_dir, idx, hex, err) < 0 ? -1 : 1;
}

char *download_fetch(const char *url, const char *sha256, const dl_opts *o, dl_result *res, qq_err *err)
{
    static const dl_opts none = { 0 };
    if (!o)
        o = &none;
    const char *cache_dir = o->cache_dir;
    dl_result dummy;
    if (!res)
        res = &dummy;
    *res = (dl_result){ 0 };
    const char *sha512 = o->sha512;
    if (sha512 && !hash512_is_hex(sha512)) {
        qq_fail(err, QQ_EXIT_USAGE, "%s: sha512sum must be 128 hex digits, not \"%s\"", url, sha512);
        return NULL;
    }
    if ((sha256 || !sha512) && (!sha256 || !hash_is_hex(sha256))) {
        qq_fail(err, QQ_EXIT_USAGE, "%s: sha256sum must be 64 hex digits, not \"%s\"", url,
                sha256 ? sha256 : "");
        return NULL;
    }
    char hex[HASH_HEX_LEN + 1] = "", hex512[HASH512_HEX_LEN + 1] = "";
    if (sha256)
        lower_hex(hex, sha256, HASH_HEX_LEN);
    if (sha512)
        lower_hex(hex512, sha512, HASH512_HEX_LEN);

    _cleanup_free_ char *dflt = NULL;
    if (!cache_dir) {
        dflt = download_cache_dir(err);
        if (!dflt)
            return NULL;
        cache_dir = dflt;
    }
    sbuf fb = SBUF_INIT;
    _cleanup_free_ char *idx_dir = sha512 ? index_dir(cache_dir) : NULL;
    _cleanup_free_ char *idx = NULL;
    char indexed[HASH_HEX_LEN + 1] = "";    /* the sha256 the sha512 index names */
    if (sha512) {
        sbuf_addf(&fb, "%s/%s", idx_dir, hex512);
        idx = sbuf_steal(&fb);
        index_read(idx, indexed);
    }
    /* the key of the cached file, when known before downloading */
    const char *key = sha256 ? hex : indexed[0] ? indexed : NULL;
    if (key) {
        sbuf_addf(&fb, "%s/%s", cache_dir, key);
        _cleanup_free_ char *final = sbuf_steal(&fb);
        sbuf_addf(&fb, "%s/%s.ok", cache_dir, key);
        _cleanup_free_ char *okpath = sbuf_steal(&fb);
        /* only verified files carry this name; the index only names a file
         * whose sha512 was checked */
        if ((!sha512 || strcmp(indexed, key) == 0) && cached_trusted(okpath) && access(final, F_OK) == 0)
            return TAKE_PTR(final);
    }

    if (curl_dl_load(err) < 0) {
        qq_err_prefix(err, "%s", url);
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: libcurl: %s", url, curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    if (mkdir_parents(cache_dir, err) < 0 || (idx_dir && mkdir_parents(idx_dir, err) < 0))
        return NULL;
    /* a transfer keyed by its sha256 when given, else by its sha512 */
    const char *ldir = sha256 ? cache_dir : idx_dir, *lname = sha256 ? hex : hex512;
    sbuf_addf(&fb, "%s/%s.lock", ldir, lname);
    _cleanup_free_ char *lock = sbuf_steal(&fb);
    sbuf_addf(&fb, "%s/%s.part", ldir, lname);
    _cleanup_free_ char *part = sbuf_steal(&fb);

    limits lim;
    if (read_limits(&lim, err) < 0)
        return NULL;
    int lfd = lock_file(lock, url, o->deadline_ms, err);
    if (lfd < 0)
        return NULL;
    if (sha512 && !sha256) {   /* another process may have indexed it while we waited */
        indexed[0] = '\0';
        index_read(idx, indexed);
    }
    key = sha256 ? hex : indexed[0] ? indexed : NULL;
    char *out = NULL;
    int ok = 0;
    _cleanup_free_ char *final = NULL, *okpath = NULL;
    if (key) {
        sbuf_addf(&fb, "%s/%s", cache_dir, key);
        final = sbuf_steal(&fb);
        sbuf_addf(&fb, "%s/%s.ok", cache_dir, key);
        okpath = sbuf_steal(&fb);
        if (access(final, F_OK) == 0)     /* fetched while we waited, or from an earlier boot */
            ok = cached_trusted(okpath) ? 1 : recheck_cached(final, okpath, key, err);
        if (ok > 0 && sha512 && strcmp(indexed, key) != 0)
            ok = check_512_of_cached(url, final, key, hex512, idx_dir, idx, err) > 0 ? 1 : -1;
    }
    if (ok > 0)
        out = strdup(final);
    else if (ok == 0) {
        /* past RLIMIT_FSIZE a write fails (EFBIG) instead of killing us */
        struct sigaction ign = { .sa_handler = SIG_IGN }, old;
        sigaction(SIGXFSZ, &ign, &old);
        out = fetch_locked(url, sha256 ? hex : NULL, sha512 ? hex512 : NULL, cache_dir, part,
                           o->label ? o->label : url_label(url), o, &lim, res, err);
        sigaction(SIGXFSZ, &old, NULL);
        if (out && sha512) {
            const char *base = strrchr(out, '/') + 1;
            if (index_write(idx_dir, idx, base, err) < 0) {
                free(out);
                out = NULL;
            }
        }
    }
    unlock_file(lock, lfd);
    return out;
}
