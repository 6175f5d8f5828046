/* toml — a TOML 1.0.0 parser producing jansson values.
 *
 * toml_parse() reads a whole document (UTF-8, optional BOM, LF or CRLF) and
 * returns a new json object (caller json_decref()s it) in document order:
 *   string → json string, integer → json integer (int64), float → json real
 *   (inf/nan included), boolean → json true/false, array → json array,
 *   table / inline table / array of tables → json object / array of objects.
 *   Date-times, local date-times, local dates and local times → json strings
 *   holding the text in RFC 3339 form as written ("1979-05-27T07:32:00Z");
 *   with TOML_TAGGED every scalar instead becomes the toml-test tagged object
 *   {"type": "string|integer|float|bool|datetime|datetime-local|date-local|
 *   time-local", "value": "TEXT"}.
 *
 * On error it returns NULL and fills *err (if not NULL) with the 1-based line
 * and column (in characters, of the offending character) and a message without
 * location, e.g. "duplicate key \"a\"". It never crashes on any input.
 *
 * If locs is not NULL it must be an empty json object: it is filled with the
 * location of every key and array element, keyed by path → [line, col] where
 * path is built by toml_path_append(): "vm.test.cmd[1]", "vm.\"a.b\".ssh".
 * Tables defined by a header get the header's location.
 *
 * Details:
 * - Locations point at the first character of the key segment (for
 *   "a.b.c = 1": "a" at a, "a.b" at b, "a.b.c" at c), of the array element's
 *   value, or at the '[' of a header; an element of an array of tables is
 *   "a[0]", "a[1]"…, and "a" itself is at its first [[a]]. Tables made
 *   implicitly by a header ([a.b] makes a) are at their segment until a
 *   header defines them. The line/col integers in locs may be shared between
 *   entries: treat locs as read-only.
 * - Columns count Unicode characters from 1; a BOM is not counted.
 * - Without TOML_TAGGED, inf and nan are json reals holding them (jansson's
 *   json_real() refuses them, json_real_value() returns them); json_dumps()
 *   of such a document is not valid JSON. With TOML_TAGGED all is strings.
 * - Arrays, inline tables and tables nested more than 512 deep (counting
 *   every key segment) are an error, so no input can exhaust the stack.
 * - Key strings are exact: a quoted key may hold any character, including
 *   "\u0000" (use json_object_getn / jansson's key length to see those).
 */
#ifndef QQ_TOML_H
#define QQ_TOML_H

#include <jansson.h>
#include <stddef.h>

#include "sbuf.h"

enum { TOML_TAGGED = 1 };

typedef struct toml_error {
    int line, col;
    char msg[256];
} toml_error;

json_t *toml_parse(const char *text, size_t len, int flags, json_t *locs, toml_error *err);

/* Append one key segment to a path: ".key" (no dot when the path is empty),
 * quoted like a TOML basic string when the key is not a bare key. */
void toml_path_append(sbuf *path, const char *key);
/* The same for a key of len bytes (which may hold a NUL: written \u0000). */
void toml_path_append_n(sbuf *path, const char *key, size_t len);
/* Append an array index: "[i]". */
void toml_path_append_index(sbuf *path, size_t i);

#endif
