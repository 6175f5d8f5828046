/* curl_dl — libcurl loaded on first use (see curl_dl.h). */
#define QQ_CURL_DL_IMPL
#include "curl_dl.h"

#include <dlfcn.h>
#include <stddef.h>

struct qq_curl_fns qq_curl;

int curl_dl_load(qq_err *err)
{
    static void *handle;
    if (handle)
        return 0;
    /* the OpenSSL flavour first (libcurl4), then the GnuTLS one (libcurl3-gnutls) */
    static const char *const sonames[] = { "libcurl.so.4", "libcurl-gnutls.so.4", NULL };
    const char *why = "not found";
    void *h = NULL;
    for (const char *const *n = sonames; *n && !h; n++) {
        h = dlopen(*n, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            why = dlerror();
    }
    if (!h)
        return qq_fail(err, QQ_EXIT_FAIL, "cannot load libcurl (%s): install the libcurl4 package", why);
    static const struct {
        const char *name;
        size_t off;
    } syms[] = {
#define S(f) { "curl_" #f, offsetof(struct qq_curl_fns, f) }
        S(global_init), S(easy_init), S(easy_setopt), S(easy_perform), S(easy_getinfo),
        S(easy_cleanup), S(easy_strerror), S(slist_append), S(slist_free_all),
#undef S
    };
    struct qq_curl_fns fns;
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        void *p = dlsym(h, syms[i].name);
        if (!p) {
            dlclose(h);
            return qq_fail(err, QQ_EXIT_FAIL, "libcurl lacks %s", syms[i].name);
        }
        *(void **)((char *)&fns + syms[i].off) = p;
    }
    qq_curl = fns;
    handle = h;
    return 0;
}
