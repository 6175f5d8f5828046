/* ssh — reaching into a VM with the user's own OpenSSH.
 *
 * Every VM gets an ssh config in its state dir (ssh.conf, written atomically
 * on each use): a Host alias (the VM name when it is a plain host name, else
 * "qqmgr-vm"), HostName 127.0.0.1, the port in use (also an automatic one),
 * connection sharing on by default (ControlMaster auto, a ControlPath short
 * enough for the unix socket limit whatever the state dir, ControlPersist
 * 10m) unless the user's keys set those, then the VM's [vm.NAME.ssh] keys,
 * then the global [ssh] keys (ssh keeps the first value: VM keys win).
 * Booleans become yes/no, arrays repeat the key.
 *
 * The functions need a running VM; they fail with QQ_EXIT_FAIL and a clear
 * message when it is not running, and with QQ_EXIT_USAGE when the VM has no
 * ssh port configured.
 */
#ifndef QQ_SSH_H
#define QQ_SSH_H

#include <stdbool.h>

#include "../base/clock.h"
#include "../base/err.h"
#include "../base/sbuf.h"
#include "config.h"
#include "sshconf.h"

typedef struct ssh_target {
    char conf[4096];     /* path of the written ssh.conf */
    char alias[256];     /* Host alias inside it */
    char control[256];   /* ControlPath ("" when the user turned sharing off) */
    int port;
} ssh_target;


/* Check the VM has a port (and runs, when need_running; without it a fixed
 * port is enough), write its ssh.conf, drop a dead master socket (left by a
 * crash). Fills t. A new or changed ssh.conf is first written as
 * ssh.conf.next and read by `ssh -G`: a value ssh rejects fails
 * (QQ_EXIT_USAGE, "FILE:L:C: vm.NAME.ssh.KEY: ssh rejects this value: …")
 * and the old file stays. */
int ssh_prepare(const config *c, const char *vm, bool need_running, ssh_target *t, qq_err *err);

/* Run ssh (replaces this process: the remote exit status becomes ours).
 * argv: the remote command words, passed through untouched; empty = login. */
int ssh_exec(const ssh_target *t, bool debug, int argc, char **argv, qq_err *err);

/* Copy with scp through the same config and master: put (local → remote) or
 * get (remote → local), recursive. Returns scp's exit status (0 = success). */
int ssh_copy(const ssh_target *t, bool debug, bool put, const char *src, const char *dst, qq_err *err);

/* Forget the VM's pinned host keys (its known_hosts in the state dir);
 * *had: whether there were any. */
int ssh_forget_host_keys(const config *c, const char *vm, bool *had, qq_err *err);

/* Ask the master (if any) to exit (`ssh -O exit`); quiet, never fails, never
 * takes longer than timeout_ms: a master that refuses, does not accept or
 * does not answer in time loses its socket instead (the master itself ends
 * with its connection once QEMU is gone). */
#define SSH_CLOSE_MASTER_MS 2000
void ssh_close_master(const char *state_dir, int timeout_ms);

/* Wait until the guest is ready: "ssh" (sshd's banner, then `true` through
 * ssh, which also brings the master up) or "cloud-init" (ssh, then
 * /var/lib/cloud/instance/boot-finished). Fails at once when QEMU exits or the
 * guest enters internal-error (with the end of the serial log); a timeout
 * names the stage, says the VM was left running, ends with ssh's last error
 * lines and the last SSH_WAIT_SERIAL_LINES lines of the serial console. What
 * waiting cannot mend fails at once (the VM left running): an IdentityFile
 * that does not exist or that ssh cannot read, a config ssh rejects
 * (QQ_EXIT_USAGE), a host key other than the pinned one (QQ_EXIT_FAIL);
 * refused connections are retried, and so are refused logins (cloud-init may
 * install the key late) until the refusal has lasted SSH_WAIT_DENIED_S: then
 * it fails naming the key files ssh offered (ssh -G).
 * While waiting the serial log is read (once a second): a login prompt at
 * its end while the ssh port gives no banner, or a console that stayed empty
 * SSH_WAIT_SILENT_S after QEMU started (then QMP query-kvm and the CPU's
 * registers tell whether KVM is in use and whether the guest ever ran), is
 * said on the progress line and in the timeout's error. A silent guest whose
 * CPU is still at the reset vector on two looks 5 s apart never runs:
 * that fails at once (QQ_EXIT_FAIL, the VM left running).
 * SIGINT/SIGTERM/SIGHUP end the wait (QQ_EXIT_FAIL, "interrupted", the VM
 * keeps running and the stop command is named): caught in a sig.h scope of
 * its own when SIGINT had its default disposition; a caller that catches
 * them itself keeps its catcher (the wait ends on what a sig.h scope caught,
 * with a plain "interrupted", or when the caller ends QEMU). progress: a line on stderr (stage, seconds, the last error or
 * what the serial console tells); debug: each probe and its outcome on
 * stderr. deadline_ms is on clock_ms()'s clock. */
#define SSH_WAIT_DENIED_S 30
#define SSH_WAIT_SILENT_S 20
#define SSH_WAIT_SERIAL_LINES 10
int ssh_wait_ready(const config *c, const char *vm, const char *stage, long long deadline_ms, bool progress,
                   bool debug, qq_err *err);

#endif
