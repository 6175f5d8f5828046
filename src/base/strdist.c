/* strdist — see strdist.h. */
#include "strdist.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

size_t str_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    /* three rows of the (n+1) x (m+1) table: two back, one back, this one */
    size_t *r0 = xcalloc(m + 1, sizeof *r0), *r1 = xcalloc(m + 1, sizeof *r1), *r2 = xcalloc(m + 1, sizeof *r2);
    for (size_t j = 0; j <= m; j++)
        r1[j] = j;
    for (size_t i = 1; i <= n; i++) {
        r2[0] = i;
        int ca = tolower((unsigned char)a[i - 1]);
        for (size_t j = 1; j <= m; j++) {
            int cb = tolower((unsigned char)b[j - 1]);
            size_t best = r1[j - 1] + (ca != cb);
            if (r1[j] + 1 < best)
                best = r1[j] + 1;
            if (r2[j - 1] + 1 < best)
                best = r2[j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && r0[j - 2] + 1 < best)
                best = r0[j - 2] + 1;
            r2[j] = best;
        }
        size_t *t = r0;
        r0 = r1;
        r1 = r2;
        r2 = t;
    }
    size_t d = r1[m];
    free(r0);
    free(r1);
    free(r2);
    return d;
}

const char *str_closest(const char *word, const char *const *candidates)
{
    size_t len = strlen(word), limit = len / 3;
    if (limit < 1)
        limit = 1;
    if (limit > 3)
        limit = 3;
    const char *best = NULL;
    size_t bestd = limit + 1;
    for (const char *const *c = candidates; *c; c++) {
        size_t d = str_distance(word, *c);
        if (d < bestd) {
            bestd = d;
            best = *c;
        }
    }
    return best;
}
