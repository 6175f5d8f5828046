/* layout — where a VM's and an image's files live, what they are called,
 * which runtime paths stand in for them, and what they say about the VM.
 *
 * Every file name in a state dir is spelled here and nowhere else
 * (docs/design.md "State"):
 *   <state dir>/vm.NAME/   pid qmp.socket monitor.socket serial.socket serial
 *                          qemu-stdout.log qemu-stderr.log ssh.conf ssh.ctl
 *                          known_hosts lock ssh_port argv.json runtime_dir
 *                          serial.N qemu-stdout.log.N qemu-stderr.log.N (N = 1…5:
 *                          the logs of the runs before the current one)
 *                          gdb.socket events.socket forwards.json
 *                          snapshots/ throwaway inflight.json
 *                          throwaway.PID.N.qcow2 (leftover.h) restored
 *                          copy.N/ (N = 1, 2, …): a throwaway copy "VM#N"
 *                          (copies.h), holding the same files as the VM's
 *                          dir (its own pid, sockets, logs, ssh.conf,
 *                          known_hosts, ssh_port, lock, its disk copies)
 *                          and owner.json {"kind": "copy", "name": "VM#N"};
 *                          copy.new.XXXXXX: one being made (its lock held)
 *   <state dir>/img.NAME/  disk.raw | disk.qcow2 (+ .stamp, .building) lock
 *                          cidata/ cidata.iso build.log build-qmp.sock
 *                          runtime_dir base-HASH.img
 * Directories are 0700, files 0600 (layout_make_dir() also tightens a dir an
 * older qqmgr made 0755).
 *
 * Whose directory (the state dir scheme and the ownership records):
 *   DIR/qqmgr.toml      → DIR/.qqmgr/
 *   DIR/NAME (any other) → DIR/.qqmgr/config.NAME/
 *   the global file     → ${XDG_STATE_HOME:-~/.local/state}/qqmgr/
 * A config state dir holds only vm.*, img.*, config.* (other configs' state,
 * in .qqmgr/), keys/ (the ssh key pair `init` makes when the user has none:
 * keys/id_ed25519, never removed by rm or prune) and its record: entries of two configs never share a path and
 * a config's state never looks like a VM or an image. Every dir qqmgr makes
 * (config state, vm.NAME, img.NAME) holds owner.json, 0600:
 *   {"kind": "config"|"vm"|"img", "name": NAME, "config": REAL PATH}
 * written when the dir is made (a config state dir is made with its record
 * in place: a temporary dir renamed). rm, img rm and prune touch only a dir
 * whose record says it is this kind and name of this config (the config's
 * file name decides: a moved project keeps its state). A dir without a
 * record (made by an older qqmgr) counts as this config's only when it holds
 * no vm.*, img.*, config.* or keys entry, i.e. it cannot be another config's state.
 * The older scheme kept DIR/NAME's state in DIR/.qqmgr/NAME/: the first
 * command on that config moves its vm.* and img.* dirs to the new place
 * when none of them is in use (no QEMU, no lock held); while one is, the old
 * dir stays in use as it was.
 *
 * Runtime paths. A unix socket path must fit sun_path (107 bytes). When
 * "<dir>/<longest socket name>" does not, the sockets go through a private
 * runtime directory (rundir.h: $XDG_RUNTIME_DIR/qqmgr, else /tmp/qqmgr-UID,
 * else a mkdtemp() directory recorded in <dir>/runtime_dir — never one
 * another user made; checked on every use). One scheme, written once: the
 * entry's name is a hash of <dir> (HASH, 16 hex digits):
 *   QEMU sockets     <rundir>/HASH, a symlink to the VM's dir (QEMU binds
 *                    there; the socket files land in the VM's dir)
 *   ssh ControlPath  <rundir>/HASH.ssh (else <dir>/ssh.ctl)
 *   build QMP        <rundir>/HASH.qmp (else <img dir>/build-qmp.sock)
 *   [net.NAME]       <rundir>/HASH.net (HASH of "<state dir>/net.NAME"): the
 *                    switch's socket dir (vnet.h), HASH.net.pid its pid file;
 *                    <rundir>/HASH.netlock (HASH of the state dir) the lock
 *                    of the state dir's networks
 *
 * Liveness: QEMU holds a write lock on its pid file; layout_pid_holder()
 * names the holder (F_GETLK), so a stale file or a reused pid never reads as
 * running. The host ssh port a VM runs with is recorded in ssh_port.
 * Returned strings are the caller's (free()).
 */
#ifndef QQ_LAYOUT_H
#define QQ_LAYOUT_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../infra/lockfile.h"
#include "../base/err.h"

typedef enum layout_file {
    /* a VM's dir */
    LAYOUT_PID,
    LAYOUT_QMP,
    LAYOUT_MONITOR,
    LAYOUT_SERIAL_SOCKET,
    LAYOUT_SERIAL,
    LAYOUT_STDOUT,
    LAYOUT_STDERR,
    LAYOUT_SSH_CONF,
    LAYOUT_SSH_CTL,
    LAYOUT_KNOWN_HOSTS,
    LAYOUT_LOCK,          /* VM or image lock */
    LAYOUT_SSH_PORT,
    LAYOUT_ARGV,
    LAYOUT_RUNTIME_DIR,   /* record of a fallback runtime dir (VM or image) */
    LAYOUT_GDB_SOCKET,    /* the guest's gdbstub (launch.h) */
    LAYOUT_GDB_LOCK,      /* held by the one `gdb --guest` on the gdbstub (guestgdb.h) */
    LAYOUT_QGA_SOCKET,    /* the guest agent's channel, with guest_agent = true (guestagent.h) */
    LAYOUT_EVENTS_SOCKET, /* the QMP monitor `events` reads (launch.h) */
    LAYOUT_FORWARDS,      /* port forwards added at run time (forward.h) */
    LAYOUT_SNAPSHOTS,     /* dir: state-file snapshots NAME.state + NAME.json, disks.json (snapshot.h) */
    LAYOUT_THROWAWAY,     /* the pid of a throwaway run (start --rm) */
    LAYOUT_INFLIGHT,      /* a save or restore under way (leftover.h) */
    LAYOUT_RESTORED,      /* the snapshot the running QEMU was started from (start --restore) */
    /* an image's dir */
    LAYOUT_IMG_RAW,
    LAYOUT_IMG_QCOW2,
    LAYOUT_IMG_CIDATA,    /* directory of the rendered cloud-init files */
    LAYOUT_IMG_ISO,
    LAYOUT_IMG_BUILD_LOG,
    LAYOUT_IMG_BUILD_QMP,
    LAYOUT_OWNER,         /* any dir qqmgr makes: what it is, which config made it */
    LAYOUT_KEYS,          /* a config state dir's keys/: the ssh key pair `init` makes, id_ed25519(.pub) */
    LAYOUT_FILE_COUNT
} layout_file;

/* The file's name ("pid", "qmp.socket", …). */
const char *layout_name(layout_file f);
/* <dir>/<name> */
char *layout_path(const char *dir, layout_file f);
/* <path><suffix>: the files kept beside one (".stamp", ".building", ".tmp"). */
char *layout_beside(const char *path, const char *suffix);
/* <img dir>/base-<hash16>.img: the resized copy of a base image; the prefix
 * tells old copies apart (layout_is_base_copy). */
char *layout_base_copy_name(const char *hash_hex);
bool layout_is_base_copy(const char *entry);

/* <state dir>/vm.NAME and <state dir>/img.NAME */
char *layout_vm_dir(const char *state_dir, const char *vm);
char *layout_img_dir(const char *state_dir, const char *img);
/* The VM name of a state-dir entry "vm.NAME", or NULL. */
const char *layout_vm_of_entry(const char *entry);
/* <vm dir>/copy.N: the state dir of the VM's copy N; the N of an entry
 * "copy.N" of a VM's dir (0: not one); whether an entry is a copy being
 * made ("copy.new.XXXXXX", made with LAYOUT_COPY_NEW). */
char *layout_copy_dir(const char *vm_dir, unsigned n);
unsigned layout_copy_of_entry(const char *entry);
#define LAYOUT_COPY_NEW "copy.new.XXXXXX"
bool layout_is_new_copy(const char *entry);

/* The state dir of the config DIR/BASE (not the global file): see above.
 * Moves an older qqmgr's DIR/.qqmgr/BASE/ (when idle). NULL with err
 * (QQ_EXIT_FAIL) when DIR/.qqmgr/config.BASE is not recorded as BASE's. */
char *layout_config_state_dir(const char *cfg_dir, const char *base, qq_err *err);

/* The config whose state dir is state_dir (its real path): layout_make_dir()
 * records it in every dir it makes there. config_load() calls it. */
void layout_set_config(const char *state_dir, const char *config_path);

/* Write dir's record (kind "vm", "img", "config"; name) for the
 * config set with layout_set_config (no config set: nothing). */
int layout_record(const char *dir, const char *kind, const char *name, qq_err *err);

/* Is dir (a real directory) recorded as kind/name of the config at
 * config_path, or unrecorded and unambiguous (see above)? false: *why says
 * whose it is instead (malloc'd). */
bool layout_owned(const char *dir, const char *kind, const char *name, const char *config_path, char **why);

/* mkdir -p dir with mode 0700; dir (and its parent, the config's state dir)
 * are set to 0700 when an older version made them wider. The config's state
 * dir is made with its record; a vm.NAME or img.NAME dir directly in it gets
 * its record when it has none and holds nothing of another config. */
int layout_make_dir(const char *dir, qq_err *err);

/* Open (create 0600) and take the lock file of a VM or image dir (made
 * first), waiting until deadline_ms (lockfile.h: 0 tries once,
 * LOCKFILE_FOREVER). Returns the descriptor holding the lock; held elsewhere
 * at the deadline → -1 with errno EWOULDBLOCK. A lock file removed while this
 * waited (rm, prune: reclaim.h) is not held: the dir is made again and the
 * new file locked. */
int layout_lock(const char *dir, long long deadline_ms, qq_err *err);

/* The VM's lock for the command `what` ("start", "stop", "rm", "snapshot",
 * "forward"), waited for until deadline_ms. The two ways it fails are said
 * the same for every command: "NAME: WHAT interrupted by signal N while
 * waiting for the VM's lock", and "NAME: another qqmgr is starting or stopping
 * it (it holds PATH); still held after BOUND_S s (BOUND)" — BOUND names the
 * bound ("--timeout", "the snapshot commands' bound"). */
int layout_lock_vm(const char *name, const char *dir, const char *what, long long deadline_ms, int bound_s,
                   const char *bound, qq_err *err);

/* The runtime dir for dir's runtime paths (rundir_get with the record in
 * dir; dir must exist when create). */
char *layout_runtime_dir(const char *dir, bool create, qq_err *err);

/* The directory QEMU is told its sockets are in: the VM's dir when its
 * sockets fit, else <rundir>/HASH. With create, the symlink is made (or
 * fixed) to point at vm_dir. NULL only on error with create. */
char *layout_socket_dir(const char *vm_dir, bool create, qq_err *err);

/* The ssh ControlPath of a VM: <vm_dir>/ssh.ctl when it fits (with ssh's
 * 17-byte suffix), else <rundir>/HASH.ssh (the runtime dir made with create). */
char *layout_control_path(const char *vm_dir, bool create, qq_err *err);

/* Remove dir's fallback runtime dir (and its record) when nothing is left in
 * it: the last VM using it ended (rundir_release). */
void layout_release_runtime_dir(const char *dir);

/* The socket dir of the state dir's network NAME (see above; the runtime
 * dir made with create). NULL only on error with create. */
char *layout_net_dir(const char *state_dir, const char *net, bool create, qq_err *err);
/* The lock file of the state dir's networks (the runtime dir made). */
char *layout_net_lock(const char *state_dir, qq_err *err);

/* The build QEMU's QMP socket of an image (made ready: dirs exist). */
char *layout_build_qmp(const char *img_dir, qq_err *err);

/* Logs of earlier runs: each start moves serial, qemu-stdout.log and
 * qemu-stderr.log to NAME.1 (NAME.1 to NAME.2, …), keeping LAYOUT_LOG_KEEP. */
#define LAYOUT_LOG_KEEP 5
void layout_rotate_logs(const char *vm_dir);
/* <dir>/<name of f>.N: the log of the run N before the current one. */
char *layout_previous(const char *dir, layout_file f, int n);

/* Forget the VM's pinned ssh host keys (remove known_hosts): its image was
 * rebuilt, or the user asked. Returns whether there was a file. */
bool layout_forget_host_keys(const char *vm_dir);

/* Remove what only a running QEMU needs: pid file, sockets, the socket-dir
 * symlink, the run-time port forwards. Logs, ssh.conf, the recorded port stay. */
void layout_remove_runtime(const char *vm_dir);

/* The running VM of the state dir (any vm.* dir, in the config or not; not
 * `except`) whose recorded argv (argv.json) has an argument containing
 * needle, or NULL (malloc'd). A running VM whose argv cannot be read counts
 * as a user (cannot tell: the caller keeps what it would touch). */
char *layout_running_user(const char *state_dir, const char *except, const char *needle);

/* The pid holding the write lock on the pid file, 0 if none. */
pid_t layout_pid_holder(const char *vm_dir);

/* The recorded ssh host port (0 unknown); record one (0: remove the record). */
int layout_read_port(const char *vm_dir);
int layout_write_port(const char *vm_dir, int port, qq_err *err);

/* Write <dir>/<name of f> atomically, mode 0600. */
int layout_write(const char *dir, layout_file f, const char *text, qq_err *err);

/* The files `show --json` lists: {pid, qmp_socket, monitor_socket, serial,
 * qemu_stdout, qemu_stderr, ssh_config} → absolute paths. */
json_t *layout_vm_files_json(const char *vm_dir);

typedef struct vm_state {
    bool running;          /* the QEMU process is alive (pid-file lock held) */
    pid_t pid;             /* 0 when not running */
    int ssh_port;          /* the host port in use (auto ports as recorded); 0 unknown */
    bool qmp_connected;    /* only when asked to query QMP */
    char state[32];        /* "stopped", "running", "paused", "internal-error", "broken", … */
} vm_state;

/* Probe a VM's state dir. With query_qmp, also ask QMP for the run state
 * (bounded by a short timeout); without, state is "running" or "stopped".
 * "broken": the process lives but QMP does not answer, or QMP answers but no
 * process holds the pid file. Never takes the VM's lock. Returns 0 (a missing
 * state dir reads as stopped). details: when not NULL, the query-status reply
 * (new reference) or NULL. */
int vm_probe(const char *vm_dir, bool query_qmp, vm_state *out);
void vm_probe_details(const char *vm_dir, bool query_qmp, vm_state *out, json_t **details);

#endif
