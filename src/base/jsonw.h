/* jsonw — JSON text byte for byte as jansson's json_dumps() with
 * JSON_INDENT(2) | JSON_ENCODE_ANY writes it, at a fraction of the cost.
 *
 * jansson's dumper calls back per token and, for each array and object, prints
 * its address to detect cycles; for a list of 1000 VMs that is most of the
 * command's time. These functions append to an sbuf instead.
 *
 * jsonw_string() appends s (len bytes) as a JSON string: '"' and '\\' escaped,
 * control characters as \b \f \n \r \t or \u00XX, everything else (including
 * '/' and non-ASCII) as is. It returns -1, having appended a prefix of it,
 * when s is not valid UTF-8 (jansson refuses to dump such a string).
 * jsonw_value() appends a whole value at nesting depth `depth` (0 for a
 * document). It returns -1 for what it does not write like jansson would
 * (reals, invalid UTF-8, nesting deeper than 512): the caller then throws the
 * buffer away and asks jansson. Object members come in the object's order
 * (jansson keeps insertion order, with or without JSON_PRESERVE_ORDER).
 * jsonw_indent() appends a newline and 2*depth spaces, as between members.
 */
#ifndef QQ_JSONW_H
#define QQ_JSONW_H

#include <jansson.h>
#include <stddef.h>

#include "sbuf.h"

int jsonw_string(sbuf *out, const char *s, size_t len);
int jsonw_value(sbuf *out, json_t *v, int depth);
void jsonw_indent(sbuf *out, int depth);

#endif
