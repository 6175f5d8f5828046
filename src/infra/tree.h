/* tree — remove a directory tree, and measure its disk usage, without ever
 * leaving it.
 *
 * Trees are walked with openat(O_NOFOLLOW | O_DIRECTORY) and unlinkat
 * relative to the open parent, so a symlink anywhere in the tree (the tree
 * itself included) is removed or counted as a name and never followed, and a
 * directory swapped for a symlink while the walk runs is not entered: nothing
 * outside the tree is touched. Sizes are disk usage (st_blocks × 512) in bytes.
 * Errors: -1 with err (QQ_EXIT_FAIL) naming the path as `shown` spells it.
 */
#ifndef QQ_TREE_H
#define QQ_TREE_H

#include "../base/err.h"

/* Disk usage of entry name of the open directory dfd (AT_FDCWD: name is a
 * path): a directory's whole tree; a symlink counts as itself. 0 if missing. */
unsigned long long tree_usage_at(int dfd, const char *name);
unsigned long long tree_usage(const char *path);

/* Remove entry name of dfd: unlinked, or a directory emptied and removed.
 * A missing entry is done (0). */
int tree_remove_at(int dfd, const char *name, const char *shown, qq_err *err);

/* Remove everything inside the open directory fd except the entry `keep`
 * (NULL: none). fd stays open and usable. */
int tree_remove_contents(int fd, const char *keep, const char *shown, qq_err *err);

/* Open directory path for the calls above, refusing a symlink
 * (O_NOFOLLOW): -1 with errno (ENOENT, ELOOP, ENOTDIR…). */
int tree_open(const char *path);

#endif
