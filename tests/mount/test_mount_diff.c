/*
 * test_mount_diff.c — a differential test: one seeded stream of random file
 * operations (writes at block seams and past the end of file, truncation up
 * and down, O_APPEND and O_TRUNC opens, renames, links, unlinks of open
 * files, folders, symlinks (targets up to 4095 bytes) and their own times,
 * device nodes, user extended attributes, fallocate in every mode) applied
 * to a plain folder and to
 * a phifs mount.  After every step the
 * results, the errno values, the sizes and the contents of the files touched
 * must agree; at the end, and again after a remount, the whole
 * trees must.  A failure prints the seed (replay with PHIFS_TEST_SEED=N) and
 * the last operations.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mountutil.h"
#include "testutil.h"

TestSuite(mount_diff, .fini = mu_cleanup_all, .timeout = 240);

#define NHANDLES 6
#define MAXSIZE (320 * 1024)	/* files stay below this, mostly */
#define MAXWRITE (24 * 1024)
#define LOGN 24

struct handle {
	bool used, append;
	int r, m;		/* reference fd, mount fd */
	char path[64];		/* where it was opened */
};

static struct handle hs[NHANDLES];
static char refroot[256], mntroot[256];
static uint64_t seed, rs;
static int step;
static char oplog[LOGN][200];
static int nlog;
static uint8_t wbuf[MAXWRITE], rbuf_r[128 * 1024], rbuf_m[128 * 1024];

/* Paths the stream may name; many do not exist at any given moment. */
static const char *dirs[] = { "", "a", "b", "a/c", "b/d" };
#define NDIRS 5
#define NNAMES 6

static void logop(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logop(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(oplog[nlog % LOGN], sizeof(oplog[0]), fmt, ap);
	va_end(ap);
	nlog++;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "differential test failed at step %d (replay with "
		"PHIFS_TEST_SEED=%llu); the last operations:\n", step,
		(unsigned long long)seed);
	for (int i = nlog > LOGN ? nlog - LOGN : 0; i < nlog; i++)
		fprintf(stderr, "  %s\n", oplog[i % LOGN]);
	cr_assert_fail("seed %llu, step %d: %s", (unsigned long long)seed,
		       step, msg);
	abort();
}

static uint64_t rnd(uint64_t n)
{
	return n ? tu_rand(&rs) % n : 0;
}

static const char *rp(const char *rel)
{
	static char b[4][512];
	static int i;
	char *p = b[i++ % 4];

	snprintf(p, 512, "%s/%s", refroot, rel);
	return p;
}

static const char *mp(const char *rel)
{
	static char b[4][512];
	static int i;
	char *p = b[i++ % 4];

	snprintf(p, 512, "%s/%s", mntroot, rel);
	return p;
}

/* Both sides returned the same, or failed with the same errno. */
static void agree(const char *what, long r1, int e1, long r2, int e2)
{
	if (r1 != r2 || (r1 < 0 && e1 != e2))
		fail("%s: the plain folder gives %ld (%s), the mount %ld (%s)",
		     what, r1, r1 < 0 ? strerror(e1) : "ok", r2,
		     r2 < 0 ? strerror(e2) : "ok");
}

static int cmpstr(const void *a, const void *b);

/* ---- existing names in the reference tree ---- */

static char files[64][64], subdirs[16][64], nodes[16][64];
static int nfiles, nsubdirs, nnodes;

static void scan(const char *rel, int depth)
{
	DIR *d = opendir(rp(rel));
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char sub[64];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s%s%.20s", rel, *rel ? "/" : "",
			 de->d_name);
		if (lstat(rp(sub), &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (nsubdirs < 16)
				snprintf(subdirs[nsubdirs++], 64, "%s", sub);
			if (depth < 3)
				scan(sub, depth + 1);
		} else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
			/* Never opened: the plain folder's would open. */
			if (nnodes < 16)
				snprintf(nodes[nnodes++], 64, "%s", sub);
		} else if (nfiles < 64) {
			snprintf(files[nfiles++], 64, "%s", sub);
		}
	}
	closedir(d);
}

static void any_file(char *out)
{
	const char *d = dirs[rnd(NDIRS)];

	snprintf(out, 64, "%s%sf%d", d, *d ? "/" : "", (int)rnd(NNAMES));
}

static void pick_file(char *out)
{
	if (nfiles && rnd(10) < 7)
		memcpy(out, files[rnd(nfiles)], 64);
	else
		any_file(out);
}

static void pick_dir(char *out)
{
	if (nsubdirs && rnd(10) < 6)
		memcpy(out, subdirs[rnd(nsubdirs)], 64);
	else
		snprintf(out, 64, "%s", dirs[1 + rnd(NDIRS - 1)]);
}

/* ---- comparing ---- */

static void compare_fds(int r, int m, const char *what)
{
	struct stat sr, sm;
	off_t off = 0;

	if (fstat(r, &sr) || fstat(m, &sm))
		fail("%s: fstat fails: %s", what, strerror(errno));
	if (sr.st_size != sm.st_size)
		fail("%s: size %lld on the mount, %lld in the plain folder",
		     what, (long long)sm.st_size, (long long)sr.st_size);
	while (off < sr.st_size) {
		size_t n = sizeof(rbuf_r);
		ssize_t a, b;

		if ((off_t)n > sr.st_size - off)
			n = (size_t)(sr.st_size - off);
		a = pread(r, rbuf_r, n, off);
		b = pread(m, rbuf_m, n, off);
		if (a != (ssize_t)n || b != a)
			fail("%s: reading %zu bytes at %lld: plain %zd, mount "
			     "%zd (%s)", what, n, (long long)off, a, b,
			     b < 0 ? strerror(errno) : "short");
		if (memcmp(rbuf_r, rbuf_m, n)) {
			size_t i = 0;

			while (rbuf_r[i] == rbuf_m[i])
				i++;
			fail("%s: contents differ at byte %lld (mount 0x%02x, "
			     "plain 0x%02x)", what, (long long)off + (long long)i,
			     rbuf_m[i], rbuf_r[i]);
		}
		off += (off_t)n;
	}
}

/* A symlink's target and length (st_size) on both sides. */
static void compare_link(const char *rel, const struct stat *sr,
			 const struct stat *sm)
{
	static char tr[PATH_MAX], tm[PATH_MAX];
	ssize_t a = readlink(rp(rel), tr, sizeof(tr));
	int ea = errno;
	ssize_t b = readlink(mp(rel), tm, sizeof(tm));
	int eb = errno;
	char what[128];

	snprintf(what, sizeof(what), "readlink %s", rel);
	agree(what, a, ea, b, eb);
	if (a > 0 && memcmp(tr, tm, (size_t)a))
		fail("%s: the targets differ", what);
	if (sr->st_size != sm->st_size)
		fail("%s: size %lld on the mount, %lld in the plain folder",
		     what, (long long)sm->st_size, (long long)sr->st_size);
}

/* The user.* attributes of path, sorted, as "name=value;" text. */
static void xattr_text(const char *path, char *out, size_t cap)
{
	char names[4096], val[1024], *sorted[64];
	ssize_t n = llistxattr(path, names, sizeof(names));
	int k = 0;

	out[0] = 0;
	if (n < 0) {
		snprintf(out, cap, "(listxattr: %s)", strerror(errno));
		return;
	}
	for (ssize_t at = 0; at < n && k < 64;
	     at += (ssize_t)strlen(names + at) + 1)
		sorted[k++] = names + at;
	qsort(sorted, (size_t)k, sizeof(*sorted), cmpstr);
	for (int i = 0; i < k; i++) {
		ssize_t len = lgetxattr(path, sorted[i], val, sizeof(val));
		size_t at = strlen(out);

		snprintf(out + at, cap - at, "%s=", sorted[i]);
		for (ssize_t j = 0; j < len; j++) {
			at = strlen(out);
			snprintf(out + at, cap - at, "%02x",
				 (unsigned char)val[j]);
		}
		at = strlen(out);
		snprintf(out + at, cap - at, "%s;",
			 len < 0 ? strerror(errno) : "");
	}
}

static void compare_xattrs(const char *rel)
{
	static char xr[16384], xm[16384];

	xattr_text(rp(rel), xr, sizeof(xr));
	xattr_text(mp(rel), xm, sizeof(xm));
	if (strcmp(xr, xm))
		fail("%s: extended attributes %s on the mount, %s in the "
		     "plain folder", rel, xm, xr);
}

static void compare_path(const char *rel)
{
	struct stat sr, sm;
	int a = lstat(rp(rel), &sr), ea = errno;
	int b = lstat(mp(rel), &sm), eb = errno;
	char what[128];

	snprintf(what, sizeof(what), "lstat %s", rel);
	agree(what, a, ea, b, eb);
	if (a)
		return;
	if ((sr.st_mode & S_IFMT) != (sm.st_mode & S_IFMT))
		fail("%s: type 0%o on the mount, 0%o in the plain folder", rel,
		     sm.st_mode & S_IFMT, sr.st_mode & S_IFMT);
	if (S_ISLNK(sr.st_mode))
		compare_link(rel, &sr, &sm);
	compare_xattrs(rel);
	if ((S_ISCHR(sr.st_mode) || S_ISBLK(sr.st_mode)) &&
	    (sr.st_rdev != sm.st_rdev || sr.st_nlink != sm.st_nlink ||
	     (sr.st_mode & 07777) != (sm.st_mode & 07777) ||
	     sr.st_uid != sm.st_uid || sr.st_gid != sm.st_gid))
		fail("%s: device %u:%u mode 0%o links %lu owner %u:%u on the "
		     "mount, %u:%u 0%o %lu %u:%u in the plain folder", rel,
		     major(sm.st_rdev), minor(sm.st_rdev), sm.st_mode & 07777,
		     (unsigned long)sm.st_nlink, sm.st_uid, sm.st_gid,
		     major(sr.st_rdev), minor(sr.st_rdev), sr.st_mode & 07777,
		     (unsigned long)sr.st_nlink, sr.st_uid, sr.st_gid);
	if (!S_ISREG(sr.st_mode))
		return;
	if (sr.st_nlink != sm.st_nlink)
		fail("%s: %lu links on the mount, %lu in the plain folder", rel,
		     (unsigned long)sm.st_nlink, (unsigned long)sr.st_nlink);
	{
		int r = open(rp(rel), O_RDONLY), m = open(mp(rel), O_RDONLY);

		if (r < 0 || m < 0)
			fail("%s: open for comparing: %s", rel, strerror(errno));
		compare_fds(r, m, rel);
		close(r);
		close(m);
	}
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(const char *path, char **names, int max)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) && n < max)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, (size_t)n, sizeof(*names), cmpstr);
	return n;
}

/* Names, types, sizes, link counts and contents of the whole trees. */
static void compare_trees(const char *rel, const char *when)
{
	char *nr[128], *nm[128];
	int a = list_dir(rp(rel), nr, 128), b = list_dir(mp(rel), nm, 128);

	if (a < 0 || b < 0)
		fail("%s: cannot list folder '%s'", when, rel);
	for (int i = 0; i < a || i < b; i++) {
		if (i >= a || i >= b || strcmp(nr[i], nm[i]))
			fail("%s: folder '%s' lists '%s' on the mount where the "
			     "plain folder has '%s'", when, rel,
			     i < b ? nm[i] : "(nothing)", i < a ? nr[i] : "(nothing)");
	}
	for (int i = 0; i < a; i++) {
		char sub[256];
		struct stat st;

		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", nr[i]);
		compare_path(sub);
		if (lstat(rp(sub), &st) == 0 && S_ISDIR(st.st_mode))
			compare_trees(sub, when);
	}
	for (int i = 0; i < a; i++)
		free(nr[i]);
	for (int i = 0; i < b; i++)
		free(nm[i]);
}

/* ---- operations ---- */

static void fill_wbuf(size_t len)
{
	if (rnd(10) == 0) {
		memset(wbuf, 0, len);	/* written zeros are not holes */
		return;
	}
	for (size_t i = 0; i < len; i += 8) {
		uint64_t x = tu_rand(&rs);

		memcpy(wbuf + i, &x, len - i < 8 ? len - i : 8);
	}
}

static off_t pick_off(off_t size)
{
	static const off_t seams[] = { 0, 1, 4095, 4096, 4097, 8191, 8192, 12288 };

	switch (rnd(12)) {
	case 0: case 1: case 2:
		return seams[rnd(8)];
	case 3:
		return size;
	case 4:
		return size > 0 ? size - 1 : 0;
	case 5:
		return size + 1;
	case 6:	/* a hole of up to 3 blocks */
		return size + (off_t)rnd(3 * 4096) + 1;
	case 7:	/* a hole of over 16 blocks: sparse files */
		return rnd(4) ? (off_t)rnd((uint64_t)size + 1)
			      : size + (off_t)(17 + rnd(24)) * 4096 + (off_t)rnd(4096);
	case 8:	/* a block seam inside the file, give or take one */
		return ((off_t)rnd((uint64_t)size / 4096 + 1) * 4096 +
			(off_t)rnd(3)) - (size > 4096 ? 1 : 0);
	default:
		return (off_t)rnd((uint64_t)size + 1);
	}
}

static size_t pick_len(void)
{
	static const size_t lens[] = { 1, 2, 4095, 4096, 4097, 8192, 8193, 12288 };

	switch (rnd(5)) {
	case 0: case 1:
		return lens[rnd(8)];
	case 2:
		return 1 + rnd(100);
	default:
		return 1 + rnd(MAXWRITE);
	}
}

static struct handle *pick_handle(bool want_append)
{
	int start = (int)rnd(NHANDLES);

	for (int i = 0; i < NHANDLES; i++) {
		struct handle *h = &hs[(start + i) % NHANDLES];

		if (h->used && h->append == want_append)
			return h;
	}
	return NULL;
}

static void close_handle(struct handle *h)
{
	int a = close(h->r), ea = errno;
	int b = close(h->m), eb = errno;

	logop("close handle %d (%s)", (int)(h - hs), h->path);
	agree("close", a, ea, b, eb);
	h->used = false;
}

static void op_open(const char *path, int flags)
{
	struct handle *h = NULL;
	int a, b, ea, eb;

	for (int i = 0; i < NHANDLES; i++)
		if (!hs[i].used)
			h = &hs[i];
	if (!h) {
		close_handle(&hs[rnd(NHANDLES)]);
		for (int i = 0; i < NHANDLES; i++)
			if (!hs[i].used)
				h = &hs[i];
	}
	logop("open %s flags 0%o", path, flags);
	a = open(rp(path), flags | O_CLOEXEC, 0600);
	ea = errno;
	b = open(mp(path), flags | O_CLOEXEC, 0600);
	eb = errno;
	if ((a < 0) != (b < 0) || (a < 0 && ea != eb)) {
		if (a >= 0)
			close(a);
		if (b >= 0)
			close(b);
		agree("open", a < 0 ? -1 : 0, ea, b < 0 ? -1 : 0, eb);
	}
	if (a < 0)
		return;
	*h = (struct handle){ true, (flags & O_APPEND) != 0, a, b, "" };
	snprintf(h->path, sizeof(h->path), "%s", path);
	compare_fds(h->r, h->m, path);
}

/*
 * A target in the link's own folder (never outside either tree), or none;
 * a third of them long (3001 to 4095 bytes: "./" repeated, then the name).
 */
static void link_target(char *out, size_t len)
{
	char name[32];
	size_t want, n, i = 0;

	if (rnd(4) == 0)
		snprintf(name, sizeof(name), "nowhere/f%d", (int)rnd(NNAMES));
	else
		snprintf(name, sizeof(name), "f%d", (int)rnd(NNAMES));
	n = strlen(name);
	want = rnd(3) ? n : 3001 + rnd(4095 - 3001 + 1);
	if (want >= len)
		want = len - 1;
	if ((want - n) % 2) {
		memcpy(out, ".//", 3);
		i = 3;
	}
	for (; i < want - n; i += 2)
		memcpy(out + i, "./", 2);
	memcpy(out + want - n, name, n + 1);
}

static void op_symlink(void)
{
	static char target[PATH_MAX];
	char p1[64];
	long a, b;
	int ea, eb;

	any_file(p1);
	link_target(target, sizeof(target));
	logop("symlink %s -> %.40s (%zu bytes)", p1, target, strlen(target));
	a = symlink(target, rp(p1));
	ea = errno;
	b = symlink(target, mp(p1));
	eb = errno;
	agree("symlink", a, ea, b, eb);
	compare_path(p1);
}

/* utimensat without following: a symlink's own times, or a file's. */
static void op_times(void)
{
	struct timespec tv[2] = { { (time_t)rnd(2000000000), (long)rnd(1000000000) },
				  { (time_t)rnd(2000000000), (long)rnd(1000000000) } };
	struct stat sr, sm;
	char p1[64];
	long a, b;
	int ea, eb;

	if (nnodes && rnd(4) == 0)
		memcpy(p1, nodes[rnd(nnodes)], 64);
	else
		pick_file(p1);
	if (rnd(4) == 0)
		tv[rnd(2)].tv_nsec = UTIME_OMIT;
	logop("utimensat %s nofollow %lld %lld", p1, (long long)tv[0].tv_sec,
	      (long long)tv[1].tv_sec);
	a = utimensat(AT_FDCWD, rp(p1), tv, AT_SYMLINK_NOFOLLOW);
	ea = errno;
	b = utimensat(AT_FDCWD, mp(p1), tv, AT_SYMLINK_NOFOLLOW);
	eb = errno;
	agree("utimensat", a, ea, b, eb);
	if (a || lstat(rp(p1), &sr) || lstat(mp(p1), &sm))
		return;
	/* Only the times set: an omitted one is the last write's, which
	 * differs between the sides. */
	if ((tv[1].tv_nsec != UTIME_OMIT &&
	     (sr.st_mtim.tv_sec != sm.st_mtim.tv_sec ||
	      sr.st_mtim.tv_nsec != sm.st_mtim.tv_nsec)) ||
	    (tv[0].tv_nsec != UTIME_OMIT &&
	     sr.st_atim.tv_sec != sm.st_atim.tv_sec))
		fail("utimensat %s: mtime %lld.%09ld atime %lld on the mount, "
		     "%lld.%09ld and %lld in the plain folder", p1,
		     (long long)sm.st_mtim.tv_sec, sm.st_mtim.tv_nsec,
		     (long long)sm.st_atim.tv_sec,
		     (long long)sr.st_mtim.tv_sec, sr.st_mtim.tv_nsec,
		     (long long)sr.st_atim.tv_sec);
}

/* A device node's name, existing or not: n0 .. n3 in some folder. */
static void pick_node(char *out)
{
	const char *d = dirs[rnd(NDIRS)];

	if (nnodes && rnd(2))
		memcpy(out, nodes[rnd(nnodes)], 64);
	else
		snprintf(out, 64, "%s%sn%d", d, *d ? "/" : "", (int)rnd(4));
}

/* One operation on a device node, at x (and y) on one side. */
static int node_call(unsigned what, const char *x, const char *y, mode_t mode,
		     dev_t dev)
{
	switch (what) {
	case 0: return mknod(x, mode, dev);
	case 1: return chmod(x, mode & 07777);
	case 2: return lchown(x, major(dev), minor(dev) % 3);
	case 3: return rename(x, y);
	case 4: return link(x, y);
	default: return unlink(x);
	}
}

/* Device nodes: made, changed, renamed, linked, removed; never opened. */
static void op_node(void)
{
	static const char *const names[] = { "mknod", "chmod", "lchown",
					     "rename", "link", "unlink" };
	unsigned what = (unsigned)rnd(6);
	mode_t mode = (mode_t)rnd(01000) | (rnd(2) ? S_IFCHR : S_IFBLK);
	dev_t dev = makedev((unsigned)rnd(300), (unsigned)rnd(1 << 20));
	char p1[64], p2[64];
	long a, b;
	int ea, eb;

	pick_node(p1);
	pick_node(p2);
	logop("%s %s %s mode 0%o dev %u:%u", names[what], p1, p2, mode,
	      major(dev), minor(dev));
	a = node_call(what, rp(p1), rp(p2), mode, dev);
	ea = errno;
	b = node_call(what, mp(p1), mp(p2), mode, dev);
	eb = errno;
	agree(names[what], a, ea, b, eb);
	compare_path(p1);
	compare_path(p2);
}

/* Something to hang attributes on: a file, a folder, or anything else. */
static void pick_xattr_path(char *out)
{
	switch (rnd(4)) {
	case 0:
		pick_dir(out);
		break;
	case 1:
		if (nnodes) {
			memcpy(out, nodes[rnd(nnodes)], 64);
			break;
		}
		/* fall through */
	default:
		pick_file(out);
		break;
	}
}

/* One of the few names the stream uses, so that they meet; now and then
 * "user." alone, which names nothing. */
static void pick_xattr_name(char *out)
{
	if (rnd(20))
		snprintf(out, 32, "user.n%d", (int)rnd(4));
	else
		snprintf(out, 32, "user.");
}

/* Each of set, get, list and remove, by path or through an open handle. */
static long x_set(int fd, const char *path, const char *name, size_t len,
		  int fl)
{
	return fd >= 0 ? fsetxattr(fd, name, wbuf, len, fl) :
			 lsetxattr(path, name, wbuf, len, fl);
}

static long x_get(int fd, const char *path, const char *name, void *buf,
		  size_t size)
{
	return fd >= 0 ? fgetxattr(fd, name, buf, size) :
			 lgetxattr(path, name, buf, size);
}

static long x_list(int fd, const char *path, char *buf, size_t size)
{
	return fd >= 0 ? flistxattr(fd, buf, size) :
			 llistxattr(path, buf, size);
}

static long x_remove(int fd, const char *path, const char *name)
{
	return fd >= 0 ? fremovexattr(fd, name) : lremovexattr(path, name);
}

/*
 * setxattr (no flag, XATTR_CREATE or XATTR_REPLACE), getxattr (a size
 * probe, a short buffer or a whole one), listxattr (the same), removexattr.
 * Values stay small: the backing holds the sealed ones, some 75 bytes
 * longer each, in the same inode space as the plain folder's.
 */
static void op_xattr(void)
{
	static const int flags[] = { 0, 0, XATTR_CREATE, XATTR_REPLACE };
	static char vr[1024], vm[1024];
	unsigned what = (unsigned)rnd(4);
	char p[64], name[32], what_s[160];
	struct handle *h = rnd(4) ? NULL : pick_handle(rnd(2));
	int fr = h ? h->r : -1, fm = h ? h->m : -1;
	size_t len, size;
	long a, b;
	int ea, eb, fl;

	/* A handle may name a file removed since: its attributes live on. */
	if (h)
		snprintf(p, sizeof(p), "%s", h->path);
	else
		pick_xattr_path(p);
	pick_xattr_name(name);
	switch (what) {
	case 0:
		len = rnd(4) ? rnd(200) : 0;
		fl = flags[rnd(4)];
		fill_wbuf(len);
		logop("setxattr %s%s %s len %zu flags %d", h ? "handle " : "",
		      p, name, len, fl);
		a = x_set(fr, rp(p), name, len, fl);
		ea = errno;
		b = x_set(fm, mp(p), name, len, fl);
		eb = errno;
		break;
	case 1:
		size = rnd(3) == 0 ? 0 : rnd(3) == 0 ? rnd(200) : sizeof(vr);
		logop("getxattr %s%s %s size %zu", h ? "handle " : "", p, name,
		      size);
		a = x_get(fr, rp(p), name, size ? vr : NULL, size);
		ea = errno;
		b = x_get(fm, mp(p), name, size ? vm : NULL, size);
		eb = errno;
		if (size && a > 0 && a == b && memcmp(vr, vm, (size_t)a))
			fail("getxattr %s %s gives different bytes", p, name);
		break;
	case 2:
		/* Names come in another order: only sizes here, the names
		 * themselves in compare_xattrs. */
		size = rnd(3) == 0 ? 0 : rnd(2) ? rnd(30) : sizeof(vr);
		logop("listxattr %s%s size %zu", h ? "handle " : "", p, size);
		a = x_list(fr, rp(p), size ? vr : NULL, size);
		ea = errno;
		b = x_list(fm, mp(p), size ? vm : NULL, size);
		eb = errno;
		break;
	default:
		logop("removexattr %s%s %s", h ? "handle " : "", p, name);
		a = x_remove(fr, rp(p), name);
		ea = errno;
		b = x_remove(fm, mp(p), name);
		eb = errno;
		break;
	}
	snprintf(what_s, sizeof(what_s), "xattr op %u on %s%s %s", what,
		 h ? "handle " : "", p, name);
	agree(what_s, a, ea, b, eb);
	if (!h)
		compare_path(p);
}

/*
 * fallocate on the plain side.  A file system without zero ranges (tmpfs)
 * gets a punch and a truncate up instead, which leave the same bytes.
 */
static int ref_fallocate(int fd, int mode, off_t off, off_t len)
{
	struct stat st;

	if (!fallocate(fd, mode, off, len))
		return 0;
	if (errno != EOPNOTSUPP || !(mode & FALLOC_FL_ZERO_RANGE) ||
	    fstat(fd, &st))
		return -1;
	if (off < st.st_size &&
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
		      (off + len < st.st_size ? off + len : st.st_size) - off))
		return -1;
	if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > st.st_size)
		return ftruncate(fd, off + len);
	return 0;
}

/*
 * fallocate in every mode: reserve (with or without KEEP_SIZE), punch,
 * zero a range, a punch without KEEP_SIZE (refused by the kernel); and
 * collapse and insert, which phifs refuses (EOPNOTSUPP) where the plain
 * folder's file system may not, so only the mount is asked.
 */
static void op_falloc(void)
{
	static const int modes[] = {
		0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE,
		FALLOC_FL_INSERT_RANGE,
	};
	int mode = modes[rnd(12) < 10 ? rnd(6) : 6 + rnd(2)], ea, eb;
	struct handle *h = pick_handle(rnd(4) == 0);
	char what[160];
	struct stat st;
	off_t off, len;
	long a, b;

	if (!h)
		return;
	cr_assert(fstat(h->r, &st) == 0);
	off = pick_off(st.st_size);
	if (off < 0 || off > MAXSIZE)
		off = (off_t)rnd(MAXSIZE);
	len = rnd(3) ? (off_t)pick_len() : 1 + (off_t)rnd(40 * 4096);
	snprintf(what, sizeof(what), "fallocate handle %d (%s) mode %#x off "
		 "%lld len %lld", (int)(h - hs), h->path, mode, (long long)off,
		 (long long)len);
	logop("%s", what);
	if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
		errno = 0;
		if (fallocate(h->m, mode, off, len) != -1 ||
		    errno != EOPNOTSUPP)
			fail("%s: %s on the mount, want EOPNOTSUPP", what,
			     strerror(errno));
		compare_fds(h->r, h->m, what);
		return;
	}
	a = ref_fallocate(h->r, mode, off, len);
	ea = errno;
	b = fallocate(h->m, mode, off, len);
	eb = errno;
	agree(what, a, ea, b, eb);
	compare_fds(h->r, h->m, what);
}

static void do_step(void)
{
	char p1[64], p2[64], what[160];
	struct handle *h;
	long a, b;
	int ea, eb;
	unsigned op = (unsigned)rnd(124);
	struct stat st;

	nfiles = nsubdirs = nnodes = 0;
	scan("", 0);

	if (op < 26) {			/* pwrite through a handle */
		off_t off;
		size_t len;

		h = pick_handle(false);
		if (!h) {
			pick_file(p1);
			op_open(p1, O_RDWR | O_CREAT);
			return;
		}
		cr_assert(fstat(h->r, &st) == 0);
		off = pick_off(st.st_size);
		len = pick_len();
		if (off < 0 || off > MAXSIZE)
			off = (off_t)rnd(MAXSIZE);
		fill_wbuf(len);
		logop("pwrite handle %d (%s) off %lld len %zu", (int)(h - hs),
		      h->path, (long long)off, len);
		a = pwrite(h->r, wbuf, len, off);
		ea = errno;
		b = pwrite(h->m, wbuf, len, off);
		eb = errno;
		snprintf(what, sizeof(what), "pwrite %s off %lld len %zu",
			 h->path, (long long)off, len);
		agree(what, a, ea, b, eb);
		compare_fds(h->r, h->m, what);
	} else if (op < 33) {		/* O_APPEND write */
		size_t len = pick_len();

		h = pick_handle(true);
		if (!h) {
			pick_file(p1);
			op_open(p1, O_RDWR | O_CREAT | O_APPEND);
			return;
		}
		fill_wbuf(len);
		logop("append handle %d (%s) len %zu", (int)(h - hs), h->path, len);
		a = write(h->r, wbuf, len);
		ea = errno;
		b = write(h->m, wbuf, len);
		eb = errno;
		agree("append write", a, ea, b, eb);
		compare_fds(h->r, h->m, "append write");
	} else if (op < 43) {		/* open */
		static const int fl[] = {
			O_RDWR | O_CREAT, O_RDWR | O_CREAT, O_RDWR | O_CREAT | O_TRUNC,
			O_RDWR | O_CREAT | O_APPEND, O_RDWR, O_RDWR | O_APPEND,
			O_RDWR | O_CREAT | O_EXCL,
		};

		pick_file(p1);
		op_open(p1, fl[rnd(7)]);
	} else if (op < 47) {		/* close */
		h = pick_handle(rnd(2));
		if (h)
			close_handle(h);
	} else if (op < 52) {		/* ftruncate */
		off_t to;

		h = pick_handle(rnd(3) == 0);
		if (!h)
			return;
		cr_assert(fstat(h->r, &st) == 0);
		switch (rnd(6)) {
		case 0: to = 0; break;
		case 1: to = st.st_size / 2; break;
		case 2: to = st.st_size + 1 + (off_t)rnd(3 * 4096); break;
		case 3: to = (off_t)rnd(6) * 4096 + (off_t)rnd(3) - 1; break;
		case 4: to = st.st_size + (off_t)(17 + rnd(10)) * 4096; break;
		default: to = (off_t)rnd((uint64_t)st.st_size + 1); break;
		}
		if (to < 0 || to > MAXSIZE)
			to = (off_t)rnd(MAXSIZE / 4);
		logop("ftruncate handle %d (%s) to %lld", (int)(h - hs), h->path,
		      (long long)to);
		a = ftruncate(h->r, to);
		ea = errno;
		b = ftruncate(h->m, to);
		eb = errno;
		agree("ftruncate", a, ea, b, eb);
		compare_fds(h->r, h->m, "ftruncate");
	} else if (op < 56) {		/* truncate by path */
		off_t to = rnd(2) ? (off_t)rnd(8 * 4096) : (off_t)rnd(3) * 4096;

		pick_file(p1);
		logop("truncate %s to %lld", p1, (long long)to);
		a = truncate(rp(p1), to);
		ea = errno;
		b = truncate(mp(p1), to);
		eb = errno;
		agree("truncate", a, ea, b, eb);
		compare_path(p1);
	} else if (op < 61) {		/* a whole new content: O_TRUNC */
		size_t len = rnd(4) ? pick_len() : 0;
		int r, m;

		pick_file(p1);
		fill_wbuf(len);
		logop("rewrite %s with %zu bytes (O_TRUNC)", p1, len);
		r = open(rp(p1), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		ea = errno;
		m = open(mp(p1), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		eb = errno;
		agree("open O_TRUNC", r < 0 ? -1 : 0, ea, m < 0 ? -1 : 0, eb);
		if (r >= 0) {
			a = write(r, wbuf, len);
			ea = errno;
			b = write(m, wbuf, len);
			eb = errno;
			agree("write after O_TRUNC", a, ea, b, eb);
			a = close(r);
			ea = errno;
			b = close(m);
			eb = errno;
			agree("close after O_TRUNC", a, ea, b, eb);
		}
		compare_path(p1);
	} else if (op < 67) {		/* rename */
		if (rnd(5) == 0) {
			pick_dir(p1);
			pick_dir(p2);
		} else {
			pick_file(p1);
			rnd(3) ? any_file(p2) : pick_file(p2);
		}
		logop("rename %s -> %s", p1, p2);
		a = rename(rp(p1), rp(p2));
		ea = errno;
		b = rename(mp(p1), mp(p2));
		eb = errno;
		snprintf(what, sizeof(what), "rename %s -> %s", p1, p2);
		agree(what, a, ea, b, eb);
		compare_path(p1);
		compare_path(p2);
	} else if (op < 72) {		/* unlink, possibly of an open file */
		pick_file(p1);
		logop("unlink %s", p1);
		a = unlink(rp(p1));
		ea = errno;
		b = unlink(mp(p1));
		eb = errno;
		agree("unlink", a, ea, b, eb);
		compare_path(p1);
	} else if (op < 76) {		/* mkdir */
		pick_dir(p1);
		logop("mkdir %s", p1);
		a = mkdir(rp(p1), 0700);
		ea = errno;
		b = mkdir(mp(p1), 0700);
		eb = errno;
		agree("mkdir", a, ea, b, eb);
		compare_path(p1);
	} else if (op < 78) {		/* rmdir */
		pick_dir(p1);
		logop("rmdir %s", p1);
		a = rmdir(rp(p1));
		ea = errno;
		b = rmdir(mp(p1));
		eb = errno;
		snprintf(what, sizeof(what), "rmdir %s", p1);
		agree(what, a, ea, b, eb);
		compare_path(p1);
	} else if (op < 81) {		/* link */
		pick_file(p1);
		any_file(p2);
		logop("link %s -> %s", p1, p2);
		a = link(rp(p1), rp(p2));
		ea = errno;
		b = link(mp(p1), mp(p2));
		eb = errno;
		agree("link", a, ea, b, eb);
		compare_path(p1);
		compare_path(p2);
	} else if (op < 90) {		/* read a random range */
		off_t off;
		size_t len = 1 + rnd(3 * 4096);

		h = pick_handle(rnd(4) == 0);
		if (!h)
			return;
		cr_assert(fstat(h->r, &st) == 0);
		off = pick_off(st.st_size);
		if (off < 0)
			off = 0;
		logop("pread handle %d (%s) off %lld len %zu", (int)(h - hs),
		      h->path, (long long)off, len);
		a = pread(h->r, rbuf_r, len, off);
		ea = errno;
		b = pread(h->m, rbuf_m, len, off);
		eb = errno;
		agree("pread", a, ea, b, eb);
		if (a > 0 && memcmp(rbuf_r, rbuf_m, (size_t)a))
			fail("pread of %s at %lld gives different bytes", h->path,
			     (long long)off);
	} else if (op < 93) {		/* fsync */
		h = pick_handle(rnd(2));
		if (!h)
			return;
		logop("fsync handle %d (%s)", (int)(h - hs), h->path);
		a = fsync(h->r);
		ea = errno;
		b = fsync(h->m);
		eb = errno;
		agree("fsync", a, ea, b, eb);
	} else if (op < 97) {		/* reopen by the name it was opened as */
		h = pick_handle(rnd(2));
		if (!h)
			return;
		snprintf(p1, sizeof(p1), "%s", h->path);
		close_handle(h);
		op_open(p1, O_RDWR);
	} else if (op < 100) {		/* look at a whole file by path */
		pick_file(p1);
		logop("compare %s", p1);
		compare_path(p1);
	} else if (op < 103) {
		op_symlink();
	} else if (op < 106) {
		op_times();
	} else if (op < 112) {
		op_node();
	} else if (op < 118) {
		op_xattr();
	} else {
		op_falloc();
	}
}

static long env_steps(void)
{
	const char *e = getenv("PHIFS_DIFF_STEPS");

	return e && *e ? strtol(e, NULL, 10) : 10000;
}

Test(mount_diff, random_operations_give_the_same_results_as_a_plain_folder)
{
	struct mu_vol *v;
	long steps = env_steps();

	mu_require_fuse();
	seed = mu_seed();
	rs = seed ^ 0x9E3779B97F4A7C15ULL;
	if (!rs)
		rs = 1;
	fprintf(stderr, "mount_diff: seed %llu (replay with PHIFS_TEST_SEED)\n",
		(unsigned long long)seed);
	v = mu_vol_new(0);
	snprintf(refroot, sizeof(refroot), "%s/ref", v->dir);
	snprintf(mntroot, sizeof(mntroot), "%s", v->mnt);
	cr_assert(mkdir(refroot, 0700) == 0);
	mu_mount(v);

	for (step = 0; step < steps; step++) {
		do_step();
		if (step % 1000 == 999)
			compare_trees("", "periodic tree comparison");
	}
	compare_trees("", "at the end, with files open");
	for (int i = 0; i < NHANDLES; i++)
		if (hs[i].used)
			close_handle(&hs[i]);
	compare_trees("", "at the end, all closed");
	mu_unmount(v);
	mu_mount(v);
	compare_trees("", "after a remount");
	mu_unmount(v);
}

/*
 * The reduction of a failure of the test above (seed 1796773921056330958,
 * step 7258): a file with a committed size ending early in a block gets two
 * appends, the second rewriting the last block of the first before any
 * commit covered it; an fsync; then a close and an open at once.  The kernel
 * sends the RELEASE without waiting, so the daemon may open the file anew
 * while the old handle's journal is still there: a replay of a record that
 * was stale gave zeros at the start of the second append.
 */
Test(mount_diff, appends_then_a_close_and_reopen_read_back_every_byte)
{
	static uint8_t a[8193], b[11802], c[18550], got[38545], want[38545];
	struct mu_vol *v;
	int rounds = getenv("PHIFS_DIFF_ROUNDS") ?
		     atoi(getenv("PHIFS_DIFF_ROUNDS")) : 400;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_fill(a, sizeof(a), 1);
	mu_fill(b, sizeof(b), 2);
	mu_fill(c, sizeof(c), 3);
	memcpy(want, a, sizeof(a));
	memcpy(want + sizeof(a), b, sizeof(b));
	memcpy(want + sizeof(a) + sizeof(b), c, sizeof(c));
	for (int r = 0; r < rounds; r++) {
		const char *path = mu_m(v, "f");
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		cr_assert(fd >= 0);
		cr_assert_eq(write(fd, a, sizeof(a)), (ssize_t)sizeof(a));
		cr_assert_eq(fsync(fd), 0);	/* commits 8193 bytes */
		cr_assert_eq(close(fd), 0);
		fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
		cr_assert(fd >= 0);
		/* Read first, as the test does after each step: with the
		 * partial last page cached, the kernel sends each append as
		 * one WRITE, not split at that page. */
		cr_assert_eq(mu_pread_exact(fd, got, sizeof(a), 0), 0);
		cr_assert_eq(write(fd, b, sizeof(b)), (ssize_t)sizeof(b));
		cr_assert_eq(mu_pread_exact(fd, got, sizeof(a) + sizeof(b), 0), 0);
		cr_assert_eq(write(fd, c, sizeof(c)), (ssize_t)sizeof(c));
		cr_assert_eq(fsync(fd), 0);
		cr_assert_eq(close(fd), 0);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		cr_assert(fd >= 0);
		cr_assert_eq(mu_pread_exact(fd, got, sizeof(got), 0), 0);
		close(fd);
		for (size_t i = 0; i < sizeof(got); i++)
			cr_assert_eq(got[i], want[i], "round %d: byte %zu reads "
				     "0x%02x, written 0x%02x", r, i, got[i],
				     want[i]);
	}
	mu_unmount(v);
}
