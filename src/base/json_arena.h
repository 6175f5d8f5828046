/* json_arena — a bump allocator for jansson, for big documents kept to the end.
 *
 * A config of 1000 VMs is ~40,000 jansson allocations, 1.7 MB in all, that
 * live as long as the process. Through malloc() each costs bookkeeping, and
 * every 4 KiB page of them a page fault (slow on virtual machines). Between
 * json_arena_begin() and json_arena_end() every jansson allocation is instead
 * carved from one large anonymous mapping (8-byte aligned, as jansson's
 * structures need; pages touched only as used). When the caller expects a big
 * document (size_hint, in bytes, of 1 MiB or more) that part of the mapping is
 * asked to be backed by transparent huge pages: one fault per 2 MiB.
 *
 * Freeing a block of the arena (from json_decref() at any later time) is a
 * no-op: its memory is not reused, so use the arena only for values that are
 * built once and kept (or dropped as a whole on an error). Outside begin/end,
 * jansson allocates with malloc() as usual, and memory from malloc is freed
 * with free() whenever it was made. So memory that jansson hands to the caller
 * to free() (json_dumps()'s string) must not be made inside begin/end. Calls
 * do not nest. When the mapping cannot be made or is full, allocations fall
 * back to malloc(). Under AddressSanitizer the arena is off (ASan then still
 * sees every block). Not thread-safe: no other thread may use jansson meanwhile.
 */
#ifndef QQ_JSON_ARENA_H
#define QQ_JSON_ARENA_H

#include <stddef.h>

void json_arena_begin(size_t size_hint);
void json_arena_end(void);

#endif
