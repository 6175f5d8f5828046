/* qq-copy SRC DST — copy with infra/copy (for bench_img.sh). */
#include <stdio.h>

#include "../src/infra/copy.h"

int main(int argc, char **argv)
{
    qq_err e = { 0 };
    copy_stats cs;
    if (argc != 3 || copy_sparse(argv[1], argv[2], &cs, &e) < 0) {
        fprintf(stderr, "qq-copy: %s\n", argc != 3 ? "usage: qq-copy SRC DST" : e.msg);
        return 1;
    }
    printf("%s %llu bytes of data\n", cs.reflinked ? "reflinked" : "copied", cs.data);
    return 0;
}
