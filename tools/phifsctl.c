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
#include "phifs/ini.h"
#include "phifs/keys.h"
#include "phifs/policy.h"
#include "phifs/secmem.h"
#include "phifs/sysnames.h"
#include "phifs/volume.h"

#define EXIT_USAGE 2

static const char usage_text[] =
	"usage: phifsctl COMMAND [ARGS]\n"
	"\n"
	"Volume set-up:\n"
	"  keygen PATH                      write a fresh random key file (mode 0400)\n"
	"  init --key SRC BACKING           make BACKING a phifs volume (master key v1)\n"
	"\n"
	"Keys:\n"
	"  key list --key SRC BACKING       master key versions and their states, key slots\n"
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
	"Running daemon (its control socket: --socket PATH, or that of BACKING):\n"
	"  status [--json | --prometheus] [--socket PATH | BACKING]\n"
	"                                   figures since mount: a table, the\n"
	"                                   daemon's JSON, or Prometheus text\n"
	"  flush [--socket PATH | BACKING]  commit open files' sizes now\n"
	"  reload [--socket PATH | BACKING] re-read the config file (SIGHUP)\n"
	"  unmount [--socket PATH | BACKING] unmount cleanly (SIGTERM)\n"
	"\n"
	"Key sources (SRC): file:PATH, cmd:COMMAND, passphrase\n"
	"Options: -h, --help   --version\n";

static int usage(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage(const char *fmt, ...)
{
	va_list ap;

	fputs("phifsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see phifsctl --help)\n", stderr);
	return EXIT_USAGE;
}

static int fail(const char *fmt, ...)
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
	if (keys_save(ks, mfd, err, sizeof(err))) {
		rc = fail("%s", err);
		goto out;
	}
	printf("initialised phifs volume %s (master key v1)\n", backing);
	rc = 0;
out:
	keys_free(ks);
	keys_secret_free(sec);
	if (mfd >= 0)
		close(mfd);
	return rc;
}

static int cmd_key_list(int argc, char **argv)
{
	struct keys_version_info v[256];
	struct keys_slot_info s[64];
	const char *key, *backing;
	struct volume *vol;
	char err[512];
	size_t nv, ns;
	int rc;

	rc = volume_args(argc, argv, &key, &backing);
	if (rc)
		return rc;
	if (volume_open(backing, key, false, &vol, err, sizeof(err)))
		return fail("%s", err);
	nv = keys_versions(vol->keys, v, 256);
	ns = keys_slots(vol->keys, s, 64);
	printf("VERSION  STATE\n");
	for (size_t i = 0; i < nv && i < 256; i++)
		printf("%-8u %s\n", v[i].version,
		       keys_state_name(v[i].state));
	printf("\nSLOT  KIND\n");
	for (size_t i = 0; i < ns && i < 64; i++)
		printf("%-5u %s\n", s[i].id, s[i].kind == KEYS_SECRET_RAW ?
		       "key" : "passphrase");
	volume_close(vol);
	return 0;
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

/* flush, reload, unmount: the answer as it came, or its error. */
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
	if (strstr(answer, "\"ok\":true"))
		puts(answer);
	else
		rc = fail("%s: %s", path, answer);
	free(answer);
	return rc;
}

/* Reads and compiles a policy file; one line on stderr and 1 if bad. */
static int load_policy(const char *path, struct policy **p)
{
	char err[POLICY_ERR_LEN];
	char *text = NULL;
	size_t len = 0;
	int rc;

	rc = ini_read_file(path, POLICY_MAX_FILE, "policy file", &text, &len,
			   err, sizeof(err));
	if (!rc)
		rc = policy_parse(path, text, len, &sysnames_resolver, p, err,
				  sizeof(err));
	free(text);
	return rc ? fail("%s", err) : 0;
}

static int cmd_policy_check(int argc, char **argv)
{
	struct policy *p = NULL;
	int rc;

	if (argc != 2 || argv[1][0] == '-')
		return usage("policy check: expected one FILE");
	rc = load_policy(argv[1], &p);
	if (!rc)
		printf("%s: valid\n", argv[1]);
	policy_free(p);
	return rc;
}

/* A uid or gid: decimal, or a name the system knows. */
static int parse_id_arg(const char *opt, const char *v, bool group,
			uint32_t *id)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (*v && !*end && !errno && n < UINT32_MAX && v[0] != '-') {
		*id = (uint32_t)n;
		return 0;
	}
	if ((group ? sysnames_group_id : sysnames_user_id)(NULL, v, id))
		return usage("policy explain: %s %s: no such %s", opt, v,
			     group ? "group" : "user");
	return 0;
}

/* --groups A,B: ids or names, at most max. */
static int parse_groups(const char *v, uint32_t *groups, size_t max,
			size_t *n)
{
	char buf[4096], *save = NULL;
	int rc;

	if (strlen(v) >= sizeof(buf))
		return usage("policy explain: --groups: too long");
	strcpy(buf, v);
	*n = 0;
	for (char *g = strtok_r(buf, ",", &save); g;
	     g = strtok_r(NULL, ",", &save)) {
		if (*n == max)
			return usage("policy explain: --groups: more than %zu",
				     max);
		rc = parse_id_arg("--groups", g, true, &groups[(*n)++]);
		if (rc)
			return rc;
	}
	return 0;
}

/* One JSON string, escaped; policies hold no control characters. */
static void json_str(const char *s)
{
	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void print_decision_json(const struct policy_decision *d,
				const struct policy_caller *c,
				enum policy_op op, const char *path)
{
	char line[1024];

	policy_decision_format(d, line, sizeof(line));
	printf("{\"allow\":%s,\"op\":\"%s\",\"path\":",
	       d->allow ? "true" : "false", policy_op_name(op));
	json_str(path);
	printf(",\"uid\":%u,\"gid\":%u,\"groups\":[", c->uid, c->gid);
	for (size_t i = 0; i < c->ngroups; i++)
		printf("%s%u", i ? "," : "", c->groups[i]);
	printf("],\"role\":");
	json_str(d->role);
	printf(",\"section\":");
	json_str(d->grantee);
	printf(",\"section_line\":%d,\"perm\":", d->grantee_line);
	json_str(d->perm);
	printf(",\"pattern\":");
	json_str(d->pattern);
	printf(",\"pattern_line\":%d,\"below\":%s,\"rule\":", d->pattern_line,
	       d->below ? "true" : "false");
	json_str(d->rule);
	printf(",\"rule_line\":%d,\"file\":", d->rule_line);
	json_str(d->file);
	printf(",\"explain\":");
	json_str(line);
	printf("}\n");
}

/* What explain was asked, from argv. */
struct explain_args {
	const char *file, *path;
	enum policy_op op;
	bool json, have_op, have_uid, have_gid, have_groups;
	uint32_t uid, gid;
	uint32_t groups[1024];
	size_t ngroups;
};

static int explain_args(int argc, char **argv, struct explain_args *a)
{
	static const struct option opts[] = {
		{ "uid", required_argument, NULL, 'u' },
		{ "gid", required_argument, NULL, 'g' },
		{ "groups", required_argument, NULL, 'G' },
		{ "op", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc = 0;

	optind = 1;
	opterr = 0;	/* one line, ours, rather than getopt's and ours */
	while (!rc && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (c == ':')
			return usage("policy explain: %s needs a value",
				     argv[optind - 1]);
		if (c == 'u') {
			rc = parse_id_arg("--uid", optarg, false, &a->uid);
			a->have_uid = true;
		} else if (c == 'g') {
			rc = parse_id_arg("--gid", optarg, true, &a->gid);
			a->have_gid = true;
		} else if (c == 'G') {
			rc = parse_groups(optarg, a->groups, 1024,
					  &a->ngroups);
			a->have_groups = true;
		} else if (c == 'o') {
			if (policy_op_parse(optarg, &a->op))
				return usage("policy explain: --op %s: read, "
					     "write, list or traverse",
					     optarg);
			a->have_op = true;
		} else if (c == 'j') {
			a->json = true;
		} else {
			return usage("policy explain: unknown option '%s'",
				     argv[optind - 1]);
		}
	}
	if (rc)
		return rc;
	if (!a->have_uid || !a->have_op)
		return usage("policy explain: --uid N and --op OP are "
			     "required");
	if (argc - optind != 2)
		return usage("policy explain: expected FILE and PATH");
	a->file = argv[optind];
	a->path = argv[optind + 1];
	if (!policy_path_ok(a->path))
		return usage("policy explain: PATH %s: not absolute, or with "
			     "an empty, '.' or '..' component", a->path);
	return 0;
}

/*
 * Fills in what the system knows of uid and was not given: its name (for
 * ${user}), its primary group and its groups.  A uid the system does not
 * know has no name and no group but those given: its gid is then the
 * kernel's "no id", which no [group:] section can name.
 */
static int complete_caller(struct explain_args *a, char *name, size_t len)
{
	uint32_t pgid = 0;
	int rc = sysnames_user_of(a->uid, name, len, &pgid);

	if (rc)
		*name = 0;
	if (rc && rc != -ENOENT)
		return fail("uid %u: %s", a->uid, strerror(-rc));
	if (!a->have_gid)
		a->gid = rc ? UINT32_MAX : pgid;
	if (a->have_groups || rc)
		return 0;
	if (sysnames_groups_of(name, a->gid, a->groups, 1024, &a->ngroups))
		return fail("uid %u: more than 1024 groups", a->uid);
	return 0;
}

/* Exits 0 whatever the verdict: the verdict is the output. */
static int cmd_policy_explain(int argc, char **argv)
{
	struct explain_args a = { 0 };
	struct policy_caller c;
	struct policy_decision d;
	struct policy *p = NULL;
	char name[256], line[1024];
	int rc;

	rc = explain_args(argc, argv, &a);
	if (!rc)
		rc = complete_caller(&a, name, sizeof(name));
	if (!rc)
		rc = load_policy(a.file, &p);
	if (rc)
		return rc;
	c = (struct policy_caller){ .uid = a.uid, .gid = a.gid,
				    .groups = a.groups,
				    .ngroups = a.ngroups,
				    .user = *name ? name : NULL };
	policy_decide(p, &c, a.op, a.path, &d);
	if (a.json) {
		print_decision_json(&d, &c, a.op, a.path);
	} else {
		policy_decision_format(&d, line, sizeof(line));
		puts(line);
	}
	policy_free(p);
	return 0;
}

static int cmd_policy(int argc, char **argv)
{
	if (argc < 2)
		return usage("policy: expected a subcommand (check, explain)");
	if (!strcmp(argv[1], "check"))
		return cmd_policy_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "explain"))
		return cmd_policy_explain(argc - 1, argv + 1);
	return usage("unknown command 'policy %s'", argv[1]);
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
	    !strcmp(argv[1], "unmount"))
		return cmd_simple(argc - 1, argv + 1);
	if (!strcmp(argv[1], "policy"))
		return cmd_policy(argc - 1, argv + 1);
	if (!strcmp(argv[1], "key")) {
		if (argc < 3)
			return usage("key: expected a subcommand (list)");
		if (!strcmp(argv[2], "list"))
			return cmd_key_list(argc - 2, argv + 2);
		return usage("unknown command 'key %s'", argv[2]);
	}
	return usage("unknown command '%s'", argv[1]);
}
