/* json_arena — bump allocator for jansson (see json_arena.h). */
#include "json_arena.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_OFF 1
#endif
#endif

#ifndef ARENA_OFF

/* Address space only: a page costs memory once it is written. */
#define ARENA_SIZE ((size_t)256 << 20)
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_HINT ((size_t)1 << 20)

static char *base, *next, *limit, *huge_end;
static bool active;

static void *arena_malloc(size_t n)
{
    if (active) {
        size_t need = (n + 7) & ~(size_t)7;
        if (need >= n && (size_t)(limit - next) >= need) {
            void *p = next;
            next += need;
            return p;
        }
    }
    return malloc(n);
}

static void arena_free(void *p)
{
    if ((char *)p >= base && (char *)p < limit)
        return;
    free(p);
}

void json_arena_begin(size_t size_hint)
{
    if (!base) {
        void *m = mmap(NULL, ARENA_SIZE + HUGE_PAGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return;
        /* start on a huge-page boundary, so that huge pages can back it */
        base = next = (char *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
        limit = base + ARENA_SIZE;
        huge_end = base;
        json_set_alloc_funcs(arena_malloc, arena_free);
    }
    if (size_hint >= HUGE_HINT && size_hint <= (size_t)(limit - next)) {
        char *from = (char *)(((uintptr_t)next + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
        if (from < huge_end)
            from = huge_end;
        char *to = (char *)(((uintptr_t)next + size_hint + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
        if (to > limit)
            to = limit;
        if (to > from && madvise(from, (size_t)(to - from), MADV_HUGEPAGE) == 0)
            huge_end = to;
    }
    active = true;
}

void json_arena_end(void)
{
    active = false;
}

#else /* AddressSanitizer: plain malloc */

void json_arena_begin(size_t size_hint)
{
    (void)size_hint;
}

void json_arena_end(void)
{
}

#endif
