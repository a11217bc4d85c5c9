/*
 * test_mount_basic.c — phifs mounted as a user meets it: plaintext never
 * reaches the backing store, `.phifs` stays hidden, sizes are plaintext
 * sizes, a remount reads everything back, wrong keys and second daemons are
 * refused, damaged or cut-short backing files give EIO (never a short read or
 * an early end of file), and symlinks planted in the backing directory are not
 * followed.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "mountutil.h"
#include "testutil.h"

TestSuite(mount_basic, .fini = mu_cleanup_all, .timeout = 120);

/* ---- a small tree of files with known contents ---- */

struct tfile {
	const char *name;
	size_t size;
	off_t hole_at;		/* >= 0: bytes [hole_at, size - 64) are a hole */
	uint64_t seed;
};

static const struct tfile tree[] = {
	{ "empty", 0, -1, 1 },
	{ "one", 1, -1, 2 },
	{ "b4095", 4095, -1, 3 },
	{ "b4096", 4096, -1, 4 },
	{ "b4097", 4097, -1, 5 },
	{ "d/b3x", 3 * 4096 + 17, -1, 6 },
	{ "d/e/hundredk", 100000, -1, 7 },
	{ "holes/small", 10 * 4096 + 100, 4096, 8 },	/* gap of < 16 blocks */
	{ "holes/big", (1 << 20) + 77, 100, 9 },	/* gap of > 16 blocks */
};
#define NTREE (sizeof(tree) / sizeof(tree[0]))

static uint8_t *tree_content(const struct tfile *t)
{
	uint8_t *buf = calloc(1, t->size + 1);

	cr_assert(buf);
	mu_fill(buf, t->size, t->seed);
	if (t->hole_at >= 0)
		memset(buf + t->hole_at, 0, t->size - 64 - (size_t)t->hole_at);
	return buf;
}

static void make_tree(struct mu_vol *v)
{
	cr_assert(mkdir(mu_m(v, "d"), 0700) == 0, "mkdir: %s", strerror(errno));
	cr_assert(mkdir(mu_m(v, "d/e"), 0700) == 0);
	cr_assert(mkdir(mu_m(v, "holes"), 0700) == 0);
	for (size_t i = 0; i < NTREE; i++) {
		const struct tfile *t = &tree[i];
		uint8_t *buf = tree_content(t);

		if (t->hole_at < 0) {
			mu_write_file(mu_m(v, t->name), buf, t->size);
		} else {
			/* Head, then the tail far beyond it: the gap is a hole. */
			int fd = open(mu_m(v, t->name), O_RDWR | O_CREAT, 0600);

			cr_assert(fd >= 0);
			cr_assert(pwrite(fd, buf, (size_t)t->hole_at, 0) == t->hole_at);
			cr_assert(pwrite(fd, buf + t->size - 64, 64,
					 (off_t)t->size - 64) == 64);
			cr_assert(close(fd) == 0);
		}
		free(buf);
	}
	cr_assert(link(mu_m(v, "b4097"), mu_m(v, "d/hardlink")) == 0,
		  "link: %s", strerror(errno));
}

static void check_tree(struct mu_vol *v, const char *when)
{
	struct stat st;

	for (size_t i = 0; i < NTREE; i++) {
		const struct tfile *t = &tree[i];
		uint8_t *want = tree_content(t), *got;
		size_t len;
		int rc;

		cr_assert(stat(mu_m(v, t->name), &st) == 0, "%s: stat %s: %s",
			  when, t->name, strerror(errno));
		cr_assert(S_ISREG(st.st_mode));
		cr_assert_eq((size_t)st.st_size, t->size, "%s: stat of %s gives "
			     "size %lld, the plaintext size is %zu", when, t->name,
			     (long long)st.st_size, t->size);
		rc = mu_read_file(mu_m(v, t->name), &got, &len);
		cr_assert(rc == 0, "%s: reading %s: %s", when, t->name,
			  strerror(-rc));
		cr_assert_eq(len, t->size, "%s: read %zu bytes of %s, want %zu",
			     when, len, t->name, t->size);
		cr_assert(memcmp(got, want, len) == 0, "%s: %s reads back "
			  "different bytes", when, t->name);
		free(got);
		free(want);
	}
	cr_assert(stat(mu_m(v, "d/hardlink"), &st) == 0);
	cr_assert_eq(st.st_size, 4097);
	cr_assert_eq(st.st_nlink, 2, "%s: the hard link count is %lu", when,
		     (unsigned long)st.st_nlink);
}

/* ---- scanning the backing store for plaintext ---- */

static const char *scan_needle[2];
static size_t scan_len[2];
static char scan_hit[512];

static int scan_one(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	uint8_t *buf;
	size_t len;

	(void)ftw;
	if (type == FTW_SL) {
		char target[4096];
		ssize_t n = readlink(path, target, sizeof(target) - 1);

		if (n > 0) {
			target[n] = '\0';
			for (int i = 0; i < 2; i++)
				if (strstr(target, scan_needle[i]))
					snprintf(scan_hit, sizeof(scan_hit),
						 "%s (symlink)", path);
		}
		return 0;
	}
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	cr_assert(mu_read_file(path, &buf, &len) == 0, "cannot read %s", path);
	for (int i = 0; i < 2; i++)
		if (memmem(buf, len, scan_needle[i], scan_len[i]))
			snprintf(scan_hit, sizeof(scan_hit), "%s", path);
	free(buf);
	return 0;
}

/* Fails if any of two strings appears in any backing file, byte-wise. */
static void assert_not_in_backing(struct mu_vol *v, const char *a,
				  const char *b, const char *when)
{
	scan_needle[0] = a;
	scan_needle[1] = b;
	scan_len[0] = strlen(a);
	scan_len[1] = strlen(b);
	scan_hit[0] = '\0';
	cr_assert(nftw(v->backing, scan_one, 16, FTW_PHYS) == 0);
	cr_assert(scan_hit[0] == '\0', "%s: plaintext \"%s\" found in the "
		  "backing file %s", when, a, scan_hit);
}

Test(mount_basic, written_markers_never_appear_in_any_backing_file)
{
	struct mu_vol *v;
	char tag[40], marker[64];
	uint8_t *big;
	size_t biglen = 100 * 1024, mlen;
	uint64_t s = mu_seed();
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);

	snprintf(tag, sizeof(tag), "xq%016llxzv", (unsigned long long)s);
	snprintf(marker, sizeof(marker), "PATIENT-MARKER-%s", tag);
	mlen = strlen(marker);

	/* A file smaller than a block, one with markers across block seams. */
	mu_write_file(mu_m(v, "small"), marker, mlen);
	fd = open(mu_m(v, "seams"), O_RDWR | O_CREAT, 0600);
	cr_assert(fd >= 0);
	for (off_t off = 0; off < 6 * 4096; off += 4096) {
		cr_assert(pwrite(fd, marker, mlen, off > 0 ? off - 7 : 0) ==
			  (ssize_t)mlen);
	}
	cr_assert(fsync(fd) == 0);
	cr_assert(close(fd) == 0);

	/* Marker-laden folders, appends, holes, renames and truncation. */
	cr_assert(mkdir(mu_m(v, "dir"), 0700) == 0);
	cr_assert(mkdir(mu_m(v, "dir/sub"), 0700) == 0);
	big = malloc(biglen);
	cr_assert(big);
	for (size_t i = 0; i < biglen; i++)
		big[i] = (uint8_t)marker[i % mlen];
	mu_write_file(mu_m(v, "dir/sub/rec"), big, biglen);
	fd = open(mu_m(v, "appended"), O_WRONLY | O_CREAT | O_APPEND, 0600);
	cr_assert(fd >= 0);
	for (int i = 0; i < 300; i++)
		cr_assert(write(fd, marker, mlen) == (ssize_t)mlen);
	cr_assert(close(fd) == 0);
	fd = open(mu_m(v, "sparse"), O_RDWR | O_CREAT, 0600);
	cr_assert(fd >= 0);
	cr_assert(pwrite(fd, marker, mlen, 0) == (ssize_t)mlen);
	cr_assert(pwrite(fd, marker, mlen, 1 << 20) == (ssize_t)mlen);
	cr_assert(close(fd) == 0);
	mu_write_file(mu_m(v, "before-rename"), big, 9000);
	cr_assert(rename(mu_m(v, "before-rename"), mu_m(v, "dir/after-rename")) == 0);
	mu_write_file(mu_m(v, "cut"), big, 20000);
	cr_assert(truncate(mu_m(v, "cut"), 5000) == 0);

	/* While mounted (after the writes reached the daemon), then after. */
	sync();
	assert_not_in_backing(v, marker, tag, "while mounted");
	mu_unmount(v);
	assert_not_in_backing(v, marker, tag, "after unmount");

	/* And the plaintext is all there, at its plaintext sizes. */
	mu_mount(v);
	{
		struct { const char *name; size_t size; } sz[] = {
			{ "small", mlen }, { "seams", 5 * 4096 - 7 + mlen },
			{ "dir/sub/rec", biglen }, { "appended", 300 * mlen },
			{ "sparse", (1 << 20) + mlen }, { "dir/after-rename", 9000 },
			{ "cut", 5000 },
		};
		struct stat st;

		for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++) {
			cr_assert(stat(mu_m(v, sz[i].name), &st) == 0);
			cr_assert_eq((size_t)st.st_size, sz[i].size, "stat of %s "
				     "gives %lld, the plaintext size is %zu",
				     sz[i].name, (long long)st.st_size, sz[i].size);
		}
	}
	{
		uint8_t *got;
		size_t len;

		cr_assert(mu_read_file(mu_m(v, "dir/sub/rec"), &got, &len) == 0);
		cr_assert(len == biglen && memcmp(got, big, len) == 0,
			  "dir/sub/rec reads back wrong after a remount");
		free(got);
		cr_assert(mu_read_file(mu_m(v, "cut"), &got, &len) == 0);
		cr_assert(len == 5000 && memcmp(got, big, len) == 0);
		free(got);
	}
	free(big);
	mu_unmount(v);
}

Test(mount_basic, the_phifs_folder_is_invisible_through_the_mount)
{
	struct mu_vol *v;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int n = 0, fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "visible"), "x", 1);
	cr_assert(mkdir(mu_m(v, "sub"), 0700) == 0);

	d = opendir(v->mnt);
	cr_assert(d, "opendir of the mount root: %s", strerror(errno));
	while ((de = readdir(d))) {
		cr_assert(strcmp(de->d_name, ".phifs") != 0,
			  "readdir of the mount root lists .phifs");
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	}
	closedir(d);
	cr_assert_eq(n, 2, "the mount root lists %d entries, want 2", n);

	cr_assert(stat(mu_m(v, ".phifs"), &st) == -1 && errno == ENOENT,
		  "stat of MNT/.phifs: %s", strerror(errno));
	fd = open(mu_m(v, ".phifs/keystore"), O_RDONLY);
	cr_assert(fd < 0, "MNT/.phifs/keystore can be opened");
	cr_assert(stat(mu_b(v, ".phifs/keystore"), &st) == 0,
		  "the keystore is not at BACKING/.phifs/keystore");
	mu_unmount(v);
}

Test(mount_basic, a_remount_with_the_right_key_reads_everything_back)
{
	struct mu_vol *v;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	make_tree(v);
	check_tree(v, "before unmount");
	mu_unmount(v);
	mu_mount(v);
	check_tree(v, "after remount");
	mu_unmount(v);
	/* In the foreground too. */
	mu_mount_fg(v);
	check_tree(v, "after a foreground remount");
	mu_unmount(v);
}

/*
 * A daemon stopped with SIGTERM while folders are open (as systemd stops it)
 * exits 0 and clean: the sanitizer build reports any handle it forgot.
 */
Test(mount_basic, sigterm_with_folders_open_exits_clean)
{
	struct mu_vol *v;
	DIR *d[8];

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	cr_assert(mkdir(mu_m(v, "sub"), 0700) == 0);
	for (int i = 0; i < 8; i++) {
		d[i] = opendir(mu_m(v, i % 2 ? "sub" : ""));
		cr_assert(d[i], "opendir: %s", strerror(errno));
		(void)readdir(d[i]);
	}
	mu_terminate(v);
	for (int i = 0; i < 8; i++)
		closedir(d[i]);
	mu_mount(v);
	cr_assert(access(mu_m(v, "sub"), F_OK) == 0);
	mu_unmount(v);
}

/*
 * A file removed while open keeps its size for the descriptors that still
 * hold it, whether they read or write.  On kernels without getxattrat the
 * daemon once read the removed file's size tag from /proc/self/fd/-1 and
 * answered size 0.
 */
Test(mount_basic, a_file_removed_while_open_keeps_its_size)
{
	static uint8_t buf[100000], got[sizeof(buf)];
	struct mu_vol *v;
	struct stat st;
	int rfd, wfd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_fill(buf, sizeof(buf), 11);
	mu_write_file(mu_m(v, "r"), buf, sizeof(buf));
	rfd = open(mu_m(v, "r"), O_RDONLY);
	cr_assert(rfd >= 0, "open: %s", strerror(errno));
	wfd = open(mu_m(v, "w"), O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert(wfd >= 0, "open: %s", strerror(errno));
	cr_assert_eq(write(wfd, buf, 5000), 5000);

	cr_assert_eq(unlink(mu_m(v, "r")), 0);
	cr_assert_eq(unlink(mu_m(v, "w")), 0);
	cr_assert_eq(fstat(rfd, &st), 0, "fstat: %s", strerror(errno));
	cr_assert_eq(st.st_nlink, 0);
	cr_assert_eq(st.st_size, (off_t)sizeof(buf), "a reader's removed "
		     "file has size %lld, want %zu", (long long)st.st_size,
		     sizeof(buf));
	cr_assert_eq(mu_pread_exact(rfd, got, sizeof(got), 0), 0);
	cr_assert(!memcmp(got, buf, sizeof(buf)));
	cr_assert_eq(fstat(wfd, &st), 0, "fstat: %s", strerror(errno));
	cr_assert_eq(st.st_size, 5000, "a writer's removed file has size "
		     "%lld, want 5000", (long long)st.st_size);
	cr_assert_eq(pwrite(wfd, buf, 3000, 9000), 3000);
	cr_assert_eq(fstat(wfd, &st), 0);
	cr_assert_eq(st.st_size, 12000, "after a write past the end: %lld",
		     (long long)st.st_size);
	close(rfd);
	close(wfd);
	mu_unmount(v);
}

struct space_back {
	const char *dir;
	fsblkcnt_t bfree_before;
	size_t want;
	struct statvfs after;
};

/* Whether dir's file system has want more bytes free than before. */
static bool space_came_back(void *arg)
{
	struct space_back *s = arg;

	cr_assert_eq(statvfs(s->dir, &s->after), 0);
	return (s->after.f_bfree - s->bfree_before) * s->after.f_frsize >=
	       s->want;
}

/*
 * A removed file's space comes back at once (within the writer's RELEASE),
 * even while a descriptor still names it, which holds back the kernel's
 * FORGET for as long as it is open; and the descriptor still gets its
 * attributes.
 */
Test(mount_basic, a_removed_file_frees_its_space_at_once)
{
	static uint8_t buf[8 << 20];
	struct space_back sb = { .want = sizeof(buf) };
	struct statvfs before;
	struct mu_vol *v;
	struct stat st;
	int fd;

	mu_require_fuse();
	v = mu_vol_new(32 << 20);
	mu_mount(v);
	mu_fill(buf, sizeof(buf), 5);
	mu_write_file(mu_m(v, "big"), buf, sizeof(buf));
	fd = open(mu_m(v, "big"), O_PATH);
	cr_assert(fd >= 0, "O_PATH: %s", strerror(errno));
	cr_assert_eq(statvfs(mu_b(v, ""), &before), 0);
	cr_assert_eq(unlink(mu_m(v, "big")), 0);
	/* The RELEASE of the writer's close may come after the unlink. */
	sb.dir = mu_b(v, "");
	sb.bfree_before = before.f_bfree;
	cr_assert(tu_wait_until(space_came_back, &sb, 2000),
		  "the unlink gave back %llu bytes of %zu within 2 s",
		  (unsigned long long)((sb.after.f_bfree - before.f_bfree) *
				       sb.after.f_frsize), sizeof(buf));
	cr_assert_eq(fstat(fd, &st), 0, "fstat of a removed file: %s",
		     strerror(errno));
	cr_assert_eq(st.st_nlink, 0);
	cr_assert_eq(st.st_size, (off_t)sizeof(buf));
	close(fd);
	mu_unmount(v);
}

/*
 * Removed files' last handles close beside later requests, yet the mount's
 * statfs straight after an rm shows all their space back, and the rmdir of
 * their folder succeeds at once.
 */
Test(mount_basic, after_an_rm_statfs_shows_the_space_back_at_once)
{
	static uint8_t buf[256 << 10];
	struct statvfs before, after;
	char name[64];
	struct mu_vol *v;
	struct stat st;

	mu_require_fuse();
	v = mu_vol_new(96 << 20);
	mu_mount_no_audit(v);	/* the log grows, by design, as files go */
	cr_assert(mkdir(mu_m(v, "d"), 0700) == 0);
	cr_assert_eq(statvfs(v->mnt, &before), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "d/f%d", i);
		mu_fill(buf, sizeof(buf), (uint64_t)i);
		mu_write_file(mu_m(v, name), buf, sizeof(buf));
	}
	/* A remount settles every RELEASE; the stats then give the daemon
	 * a handle on each file, closed only when its name goes. */
	mu_unmount(v);
	mu_mount_no_audit(v);
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "d/f%d", i);
		cr_assert_eq(stat(mu_m(v, name), &st), 0);
	}
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "d/f%d", i);
		cr_assert_eq(unlink(mu_m(v, name)), 0);
	}
	cr_assert_eq(statvfs(v->mnt, &after), 0);
	cr_assert_geq(after.f_bfree + 16, before.f_bfree, "free blocks %llu "
		      "after the rm, %llu before the files were written",
		      (unsigned long long)after.f_bfree,
		      (unsigned long long)before.f_bfree);
	cr_assert_eq(rmdir(mu_m(v, "d")), 0, "rmdir: %s", strerror(errno));
	mu_unmount(v);
}

struct sysfs_value {
	const char *path;
	const char *want;
	char got[32];
};

/* Whether a sysfs file reads as the wanted text. */
static bool sysfs_reads(void *arg)
{
	struct sysfs_value *s = arg;
	FILE *f = fopen(s->path, "r");

	cr_assert(f, "%s: %s", s->path, strerror(errno));
	cr_assert(fgets(s->got, sizeof(s->got), f));
	fclose(f);
	return !strcmp(s->got, s->want);
}

/* Sequential reads come in 1 MiB requests, not the kernel's 128 KiB. */
Test(mount_basic, the_mount_reads_ahead_one_mib)
{
	char path[96];
	struct sysfs_value ra = { path, "1024\n", "" };
	struct mu_vol *v;
	struct stat st;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	cr_assert_eq(stat(v->mnt, &st), 0);
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 major(st.st_dev), minor(st.st_dev));
	if (access(path, W_OK))
		mu_skip("%s is not writable here", path);
	/* The daemon sets it just after the mount shows up. */
	tu_wait_until(sysfs_reads, &ra, 2000);
	cr_assert_str_eq(ra.got, "1024\n", "read_ahead_kb");
	mu_unmount(v);
}

Test(mount_basic, a_wrong_key_is_refused_with_one_line_and_nothing_is_mounted)
{
	struct mu_vol *v;
	char wrong[256];
	int st;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "f"), "secret", 6);
	mu_unmount(v);

	snprintf(wrong, sizeof(wrong), "%s/wrong.key", v->dir);
	mu_keygen(v, wrong);
	for (int fg = 0; fg < 2; fg++) {
		st = mu_phifs(v, fg, wrong, NULL, NULL, NULL);
		cr_assert_eq(st, 1, "phifs%s with a wrong key exited %d, want 1; "
			     "stderr: %s", fg ? " -f" : "", st, v->err);
		cr_assert_eq(mu_lines(v->err), 1, "want one line on stderr, got: "
			     "\"%s\"", v->err);
		cr_assert(strcasestr(v->err, "key"), "the message does not say "
			  "what is wrong: %s", v->err);
		cr_assert(!mu_is_mounted(v->mnt), "something is mounted after "
			  "a wrong key");
		cr_assert_eq(mu_procs_with(v->mnt), 0, "a phifs process is left "
			     "running after a wrong key");
	}
	/* The right key still works. */
	mu_mount(v);
	{
		uint8_t *got;
		size_t len;

		cr_assert(mu_read_file(mu_m(v, "f"), &got, &len) == 0);
		cr_assert(len == 6 && !memcmp(got, "secret", 6));
		free(got);
	}
	mu_unmount(v);
}

Test(mount_basic, a_second_daemon_on_the_same_backing_is_refused_and_the_first_keeps_working)
{
	struct mu_vol *v;
	char mnt2[256];
	uint8_t *got;
	size_t len;
	int st;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "before"), "one", 3);
	snprintf(mnt2, sizeof(mnt2), "%s/mnt2", v->dir);
	cr_assert(mkdir(mnt2, 0700) == 0);

	for (int fg = 0; fg < 2; fg++) {
		st = mu_phifs(v, fg, NULL, NULL, mnt2, NULL);
		cr_assert(st != 0, "a second phifs%s on the same backing "
			  "directory was accepted", fg ? " -f" : "");
		cr_assert_eq(st, 1, "the second phifs exited %d, want 1", st);
		cr_assert_eq(mu_lines(v->err), 1, "want one line on stderr, "
			     "got: \"%s\"", v->err);
		cr_assert(!mu_is_mounted(mnt2));
	}

	/* The first mount is untouched and still works. */
	cr_assert(mu_is_mounted(v->mnt));
	cr_assert(mu_read_file(mu_m(v, "before"), &got, &len) == 0);
	cr_assert(len == 3 && !memcmp(got, "one", 3));
	free(got);
	mu_write_file(mu_m(v, "after"), "two", 3);
	cr_assert(mu_read_file(mu_m(v, "after"), &got, &len) == 0);
	cr_assert(len == 3 && !memcmp(got, "two", 3));
	free(got);
	mu_unmount(v);

	/* Once the first is gone, the volume mounts again. */
	mu_mount(v);
	cr_assert(mu_read_file(mu_m(v, "after"), &got, &len) == 0);
	cr_assert(len == 3 && !memcmp(got, "two", 3));
	free(got);
	mu_unmount(v);
}

/* ---- damage ---- */

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	cr_assert(pread(fd, &c, 1, off) == 1, "backing file %s is shorter than "
		  "docs/FORMAT.md says", path);
	c ^= 0x20;
	cr_assert(pwrite(fd, &c, 1, off) == 1);
	cr_assert(close(fd) == 0);
}

/*
 * Block i of fd reads exactly as want, or (bad) fails with EIO and with
 * nothing else: not a short count, not 0, not wrong bytes.
 */
static void check_block(int fd, const uint8_t *want, size_t size, size_t i,
			bool bad, const char *name)
{
	uint8_t buf[MU_BS];
	size_t off = i * MU_BS, len = size - off < MU_BS ? size - off : MU_BS;
	ssize_t r = pread(fd, buf, len, (off_t)off);

	if (bad) {
		cr_assert(r == -1, "%s: reading damaged block %zu returned %zd "
			  "(want -1 with EIO)", name, i, r);
		cr_assert_eq(errno, EIO, "%s: reading damaged block %zu: %s, "
			     "want EIO", name, i, strerror(errno));
	} else {
		cr_assert(r == (ssize_t)len, "%s: reading intact block %zu "
			  "returned %zd (%s), want %zu", name, i, r,
			  r < 0 ? strerror(errno) : "short", len);
		cr_assert(memcmp(buf, want + off, len) == 0, "%s: intact block "
			  "%zu reads back wrong", name, i);
	}
}

/*
 * read() from 0 in big steps: the bytes before the first error are right,
 * and the first error is EIO at or before first_bad block, never an end of
 * file inside the size.
 */
static void check_read_through(const char *path, const uint8_t *want,
			       size_t size, size_t first_bad)
{
	int fd = open(path, O_RDONLY);
	size_t got = 0, cap = size + 65536;
	uint8_t *buf = malloc(cap);
	ssize_t r;

	cr_assert(fd >= 0 && buf);
	for (;;) {
		r = read(fd, buf + got, 65536);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	cr_assert(r != 0, "%s: read() hit end of file at %zu, inside the "
		  "file's size %zu (an early EOF)", path, got, size);
	cr_assert_eq(errno, EIO, "%s: read() failed with %s at %zu, want EIO",
		     path, strerror(errno), got);
	cr_assert(got <= first_bad * MU_BS, "%s: read() returned %zu bytes, "
		  "past the damaged block %zu", path, got, first_bad);
	cr_assert(memcmp(buf, want, got) == 0, "%s: the bytes read before the "
		  "error are wrong", path);
	free(buf);
	close(fd);
}

Test(mount_basic, a_flipped_byte_in_one_block_gives_eio_for_that_block_only)
{
	struct mu_vol *v;
	size_t size = 10 * MU_BS + 1000, nblk = 11;
	uint8_t *want = malloc(size);
	struct stat st;
	int fd;
	static const struct { const char *name; size_t k; off_t within; } dmg[] = {
		{ "mid", 3, 2000 },		/* ciphertext */
		{ "nonce", 0, 5 },		/* nonce of the first block */
		{ "tag", 7, MU_SB - 3 },	/* tag */
		{ "last", 10, 12 + 500 },	/* the partial last block */
	};

	mu_require_fuse();
	cr_assert(want);
	mu_fill(want, size, 42);
	v = mu_vol_new(0);
	mu_mount(v);
	for (size_t j = 0; j < 4; j++)
		mu_write_file(mu_m(v, dmg[j].name), want, size);
	mu_unmount(v);

	for (size_t j = 0; j < 4; j++) {
		cr_assert(stat(mu_b(v, dmg[j].name), &st) == 0);
		cr_assert(st.st_size >= MU_BLOCK_OFF(nblk), "backing file %s is "
			  "%lld bytes, docs/FORMAT.md says %lld", dmg[j].name,
			  (long long)st.st_size, (long long)MU_BLOCK_OFF(nblk));
		flip_byte(mu_b(v, dmg[j].name), MU_BLOCK_OFF(dmg[j].k) + dmg[j].within);
	}
	mu_mount(v);
	for (size_t j = 0; j < 4; j++) {
		const char *path = mu_m(v, dmg[j].name);

		cr_assert(stat(path, &st) == 0);
		cr_assert_eq((size_t)st.st_size, size);
		fd = open(path, O_RDONLY);
		cr_assert(fd >= 0, "open %s: %s", dmg[j].name, strerror(errno));
		/* The damaged one first, then all, then it again. */
		check_block(fd, want, size, dmg[j].k, true, dmg[j].name);
		for (size_t i = 0; i < nblk; i++)
			check_block(fd, want, size, i, i == dmg[j].k, dmg[j].name);
		check_block(fd, want, size, dmg[j].k, true, dmg[j].name);
		close(fd);
		check_read_through(path, want, size, dmg[j].k);
		cr_assert(stat(path, &st) == 0);
		cr_assert_eq((size_t)st.st_size, size, "%s: the size changed to "
			     "%lld after a failed read", dmg[j].name,
			     (long long)st.st_size);
	}
	mu_unmount(v);
	free(want);
}

Test(mount_basic, a_backing_file_cut_short_gives_eio_never_a_short_read_or_early_eof)
{
	struct mu_vol *v;
	size_t size = 20 * MU_BS + 500, nblk = 21;
	uint8_t *want = malloc(size);
	struct stat st;
	static const struct { const char *name; off_t cut; size_t first_bad; } cuts[] = {
		{ "mid-block", MU_BLOCK_OFF(12) + 100, 12 },
		{ "on-a-seam", MU_BLOCK_OFF(15), 15 },
		{ "last-block", MU_BLOCK_OFF(20) + MU_SB - 1, 20 },
		{ "header-only", MU_HDR, 0 },
	};
	int fd;

	mu_require_fuse();
	cr_assert(want);
	mu_fill(want, size, 7);
	v = mu_vol_new(0);
	mu_mount(v);
	for (size_t j = 0; j < 4; j++)
		mu_write_file(mu_m(v, cuts[j].name), want, size);
	mu_unmount(v);
	for (size_t j = 0; j < 4; j++)
		cr_assert(truncate(mu_b(v, cuts[j].name), cuts[j].cut) == 0);
	mu_mount(v);

	for (size_t j = 0; j < 4; j++) {
		const char *path = mu_m(v, cuts[j].name);

		cr_assert(stat(path, &st) == 0, "stat %s: %s", cuts[j].name,
			  strerror(errno));
		cr_assert_eq((size_t)st.st_size, size, "%s: stat gives %lld, "
			     "the authenticated size is %zu", cuts[j].name,
			     (long long)st.st_size, size);
		fd = open(path, O_RDONLY);
		cr_assert(fd >= 0);
		/* Missing blocks first, so no read-ahead has touched them. */
		for (size_t i = nblk; i-- > cuts[j].first_bad;)
			check_block(fd, want, size, i, true, cuts[j].name);
		for (size_t i = 0; i < nblk; i++)
			check_block(fd, want, size, i, i >= cuts[j].first_bad,
				    cuts[j].name);
		close(fd);
		check_read_through(path, want, size, cuts[j].first_bad);
		/* A read that straddles the cut: EIO, or a short count that
		 * stops at the cut and an EIO right after it. */
		if (cuts[j].first_bad > 0) {
			size_t at = (cuts[j].first_bad - 1) * MU_BS;
			uint8_t buf[2 * MU_BS];
			ssize_t r;

			fd = open(path, O_RDONLY);
			r = pread(fd, buf, sizeof(buf), (off_t)at);
			cr_assert(r == -1 || r == MU_BS, "%s: a read across the "
				  "cut returned %zd", cuts[j].name, r);
			if (r == -1)
				cr_assert_eq(errno, EIO);
			else
				cr_assert(memcmp(buf, want + at, MU_BS) == 0);
			close(fd);
		}
		cr_assert(stat(path, &st) == 0);
		cr_assert_eq((size_t)st.st_size, size, "%s: the size changed to "
			     "%lld after failed reads", cuts[j].name,
			     (long long)st.st_size);
	}
	mu_unmount(v);
	free(want);
}

/* ---- symlinks planted in the backing store ---- */

static bool same_as_file(const uint8_t *buf, size_t len, const char *path)
{
	uint8_t *real;
	size_t rlen;
	bool same;

	if (!buf || mu_read_file(path, &real, &rlen))
		return false;
	same = rlen == len && !memcmp(real, buf, len);
	free(real);
	return same;
}

/* Problems found, one per line: this test reports all of them at once. */
static char problems[4096];

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
	size_t n = strlen(problems);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problems + n, sizeof(problems) - n, fmt, ap);
	va_end(ap);
	n = strlen(problems);
	if (n + 1 < sizeof(problems))
		strcat(problems, "\n");
}

/* How the mount shows a planted link: "a symlink to X", "a folder", ... */
static const char *shown_as(const char *path)
{
	static char buf[600];
	char t[512];
	struct stat st;
	ssize_t n;

	if (lstat(path, &st))
		snprintf(buf, sizeof(buf), "absent (%s)", strerror(errno));
	else if (S_ISLNK(st.st_mode) && (n = readlink(path, t, sizeof(t) - 1)) >= 0)
		snprintf(buf, sizeof(buf), "a symlink to '%.*s', which the "
			 "kernel then follows", (int)n, t);
	else
		snprintf(buf, sizeof(buf), "%s", S_ISDIR(st.st_mode) ? "a folder" :
			 S_ISREG(st.st_mode) ? "a regular file" : "something else");
	return buf;
}

Test(mount_basic, symlinks_planted_in_the_backing_directory_are_not_followed)
{
	struct mu_vol *v;
	char outside[256], secret[300], events[4096], target[300];
	static const char secret_text[] = "OUTSIDE-SECRET-d41d8cd98f00b204";
	uint8_t *got;
	size_t len;
	int fd, ino, rc;
	DIR *d;
	struct dirent *de;
	ssize_t n;

	mu_require_fuse();
	problems[0] = '\0';
	v = mu_vol_new(0);
	snprintf(outside, sizeof(outside), "%s/outside", v->dir);
	snprintf(secret, sizeof(secret), "%s/secret", outside);
	cr_assert(mkdir(outside, 0700) == 0);
	mu_write_file(secret, secret_text, sizeof(secret_text) - 1);
	mu_mount(v);
	cr_assert(mkdir(mu_m(v, "sub"), 0700) == 0);
	mu_write_file(mu_m(v, "sub/ok"), "fine", 4);
	mu_unmount(v);

	/* An attacker with write access to the backing store plants these. */
	cr_assert(symlink("/etc", mu_b(v, "evil")) == 0);
	cr_assert(symlink(outside, mu_b(v, "sub/link")) == 0);
	cr_assert(symlink(secret, mu_b(v, "sub/flink")) == 0);
	snprintf(target, sizeof(target), "%s", mu_b(v, "sub/ok"));
	cr_assert(symlink(target, mu_b(v, "inner")) == 0);

	ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	cr_assert(ino >= 0);
	cr_assert(inotify_add_watch(ino, outside, IN_ALL_EVENTS) >= 0);
	mu_mount(v);

	/* Reading through them. */
	rc = mu_read_file(mu_m(v, "evil/passwd"), &got, &len);
	if (rc == 0)
		problem("MNT/evil/passwd can be read (%zu bytes%s); MNT/evil is "
			"%s", len, same_as_file(got, len, "/etc/passwd") ?
			", the host's /etc/passwd" : "", shown_as(mu_m(v, "evil")));
	else if (rc != -ELOOP && rc != -EACCES && rc != -ENOENT &&
		 rc != -EIO && rc != -ENOTDIR && rc != -EPERM)
		problem("reading MNT/evil/passwd fails with %s", strerror(-rc));
	free(got);
	d = opendir(mu_m(v, "evil"));
	if (d) {
		while ((de = readdir(d)))
			if (!strcmp(de->d_name, "passwd"))
				problem("listing MNT/evil lists the host's /etc");
		closedir(d);
	}
	rc = mu_read_file(mu_m(v, "sub/link/secret"), &got, &len);
	if (rc == 0)
		problem("MNT/sub/link/secret (outside the backing directory) "
			"can be read; MNT/sub/link is %s",
			shown_as(mu_m(v, "sub/link")));
	free(got);
	rc = mu_read_file(mu_m(v, "sub/flink"), &got, &len);
	if (rc == 0 && len == sizeof(secret_text) - 1 &&
	    !memcmp(got, secret_text, len))
		problem("MNT/sub/flink reads the file outside the backing "
			"directory; it is %s", shown_as(mu_m(v, "sub/flink")));
	free(got);
	rc = mu_read_file(mu_m(v, "inner"), &got, &len);
	if (rc == 0 && len == 4 && !memcmp(got, "fine", 4))
		problem("MNT/inner (a symlink to a backing path) is followed "
			"inside the daemon");
	free(got);

	/* Writing through them. */
	fd = open(mu_m(v, "sub/link/new"), O_WRONLY | O_CREAT, 0600);
	if (fd >= 0) {
		n = write(fd, "PHI", 3);
		(void)n;
		close(fd);
		problem("a file can be created through MNT/sub/link%s",
			access(mu_b(v, "../outside/new"), F_OK) == 0 ? ", and it "
			"lands unencrypted outside the backing directory" : "");
	}
	if (mkdir(mu_m(v, "sub/link/newdir"), 0700) == 0)
		problem("a folder can be made through MNT/sub/link");
	fd = open(mu_m(v, "sub/flink"), O_WRONLY | O_TRUNC);
	if (fd >= 0) {
		n = write(fd, "overwritten", 11);
		(void)n;
		close(fd);
	}
	rc = truncate(mu_m(v, "sub/flink"), 0);
	(void)rc;

	/* The mount still works, and nothing outside was touched. */
	cr_assert(mu_read_file(mu_m(v, "sub/ok"), &got, &len) == 0);
	cr_assert(len == 4 && !memcmp(got, "fine", 4));
	free(got);
	mu_unmount(v);

	/* Before this test's own look at the folder, which inotify sees too. */
	n = read(ino, events, sizeof(events));
	if (n > 0) {
		const struct inotify_event *e = (const void *)events;

		problem("something opened, read or wrote outside the backing "
			"directory (first inotify event: mask 0x%x on \"%s\")",
			e->mask, e->len ? e->name : ".");
	}
	close(ino);
	if (!same_as_file((const uint8_t *)secret_text, sizeof(secret_text) - 1,
			  secret))
		problem("the file outside the backing directory was changed "
			"through MNT/sub/flink");
	d = opendir(outside);
	cr_assert(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "secret"))
			problem("'%s' was created outside the backing directory",
				de->d_name);
	closedir(d);
	cr_assert(problems[0] == '\0', "planted symlinks are followed:\n%s",
		  problems);
}
