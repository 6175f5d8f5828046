/* hash — SHA-256 (OpenSSL EVP) of files, descriptors and byte streams; SHA-512
 * incrementally (hash512_init → hash_update… → hash512_final: 128 hex + NUL).
 *
 * Digests are returned as 64 lowercase hex characters plus NUL (char[65]).
 * Incremental use: hash_init() → hash_update()… → hash_final(), which also
 * releases the context (hash_free() is for an abandoned one; both are safe on
 * a zeroed or already finished context). hash_file() streams a whole file with
 * a large buffer and sequential read-ahead advice; hash_update_fd() feeds the
 * rest of an open descriptor (used to rehash a partial download).
 * Errors (open/read failures, OpenSSL failures) are one line naming the file,
 * code QQ_EXIT_FAIL. libcrypto is loaded at run time (dl.h) by hash_init() and
 * hash_bytes(); both report a missing libcrypto as an error.
 */
#ifndef QQ_HASH_H
#define QQ_HASH_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/err.h"

#define HASH_HEX_LEN 64
#define HASH512_HEX_LEN 128

typedef struct hash_ctx {
    void *md;            /* EVP_MD_CTX * */
} hash_ctx;

int hash_init(hash_ctx *h, qq_err *err);
void hash_update(hash_ctx *h, const void *data, size_t len);
void hash_final(hash_ctx *h, char hex[HASH_HEX_LEN + 1]);
void hash_free(hash_ctx *h);

/* Feed everything from fd's current offset to EOF; name is for messages.
 * Adds the number of bytes read to *nread when nread is not NULL. */
int hash_update_fd(hash_ctx *h, int fd, const char *name, unsigned long long *nread,
                   qq_err *err);

int hash_file(const char *path, char hex[HASH_HEX_LEN + 1], qq_err *err);
/* Digest of a byte string (for stamps of small inputs). Fails only without a
 * loadable libcrypto (a broken installation). */
int hash_bytes(const void *data, size_t len, char hex[HASH_HEX_LEN + 1], qq_err *err);

int hash512_init(hash_ctx *h, qq_err *err);
void hash512_final(hash_ctx *h, char hex[HASH512_HEX_LEN + 1]);
/* True when s is exactly 128 hex digits (either case). */
bool hash512_is_hex(const char *s);

/* True when s is exactly 64 hex digits (either case). */
bool hash_is_hex(const char *s);

#endif
