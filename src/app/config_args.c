/* config_args — split a rendered cmd entry into arguments (see config.h, "Arguments"). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "../base/sbuf.h"

int config_split_args(const char *s, char ***argv, size_t *argc, qq_err *err)
{
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            return 0;
        sbuf arg = SBUF_INIT;
        while (*p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
            if (*p == '\'' || *p == '"') {
                char q = *p++;
                const char *end = strchr(p, q);
                if (!end) {
                    sbuf_free(&arg);
                    return qq_fail(err, QQ_EXIT_USAGE, "unterminated %c quote in \"%s\"", q, s);
                }
                sbuf_add(&arg, p, (size_t)(end - p));
                if (end == p && arg.len == 0)
                    sbuf_add(&arg, "", 0); /* '' is an empty argument */
                p = end + 1;
            } else {
                sbuf_addc(&arg, *p++);
            }
        }
        char **n = realloc(*argv, (*argc + 2) * sizeof **argv);
        if (!n)
            abort();
        *argv = n;
        (*argv)[(*argc)++] = sbuf_steal(&arg);
        (*argv)[*argc] = NULL;
    }
}
