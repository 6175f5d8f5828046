/* strdist — how far apart two words are, for "did you mean X" hints.
 *
 * str_distance() is the optimal-string-alignment distance (insertions,
 * deletions, substitutions and swaps of neighbours each cost 1), comparing
 * ASCII letters without regard to case. str_closest() returns the candidate
 * (from a NULL-terminated list) nearest to word, the first one on a tie, when
 * it is near enough to be a likely typo (at most a third of the word's
 * length, at least 1, at most 3); else NULL.
 */
#ifndef QQ_STRDIST_H
#define QQ_STRDIST_H

#include <stddef.h>

size_t str_distance(const char *a, const char *b);
const char *str_closest(const char *word, const char *const *candidates);

#endif
