/* rundir — a private directory for runtime files (unix sockets) whose
 * paths must stay short: the sun_path limit is 107 bytes.
 *
 * A runtime directory is used only when rundir_check() accepts it: a
 * directory (not a symlink: opened with O_NOFOLLOW), owned by our effective
 * uid, mode exactly 0700. It is checked on every use, so a directory another
 * user made first (0777, a symlink, another owner, another mode) is never
 * used, whatever it holds.
 *
 * rundir_preferred() names the usual place: $XDG_RUNTIME_DIR/qqmgr when
 * XDG_RUNTIME_DIR is set, absolute, short enough, and itself ours with mode
 * 0700; else ${TMPDIR:-/tmp}/qqmgr-UID. rundir_get() makes and checks it; when it is not
 * ours it falls back to a mkdtemp() directory "<preferred>.XXXXXX" — one per
 * user: a fallback of ours that passes the check is reused, found again by
 * its name — and writes that name into a record file (mode 0600) so later
 * commands find the same directory (and check it again). rundir_release()
 * removes a fallback once it is empty (a VM that ends calls it). Strings
 * returned are the caller's.
 */
#ifndef QQ_RUNDIR_H
#define QQ_RUNDIR_H

#include <stdbool.h>

#include "../base/err.h"

/* 0 when path is a directory we own, not a symlink, mode exactly 0700;
 * -1 with err saying what is wrong (QQ_EXIT_FAIL). */
int rundir_check(const char *path, qq_err *err);

/* $XDG_RUNTIME_DIR/qqmgr (when usable) or ${TMPDIR:-/tmp}/qqmgr-UID (TMPDIR
 * when absolute and short). Never NULL. */
char *rundir_preferred(void);

/* The runtime directory to use, given the preferred one and a record file
 * (where a fallback's name is kept; NULL: no record, every call with create
 * makes a fresh fallback). create: make what is missing (preferred, or a
 * fallback). Without create nothing is made: the name that would be used is
 * returned (preferred when it does not exist yet; "<preferred>.XXXXXX" when
 * a fallback is yet to be made).
 * NULL with err only when create is set and nothing could be made. */
char *rundir_get(const char *preferred, const char *record, bool create, qq_err *err);

/* rmdir dir when it is a fallback of preferred ("<preferred>.XXXXXX"), passes
 * the check and is empty; else nothing. */
void rundir_release(const char *preferred, const char *dir);

#endif
