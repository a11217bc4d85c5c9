/*
 * test_access.c — the policy as the operations core's allow hook, without
 * FUSE: the permissions each operation needs, supplementary groups asked
 * of the caller, a hard link judged on each of its names, a rename on
 * both ends, a file no name reaches any more, and a policy swapped under
 * requests that each judge by one policy whole.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/access.h"
#include "phifs/crypto.h"
#include "phifs/keys.h"
#include "phifs/vfs.h"
#include "testutil.h"
#include "volfixture.h"

static char dir[64], keyfile[96];
static struct volume *vol;
static struct vfs *v;
static struct access *acc;

static const char policy_text[] =
	"[defaults]\nroot = allow\n"
	"[role:clinic]\nread = /p/**\nwrite = /p/**\n"
	"[role:billing]\nread = /b/**\nwrite = /b/**\n"
	"[user:100]\nroles = clinic\n"
	"[group:300]\nroles = billing\n";

static void make_volume(void)
{
	vol = vf_make(dir, keyfile, sizeof(keyfile));
}

static void setup(void)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN];

	strcpy(dir, "/tmp/phifs-access-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	make_volume();
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	cr_assert_eq(policy_parse("t.ini", policy_text, strlen(policy_text),
				  NULL, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(access_new(v, p, &acc), 0);
	vfs_set_hooks(v, &access_hooks, acc);
}

static void teardown(void)
{
	char cmd[200];

	vfs_free(v);
	access_free(acc);
	volume_close(vol);
	snprintf(cmd, sizeof(cmd), "rm -rf %.60s %.90s", dir, keyfile);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(access, .init = setup, .fini = teardown);

/* A caller whose supplementary groups are n of g, counted when asked. */
struct who {
	struct vfs_caller c;
	struct vfs_groups cache;
	gid_t g[2];
	int n;
	int asked;
};

static int who_groups(void *ctx, gid_t *out, size_t max)
{
	struct who *w = ctx;

	w->asked++;
	cr_assert_geq(max, (size_t)w->n);
	memcpy(out, w->g, (size_t)w->n * sizeof(gid_t));
	return w->n;
}

static void who_init(struct who *w, uid_t uid, gid_t gid, gid_t group)
{
	memset(w, 0, sizeof(*w));
	w->c.uid = uid;
	w->c.gid = gid;
	w->c.get_groups = who_groups;
	w->c.ctx = w;
	w->c.groups = &w->cache;
	w->cache.n = -1;
	w->g[0] = group;
	w->n = group ? 1 : 0;
}

static struct who root_, clinic, biller, nobody;

static void callers(void)
{
	who_init(&root_, 0, 0, 0);
	who_init(&clinic, 100, 100, 0);
	who_init(&biller, 200, 200, 300);	/* billing: supplementary */
	who_init(&nobody, 400, 400, 0);
}

static uint64_t mkdir_as(struct who *w, uint64_t parent, const char *name)
{
	struct vfs_entry e;

	cr_assert_eq(vfs_mkdir(v, &w->c, parent, name, 0777, &e), 0);
	return e.ino;
}

static uint64_t create_as(struct who *w, uint64_t parent, const char *name)
{
	struct vfs_entry e;
	struct vfs_file *f;

	cr_assert_eq(vfs_create(v, &w->c, parent, name, 0666, O_WRONLY, &e,
				&f), 0);
	cr_assert_eq(vfs_release(v, &w->c, f), 0);
	return e.ino;
}

static int open_as(struct who *w, uint64_t ino, int flags)
{
	struct vfs_file *f = NULL;
	struct vfs_hint hint = { 0 };
	int rc = vfs_open(v, &w->c, ino, flags, &f, &hint);

	vfs_opened(v, &hint);
	if (!rc)
		cr_assert_eq(vfs_release(v, &w->c, f), 0);
	return rc;
}

Test(access, each_role_opens_its_own_area_only)
{
	uint64_t p, b, chart, inv;

	callers();
	p = mkdir_as(&root_, VFS_ROOT, "p");
	b = mkdir_as(&root_, VFS_ROOT, "b");
	chart = create_as(&clinic, p, "chart");
	inv = create_as(&biller, b, "inv");
	cr_expect_eq(open_as(&clinic, chart, O_RDWR), 0);
	cr_expect_eq(open_as(&clinic, inv, O_RDONLY), -EACCES);
	cr_expect_eq(open_as(&biller, inv, O_RDWR), 0);
	cr_expect_eq(open_as(&biller, chart, O_RDONLY), -EACCES);
	cr_expect_eq(open_as(&nobody, chart, O_RDONLY), -EACCES);
	cr_expect(biller.asked > 0, "the groups were never asked for");
}

Test(access, without_its_supplementary_group_billing_gets_nothing)
{
	uint64_t b, inv;

	callers();
	b = mkdir_as(&root_, VFS_ROOT, "b");
	inv = create_as(&root_, b, "inv");
	biller.n = 0;
	cr_expect_eq(open_as(&biller, inv, O_RDONLY), -EACCES);
}

Test(access, a_hard_link_grants_only_what_every_name_allows)
{
	uint64_t p, b, chart;
	struct vfs_entry e;

	callers();
	p = mkdir_as(&root_, VFS_ROOT, "p");
	b = mkdir_as(&root_, VFS_ROOT, "b");
	chart = create_as(&root_, p, "chart");
	/* Neither role may make it: read and write on the file and on the
	 * new name are needed. */
	cr_expect_eq(vfs_link(v, &clinic.c, chart, b, "l", &e), -EACCES);
	cr_expect_eq(vfs_link(v, &biller.c, chart, b, "l", &e), -EACCES);
	cr_assert_eq(vfs_link(v, &root_.c, chart, b, "l", &e), 0);
	vfs_forget(v, e.ino, 1);
	cr_expect_eq(open_as(&clinic, chart, O_RDONLY), -EACCES);
	cr_expect_eq(open_as(&biller, chart, O_RDONLY), -EACCES);
	cr_assert_eq(vfs_unlink(v, &root_.c, b, "l"), 0);
	cr_expect_eq(open_as(&clinic, chart, O_RDONLY), 0);
}

Test(access, a_refusal_names_the_permission_the_path_and_the_rule)
{
	struct vfs_req r = { .op = VFS_OPEN, .flags = O_RDONLY };
	char why[512] = "";
	uint64_t p, b, chart;

	callers();
	p = mkdir_as(&root_, VFS_ROOT, "p");
	b = mkdir_as(&root_, VFS_ROOT, "b");
	chart = create_as(&root_, p, "chart");
	r.ino = chart;
	cr_expect_eq(access_check(acc, &biller.c, &r, why, sizeof(why)),
		     -EACCES);
	cr_expect_str_eq(why, "read /p/chart: no role grants it; defaults: "
			 "unmatched = deny (built in)");
	/* A hard link is judged on every name: the one that refused is
	 * named, not the one asked by. */
	{
		struct vfs_entry e;

		cr_assert_eq(vfs_link(v, &root_.c, chart, b, "l", &e), 0);
		r.ino = e.ino;
		vfs_forget(v, e.ino, 1);
	}
	why[0] = 0;
	cr_expect_eq(access_check(acc, &clinic.c, &r, why, sizeof(why)),
		     -EACCES);
	cr_expect(strstr(why, "read /b/l: "), "%s", why);
	cr_expect_eq(access_check(acc, &root_.c, &r, why, sizeof(why)), 0);
}

/*
 * Allocations made by this thread while counting is on: the test binary
 * is linked with --wrap for malloc, calloc and realloc.
 */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
static _Thread_local bool counting;
static _Thread_local unsigned allocs;

void *__wrap_malloc(size_t n)
{
	allocs += counting;
	return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	allocs += counting;
	return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	allocs += counting;
	return __real_realloc(p, n);
}

/* Issue 14, item 8: a decision allocates nothing, hard links and all. */
Test(access, a_decision_allocates_nothing)
{
	struct vfs_req r = { .op = VFS_OPEN, .flags = O_RDWR };
	struct vfs_entry e;
	char why[512];
	uint64_t p, b;

	callers();
	p = mkdir_as(&root_, VFS_ROOT, "p");
	b = mkdir_as(&root_, VFS_ROOT, "b");
	r.ino = create_as(&root_, p, "chart");
	cr_assert_eq(vfs_link(v, &root_.c, r.ino, b, "l", &e), 0);
	vfs_forget(v, e.ino, 1);
	counting = true;
	cr_expect_eq(access_check(acc, &clinic.c, &r, why, sizeof(why)),
		     -EACCES);
	cr_expect_eq(access_check(acc, &root_.c, &r, NULL, 0), 0);
	counting = false;
	cr_expect_eq(allocs, 0, "%u allocations", allocs);
}

Test(access, a_rename_needs_write_on_both_ends)
{
	uint64_t p, b;

	callers();
	p = mkdir_as(&root_, VFS_ROOT, "p");
	b = mkdir_as(&root_, VFS_ROOT, "b");
	create_as(&root_, p, "x");
	cr_expect_eq(vfs_rename(v, &clinic.c, p, "x", b, "x", 0), -EACCES);
	cr_expect_eq(vfs_rename(v, &biller.c, p, "x", b, "x", 0), -EACCES);
	cr_expect_eq(vfs_rename(v, &clinic.c, p, "x", p, "y", 0), 0);
}

Test(access, lookup_of_an_ancestor_is_a_traverse)
{
	struct vfs_entry e;
	struct stat st;
	uint64_t p;

	callers();
	p = mkdir_as(&root_, VFS_ROOT, "p");
	mkdir_as(&root_, VFS_ROOT, "b");
	cr_expect_eq(vfs_lookup(v, &clinic.c, VFS_ROOT, "p", &e), 0);
	vfs_forget(v, e.ino, 1);
	cr_expect_eq(vfs_getattr(v, &clinic.c, VFS_ROOT, &st), 0);
	cr_expect_eq(vfs_getattr(v, &clinic.c, p, &st), 0);
	cr_expect_eq(vfs_lookup(v, &clinic.c, VFS_ROOT, "b", &e), -EACCES);
	cr_expect_eq(vfs_lookup(v, &nobody.c, VFS_ROOT, "p", &e), -EACCES);
}

Test(access, a_file_no_name_reaches_keeps_its_attributes_for_its_opener)
{
	struct vfs_file *f;
	struct vfs_entry e;
	struct stat st;
	uint64_t p;

	callers();
	p = mkdir_as(&root_, VFS_ROOT, "p");
	cr_assert_eq(vfs_create(v, &clinic.c, p, "tmp", 0600, O_RDWR, &e,
				&f), 0);
	cr_assert_eq(vfs_unlink(v, &clinic.c, p, "tmp"), 0);
	cr_expect_eq(vfs_getattr(v, &clinic.c, e.ino, &st), 0);
	st.st_size = 0;
	cr_expect_eq(vfs_setattr(v, &clinic.c, e.ino, &st, VFS_SET_SIZE, f),
		     0);
	cr_expect_eq(vfs_setattr(v, &clinic.c, e.ino, &st, VFS_SET_SIZE,
				 NULL), -EACCES);
	cr_assert_eq(vfs_release(v, &clinic.c, f), 0);
	vfs_forget(v, e.ino, 1);
}

Test(access, each_operation_needs_what_the_docs_say)
{
	static const struct {
		enum vfs_op op;
		int flags;
		const char *want;	/* op letters; '2' marks the second */
	} table[] = {
		{ VFS_LOOKUP, 0, "t" },
		{ VFS_GETATTR, 0, "T" },
		{ VFS_OPENDIR, 0, "L" },
		{ VFS_LISTXATTR, 0, "L" },
		{ VFS_READLINK, 0, "R" },
		{ VFS_GETXATTR, 0, "R" },
		{ VFS_SETATTR, 0, "W" },
		{ VFS_SETXATTR, 0, "W" },
		{ VFS_REMOVEXATTR, 0, "W" },
		{ VFS_MKNOD, 0, "w" },
		{ VFS_MKDIR, 0, "w" },
		{ VFS_SYMLINK, 0, "w" },
		{ VFS_UNLINK, 0, "w" },
		{ VFS_RMDIR, 0, "w" },
		{ VFS_RENAME, 0, "w2w" },
		{ VFS_LINK, 0, "RW2w" },
		{ VFS_OPEN, O_RDONLY, "R" },
		{ VFS_OPEN, O_WRONLY, "W" },
		{ VFS_OPEN, O_RDWR, "RW" },
		{ VFS_OPEN, O_RDONLY | O_TRUNC, "RW" },
		{ VFS_CREATE, O_WRONLY, "w" },
		{ VFS_CREATE, O_RDWR, "rw" },
		{ VFS_READ, 0, "" },
		{ VFS_WRITE, 0, "" },
		{ VFS_FSYNC, 0, "" },
		{ VFS_RELEASE, 0, "" },
		{ VFS_READDIR, 0, "" },
		{ VFS_FSYNCDIR, 0, "" },
		{ VFS_RELEASEDIR, 0, "" },
		{ VFS_STATFS, 0, "" },
	};
	/* Lower case: on the name in its folder; upper: the whole object. */
	static const char letters[] = "rwlt";

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct vfs_req r = { .op = table[i].op,
				     .flags = table[i].flags };
		struct access_need n;
		char got[16] = "";
		size_t k = 0;

		access_needs(&r, &n);
		for (int j = 0; j < n.n; j++) {
			char c = letters[n.check[j].op];

			if (n.check[j].second)
				got[k++] = '2';
			got[k++] = n.check[j].whole ? (char)(c - 32) : c;
		}
		got[k] = 0;
		cr_expect_str_eq(got, table[i].want, "%s flags %#x",
				 vfs_op_name(table[i].op), table[i].flags);
	}
}

/*
 * Two policies that each refuse an O_RDWR open, one for want of write,
 * the other for want of read: a request that judged its read by one and
 * its write by the other would be let in.
 */
static const char read_only[] =
	"[defaults]\nroot = allow\n[role:c]\nread = /p/**\n"
	"[user:100]\nroles = c\n";
static const char write_only[] =
	"[defaults]\nroot = allow\n[role:c]\nwrite = /p/**\n"
	"[user:100]\nroles = c\n";

struct opener {
	pthread_t t;
	uint64_t ino;
	atomic_bool *stop;
	atomic_long opens;
	long wrong;
};

static void *open_rdwr(void *arg)
{
	struct opener *o = arg;
	struct who w;

	who_init(&w, 100, 100, 0);
	while (!atomic_load(o->stop)) {
		int rc = open_as(&w, o->ino, O_RDWR);

		atomic_fetch_add(&o->opens, 1);
		o->wrong += rc != -EACCES;
	}
	return NULL;
}

static bool openers_started(void *arg)
{
	struct opener *o = arg;

	for (int i = 0; i < 4; i++)
		if (!atomic_load(&o[i].opens))
			return false;
	return true;
}

static struct policy *compile(const char *text)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN];

	cr_assert_eq(policy_parse("t.ini", text, strlen(text), NULL, &p, err,
				  sizeof(err)), 0, "%s", err);
	return p;
}

Test(access, a_swap_under_requests_gives_each_the_old_or_the_new_whole)
{
	struct opener o[4];
	atomic_bool stop = false;
	uint64_t p, f;
	struct policy *q;
	long opens = 0;

	callers();
	p = mkdir_as(&root_, VFS_ROOT, "p");
	f = create_as(&root_, p, "f");
	cr_assert_eq(access_swap(acc, compile(read_only)), 0);
	for (int i = 0; i < 4; i++) {
		o[i] = (struct opener){ .ino = f, .stop = &stop };
		cr_assert_eq(pthread_create(&o[i].t, NULL, open_rdwr, &o[i]),
			     0);
	}
	/* Every opener running before the swaps, however busy the machine. */
	cr_assert(tu_wait_until(openers_started, o, 30000),
		  "the openers never got to open");
	for (int i = 0; i < 1000; i++) {
		q = compile(i % 2 ? read_only : write_only);
		cr_assert_eq(access_swap(acc, q), 0);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pthread_join(o[i].t, NULL), 0);
		cr_expect_eq(o[i].wrong, 0, "thread %d: %ld of %ld opens let "
			     "in", i, o[i].wrong, atomic_load(&o[i].opens));
		opens += atomic_load(&o[i].opens);
	}
	cr_expect_gt(opens, 0);
	/* And the last swap holds: the write-only policy refuses a read. */
	cr_expect_eq(open_as(&clinic, f, O_RDONLY), 0);
	cr_assert_eq(access_swap(acc, compile(write_only)), 0);
	cr_expect_eq(open_as(&clinic, f, O_RDONLY), -EACCES);
	cr_expect_eq(open_as(&clinic, f, O_WRONLY), 0);
}
