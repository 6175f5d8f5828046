/* tmpl — Go's text/template, over jansson data.
 *
 * Same output as Go's text/template for the same template text and JSON-like
 * data (objects ~ map[string]any, arrays ~ []any, strings, json integer ~ int64,
 * json real ~ float64, true/false ~ bool, null ~ nil). One deliberate
 * difference: a missing object key is an error both in a field chain (Go's
 * Option("missingkey=error")) and in `index` (where Go prints "<no value>").
 *
 * tmpl_parse() parses text (with its {{define}}s) under the given name and
 * returns a new template set or NULL with *err filled. tmpl_exec() runs the
 * template called name (or the main one when name is NULL) on data and
 * appends the output to out; on error returns -1 with *err filled and out
 * holding the partial output. Messages follow Go's form:
 *   template: NAME:LINE:COL: executing "NAME" at <.vm.foo>: map has no entry for key "foo"
 *   template: NAME:LINE: unexpected "}" in operand
 * The template never holds references to data after tmpl_exec returns.
 *
 * Bounds: out->budget (sbuf.h) bounds all the memory an execution takes for
 * text — its output, its temporaries (print, printf, html, …) and its arena —
 * charged before it is taken. Without one, the execution has its own of
 * 256 MiB (out->budget is NULL again afterwards). Executions that give their
 * out the same budget (a lookup hook rendering vars) share it. A refusal fails
 * the execution at the node that asked: "output too large (more than N
 * bytes)", or "(the output's budget is spent)" for the caller's budget.
 */
#ifndef QQ_TMPL_H
#define QQ_TMPL_H

#include <jansson.h>

#include "sbuf.h"

typedef struct tmpl tmpl;

typedef struct tmpl_error {
    char msg[1024];
} tmpl_error;

tmpl *tmpl_parse(const char *name, const char *text, tmpl_error *err);
int tmpl_exec(const tmpl *t, const char *name, json_t *data, sbuf *out, tmpl_error *err);
void tmpl_free(tmpl *t);

/* Convenience: parse + execute the main template once.
 * tmpl_exec/tmpl_render are tmpl_exec_with/tmpl_render_with without a hook. */
int tmpl_render(const char *name, const char *text, json_t *data, sbuf *out, tmpl_error *err);

/* Called for every value the executor reads out of an object or an array: a field or
 * chain step (.a.b), index, each element of range (maps and arrays), and each element when
 * a container is printed ({{.ns}}, print, printf, html, js, urlquery, or an error message
 * that shows it, e.g. eq's "non-comparable types"). len reads no element and eq/lt compare
 * only basic values, so those call it only through such a message.
 * container: the object/array read from; key: the object key (NULL for arrays);
 * value: what was found. Returns the value to use instead (borrowed; it must stay valid
 * until tmpl_exec_with returns — usually value itself), or NULL with err->msg filled to
 * fail the execution (reported like Go's exec errors, at the node being evaluated:
 * `template: NAME:LINE:COL: executing "NAME" at <.x>: MESSAGE`).
 * The hook may itself call tmpl_exec_with/tmpl_render_with (executions are re-entrant);
 * a missing object key fails before the hook is called. */
typedef json_t *(*tmpl_lookup_fn)(void *ud, json_t *container, const char *key, json_t *value,
                                  tmpl_error *err);
int tmpl_exec_with(const tmpl *t, const char *name, json_t *data, tmpl_lookup_fn fn, void *ud,
                   sbuf *out, tmpl_error *err);
int tmpl_render_with(const char *name, const char *text, json_t *data, tmpl_lookup_fn fn,
                     void *ud, sbuf *out, tmpl_error *err);

/* True when text contains no "{{" (rendering would return it unchanged). */
int tmpl_is_plain(const char *text);

#endif
