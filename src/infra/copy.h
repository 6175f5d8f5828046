/* copy — copy a file fast and keep its holes (for image base copies).
 *
 * copy_sparse() makes dst (created or truncated, mode 0600) a copy of src:
 * a reflink (FICLONE) where the file system shares blocks (btrfs, xfs), else
 * copy_file_range() over each data extent found with SEEK_DATA/SEEK_HOLE, so
 * holes stay holes and the bytes never pass through user space; plain
 * read/write only where the kernel refuses copy_file_range. The caller
 * decides durability (no fsync here). Errors are one line naming the file,
 * QQ_EXIT_FAIL; a failed copy may leave a partial dst (copy to a temporary
 * name and rename).
 */
#ifndef QQ_COPY_H
#define QQ_COPY_H

#include <signal.h>
#include <stdbool.h>

#include "../base/err.h"

typedef struct copy_stats {
    bool reflinked;               /* FICLONE shared the blocks */
    unsigned long long data;      /* bytes copied (holes excluded) */
} copy_stats;

/* stats may be NULL. */
int copy_sparse(const char *src, const char *dst, copy_stats *stats, qq_err *err);

/* The same, stopping between steps of at most 64 MiB once *stop is non-zero
 * (a signal handler's flag): then -1, errno EINTR, "copy to DST:
 * interrupted", and a partial dst the caller removes. stop may be NULL. */
int copy_sparse_until(const char *src, const char *dst, const volatile sig_atomic_t *stop, copy_stats *stats,
                      qq_err *err);

#endif
