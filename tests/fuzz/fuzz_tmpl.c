/* libFuzzer target: parse and execute arbitrary template text over fixed data. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/base/sbuf.h"
#include "../../src/base/tmpl.h"

static const char *DATA =
    "{\"vm\":{\"name\":\"web\",\"ssh\":{\"port\":2222,\"vm_port\":22},\"tags\":[\"a\",\"b\"]},"
    "\"img\":{\"deb\":\"/i/d\"},\"list\":[1,2.5,\"x\",null,true,{\"k\":[1]}],\"m\":{\"b\":2,\"a\":1},"
    "\"n\":null,\"s\":\"h\\u00e9llo\",\"f\":1e21,\"e\":[],\"z\":0}";

/* A lookup hook that passes values through but fails on key "b" and on the
 * element 2.5, so the hook's paths (reads, failures while printing) run too. */
static json_t *hook(void *ud, json_t *container, const char *key, json_t *value, tmpl_error *err)
{
    (void)ud, (void)container;
    if ((key && !strcmp(key, "b")) || (json_is_real(value) && json_real_value(value) == 2.5)) {
        strcpy(err->msg, "hook refuses");
        return NULL;
    }
    return value;
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    static json_t *data;
    if (!data)
        data = json_loads(DATA, 0, NULL);
    char *text = malloc(len + 1);
    if (!text)
        return 0;
    memcpy(text, buf, len);
    text[len] = 0; /* text stops at the first NUL, as for a C string */
    sbuf out = SBUF_INIT;
    tmpl_error err;
    tmpl *t = tmpl_parse("fuzz", text, &err);
    if (t) {
        tmpl_exec(t, NULL, data, &out, &err);
        tmpl_exec(t, "x", data, &out, &err);
        tmpl_exec_with(t, NULL, data, hook, NULL, &out, &err);
        tmpl_free(t);
    }
    sbuf_free(&out);
    free(text);
    return 0;
}
