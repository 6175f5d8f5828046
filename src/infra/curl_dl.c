/* curl_dl — libcurl loaded on first use (see curl_dl.h). */
#define QQ_CURL_DL_IMPL
#include "curl_dl.h"

#include "dl.h"

struct qq_curl_fns qq_curl;

int curl_dl_load(qq_err *err)
{
    /* the OpenSSL flavour first (libcurl4), then the GnuTLS one (libcurl3-gnutls) */
    static const char *const sonames[] = { "libcurl.so.4", "libcurl-gnutls.so.4", NULL };
    static const char *const syms[] = {
        "curl_global_init", "curl_easy_init", "curl_easy_setopt", "curl_easy_perform",
        "curl_easy_getinfo", "curl_easy_cleanup", "curl_easy_strerror", "curl_slist_append",
        "curl_slist_free_all", NULL,
    };
    static qq_dl_lib lib = { "libcurl", "libcurl4", sonames, syms, &qq_curl, sizeof qq_curl, NULL };
    return qq_dl_load(&lib, err);
}
