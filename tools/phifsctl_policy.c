/*
 * phifsctl_policy.c — `phifsctl policy check` and `policy explain`: the
 * access policy linted, and one decision shown with the rule that made it
 * (docs/POLICY.md).  Reads the policy file and the system's user and group
 * databases; knows nothing of volumes or the daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/ini.h"
#include "phifs/policy.h"
#include "phifs/sysnames.h"
#include "phifsctl.h"

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

int cmd_policy(int argc, char **argv)
{
	if (argc < 2)
		return usage("policy: expected a subcommand (check, explain)");
	if (!strcmp(argv[1], "check"))
		return cmd_policy_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "explain"))
		return cmd_policy_explain(argc - 1, argv + 1);
	return usage("unknown command 'policy %s'", argv[1]);
}
