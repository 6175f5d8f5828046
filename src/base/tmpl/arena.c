/* arena — the allocator of a parse or an execution: everything lives in blocks
 * freed in one go, so a longjmp out of the parser or the executor never leaks. */
#include <stdlib.h>

#include "tmpl_int.h"

void *aalloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        ablock *b = malloc(sizeof *b + cap);
        if (!b)
            abort();
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
        a->total += cap;
    }
    /* what is asked, not the block: every execution's first block would
     * otherwise cost 64 KiB of a budget many small executions share */
    sbuf_budget_take(a->budget, n);
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += n;
    memset(p, 0, n);
    return p;
}

void afree(arena *a)
{
    for (ablock *b = a->head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    a->head = NULL;
    a->total = 0;
}

char *astrndup(arena *a, const char *s, size_t n)
{
    char *p = aalloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}
