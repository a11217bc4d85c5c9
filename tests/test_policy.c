/*
 * test_policy.c — tests for the policy module (src/policy_*.c): the
 * language, each pattern form, the expansions, supplementary groups, root,
 * ancestors, what decided, and every malformed file under
 * tests/data/policy/bad refused at its line.  Names resolve through a fake.
 */
#include "phifs/policy.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* alice 1001, bob 1002; groups nurses 3000, billing 2000. */
static int fake_user(void *ctx, const char *name, uint32_t *id)
{
	(void)ctx;
	if (!strcmp(name, "alice"))
		*id = 1001;
	else if (!strcmp(name, "bob"))
		*id = 1002;
	else
		return -ENOENT;
	return 0;
}

static int fake_group(void *ctx, const char *name, uint32_t *id)
{
	(void)ctx;
	if (!strcmp(name, "nurses"))
		*id = 3000;
	else if (!strcmp(name, "billing"))
		*id = 2000;
	else
		return -ENOENT;
	return 0;
}

static const struct policy_resolver fake = { fake_user, fake_group, NULL };

static struct policy *load(const char *text)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN] = "";

	cr_assert_eq(policy_parse("p.ini", text, strlen(text), &fake, &p, err,
				  sizeof(err)), 0, "%s", err);
	return p;
}

/* Refused, with err exactly want. */
static void refused(const char *text, const char *want)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN] = "";

	cr_assert_eq(policy_parse("p.ini", text, strlen(text), &fake, &p, err,
				  sizeof(err)), -EINVAL, "accepted: %s", text);
	cr_assert_null(p);
	cr_assert_str_eq(err, want);
}

static bool may(const struct policy *p, uint32_t uid, uint32_t gid,
		enum policy_op op, const char *path)
{
	struct policy_caller c = { .uid = uid, .gid = gid };
	struct policy_decision d;

	policy_decide(p, &c, op, path, &d);
	return d.allow;
}

static const char spec_policy[] =
	"[defaults]\n"
	"unmatched = deny          ; deny | allow\n"
	"root = deny               ; uid 0 gets no implicit access\n"
	"\n"
	"[role:physician]\n"
	"read  = /patients/**\n"
	"write = /patients/**\n"
	"\n"
	"[role:patient]\n"
	"read = /patients/${uid}/**       ; only their own records\n"
	"\n"
	"[role:billing]\n"
	"read = /billing/**\n"
	"\n"
	"[user:1001]\n"
	"roles = physician\n"
	"\n"
	"[group:2000]\n"
	"roles = billing\n"
	"\n"
	"[group:4000]\n"
	"roles = patient\n";

Test(policy, the_spec_example_grants_what_it_says_and_nothing_more)
{
	struct policy *p = load(spec_policy);

	cr_expect(may(p, 1001, 100, POLICY_READ, "/patients/7/chart"));
	cr_expect(may(p, 1001, 100, POLICY_WRITE, "/patients/7/chart"));
	cr_expect_not(may(p, 1001, 100, POLICY_READ, "/billing/inv1"));
	cr_expect(may(p, 1500, 2000, POLICY_READ, "/billing/inv1"));
	cr_expect_not(may(p, 1500, 2000, POLICY_WRITE, "/billing/inv1"));
	cr_expect_not(may(p, 1500, 2000, POLICY_READ, "/patients/7/chart"));
	cr_expect_not(may(p, 1700, 1700, POLICY_READ, "/billing/inv1"));
	policy_free(p);
}

Test(policy, a_patient_reads_only_the_folder_of_their_own_uid)
{
	struct policy *p = load(spec_policy);

	cr_expect(may(p, 1201, 4000, POLICY_READ, "/patients/1201"));
	cr_expect(may(p, 1201, 4000, POLICY_READ, "/patients/1201/chart"));
	cr_expect(may(p, 1201, 4000, POLICY_READ, "/patients/1201/a/b/c"));
	cr_expect_not(may(p, 1201, 4000, POLICY_READ, "/patients/1202/chart"));
	cr_expect_not(may(p, 1201, 4000, POLICY_READ, "/patients/12011/x"));
	cr_expect_not(may(p, 1201, 4000, POLICY_READ, "/patients/120/x"));
	cr_expect_not(may(p, 1201, 4000, POLICY_WRITE, "/patients/1201/x"));
	/* The folder of all patients: looked up, never listed. */
	cr_expect(may(p, 1201, 4000, POLICY_TRAVERSE, "/patients"));
	cr_expect(may(p, 1201, 4000, POLICY_TRAVERSE, "/"));
	cr_expect_not(may(p, 1201, 4000, POLICY_LIST, "/patients"));
	cr_expect_not(may(p, 1201, 4000, POLICY_TRAVERSE, "/patients/1202"));
	cr_expect_not(may(p, 1201, 4000, POLICY_TRAVERSE, "/billing"));
	policy_free(p);
}

Test(policy, one_star_is_one_component_and_two_are_any_number)
{
	struct policy *p = load("[role:r]\n"
				"read = /a/*/c\n"
				"write = /w/**\n"
				"list = /l/**/z\n"
				"[user:1]\nroles = r\n");

	cr_expect(may(p, 1, 1, POLICY_READ, "/a/b/c"));
	cr_expect(may(p, 1, 1, POLICY_READ, "/a/.hidden/c"));
	cr_expect_not(may(p, 1, 1, POLICY_READ, "/a/c"));
	cr_expect_not(may(p, 1, 1, POLICY_READ, "/a/b/b/c"));
	cr_expect_not(may(p, 1, 1, POLICY_READ, "/a/b/c/d"));
	cr_expect(may(p, 1, 1, POLICY_WRITE, "/w"));
	cr_expect(may(p, 1, 1, POLICY_WRITE, "/w/x"));
	cr_expect(may(p, 1, 1, POLICY_WRITE, "/w/x/y/z"));
	cr_expect_not(may(p, 1, 1, POLICY_WRITE, "/wx"));
	cr_expect_not(may(p, 1, 1, POLICY_WRITE, "/"));
	cr_expect(may(p, 1, 1, POLICY_LIST, "/l/z"));
	cr_expect(may(p, 1, 1, POLICY_LIST, "/l/a/b/z"));
	cr_expect(may(p, 1, 1, POLICY_LIST, "/l/z/z"));
	cr_expect_not(may(p, 1, 1, POLICY_LIST, "/l/z/a"));
	cr_expect_not(may(p, 1, 1, POLICY_LIST, "/l"));
	policy_free(p);
}

Test(policy, several_stars_go_back_as_far_as_they_must)
{
	struct policy *p = load("[role:r]\n"
				"read = /**/x/**/y/*\n"
				"[user:1]\nroles = r\n");

	cr_expect(may(p, 1, 1, POLICY_READ, "/x/y/f"));
	cr_expect(may(p, 1, 1, POLICY_READ, "/a/x/b/x/c/y/f"));
	cr_expect(may(p, 1, 1, POLICY_READ, "/x/x/y/y/f"));
	cr_expect_not(may(p, 1, 1, POLICY_READ, "/x/y"));
	cr_expect_not(may(p, 1, 1, POLICY_READ, "/y/x/f"));
	policy_free(p);
}

Test(policy, the_root_pattern_names_the_root_alone)
{
	struct policy *p = load("[role:r]\nlist = /\n[user:1]\nroles = r\n");

	cr_expect(may(p, 1, 1, POLICY_LIST, "/"));
	cr_expect_not(may(p, 1, 1, POLICY_LIST, "/a"));
	policy_free(p);
}

Test(policy, uid_gid_and_user_expand_for_each_caller)
{
	struct policy *p = load("[role:r]\n"
				"read = /u/${uid}/**, /g/${gid}, /n/${user}\n"
				"write = /mix/p${uid}-${gid}.txt\n"
				"[group:50]\nroles = r\n");
	struct policy_caller c = { .uid = 7, .gid = 50, .user = "ann" };
	struct policy_decision d;

	policy_decide(p, &c, POLICY_READ, "/u/7/x", &d);
	cr_expect(d.allow);
	policy_decide(p, &c, POLICY_READ, "/u/8/x", &d);
	cr_expect_not(d.allow);
	policy_decide(p, &c, POLICY_READ, "/g/50", &d);
	cr_expect(d.allow);
	policy_decide(p, &c, POLICY_READ, "/n/ann", &d);
	cr_expect(d.allow);
	policy_decide(p, &c, POLICY_READ, "/n/bob", &d);
	cr_expect_not(d.allow);
	policy_decide(p, &c, POLICY_WRITE, "/mix/p7-50.txt", &d);
	cr_expect(d.allow);
	policy_decide(p, &c, POLICY_WRITE, "/mix/p7-5.txt", &d);
	cr_expect_not(d.allow);
	/* No name, or one no component could be: ${user} matches nothing. */
	c.user = NULL;
	policy_decide(p, &c, POLICY_READ, "/n/ann", &d);
	cr_expect_not(d.allow);
	policy_decide(p, &c, POLICY_TRAVERSE, "/n", &d);
	cr_expect_not(d.allow);
	c.user = "..";
	policy_decide(p, &c, POLICY_TRAVERSE, "/n", &d);
	cr_expect_not(d.allow);
	policy_free(p);
}

Test(policy, a_supplementary_group_grants_its_roles)
{
	struct policy *p = load("[role:nurse]\nread = /charts/**\n"
				"[group:nurses]\nroles = nurse\n");
	uint32_t groups[] = { 10, 3000, 20 };
	struct policy_caller c = { .uid = 1500, .gid = 1500, .groups = groups,
				   .ngroups = 3 };
	struct policy_decision d;

	policy_decide(p, &c, POLICY_READ, "/charts/a", &d);
	cr_expect(d.allow);
	cr_expect_str_eq(d.grantee, "group:nurses");
	c.ngroups = 1;
	policy_decide(p, &c, POLICY_READ, "/charts/a", &d);
	cr_expect_not(d.allow);
	policy_free(p);
}

Test(policy, users_and_groups_may_be_named)
{
	struct policy *p = load("[role:r]\nread = /a\n"
				"[user:alice]\nroles = r\n"
				"[group:billing]\nroles = r\n");

	cr_expect(may(p, 1001, 1, POLICY_READ, "/a"));
	cr_expect(may(p, 5, 2000, POLICY_READ, "/a"));
	cr_expect_not(may(p, 1002, 1, POLICY_READ, "/a"));
	policy_free(p);
}

Test(policy, root_gets_nothing_implicit_unless_root_is_allowed)
{
	struct policy *p = load("[defaults]\nunmatched = allow\n"
				"[role:r]\nread = /r/**\n"
				"[user:0]\nroles = r\n");
	struct policy *q = load("[defaults]\nroot = allow\n");
	struct policy *none = load("");

	/* unmatched = allow opens to everyone but uid 0. */
	cr_expect(may(p, 5, 5, POLICY_WRITE, "/x"));
	cr_expect_not(may(p, 0, 0, POLICY_WRITE, "/x"));
	cr_expect(may(p, 0, 0, POLICY_READ, "/r/x"));
	cr_expect(may(q, 0, 0, POLICY_WRITE, "/x"));
	cr_expect_not(may(q, 5, 5, POLICY_WRITE, "/x"));
	cr_expect_not(may(none, 0, 0, POLICY_READ, "/"));
	cr_expect_not(may(none, 5, 5, POLICY_LIST, "/"));
	policy_free(p);
	policy_free(q);
	policy_free(none);
}

Test(policy, read_write_and_list_are_apart_and_any_grant_shows_the_name)
{
	struct policy *p = load("[role:r]\nwrite = /w\nread = /r\n"
				"list = /l/**\n[user:1]\nroles = r\n");

	cr_expect_not(may(p, 1, 1, POLICY_READ, "/w"));
	cr_expect_not(may(p, 1, 1, POLICY_WRITE, "/r"));
	cr_expect_not(may(p, 1, 1, POLICY_READ, "/l/x"));
	cr_expect(may(p, 1, 1, POLICY_LIST, "/w"));
	cr_expect(may(p, 1, 1, POLICY_LIST, "/r"));
	cr_expect(may(p, 1, 1, POLICY_TRAVERSE, "/l/x"));
	cr_expect_not(may(p, 1, 1, POLICY_LIST, "/"));
	cr_expect(may(p, 1, 1, POLICY_TRAVERSE, "/"));
	policy_free(p);
}

Test(policy, a_path_not_written_plainly_is_denied)
{
	struct policy *p = load("[defaults]\nunmatched = allow\n");
	const char *bad[] = { "", "a", "a/b", "//", "/a/", "/a//b", "/a/.",
			      "/a/../b", "/..", "/./a" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_not(may(p, 5, 5, POLICY_READ, bad[i]), "%s", bad[i]);
	cr_expect(may(p, 5, 5, POLICY_READ, "/a/..b/.c"));
	policy_free(p);
}

Test(policy, patterns_may_be_apart_by_commas_or_blanks)
{
	struct policy *p = load("[role:r]\nread = /a, /b /c,/d\t/e\n"
				"[user:1]\nroles = r\n");

	for (char c = 'a'; c <= 'e'; c++) {
		char path[] = { '/', c, 0 };

		cr_expect(may(p, 1, 1, POLICY_READ, path), "%s", path);
	}
	policy_free(p);
}

Test(policy, the_decision_names_role_section_pattern_and_lines)
{
	struct policy *p = load(spec_policy);
	struct policy_caller c = { .uid = 1001, .gid = 100 };
	struct policy_decision d;
	char line[256];

	policy_decide(p, &c, POLICY_WRITE, "/patients/7/chart", &d);
	cr_assert(d.allow);
	cr_expect_str_eq(d.role, "physician");
	cr_expect_str_eq(d.grantee, "user:1001");
	cr_expect_eq(d.grantee_line, 15);
	cr_expect_str_eq(d.perm, "write");
	cr_expect_str_eq(d.pattern, "/patients/**");
	cr_expect_eq(d.pattern_line, 7);
	policy_decision_format(&d, line, sizeof(line));
	cr_expect_str_eq(line, "allow: role 'physician' of [user:1001] "
			 "(p.ini:15), write = /patients/** (p.ini:7)");
	c.uid = 1201;
	c.gid = 4000;
	policy_decide(p, &c, POLICY_TRAVERSE, "/patients", &d);
	policy_decision_format(&d, line, sizeof(line));
	cr_expect_str_eq(line, "allow: role 'patient' of [group:4000] "
			 "(p.ini:21), under read = /patients/${uid}/** "
			 "(p.ini:10)");
	policy_decide(p, &c, POLICY_READ, "/billing/x", &d);
	policy_decision_format(&d, line, sizeof(line));
	cr_expect_str_eq(line, "deny: no role grants it; defaults: "
			 "unmatched = deny (p.ini:2)");
	c.uid = 0;
	policy_decide(p, &c, POLICY_READ, "/billing/x", &d);
	policy_decision_format(&d, line, sizeof(line));
	cr_expect_str_eq(line, "deny: no role grants it; defaults: "
			 "root = deny (p.ini:3)");
	policy_free(p);
}

Test(policy, without_defaults_the_built_in_deny_decides)
{
	struct policy *p = load("");
	struct policy_caller c = { .uid = 5, .gid = 5 };
	struct policy_decision d;
	char line[256];

	policy_decide(p, &c, POLICY_LIST, "/", &d);
	policy_decision_format(&d, line, sizeof(line));
	cr_expect_str_eq(line, "deny: no role grants it; defaults: "
			 "unmatched = deny (built in)");
	policy_free(p);
}

Test(policy, the_first_grant_in_the_file_decides)
{
	struct policy *p = load("[role:a]\nread = /x/**\n"
				"[role:b]\nread = /x/y\n"
				"[group:9]\nroles = b\n"
				"[user:1]\nroles = a, b\n");
	struct policy_caller c = { .uid = 1, .gid = 9 };
	struct policy_decision d;

	policy_decide(p, &c, POLICY_READ, "/x/y", &d);
	cr_expect_str_eq(d.role, "b");
	cr_expect_str_eq(d.grantee, "group:9");
	policy_free(p);
}

Test(policy, roles_may_be_granted_before_their_section)
{
	struct policy *p = load("[user:1]\nroles = later\n"
				"[role:later]\nread = /a\n");

	cr_expect(may(p, 1, 1, POLICY_READ, "/a"));
	policy_free(p);
}

Test(policy, comments_bom_and_colons_read_as_in_the_config)
{
	struct policy *p = load("\xef\xbb\xbf# a comment\n"
				"; another\n"
				"[role:r]   ; the role\n"
				"read: /a;b   ; a ';' after a blank\n"
				"[user:1]\r\nroles = r\r\n");

	cr_expect(may(p, 1, 1, POLICY_READ, "/a;b"));
	policy_free(p);
}

Test(policy, text_that_is_not_nul_terminated_is_read_to_its_length)
{
	const char text[] = "[role:r]\nread = /a\n[user:1]\nroles = r\nXX";
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN] = "";

	cr_assert_eq(policy_parse("p.ini", text, sizeof(text) - 3, &fake, &p,
				  err, sizeof(err)), 0, "%s", err);
	cr_expect(may(p, 1, 1, POLICY_READ, "/a"));
	policy_free(p);
}

Test(policy, without_a_resolver_names_do_not_resolve)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN] = "";
	const char text[] = "[role:r]\nread = /a\n[user:alice]\nroles = r\n";

	cr_expect_eq(policy_parse("p.ini", text, strlen(text), NULL, &p, err,
				  sizeof(err)), -EINVAL);
	cr_expect_str_eq(err, "p.ini:3: no user named 'alice'");
}

static int failing_group(void *ctx, const char *name, uint32_t *id)
{
	(void)ctx;
	(void)name;
	(void)id;
	return -EIO;
}

Test(policy, a_resolver_failure_stops_the_parse_with_its_errno)
{
	struct policy_resolver r = { fake_user, failing_group, NULL };
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN] = "";
	const char text[] = "[role:r]\nread = /a\n[group:x]\nroles = r\n";

	cr_expect_eq(policy_parse("p.ini", text, strlen(text), &r, &p, err,
				  sizeof(err)), -EIO);
	cr_expect_null(p);
	cr_expect_str_eq(err, "p.ini:3: cannot look up group 'x': "
			 "Input/output error");
}

Test(policy, it_tells_whether_groups_or_user_names_matter)
{
	struct policy *p = load("[role:r]\nread = /a\n[user:1]\nroles = r\n");
	struct policy *q = load("[role:r]\nread = /h/${user}\n"
				"[group:7]\nroles = r\n");

	cr_expect_not(policy_uses_groups(p));
	cr_expect_not(policy_uses_user(p));
	cr_expect(policy_uses_groups(q));
	cr_expect(policy_uses_user(q));
	policy_free(p);
	policy_free(q);
}

Test(policy, op_names_go_both_ways)
{
	enum policy_op op;

	for (int i = POLICY_READ; i <= POLICY_TRAVERSE; i++) {
		cr_assert_eq(policy_op_parse(policy_op_name(i), &op), 0);
		cr_expect_eq(op, i);
	}
	cr_expect_eq(policy_op_parse("exec", &op), -EINVAL);
}

Test(policy, the_example_policy_passes_and_decides_as_its_comments_say)
{
	size_t len;
	uint8_t *text = tu_read_data("../../conf/policy.example.ini", &len);
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN] = "";
	uint32_t patient[] = { 4000 };
	struct policy_caller pc = { .uid = 1201, .gid = 1201,
				    .groups = patient, .ngroups = 1 };
	struct policy_decision d;

	cr_assert_not_null(text);
	cr_assert_eq(policy_parse("policy.example.ini", (char *)text, len,
				  &fake, &p, err, sizeof(err)), 0, "%s", err);
	cr_expect(may(p, 1001, 1001, POLICY_WRITE, "/patients/1201/chart"));
	cr_expect(may(p, 1300, 3000, POLICY_WRITE, "/patients/1201/notes/n1"));
	cr_expect_not(may(p, 1300, 3000, POLICY_WRITE, "/patients/1201/c"));
	cr_expect(may(p, 1400, 2000, POLICY_LIST, "/patients"));
	cr_expect_not(may(p, 1400, 2000, POLICY_LIST, "/patients/1201"));
	cr_expect_not(may(p, 1400, 2000, POLICY_READ, "/patients/1201/c"));
	cr_expect(may(p, 1005, 1005, POLICY_LIST, "/patients/1201/c"));
	cr_expect_not(may(p, 1005, 1005, POLICY_READ, "/patients/1201/c"));
	cr_expect_not(may(p, 0, 0, POLICY_READ, "/shared/form"));
	policy_decide(p, &pc, POLICY_READ, "/patients/1201/c", &d);
	cr_expect(d.allow);
	policy_decide(p, &pc, POLICY_READ, "/patients/1202/c", &d);
	cr_expect_not(d.allow);
	policy_free(p);
	free(text);
}

Test(policy, a_thousand_rules_load_and_decide)
{
	size_t cap = 1 << 17, n = 0;
	char *text = malloc(cap);
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN] = "";

	cr_assert_not_null(text);
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(text + n, cap - n, "[role:r%d]\n"
				      "read = /d%d/**\n[user:%d]\n"
				      "roles = r%d\n", i, i, 10000 + i, i);
	cr_assert_eq(policy_parse("big.ini", text, n, &fake, &p, err,
				  sizeof(err)), 0, "%s", err);
	cr_expect(may(p, 10999, 1, POLICY_READ, "/d999/x"));
	cr_expect_not(may(p, 10999, 1, POLICY_READ, "/d998/x"));
	policy_free(p);
	free(text);
}

/* Each file under tests/data/policy/bad, its line and reason. */
static const struct bad_case {
	const char *name;
	int line;
	const char *why;
} bad_cases[] = {
	{ "bad_defaults_value", 2, "bad value for 'unmatched': 'maybe' (deny or allow)" },
	{ "bad_role_name", 1, "bad role name 'head nurse'" },
	{ "bad_root_value", 2, "bad value for 'root': 'yes' (deny or allow)" },
	{ "bad_user_name", 3, "bad user name 'al/ice'" },
	{ "control_character", 2, "control character in '/a/\001b'" },
	{ "dot", 2, "'.' in '/patients/./x': a pattern may not step out of its path" },
	{ "dotdot", 2, "'..' in '/patients/../billing/**': a pattern may not step out of its path" },
	{ "duplicate_defaults", 3, "section [defaults] given twice (first at line 1)" },
	{ "duplicate_defaults_key", 4, "'unmatched' given twice (first at line 2)" },
	{ "duplicate_group", 5, "group 3000 given twice (first as [group:nurses] at line 3)" },
	{ "duplicate_permission", 4, "'read' given twice in [role:nurse] (first at line 2); list its patterns in one line" },
	{ "duplicate_role", 4, "section [role:nurse] given twice (first at line 1)" },
	{ "duplicate_roles_key", 5, "'roles' given twice (first at line 4)" },
	{ "duplicate_user_by_name", 5, "user 1001 given twice (first as [user:1001] at line 3)" },
	{ "empty_component", 2, "empty component in '/a//b'" },
	{ "empty_in_list", 2, "empty pattern in 'read'" },
	{ "empty_role_name", 1, "bad role name ''" },
	{ "empty_roles", 4, "empty role name in 'roles'" },
	{ "empty_value", 2, "empty pattern in 'read'" },
	{ "empty_variable", 2, "unknown variable '${}' in '/p/${}' (${uid}, ${gid} or ${user})" },
	{ "id_out_of_range", 3, "no user named '4294967295'" },
	{ "key_outside_section", 2, "'read' outside a section" },
	{ "no_closing_bracket", 3, "syntax error: no ']'" },
	{ "no_roles", 4, "[user:1001] grants no role: 'roles =' missing" },
	{ "nul_byte", 2, "NUL byte in the line" },
	{ "relative", 3, "pattern 'patients/**' is relative: it starts with '/'" },
	{ "role_named_twice", 4, "role 'staff' named twice" },
	{ "star_inside", 2, "'a**b' in '/patients/a**b': '*' and '**' stand alone" },
	{ "star_suffix", 2, "'x*' in '/patients/x*': '*' and '**' stand alone" },
	{ "syntax_error", 2, "syntax error" },
	{ "text_after_bracket", 1, "syntax error after ']'" },
	{ "trailing_comma", 2, "empty pattern in 'write'" },
	{ "trailing_slash", 2, "empty component in '/a/'" },
	{ "triple_star", 2, "'***' in '/patients/***': '*' and '**' stand alone" },
	{ "unknown_group", 3, "no group named 'wizards'" },
	{ "unknown_key_in_defaults", 2, "unknown key 'fallback' in [defaults]" },
	{ "unknown_key_in_user", 4, "unknown key 'role' in [user:1001] (roles)" },
	{ "unknown_permission", 3, "unknown permission 'exec' in [role:staff] (read, write or list)" },
	{ "unknown_role", 4, "unknown role 'ghost'" },
	{ "unknown_section", 4, "unknown section [admin]" },
	{ "unknown_section_kind", 3, "unknown section [team:staff]" },
	{ "unknown_user", 3, "no user named 'mallory'" },
	{ "unknown_variable", 2, "unknown variable '${home}' in '/patients/${home}/**' (${uid}, ${gid} or ${user})" },
	{ "unterminated_variable", 2, "'${' without '}' in '/patients/${uid'" },
};

#define NBAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

Test(policy, every_malformed_file_is_refused_at_its_line)
{
	for (size_t i = 0; i < NBAD; i++) {
		const struct bad_case *b = &bad_cases[i];
		char rel[128], name[128], want[POLICY_ERR_LEN];
		char err[POLICY_ERR_LEN] = "";
		struct policy *p = NULL;
		uint8_t *text;
		size_t len;
		int rc;

		snprintf(rel, sizeof(rel), "policy/bad/%s.ini", b->name);
		snprintf(name, sizeof(name), "%s.ini", b->name);
		text = tu_read_data(rel, &len);
		cr_assert_not_null(text, "%s", rel);
		rc = policy_parse(name, (char *)text, len, &fake, &p, err,
				  sizeof(err));
		snprintf(want, sizeof(want), "%s:%d: %s", name, b->line,
			 b->why);
		cr_expect_eq(rc, -EINVAL, "%s: %d", name, rc);
		cr_expect_null(p, "%s", name);
		cr_expect_str_eq(err, want, "%s", name);
		policy_free(p);
		free(text);
	}
}

/* A file in the folder without a row would be a test that never ran. */
Test(policy, the_table_names_every_file_in_the_bad_folder)
{
	DIR *d = opendir(PHIFS_TEST_DATA "/policy/bad");
	struct dirent *e;
	size_t files = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		bool found = false;

		if (e->d_name[0] == '.')
			continue;
		files++;
		for (size_t i = 0; i < NBAD && n > 4; i++)
			found |= strlen(bad_cases[i].name) == n - 4 &&
				 !strncmp(bad_cases[i].name, e->d_name, n - 4);
		cr_expect(found, "%s has no row", e->d_name);
	}
	closedir(d);
	cr_expect_eq(files, NBAD);
	cr_expect_geq(NBAD, 30);
}

Test(policy, the_spec_examples_refusals_read_as_said)
{
	refused("[role:r]\nread = /a/../b\n",
		"p.ini:2: '..' in '/a/../b': a pattern may not step out of "
		"its path");
	refused("[role:r]\nread = /a/***\n",
		"p.ini:2: '***' in '/a/***': '*' and '**' stand alone");
	refused("[role:r]\nread = /${x}\n",
		"p.ini:2: unknown variable '${x}' in '/${x}' (${uid}, ${gid} "
		"or ${user})");
}
