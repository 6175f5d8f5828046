/* ssh_keywords — the ssh_config(5) keywords of OpenSSH's client.
 *
 * ssh_keywords[] is the table (NULL-terminated, the manual's spelling):
 * every keyword OpenSSH 9's ssh reads from a config file, with the aliases it
 * still accepts and Debian's GSSAPI additions. tests/unit/test_ssh_keywords.c
 * checks it against the installed ssh (each one accepted in a config file
 * read by `ssh -G`, and every key `ssh -G` prints is in it). Host and Match
 * are not in it: qqmgr writes the Host block itself.
 *
 * ssh_keyword() finds a keyword regardless of case (ssh's own rule) and
 * returns the table's spelling, or NULL.
 */
#ifndef QQ_SSH_KEYWORDS_H
#define QQ_SSH_KEYWORDS_H

extern const char *const ssh_keywords[];

const char *ssh_keyword(const char *name);

#endif
