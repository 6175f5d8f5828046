/* lockfile — the one way qqmgr takes a lock file: flock(2) on a file, with a
 * deadline, and the file still the one at its name once held.
 *
 * A holder that is done may unlink the lock file while others wait on it
 * (rm and prune remove a VM's dir, a download removes its <hex>.lock): a
 * waiter that then gets the lock holds it on a removed inode that nobody
 * else will ever see. So, once flock succeeds, the descriptor's inode is
 * compared with the one at the name (fstat vs fstatat, no symlink followed);
 * when they differ the file is opened again and locked anew.
 *
 * Waiting: a lock held elsewhere is tried again (every 10 ms, growing to
 * 100 ms) until the deadline (a clock_ms() value, base/clock.h): 0 tries
 * once, LOCKFILE_FOREVER waits as long as it takes. on_wait is called once
 * when it has to wait (a "waiting for …" note). A signal caught while
 * waiting (sig.h: sig_caught) ends the wait.
 *
 * Returns the descriptor holding the lock (O_CLOEXEC; close it to release),
 * or -1 with err and errno: EWOULDBLOCK the lock is held elsewhere (at the
 * deadline, or at once with deadline 0): "lock PATH: held by another qqmgr";
 * EINTR a signal ended the wait; ENOENT the file does not exist and
 * create is false; anything else from open/flock.
 */
#ifndef QQ_LOCKFILE_H
#define QQ_LOCKFILE_H

#include <stdbool.h>
#include <sys/types.h>

#include "../base/err.h"

#define LOCKFILE_FOREVER (-1LL)

typedef struct lockfile_opts {
    bool shared;                 /* LOCK_SH (any number of shared holders), else LOCK_EX */
    long long deadline_ms;       /* 0: try once; LOCKFILE_FOREVER; else clock_ms() to give up at */
    bool no_create;              /* do not create a missing file (ENOENT) */
    mode_t mode;                 /* of a created file; 0: 0600 */
    void (*on_wait)(void *arg);  /* called once before waiting; may be NULL */
    void *arg;
} lockfile_opts;

/* Lock path (relative: to dirfd; AT_FDCWD for the cwd). o may be NULL: an
 * exclusive lock, tried once, the file created 0600. */
int lockfile_take_at(int dirfd, const char *path, const lockfile_opts *o, qq_err *err);
int lockfile_take(const char *path, const lockfile_opts *o, qq_err *err);

#endif
