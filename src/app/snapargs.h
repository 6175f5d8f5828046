/* snapargs — a VM's QEMU arguments as a snapshot records them: normalised
 * so that the same config on another host (another state dir, another
 * config dir, another ssh host port) gives the same list. snapshot save
 * records them beside a snapshot; snapshot export and import (snapxfer.h)
 * compare them.
 *
 * The rule: a whole path equal to the config's state dir becomes "{state}",
 * the config's dir "{config}" (a path is whole when no name character —
 * letter, digit, . _ - — follows it); the ssh host port, where it stands
 * alone (no digit on either side), becomes "{ssh.port}".
 */
#ifndef QQ_SNAPARGS_H
#define QQ_SNAPARGS_H

#include <jansson.h>

#include "../base/err.h"
#include "config.h"

/* The port an automatic ssh port is rendered as for the comparison. */
#define SNAPARGS_AUTO_PORT 65533

/* s with each whole-path occurrence of path replaced by token (a path
 * shorter than 2 bytes: s unchanged). A new string. */
char *snapargs_replace_path(const char *s, const char *path, const char *token);

/* The VM's user arguments (vm_spec args) as this config resolves them with
 * ssh host port `port` (0: the configured one; an automatic one is rendered
 * as 65533), normalised as above: a new array of strings, or NULL with err.
 * snapshot save records them in NAME.json ("args"); export sends those, or,
 * for a snapshot saved without them, the config's now. */
json_t *snapargs_of(const config *c, const char *vm, int port, qq_err *err);

#endif
