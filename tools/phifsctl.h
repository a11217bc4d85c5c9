/*
 * phifsctl.h — what the admin CLI's files share: the one-line messages and
 * exit codes (0 success, 1 the operation failed, 2 bad usage), and the
 * entries of the `key`, `policy` and `audit` commands (phifsctl_key.c,
 * phifsctl_policy.c, phifsctl_audit.c).  Not part of the library.
 */
#ifndef PHIFSCTL_H
#define PHIFSCTL_H

#define EXIT_USAGE 2

/* "phifsctl: ..." and the pointer to --help on stderr; returns 2. */
int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "phifsctl: ..." on stderr; returns 1. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* `phifsctl key SUBCOMMAND ...`, argv[0] being "key". */
int cmd_key(int argc, char **argv);
/* `phifsctl policy SUBCOMMAND ...`, argv[0] being "policy". */
int cmd_policy(int argc, char **argv);

/* `phifsctl audit SUBCOMMAND ...`, argv[0] being "audit" (phifsctl_audit.c). */
int cmd_audit(int argc, char **argv);
/* `phifsctl fsck ...`, argv[0] being "fsck" (phifsctl_fsck.c). */
int cmd_fsck(int argc, char **argv);
/* Sets --key-timeout (whole seconds) for cmd's key sources; 0 or exit 2. */
int set_timeout(const char *cmd, const char *s);
struct keys_store;
/* "audit key: ed25519 sha256:<fingerprint>" for `key list`; 0 or exit 1. */
int print_audit_fingerprint(const struct keys_store *ks);

#endif
