/* fs — small file-system helpers every module shares.
 *
 * All functions return 0 (or a described value) on success and -1 with err
 * filled (QQ_EXIT_FAIL, message naming the path and strerror) on failure;
 * errno is left as the failing call set it, so a caller may test ENOENT.
 * Every descriptor is opened O_CLOEXEC (a spawned QEMU inherits nothing).
 * Returned strings are owned by the caller (free()).
 */
#ifndef QQ_FS_H
#define QQ_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../base/err.h"
#include "../base/sbuf.h"

/* mkdir -p: create path and missing parents with mode (existing dirs are left as they are). */
int fs_mkdir_p(const char *path, mode_t mode, qq_err *err);

/* Write data to path atomically: a temporary file in the same directory,
 * fsync, rename over path. A reader sees the old or the new content, never a part. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, qq_err *err);

/* Read a whole file; *out is NUL-terminated (len excludes the NUL). len may be NULL. */
int fs_read_file(const char *path, char **out, size_t *len, qq_err *err);


/* Append the last n lines of path to out (a last line without a newline counts).
 * Reads backwards from the end, so a huge log costs only what is printed. */
int fs_tail(const char *path, size_t n, sbuf *out, qq_err *err);

/* unlink, a missing file is not an error. */
int fs_remove(const char *path, qq_err *err);

/* Does path exist (any type, symlinks not followed)? */
bool fs_exists(const char *path);

/* The absolute path of this program (/proc/self/exe; when the file was
 * replaced since it started, the new file at the same path), or NULL. */
char *fs_self_exe(void);

#endif
