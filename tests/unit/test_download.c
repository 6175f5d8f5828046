/* Unit tests for infra/hash and infra/download, against a loopback HTTP
 * server (tests/tools/http_server.py) started by the test on a free port. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/base/cleanup.h"
#include "../../src/base/err.h"
#include "../../src/base/sbuf.h"
#include "../../src/infra/download.h"
#include "../../src/infra/hash.h"

#define DATA_LEN (3 * 1024 * 1024 + 123)

static char tmpdir[] = "/tmp/qq-test-dl-XXXXXX";
static char data_path[256];
static char data_hex[HASH_HEX_LEN + 1];
static unsigned char *data;
static pid_t server_pid;
static int port;

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static int start_server(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(tmpdir));
    data = malloc(DATA_LEN);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < DATA_LEN; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    snprintf(data_path, sizeof data_path, "%s/data.bin", tmpdir);
    write_file(data_path, data, DATA_LEN);
    assert_int_equal(hash_bytes(data, DATA_LEN, data_hex, NULL), 0);

    const char *root = getenv("QQ_SOURCE_ROOT");
    char script[512];
    snprintf(script, sizeof script, "%s/tests/tools/http_server.py", root ? root : ".");
    int p[2];
    assert_int_equal(pipe(p), 0);
    server_pid = fork();
    if (server_pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        execl("/usr/bin/python3", "python3", script, tmpdir, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char line[32] = { 0 };
    FILE *f = fdopen(p[0], "r");
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    port = atoi(line);
    assert_true(port > 0);
    return 0;
}

static int stop_server(void **state)
{
    (void)state;
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        return -1;
    free(data);
    return 0;
}

/* A fresh, empty cache directory for each test. */
static int new_cache(void **state)
{
    static int n;
    char *dir = malloc(300);
    snprintf(dir, 300, "%s/cache%d", tmpdir, n++);
    *state = dir;
    return 0;
}

static int free_cache(void **state)
{
    free(*state);
    return 0;
}

static char *url(const char *path)
{
    sbuf b = SBUF_INIT;
    sbuf_addf(&b, "http://127.0.0.1:%d/%s", port, path);
    return sbuf_steal(&b);
}

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
    sbuf_add(ud, p, s * n);
    return s * n;
}

static json_t *stats(void)
{
    _cleanup_free_ char *u = url("_stats");
    _cleanup_sbuf_ sbuf b = SBUF_INIT;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    json_t *j = json_loads(sbuf_str(&b), 0, NULL);
    assert_non_null(j);
    return j;
}

static int gets_of(const char *path)
{
    _cleanup_json_ json_t *s = stats();
    return (int)json_integer_value(json_object_get(json_object_get(s, "count"), path));
}

/* Names in dir, sorted, joined by spaces ("" when empty or missing). */
static char *listing(const char *dir)
{
    sbuf b = SBUF_INIT;
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        if (ents[i]->d_name[0] != '.') {
            if (b.len)
                sbuf_addc(&b, ' ');
            sbuf_adds(&b, ents[i]->d_name);
        }
        free(ents[i]);
    }
    if (n >= 0)
        free(ents);
    return sbuf_steal(&b);
}

static void assert_file_is_data(const char *path)
{
    char hex[HASH_HEX_LEN + 1];
    qq_err e = { 0 };
    assert_int_equal(hash_file(path, hex, &e), 0);
    assert_string_equal(hex, data_hex);
}

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ---- hash ---- */

static void test_hash_matches_known_vectors(void **state)
{
    (void)state;
    char hex[HASH_HEX_LEN + 1];
    assert_int_equal(hash_bytes("abc", 3, hex, NULL), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(hash_bytes("", 0, hex, NULL), 0);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_hash_file_equals_incremental_hash(void **state)
{
    (void)state;
    char whole[HASH_HEX_LEN + 1], inc[HASH_HEX_LEN + 1];
    qq_err e = { 0 };
    assert_int_equal(hash_file(data_path, whole, &e), 0);
    hash_ctx h = { 0 };
    assert_int_equal(hash_init(&h, &e), 0);
    for (size_t off = 0; off < DATA_LEN; off += 4093)
        hash_update(&h, data + off, DATA_LEN - off < 4093 ? DATA_LEN - off : 4093);
    hash_final(&h, inc);
    assert_string_equal(whole, inc);
    assert_string_equal(whole, data_hex);
}

static void test_hash_of_missing_file_names_it(void **state)
{
    (void)state;
    char hex[HASH_HEX_LEN + 1];
    qq_err e = { 0 };
    assert_int_equal(hash_file("/nonexistent/qq-file", hex, &e), -1);
    assert_non_null(strstr(e.msg, "/nonexistent/qq-file"));
    assert_int_equal(e.code, QQ_EXIT_FAIL);
}

static void test_hash_is_hex_accepts_only_64_hex_digits(void **state)
{
    (void)state;
    assert_true(hash_is_hex(data_hex));
    assert_true(hash_is_hex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    assert_false(hash_is_hex("ba7816bf"));
    assert_false(hash_is_hex("za7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    assert_false(hash_is_hex(""));
}

/* ---- download ---- */

static void test_download_verifies_and_caches_under_its_sha256(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    dl_result r;
    _cleanup_free_ char *path = download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e);
    assert_non_null(path);
    assert_true(r.fetched);
    assert_int_equal(r.bytes, DATA_LEN);
    char want[400];
    snprintf(want, sizeof want, "%s/%s", cache, data_hex);
    assert_string_equal(path, want);
    assert_file_is_data(path);
    _cleanup_free_ char *ls = listing(cache);
    char files[200];
    snprintf(files, sizeof files, "%s %s.ok", data_hex, data_hex);
    assert_string_equal(ls, files);        /* the file and its record; no .part, no .lock left */
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path)
{
    char *s = calloc(1, 256);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(s, 1, 255, f);
        s[n] = '\0';
        fclose(f);
    }
    return s;
}

static void test_download_in_this_boot_is_trusted_without_a_sync(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    free(download_cached(u, data_hex, cache, NULL, DL_QUIET, NULL, &e));
    char ok[400];
    snprintf(ok, sizeof ok, "%s/%s.ok", cache, data_hex);
    _cleanup_free_ char *rec = read_text(ok);
    _cleanup_free_ char *boot = read_text("/proc/sys/kernel/random/boot_id");
    char want[128];
    snprintf(want, sizeof want, "boot %s", boot);
    assert_string_equal(rec, want);
}

static void test_file_cached_in_an_earlier_boot_is_rehashed_once_then_durable(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    dl_result r;
    free(download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e));
    char ok[400];
    snprintf(ok, sizeof ok, "%s/%s.ok", cache, data_hex);
    write_text(ok, "boot 00000000-0000-0000-0000-000000000000\n");
    int before = gets_of("/data.bin");
    _cleanup_free_ char *path = download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e);
    assert_non_null(path);
    assert_false(r.fetched);
    assert_int_equal(gets_of("/data.bin"), before);
    _cleanup_free_ char *rec = read_text(ok);
    assert_string_equal(rec, "durable\n");
}

static void test_file_damaged_by_a_crash_is_fetched_again(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    dl_result r;
    _cleanup_free_ char *path = download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e);
    assert_non_null(path);
    char ok[400];
    snprintf(ok, sizeof ok, "%s/%s.ok", cache, data_hex);
    write_text(ok, "boot 00000000-0000-0000-0000-000000000000\n");
    assert_int_equal(truncate(path, 0), 0);     /* what a power cut may leave */
    int before = gets_of("/data.bin");
    _cleanup_free_ char *again = download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e);
    assert_non_null(again);
    assert_true(r.fetched);
    assert_int_equal(gets_of("/data.bin"), before + 1);
    assert_file_is_data(again);
}

static void test_cached_file_is_returned_without_a_request(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    dl_result r;
    free(download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e));
    int before = gets_of("/data.bin");
    _cleanup_free_ char *path = download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e);
    assert_non_null(path);
    assert_false(r.fetched);
    assert_int_equal(gets_of("/data.bin"), before);
}

static void test_uppercase_sha256_names_the_same_cache_entry(void **state)
{
    const char *cache = *state;
    char upper[HASH_HEX_LEN + 1];
    for (int i = 0; i <= HASH_HEX_LEN; i++)
        upper[i] = (char)(data_hex[i] >= 'a' ? data_hex[i] - 32 : data_hex[i]);
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    _cleanup_free_ char *path = download_cached(u, upper, cache, NULL, DL_QUIET, NULL, &e);
    assert_non_null(path);
    assert_non_null(strstr(path, data_hex));
}

static void test_malformed_sha256_is_a_usage_error(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    assert_null(download_cached(u, "abc123", cache, NULL, DL_QUIET, NULL, &e));
    assert_int_equal(e.code, QQ_EXIT_USAGE);
    assert_non_null(strstr(e.msg, "abc123"));
}

static void test_wrong_sha256_fails_showing_both_sums_and_leaves_nothing(void **state)
{
    const char *cache = *state;
    const char *wrong = "0000000000000000000000000000000000000000000000000000000000000000";
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    assert_null(download_cached(u, wrong, cache, NULL, DL_QUIET, NULL, &e));
    assert_int_equal(e.code, QQ_EXIT_FAIL);
    assert_non_null(strstr(e.msg, u));
    assert_non_null(strstr(e.msg, "expected 0000000000000000"));
    assert_non_null(strstr(e.msg, data_hex));
    assert_null(strchr(e.msg, '\n'));
    _cleanup_free_ char *ls = listing(cache);
    assert_string_equal(ls, "");
}

static void test_http_404_fails_naming_url_and_leaves_nothing(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *u = url("missing.bin");
    qq_err e = { 0 };
    assert_null(download_cached(u, data_hex, cache, NULL, DL_QUIET, NULL, &e));
    assert_non_null(strstr(e.msg, u));
    assert_non_null(strstr(e.msg, "404"));
    _cleanup_free_ char *ls = listing(cache);
    assert_string_equal(ls, "");
}

static void test_refused_connection_fails_naming_url(void **state)
{
    const char *cache = *state;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);                 /* nobody listens there now */
    char u[100];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/data.bin", ntohs(a.sin_port));
    qq_err e = { 0 };
    assert_null(download_cached(u, data_hex, cache, NULL, DL_QUIET, NULL, &e));
    assert_non_null(strstr(e.msg, u));
    assert_non_null(strstr(e.msg, "onnect"));
    _cleanup_free_ char *ls = listing(cache);
    assert_string_equal(ls, "");
}

static void test_cut_transfer_keeps_part_and_next_call_resumes_with_range(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *cut = url("cut/data.bin");
    _cleanup_free_ char *good = url("data.bin");
    qq_err e = { 0 };
    assert_null(download_cached(cut, data_hex, cache, NULL, DL_QUIET, NULL, &e));
    assert_non_null(strstr(e.msg, cut));
    char part[400];
    snprintf(part, sizeof part, "%s/%s.part", cache, data_hex);
    assert_int_equal(size_of(part), DATA_LEN / 2);
    char kept[64];   /* the message tells what the .part holds */
    snprintf(kept, sizeof kept, "(%d bytes kept to resume)", DATA_LEN / 2);
    assert_non_null(strstr(e.msg, kept));

    dl_result r;
    e = (qq_err){ 0 };
    _cleanup_free_ char *path = download_cached(good, data_hex, cache, NULL, DL_QUIET, &r, &e);
    assert_non_null(path);
    assert_int_equal(r.resumed_at, DATA_LEN / 2);
    assert_int_equal(r.bytes, DATA_LEN - DATA_LEN / 2);
    assert_file_is_data(path);
    _cleanup_json_ json_t *s = stats();
    json_t *ranges = json_object_get(s, "ranges");
    json_t *last = json_array_get(ranges, json_array_size(ranges) - 1);
    char want[64];
    snprintf(want, sizeof want, "bytes=%d-", DATA_LEN / 2);
    assert_string_equal(json_string_value(json_array_get(last, 0)), "/data.bin");
    assert_string_equal(json_string_value(json_array_get(last, 1)), want);
}


/* Under RLIMIT_FSIZE (as on a full disk) a write fails: the partial file is
 * removed, not left to fill the disk, and the process is not killed by SIGXFSZ. */
static void test_write_error_removes_the_partial_file(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *u = url("data.bin");
    char part[400];
    snprintf(part, sizeof part, "%s/%s.part", cache, data_hex);
    assert_int_equal(mkdir(cache, 0700), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        struct rlimit rl = { .rlim_cur = 1 << 20, .rlim_max = 1 << 20 };
        setrlimit(RLIMIT_FSIZE, &rl);
        qq_err e = { 0 };
        char *path = download_cached(u, data_hex, cache, NULL, DL_QUIET, NULL, &e);
        if (write(p[1], e.msg, strlen(e.msg)) < 0)
            _exit(3);
        _exit(path ? 2 : 0);
    }
    close(p[1]);
    char msg[1024] = { 0 };
    size_t got = 0;
    ssize_t n;
    while ((n = read(p[0], msg + got, sizeof msg - 1 - got)) > 0)
        got += (size_t)n;
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));   /* not killed by SIGXFSZ */
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(msg, u));
    assert_non_null(strstr(msg, "File too large"));
    assert_non_null(strstr(msg, "the partial file is removed"));
    assert_int_equal(size_of(part), -1);
}

static void test_endless_body_is_bounded_by_the_expected_size(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *u = url("endless/data.bin");
    qq_err e = { 0 };
    assert_null(download_cached_max(u, data_hex, cache, NULL, DL_QUIET, DATA_LEN, NULL, &e));
    assert_non_null(strstr(e.msg, u));
    char want[96];
    snprintf(want, sizeof want, "the body is longer than the expected %d bytes", DATA_LEN);
    assert_non_null(strstr(e.msg, want));
    _cleanup_free_ char *ls = listing(cache);
    assert_string_equal(ls, "");
}

static void test_server_ignoring_range_restarts_from_zero(void **state)
{
    const char *cache = *state;
    assert_int_equal(mkdir(cache, 0755), 0);
    char part[400];
    snprintf(part, sizeof part, "%s/%s.part", cache, data_hex);
    write_file(part, data, 1000);
    _cleanup_free_ char *u = url("norange/data.bin");
    qq_err e = { 0 };
    dl_result r;
    _cleanup_free_ char *path = download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e);
    assert_non_null(path);
    assert_int_equal(r.resumed_at, 0);
    assert_file_is_data(path);
}

static void test_stale_part_is_discarded_and_fetched_again(void **state)
{
    const char *cache = *state;
    assert_int_equal(mkdir(cache, 0755), 0);
    char part[400];
    snprintf(part, sizeof part, "%s/%s.part", cache, data_hex);
    write_file(part, "garbage that is not a prefix", 28);
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    dl_result r;
    _cleanup_free_ char *path = download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e);
    assert_non_null(path);
    assert_file_is_data(path);
}

static void test_complete_part_is_finished_without_refetching(void **state)
{
    const char *cache = *state;
    assert_int_equal(mkdir(cache, 0755), 0);
    char part[400];
    snprintf(part, sizeof part, "%s/%s.part", cache, data_hex);
    write_file(part, data, DATA_LEN);       /* killed just before the rename */
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    dl_result r;
    _cleanup_free_ char *path = download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e);
    if (!path)
        fail_msg("%s", e.msg);
    assert_int_equal(r.bytes, 0);
    assert_file_is_data(path);
}

static void test_file_url_is_fetched_and_resumed(void **state)
{
    const char *cache = *state;
    assert_int_equal(mkdir(cache, 0755), 0);
    char part[400];
    snprintf(part, sizeof part, "%s/%s.part", cache, data_hex);
    write_file(part, data, 5000);
    char u[400];
    snprintf(u, sizeof u, "file://%s", data_path);
    qq_err e = { 0 };
    dl_result r;
    _cleanup_free_ char *path = download_cached(u, data_hex, cache, NULL, DL_QUIET, &r, &e);
    assert_non_null(path);
    assert_int_equal(r.resumed_at, 5000);
    assert_int_equal(r.bytes, DATA_LEN - 5000);
    assert_file_is_data(path);
}

static void test_missing_file_url_fails_naming_it(void **state)
{
    const char *cache = *state;
    qq_err e = { 0 };
    assert_null(download_cached("file:///nonexistent/qq.img", data_hex, cache, NULL, DL_QUIET,
                                NULL, &e));
    assert_non_null(strstr(e.msg, "file:///nonexistent/qq.img"));
    _cleanup_free_ char *ls = listing(cache);
    assert_string_equal(ls, "");
}

static void test_unsupported_scheme_is_refused(void **state)
{
    const char *cache = *state;
    qq_err e = { 0 };
    assert_null(download_cached("ftp://127.0.0.1/x", data_hex, cache, NULL, DL_QUIET, NULL, &e));
    assert_non_null(strstr(e.msg, "ftp://127.0.0.1/x"));
}

static void test_concurrent_callers_download_once(void **state)
{
    const char *cache = *state;
    _cleanup_free_ char *u = url("slow/data.bin");
    int before = gets_of("/slow/data.bin");
    pid_t kids[3];
    for (int i = 0; i < 3; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            qq_err e = { 0 };
            char *p = download_cached(u, data_hex, cache, NULL, DL_QUIET, NULL, &e);
            if (!p)
                fprintf(stderr, "child: %s\n", e.msg);
            _exit(p ? 0 : 1);
        }
    }
    for (int i = 0; i < 3; i++) {
        int st;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(gets_of("/slow/data.bin"), before + 1);
    char final[400];
    snprintf(final, sizeof final, "%s/%s", cache, data_hex);
    assert_file_is_data(final);
    _cleanup_free_ char *ls = listing(cache);
    char files[200];
    snprintf(files, sizeof files, "%s %s.ok", data_hex, data_hex);
    assert_string_equal(ls, files);
}

static void test_a_path_is_a_file_url_and_a_url_stays_as_it_is(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        { "https://example.org/a b", "/cfg", "https://example.org/a b" },   /* a URL: untouched */
        { "file:///x/y.qcow2", "/cfg", "file:///x/y.qcow2" },
        { "/abs/base 1.qcow2", "/cfg", "file:///abs/base%201.qcow2" },
        { "rel/b.qcow2", "/my cfg", "file:///my%20cfg/rel/b.qcow2" },        /* relative to the config */
        { "a:b#c?d%.img", "/c", "file:///c/a%3Ab%23c%3Fd%25.img" },          /* no scheme:// = a path */
        { "caf\xc3\xa9.img", "/c", "file:///c/caf%C3%A9.img" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *u = download_url(cases[i][0], cases[i][1]);
        assert_string_equal(u, cases[i][2]);
        free(u);
    }
}

static void test_default_cache_dir_follows_xdg_cache_home(void **state)
{
    (void)state;
    qq_err e = { 0 };
    setenv("XDG_CACHE_HOME", "/some/where", 1);
    _cleanup_free_ char *d = download_cache_dir(&e);
    assert_string_equal(d, "/some/where/qqmgr/sha256");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/u", 1);
    _cleanup_free_ char *h = download_cache_dir(&e);
    assert_string_equal(h, "/home/u/.cache/qqmgr/sha256");
}

static void test_sha512_matches_the_known_vector(void **state)
{
    (void)state;
    hash_ctx h = { 0 };
    char hex[HASH512_HEX_LEN + 1];
    assert_int_equal(hash512_init(&h, NULL), 0);
    hash_update(&h, "abc", 3);
    hash512_final(&h, hex);
    assert_string_equal(hex, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                             "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
}

static void sha512_of_data(char hex[HASH512_HEX_LEN + 1])
{
    hash_ctx h = { 0 };
    assert_int_equal(hash512_init(&h, NULL), 0);
    hash_update(&h, data, DATA_LEN);
    hash512_final(&h, hex);
}

/* A fresh cache/sha256 with its own sha512 index beside it. */
static char *fresh_cache(const char *cache)
{
    sbuf b = SBUF_INIT;
    sbuf_addf(&b, "%s/sha256", cache);
    return sbuf_steal(&b);
}

static void test_download_by_sha512_alone_lands_under_its_sha256_and_is_indexed(void **state)
{
    _cleanup_free_ char *cache = fresh_cache(*state);
    char h512[HASH512_HEX_LEN + 1];
    sha512_of_data(h512);
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    dl_result r;
    dl_opts o = { .cache_dir = cache, .flags = DL_QUIET, .sha512 = h512 };
    _cleanup_free_ char *path = download_fetch(u, NULL, &o, &r, &e);
    assert_non_null(path);
    assert_true(r.fetched);
    char want[600];
    snprintf(want, sizeof want, "%s/%s", cache, data_hex);
    assert_string_equal(path, want);
    assert_file_is_data(path);
    snprintf(want, sizeof want, "%s/sha512/%s", (const char *)*state, h512);
    _cleanup_free_ char *idx = read_text(want);
    char line[HASH_HEX_LEN + 2];
    snprintf(line, sizeof line, "%s\n", data_hex);
    assert_string_equal(idx, line);
    /* again: from the cache, no request */
    int before = gets_of("/data.bin");
    _cleanup_free_ char *again = download_fetch(u, NULL, &o, &r, &e);
    assert_non_null(again);
    assert_false(r.fetched);
    assert_int_equal(gets_of("/data.bin"), before);
    /* a damaged index entry is a miss, never a wrong file */
    write_text(want, "0000\n");
    _cleanup_free_ char *third = download_fetch(u, NULL, &o, &r, &e);
    assert_non_null(third);
    assert_string_equal(third, path);
    assert_int_equal(gets_of("/data.bin"), before + 1);
}

static void test_wrong_sha512_fails_showing_both_sums_and_leaves_nothing(void **state)
{
    _cleanup_free_ char *cache = fresh_cache(*state);
    char h512[HASH512_HEX_LEN + 1], wrong[HASH512_HEX_LEN + 1];
    sha512_of_data(h512);
    memset(wrong, 'e', HASH512_HEX_LEN);
    wrong[HASH512_HEX_LEN] = '\0';
    _cleanup_free_ char *u = url("data.bin");
    qq_err e = { 0 };
    dl_opts o = { .cache_dir = cache, .flags = DL_QUIET, .sha512 = wrong };
    assert_null(download_fetch(u, NULL, &o, NULL, &e));
    assert_int_equal(e.code, QQ_EXIT_FAIL);
    assert_non_null(strstr(e.msg, "sha512 mismatch"));
    assert_non_null(strstr(e.msg, wrong));
    assert_non_null(strstr(e.msg, h512));
    _cleanup_free_ char *ls = listing(cache);
    assert_string_equal(ls, "");
    /* with a right sha256 and a wrong sha512: both are checked */
    qq_err e2 = { 0 };
    assert_null(download_fetch(u, data_hex, &o, NULL, &e2));
    assert_non_null(strstr(e2.msg, "sha512 mismatch"));
    _cleanup_free_ char *ls2 = listing(cache);
    assert_string_equal(ls2, "");
}

#define T(f) cmocka_unit_test_setup_teardown(f, new_cache, free_cache)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_matches_known_vectors),
        cmocka_unit_test(test_hash_file_equals_incremental_hash),
        cmocka_unit_test(test_hash_of_missing_file_names_it),
        cmocka_unit_test(test_hash_is_hex_accepts_only_64_hex_digits),
        T(test_download_verifies_and_caches_under_its_sha256),
        T(test_download_in_this_boot_is_trusted_without_a_sync),
        T(test_file_cached_in_an_earlier_boot_is_rehashed_once_then_durable),
        T(test_file_damaged_by_a_crash_is_fetched_again),
        T(test_cached_file_is_returned_without_a_request),
        T(test_uppercase_sha256_names_the_same_cache_entry),
        T(test_malformed_sha256_is_a_usage_error),
        T(test_wrong_sha256_fails_showing_both_sums_and_leaves_nothing),
        T(test_http_404_fails_naming_url_and_leaves_nothing),
        T(test_refused_connection_fails_naming_url),
        T(test_cut_transfer_keeps_part_and_next_call_resumes_with_range),
        T(test_write_error_removes_the_partial_file),
        T(test_endless_body_is_bounded_by_the_expected_size),
        T(test_server_ignoring_range_restarts_from_zero),
        T(test_stale_part_is_discarded_and_fetched_again),
        T(test_complete_part_is_finished_without_refetching),
        T(test_file_url_is_fetched_and_resumed),
        T(test_missing_file_url_fails_naming_it),
        T(test_unsupported_scheme_is_refused),
        T(test_concurrent_callers_download_once),
        cmocka_unit_test(test_sha512_matches_the_known_vector),
        T(test_download_by_sha512_alone_lands_under_its_sha256_and_is_indexed),
        T(test_wrong_sha512_fails_showing_both_sums_and_leaves_nothing),
        cmocka_unit_test(test_default_cache_dir_follows_xdg_cache_home),
        cmocka_unit_test(test_a_path_is_a_file_url_and_a_url_stays_as_it_is),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
