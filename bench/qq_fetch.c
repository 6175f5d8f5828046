/* qq-fetch URL SHA256 CACHE_DIR — fetch through infra/download (for bench_img.sh). */
#include <stdio.h>
#include <stdlib.h>

#include "../src/infra/download.h"

int main(int argc, char **argv)
{
    qq_err e = { 0 };
    if (argc != 4) {
        fprintf(stderr, "usage: qq-fetch URL SHA256 CACHE_DIR\n");
        return 2;
    }
    char *p = download_cached(argv[1], argv[2], argv[3], NULL, 0, NULL, &e);
    if (!p) {
        fprintf(stderr, "qq-fetch: %s\n", e.msg);
        return 1;
    }
    puts(p);
    free(p);
    return 0;
}
