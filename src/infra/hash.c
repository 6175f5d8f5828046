/* hash — SHA-256 with OpenSSL EVP, libcrypto loaded on first use; see hash.h. */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "dl.h"

/* libcrypto costs every process ~2 MiB and its start-up time; only image
 * commands hash, so it is dlopen()ed by crypto_load() (see dl.h). */
static struct {
    __typeof__(EVP_MD_CTX_new) *md_ctx_new;
    __typeof__(EVP_MD_CTX_free) *md_ctx_free;
    __typeof__(EVP_sha256) *sha256;
    __typeof__(EVP_sha512) *sha512;
    __typeof__(EVP_DigestInit_ex) *digest_init_ex;
    __typeof__(EVP_DigestUpdate) *digest_update;
    __typeof__(EVP_DigestFinal_ex) *digest_final_ex;
    __typeof__(EVP_Digest) *digest;
} crypto;

#define EVP_MD_CTX_new (*crypto.md_ctx_new)
#define EVP_MD_CTX_free (*crypto.md_ctx_free)
#define EVP_sha256 (*crypto.sha256)
#define EVP_sha512 (*crypto.sha512)
#define EVP_DigestInit_ex (*crypto.digest_init_ex)
#define EVP_DigestUpdate (*crypto.digest_update)
#define EVP_DigestFinal_ex (*crypto.digest_final_ex)
#define EVP_Digest (*crypto.digest)

static int crypto_load(qq_err *err)
{
    static const char *const sonames[] = { "libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so", NULL };
    static const char *const syms[] = {
        "EVP_MD_CTX_new", "EVP_MD_CTX_free", "EVP_sha256", "EVP_sha512", "EVP_DigestInit_ex",
        "EVP_DigestUpdate", "EVP_DigestFinal_ex", "EVP_Digest", NULL,
    };
    static qq_dl_lib lib = { "libcrypto", "libssl3", sonames, syms, &crypto, sizeof crypto, NULL };
    return qq_dl_load(&lib, err);
}

/* 1 MiB reads: large enough that syscalls cost nothing next to hashing. */
#define HASH_BUF (1u << 20)

static void to_hex(const unsigned char *d, unsigned n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = '\0';
}

static int init_md(hash_ctx *h, bool sha512, qq_err *err)
{
    h->md = NULL;
    if (crypto_load(err) < 0)
        return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, sha512 ? EVP_sha512() : EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        h->md = NULL;
        return qq_fail(err, QQ_EXIT_FAIL, "%s: OpenSSL initialisation failed", sha512 ? "sha512" : "sha256");
    }
    h->md = md;
    return 0;
}

int hash_init(hash_ctx *h, qq_err *err)
{
    return init_md(h, false, err);
}

int hash512_init(hash_ctx *h, qq_err *err)
{
    return init_md(h, true, err);
}

void hash512_final(hash_ctx *h, char hex[HASH512_HEX_LEN + 1])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!h->md || EVP_DigestFinal_ex(h->md, d, &n) != 1 || n != 64)
        hex[0] = '\0';
    else
        to_hex(d, n, hex);
    hash_free(h);
}

void hash_update(hash_ctx *h, const void *data, size_t len)
{
    if (h->md && len)
        EVP_DigestUpdate(h->md, data, len);
}

void hash_final(hash_ctx *h, char hex[HASH_HEX_LEN + 1])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!h->md || EVP_DigestFinal_ex(h->md, d, &n) != 1 || n != 32) {
        hex[0] = '\0';
    } else {
        to_hex(d, n, hex);
    }
    hash_free(h);
}

void hash_free(hash_ctx *h)
{
    if (h->md)   /* a context exists only once libcrypto is loaded */
        EVP_MD_CTX_free(h->md);
    h->md = NULL;
}

int hash_update_fd(hash_ctx *h, int fd, const char *name, unsigned long long *nread,
                   qq_err *err)
{
    _cleanup_free_ unsigned char *buf = malloc(HASH_BUF);
    if (!buf)
        abort();
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (;;) {
        ssize_t n = read(fd, buf, HASH_BUF);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return qq_fail(err, QQ_EXIT_FAIL, "%s: read: %s", name, strerror(errno));
        }
        if (n == 0)
            return 0;
        hash_update(h, buf, (size_t)n);
        if (nread)
            *nread += (unsigned long long)n;
    }
}

int hash_file(const char *path, char hex[HASH_HEX_LEN + 1], qq_err *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", path, strerror(errno));
    hash_ctx h = { 0 };
    if (hash_init(&h, err) < 0)
        return -1;
    if (hash_update_fd(&h, fd, path, NULL, err) < 0) {
        hash_free(&h);
        return -1;
    }
    hash_final(&h, hex);
    return 0;
}

int hash_bytes(const void *data, size_t len, char hex[HASH_HEX_LEN + 1], qq_err *err)
{
    if (crypto_load(err) < 0)
        return -1;   /* a broken installation */
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) != 1 || n != 32)
        abort();   /* only fails on out-of-memory */
    to_hex(d, n, hex);
    return 0;
}

bool hash512_is_hex(const char *s)
{
    return strlen(s) == HASH512_HEX_LEN && strspn(s, "0123456789abcdefABCDEF") == HASH512_HEX_LEN;
}

bool hash_is_hex(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return i == HASH_HEX_LEN;
}
