/* dl — load an optional shared library the first time it is needed.
 *
 * qqmgr is compiled against the headers of libcurl, libcrypto and libisofs but
 * linked against none of them: each costs every process memory and start-up
 * time, and only a few commands use them. A per-library module (curl_dl.c,
 * hash.c, iso.c) describes the library with a static qq_dl_lib — sonames to try,
 * the symbols to resolve, and the table of function pointers (a struct holding
 * exactly one pointer per symbol, in the same order) — and calls qq_dl_load()
 * before the first use.
 *
 * qq_dl_load() returns 0 once every symbol is resolved and written to the table,
 * or -1 with err filled (QQ_EXIT_FAIL): "cannot load <what> (<dlerror>): install
 * the <package> package" or "<what> lacks <symbol>". The table is written only
 * when all symbols were found. Loading happens once per process (later calls
 * return 0 at once) and is never undone. Not thread-safe: load before starting
 * threads.
 */
#ifndef QQ_DL_H
#define QQ_DL_H

#include <stddef.h>

#include "../base/err.h"

typedef struct qq_dl_lib {
    const char *what;                /* for messages: "libcurl" */
    const char *package;             /* Debian package that ships it: "libcurl4" */
    const char *const *sonames;      /* NULL-terminated, most preferred first */
    const char *const *syms;         /* NULL-terminated, in the table's field order */
    void *table;                     /* struct of function pointers, one per symbol */
    size_t table_size;               /* sizeof that struct (checked against syms) */
    void *handle;                    /* set once loaded */
} qq_dl_lib;

int qq_dl_load(qq_dl_lib *lib, qq_err *err);

#endif
