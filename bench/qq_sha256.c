/* qq-sha256 FILE — print the sha256 of FILE with infra/hash (for bench_img.sh). */
#include <stdio.h>

#include "../src/infra/hash.h"

int main(int argc, char **argv)
{
    char hex[HASH_HEX_LEN + 1];
    qq_err e = { 0 };
    if (argc != 2 || hash_file(argv[1], hex, &e) < 0) {
        fprintf(stderr, "qq-sha256: %s\n", argc != 2 ? "usage: qq-sha256 FILE" : e.msg);
        return 1;
    }
    printf("%s  %s\n", hex, argv[1]);
    return 0;
}
