/* sshconf — the text of a VM's ssh config, written so ssh reads back exactly
 * the values qqmgr means (ssh_config(5) quoting), and read back.
 *
 * Order: a comment, Host ALIAS (the VM name when it is a plain host name,
 * else "qqmgr-vm"), HostName 127.0.0.1, Port, HostKeyAlias qqmgr-ALIAS,
 * ControlMaster auto, ControlPath, ControlPersist 10m, UserKnownHostsFile
 * <VM dir>/known_hosts, StrictHostKeyChecking accept-new, KexAlgorithms
 * SSHCONF_KEX (each of the last seven unless the user's keys set it: host
 * keys are pinned per VM; the key exchange of a connection that never leaves
 * the host is the cheap one), ProxyCommand 'QQMGR' __connect %h %p and
 * ProxyUseFdpass yes (unless the user's keys set ProxyCommand, ProxyJump or
 * ProxyUseFdpass: QQMGR is this program's absolute path, which connects with
 * TCP_NODELAY and hands ssh the socket; OpenSSH sets it only on interactive
 * sessions, and without it the two small packets after its key exchange
 * wait for the server's delayed ACK, 40 ms on Linux, on every new
 * connection), then the VM's [vm.NAME.ssh] keys, then the global [ssh] keys (ssh keeps the first value: VM keys win). Booleans become
 * yes/no, numbers digits, arrays repeat the key.
 *
 * Strings are quoted as ssh_config reads them (OpenSSH >= 8.7 argv_split):
 * "…" with \" and \\ escaped, one argument each. Exceptions, as ssh reads
 * them: ProxyCommand, RemoteCommand, LocalCommand and KnownHostsCommand take
 * the rest of the line and are written as given; keys that take several
 * arguments (LocalForward, RemoteForward, SendEnv, SetEnv, UserKnownHostsFile,
 * GlobalKnownHostsFile, CanonicalDomains, PermitRemoteOpen, …) get each white
 * space separated word quoted (a value holding quotes or backslashes is the
 * user's own ssh_config syntax and is written as given).
 * What qqmgr adds to a value — the ControlPath, the config's directory put in
 * front of a relative IdentityFile/CertificateFile/UserKnownHostsFile/
 * GlobalKnownHostsFile/IdentityAgent — has `%` written `%%` where ssh expands
 * %-tokens (man ssh_config, TOKENS); a "${" there (ssh would expand an
 * environment variable) is an error. The user's own text keeps its tokens.
 * A control character in a key or value, or a key that is not a word, is an
 * error (QQ_EXIT_USAGE): nothing can add a line to the file.
 */
#ifndef QQ_SSHCONF_H
#define QQ_SSHCONF_H

#include <stdbool.h>

#include "../base/err.h"
#include "../base/sbuf.h"
#include "config.h"

/* OpenSSH's default key exchanges before 9.0, which every OpenSSH since 7.4
 * knows: no post-quantum hybrid (sntrup761x25519, mlkem768x25519), whose
 * guest side costs about 0.2 s per login under TCG and which protects
 * nothing on a connection that stays on the host. */
#define SSHCONF_KEX "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384," \
                    "ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512," \
                    "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256"

/* What follows qqmgr's path in the ProxyCommand qqmgr writes. */
#define SSHCONF_PROXY_ARGS "__connect %h %p"

/* The Host alias of VM name (fits 256 bytes). */
void sshconf_alias(const char *vm, char *buf, size_t len);

/* The config text for VM s reached on port (reads only the VM's recorded
 * runtime dir, see layout_control_path). */
int ssh_config_text(const config *c, const vm_spec *s, int port, sbuf *out, qq_err *err);

/* Does the user set keyword key (in [vm.NAME.ssh] or [ssh])? */
bool sshconf_user_sets(const config *c, const vm_spec *s, const char *key);

/* The first IdentityFile the user's keys name (VM keys, then [ssh]) that does
 * not exist, as ssh would look for it (relative: in the config's directory;
 * ~/: in $HOME), or NULL (values with %-tokens or ${} are not judged).
 * Caller frees. */
char *sshconf_missing_identity(const config *c, const vm_spec *s);

/* Append s as one ssh_config argument ("…"); percent: write % as %% (s is
 * literal text in a keyword that expands tokens). -1 on a control character. */
int sshconf_quote(sbuf *out, const char *s, bool percent, qq_err *err);

/* The first value of keyword key in ssh_config text, as ssh reads it
 * (unquoted; %% → % for keywords that expand tokens); NULL if absent. */
char *sshconf_get(const char *text, const char *key);

#endif
