/*
 * phifsctl_audit.c — the `audit` commands of the admin CLI: verify, anchor,
 * show, pubkey (docs/AUDIT.md).  argv in, the audit module's reader and
 * verifier, lines out; one line on stderr when something fails.  verify,
 * anchor and show need no key: only pubkey, and show --key (to search
 * pseudonymous paths), open the volume.  Holds no logic a test would want
 * to reach.
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "phifs/audit.h"
#include "phifs/crypto.h"
#include "phifs/keys.h"
#include "phifs/volume.h"
#include "phifsctl.h"

/* verify's exit code when the log is intact but its tail is unsigned. */
#define EXIT_UNSEALED 3

enum { O_PUBKEY = 1, O_ANCHOR, O_UID, O_PATH, O_OP, O_SINCE, O_UNTIL,
       O_JSON, O_KEY };

struct audit_args {
	const char *pubkey, *anchor, *glob, *key;
	bool json, has_uid, has_op;
	uint32_t uid;
	enum audit_op op;
	int64_t since, until;
	const char *dir;
	const char *backing;	/* show --key: the volume */
	char *pglob;		/* show --key: glob turned to pseudonyms */
};

/* "2026-12-07", "2026-12-07T10:00", "...:30", "...Z", or "@EPOCH". */
static int parse_time(const char *s, int64_t *out)
{
	static const char *const forms[] = {
		"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%MZ",
		"%Y-%m-%dT%H:%M", "%Y-%m-%d",
	};
	struct tm tm;
	char *end;

	if (*s == '@') {
		long long v = strtoll(s + 1, &end, 10);

		if (!s[1] || *end)
			return -EINVAL;
		*out = v;
		return 0;
	}
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, forms[i], &tm);
		if (end && !*end) {
			*out = timegm(&tm);
			return 0;
		}
	}
	return -EINVAL;
}

static int set_opt(int c, const char *cmd, struct audit_args *a)
{
	char *end;
	unsigned long v;

	switch (c) {
	case O_PUBKEY: a->pubkey = optarg; return 0;
	case O_ANCHOR: a->anchor = optarg; return 0;
	case O_PATH: a->glob = optarg; return 0;
	case O_JSON: a->json = true; return 0;
	case O_KEY: a->key = optarg; return 0;
	case O_UID:
		errno = 0;
		v = strtoul(optarg, &end, 10);
		if (!*optarg || *end || errno || v > UINT32_MAX ||
		    *optarg == '-')
			return usage("audit %s: bad --uid '%s'", cmd, optarg);
		a->uid = (uint32_t)v;
		a->has_uid = true;
		return 0;
	case O_OP:
		if (audit_op_parse(optarg, &a->op))
			return usage("audit %s: unknown op '%s'", cmd, optarg);
		a->has_op = true;
		return 0;
	case O_SINCE:
	case O_UNTIL:
		if (parse_time(optarg, c == O_SINCE ? &a->since : &a->until))
			return usage("audit %s: bad time '%s' (2026-12-07, "
				     "2026-12-07T10:00:00Z or @EPOCH)", cmd,
				     optarg);
		return 0;
	}
	return usage("audit %s: unknown option", cmd);
}

/*
 * What follows the options: pubkey's BACKING; show's DIR, and BACKING
 * too when --key; everyone else's DIR.
 */
static int audit_positional(int n, char **pos, unsigned allowed,
			    const char *cmd, struct audit_args *a)
{
	bool show = allowed & 1u << O_PATH;

	if (!show && (allowed & 1u << O_KEY) && !a->key)
		return usage("audit %s: --key SRC is required", cmd);
	if (show && a->key && !a->glob)
		return usage("audit show: --key is for --path on pseudonymous "
			     "paths: give --path GLOB");
	if (show && a->key && n != 2)
		return usage("audit show: with --key, expected DIR BACKING");
	if (!(show && a->key) && n != 1)
		return usage("audit %s: expected one %s", cmd,
			     !show && (allowed & 1u << O_KEY) ? "BACKING" :
			     "DIR");
	a->dir = pos[0];
	a->backing = show && a->key ? pos[1] : NULL;
	return 0;
}

/* "[options] DIR" with the options in `allowed` (bits 1 << O_*). */
static int audit_args(int argc, char **argv, unsigned allowed,
		      struct audit_args *a)
{
	static const struct option opts[] = {
		{ "pubkey", required_argument, NULL, O_PUBKEY },
		{ "anchor", required_argument, NULL, O_ANCHOR },
		{ "uid", required_argument, NULL, O_UID },
		{ "path", required_argument, NULL, O_PATH },
		{ "op", required_argument, NULL, O_OP },
		{ "since", required_argument, NULL, O_SINCE },
		{ "until", required_argument, NULL, O_UNTIL },
		{ "json", no_argument, NULL, O_JSON },
		{ "key", required_argument, NULL, O_KEY },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argv[0];
	int c, rc;

	memset(a, 0, sizeof(*a));
	a->since = INT64_MIN;
	a->until = INT64_MAX;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (c == ':')
			return usage("audit %s: %s needs a value", cmd,
				     argv[optind - 1]);
		if (c == '?')
			return usage("audit %s: unknown option '%s'", cmd,
				     argv[optind - 1]);
		/* opts[] is in O_* order, from 1. */
		if (!(allowed & 1u << c))
			return usage("audit %s: unknown option '--%s'", cmd,
				     opts[c - 1].name);
		if ((rc = set_opt(c, cmd, a)))
			return rc;
	}
	return audit_positional(argc - optind, argv + optind, allowed, cmd, a);
}

static int read_pub(const char *path, uint8_t pub[CRYPTO_ED25519_PUB_LEN])
{
	char *text;
	size_t len;
	int rc = audit_read_file(path, &text, &len, 4096);

	if (rc)
		return fail("%s: %s", path, strerror(-rc));
	rc = audit_pub_parse(text, len, pub);
	free(text);
	if (rc)
		return fail("%s: not an audit key (\"ed25519 <64 hex>\")", path);
	return 0;
}

/*
 * The key to check signatures with: --pubkey pins it, and then the log's
 * own audit.pub, if any, must be the same key (one replaced is a fault).
 */
static int load_pub(const struct audit_args *a,
		    uint8_t pub[CRYPTO_ED25519_PUB_LEN])
{
	uint8_t beside[CRYPTO_ED25519_PUB_LEN];
	char path[4096];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", a->dir, AUDIT_PUB_FILE);
	if (!a->pubkey)
		return read_pub(path, pub);
	if ((rc = read_pub(a->pubkey, pub)))
		return rc;
	if (access(path, F_OK) && errno == ENOENT)
		return 0;
	if ((rc = read_pub(path, beside)))
		return rc;
	if (memcmp(beside, pub, sizeof(beside)))
		return fail("%s: not the key --pubkey pins: replaced?", path);
	return 0;
}

/* Loads and verifies the log; 0 intact (unsealed or not), else exit 1. */
static int check_log(const struct audit_args *a, struct audit_segset *set,
		     struct audit_verdict *v)
{
	uint8_t pub[CRYPTO_ED25519_PUB_LEN];
	char err[512], *anchor = NULL;
	size_t alen = 0;
	int rc;

	if ((rc = load_pub(a, pub)))
		return rc;
	if (a->anchor && (rc = audit_read_file(a->anchor, &anchor, &alen,
					       AUDIT_MAX_LINE + 1)))
		return fail("%s: %s", a->anchor, strerror(-rc));
	if ((rc = audit_dir_load(a->dir, set, err, sizeof(err)))) {
		free(anchor);
		return fail("%s", err);
	}
	rc = audit_verify(set->segs, set->n, pub, anchor, alen, v);
	free(anchor);
	if (rc == -EBADMSG && v->seg < set->n)
		return fail("%s/%s line %zu: %s", a->dir,
			    set->segs[v->seg].name, v->line, v->reason);
	if (rc == -EBADMSG)
		return fail("%s: %s", a->dir, v->reason);
	if (rc)
		return fail("%s: %s", a->dir, strerror(-rc));
	return 0;
}

static int audit_verify_cmd(int argc, char **argv)
{
	struct audit_segset set = { 0 };
	struct audit_verdict v;
	struct audit_args a;
	int rc = audit_args(argc, argv, 1u << O_PUBKEY | 1u << O_ANCHOR, &a);

	if (rc || (rc = check_log(&a, &set, &v)))
		goto out;
	printf("intact: %" PRIu64 " records (seq 1..%" PRIu64 ") in %zu "
	       "segment(s), %" PRIu64 " checkpoint(s)\n", v.records,
	       v.last_seq, set.n, v.checkpoints);
	if (v.recoveries)
		printf("crash recoveries: %" PRIu64 "\n", v.recoveries);
	if (v.gaps)
		printf("gaps: %" PRIu64 " record(s) lost while the log could "
		       "not keep them (on_failure = allow)\n", v.lost);
	if (a.anchor)
		printf("anchor: the log holds and extends it\n");
	if (v.unsealed) {
		printf("UNSEALED: %" PRIu64 " record(s) after seq %" PRIu64
		       " carry no signature yet\n", v.unsealed, v.sealed_seq);
		rc = EXIT_UNSEALED;
	}
out:
	audit_dir_release(&set);
	return rc;
}

static int audit_anchor_cmd(int argc, char **argv)
{
	struct audit_segset set = { 0 };
	struct audit_verdict v;
	struct audit_args a;
	int rc = audit_args(argc, argv, 1u << O_PUBKEY, &a);

	if (rc || (rc = check_log(&a, &set, &v)))
		goto out;
	if (!v.checkpoints) {
		rc = fail("%s: no checkpoint yet", a.dir);
		goto out;
	}
	fwrite(set.segs[v.sealed_seg].buf + v.sealed_off, 1, v.sealed_len,
	       stdout);
out:
	audit_dir_release(&set);
	return rc;
}

/* A byte string for one table cell: what is not printable as \xNN. */
static void put_bytes(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f || c == '\\')
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

/* Names are bytes; fnmatch is too, and path is NUL-ended. */
static bool path_matches(const char *glob, const struct audit_record *r)
{
	return !fnmatch(glob, r->path ? r->path : "", 0) ||
	       (r->path2 && !fnmatch(glob, r->path2, 0));
}

static bool wanted(const struct audit_args *a, const struct audit_record *r)
{
	if (a->has_uid && r->uid != a->uid)
		return false;
	if (a->has_op && r->op != a->op)
		return false;
	if (r->ts_sec < a->since || r->ts_sec > a->until)
		return false;
	/* With --key, names as written or as pseudonyms: a log may hold both. */
	return !a->glob || path_matches(a->glob, r) ||
	       (a->pglob && path_matches(a->pglob, r));
}

/* show --key: the volume's path key turns the glob into pseudonyms. */
static int pseudonymize_glob(struct audit_args *a)
{
	size_t cap = (strlen(a->glob) + 1) * (AUDIT_PSEUDONYM_LEN + 1);
	struct crypto_key *k = NULL;
	struct volume *vol;
	char err[512];
	int rc;

	if (volume_open(a->backing, a->key, false, &vol, err, sizeof(err)))
		return fail("%s", err);
	rc = keys_volume_key(vol->keys, AUDIT_PATH_KEY_PURPOSE, &k);
	volume_close(vol);
	if (rc)
		return fail("%s: the audit path key: %s", a->backing,
			    strerror(-rc));
	a->pglob = malloc(cap);
	rc = a->pglob ? audit_glob_pseudonym(k, a->glob, a->pglob, cap) :
	     -ENOMEM;
	crypto_key_free(k);
	if (rc)
		return fail("--path '%s': %s", a->glob, strerror(-rc));
	return 0;
}

static void show_row(const struct audit_record *r)
{
	struct tm tm;
	time_t t = (time_t)r->ts_sec;
	char ts[32];

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%-20" PRIu64 " %s %-6" PRIu32 " %-15s %-6" PRId64 " ", r->seq,
	       ts, r->uid, audit_op_name(r->op), r->result);
	put_bytes(r->path, r->path_len);
	if (r->path2) {
		fputs(" -> ", stdout);
		put_bytes(r->path2, r->path2_len);
	}
	putchar('\n');
}

/* Shows the records of one segment that pass the filters. */
static int show_segment(const struct audit_args *a,
			const struct audit_segment *g)
{
	char why[200];

	for (size_t pos = 0; pos < g->len;) {
		const char *p = g->buf + pos;
		const char *nl = memchr(p, '\n', g->len - pos);
		size_t n = nl ? (size_t)(nl - p) : g->len - pos;
		struct audit_record r;

		pos += n + 1;
		if (audit_record_parse(p, n, &r, why, sizeof(why))) {
			fprintf(stderr, "phifsctl: %s/%s: a bad line skipped "
				"(%s); run audit verify\n", a->dir, g->name,
				why);
			continue;
		}
		if (wanted(a, &r) && a->json)
			printf("%.*s\n", (int)n, p);
		else if (wanted(a, &r))
			show_row(&r);
		audit_record_release(&r);
	}
	return 0;
}

static int audit_show_cmd(int argc, char **argv)
{
	struct audit_segset set = { 0 };
	struct audit_args a;
	char err[512];
	int rc = audit_args(argc, argv, 1u << O_UID | 1u << O_PATH |
			    1u << O_OP | 1u << O_SINCE | 1u << O_UNTIL |
			    1u << O_JSON | 1u << O_KEY, &a);

	if (rc || (a.key && (rc = pseudonymize_glob(&a))))
		goto out;
	if (audit_dir_load(a.dir, &set, err, sizeof(err))) {
		rc = fail("%s", err);
		goto out;
	}
	if (!a.json)
		printf("%-20s %-20s %-6s %-15s %-6s %s\n", "SEQ", "TIME", "UID",
		       "OP", "RESULT", "PATH");
	for (size_t i = 0; i < set.n; i++)
		show_segment(&a, &set.segs[i]);
	audit_dir_release(&set);
out:
	free(a.pglob);
	return rc;
}

static int audit_pubkey_cmd(int argc, char **argv)
{
	uint8_t pub[CRYPTO_ED25519_PUB_LEN];
	char text[AUDIT_PUB_TEXT_LEN + 1], err[512];
	struct volume *vol;
	struct audit_args a;
	int rc = audit_args(argc, argv, 1u << O_KEY, &a);

	if (rc)
		return rc;
	if (volume_open(a.dir, a.key, false, &vol, err, sizeof(err)))
		return fail("%s", err);
	keys_audit_pub(vol->keys, pub);
	volume_close(vol);
	audit_pub_format(pub, text);
	fputs(text, stdout);
	return 0;
}

int print_audit_fingerprint(const struct keys_store *ks)
{
	uint8_t pub[CRYPTO_ED25519_PUB_LEN];
	char fpr[AUDIT_FPR_LEN + 1];
	int rc;

	keys_audit_pub(ks, pub);
	rc = audit_pub_fingerprint(pub, fpr);
	if (rc)
		return fail("audit key fingerprint: %s", strerror(-rc));
	printf("\naudit key: ed25519 sha256:%s\n", fpr);
	return 0;
}

int cmd_audit(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "verify", audit_verify_cmd }, { "anchor", audit_anchor_cmd },
		{ "show", audit_show_cmd }, { "pubkey", audit_pubkey_cmd },
	};

	if (argc < 2)
		return usage("audit: expected a subcommand (verify, anchor, "
			     "show, pubkey)");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	return usage("unknown command 'audit %s'", argv[1]);
}
