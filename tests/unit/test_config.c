/* Unit tests of the config module: argument splitting, sizes, and variable
 * resolution through config_vm (a config in a temp file; loading in all its
 * forms is pinned end to end in tests/e2e/test_config.py and test_vars.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../src/app/config.h"
#include "../../src/app/config_int.h"
#include "../../src/base/cleanup.h"
#include "../../src/app/sshconf.h"
#include "../../src/base/sbuf.h"

static char **split(const char *s, size_t *n, int *rc)
{
    char **argv = NULL;
    *n = 0;
    qq_err err = { 0 };
    *rc = config_split_args(s, &argv, n, &err);
    return argv;
}

static void free_argv(char **argv)
{
    if (argv)
        for (char **p = argv; *p; p++)
            free(*p);
    free(argv);
}

static void test_split_at_any_white_space(void **state)
{
    (void)state;
    size_t n;
    int rc;
    char **a = split("  -m\t64 \n -smp 2  ", &n, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 4);
    assert_string_equal(a[0], "-m");
    assert_string_equal(a[1], "64");
    assert_string_equal(a[3], "2");
    assert_null(a[4]);
    free_argv(a);
}

static void test_quotes_keep_white_space_in_one_argument(void **state)
{
    (void)state;
    size_t n;
    int rc;
    char **a = split("-name 'my vm' -append \"console=ttyS0 quiet\" x'a b'y ''", &n, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 6);
    assert_string_equal(a[1], "my vm");
    assert_string_equal(a[3], "console=ttyS0 quiet");
    assert_string_equal(a[4], "xa by");
    assert_string_equal(a[5], "");
    free_argv(a);
}

static void test_other_quote_kind_is_literal_inside_quotes(void **state)
{
    (void)state;
    size_t n;
    int rc;
    char **a = split("\"it's\" 'say \"hi\"'", &n, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
    assert_string_equal(a[0], "it's");
    assert_string_equal(a[1], "say \"hi\"");
    free_argv(a);
}

static void test_unterminated_quote_is_an_error(void **state)
{
    (void)state;
    size_t n;
    int rc;
    char **a = split("-name 'oops", &n, &rc);
    assert_int_equal(rc, -1);
    free_argv(a);
}

static void test_sizes_use_binary_units(void **state)
{
    (void)state;
    unsigned long long v;
    assert_int_equal(config_parse_size("10G", &v), 0);
    assert_true(v == 10ULL << 30);
    assert_int_equal(config_parse_size("512M", &v), 0);
    assert_true(v == 512ULL << 20);
    assert_int_equal(config_parse_size("4096", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(config_parse_size("1GiB", &v), 0);
    assert_true(v == 1ULL << 30);
    assert_int_equal(config_parse_size("1.5G", &v), -1);
    assert_int_equal(config_parse_size("G", &v), -1);
    assert_int_equal(config_parse_size("99999999999999T", &v), -1);
    assert_int_equal(config_parse_size("-1", &v), -1);
}

/* A throwaway copy's name: VM#N, N from 1 without a leading zero; anything
 * else with a '#' is a usage error naming the form. */
static void test_copy_names_parse_as_vm_hash_n(void **state)
{
    (void)state;
    char *base = NULL;
    unsigned n = 0;
    qq_err err = { 0 };
    assert_int_equal(config_copy_parse("web", &base, &n, &err), 0);
    assert_null(base);
    assert_int_equal(config_copy_parse("web#3", &base, &n, &err), 1);
    assert_string_equal(base, "web");
    assert_int_equal(n, 3);
    free(base);
    assert_int_equal(config_copy_parse("a.b-c_d#9999", &base, &n, &err), 1);
    assert_string_equal(base, "a.b-c_d");
    assert_int_equal(n, 9999);
    free(base);
    static const char *const bad[] = { "web#", "web#0", "web#03", "#3", "web#x", "web#3x", "web#-1", "web#+1",
                                       "web# 1", "web#10000", "web#99999999999999999999", "web#1#2", NULL };
    for (const char *const *b = bad; *b; b++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(config_copy_parse(*b, &base, &n, &err), -1);
        assert_null(base);
        assert_int_equal(err.code, QQ_EXIT_USAGE);
        assert_non_null(strstr(err.msg, "VM#N"));
    }
    char *v = config_base_vm("web#12");
    assert_string_equal(v, "web");
    free(v);
    v = config_base_vm("web");
    assert_string_equal(v, "web");
    free(v);
}

/* A copy resolves as its VM's entry with the copy's state dir, and an
 * automatic port where the VM has a fixed one. */
static void test_a_copy_resolves_with_its_own_dir_and_an_automatic_port(void **state)
{
    (void)state;
    char path[] = "/tmp/qq-test-config-XXXXXX.toml";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    const char *text = "[vm.v]\ncmd = [\"-m 64 -nic user,hostfwd=tcp::{{.vm.ssh.port}}-:22\"]\n"
                       "[vm.v.ssh]\nport = 2222\n[vm.w]\ncmd = [\"-m 64\"]\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    qq_err err = { 0 };
    config *c = config_load(path, &err);
    assert_non_null(c);
    assert_int_equal(config_vm_ssh_port(c, "v"), 2222);
    assert_int_equal(config_vm_ssh_port(c, "v#2"), SSH_PORT_AUTO);
    assert_int_equal(config_vm_ssh_port(c, "w#2"), SSH_PORT_NONE);
    char *vd = config_vm_dir(c, "v"), *cd = config_vm_dir(c, "v#2");
    char *want = NULL;
    assert_true(asprintf(&want, "%s/copy.2", vd) > 0);
    assert_string_equal(cd, want);
    /* no such copy yet: a failure, not a usage error; an unknown VM is usage */
    assert_int_equal(config_check_vm(c, "v#2", &err), -1);
    assert_int_equal(err.code, QQ_EXIT_FAIL);
    assert_non_null(strstr(err.msg, "no such copy of v"));
    memset(&err, 0, sizeof err);
    assert_int_equal(config_check_vm(c, "x#2", &err), -1);
    assert_int_equal(err.code, QQ_EXIT_USAGE);
    assert_false(config_has_vm(c, "v#2"));
    /* once its dir exists, it resolves: the VM's args, the copy's port and dir */
    char *mk = NULL;
    assert_true(asprintf(&mk, "mkdir -p '%s'", cd) > 0);
    assert_int_equal(system(mk), 0);
    vm_spec s;
    assert_int_equal(config_vm(c, "v#2", 40000, &s, &err), 0);
    assert_string_equal(s.name, "v");
    assert_string_equal(s.state_dir, cd);
    assert_int_equal(s.ssh_port, SSH_PORT_AUTO);
    assert_int_equal(s.ssh_port_used, 40000);
    assert_non_null(strstr(s.args[3], "hostfwd=tcp::40000-:22"));
    vm_spec_free(&s);
    free(mk);
    assert_true(asprintf(&mk, "rm -rf '%s'", vd) > 0);
    assert_int_equal(system(mk), 0);
    free(mk);
    free(want);
    free(vd);
    free(cd);
    config_free(c);
    unlink(path);
}

/* Load TEXT as a config and resolve VM v: its argv (joined with '|') or the error. */
static char *vm_args(const char *text, int *rc)
{
    char path[] = "/tmp/qq-test-config-XXXXXX.toml";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    qq_err err = { 0 };
    config *c = config_load(path, &err);
    char *out = NULL;
    *rc = -1;
    if (c) {
        vm_spec s;
        *rc = config_vm(c, "v", 0, &s, &err);
        if (*rc == 0) {
            size_t len = 1;
            for (size_t i = 0; i < s.nargs; i++)
                len += strlen(s.args[i]) + 1;
            out = calloc(1, len);
            for (size_t i = 0; i < s.nargs; i++) {
                if (i)
                    strcat(out, "|");
                strcat(out, s.args[i]);
            }
            vm_spec_free(&s);
        }
        config_free(c);
    }
    if (!out)
        out = strdup(err.msg);
    unlink(path);
    return out;
}

static void test_var_read_inside_with_is_resolved(void **state)
{
    (void)state;
    int rc;
    char *a = vm_args("[vars]\nb = \"B\"\nc = \"{{ with .vm }}{{ .x }}{{ end }}\"\n"
                      "[vm.v]\ncmd = [\"-name {{ .c }}\"]\n[vm.v.vars]\nx = \"{{ .b }}X\"\n", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(a, "-name|BX");
    free(a);
}

static void test_namespace_var_reading_its_namespace_is_no_cycle(void **state)
{
    (void)state;
    int rc;
    char *a = vm_args("[vars.ns]\none = \"1\"\ntwo = \"{{ .ns.one }}2\"\nthree = \"{{ .ns.two }}3\"\n"
                      "[vm.v]\ncmd = [\"{{ .ns.three }} {{ index .ns \\\"two\\\" }}\"]\n", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(a, "123|12");
    free(a);
}

static void test_chains_of_any_depth_and_every_construct_resolve(void **state)
{
    (void)state;
    int rc;
    char *a = vm_args("[vars]\na = \"{{ .b }}a\"\nb = \"{{ .c }}b\"\nc = \"{{ .d }}c\"\nd = \"d\"\n"
                      "list = [\"{{ .d }}1\", \"{{ .a }}\"]\n"
                      "[vm.v]\ncmd = [\"{{ $x := .a }}{{ $x }}\", \"{{ (.b) | printf \\\"%s!\\\" }}\","
                      " \"{{ range .list }}[{{ . }}]{{ end }}\", \"{{ len .a }}\","
                      " \"{{ define \\\"t\\\" }}{{ .c }}{{ end }}{{ template \\\"t\\\" . }}\"]\n", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(a, "dcba|dcb!|[d1][dcba]|4|dc");
    free(a);
}

static void test_real_cycle_is_named_with_its_chain_and_place(void **state)
{
    (void)state;
    int rc;
    char *a = vm_args("[vars]\na = \"{{ .b }}\"\nb = \"{{ with .vm }}{{ .y }}{{ end }}\"\n"
                      "[vm.v]\ncmd = [\"{{ .a }}\"]\n[vm.v.vars]\ny = \"{{ $.a }}\"\n", &rc);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(a, ".toml:2:1: vars.a: variable cycle: vars.a -> vars.b -> vm.v.vars.y -> vars.a"));
    free(a);
}

static void test_error_inside_a_var_names_that_var(void **state)
{
    (void)state;
    int rc;
    char *a = vm_args("[vars]\na = \"{{ .b }}\"\nb = \"{{ .nope }}\"\n[vm.v]\ncmd = [\"{{ .a }}\"]\n", &rc);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(a, ".toml:3:1: vars.b: "));
    assert_non_null(strstr(a, "nope"));
    free(a);
}

/* ssh_config_text of VM v of TEXT on port 2222, in a config in dir (made). */
static char *ssh_text(const char *text, int *rc)
{
    char dir[] = "/tmp/qq-test-sshtext-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/qqmgr.toml", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    qq_err err = { 0 };
    config *c = config_load(path, &err);
    assert_non_null(c);
    vm_spec s;
    assert_int_equal(config_vm(c, "v", 0, &s, &err), 0);
    sbuf out = SBUF_INIT;
    *rc = ssh_config_text(c, &s, 2222, &out, &err);
    vm_spec_free(&s);
    config_free(c);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return *rc == 0 ? sbuf_steal(&out) : strdup(err.msg);
}

static void test_ssh_config_text_defaults_then_vm_keys_then_global_keys_rendered(void **state)
{
    (void)state;
    int rc;
    char *t = ssh_text("[vars]\nuser = \"root\"\n[ssh]\nUser = \"nobody\"\nForwardAgent = false\n"
                       "SendEnv = [\"LANG\", \"{{ .vm.tz }}\"]\n"
                       "[vm.v]\ncmd = [\"-m 64\"]\n[vm.v.vars]\ntz = \"TZ\"\n[vm.v.ssh]\nport = 2222\n"
                       "User = \"{{ .user }}\"\nConnectTimeout = 5\n", &rc);
    assert_int_equal(rc, 0);
    const char *order[] = { "\nHost v\n", "    HostName 127.0.0.1\n", "    Port 2222\n", "    HostKeyAlias qqmgr-v\n",
                            "    ControlMaster auto\n", "    ControlPath \"", "    ControlPersist ",
                            "    UserKnownHostsFile \"", "    StrictHostKeyChecking accept-new\n",
                            "    KexAlgorithms curve25519-sha256,", "    ProxyCommand /", " __connect %h %p\n",
                            "    ProxyUseFdpass yes\n", "    User \"root\"\n", "    ConnectTimeout 5\n", "    User \"nobody\"\n",
                            "    ForwardAgent no\n", "    SendEnv \"LANG\"\n", "    SendEnv \"TZ\"\n", NULL };
    const char *at = t;
    for (const char **o = order; *o; o++) {
        const char *hit = strstr(at, *o);
        if (!hit)
            fail_msg("missing or out of order: %s in\n%s", *o, t);
        at = hit + 1;
    }
    assert_null(strstr(t, "{{"));
    free(t);
}

static void test_ssh_config_text_connects_through_qqmgr_unless_the_user_routes_the_connection(void **state)
{
    (void)state;
    int rc;
    /* ours: this program's path (here the test binary), shell-quoted, % doubled */
    char *t = ssh_text("[vm.v]\ncmd = [\"-m 64\"]\n[vm.v.ssh]\nport = 2222\n", &rc);
    assert_int_equal(rc, 0);
    const char *pc = strstr(t, "\n    ProxyCommand /");
    if (!pc || !strstr(pc, "/test_config __connect %h %p\n"))
        fail_msg("no ProxyCommand of this program in\n%s", t);
    assert_non_null(strstr(t, "    ProxyUseFdpass yes\n"));
    free(t);
    const char *routes[] = { "ProxyJump = \"jump.example\"\n", "ProxyCommand = \"nc %h %p\"\n",
                             "ProxyUseFdpass = false\n", NULL };
    for (const char **r = routes; *r; r++) {
        char doc[300];
        snprintf(doc, sizeof doc, "[vm.v]\ncmd = [\"-m 64\"]\n[vm.v.ssh]\nport = 2222\n%s", *r);
        t = ssh_text(doc, &rc);
        assert_int_equal(rc, 0);
        if (strstr(t, "__connect"))
            fail_msg("qqmgr's connector despite %s:\n%s", *r, t);
        assert_null(strstr(t, "ProxyUseFdpass yes"));
        free(t);
    }
}

static void test_ssh_config_text_leaves_out_what_the_user_sets(void **state)
{
    (void)state;
    int rc;
    char *t = ssh_text("[ssh]\nControlMaster = \"no\"\nstricthostkeychecking = \"yes\"\n"
                       "[vm.v]\ncmd = [\"-m 64\"]\n[vm.v.ssh]\nport = 2222\nHostKeyAlias = \"mine\"\n"
                       "UserKnownHostsFile = \"/dev/null\"\nKexAlgorithms = \"sntrup761x25519-sha512@openssh.com\"\n", &rc);
    assert_int_equal(rc, 0);
    assert_null(strstr(t, "KexAlgorithms curve25519"));
    assert_non_null(strstr(t, "    KexAlgorithms \"sntrup761x25519-sha512@openssh.com\"\n"));
    assert_null(strstr(t, "ControlMaster auto"));
    assert_null(strstr(t, "HostKeyAlias qqmgr-v"));
    assert_null(strstr(t, "accept-new"));
    assert_non_null(strstr(t, "    HostKeyAlias \"mine\"\n"));
    assert_non_null(strstr(t, "    ControlPath \""));
    free(t);
}

/* The schema is data the readers index by enum: a row missing from its
 * table would end the table early (its key NULL) and hide the rows after it,
 * so every index must name its row, and every table must end right after. */
static void assert_rows(const cfg_schema *s, int n, const char *const *keys)
{
    for (int i = 0; i < n; i++) {
        assert_non_null(s->rows[i].key);
        assert_string_equal(s->rows[i].key, keys[i]);
        if (s->rows[i].type == CT_TABLES || s->rows[i].type == CT_NAMED)
            assert_non_null(s->rows[i].sub);
        assert_ptr_equal(cfg_row_of(s, keys[i]), &s->rows[i]);
    }
    assert_null(s->rows[n].key);
}

static void test_every_schema_index_names_its_row(void **state)
{
    (void)state;
    assert_rows(&cfg_top, 6, (const char *const[]){ "qemu", "vars", "ssh", "vm", "img", "net" });
    assert_rows(&cfg_qemu, 2, (const char *const[]){ "bin", "img" });
    assert_rows(&cfg_vm, 6, (const char *const[]){ "cmd", "vars", "ssh", "share", "mapped_ram", "guest_agent" });
    assert_rows(&cfg_share, 3, (const char *const[]){ "path", "readonly", "mount" });
    assert_rows(&cfg_vm_ssh, 2, (const char *const[]){ "port", "vm_port" });
    assert_rows(&cfg_img, 10, (const char *const[]){ "builder", "img_size", "build_args", "build_timeout", "base_img",
                                                     "templates", "env", "env_hook", "sources", "format" });
    assert_rows(&cfg_download, 3, (const char *const[]){ "url", "sha256sum", "sha512sum" });
    assert_rows(&cfg_source, 4, (const char *const[]){ "url", "sha256sum", "sha512sum", "filename" });
    assert_rows(&cfg_template, 2, (const char *const[]){ "template", "output" });
    assert_rows(&cfg_hook, 2, (const char *const[]){ "interpreter", "script" });
}

static void test_readers_get_a_rows_default_when_the_key_is_absent(void **state)
{
    (void)state;
    _cleanup_json_ json_t *empty = json_object();
    assert_string_equal(cfg_str(empty, &cfg_qemu, QEMU_BIN), "qemu-system-x86_64");
    assert_string_equal(cfg_str(NULL, &cfg_qemu, QEMU_IMG), "qemu-img");
    assert_int_equal(cfg_int(empty, &cfg_vm_ssh, VMSSH_VM_PORT), 22);
    assert_string_equal(cfg_str(empty, &cfg_img, IMG_FORMAT), "raw");
    assert_int_equal(cfg_ssh_port(NULL), SSH_PORT_NONE);
    _cleanup_json_ json_t *ssh = json_pack("{s:s, s:i}", "port", "auto", "vm_port", 2200);
    assert_int_equal(cfg_ssh_port(ssh), SSH_PORT_AUTO);
    assert_int_equal(cfg_int(ssh, &cfg_vm_ssh, VMSSH_VM_PORT), 2200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_schema_index_names_its_row),
        cmocka_unit_test(test_readers_get_a_rows_default_when_the_key_is_absent),
        cmocka_unit_test(test_split_at_any_white_space),
        cmocka_unit_test(test_quotes_keep_white_space_in_one_argument),
        cmocka_unit_test(test_other_quote_kind_is_literal_inside_quotes),
        cmocka_unit_test(test_unterminated_quote_is_an_error),
        cmocka_unit_test(test_sizes_use_binary_units),
        cmocka_unit_test(test_copy_names_parse_as_vm_hash_n),
        cmocka_unit_test(test_a_copy_resolves_with_its_own_dir_and_an_automatic_port),
        cmocka_unit_test(test_var_read_inside_with_is_resolved),
        cmocka_unit_test(test_namespace_var_reading_its_namespace_is_no_cycle),
        cmocka_unit_test(test_chains_of_any_depth_and_every_construct_resolve),
        cmocka_unit_test(test_real_cycle_is_named_with_its_chain_and_place),
        cmocka_unit_test(test_error_inside_a_var_names_that_var),
        cmocka_unit_test(test_ssh_config_text_defaults_then_vm_keys_then_global_keys_rendered),
        cmocka_unit_test(test_ssh_config_text_leaves_out_what_the_user_sets),
        cmocka_unit_test(test_ssh_config_text_connects_through_qqmgr_unless_the_user_routes_the_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
