/* curl_dl — libcurl, loaded when the first download happens.
 *
 * libcurl and the two dozen libraries it pulls in (TLS, LDAP, Kerberos, …) cost
 * every qqmgr process about 5 MiB of memory and most of its start-up time, and
 * only `img build` downloads. So qqmgr is not linked against libcurl: it is
 * compiled against curl/curl.h (pkg-config) and dlopen()s libcurl.so.4 the first
 * time it is needed, as systemd does with its optional libraries.
 *
 * Include this header after <curl/curl.h> in the one file that calls libcurl:
 * the curl_* names used there become calls through the loaded table. Call
 * curl_dl_load() before the first of them; it returns 0, or -1 with err filled
 * (QQ_EXIT_FAIL, naming the library and what to install). Loading is done once
 * per process and never undone.
 */
#ifndef QQ_CURL_DL_H
#define QQ_CURL_DL_H

#include <curl/curl.h>

#include "../base/err.h"

struct qq_curl_fns {
    __typeof__(curl_global_init) *global_init;
    __typeof__(curl_easy_init) *easy_init;
    __typeof__(curl_easy_setopt) *easy_setopt;
    __typeof__(curl_easy_perform) *easy_perform;
    __typeof__(curl_easy_getinfo) *easy_getinfo;
    __typeof__(curl_easy_cleanup) *easy_cleanup;
    __typeof__(curl_easy_strerror) *easy_strerror;
    __typeof__(curl_slist_append) *slist_append;
    __typeof__(curl_slist_free_all) *slist_free_all;
};

extern struct qq_curl_fns qq_curl;

int curl_dl_load(qq_err *err);

#ifndef QQ_CURL_DL_IMPL
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init (*qq_curl.global_init)
#define curl_easy_init (*qq_curl.easy_init)
#define curl_easy_setopt (*qq_curl.easy_setopt)
#define curl_easy_perform (*qq_curl.easy_perform)
#define curl_easy_getinfo (*qq_curl.easy_getinfo)
#define curl_easy_cleanup (*qq_curl.easy_cleanup)
#define curl_easy_strerror (*qq_curl.easy_strerror)
#define curl_slist_append (*qq_curl.slist_append)
#define curl_slist_free_all (*qq_curl.slist_free_all)
#endif

#endif
