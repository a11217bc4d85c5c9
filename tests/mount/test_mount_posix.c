/*
 * test_mount_posix.c — the corners of POSIX a restore, an image unpacker or
 * a chroot builder reaches: a symlink's own times (utimensat with
 * AT_SYMLINK_NOFOLLOW, `touch -h`), symlink targets up to PATH_MAX - 1
 * bytes, block and character device nodes.  Each through the mount, and again
 * after a remount.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "mountutil.h"
#include "testutil.h"

TestSuite(mount_posix, .fini = mu_cleanup_all, .timeout = 120);

/* ---- a symlink's own times ---- */

Test(mount_posix, a_symlinks_own_times_are_set_and_kept)
{
	const struct timespec tv[2] = { { 1000000000, 123456789 },
					{ 1200000000, 987654321 } };
	struct mu_vol *v;
	struct stat st, target;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "file"), "x", 1);
	cr_assert(symlink("file", mu_m(v, "link")) == 0);
	cr_assert(stat(mu_m(v, "file"), &target) == 0);
	cr_assert(utimensat(AT_FDCWD, mu_m(v, "link"), tv,
			    AT_SYMLINK_NOFOLLOW) == 0, "%s", strerror(errno));
	cr_assert(lstat(mu_m(v, "link"), &st) == 0);
	cr_assert_eq(st.st_mtim.tv_sec, tv[1].tv_sec);
	cr_assert_eq(st.st_mtim.tv_nsec, tv[1].tv_nsec);
	cr_assert_eq(st.st_atim.tv_sec, tv[0].tv_sec);
	/* The link's, not its target's. */
	cr_assert(stat(mu_m(v, "file"), &st) == 0);
	cr_assert_eq(st.st_mtim.tv_sec, target.st_mtim.tv_sec);
	mu_unmount(v);
	mu_mount(v);
	cr_assert(lstat(mu_m(v, "link"), &st) == 0);
	cr_assert_eq(st.st_mtim.tv_sec, tv[1].tv_sec);
	cr_assert_eq(st.st_mtim.tv_nsec, tv[1].tv_nsec);
	mu_unmount(v);
}

/* ---- symlinks up to PATH_MAX - 1 ---- */

/* "./" repeated to make a target of exactly len bytes that leads to name. */
static char *padded_target(size_t len, const char *name)
{
	size_t n = strlen(name), i = 0;
	char *t = malloc(len + 1);

	cr_assert(t && len >= n + 3);
	if ((len - n) % 2) {	/* odd: one slash more */
		memcpy(t, ".//", 3);
		i = 3;
	}
	for (; i < len - n; i += 2)
		memcpy(t + i, "./", 2);
	memcpy(t + len - n, name, n + 1);
	return t;
}

static void assert_link(struct mu_vol *v, const char *rel, const char *t)
{
	static char got[PATH_MAX + 1];
	struct stat st;
	ssize_t n;

	cr_assert(lstat(mu_m(v, rel), &st) == 0, "%s: %s", rel,
		  strerror(errno));
	cr_assert(S_ISLNK(st.st_mode), "%s: mode 0%o", rel, st.st_mode);
	cr_assert_eq(st.st_size, (off_t)strlen(t), "%s", rel);
	n = readlink(mu_m(v, rel), got, sizeof(got));
	cr_assert_eq(n, (ssize_t)strlen(t), "%s: readlink %zd (%s)", rel, n,
		     strerror(errno));
	cr_assert(memcmp(got, t, (size_t)n) == 0, "%s", rel);
}

Test(mount_posix, symlinks_take_targets_up_to_path_max_less_one)
{
	static const size_t lens[] = { 3000, 3002, 3600, 4095 };
	char *t[4], name[32], *toolong;
	uint8_t *content, *got;
	struct mu_vol *v;
	size_t len;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "file"), "content", 7);
	for (int i = 0; i < 4; i++) {
		t[i] = padded_target(lens[i], "file");
		snprintf(name, sizeof(name), "l%zu", lens[i]);
		cr_assert_eq(strlen(t[i]), lens[i]);
		cr_assert(symlink(t[i], mu_m(v, name)) == 0, "%zu: %s",
			  lens[i], strerror(errno));
		assert_link(v, name, t[i]);
		/* Followed by the kernel, to the file. */
		cr_assert(mu_read_file(mu_m(v, name), &content, &len) == 0);
		cr_assert(len == 7 && !memcmp(content, "content", 7));
		free(content);
	}
	toolong = padded_target(4096, "file");
	cr_assert(symlink(toolong, mu_m(v, "long")) == -1);
	cr_assert_eq(errno, ENAMETOOLONG);
	free(toolong);
	/* Renamed, linked and removed like any symlink. */
	cr_assert(rename(mu_m(v, "l4095"), mu_m(v, "m4095")) == 0);
	cr_assert(link(mu_m(v, "m4095"), mu_m(v, "n4095")) == 0);
	assert_link(v, "n4095", t[3]);
	cr_assert(unlink(mu_m(v, "l3600")) == 0);
	cr_assert(lstat(mu_m(v, "l3600"), &(struct stat){ 0 }) == -1);
	mu_unmount(v);
	/* No target in the clear in the backing directory. */
	cr_assert(mu_read_file(mu_b(v, "m4095"), &got, &len) == 0);
	cr_assert(!memmem(got, len, "././", 4));
	free(got);
	mu_mount(v);
	assert_link(v, "l3000", t[0]);
	assert_link(v, "l3002", t[1]);
	assert_link(v, "m4095", t[3]);
	assert_link(v, "n4095", t[3]);
	mu_unmount(v);
	for (int i = 0; i < 4; i++)
		free(t[i]);
}

Test(mount_posix, a_long_symlink_altered_or_planted_in_the_backing_is_refused)
{
	struct mu_vol *v;
	char *t = padded_target(4000, "file");
	uint8_t *rec;
	size_t len;
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	cr_assert(symlink(t, mu_m(v, "long")) == 0);
	mu_unmount(v);
	cr_assert(mu_read_file(mu_b(v, "long"), &rec, &len) == 0);
	rec[len / 2] ^= 1;
	fd = open(mu_b(v, "long"), O_WRONLY);
	cr_assert(fd >= 0 && pwrite(fd, rec, len, 0) == (ssize_t)len);
	close(fd);
	/* A record from nowhere: the magic and garbage. */
	memcpy(rec, "PHIFSREC\1\0\1\0", 12);
	mu_write_file(mu_b(v, "planted"), rec, len);
	cr_assert(chmod(mu_b(v, "planted"), 01644) == 0);
	free(rec);
	mu_mount(v);
	for (int i = 0; i < 2; i++) {
		const char *name = i ? "planted" : "long";
		struct stat st;
		char buf[16];

		cr_assert(lstat(mu_m(v, name), &st) == 0, "%s", name);
		cr_assert(!S_ISLNK(st.st_mode), "%s shows as a symlink", name);
		cr_assert(readlink(mu_m(v, name), buf, sizeof(buf)) == -1);
		fd = open(mu_m(v, name), O_RDONLY);
		cr_assert(fd == -1 && errno == EIO, "%s: open gives %d (%s)",
			  name, fd, strerror(errno));
		cr_assert(unlink(mu_m(v, name)) == 0, "%s", name);
	}
	mu_unmount(v);
	free(t);
}

/* ---- device nodes ---- */

static void assert_node(struct mu_vol *v, const char *rel, mode_t type,
			mode_t perm, dev_t rdev)
{
	struct stat st;

	cr_assert(lstat(mu_m(v, rel), &st) == 0, "%s: %s", rel,
		  strerror(errno));
	cr_assert_eq(st.st_mode & S_IFMT, type, "%s: mode 0%o", rel,
		     st.st_mode);
	cr_assert_eq(st.st_mode & 07777, perm, "%s: mode 0%o", rel,
		     st.st_mode);
	cr_assert_eq(st.st_rdev, rdev, "%s: rdev %u:%u", rel,
		     major(st.st_rdev), minor(st.st_rdev));
}

/* The type a listing gives name, as ls and find see it. */
static unsigned char listed_type(struct mu_vol *v, const char *name)
{
	DIR *d = opendir(mu_m(v, ""));
	struct dirent *de;
	unsigned char t = 255;

	cr_assert(d);
	while ((de = readdir(d)))
		if (!strcmp(de->d_name, name))
			t = de->d_type;
	closedir(d);
	return t;
}

Test(mount_posix, device_nodes_are_made_shown_changed_and_removed)
{
	struct mu_vol *v;
	struct stat st;
	unsigned char t;
	int fd;

	mu_require_fuse();
	umask(0);	/* the modes asked for, whole */
	v = mu_vol_new(0);
	mu_mount(v);
	cr_assert(mknod(mu_m(v, "null"), S_IFCHR | 0666, makedev(1, 3)) == 0,
		  "%s", strerror(errno));
	cr_assert(mknod(mu_m(v, "sda1"), S_IFBLK | 0640, makedev(8, 1)) == 0);
	cr_assert(mknod(mu_m(v, "big"), S_IFCHR | 0600,
			makedev(4000, 1000000)) == 0);
	assert_node(v, "null", S_IFCHR, 0666, makedev(1, 3));
	assert_node(v, "sda1", S_IFBLK, 0640, makedev(8, 1));
	assert_node(v, "big", S_IFCHR, 0600, makedev(4000, 1000000));
	t = listed_type(v, "null");
	cr_assert(t == DT_CHR || t == DT_UNKNOWN, "listed as %u", t);
	t = listed_type(v, "sda1");
	cr_assert(t == DT_BLK || t == DT_UNKNOWN, "listed as %u", t);
	/* The mount is nodev: no device opens through it. */
	fd = open(mu_m(v, "null"), O_RDONLY);
	cr_assert(fd == -1 && errno == EACCES, "open gives %d (%s)", fd,
		  strerror(errno));
	cr_assert(chmod(mu_m(v, "null"), 0620) == 0);
	cr_assert(chown(mu_m(v, "null"), 1234, 5678) == 0);
	assert_node(v, "null", S_IFCHR, 0620, makedev(1, 3));
	cr_assert(lstat(mu_m(v, "null"), &st) == 0);
	cr_assert(st.st_uid == 1234 && st.st_gid == 5678);
	cr_assert(rename(mu_m(v, "sda1"), mu_m(v, "disk")) == 0);
	cr_assert(link(mu_m(v, "disk"), mu_m(v, "disk2")) == 0);
	assert_node(v, "disk2", S_IFBLK, 0640, makedev(8, 1));
	cr_assert(lstat(mu_m(v, "disk"), &st) == 0 && st.st_nlink == 2);
	cr_assert(unlink(mu_m(v, "big")) == 0);
	cr_assert(lstat(mu_m(v, "big"), &st) == -1 && errno == ENOENT);
	mu_unmount(v);
	/* No device node in the backing directory. */
	cr_assert(lstat(mu_b(v, "null"), &st) == 0 && S_ISREG(st.st_mode));
	mu_mount(v);
	assert_node(v, "null", S_IFCHR, 0620, makedev(1, 3));
	assert_node(v, "disk", S_IFBLK, 0640, makedev(8, 1));
	cr_assert(lstat(mu_m(v, "null"), &st) == 0);
	cr_assert(st.st_uid == 1234 && st.st_gid == 5678);
	mu_unmount(v);
}

Test(mount_posix, device_nodes_altered_or_planted_in_the_backing_lead_nowhere)
{
	struct mu_vol *v;
	uint8_t *rec;
	size_t len;
	struct stat st;
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	cr_assert(mknod(mu_m(v, "null"), S_IFCHR | 0666, makedev(1, 3)) == 0);
	mu_unmount(v);
	/* Altered: the device number is sealed. */
	cr_assert(mu_read_file(mu_b(v, "null"), &rec, &len) == 0);
	rec[len - 20] ^= 1;
	fd = open(mu_b(v, "null"), O_WRONLY);
	cr_assert(fd >= 0 && pwrite(fd, rec, len, 0) == (ssize_t)len);
	close(fd);
	free(rec);
	/* Planted: a real device node. */
	cr_assert(mknod(mu_b(v, "real"), S_IFCHR | 0666, makedev(1, 3)) == 0);
	mu_mount(v);
	cr_assert(lstat(mu_m(v, "null"), &st) == 0);
	cr_assert(S_ISREG(st.st_mode), "altered record shows as 0%o",
		  st.st_mode);
	fd = open(mu_m(v, "null"), O_RDONLY);
	cr_assert(fd == -1 && errno == EIO, "open gives %d (%s)", fd,
		  strerror(errno));
	cr_assert(lstat(mu_m(v, "real"), &st) == 0);
	cr_assert_eq(st.st_rdev, 0, "a planted device leads to %u:%u",
		     major(st.st_rdev), minor(st.st_rdev));
	cr_assert(unlink(mu_m(v, "null")) == 0);
	cr_assert(unlink(mu_m(v, "real")) == 0);
	mu_unmount(v);
}
