/*
 * test_mount_policy.c — an access policy enforced by a root daemon with
 * allow_other: forked children take a uid, a gid and supplementary groups
 * (setgroups, setresgid, setresuid) and open, create, unlink, mkdir,
 * rename, link and truncate on paths their roles allow and on paths they
 * do not; a denial is EACCES.  uid 0 is denied under root = deny.  The
 * kernel's caches: by default every lookup and stat reaches the policy;
 * with --policy-cache one user's stat is answered from what another
 * looked up, but never an open.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountutil.h"

TestSuite(mount_policy, .fini = mu_cleanup_all, .timeout = 120);

#define PHYS 5001		/* [user:5001]: physician */
#define NURSE 5002		/* nurse through supplementary group 5300 */
#define BILL 5003		/* billing through its primary group 5200 */
#define PAT 5101		/* patient through group 5400 */
#define STRANGER 5999		/* no role */

static const char policy_text[] =
	"[defaults]\n"
	"unmatched = deny\n"
	"root = %s\n"
	"[role:physician]\n"
	"read = /patients/**\n"
	"write = /patients/**\n"
	"[role:nurse]\n"
	"read = /patients/**\n"
	"write = /patients/*/notes/**\n"
	"[role:billing]\n"
	"read = /billing/**\n"
	"write = /billing/**\n"
	"[role:patient]\n"
	"read = /patients/${uid}/**\n"
	"[user:5001]\n"
	"roles = physician\n"
	"[group:5300]\n"
	"roles = nurse\n"
	"[group:5200]\n"
	"roles = billing\n"
	"[group:5400]\n"
	"roles = patient\n";

enum op { OPEN_R, OPEN_W, CREATE, UNLINK, MKDIR, RMDIR, RENAME, LINK,
	  TRUNCATE, SYMLINK, TMPFILE, STAT };

/* A temporary file: created, unlinked, then used through its fd. */
static int tmpfile_op(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600), rc = 0;

	if (fd < 0)
		return errno;
	if (unlink(path) || write(fd, "scratch", 7) != 7 || fstat(fd, &st) ||
	    ftruncate(fd, 3) || fstat(fd, &st))
		rc = errno;
	else if (st.st_size != 3)
		rc = 200;
	close(fd);
	return rc;
}

/* stat(path): its errno, or 0 when it shows the 6-byte record. */
static int stat_op(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return errno;
	return st.st_size == 6 ? 0 : 201;
}

struct who {
	uid_t uid;
	gid_t gid;
	gid_t groups[2];
	int ngroups;
};

static const struct who phys = { PHYS, PHYS, { 0 }, 0 };
static const struct who nurse = { NURSE, NURSE, { 5300 }, 1 };
static const struct who nurse_alone = { NURSE, NURSE, { 0 }, 0 };
static const struct who bill = { BILL, 5200, { 0 }, 0 };
static const struct who pat = { PAT, PAT, { 5400 }, 1 };
static const struct who stranger = { STRANGER, STRANGER, { 0 }, 0 };

/* The operation in the child: 0 or its errno. */
static int do_op(enum op op, const char *a, const char *b)
{
	int fd, rc = 0;

	switch (op) {
	case OPEN_R:
	case OPEN_W:
	case CREATE:
		fd = open(a, op == OPEN_R ? O_RDONLY : op == OPEN_W ? O_WRONLY :
			  O_WRONLY | O_CREAT | O_EXCL, 0666);
		if (fd < 0)
			return errno;
		close(fd);
		return 0;
	case UNLINK:
		rc = unlink(a);
		break;
	case MKDIR:
		rc = mkdir(a, 0777);
		break;
	case RMDIR:
		rc = rmdir(a);
		break;
	case RENAME:
		rc = rename(a, b);
		break;
	case LINK:
		rc = link(a, b);
		break;
	case TRUNCATE:
		rc = truncate(a, 1);
		break;
	case SYMLINK:
		rc = symlink(b, a);
		break;
	case TMPFILE:
		return tmpfile_op(a);
	case STAT:
		return stat_op(a);
	}
	return rc ? errno : 0;
}

/* Runs op as w in a child; its result, 0 or an errno. */
static int as(const struct who *w, enum op op, const char *a, const char *b)
{
	pid_t pid = fork();
	int st;

	cr_assert(pid >= 0);
	if (pid == 0) {
		if (setgroups((size_t)w->ngroups, w->groups) ||
		    setresgid(w->gid, w->gid, w->gid) ||
		    setresuid(w->uid, w->uid, w->uid))
			_exit(250);
		_exit(do_op(op, a, b));
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_neq(WEXITSTATUS(st), 250, "cannot become uid %u",
		      w->uid);
	return WEXITSTATUS(st);
}

/*
 * Mounts v with the policy (root = root_rule) and allow_other, and
 * option (or NULL) after them.
 */
static void mount_with_policy_and(struct mu_vol *v, const char *root_rule,
				  const char *option)
{
	char path[256], text[sizeof(policy_text) + 16];
	const char *extra[] = { "-o", "allow_other", "--policy", path, option,
				NULL };
	FILE *f;

	snprintf(path, sizeof(path), "%s/policy.ini", v->dir);
	snprintf(text, sizeof(text), policy_text, root_rule);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
	/* Others must reach the mount.  The root's mode is its folder
	 * record's: set through a mount without the policy, which root's
	 * rule might deny. */
	cr_assert_eq(chmod(v->dir, 0755), 0);
	mu_mount(v);
	cr_assert_eq(chmod(v->mnt, 0777), 0);
	mu_unmount(v);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 0, "%s",
		     v->err);
}

static void mount_with_policy(struct mu_vol *v, const char *root_rule)
{
	mount_with_policy_and(v, root_rule, NULL);
}

static void make_dir(const struct mu_vol *v, const char *rel)
{
	cr_assert_eq(mkdir(mu_m(v, rel), 0777), 0, "%s: %s", rel,
		     strerror(errno));
}

static void make_file(const struct mu_vol *v, const char *rel)
{
	int fd = open(mu_m(v, rel), O_WRONLY | O_CREAT | O_EXCL, 0666);

	cr_assert(fd >= 0, "%s: %s", rel, strerror(errno));
	cr_assert_eq(write(fd, "record", 6), 6);
	cr_assert_eq(close(fd), 0);
}

/* One row of the matrix. */
struct row {
	const struct who *w;
	enum op op;
	const char *a, *b;	/* in the mount */
	int want;		/* 0 or the errno */
};

static const struct row matrix[] = {
	/* open by access mode */
	{ &phys, OPEN_R, "patients/5101/chart", NULL, 0 },
	{ &phys, OPEN_W, "patients/5101/chart", NULL, 0 },
	{ &phys, OPEN_R, "billing/inv", NULL, EACCES },
	{ &nurse, OPEN_R, "patients/5102/chart", NULL, 0 },
	{ &nurse, OPEN_W, "patients/5102/chart", NULL, EACCES },
	{ &nurse, OPEN_W, "patients/5101/notes/n1", NULL, 0 },
	{ &nurse_alone, OPEN_R, "patients/5102/chart", NULL, EACCES },
	{ &bill, OPEN_R, "billing/inv", NULL, 0 },
	{ &bill, OPEN_W, "billing/inv", NULL, 0 },
	{ &bill, OPEN_R, "patients/5101/chart", NULL, EACCES },
	{ &pat, OPEN_R, "patients/5101/chart", NULL, 0 },
	{ &pat, OPEN_R, "patients/5102/chart", NULL, EACCES },
	{ &pat, OPEN_W, "patients/5101/chart", NULL, EACCES },
	{ &stranger, OPEN_R, "patients/5101/chart", NULL, EACCES },
	{ &stranger, OPEN_R, "billing/inv", NULL, EACCES },
	/* create */
	{ &phys, CREATE, "patients/5101/new1", NULL, 0 },
	{ &phys, CREATE, "billing/new2", NULL, EACCES },
	{ &nurse, CREATE, "patients/5101/notes/n2", NULL, 0 },
	{ &nurse, CREATE, "patients/5101/new3", NULL, EACCES },
	{ &pat, CREATE, "patients/5101/new4", NULL, EACCES },
	{ &bill, CREATE, "billing/new5", NULL, 0 },
	/* unlink */
	{ &phys, UNLINK, "patients/5102/del1", NULL, 0 },
	{ &nurse, UNLINK, "patients/5102/del2", NULL, EACCES },
	{ &pat, UNLINK, "patients/5101/del3", NULL, EACCES },
	{ &bill, UNLINK, "billing/del4", NULL, 0 },
	{ &bill, UNLINK, "patients/5102/del2", NULL, EACCES },
	/* mkdir, rmdir */
	{ &phys, MKDIR, "patients/5101/d1", NULL, 0 },
	{ &bill, MKDIR, "patients/d2", NULL, EACCES },
	{ &stranger, MKDIR, "billing/d3", NULL, EACCES },
	{ &nurse, MKDIR, "patients/5101/notes/d4", NULL, 0 },
	{ &nurse, RMDIR, "patients/5101/d1", NULL, EACCES },
	{ &phys, RMDIR, "patients/5101/d1", NULL, 0 },
	/* rename: write on both ends */
	{ &phys, RENAME, "patients/5101/r1", "patients/5102/r1", 0 },
	{ &phys, RENAME, "patients/5101/r2", "billing/r2", EACCES },
	{ &bill, RENAME, "billing/r3", "patients/5101/r3", EACCES },
	{ &nurse, RENAME, "patients/5101/notes/n1", "patients/5101/n1",
	  EACCES },
	{ &nurse, RENAME, "patients/5101/r2", "patients/5101/notes/r2",
	  EACCES },
	{ &bill, RENAME, "billing/r3", "billing/r4", 0 },
	/* link: read and write on the source, write on the new name */
	{ &phys, LINK, "patients/5101/chart", "billing/l1", EACCES },
	{ &bill, LINK, "billing/inv", "patients/5101/l2", EACCES },
	{ &bill, LINK, "billing/inv", "billing/l3", 0 },
	/* truncate, symlink */
	{ &nurse, TRUNCATE, "patients/5102/chart", NULL, EACCES },
	{ &phys, TRUNCATE, "patients/5102/chart", NULL, 0 },
	{ &bill, SYMLINK, "billing/s1", "/etc/hostname", 0 },
	{ &pat, SYMLINK, "patients/5101/s2", "/etc/hostname", EACCES },
	/* an unlinked file stays usable through its fd by its opener */
	{ &phys, TMPFILE, "patients/5101/tmp", NULL, 0 },
};

Test(mount_policy, each_role_reaches_what_it_is_granted_and_no_more)
{
	struct mu_vol *v;
	char a[256], b[256];
	int got;

	mu_require_fuse();
	if (geteuid() != 0)
		mu_skip("needs root: the children switch uid and groups");
	v = mu_vol_new(0);
	mount_with_policy(v, "allow");
	umask(0);
	/* root = allow: the test itself lays out the tree. */
	make_dir(v, "patients");
	make_dir(v, "patients/5101");
	make_dir(v, "patients/5101/notes");
	make_dir(v, "patients/5102");
	make_dir(v, "billing");
	make_file(v, "patients/5101/chart");
	make_file(v, "patients/5102/chart");
	make_file(v, "patients/5101/notes/n1");
	make_file(v, "billing/inv");
	make_file(v, "patients/5102/del1");
	make_file(v, "patients/5102/del2");
	make_file(v, "patients/5101/del3");
	make_file(v, "billing/del4");
	make_file(v, "patients/5101/r1");
	make_file(v, "patients/5101/r2");
	make_file(v, "billing/r3");

	for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++) {
		const struct row *r = &matrix[i];

		snprintf(a, sizeof(a), "%s", mu_m(v, r->a));
		if (r->b && r->op != SYMLINK)
			snprintf(b, sizeof(b), "%s", mu_m(v, r->b));
		else if (r->b)
			snprintf(b, sizeof(b), "%s", r->b);
		got = as(r->w, r->op, a, r->b ? b : NULL);
		cr_expect_eq(got, r->want, "row %zu: uid %u op %d %s: %s, "
			     "want %s", i, r->w->uid, r->op, r->a,
			     strerror(got), strerror(r->want));
	}
	/* What was refused left the tree as it was. */
	cr_expect_eq(access(mu_m(v, "patients/5102/del2"), F_OK), 0);
	cr_expect_eq(access(mu_m(v, "billing/new2"), F_OK), -1);
	cr_expect_eq(access(mu_m(v, "patients/5101/r2"), F_OK), 0);
	cr_expect_eq(access(mu_m(v, "billing/l1"), F_OK), -1);
	cr_expect_eq(access(mu_m(v, "patients/5102/r1"), F_OK), 0);

	/*
	 * A hard link across areas (root may make it here): each of the
	 * file's paths must grant, so neither side's role opens it now.
	 */
	cr_assert_eq(link(mu_m(v, "patients/5101/chart"),
			  mu_m(v, "billing/hl")), 0, "%s", strerror(errno));
	snprintf(a, sizeof(a), "%s", mu_m(v, "billing/hl"));
	cr_expect_eq(as(&bill, OPEN_R, a, NULL), EACCES);
	snprintf(a, sizeof(a), "%s", mu_m(v, "patients/5101/chart"));
	cr_expect_eq(as(&phys, OPEN_R, a, NULL), EACCES);
	cr_assert_eq(unlink(mu_m(v, "billing/hl")), 0);
	cr_expect_eq(as(&phys, OPEN_R, a, NULL), 0);
	mu_unmount(v);
}

/* The one policy op a row's operation needs, or NULL for several. */
static const char *explain_op(enum op op)
{
	switch (op) {
	case OPEN_R:
		return "read";
	case OPEN_W:
	case CREATE:
	case UNLINK:
	case MKDIR:
	case RMDIR:
	case TRUNCATE:
	case SYMLINK:
		return "write";
	default:
		return NULL;
	}
}

/*
 * phifsctl policy explain on the matrix's rows: what it says of each is
 * what the mount did (the test above holds the mount to the same rows).
 */
Test(mount_policy, policy_explain_agrees_with_the_matrix)
{
	char dir[] = "/tmp/phifs-explain-XXXXXX", path[64], cmd[512];
	char text[sizeof(policy_text) + 16], out[512], groups[32];
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/policy.ini", dir);
	snprintf(text, sizeof(text), policy_text, "allow");
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
	for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++) {
		const struct row *r = &matrix[i];
		const char *op = explain_op(r->op);

		if (!op)
			continue;
		snprintf(groups, sizeof(groups), "%u", r->w->groups[0]);
		snprintf(cmd, sizeof(cmd), "%s/phifsctl policy explain %s "
			 "--uid %u --gid %u --groups '%s' --op %s /%s",
			 PHIFS_BIN_DIR, path, r->w->uid, r->w->gid,
			 r->w->ngroups ? groups : "", op, r->a);
		f = popen(cmd, "r");
		cr_assert_not_null(f);
		cr_assert_not_null(fgets(out, sizeof(out), f), "%s", cmd);
		cr_assert_eq(pclose(f), 0, "%s", cmd);
		cr_expect_eq(strncmp(out, r->want ? "deny:" : "allow:",
				     r->want ? 5 : 6), 0,
			     "row %zu: %s: %s", i, cmd, out);
	}
	unlink(path);
	rmdir(dir);
}

Test(mount_policy, uid_0_is_denied_under_root_deny)
{
	struct mu_vol *v;
	char chart[256];
	int fd;

	mu_require_fuse();
	if (geteuid() != 0)
		mu_skip("needs root: the children switch uid and groups");
	v = mu_vol_new(0);
	mount_with_policy(v, "deny");
	umask(0);
	cr_assert_eq(as(&phys, MKDIR, mu_m(v, "patients"), NULL), 0);
	snprintf(chart, sizeof(chart), "%s", mu_m(v, "patients/chart"));
	cr_assert_eq(as(&phys, CREATE, chart, NULL), 0);
	cr_expect_eq(as(&phys, OPEN_R, chart, NULL), 0);
	fd = open(chart, O_RDONLY);
	cr_expect_eq(fd, -1, "root opened a chart under root = deny");
	cr_expect_eq(errno, EACCES);
	if (fd >= 0)
		close(fd);
	cr_expect_eq(mkdir(mu_m(v, "root-was-here"), 0777), -1);
	cr_expect_eq(errno, EACCES);
	cr_expect_eq(unlink(chart), -1);
	cr_expect_eq(errno, EACCES);
	mu_unmount(v);
}

Test(mount_policy, an_invalid_policy_mounts_nothing)
{
	static const char bad[] = "[role:r]\nread = /a/../b\n";
	struct mu_vol *v;
	char path[256];
	const char *extra[] = { "--policy", path, NULL };
	FILE *f;

	mu_require_fuse();
	v = mu_vol_new(0);
	snprintf(path, sizeof(path), "%s/bad.ini", v->dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fputs(bad, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
	cr_expect_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 2, "%s",
		     v->err);
	cr_expect(strstr(v->err, "bad.ini:2: '..' in '/a/../b'"), "%s",
		  v->err);
	cr_expect_not(mu_is_mounted(v->mnt));
}

/*
 * The physician stats a chart it may read; billing, which holds nothing
 * under /patients, stats it right after, then tries to open it.  Both as
 * forked children of their own uid.
 */
static void stat_after_another(bool cache)
{
	struct mu_vol *v;
	char chart[256];

	mu_require_fuse();
	if (geteuid() != 0)
		mu_skip("needs root: the children switch uid and groups");
	v = mu_vol_new(0);
	mount_with_policy_and(v, "allow", cache ? "--policy-cache" : NULL);
	umask(0);
	make_dir(v, "patients");
	make_dir(v, "patients/5101");
	make_file(v, "patients/5101/chart");
	snprintf(chart, sizeof(chart), "%s", mu_m(v, "patients/5101/chart"));
	cr_expect_eq(as(&phys, STAT, chart, NULL), 0);
	/*
	 * Strict: the kernel asks the daemon again, which refuses billing.
	 * Cached: the kernel answers from the names and attributes the
	 * physician's lookup left, without asking: billing sees the chart's
	 * size.
	 */
	cr_expect_eq(as(&bill, STAT, chart, NULL), cache ? 0 : EACCES);
	/* Never its contents: every open reaches the policy. */
	cr_expect_eq(as(&bill, OPEN_R, chart, NULL), EACCES);
	mu_unmount(v);
}

Test(mount_policy, by_default_each_users_stat_is_judged)
{
	stat_after_another(false);
}

Test(mount_policy, with_policy_cache_a_stat_is_answered_from_anothers_lookup)
{
	stat_after_another(true);
}
