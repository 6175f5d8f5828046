/* dl — optional shared libraries loaded on first use (see dl.h). */
#include "dl.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#define DL_MAX_SYMS 64

int qq_dl_load(qq_dl_lib *lib, qq_err *err)
{
    if (lib->handle)
        return 0;
    size_t n = 0;
    while (lib->syms[n])
        n++;
    if (n > DL_MAX_SYMS || n * sizeof(void *) != lib->table_size)
        abort();   /* the table and the symbol list disagree: a bug in the caller */
    const char *why = "not found";
    void *h = NULL;
    for (const char *const *s = lib->sonames; *s && !h; s++) {
        h = dlopen(*s, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            why = dlerror();
    }
    if (!h)
        return qq_fail(err, QQ_EXIT_FAIL, "cannot load %s (%s): install the %s package", lib->what, why,
                       lib->package);
    void *fns[DL_MAX_SYMS];
    for (size_t i = 0; i < n; i++) {
        fns[i] = dlsym(h, lib->syms[i]);
        if (!fns[i]) {
            dlclose(h);
            return qq_fail(err, QQ_EXIT_FAIL, "%s lacks %s", lib->what, lib->syms[i]);
        }
    }
    memcpy(lib->table, fns, lib->table_size);
    lib->handle = h;
    return 0;
}
