/* init — write a commented starter config (./qqmgr.toml, or the -c FILE) and
 * the cloud-init templates it names, next to it. Never overwrites a file.
 *
 * The image comes from the catalogue (data/images.toml, compiled in as
 * qq_images_toml): --template TEMPLATE, default debian-12; --list lists it. The
 * guest's ssh key is the user's first ~/.ssh/id_*.pub, else a key pair made
 * for the config in its state dir (layout.h: <state dir>/keys/id_ed25519,
 * 0600 in a 0700 dir), which the config then names as IdentityFile. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../app/layout.h"
#include "../base/cleanup.h"
#include "../base/strdist.h"
#include "../base/toml.h"
#include "../base/xalloc.h"
#include "../infra/proc.h"
#include "cmd.h"

extern const char qq_images_toml[];   /* generated from data/images.toml */

#define DEFAULT_TEMPLATE "debian-12"

typedef struct {
    const char *template;
    bool list;
} init_opts;

static const qq_opt options[] = {
    QQ_STRING(0, "template", "TEMPLATE", init_opts, template, "the image from the catalogue (default " DEFAULT_TEMPLATE ")"),
    QQ_FLAG(0, "list", init_opts, list, "list the catalogue's images, write nothing"),
    QQ_OPT_END,
};

static const char user_data[] =
    "#cloud-config\n"
    "# Run once, at `qqmgr img build`; the guest powers off when done.\n"
    "hostname: {{.hostname}}\n"
    "ssh_authorized_keys:\n"
    "  - {{.pubkey}}\n"
    "power_state:\n"
    "  mode: poweroff\n";

static const char meta_data[] =
    "instance-id: {{.hostname}}\n"
    "local-hostname: {{.hostname}}\n";

json_t *qq_image_catalogue(void)
{
    toml_error te = { 0 };
    json_t *cat = toml_parse(qq_images_toml, strlen(qq_images_toml), 0, NULL, &te);
    if (!cat)
        abort();   /* compiled-in data; tests/e2e/test_init.py keeps it valid */
    return cat;
}

static const char *field(json_t *entry, const char *key)
{
    const char *s = json_string_value(json_object_get(entry, key));
    return s ? s : "";
}

/* the user's first ssh public key, for the guest's authorized_keys */
static char *find_pubkey(void)
{
    const char *home = getenv("HOME");
    static const char *const names[] = { "id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub" };
    for (size_t i = 0; home && i < sizeof names / sizeof *names; i++) {
        _cleanup_free_ char *path = xasprintf("%s/.ssh/%s", home, names[i]);
        _cleanup_fclose_ FILE *f = fopen(path, "r");
        char line[16384];
        if (!f || !fgets(line, sizeof line, f))
            continue;
        line[strcspn(line, "\r\n")] = '\0';
        if (*line && !strpbrk(line, "\"\\"))
            return xstrdup(line);
    }
    return NULL;
}

/* A key pair for the config at key (made when missing, kept when there);
 * returns its public line, or NULL with err. *made tells which. */
static char *config_key(const char *key, const char *conf, bool *made, qq_err *err)
{
    _cleanup_free_ char *pub = xasprintf("%s.pub", key), *dir = xstrdup(key);
    *strrchr(dir, '/') = '\0';
    *made = false;
    if (access(key, F_OK) != 0) {
        if (layout_make_dir(dir, err) < 0)
            return NULL;
        _cleanup_free_ char *comment = xasprintf("qqmgr init %s", conf);
        char *argv[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", (char *)key, NULL };
        _cleanup_sbuf_ sbuf out = SBUF_INIT;
        proc_run_opts po = { .out = &out, .err = &out, .timeout_ms = 30000 };
        proc_result r;
        if (proc_run(argv, &po, &r, err) < 0) {
            qq_err_prefix(err, "making the config's ssh key");
            return NULL;
        }
        if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
            qq_fail(err, QQ_EXIT_FAIL, "ssh-keygen failed making %s: %s", key, sbuf_str(&out));
            return NULL;
        }
        *made = true;
    }
    _cleanup_fclose_ FILE *f = fopen(pub, "r");
    char line[16384];
    if (!f || !fgets(line, sizeof line, f)) {
        qq_fail(err, QQ_EXIT_FAIL, "%s: %s", pub, f ? "empty" : strerror(errno));
        return NULL;
    }
    line[strcspn(line, "\r\n")] = '\0';
    return xstrdup(line);
}

/* Create every path with its text, or none: each is written to a temporary
 * file beside it first, then linked to its name (link refuses any existing
 * name, a dangling symlink too); when one cannot be, those linked already are
 * removed again. */
static int write_all_new(const char *const *paths, const char *const *texts, size_t n, qq_err *err)
{
    char *tmp[8] = { 0 };
    size_t linked = 0, made = 0;
    int rc = 0;
    for (; rc == 0 && made < n; made++) {
        tmp[made] = xasprintf("%s.XXXXXX", paths[made]);
        int fd = mkstemp(tmp[made]);
        if (fd < 0) {
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s: %s (nothing written)", paths[made], strerror(errno));
            free(tmp[made]);
            tmp[made] = NULL;
            break;
        }
        size_t len = strlen(texts[made]);
        ssize_t w = write(fd, texts[made], len);
        int e = errno;
        mode_t um = umask(0);
        umask(um);
        if (fchmod(fd, 0644 & ~um) < 0 && w == (ssize_t)len)
            w = -1, e = errno;
        if (close(fd) < 0 && w == (ssize_t)len)
            w = -1, e = errno;
        if (w != (ssize_t)len)
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s: %s (nothing written)", paths[made], w < 0 ? strerror(e) : "short write");
    }
    for (; rc == 0 && linked < n; linked++) {
        if (link(tmp[linked], paths[linked]) < 0)
            rc = qq_fail(err, QQ_EXIT_FAIL, "%s: %s (nothing written)", paths[linked],
                         errno == EEXIST ? "exists already; init never overwrites a file" : strerror(errno));
        if (rc < 0)
            break;
    }
    if (rc < 0)
        for (size_t i = 0; i < linked; i++)
            unlink(paths[i]);
    for (size_t i = 0; i < made; i++)
        if (tmp[i]) {
            unlink(tmp[i]);
            free(tmp[i]);
        }
    return rc;
}

/* The QEMU arguments of qemu_args as build_args elements: "a", "b", */
static void build_arg_words(sbuf *out, const char *args)
{
    for (const char *p = args; *p;) {
        p += strspn(p, " ");
        size_t n = strcspn(p, " ");
        if (n)
            sbuf_addf(out, "\"%.*s\", ", (int)n, p);
        p += n;
    }
}

/* publine: the env's pubkey line; idline: the ssh section's IdentityFile line or "" */
static char *config_text(const char *name, json_t *e, const char *cli, const char *publine, const char *idline)
{
    const char *img = field(e, "image"), *extra = field(e, "qemu_args");
    _cleanup_sbuf_ sbuf t = SBUF_INIT, bx = SBUF_INIT;
    build_arg_words(&bx, extra);
    sbuf_addf(&t,
              "# qqmgr config, written by `qqmgr init --template %s`. Reference: docs/reference.md,\n"
              "# or `man qqmgr` once qqmgr is installed (`meson install -C build`).\n"
              "#\n"
              "# One VM, \"dev\": %s, customised once by cloud-init\n"
              "# (image \"%s\"), plus a blank data disk (image \"data\"), reachable with `qqmgr ssh dev`.\n"
              "#\n"
              "#   %s img build %s   # download, customise (one boot, a few minutes)\n"
              "#   %s img build data     # create the blank disk\n"
              "#   %s start dev --wait   # boot, wait until ssh works\n"
              "#   %s ssh dev            # log in\n"
              "#   %s snapshot save dev ready   # every disk is qcow2: the VM can be snapshotted\n"
              "#   %s stop dev\n"
              "#\n"
              "# Images are built only by `img build`: `start` refuses a VM whose image is missing.\n"
              "\n",
              name, field(e, "title"), img, cli, img, cli, cli, cli, cli, cli);
    sbuf_addf(&t,
              "[vm.dev]\n"
              "# guest_agent = true   # a qemu-guest-agent channel (`qqmgr ga`, the clock after a\n"
              "#                      # restore); the guest needs the qemu-guest-agent package\n"
              "# The exact QEMU arguments (Go templates: {{.img.NAME}} is the built image's path,\n"
              "# {{.vm.ssh.port}} the host port of ssh). qqmgr adds -qmp, -serial, -monitor and\n"
              "# -pidfile itself. KVM when the host allows it, else TCG (slower, works anywhere).\n"
              "cmd = [\n"
              "    \"-accel kvm -accel tcg -m 1024 -smp 2 -display none%s%s\",\n"
              "    \"-drive 'file={{.img.%s}},if=virtio,format=qcow2'\",   # quoted: the path may hold spaces\n"
              "    \"-drive 'file={{.img.data}},if=virtio,format=qcow2'\",   # /dev/vdb in the guest\n"
              "    \"-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:{{.vm.ssh.vm_port}}\",\n"
              "    \"-device virtio-net-pci,netdev=n0\",\n"
              "]\n"
              "\n"
              "[vm.dev.ssh]\n"
              "port = \"auto\"        # a free host port, chosen at each start (`qqmgr list` shows it)\n"
              "User = \"%s\"      # the cloud image's user; the key below is its authorized key\n"
              "%s"
              "# Any ssh_config keyword may follow (relative paths are relative to this file).\n"
              "# Host keys are pinned per VM.\n"
              "\n",
              *extra ? " " : "", extra, img, field(e, "user"), idline);
    sbuf_addf(&t,
              "[img.%s]\n"
              "builder = \"cloud-init\"\n"
              "img_size = \"8G\"\n"
              "build_timeout = 1200   # seconds for the customisation boot\n"
              "# The customisation boot: the guest runs cloud-init from the generated ISO, then\n"
              "# powers off. It has the same network card as the VM (cloud-init may fetch packages).\n"
              "build_args = [\"-accel\", \"kvm\", \"-accel\", \"tcg\", \"-m\", \"1024\", \"-display\", \"none\",\n"
              "              %s\"-serial\", \"stdio\", \"-drive\", \"file={{.img_self}},if=virtio,format=qcow2\",\n"
              "              \"-netdev\", \"user,id=n0\", \"-device\", \"virtio-net-pci,netdev=n0\",\n"
              "              \"-cdrom\", \"{{.cloud_init_iso}}\"]\n"
              "\n"
              "[img.%s.base_img]\n"
              "# %s\n"
              "url = \"%s\"\n",
              img, sbuf_str(&bx), img, field(e, "title"), field(e, "url"));
    const char *sha256 = field(e, "sha256");
    sbuf_addf(&t,
              "# The download is checked against this sum, upstream's, published in\n"
              "# %s\n"
              "# (source: %s).\n"
              "%s = \"%s\"\n",
              field(e, "sums"), field(e, "source"), *sha256 ? "sha256sum" : "sha512sum",
              *sha256 ? sha256 : field(e, "sha512"));
    sbuf_addf(&t,
              "\n"
              "[[img.%s.templates]]   # rendered with [img.%s.env], put on the cloud-init ISO\n"
              "template = \"user-data.tpl\"\n"
              "output = \"user-data\"\n"
              "\n"
              "[[img.%s.templates]]\n"
              "template = \"meta-data.tpl\"\n"
              "output = \"meta-data\"\n"
              "\n"
              "[img.%s.env]\n"
              "hostname = \"dev\"\n"
              "%s"
              "\n"
              "[img.data]\n"
              "builder = \"raw\"      # a blank disk\n"
              "format = \"qcow2\"     # qcow2, not raw: a VM whose writable disks are all qcow2 can be snapshotted\n"
              "img_size = \"4G\"\n",
              img, img, img, img, publine);
    return sbuf_steal(&t);
}

static int list_catalogue(qq_ctx *ctx, json_t *cat)
{
    if (ctx->json) {
        json_t *arr = json_array();
        const char *name;
        json_t *e;
        json_object_foreach(cat, name, e) {
            json_t *o = json_pack("{s:s}", "name", name);
            json_object_update(o, e);
            json_array_append_new(arr, o);
        }
        qq_print_json(arr);
        return 0;
    }
    int w = 4;
    const char *name;
    json_t *e;
    json_object_foreach(cat, name, e) w = (int)strlen(name) > w ? (int)strlen(name) : w;
    printf("%-*s  %-6s  %s\n", w, "NAME", "SUM", "IMAGE");
    json_object_foreach(cat, name, e) printf("%-*s  %-6s  %s\n", w, name, *field(e, "sha256") ? "sha256" : "sha512",
                                             field(e, "title"));
    printf("\nqqmgr init --template TEMPLATE writes a config for one (default %s); SUM: the sum upstream\n"
           "publishes, which the config's base_img carries (sha256sum or sha512sum).\n",
           DEFAULT_TEMPLATE);
    return 0;
}

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc, (void)argv;
    const init_opts *o = ctx->opts;
    qq_err err = { 0 };
    _cleanup_json_ json_t *cat = qq_image_catalogue();
    if (o->list)
        return list_catalogue(ctx, cat);
    const char *name = o->template ? o->template : DEFAULT_TEMPLATE;
    json_t *entry = json_object_get(cat, name);
    if (!entry) {
        const char *names[32];
        size_t n = 0;
        const char *k;
        json_t *v;
        _cleanup_sbuf_ sbuf all = SBUF_INIT;
        json_object_foreach(cat, k, v) {
            if (n < 31)
                names[n++] = k;
            sbuf_addf(&all, "%s%s", all.len ? ", " : "", k);
        }
        names[n] = NULL;
        const char *near = str_closest(name, names);
        qq_err err = { 0 };
        qq_usage_error(ctx, &err, false, "no template \"%s\"%s%s%s (templates: %s; see init --list)", name,
                       near ? "; did you mean \"" : "", near ? near : "", near ? "\"?" : "", sbuf_str(&all));
        return qq_report(&err);
    }

    const char *conf = ctx->config_path ? ctx->config_path : "qqmgr.toml";
    const char *slash = strrchr(conf, '/');
    _cleanup_free_ char *dir = slash ? xstrndup(conf, (size_t)(slash - conf + 1)) : xstrdup("");
    _cleanup_free_ char *ud = xasprintf("%suser-data.tpl", dir), *md = xasprintf("%smeta-data.tpl", dir);
    const char *paths[] = { conf, ud, md };
    for (size_t i = 0; i < 3; i++) {
        struct stat st;
        if (lstat(paths[i], &st) == 0) {   /* a dangling symlink is there too */
            qq_fail(&err, QQ_EXIT_FAIL, "%s exists already; init never overwrites a file (nothing written)", paths[i]);
            return qq_report(&err);
        }
    }
    _cleanup_free_ char *key = find_pubkey(), *keyfile = NULL, *publine = NULL, *idline = NULL;
    bool made = false;
    if (key) {
        publine = xasprintf("pubkey = \"%s\"   # from ~/.ssh\n", key);
        idline = xstrdup("");
    } else {
        /* no key of the user's: one for this config, in its state dir */
        char real[PATH_MAX];
        if (!realpath(*dir ? dir : ".", real)) {
            qq_fail(&err, QQ_EXIT_FAIL, "%s: %s", *dir ? dir : ".", strerror(errno));
            return qq_report(&err);
        }
        const char *base = slash ? slash + 1 : conf;
        _cleanup_free_ char *state = layout_config_state_dir(real, base, &err);
        if (!state)
            return qq_report(&err);
        _cleanup_free_ char *cfg_real = xasprintf("%s/%s", strcmp(real, "/") ? real : "", base);
        layout_set_config(state, cfg_real);   /* the state dir made for the key carries its record */
        _cleanup_free_ char *keys = layout_path(state, LAYOUT_KEYS);
        keyfile = xasprintf("%s/id_ed25519", keys);
        key = config_key(keyfile, conf, &made, &err);
        if (!key)
            return qq_report(&err);
        const char *rel = keyfile + strlen(real) + (strcmp(real, "/") != 0);
        publine = xasprintf("pubkey = \"%s\"   # the config's own key (no ~/.ssh/id_*.pub): %s.pub\n", key, rel);
        idline = xasprintf("IdentityFile = \"%s\"   # the config's own key, made by `qqmgr init`\n", rel);
    }
    _cleanup_sbuf_ sbuf cli = SBUF_INIT;
    sbuf_adds(&cli, "qqmgr");
    if (ctx->config_path) {
        sbuf_adds(&cli, " -c ");
        qq_shell_quote(&cli, ctx->config_path);
    }
    const char *p = sbuf_str(&cli);
    _cleanup_free_ char *text = config_text(name, entry, p, publine, idline);
    const char *texts[] = { text, user_data, meta_data };
    if (write_all_new(paths, texts, 3, &err) < 0)
        return qq_report(&err);
    if (ctx->json) {
        qq_print_json(json_pack("{s:s, s:[s,s], s:s, s:b, s:s?, s:b}", "config", conf, "templates", ud, md, "template",
                                name, "pubkey_found", keyfile == NULL, "key", keyfile, "key_made", made));
        return 0;
    }
    printf("wrote %s, %s and %s (template %s)\n", conf, ud, md, name);
    if (keyfile)
        printf("no ~/.ssh/id_*.pub: %s the config's own ssh key %s (IdentityFile in %s)\n",
               made ? "made" : "using", keyfile, conf);
    printf("next: %s img build %s\n", p, field(entry, "image"));
    return 0;
}

const qq_command qq_cmd_init = {
    .name = "init", .handler = run, .args = "", .min_args = 0, .max_args = 0,
    .summary = "write a commented starter qqmgr.toml (or the -c FILE) and its cloud-init templates",
    QQ_OPTIONS(init_opts, options, NULL),
    .json = "{config, templates, template, pubkey_found, key, key_made}",
};
