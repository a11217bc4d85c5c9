/*
 * phifsctl.c — the admin CLI: argv in, one library call per command, one
 * line on stderr when something fails.  Exit codes: 0 success, 1 the
 * operation failed, 2 bad usage.  Holds no logic a test would want to
 * reach; that lives in the core library.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/ctl.h"
#include "phifs/folders.h"
#include "phifs/keys.h"
#include "phifs/secmem.h"
#include "phifs/volume.h"
#include "phifsctl.h"

static const char usage_text[] =
	"usage: phifsctl COMMAND [ARGS]\n"
	"\n"
	"Volume set-up:\n"
	"  keygen PATH                      write a fresh random key file (mode 0400)\n"
	"  init --key SRC BACKING           make BACKING a phifs volume (master key v1)\n"
	"\n"
	"Keys:\n"
	"  key list --key SRC [--json] BACKING\n"
	"                                   master key versions, their states and\n"
	"                                   how many files each wraps; key slots\n"
	"  key add-slot --key SRC --new-key SRC2 BACKING\n"
	"                                   another key source that unlocks the volume\n"
	"  key remove-slot --key SRC [--force] BACKING SLOT\n"
	"                                   that key source no longer unlocks it\n"
	"  key rotate --key SRC [--keep-old] [--json] BACKING\n"
	"                                   new master key version, every file key\n"
	"                                   re-wrapped, old versions retired;\n"
	"                                   resumable; unmounted volumes only\n"
	"  key rekey --key SRC [--json] BACKING [PATH...]\n"
	"                                   fresh file keys and data re-encrypted,\n"
	"                                   for PATHs (files, folders) or all;\n"
	"                                   crash-safe, resumable; hard-linked\n"
	"                                   files refused; unmounted volumes only\n"
	"  key retire --key SRC BACKING VERSION\n"
	"                                   destroy a version no file uses\n"
	"  (key commands: --key-timeout SECONDS for a cmd: key source)\n"
	"  audit verify [--pubkey FILE] [--anchor FILE] DIR\n"
	"                                   every hash, link, seq and signature\n"
	"                                   of the log; exit 0 intact, 1 fault,\n"
	"                                   3 intact but an unsigned tail\n"
	"  audit anchor [--pubkey FILE] DIR the latest signed checkpoint, to keep\n"
	"                                   elsewhere for verify --anchor\n"
	"  audit show [--uid N] [--path GLOB] [--op OP] [--since TIME]\n"
	"             [--until TIME] [--json] DIR\n"
	"                                   the records, as a table or JSON Lines\n"
	"  audit show --key SRC --path GLOB [...] DIR BACKING\n"
	"                                   --path on pseudonymous paths, with\n"
	"                                   the key of the volume at BACKING\n"
	"  audit pubkey --key SRC BACKING   the volume's audit.pub line\n"
	"\n"
	"Access policy (docs/POLICY.md):\n"
	"  policy check FILE                exit 0 if FILE is a valid policy, else\n"
	"                                   its first error as FILE:LINE: reason\n"
	"  policy explain FILE --uid N [--gid N] [--groups G,G...] --op OP [--json] PATH\n"
	"                                   allow or deny, and the rule that decided;\n"
	"                                   OP: read, write, list or traverse; the\n"
	"                                   uid's gid and groups from the system's\n"
	"                                   databases unless given\n"
	"\n"
	"Health:\n"
	"  fsck --key SRC [--adopt-folders] [--key-timeout SECONDS] BACKING\n"
	"                                   every header, block, symlink, node\n"
	"                                   record and sealed attribute\n"
	"                                   authenticates; exit 0 sound, 1 not;\n"
	"                                   unmounted volumes only;\n"
	"                                   --adopt-folders first gives folders\n"
	"                                   a restore left without a good record\n"
	"                                   the backing's mode and owner\n"
	"\n"
	"Running daemon (its control socket: --socket PATH, or that of BACKING):\n"
	"  status [--json | --prometheus] [--socket PATH | BACKING]\n"
	"                                   figures since mount: a table, the\n"
	"                                   daemon's JSON, or Prometheus text\n"
	"  flush [--socket PATH | BACKING]  commit open files' sizes now\n"
	"  reload [--socket PATH | BACKING] re-read the config file, put the\n"
	"                                   policy file in force again (SIGHUP)\n"
	"  unmount [--socket PATH | BACKING] unmount cleanly (SIGTERM)\n"
	"  audit-anchor [--socket PATH | BACKING]\n"
	"                                   sign a checkpoint of the integrity\n"
	"                                   log now and print its line\n"
	"\n"
	"Key sources (SRC): file:PATH, cmd:COMMAND, passphrase\n"
	"Options: -h, --help   --version\n";

int usage(const char *fmt, ...)
{
	va_list ap;

	fputs("phifsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see phifsctl --help)\n", stderr);
	return EXIT_USAGE;
}

int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("phifsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

/* Parses "--key SRC BACKING" as every volume command takes it. */
static int volume_args(int argc, char **argv, const char **key,
		       const char **backing)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*key = NULL;
	*backing = NULL;
	optind = 1;
	opterr = 0;	/* one line, ours, rather than getopt's and ours */
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (c == ':')
			return usage("%s: %s needs a value", argv[0],
				     argv[optind - 1]);
		if (c != 'k')
			return usage("%s: unknown option '%s'", argv[0],
				     argv[optind - 1]);
		*key = optarg;
	}
	if (!*key)
		return usage("%s: --key SRC is required", argv[0]);
	if (argc - optind != 1)
		return usage("%s: expected one BACKING directory", argv[0]);
	*backing = argv[optind];
	return 0;
}

static int cmd_keygen(int argc, char **argv)
{
	char err[KEYS_ERR_LEN];

	if (argc != 2)
		return usage("keygen: expected one PATH");
	if (keys_keygen(argv[1], err, sizeof(err)))
		return fail("%s", err);
	return 0;
}

/*
 * Whether BACKING may become a volume: not one already, and empty.  Files
 * already there would show through the mount as files that cannot be
 * decrypted (EIO), and would stay in plain text beside the ciphertext.
 */
static int check_fresh(const char *backing)
{
	struct dirent *e;
	DIR *d;
	int dfd, rc = 0;

	dfd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fail("%s: %s", backing, strerror(errno));
	if (faccessat(dfd, KEYS_DIR "/" KEYS_FILE, F_OK,
		      AT_SYMLINK_NOFOLLOW) == 0) {
		close(dfd);
		return fail("%s: already a phifs volume (%s/%s exists)",
			    backing, KEYS_DIR, KEYS_FILE);
	}
	d = fdopendir(dfd);
	if (!d) {
		rc = fail("%s: %s", backing, strerror(errno));
		close(dfd);
		return rc;
	}
	errno = 0;
	while (!rc && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			rc = fail("%s: not empty (holds '%s'); a new volume "
				  "needs an empty folder", backing, e->d_name);
	}
	if (!rc && errno)
		rc = fail("%s: %s", backing, strerror(errno));
	closedir(d);
	return rc;
}

/* Makes BACKING/.phifs for init and opens it. */
static int make_meta(const char *backing, int *out)
{
	int dfd, mfd, e;

	dfd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fail("%s: %s", backing, strerror(errno));
	if (mkdirat(dfd, KEYS_DIR, 0700)) {
		e = errno;
		close(dfd);
		return fail("%s/%s: %s", backing, KEYS_DIR, strerror(e));
	}
	mfd = openat(dfd, KEYS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	e = errno;
	close(dfd);
	if (mfd < 0)
		return fail("%s/%s: %s", backing, KEYS_DIR, strerror(e));
	*out = mfd;
	return 0;
}

/*
 * A new volume's root folder gets its record, and the keystore the mark
 * that every folder has one.  A backing file system without user xattrs
 * keeps an unmarked volume, whose folders show the backing's mode.
 */
static int mark_folders(struct keys_store *ks, const char *backing)
{
	int rc, fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return fail("%s: %s", backing, strerror(errno));
	rc = folders_init(ks, fd, geteuid() == 0);
	close(fd);
	if (rc == -EOPNOTSUPP) {
		fprintf(stderr, "phifsctl: %s: no user xattrs here: folders "
			"show the backing's mode and owner\n", backing);
		return 0;
	}
	return rc ? fail("%s: cannot seal the root folder's record: %s",
			 backing, strerror(-rc)) : 0;
}

static int cmd_init(int argc, char **argv)
{
	const char *key, *backing;
	struct keys_secret *sec = NULL;
	struct keys_store *ks = NULL;
	char err[KEYS_ERR_LEN];
	int rc, mfd = -1;

	rc = volume_args(argc, argv, &key, &backing);
	if (rc)
		return rc;
	rc = check_fresh(backing);
	if (rc)
		return rc;
	/* The key first: a refused key leaves the folder as it was. */
	if (keys_source_load(key, &sec, err, sizeof(err))) {
		rc = fail("%s", err);
		goto out;
	}
	rc = make_meta(backing, &mfd);
	if (rc)
		goto out;
	rc = keys_create(sec, NULL, &ks);
	if (rc) {
		rc = fail("%s: cannot create keys: %s", backing, strerror(-rc));
		goto out;
	}
	/* Marked at once: the root folder's record, then the keystore. */
	rc = mark_folders(ks, backing);
	if (rc)
		goto out;
	if (keys_save(ks, mfd, err, sizeof(err))) {
		rc = fail("%s", err);
		goto out;
	}
	printf("initialised phifs volume %s (master key v1)\n", backing);
	rc = print_audit_fingerprint(ks);
out:
	keys_free(ks);
	keys_secret_free(sec);
	if (mfd >= 0)
		close(mfd);
	return rc;
}

#define CTL_TIMEOUT_MS 10000

/*
 * The daemon's socket from "[--socket PATH | BACKING]", and for status its
 * format.  fmt is NULL for the other commands; *json tells --json.
 */
static int socket_args(int argc, char **argv, char *path, size_t len,
		       enum ctl_format *fmt, int *json)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			sock = optarg;
		else if (c == 'j' && fmt)
			*json = 1;
		else if (c == 'p' && fmt)
			*fmt = CTL_FORMAT_PROMETHEUS;
		else
			return usage("%s: unknown option", argv[0]);
	}
	if (fmt && *json && *fmt == CTL_FORMAT_PROMETHEUS)
		return usage("%s: --json or --prometheus, not both", argv[0]);
	if (sock && argc - optind == 0)
		snprintf(path, len, "%s", sock);
	else if (!sock && argc - optind == 1)
		snprintf(path, len, "%s/%s/%s", argv[optind], KEYS_DIR,
			 CTL_SOCKET_NAME);
	else
		return usage("%s: expected --socket PATH or one BACKING",
			     argv[0]);
	return 0;
}

/* Asks the daemon; one line on stderr and 1 when nobody answers. */
static int ask(const char *path, const char *cmd, char **answer)
{
	char req[64];
	int rc;

	snprintf(req, sizeof(req), "{\"cmd\":\"%s\",\"version\":%d}", cmd,
		 CTL_PROTO_VERSION);
	rc = ctl_request(path, req, CTL_TIMEOUT_MS, answer);
	if (rc == -ENOENT || rc == -ECONNREFUSED)
		return fail("%s: no daemon answers", path);
	if (rc)
		return fail("%s: %s", path, strerror(-rc));
	return 0;
}

static int cmd_status(int argc, char **argv)
{
	enum ctl_format fmt = CTL_FORMAT_TABLE;
	char path[PATH_MAX], why[512];
	char *answer = NULL;
	int json = 0, rc;

	rc = socket_args(argc, argv, path, sizeof(path), &fmt, &json);
	if (!rc)
		rc = ask(path, "status", &answer);
	if (rc)
		return rc;
	if (json)
		puts(answer);
	else if (ctl_msg_format(answer, fmt, stdout, why, sizeof(why)))
		rc = fail("%s: %s", path, why);
	free(answer);
	return rc;
}

/*
 * flush, reload, unmount: the answer as it came, or its error;
 * audit-anchor: the checkpoint line alone.
 */
static int cmd_simple(int argc, char **argv)
{
	char path[PATH_MAX];
	char *answer = NULL;
	int rc;

	rc = socket_args(argc, argv, path, sizeof(path), NULL, NULL);
	if (!rc)
		rc = ask(path, argv[0], &answer);
	if (rc)
		return rc;
	if (!strcmp(argv[0], "audit-anchor") &&
	    strstr(answer, "\"ok\":true")) {
		char line[CTL_MAX_ANCHOR], why[512];

		if (ctl_msg_anchor_of(answer, line, sizeof(line), why,
				      sizeof(why)))
			rc = fail("%s: %s", path, why);
		else
			puts(line);
	} else if (strstr(answer, "\"ok\":true"))
		puts(answer);
	else
		rc = fail("%s: %s", path, answer);
	free(answer);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = secmem_harden_process();

	if (rc)
		return fail("cannot harden the process: %s", strerror(-rc));
	if (argc < 2)
		return usage("no command given");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		puts("phifsctl " PHIFS_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "keygen"))
		return cmd_keygen(argc - 1, argv + 1);
	if (!strcmp(argv[1], "init"))
		return cmd_init(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "flush") || !strcmp(argv[1], "reload") ||
	    !strcmp(argv[1], "unmount") || !strcmp(argv[1], "audit-anchor"))
		return cmd_simple(argc - 1, argv + 1);
	if (!strcmp(argv[1], "policy"))
		return cmd_policy(argc - 1, argv + 1);
	if (!strcmp(argv[1], "key"))
		return cmd_key(argc - 1, argv + 1);
	if (!strcmp(argv[1], "audit"))
		return cmd_audit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fsck"))
		return cmd_fsck(argc - 1, argv + 1);
	return usage("unknown command '%s'", argv[1]);
}
