/* Unit tests for layout's "whose directory": the state dir scheme (two
 * configs in one directory never collide), the records every dir gets, which
 * dirs count as a config's own, and the move of an older qqmgr's layout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/app/layout.h"
#include "../../src/base/cleanup.h"
#include "../../src/base/xalloc.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qq-test-layout-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *at(const char *name) { return xasprintf("%s/%s", tmpdir, name); }

static bool exists(const char *name)
{
    _cleanup_free_ char *p = at(name);
    struct stat st;
    return lstat(p, &st) == 0;
}

static char *state_of(const char *base)
{
    qq_err err = { 0 };
    char *s = layout_config_state_dir(tmpdir, base, &err);
    assert_non_null(s);
    return s;
}

static void no_config_name_maps_onto_another_configs_state_or_a_vm(void **state)
{
    (void)state;
    static const char *const names[] = { "qqmgr.toml", "vm.toml", "vm.t", "img.x", "config.x", "x", "toml" };
    size_t n = sizeof names / sizeof *names;
    char *dirs[sizeof names / sizeof *names];
    for (size_t i = 0; i < n; i++)
        dirs[i] = state_of(names[i]);
    _cleanup_free_ char *dflt = at(".qqmgr");
    assert_string_equal(dirs[0], dflt);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            if (i == j)
                continue;
            /* never the same, and never one inside the other as a vm./img. entry */
            assert_string_not_equal(dirs[i], dirs[j]);
            size_t lj = strlen(dirs[j]);
            if (strncmp(dirs[i], dirs[j], lj) == 0 && dirs[i][lj] == '/') {
                const char *entry = dirs[i] + lj + 1;
                assert_true(strncmp(entry, "vm.", 3) != 0 && strncmp(entry, "img.", 4) != 0);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
}

static void dirs_are_made_with_their_records(void **state)
{
    (void)state;
    _cleanup_free_ char *sd = state_of("lab.toml"), *cfg = at("lab.toml");
    layout_set_config(sd, cfg);
    _cleanup_free_ char *vm = layout_vm_dir(sd, "a");
    qq_err err = { 0 };
    assert_int_equal(layout_make_dir(vm, &err), 0);
    _cleanup_free_ char *why = NULL;
    assert_true(layout_owned(vm, "vm", "a", cfg, &why));
    assert_false(layout_owned(vm, "vm", "b", cfg, &why));
    assert_non_null(strstr(why, "vm a"));
    free(why);
    why = NULL;
    assert_false(layout_owned(vm, "img", "a", cfg, &why));
    free(why);
    why = NULL;
    _cleanup_free_ char *other = at("other.toml");
    assert_false(layout_owned(vm, "vm", "a", other, &why));
    free(why);
    why = NULL;
    /* the state dir records itself, as does DIR/.qqmgr (qqmgr.toml's) */
    assert_false(layout_owned(sd, "vm", "lab.toml", cfg, &why));
    assert_non_null(strstr(why, "state dir of config"));
    free(why);
    why = NULL;
    assert_true(exists(".qqmgr/owner.json") && exists(".qqmgr/config.lab.toml/owner.json"));
    _cleanup_free_ char *rec = at(".qqmgr/config.lab.toml/vm.a/owner.json");
    _cleanup_json_ json_t *j = json_load_file(rec, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "vm");
    assert_string_equal(json_string_value(json_object_get(j, "config")), cfg);
    struct stat st;
    assert_int_equal(stat(rec, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void an_unrecorded_dir_is_ours_only_when_it_holds_no_state_of_a_config(void **state)
{
    (void)state;
    _cleanup_free_ char *cfg = at("qqmgr.toml"), *a = at("vm.a"), *b = at("vm.b"), *bi = at("vm.b/img.x");
    assert_int_equal(mkdir(a, 0700), 0);
    assert_int_equal(mkdir(b, 0700), 0);
    assert_int_equal(mkdir(bi, 0700), 0);
    _cleanup_free_ char *why = NULL;
    assert_true(layout_owned(a, "vm", "a", cfg, &why));
    assert_false(layout_owned(b, "vm", "b", cfg, &why));
    assert_non_null(strstr(why, "img.x"));
}

static void an_older_layout_moves_when_idle(void **state)
{
    (void)state;
    _cleanup_free_ char *old = at(".qqmgr/vm.toml"), *img = at(".qqmgr/vm.toml/img.d");
    _cleanup_free_ char *q = at(".qqmgr");
    assert_int_equal(mkdir(q, 0700), 0);
    assert_int_equal(mkdir(old, 0700), 0);
    assert_int_equal(mkdir(img, 0700), 0);
    _cleanup_free_ char *keys = at(".qqmgr/vm.toml/keys");
    assert_int_equal(mkdir(keys, 0700), 0);
    _cleanup_free_ char *sd = state_of("vm.toml"), *want = at(".qqmgr/config.vm.toml");
    assert_string_equal(sd, want);
    assert_true(exists(".qqmgr/config.vm.toml/img.d"));
    assert_true(exists(".qqmgr/config.vm.toml/keys"));
    assert_false(exists(".qqmgr/vm.toml"));
}

static void a_config_dir_without_its_record_is_refused(void **state)
{
    (void)state;
    /* an older qqmgr's state of a config named "config.x" is where x's would go */
    _cleanup_free_ char *q = at(".qqmgr"), *d = at(".qqmgr/config.x");
    assert_int_equal(mkdir(q, 0700), 0);
    assert_int_equal(mkdir(d, 0700), 0);
    qq_err err = { 0 };
    assert_null(layout_config_state_dir(tmpdir, "x", &err));
    assert_non_null(strstr(err.msg, "config named config.x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(no_config_name_maps_onto_another_configs_state_or_a_vm, setup, teardown),
        cmocka_unit_test_setup_teardown(dirs_are_made_with_their_records, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unrecorded_dir_is_ours_only_when_it_holds_no_state_of_a_config, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_older_layout_moves_when_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(a_config_dir_without_its_record_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
