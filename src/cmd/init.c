/* init — write a commented starter config (./qqmgr.toml, or the -c FILE) and
 * the cloud-init templates it names, next to it. Never overwrites a file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/xalloc.h"
#include "cmd.h"

static const char config_text[] =
    "# qqmgr config, written by `qqmgr init`. Reference: `man qqmgr`, docs/reference.md.\n"
    "#\n"
    "# One VM, \"dev\": a Debian cloud image customised once by cloud-init (image \"debian\"),\n"
    "# plus a blank data disk (image \"data\"), reachable with `qqmgr ssh dev`.\n"
    "#\n"
    "#   %s img build debian   # download, customise (one boot, a few minutes)\n"
    "#   %s img build data     # create the blank disk\n"
    "#   %s start dev --wait   # boot, wait until ssh works\n"
    "#   %s ssh dev            # log in\n"
    "#   %s stop dev\n"
    "#\n"
    "# Images are built only by `img build`: `start` refuses a VM whose image is missing.\n"
    "\n"
    "[vm.dev]\n"
    "# The exact QEMU arguments (Go templates: {{.img.NAME}} is the built image's path,\n"
    "# {{.vm.ssh.port}} the host port of ssh). qqmgr adds -qmp, -serial, -monitor and\n"
    "# -pidfile itself. KVM when the host allows it, else TCG (slower, works anywhere).\n"
    "cmd = [\n"
    "    \"-accel kvm -accel tcg -m 1024 -smp 2 -display none\",\n"
    "    \"-drive 'file={{.img.debian}},if=virtio,format=qcow2'\",   # quoted: the path may hold spaces\n"
    "    \"-drive 'file={{.img.data}},if=virtio,format=raw'\",      # /dev/vdb in the guest\n"
    "    \"-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{{.vm.ssh.port}}-:{{.vm.ssh.vm_port}}\",\n"
    "    \"-device virtio-net-pci,netdev=n0\",\n"
    "]\n"
    "\n"
    "[vm.dev.ssh]\n"
    "port = \"auto\"        # a free host port, chosen at each start (`qqmgr list` shows it)\n"
    "User = \"debian\"      # the cloud image's user; your key is its authorized key (below)\n"
    "# Any ssh_config keyword may follow, e.g. IdentityFile = \"keys/id_ed25519\"\n"
    "# (relative paths are relative to this file). Host keys are pinned per VM.\n"
    "\n"
    "[img.debian]\n"
    "builder = \"cloud-init\"\n"
    "img_size = \"8G\"\n"
    "build_timeout = 1200   # seconds for the customisation boot\n"
    "# The customisation boot: the guest runs cloud-init from the generated ISO, then powers off.\n"
    "build_args = [\"-accel\", \"kvm\", \"-accel\", \"tcg\", \"-m\", \"1024\", \"-display\", \"none\",\n"
    "              \"-serial\", \"stdio\", \"-drive\", \"file={{.img_self}},if=virtio,format=qcow2\",\n"
    "              \"-cdrom\", \"{{.cloud_init_iso}}\"]\n"
    "\n"
    "[img.debian.base_img]\n"
    "url = \"https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2\"\n"
    "# The download is checked against this sum. Put the image's real sha256 here\n"
    "# (`curl -L URL | sha256sum`); with this placeholder the build stops and names the sum it got.\n"
    "sha256sum = \"0000000000000000000000000000000000000000000000000000000000000000\"\n"
    "\n"
    "[[img.debian.templates]]   # rendered with [img.debian.env], put on the cloud-init ISO\n"
    "template = \"user-data.tpl\"\n"
    "output = \"user-data\"\n"
    "\n"
    "[[img.debian.templates]]\n"
    "template = \"meta-data.tpl\"\n"
    "output = \"meta-data\"\n"
    "\n"
    "[img.debian.env]\n"
    "hostname = \"dev\"\n"
    "%s"
    "\n"
    "[img.data]\n"
    "builder = \"raw\"      # a blank (sparse) raw disk\n"
    "img_size = \"4G\"\n";

static const char user_data[] =
    "#cloud-config\n"
    "# Run once, at `qqmgr img build debian`; the guest powers off when done.\n"
    "hostname: {{.hostname}}\n"
    "ssh_authorized_keys:\n"
    "  - {{.pubkey}}\n"
    "power_state:\n"
    "  mode: poweroff\n";

static const char meta_data[] =
    "instance-id: {{.hostname}}\n"
    "local-hostname: {{.hostname}}\n";

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

/* create path with text; refuses an existing file (O_EXCL) */
static int write_new(const char *path, const char *text, qq_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", path,
                       errno == EEXIST ? "exists already; init never overwrites a file" : strerror(errno));
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int e = errno;
    if (close(fd) < 0 && n == (ssize_t)len) {
        n = -1;
        e = errno;
    }
    if (n != (ssize_t)len) {
        unlink(path);
        return qq_fail(err, QQ_EXIT_FAIL, "%s: %s", path, n < 0 ? strerror(e) : "short write");
    }
    return 0;
}

static int run(qq_ctx *ctx, int argc, char **argv)
{
    (void)argc, (void)argv;
    qq_err err = { 0 };
    const char *conf = ctx->config_path ? ctx->config_path : "qqmgr.toml";
    const char *slash = strrchr(conf, '/');
    _cleanup_free_ char *dir = slash ? xstrndup(conf, (size_t)(slash - conf + 1)) : xstrdup("");
    _cleanup_free_ char *ud = xasprintf("%suser-data.tpl", dir), *md = xasprintf("%smeta-data.tpl", dir);
    const char *paths[] = { conf, ud, md };
    for (size_t i = 0; i < 3; i++) {
        if (access(paths[i], F_OK) == 0) {
            qq_fail(&err, QQ_EXIT_FAIL, "%s exists already; init never overwrites a file (nothing written)", paths[i]);
            return qq_report(&err);
        }
    }
    _cleanup_free_ char *key = find_pubkey();
    _cleanup_free_ char *keyline =
        key ? xasprintf("pubkey = \"%s\"   # from ~/.ssh\n", key)
            : xstrdup("# no ~/.ssh/id_*.pub found: run `ssh-keygen -t ed25519`, then paste the .pub line here\n"
                      "pubkey = \"\"\n");
    _cleanup_sbuf_ sbuf cli = SBUF_INIT;
    sbuf_adds(&cli, "qqmgr");
    if (ctx->config_path) {
        sbuf_adds(&cli, " -c ");
        qq_shell_quote(&cli, ctx->config_path);
    }
    const char *p = sbuf_str(&cli);
    _cleanup_free_ char *text = xasprintf(config_text, p, p, p, p, p, keyline);
    if (write_new(conf, text, &err) < 0 || write_new(ud, user_data, &err) < 0 || write_new(md, meta_data, &err) < 0)
        return qq_report(&err);
    if (ctx->json) {
        qq_print_json(json_pack("{s:s, s:[s,s], s:b}", "config", conf, "templates", ud, md, "pubkey_found", key != NULL));
        return 0;
    }
    printf("wrote %s, %s and %s\nnext: put the image's sha256 into %s, then: %s img build debian\n", conf, ud, md,
           conf, p);
    return 0;
}

const qq_command qq_cmd_init = {
    .name = "init", .handler = run, .args = "", .min_args = 0, .max_args = 0,
    .summary = "write a commented starter qqmgr.toml (or the -c FILE) and its cloud-init templates",
    .json = "{config, templates, pubkey_found}",
};
