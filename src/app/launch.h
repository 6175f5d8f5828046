/* launch — every QEMU qqmgr runs: its command line (one builder) and the
 * start of a VM (one sequence). "What happens when I start a VM" is
 * launch_start(), here; nothing else spawns a VM's QEMU.
 *
 * The argv (launch_argv). Inputs: the resolved VM (vm_spec, config.h) and one
 * launch_opts. Output, in this order:
 *   WRAP...            launch_opts.wrap split like a cmd entry (strace, rr, …)
 *   qemu_bin
 *   the user's args    vm.NAME.cmd, each with launch_opts.replace applied
 *                      (FROM → TO inside the word: per-run disk copies)
 *   -object memory-backend-file,id=ID,size=BYTES,mem-path=FILE,share=on|off
 *   -machine memory-backend=ID   (ID: mapped_ram_id)
 *                      launch_opts.ram: the guest's RAM in a file (mapped.h);
 *                      launch_start picks a fresh tmpfs file itself when
 *                      ram.file is NULL, the VM allows it and ram.plain is
 *                      not set, and unlinks it once QMP answered
 *   -pidfile STATE/pid QEMU holds a write lock on it: liveness (layout.h)
 *   -qmp unix:SOCK/qmp.socket,server=on,wait=off          stop, status, qmp
 *   -monitor unix:SOCK/monitor.socket,server=on,wait=off  `monitor`
 *   -chardev socket,id=qq-serial,path=SOCK/serial.socket,server=on,wait=off,
 *            logfile=STATE/serial,logappend=off
 *   -serial chardev:qq-serial                             console, logs
 *   -virtfs local,path=DIR,mount_tag=TAG,security_model=mapped-xattr,
 *           id=qq-share-TAG[,readonly=on]
 *                      one per [vm.NAME.share.TAG] (vm_spec.shares): 9p,
 *                      unprivileged; the guest mounts TAG (share.h)
 *   -chardev socket,id=qq-qga,path=SOCK/qga.socket,server=on,wait=off
 *   -device virtio-serial-pci,id=qq-qga-serial
 *   -device virtserialport,bus=qq-qga-serial.0,chardev=qq-qga,
 *           name=org.qemu.guest_agent.0
 *                      with guest_agent = true: the guest agent's channel
 *                      (guestagent.h)
 *   launch_opts.extra  -loadvm NAME, -incoming URI, -snapshot (snapshot.h)
 *   -gdb unix:SOCK/gdb.socket,server=on,wait=off
 *                      the guest's gdbstub, unless the user's cmd has -s or
 *                      -gdb (guestgdb.h finds theirs)
 *   -chardev socket,id=qq-events,path=SOCK/events.socket,server=on,wait=off
 *   -mon chardev=qq-events,mode=control
 *                      a second QMP monitor, for `events` only: a QEMU
 *                      socket serves one client at a time, so following
 *                      events on qmp.socket would lock out stop and status
 *   -S                 launch_opts.paused
 * STATE is the run's state dir (the VM's, or a copy's: config_vm_dir of
 * the name launched, "VM" or "VM#N"); SOCK where QEMU is told its sockets are (the
 * state dir, or its short alias when a path would pass 107 bytes: layout.h).
 * Every path in an option value has its commas doubled (launch_escape). A
 * user argument that sets an injected option (-pidfile -qmp -qmp-pretty
 * -monitor -serial -daemonize, or the chardev ids qq-serial/qq-events/qq-qga) is
 * QQ_EXIT_USAGE naming its place in the config, and so is a user option
 * list with mount_tag=TAG of a share's TAG, or a -fsdev/-virtfs/-device id
 * starting qq-share-; launch_argv creates nothing.
 *
 * Adding an option for some launches (a memory backend, another state dir,
 * more arguments): one field in launch_opts and its effect in launch_argv;
 * every launch then gets it the same way.
 *
 * The start sequence (launch_start), bounded by one deadline:
 *   1. check: the VM name; the argv builds (user args are valid); every
 *      image the VM uses is built
 *   2. lock: the VM's lock file (layout_lock; not when the caller holds
 *      it, launch_opts.lock_held), then a shared lock on each
 *      image it uses (an `img build` in progress is waited for)
 *   3. already running? → r->already_running, nothing else happens
 *   4. records: the ssh port is chosen (an automatic one reserved), stale
 *      runtime files removed, the short socket dir made, ssh_port and
 *      argv.json written (put back as they were if another QEMU wins)
 *   5. spawn (launch_spawn): earlier runs' logs rotated, QEMU started in its
 *      own session, umask 077, stdout/stderr to the VM's logs, stdin
 *      /dev/null, no other descriptor of qqmgr's
 *   6. wait until the QEMU that holds the pid file is ours and answers QMP
 *      query-status (r->state), or it exits (r->stderr_tail, the lock and
 *      records of a QEMU that took the VM meanwhile are left alone), or the
 *      deadline passes (QEMU is killed). An automatic port that another
 *      program bound first is retried with a new one (START_PORT_TRIES).
 * SIGINT, SIGTERM and SIGHUP (sig.h) end any step alike: a lock wait gives
 * up, a QEMU not yet answering is killed and its runtime files removed;
 * "NAME: start interrupted by signal N", QQ_EXIT_FAIL.
 * Starting from a snapshot or as a throwaway run is snap_start (snapshot.h):
 * it fills launch_opts.extra/replace and calls launch_start.
 *
 * The image build boot (img.h) uses launch_build_argv and launch_spawn.
 *
 * Errors: -1 with err filled; QQ_EXIT_USAGE for a bad name, a user argument
 * that sets an injected option or a wrapper that does not split, QQ_EXIT_FAIL
 * for whatever QEMU or the system did.
 */
#ifndef QQ_LAUNCH_H
#define QQ_LAUNCH_H

#include <stdbool.h>
#include <sys/types.h>

#include "../base/clock.h"
#include "../base/err.h"
#include "../base/sbuf.h"
#include "config.h"

/* The chardev ids qqmgr gives its serial console and its events monitor (a
 * user's cmd may not use them). */
#define LAUNCH_SERIAL_CHARDEV "qq-serial"
#define LAUNCH_EVENTS_CHARDEV "qq-events"
#define LAUNCH_QGA_CHARDEV "qq-qga"
/* The fsdev id of share TAG is this prefix + TAG. */
#define LAUNCH_SHARE_ID "qq-share-"

/* Where the guest's RAM is (mapped.h). Zero: launch_start decides (a fresh
 * tmpfs file when mapped_ram_check allows; launch_argv alone injects
 * nothing then). */
typedef struct launch_ram {
    const char *file;          /* mem-path; NULL: automatic */
    bool private_map;          /* share=off (MAP_PRIVATE): a throwaway copy of a snapshot's RAM */
    bool plain;                /* no memory backend of qqmgr's: QEMU's own RAM */
} launch_ram;

/* How one launch differs from the config's plain start. All fields may be
 * zero/NULL. */
typedef struct launch_opts {
    long long deadline_ms;     /* clock_ms() by which the start is done (lock waits included); 0: 60 s */
    bool paused;               /* -S */
    const char *wrap;          /* "strace -f -o FILE": a tool QEMU runs under; NULL none */
    char *const *extra;        /* NULL-terminated, after the injected arguments: -loadvm NAME, -incoming URI, -snapshot */
    char *const *replace;      /* NULL-terminated pairs FROM, TO: in each user argument FROM becomes TO */
    bool lock_held;            /* the caller holds the lock of the run's state dir (copies_claim, copies.h):
                                * launch_start takes none */
    bool die_with_qqmgr;       /* QEMU is killed when this process dies (run --rm: nothing outlives it) */
    launch_ram ram;            /* the guest's RAM (above) */
} launch_opts;

typedef struct launch_result {
    bool already_running;
    bool mapped_ram;       /* the QEMU started has its RAM in a tmpfs file (share=on): saves are mapped */
    pid_t pid;             /* QEMU's (under a wrapper too: the pid-file lock's holder) */
    int ssh_port;          /* host port in use, 0 when the VM has none */
    char state[32];        /* QMP run state after start */
    double seconds;        /* launch → QMP answered */
    char *stderr_tail;     /* on failure: the end of QEMU's stderr (caller frees), or NULL */
    char instance[224];    /* which place it runs in: "VM", or a throwaway copy "VM#N" (copies.h) */
} launch_result;

/* Append s to b with every comma doubled (a QEMU option value). */
void launch_escape(sbuf *b, const char *s);

/* The argv above, NULL-terminated (launch_argv_free). o may be NULL. */
int launch_argv(const vm_spec *s, const launch_opts *o, char ***argv, qq_err *err);
void launch_argv_free(char **argv);

/* The image build boot's argv: qemu_bin, args (the image's build args),
 * -qmp unix:QMP_SOCK,server=on,wait=off (escaped). NULL-terminated. */
char **launch_build_argv(const char *qemu_bin, char *const *args, const char *qmp_sock);

/* Spawn a QEMU: in cwd, in its own session, umask 077 (what QEMU creates is
 * private), stdin /dev/null, stdout and stderr truncated into out_path and
 * err_path (they may be one file), only descriptors 0-2 inherited.
 * die_with_parent: SIGKILL when qqmgr exits (the build boot). */
pid_t launch_spawn(char *const *argv, const char *cwd, const char *out_path, const char *err_path,
                   bool die_with_parent, qq_err *err);

/* Start VM name (the sequence above); 0 once QMP answers, or when it was
 * already running. r->stderr_tail may be set on failure too. name may be a
 * throwaway copy's, "VM#N" (config.h, copies.h): every path of the run
 * (STATE, SOCK, the records, the logs) is then the copy's state dir, and
 * its ssh port an automatic one (config_vm_dir, config_vm_ssh_port). */
int launch_start(const config *cfg, const char *name, const launch_opts *o, launch_result *r, qq_err *err);

/* Steps 4 of the sequence for `gdb VM` (which runs QEMU itself): with the
 * VM's lock held, choose the port, write the records, build the argv. */
int launch_prepare(const config *cfg, const char *name, const launch_opts *o, char ***argv, qq_err *err);

#endif
