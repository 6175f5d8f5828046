/* recorded — a running VM as its state dir records it, against today's
 * config: what it was started with wins over what the config says now.
 *
 * No daemon keeps a VM's settings: a running VM's truth is its state dir
 * (layout.h): the pid-file lock (running or not), ssh_port (the host port it
 * was given), argv.json (the command line it runs), owner.json (which config
 * and VM the dir belongs to). Two things follow:
 *  - a VM removed from the config while it runs stays this config's: its dir
 *    says so. It is "departed": list, status --all and stop --all include it,
 *    `stop NAME` and `status NAME` reach it by name (config_check_vm would
 *    say "no VM named"), and nothing else starts it again;
 *  - a VM whose config entry changed while it runs runs on as started: ssh
 *    uses the recorded port (ssh.h), and status says the config changed since
 *    the start (recorded_config_changed).
 * Nothing here takes a lock or writes.
 */
#ifndef QQ_RECORDED_H
#define QQ_RECORDED_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/err.h"
#include "config.h"

/* Is name a running VM of c's state dir that c does not define: a valid
 * name, its dir recorded as VM name of this config (layout_owned), its pid
 * file held? */
bool recorded_departed(const config *c, const char *name);

/* The departed VMs of c's state dir (as above), in name order; NULL-terminated
 * (strv: free each and the array), *n their count. */
char **recorded_departed_all(const config *c, size_t *n);

/* 0 when c defines VM name or it is departed; else config_check_vm's error. */
int recorded_check_vm(const config *c, const char *name, qq_err *err);

/* Does the running VM's recorded argv (argv.json) differ from what the
 * config gives today, in the QEMU binary or the user's arguments (rendered
 * with the recorded port)? What a start added for its own run (--wrap,
 * --paused, a snapshot's -loadvm/-incoming, a throwaway run's disk copies)
 * is not a change. false when nothing is recorded or the VM is departed;
 * the first difference in *what ("bin", or the argument's config place and
 * both values; caller frees) when what is not NULL. */
bool recorded_config_changed(const config *c, const char *name, char **what);

#endif
