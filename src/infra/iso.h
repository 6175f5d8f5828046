/* iso — write a NoCloud cloud-init ISO (ISO 9660 + Rock Ridge + Joliet) with libisofs.
 *
 * iso_write_cidata() writes the given files into the root directory of a new
 * image whose volume id is `volid` (NULL: "cidata"), each under its name in
 * the ISO (a plain name: no '/', not "." or ".."), with contents copied from
 * the host path. Files are world-readable, owned by root in Rock Ridge. The
 * image goes to "<out>.tmp" and is renamed to out only when complete, so out
 * is either the old file or the whole new one. Errors are one line naming
 * the file or entry at fault, code QQ_EXIT_FAIL (QQ_EXIT_USAGE for a bad name).
 * libisofs is loaded at run time on the first call (dl.h); failing to load it
 * is an error of that call ("cannot load libisofs (…): install the libisofs6
 * package").
 */
#ifndef QQ_ISO_H
#define QQ_ISO_H

#include <stddef.h>

#include "../base/err.h"

typedef struct iso_entry {
    const char *name;        /* name inside the ISO */
    const char *path;        /* host file to copy */
} iso_entry;

int iso_write_cidata(const char *out, const char *volid, const iso_entry *files, size_t n,
                     qq_err *err);

#endif
