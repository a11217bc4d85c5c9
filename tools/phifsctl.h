/*
 * phifsctl.h — what the admin CLI's files share: the one-line messages and
 * exit codes (0 success, 1 the operation failed, 2 bad usage), and the
 * entries of the `key` (phifsctl_key.c) and `policy` (phifsctl_policy.c)
 * commands.  Not part of the library.
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

#endif
