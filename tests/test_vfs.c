/*
 * test_vfs.c — the operations core without FUSE: the hooks see each
 * operation once before and once after, with the caller and the bytes
 * moved; a hook that refuses everything leaves the backing directory as
 * it was, with nothing opened; sizes that cannot be read are errors.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "phifs/crypto.h"
#include "phifs/format.h"
#include "phifs/keys.h"
#include "phifs/log.h"
#include "phifs/vfs.h"
#include "oldkernel_filter.h"
#include "volfixture.h"

static char dir[64], keyfile[96];
static struct volume *vol;
static struct vfs *v;

struct event {
	char kind;		/* 'A'llow or 'R'ecord */
	enum vfs_op op;
	uid_t uid;
	gid_t gid;
	size_t ngroups;
	gid_t groups[4];
	long result;
	char bytes[64];
	size_t len;
	int flags;		/* the request's */
	uint64_t off;
	size_t req_len;
	bool refused;		/* record: told it was allow's refusal */
};

static struct event ev[256];
static size_t nev;
static bool deny;
static bool unrecorded;	/* the record hook fails */

static void note(char kind, const struct vfs_caller *c,
		 const struct vfs_req *r, long result, const void *bytes,
		 size_t len)
{
	struct event *e = &ev[nev++];
	const gid_t *g;

	cr_assert_lt(nev, 256);
	e->kind = kind;
	e->op = r->op;
	e->flags = r->flags;
	e->off = r->off;
	e->req_len = r->len;
	e->uid = c->uid;
	e->gid = c->gid;
	e->ngroups = vfs_caller_groups(c, &g);
	memcpy(e->groups, g, (e->ngroups < 4 ? e->ngroups : 4) * sizeof(*g));
	e->result = result;
	e->len = len < sizeof(e->bytes) ? len : sizeof(e->bytes);
	if (bytes)
		memcpy(e->bytes, bytes, e->len);
}

static int h_allow(void *arg, const struct vfs_caller *c,
		   const struct vfs_req *r)
{
	(void)arg;
	note('A', c, r, 0, NULL, 0);
	return deny ? -EACCES : 0;
}

static int h_record(void *arg, const struct vfs_caller *c,
		    const struct vfs_req *r, long result, const void *bytes,
		    size_t len)
{
	(void)arg;
	note('R', c, r, result, bytes, len);
	ev[nev - 1].refused = r->refused;
	return unrecorded ? -EIO : 0;
}

/* The last authentication failure told, and by whose operation. */
static char told_path[256];
static int64_t told_block = -2;
static uid_t told_uid;

static void h_integrity(void *arg, const struct vfs_caller *c,
			const char *path, int64_t block)
{
	(void)arg;
	snprintf(told_path, sizeof(told_path), "%s", path);
	told_block = block;
	told_uid = c ? c->uid : (uid_t)-1;
}

static const struct vfs_hooks hooks = { h_allow, h_record, h_integrity };

static int three_groups(void *ctx, gid_t *out, size_t max)
{
	static const gid_t g[] = { 10, 20, 30 };

	(void)ctx;
	cr_assert_geq(max, 3);
	memcpy(out, g, sizeof(g));
	return 3;
}

static struct vfs_groups groups;
static const struct vfs_caller caller = {
	.uid = 1234, .gid = 5678, .pid = 42,
	.get_groups = three_groups, .groups = &groups,
};

static void make_volume(void)
{
	vol = vf_make(dir, keyfile, sizeof(keyfile));
}

static void setup(void)
{
	strcpy(dir, "/tmp/phifs-vfs-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	make_volume();
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	vfs_set_hooks(v, &hooks, NULL);
	nev = 0;
	deny = false;
	unrecorded = false;
	told_block = -2;
	groups.n = -1;
}

static void teardown(void)
{
	char cmd[200];

	vfs_free(v);
	volume_close(vol);
	snprintf(cmd, sizeof(cmd), "rm -rf %.60s %.90s", dir, keyfile);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(vfs, .init = setup, .fini = teardown);

/* --- helpers --- */

static uint64_t made(int rc, const struct vfs_entry *e)
{
	cr_assert_eq(rc, 0, "rc %d", rc);
	return e->ino;
}

struct names {
	char s[256];
	bool full;
};

static bool fits(void *arg, const char *name)
{
	struct names *n = arg;

	(void)name;
	return !n->full;
}

static void add(void *arg, const char *name, const struct vfs_entry *e,
		off_t next)
{
	struct names *n = arg;

	(void)e, (void)next;
	if (strcmp(name, ".") && strcmp(name, "..")) {
		strcat(n->s, name);
		strcat(n->s, " ");
	}
}

/* Checks events [from, to): allow and record in pairs, for ops. */
static void expect_pairs(size_t from, const enum vfs_op *ops, size_t nops)
{
	size_t k = from;

	for (size_t o = 0; o < nops; o++) {
		bool asked = ops[o] != VFS_RELEASE && ops[o] != VFS_RELEASEDIR;

		if (asked) {
			cr_assert_eq(ev[k].kind, 'A', "event %zu: %s", k,
				     vfs_op_name(ops[o]));
			cr_assert_eq(ev[k++].op, ops[o], "%s",
				     vfs_op_name(ops[o]));
		}
		cr_assert_eq(ev[k].kind, 'R', "event %zu: %s", k,
			     vfs_op_name(ops[o]));
		cr_assert_eq(ev[k++].op, ops[o], "%s", vfs_op_name(ops[o]));
	}
	cr_assert_eq(k, nev, "no events beyond the script");
}

/*
 * vfs_stats agrees with the record hook, operation by operation (both
 * start with the vfs), and has the bytes read and written; eacces
 * operations failed with EACCES, none with EIO, no file is left open.
 */
static void expect_counted(uint64_t eacces, uint64_t read, uint64_t written)
{
	uint64_t want[VFS_OP_COUNT] = { 0 };
	struct vfs_stats vs;

	for (size_t k = 0; k < nev; k++)
		if (ev[k].kind == 'R')
			want[ev[k].op]++;
	vfs_stats(v, &vs);
	for (int op = 0; op < VFS_OP_COUNT; op++)
		cr_expect_eq(vs.ops[op], want[op], "%s: %llu, want %llu",
			     vfs_op_name(op), (unsigned long long)vs.ops[op],
			     (unsigned long long)want[op]);
	cr_expect_eq(vs.read_bytes, read);
	cr_expect_eq(vs.write_bytes, written);
	cr_expect_eq(vs.errors[VFS_ERR_EACCES], eacces);
	cr_expect_eq(vs.errors[VFS_ERR_EIO], 0);
	cr_expect_eq(vs.open_files, 0);
}

Test(vfs, each_operation_is_allowed_once_before_and_recorded_once_after)
{
	struct vfs_entry e;
	struct vfs_file *f;
	struct vfs_dir *d;
	struct vfs_hint hint;
	struct stat st;
	struct statvfs sv;
	struct names n = { "", false };
	const struct vfs_filler fill = { true, fits, add, &n };
	char buf[64];
	uint64_t dino, fino, sino;

	dino = made(vfs_mkdir(v, &caller, VFS_ROOT, "d", 0755, &e), &e);
	cr_assert_eq(vfs_create(v, &caller, dino, "f", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	fino = e.ino;
	cr_assert_eq(vfs_write(v, &caller, f, "hello phi", 9, 0), 9);
	cr_assert_eq(vfs_read(v, &caller, f, buf, sizeof(buf), 0), 9);
	cr_assert_eq(vfs_fsync(v, &caller, f, false), 0);
	cr_assert_eq(vfs_fallocate(v, &caller, f, FALLOC_FL_KEEP_SIZE, 0,
				   1 << 16), 0);
	st.st_size = 5;
	cr_assert_eq(vfs_setattr(v, &caller, fino, &st, VFS_SET_SIZE, f), 0);
	cr_assert_eq(st.st_size, 5);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	cr_assert_eq(vfs_lookup(v, &caller, dino, "f", &e), 0);
	cr_assert_eq(e.ino, fino);
	cr_assert_eq(vfs_getattr(v, &caller, fino, &st), 0);
	cr_assert_eq(st.st_size, 5);
	cr_assert_eq(vfs_link(v, &caller, fino, VFS_ROOT, "g", &e), 0);
	sino = made(vfs_symlink(v, &caller, "target", VFS_ROOT, "s", &e), &e);
	cr_assert_eq(vfs_readlink(v, &caller, sino, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "target");
	cr_assert_eq(vfs_mknod(v, &caller, VFS_ROOT, "p", S_IFIFO | 0600, 0,
			       &e), 0);
	cr_assert_eq(vfs_mknod(v, &caller, VFS_ROOT, "r", S_IFREG | 0600, 0,
			       &e), 0);
	cr_assert_eq(vfs_rename(v, &caller, VFS_ROOT, "g", dino, "h", 0), 0);
	cr_assert_eq(vfs_opendir(v, &caller, dino, &d), 0);
	cr_assert_eq(vfs_readdir(v, &caller, d, 0, &fill), 0);
	vfs_releasedir(v, &caller, d);
	cr_assert(strstr(n.s, "f ") && strstr(n.s, "h "), "listed: %s", n.s);
	cr_assert_eq(vfs_open(v, &caller, fino, O_RDONLY, &f, &hint), 0);
	vfs_opened(v, &hint);
	cr_assert_eq(vfs_read(v, &caller, f, buf, sizeof(buf), 0), 5);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	cr_assert_eq(vfs_unlink(v, &caller, dino, "f"), 0);
	cr_assert_eq(vfs_unlink(v, &caller, dino, "h"), 0);
	cr_assert_eq(vfs_rmdir(v, &caller, VFS_ROOT, "d"), 0);
	cr_assert_eq(vfs_statfs(v, &caller, VFS_ROOT, &sv), 0);
	cr_assert_eq(vfs_setxattr(v, &caller, VFS_ROOT, "user.k", "v", 1, 0),
		     0);
	cr_assert_eq(vfs_getxattr(v, &caller, VFS_ROOT, "user.k", buf,
				  sizeof(buf)), 1);
	cr_assert_eq(vfs_listxattr(v, &caller, VFS_ROOT, buf, sizeof(buf)),
		     7);
	cr_assert_str_eq(buf, "user.k");
	cr_assert_eq(vfs_removexattr(v, &caller, VFS_ROOT, "user.k"), 0);

	static const enum vfs_op script[] = {
		VFS_MKDIR, VFS_CREATE, VFS_WRITE, VFS_READ, VFS_FSYNC,
		VFS_FALLOCATE, VFS_SETATTR, VFS_RELEASE, VFS_LOOKUP, VFS_GETATTR, VFS_LINK,
		VFS_SYMLINK, VFS_READLINK, VFS_MKNOD, VFS_MKNOD, VFS_RENAME,
		VFS_OPENDIR, VFS_READDIR, VFS_RELEASEDIR, VFS_OPEN, VFS_READ,
		VFS_RELEASE, VFS_UNLINK, VFS_UNLINK, VFS_RMDIR, VFS_STATFS,
		VFS_SETXATTR, VFS_GETXATTR, VFS_LISTXATTR, VFS_REMOVEXATTR,
	};
	expect_pairs(0, script, sizeof(script) / sizeof(script[0]));
	for (size_t k = 0; k < nev; k++) {
		cr_expect_eq(ev[k].uid, 1234, "event %zu", k);
		cr_expect_eq(ev[k].gid, 5678, "event %zu", k);
		cr_expect_eq(ev[k].ngroups, 3, "event %zu", k);
		cr_expect_eq(ev[k].groups[2], 30, "event %zu", k);
		if (ev[k].kind == 'R')
			cr_expect_geq(ev[k].result, 0, "event %zu: %s", k,
				      vfs_op_name(ev[k].op));
	}
	/* The bytes moved: written, read back whole, then read cut to 5. */
	cr_expect_eq(ev[5].len, 9);
	cr_expect_eq(memcmp(ev[5].bytes, "hello phi", 9), 0);
	cr_expect_eq(ev[7].result, 9);
	cr_expect_eq(memcmp(ev[7].bytes, "hello phi", 9), 0);
	for (size_t k = nev; k--;) {
		if (ev[k].kind != 'R' || ev[k].op != VFS_READ)
			continue;
		cr_expect_eq(ev[k].len, 5);
		cr_expect_eq(memcmp(ev[k].bytes, "hello", 5), 0);
		break;
	}
	expect_counted(0, 9 + 5, 9);
}

Test(vfs, the_figures_count_each_operation_once_and_the_bytes_moved)
{
	struct vfs_entry e;
	struct vfs_file *f;
	char buf[64];

	cr_assert_eq(vfs_create(v, &caller, VFS_ROOT, "f", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(vfs_write(v, &caller, f, "0123456789", 10,
				       (uint64_t)i * 10), 10);
	cr_assert_eq(vfs_read(v, &caller, f, buf, sizeof(buf), 50), 50);
	cr_assert_eq(vfs_read(v, &caller, f, buf, sizeof(buf), 100), 0);
	/* Open now, committed by a flush, closed after. */
	{
		struct vfs_stats vs;

		vfs_stats(v, &vs);
		cr_expect_eq(vs.open_files, 1);
		cr_expect_eq(vfs_flush(v), 0);
	}
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	expect_counted(0, 50, 100);
}

Test(vfs, fallocate_is_told_its_mode_and_range_and_zeros_read_back)
{
	static char buf[40000], out[40000];
	static const char zero[40000];
	const int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	struct vfs_entry e;
	struct vfs_file *f;

	memset(buf, 'v', sizeof(buf));
	cr_assert_eq(vfs_create(v, &caller, VFS_ROOT, "f", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_write(v, &caller, f, buf, sizeof(buf), 0),
		     (ssize_t)sizeof(buf));
	nev = 0;
	cr_assert_eq(vfs_fallocate(v, &caller, f, punch, 100, 30000), 0);
	cr_assert_eq(vfs_fallocate(v, &caller, f, FALLOC_FL_COLLAPSE_RANGE,
				   0, 4096), -EOPNOTSUPP);
	cr_assert_eq(vfs_fallocate(v, &caller, f, 0, 40000, 1 << 20), 0);
	cr_assert_eq(nev, 6);
	cr_expect(ev[0].kind == 'A' && ev[0].op == VFS_FALLOCATE &&
		  ev[0].flags == punch && ev[0].off == 100 &&
		  ev[0].req_len == 30000);
	cr_expect(ev[1].kind == 'R' && ev[1].result == 0 &&
		  ev[1].flags == punch);
	cr_expect(ev[3].kind == 'R' && ev[3].result == -EOPNOTSUPP);
	cr_expect(ev[5].kind == 'R' && ev[5].result == 0 &&
		  ev[5].off == 40000 && ev[5].req_len == 1 << 20);
	cr_assert_eq(vfs_read(v, &caller, f, out, sizeof(out), 0),
		     (ssize_t)sizeof(out));
	cr_expect_arr_eq(out, buf, 100);
	cr_expect_arr_eq(out + 100, zero, 30000);
	cr_expect_arr_eq(out + 30100, buf, sizeof(out) - 30100);
	cr_assert_eq(vfs_read(v, &caller, f, out, sizeof(out), 1 << 20),
		     (ssize_t)sizeof(out));
	cr_expect_arr_eq(out, zero, sizeof(out));
	cr_assert_eq(vfs_release(v, &caller, f), 0);
}

/* --- refusal --- */

/* The backing xattrs of name in dfd as text: each name and value size. */
static const char *xattrs_of(int dfd, const char *name)
{
	static char out[1024];
	char path[PATH_MAX], names[1024];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, name);
	n = llistxattr(path, names, sizeof(names));
	cr_assert_geq(n, 0);
	out[0] = 0;
	for (ssize_t at = 0; at < n; at += (ssize_t)strlen(names + at) + 1)
		snprintf(out + strlen(out), sizeof(out) - strlen(out),
			 "%s=%zd;", names + at,
			 lgetxattr(path, names + at, NULL, 0));
	return out;
}

/* The backing tree as text: names, types, sizes, mtimes and ctimes, and
 * extended attributes. */
static void snapshot(int dfd, const char *at, char *out, size_t cap)
{
	DIR *d = fdopendir(dup(dfd));
	struct dirent *de;

	cr_assert_not_null(d);
	rewinddir(d);
	while ((de = readdir(d))) {
		struct stat st;
		size_t len = strlen(out);

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		cr_assert_eq(fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW),
			     0);
		snprintf(out + len, cap - len,
			 "%s/%s %o %lld %ld.%ld %ld.%ld %s\n",
			 at, de->d_name, st.st_mode, (long long)st.st_size,
			 st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			 st.st_ctim.tv_sec, st.st_ctim.tv_nsec,
			 xattrs_of(dfd, de->d_name));
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dfd, de->d_name,
					 O_RDONLY | O_DIRECTORY);
			char path[PATH_MAX];

			cr_assert_geq(sub, 0);
			snprintf(path, sizeof(path), "%.2000s/%.255s", at,
				 de->d_name);
			snapshot(sub, path, out, cap);
			close(sub);
		}
	}
	closedir(d);
}

static void tree(char *out, size_t cap)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);

	out[0] = '\0';
	snapshot(fd, "", out, cap);
	close(fd);
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Each call must be refused and open nothing. */
#define REFUSED(call)                                                       \
	do {                                                                 \
		int fds_ = open_fds();                                       \
		long rc_ = (long)(call);                                     \
									     \
		cr_expect_eq(rc_, -EACCES, "%s: %ld", #call, rc_);           \
		cr_expect_eq(open_fds(), fds_, "%s opened something", #call); \
	} while (0)

Test(vfs, a_hook_that_refuses_everything_leaves_the_backing_untouched)
{
	static char before[8192], after[8192];
	struct vfs_entry e;
	struct vfs_file *f, *g;
	struct vfs_dir *d;
	struct vfs_hint hint;
	struct statvfs sv;
	struct stat st = { .st_size = 0, .st_mode = 0777 };
	struct names n = { "", false };
	const struct vfs_filler fill = { true, fits, add, &n };
	char buf[64];
	uint64_t dino, fino, sino, eino;
	size_t script_start;

	dino = made(vfs_mkdir(v, &caller, VFS_ROOT, "d", 0755, &e), &e);
	eino = made(vfs_mkdir(v, &caller, VFS_ROOT, "e", 0755, &e), &e);
	cr_assert_eq(vfs_create(v, &caller, dino, "f", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	fino = e.ino;
	cr_assert_eq(vfs_write(v, &caller, f, "abc", 3, 0), 3);
	sino = made(vfs_symlink(v, &caller, "t", VFS_ROOT, "s", &e), &e);
	cr_assert_eq(vfs_opendir(v, &caller, dino, &d), 0);
	cr_assert_eq(vfs_fsync(v, &caller, f, false), 0);
	cr_assert_eq(vfs_setxattr(v, &caller, fino, "user.k", "v", 1, 0), 0);
	tree(before, sizeof(before));
	cr_assert(strstr(before, FORMAT_XATTR_PREFIX), "%s", before);

	deny = true;
	script_start = nev;
	REFUSED(vfs_lookup(v, &caller, VFS_ROOT, "d", &e));
	REFUSED(vfs_getattr(v, &caller, fino, &st));
	REFUSED(vfs_setattr(v, &caller, fino, &st,
			    VFS_SET_SIZE | VFS_SET_MODE | VFS_SET_MTIME_NOW,
			    NULL));
	REFUSED(vfs_setattr(v, &caller, fino, &st, VFS_SET_SIZE, f));
	REFUSED(vfs_readlink(v, &caller, sino, buf, sizeof(buf)));
	REFUSED(vfs_mknod(v, &caller, VFS_ROOT, "x", S_IFIFO | 0600, 0, &e));
	REFUSED(vfs_mknod(v, &caller, VFS_ROOT, "y", S_IFREG | 0600, 0, &e));
	REFUSED(vfs_mkdir(v, &caller, VFS_ROOT, "z", 0700, &e));
	REFUSED(vfs_symlink(v, &caller, "t", VFS_ROOT, "u", &e));
	REFUSED(vfs_link(v, &caller, fino, VFS_ROOT, "l", &e));
	REFUSED(vfs_unlink(v, &caller, dino, "f"));
	REFUSED(vfs_rmdir(v, &caller, VFS_ROOT, "e"));
	REFUSED(vfs_rename(v, &caller, VFS_ROOT, "e", VFS_ROOT, "e2", 0));
	REFUSED(vfs_open(v, &caller, fino, O_RDWR | O_TRUNC, &g, &hint));
	REFUSED(vfs_create(v, &caller, VFS_ROOT, "c", 0600, O_CREAT | O_RDWR,
			   &e, &g));
	REFUSED(vfs_read(v, &caller, f, buf, sizeof(buf), 0));
	REFUSED(vfs_write(v, &caller, f, "zzz", 3, 0));
	REFUSED(vfs_fsync(v, &caller, f, false));
	REFUSED(vfs_fallocate(v, &caller, f, 0, 0, 1 << 20));
	REFUSED(vfs_fallocate(v, &caller, f, FALLOC_FL_PUNCH_HOLE |
			      FALLOC_FL_KEEP_SIZE, 0, 3));
	REFUSED(vfs_opendir(v, &caller, eino, &d));
	REFUSED(vfs_readdir(v, &caller, d, 0, &fill));
	REFUSED(vfs_fsyncdir(v, &caller, d, false));
	REFUSED(vfs_statfs(v, &caller, VFS_ROOT, &sv));
	REFUSED(vfs_setxattr(v, &caller, fino, "user.k", "w", 1, 0));
	REFUSED(vfs_setxattr(v, &caller, dino, "user.n", "w", 1, 0));
	REFUSED(vfs_getxattr(v, &caller, fino, "user.k", buf, sizeof(buf)));
	REFUSED(vfs_listxattr(v, &caller, fino, buf, sizeof(buf)));
	REFUSED(vfs_removexattr(v, &caller, fino, "user.k"));
	tree(after, sizeof(after));
	cr_expect_str_eq(after, before);
	cr_expect_str_eq(n.s, "", "nothing listed");
	/* Each refusal is recorded, as the audit log will want. */
	cr_expect_eq(nev - script_start, 2 * 29);
	for (size_t k = script_start; k < nev; k += 2)
		cr_expect(ev[k].kind == 'A' && ev[k + 1].kind == 'R' &&
				  ev[k + 1].result == -EACCES &&
				  ev[k + 1].refused,
			  "event %zu", k);
	deny = false;
	vfs_releasedir(v, &caller, d);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	/* The refusals count as EACCES, and their bytes as none. */
	expect_counted(29, 0, 3);
}

/* --- sizes --- */

/* A file on the volume whose size only its header tells. */
static uint64_t untagged_file(const char *name, size_t len)
{
	struct vfs_entry e;
	struct vfs_file *f;
	char data[4096] = { 0 };
	char path[160];

	cr_assert_eq(vfs_create(v, &caller, VFS_ROOT, name, 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_write(v, &caller, f, data, len, 0), (ssize_t)len);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	(void)removexattr(path, FORMAT_SIZE_XATTR);
	return e.ino;
}

/*
 * Out of descriptors with one left: the lookup takes it, and the header
 * cannot be opened for the size.  That used to be size 0, which the
 * kernel would keep for a minute.
 */
Test(vfs, a_size_that_cannot_be_read_is_an_error_not_size_zero)
{
	struct rlimit lim;
	struct vfs_entry e;
	int fds[4096], n = 0, rc;

	(void)untagged_file("f", 1000);
	vfs_free(v);		/* a fresh core: no size remembered */
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &lim), 0);
	lim.rlim_cur = 1024;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	while (n < 4096 && (fds[n] = dup(0)) >= 0)
		n++;
	cr_assert_eq(errno, EMFILE);
	close(fds[--n]);
	rc = vfs_lookup(v, &caller, VFS_ROOT, "f", &e);
	cr_expect_eq(rc, -EMFILE, "lookup gave %d, size %lld", rc,
		     (long long)e.attr.st_size);
	while (n)
		close(fds[--n]);
	cr_assert_eq(vfs_lookup(v, &caller, VFS_ROOT, "f", &e), 0);
	cr_expect_eq(e.attr.st_size, 1000);
}

Test(vfs, a_damaged_header_shows_size_zero_and_reading_fails)
{
	struct vfs_entry e;
	struct vfs_file *f;
	struct vfs_hint hint;
	char path[160], buf[16];
	int fd, rc;

	(void)untagged_file("f", 1000);
	vfs_free(v);
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_WRONLY);
	cr_assert_eq(pwrite(fd, "\xff\xff\xff\xff", 4, 40), 4);
	cr_assert_eq(pwrite(fd, "\xff\xff\xff\xff", 4, FORMAT_SLOT_STRIDE + 40),
		     4);
	close(fd);
	cr_assert_eq(vfs_lookup(v, &caller, VFS_ROOT, "f", &e), 0);
	cr_expect_eq(e.attr.st_size, 0);
	rc = vfs_open(v, &caller, e.ino, O_RDONLY, &f, &hint);
	cr_expect(rc == -EBADMSG || rc == -EUCLEAN || rc == -EKEYREJECTED,
		  "a header that does not authenticate: %d", rc);
	(void)buf;
}

/* --- what the operator is told --- */

static char logged[4096];

static void sink(int priority, const char *line)
{
	(void)priority;
	strncat(logged, line, sizeof(logged) - strlen(logged) - 2);
	strcat(logged, "\n");
}

static void log_to_sink(void)
{
	logged[0] = '\0';
	log_set_sink(sink);
	log_open(false);
}

Test(vfs, a_block_that_fails_authentication_is_logged_with_path_and_block)
{
	struct vfs_entry e;
	struct vfs_file *f;
	struct vfs_hint hint;
	char data[3 * 4096] = { 1 }, path[160];
	int fd;

	log_to_sink();
	made(vfs_mkdir(v, &caller, VFS_ROOT, "ward", 0755, &e), &e);
	cr_assert_eq(vfs_create(v, &caller, e.ino, "chart", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_write(v, &caller, f, data, sizeof(data), 0),
		     (ssize_t)sizeof(data));
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	snprintf(path, sizeof(path), "%s/ward/chart", dir);
	fd = open(path, O_WRONLY);
	cr_assert_eq(pwrite(fd, "\x55", 1, (off_t)format_block_offset(2) + 9),
		     1);
	close(fd);
	cr_assert_eq(vfs_open(v, &caller, e.ino, O_RDONLY, &f, &hint), 0);
	vfs_opened(v, &hint);
	cr_expect_eq(vfs_read(v, &caller, f, data, 4096, 2 * 4096), -EBADMSG);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	cr_expect(strstr(logged, "/ward/chart: block 2 fails authentication"),
		  "logged: %s", logged);
	/* and the hooks hear of it, for the integrity log */
	cr_expect_str_eq(told_path, "/ward/chart");
	cr_expect_eq(told_block, 2);
	cr_expect_eq(told_uid, caller.uid);
	log_close();
	log_set_sink(NULL);
}

/* --- fail closed: a result the record hook cannot keep --- */

Test(vfs, a_read_whose_record_is_not_kept_fails_and_returns_no_plaintext)
{
	struct vfs_entry e;
	struct vfs_file *f;
	char buf[16];

	cr_assert_eq(vfs_create(v, &caller, VFS_ROOT, "chart", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_write(v, &caller, f, "secret", 6, 0), 6);
	unrecorded = true;
	memset(buf, 0, sizeof(buf));
	cr_expect_eq(vfs_read(v, &caller, f, buf, sizeof(buf), 0), -EIO);
	cr_expect_eq(ev[nev - 1].result, 6, "the hook saw the read");
	for (size_t k = 0; k < sizeof(buf); k++)
		cr_expect_eq(buf[k], 0, "plaintext left in byte %zu", k);
	cr_expect_eq(vfs_write(v, &caller, f, "more", 4, 6), -EIO);
	cr_expect_eq(vfs_unlink(v, &caller, VFS_ROOT, "chart"), -EIO);
	unrecorded = false;
	cr_assert_eq(vfs_release(v, &caller, f), 0);
}

Test(vfs, an_open_file_or_entry_handed_out_stands_when_its_record_fails)
{
	struct vfs_entry e;
	struct vfs_file *f;

	unrecorded = true;
	/* The kernel would never give them back: they are not undone. */
	cr_expect_eq(vfs_mkdir(v, &caller, VFS_ROOT, "d", 0755, &e), 0);
	cr_expect_eq(vfs_create(v, &caller, e.ino, "f", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	unrecorded = false;
	cr_assert_eq(vfs_release(v, &caller, f), 0);
}

/* The header slot with the higher seq of the backing file at path. */
static int newer_slot(const char *path)
{
	uint64_t s0, s1;
	int fd = open(path, O_RDONLY);

	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, &s0, 8, 16), 8);
	cr_assert_eq(pread(fd, &s1, 8, FORMAT_SLOT_STRIDE + 16), 8);
	close(fd);
	return s1 > s0;
}

Test(vfs, a_refused_header_slot_is_logged_once_and_counted)
{
	static char data[9 * 4096];
	struct vfs_entry e;
	struct vfs_file *f;
	struct vfs_hint hint;
	struct vfs_stats st;
	char path[160];
	int fd, bad;

	cr_assert_eq(vfs_create(v, &caller, VFS_ROOT, "g", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_write(v, &caller, f, data, 8 * 4096, 0), 8 * 4096);
	cr_assert_eq(vfs_fsync(v, &caller, f, false), 0);
	cr_assert_eq(vfs_write(v, &caller, f, data, 4096, 8 * 4096), 4096);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	snprintf(path, sizeof(path), "%s/g", dir);
	bad = newer_slot(path);
	fd = open(path, O_WRONLY);
	cr_assert_eq(pwrite(fd, "\x01", 1, bad * FORMAT_SLOT_STRIDE + 66), 1);
	close(fd);
	vfs_free(v);		/* a fresh core: nothing told yet */
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	log_to_sink();
	cr_assert_eq(vfs_lookup(v, &caller, VFS_ROOT, "g", &e), 0);
	for (int k = 0; k < 3; k++) {
		cr_assert_eq(vfs_open(v, &caller, e.ino, O_RDONLY, &f, &hint),
			     0);
		vfs_opened(v, &hint);
		cr_expect_eq(vfs_read(v, &caller, f, data, sizeof(data), 0),
			     8 * 4096);
		cr_assert_eq(vfs_release(v, &caller, f), 0);
	}
	vfs_stats(v, &st);
	cr_expect_eq(st.header_fallbacks, 1, "one file, one finding");
	cr_expect_eq(st.auth_failures, 0, "the file reads: no EIO");
	cr_expect(strstr(logged, "/g: header slot "), "logged: %s", logged);
	cr_expect(strstr(logged, "fails authentication"), "logged: %s",
		  logged);
	cr_expect_eq(strchr(logged, '\n'), logged + strlen(logged) - 1,
		     "one line: %s", logged);
	log_close();
	log_set_sink(NULL);
}

Test(vfs, a_destroyed_header_is_logged_at_stat_and_at_open)
{
	struct vfs_entry e;
	struct vfs_file *f;
	struct vfs_hint hint;
	struct vfs_stats st;
	char path[160];
	int fd;

	(void)untagged_file("h", 1000);
	vfs_free(v);
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	snprintf(path, sizeof(path), "%s/h", dir);
	fd = open(path, O_WRONLY);
	cr_assert_eq(pwrite(fd, "\xff\xff\xff\xff", 4, 40), 4);
	cr_assert_eq(pwrite(fd, "\xff\xff\xff\xff", 4, FORMAT_SLOT_STRIDE + 40),
		     4);
	close(fd);
	log_to_sink();
	/* Size 0 so that it lists and can be removed, but never quietly. */
	cr_assert_eq(vfs_lookup(v, &caller, VFS_ROOT, "h", &e), 0);
	cr_expect_eq(e.attr.st_size, 0);
	cr_expect(strstr(logged, "header fails authentication"),
		  "logged: %s", logged);
	cr_expect_neq(vfs_open(v, &caller, e.ino, O_RDONLY, &f, &hint), 0);
	cr_expect(strstr(logged, "/h: header fails authentication"),
		  "logged: %s", logged);
	vfs_stats(v, &st);
	cr_expect_geq(st.auth_failures, 2);
	log_close();
	log_set_sink(NULL);
}

Test(vfs, a_size_that_cannot_be_committed_is_logged)
{
	struct vfs_entry e;
	struct vfs_file *f;

	log_to_sink();
	cr_assert_eq(vfs_create(v, &caller, VFS_ROOT, "f", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_write(v, &caller, f, "x", 1, 70000), 1);
	cr_assert_eq(oldkernel_filter_fail(SYS_pwrite64, EIO), 0);
	vfs_stop(v);		/* commits what is open, as at unmount */
	cr_expect(strstr(logged, "/f: not committed: Input/output error"),
		  "logged: %s", logged);
	log_close();
	log_set_sink(NULL);
}

/* --- extended attributes --- */

Test(vfs, other_namespaces_are_refused_without_touching_anything)
{
	static const char *const names[] = {
		"security.selinux", "trusted.x", "system.posix_acl_access",
		"phifs.size", "",
	};
	char buf[64];
	size_t start;

	cr_assert_eq(vfs_setxattr(v, &caller, VFS_ROOT, "user.a", "1", 1, 0),
		     0);
	start = nev;
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		cr_expect_eq(vfs_setxattr(v, &caller, VFS_ROOT, names[k], "1",
					  1, 0), -EOPNOTSUPP, "%s", names[k]);
		cr_expect_eq(vfs_getxattr(v, &caller, VFS_ROOT, names[k], buf,
					  sizeof(buf)), -EOPNOTSUPP);
		cr_expect_eq(vfs_removexattr(v, &caller, VFS_ROOT, names[k]),
			     -EOPNOTSUPP);
	}
	cr_expect_eq(vfs_setxattr(v, &caller, VFS_ROOT, "user.", "1", 1, 0),
		     -EINVAL);
	cr_expect_eq(vfs_getxattr(v, &caller, VFS_ROOT, "user.", buf,
				  sizeof(buf)), -EINVAL);
	cr_expect_eq(nev, start, "the hooks were not asked");
	cr_expect_eq(vfs_listxattr(v, &caller, VFS_ROOT, buf, sizeof(buf)), 7);
	cr_expect_str_eq(buf, "user.a");
}

Test(vfs, xattr_flags_and_sizes_follow_linux)
{
	struct vfs_entry e;
	struct vfs_file *f;
	char buf[64];

	cr_assert_eq(vfs_create(v, &caller, VFS_ROOT, "f", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	cr_assert_eq(vfs_setxattr(v, &caller, e.ino, "user.a", "xyz", 3,
				  XATTR_REPLACE), -ENODATA);
	cr_assert_eq(vfs_setxattr(v, &caller, e.ino, "user.a", "xyz", 3,
				  XATTR_CREATE), 0);
	cr_assert_eq(vfs_setxattr(v, &caller, e.ino, "user.a", "xy", 2,
				  XATTR_CREATE), -EEXIST);
	cr_assert_eq(vfs_setxattr(v, &caller, e.ino, "user.a", "xy", 2,
				  XATTR_REPLACE), 0);
	cr_assert_eq(vfs_setxattr(v, &caller, e.ino, "user.a", "xy", 2, 0x40),
		     -EINVAL);
	cr_assert_eq(vfs_getxattr(v, &caller, e.ino, "user.a", NULL, 0), 2);
	cr_assert_eq(vfs_getxattr(v, &caller, e.ino, "user.a", buf, 1),
		     -ERANGE);
	cr_assert_eq(vfs_getxattr(v, &caller, e.ino, "user.b", buf, 1),
		     -ENODATA);
	cr_assert_eq(vfs_listxattr(v, &caller, e.ino, NULL, 0), 7);
	cr_assert_eq(vfs_listxattr(v, &caller, e.ino, buf, 6), -ERANGE);
	cr_assert_eq(vfs_removexattr(v, &caller, e.ino, "user.b"), -ENODATA);
	cr_assert_eq(vfs_listxattr(v, &caller, e.ino, buf, sizeof(buf)), 7);
	/* The size tag the release left is not the caller's. */
	cr_assert_eq(vfs_getxattr(v, &caller, e.ino, FORMAT_SIZE_XATTR, buf,
				  sizeof(buf)), -ENODATA);
}

/* The one sealed attribute's backing name on path (a folder also has its
 * record). */
static void sealed_name(const char *path, char out[FORMAT_XATTR_BNAME_MAX])
{
	char names[512];
	ssize_t n = llistxattr(path, names, sizeof(names));
	int found = 0;

	cr_assert_gt(n, 0);
	for (char *p = names; p < names + n; p += strlen(p) + 1)
		if (!strncmp(p, "user.phifs.x.", 13)) {
			cr_assert_eq(strlen(p) + 1, FORMAT_XATTR_BNAME_MAX);
			memcpy(out, p, FORMAT_XATTR_BNAME_MAX);
			found++;
		}
	cr_assert_eq(found, 1, "sealed attributes on %s", path);
}

Test(vfs, a_forged_or_copied_attribute_fails_is_not_listed_and_is_logged)
{
	char path[160], bname[FORMAT_XATTR_BNAME_MAX], names[256], val[256];
	struct vfs_entry e;
	uint64_t a, b;
	ssize_t n;

	log_to_sink();
	a = made(vfs_mkdir(v, &caller, VFS_ROOT, "a", 0755, &e), &e);
	b = made(vfs_mkdir(v, &caller, VFS_ROOT, "b", 0755, &e), &e);
	cr_assert_eq(vfs_setxattr(v, &caller, a, "user.k", "secret", 6, 0), 0);
	cr_assert_eq(vfs_setxattr(v, &caller, b, "user.k", "other", 5, 0), 0);
	/* a's value under b's name for the same attribute. */
	snprintf(path, sizeof(path), "%s/a", dir);
	sealed_name(path, bname);
	n = lgetxattr(path, bname, val, sizeof(val));
	cr_assert_gt(n, 0);
	snprintf(path, sizeof(path), "%s/b", dir);
	sealed_name(path, names);
	cr_assert_eq(lsetxattr(path, names, val, (size_t)n, XATTR_REPLACE), 0);
	cr_expect_eq(vfs_getxattr(v, &caller, b, "user.k", val, sizeof(val)),
		     -EBADMSG);
	cr_expect_eq(vfs_listxattr(v, &caller, b, names, sizeof(names)), 0);
	cr_expect(strstr(logged, "/b: extended attribute user.phifs.x."),
		  "logged: %s", logged);
	/* a's own, altered. */
	snprintf(path, sizeof(path), "%s/a", dir);
	n = lgetxattr(path, bname, val, sizeof(val));
	val[n - 1] ^= 0x80;
	cr_assert_eq(lsetxattr(path, bname, val, (size_t)n, XATTR_REPLACE), 0);
	cr_expect_eq(vfs_getxattr(v, &caller, a, "user.k", val, sizeof(val)),
		     -EBADMSG);
	cr_expect_eq(vfs_listxattr(v, &caller, a, NULL, 0), 0);
	cr_expect(strstr(logged, "/a: extended attribute user.phifs.x."),
		  "logged: %s", logged);
	log_close();
	log_set_sink(NULL);
}

/* --- mode and owner, as the header authenticates them --- */

static mode_t backing_mode(const char *name)
{
	char path[160];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void chmod_in_backing(const char *name, mode_t mode)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(chmod(path, mode), 0);
}

Test(vfs, a_chmod_in_the_backing_is_undone_told_once_and_counted)
{
	struct vfs_entry e;
	struct vfs_file *f;
	struct vfs_stats st;
	struct stat sa;

	cr_assert_eq(vfs_create(v, &caller, VFS_ROOT, "m", 0600,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_write(v, &caller, f, "secret", 6, 0), 6);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	chmod_in_backing("m", 0666);	/* the probe's attack */
	vfs_free(v);		/* a fresh core: nothing told yet */
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	log_to_sink();
	for (int k = 0; k < 2; k++) {
		cr_assert_eq(vfs_lookup(v, &caller, VFS_ROOT, "m", &e), 0);
		cr_expect_eq(e.attr.st_mode, S_IFREG | 0600,
			     "the header's mode: %o", e.attr.st_mode);
		cr_assert_eq(vfs_getattr(v, &caller, e.ino, &sa), 0);
		cr_expect_eq(sa.st_mode, S_IFREG | 0600);
		cr_expect_eq(sa.st_size, 6);
		vfs_forget(v, e.ino, 1);
	}
	cr_expect_eq(backing_mode("m"), 0600, "put back in the backing");
	vfs_stats(v, &st);
	cr_expect_eq(st.attr_mismatches, 1, "one file, one finding");
	/* Found by the lookup, before the name is the table's: told by
	 * inode number. */
	cr_expect(strstr(logged, ": backing file has mode 0666"),
		  "logged: %s", logged);
	cr_expect_eq(strchr(logged, '\n'), logged + strlen(logged) - 1,
		     "one line: %s", logged);
	log_close();
	log_set_sink(NULL);
}

Test(vfs, chmod_through_the_core_commits_the_header_of_a_closed_file)
{
	struct vfs_entry e;
	struct vfs_file *f;
	struct stat sa = { .st_mode = 0640 };

	cr_assert_eq(vfs_create(v, &caller, VFS_ROOT, "c", 0600,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	cr_assert_eq(vfs_setattr(v, &caller, e.ino, &sa, VFS_SET_MODE, NULL),
		     0);
	cr_expect_eq(sa.st_mode, S_IFREG | 0640);
	cr_expect_eq(backing_mode("c"), 0640);
	/* Had only the backing changed, the header would put 0600 back. */
	vfs_free(v);
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	cr_assert_eq(vfs_lookup(v, &caller, VFS_ROOT, "c", &e), 0);
	cr_expect_eq(e.attr.st_mode, S_IFREG | 0640);
	cr_assert_eq(vfs_open(v, &caller, e.ino, O_RDONLY, &f,
			      &(struct vfs_hint){ 0 }), 0);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	cr_expect_eq(backing_mode("c"), 0640);
	/* And through an open handle. */
	cr_assert_eq(vfs_open(v, &caller, e.ino, O_RDWR, &f,
			      &(struct vfs_hint){ 0 }), 0);
	sa.st_mode = 0604;
	cr_assert_eq(vfs_setattr(v, &caller, e.ino, &sa, VFS_SET_MODE, f), 0);
	cr_expect_eq(sa.st_mode, S_IFREG | 0604);
	chmod_in_backing("c", 0666);
	cr_assert_eq(vfs_getattr(v, &caller, e.ino, &sa), 0);
	cr_expect_eq(sa.st_mode, S_IFREG | 0604, "open: the node's mode");
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	vfs_forget(v, e.ino, 1);
}

/*
 * A size tag of an older mode, put back with that mode: stat believes it
 * (only the header could tell), but the open finds the backing's mode not
 * the header's and judges the opener on the header's.
 */
Test(vfs, an_open_after_an_old_tag_and_mode_are_put_back_is_judged_on_the_header)
{
	static const struct vfs_caller other = { .uid = 999, .gid = 999 };
	uint8_t old[FORMAT_SIZE_TAG_LEN];
	struct stat sa = { .st_mode = 0600 };
	struct vfs_hint hint = { 0 };
	struct vfs_entry e;
	struct vfs_file *f;
	char path[160];

	cr_assert_eq(vfs_create(v, &caller, VFS_ROOT, "r", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_write(v, &caller, f, "once open", 9, 0), 9);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	snprintf(path, sizeof(path), "%s/r", dir);
	if (getxattr(path, FORMAT_SIZE_XATTR, old, sizeof(old)) !=
	    (ssize_t)sizeof(old))
		cr_skip_test("no size tags here: %s", strerror(errno));
	cr_assert_eq(vfs_setattr(v, &caller, e.ino, &sa, VFS_SET_MODE, NULL),
		     0);
	vfs_forget(v, e.ino, 1);
	cr_assert_eq(setxattr(path, FORMAT_SIZE_XATTR, old, sizeof(old), 0), 0);
	chmod_in_backing("r", 0644);
	vfs_free(v);
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	cr_assert_eq(vfs_lookup(v, &other, VFS_ROOT, "r", &e), 0);
	cr_expect_eq(e.attr.st_mode, S_IFREG | 0644, "the old tag verifies");
	cr_expect_eq(vfs_open(v, &other, e.ino, O_RDONLY, &f, &hint),
		     -EACCES, "opened by the old mode");
	cr_expect_eq(backing_mode("r"), 0600, "the header's, put back");
	cr_assert_eq(vfs_open(v, &caller, e.ino, O_RDWR, &f, &hint), 0,
		     "the owner still may");
	vfs_opened(v, &hint);
	cr_assert_eq(vfs_release(v, &caller, f), 0);
	vfs_forget(v, e.ino, 1);
}

/* Counts the reads of a caller's groups; ctx points at the count. */
static int counted_groups(void *ctx, gid_t *out, size_t max)
{
	(*(int *)ctx)++;
	cr_assert_geq(max, 2);
	out[0] = 7;
	out[1] = 8;
	return 2;
}

/*
 * A process's groups are read once a second, not per request: a second
 * request of the same pid, uid and gid takes them from the memo; another
 * uid or gid, or a caller without a pid, is read again.
 */
Test(vfs, a_process_groups_are_read_once_a_second)
{
	int reads = 0;
	struct vfs_groups g1 = { .n = -1 }, g2 = { .n = -1 }, g3 = { .n = -1 },
			  g4 = { .n = -1 };
	struct vfs_caller c = { .uid = 71, .gid = 72, .pid = 9999001,
				.get_groups = counted_groups, .ctx = &reads };
	const gid_t *out;

	c.groups = &g1;
	cr_assert_eq(vfs_caller_groups(&c, &out), 2);
	c.groups = &g2;
	cr_assert_eq(vfs_caller_groups(&c, &out), 2);
	cr_expect_eq(out[1], 8);
	cr_expect_eq(reads, 1, "read %d times for one process", reads);
	c.gid = 73;	/* setgid(): read again */
	c.groups = &g3;
	(void)vfs_caller_groups(&c, &out);
	cr_expect_eq(reads, 2);
	c.pid = 0;	/* no process to key it by */
	c.groups = &g4;
	(void)vfs_caller_groups(&c, &out);
	g4.n = -1;
	(void)vfs_caller_groups(&c, &out);
	cr_expect_eq(reads, 4);
}
