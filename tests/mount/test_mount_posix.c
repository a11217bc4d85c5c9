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
#include <sys/xattr.h>
#include <unistd.h>

#include "mountutil.h"
#include "testutil.h"

/* The size tag's backing name (format.h, FORMAT_SIZE_XATTR). */
#define FORMAT_SIZE_XATTR_NAME "user.phifs.size"

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

/* ---- extended attributes ---- */

/* The names listxattr gives for path, as "a,b," in the order given. */
static const char *xnames(const char *path)
{
	static char out[4096];
	char buf[4096];
	ssize_t n = listxattr(path, buf, sizeof(buf));

	out[0] = 0;
	cr_assert(n >= 0, "listxattr %s: %s", path, strerror(errno));
	for (ssize_t at = 0; at < n; at += (ssize_t)strlen(buf + at) + 1) {
		strcat(out, buf + at);
		strcat(out, ",");
	}
	return out;
}

/* The value of attribute name of path as a string, or "-errno". */
static const char *xget(const char *path, const char *name)
{
	static char out[256];
	ssize_t n = getxattr(path, name, out, sizeof(out) - 1);

	if (n < 0)
		snprintf(out, sizeof(out), "-%s", strerror(errno));
	else
		out[n] = 0;
	return out;
}

/* Whether the bytes s appear anywhere in the backing xattrs of path. */
static bool backing_shows(const char *path, const char *s)
{
	char names[4096], val[70000];
	ssize_t n = llistxattr(path, names, sizeof(names));

	cr_assert(n >= 0);
	for (ssize_t at = 0; at < n; at += (ssize_t)strlen(names + at) + 1) {
		ssize_t len = lgetxattr(path, names + at, val, sizeof(val));

		if (strstr(names + at, s) ||
		    (len > 0 && memmem(val, (size_t)len, s, strlen(s))))
			return true;
	}
	return false;
}

Test(mount_posix, extended_attributes_are_set_read_listed_and_removed)
{
	char small[2], buf[64];
	struct mu_vol *v;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "chart"), "x", 1);
	cr_assert(mkdir(mu_m(v, "ward"), 0755) == 0);
	cr_assert(setxattr(mu_m(v, "chart"), "user.diagnosis", "F32.1", 5,
			   0) == 0, "%s", strerror(errno));
	cr_assert(setxattr(mu_m(v, "chart"), "user.empty", "", 0, 0) == 0);
	cr_assert(setxattr(mu_m(v, "ward"), "user.floor", "3", 1, 0) == 0);
	/* Size probes and short buffers, as Linux answers them. */
	cr_assert_eq(getxattr(mu_m(v, "chart"), "user.diagnosis", NULL, 0), 5);
	errno = 0;
	cr_assert_eq(getxattr(mu_m(v, "chart"), "user.diagnosis", small,
			      sizeof(small)), -1);
	cr_assert_eq(errno, ERANGE);
	cr_assert_eq(getxattr(mu_m(v, "chart"), "user.empty", NULL, 0), 0);
	cr_assert_str_eq(xget(mu_m(v, "chart"), "user.diagnosis"), "F32.1");
	cr_assert_eq(listxattr(mu_m(v, "chart"), NULL, 0),
		     (ssize_t)sizeof("user.diagnosis\0user.empty"));
	errno = 0;
	cr_assert_eq(listxattr(mu_m(v, "chart"), buf, 3), -1);
	cr_assert_eq(errno, ERANGE);
	cr_assert(!strcmp(xnames(mu_m(v, "chart")), "user.diagnosis,user.empty,") ||
		  !strcmp(xnames(mu_m(v, "chart")), "user.empty,user.diagnosis,"),
		  "%s", xnames(mu_m(v, "chart")));
	cr_assert_str_eq(xnames(mu_m(v, "ward")), "user.floor,");
	/* XATTR_CREATE and XATTR_REPLACE. */
	errno = 0;
	cr_assert_eq(setxattr(mu_m(v, "chart"), "user.diagnosis", "x", 1,
			      XATTR_CREATE), -1);
	cr_assert_eq(errno, EEXIST);
	errno = 0;
	cr_assert_eq(setxattr(mu_m(v, "chart"), "user.none", "x", 1,
			      XATTR_REPLACE), -1);
	cr_assert_eq(errno, ENODATA);
	cr_assert(setxattr(mu_m(v, "chart"), "user.diagnosis", "F33", 3,
			   XATTR_REPLACE) == 0);
	cr_assert_str_eq(xget(mu_m(v, "chart"), "user.diagnosis"), "F33");
	cr_assert_str_eq(xget(mu_m(v, "chart"), "user.none"),
			 "-No data available");
	/* Neither name nor value reaches the backing in the clear. */
	cr_assert(!backing_shows(mu_b(v, "chart"), "diagnosis"));
	cr_assert(!backing_shows(mu_b(v, "chart"), "F33"));
	cr_assert(!backing_shows(mu_b(v, "ward"), "floor"));
	mu_unmount(v);
	mu_mount(v);
	cr_assert_str_eq(xget(mu_m(v, "chart"), "user.diagnosis"), "F33");
	cr_assert_str_eq(xget(mu_m(v, "ward"), "user.floor"), "3");
	cr_assert(removexattr(mu_m(v, "chart"), "user.diagnosis") == 0);
	errno = 0;
	cr_assert_eq(removexattr(mu_m(v, "chart"), "user.diagnosis"), -1);
	cr_assert_eq(errno, ENODATA);
	cr_assert_str_eq(xnames(mu_m(v, "chart")), "user.empty,");
	mu_unmount(v);
}

Test(mount_posix, the_size_tag_and_other_namespaces_are_out_of_reach)
{
	struct mu_vol *v;
	char tag[64];

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "f"), "hello", 5);
	cr_assert(setxattr(mu_m(v, "f"), "user.a", "1", 1, 0) == 0, "%s",
		  strerror(errno));
	mu_unmount(v);
	/* The closed file has its size tag in the backing... */
	cr_assert(lgetxattr(mu_b(v, "f"), FORMAT_SIZE_XATTR_NAME, tag,
			    sizeof(tag)) > 0, "%s", strerror(errno));
	mu_mount(v);
	/* ...which the mount neither lists nor gives. */
	cr_assert_str_eq(xnames(mu_m(v, "f")), "user.a,");
	cr_assert_str_eq(xget(mu_m(v, "f"), FORMAT_SIZE_XATTR_NAME),
			 "-No data available");
	/* Not stored: refused as by a file system without them (root gets
	 * this from phifs; others get the kernel's EPERM for trusted.*). */
	errno = 0;
	cr_assert_eq(setxattr(mu_m(v, "f"), "security.test", "1", 1, 0), -1);
	cr_assert_eq(errno, EOPNOTSUPP, "%s", strerror(errno));
	errno = 0;
	cr_assert_eq(setxattr(mu_m(v, "f"), "trusted.test", "1", 1, 0), -1);
	cr_assert_eq(errno, geteuid() ? EPERM : EOPNOTSUPP, "%s",
		     strerror(errno));
	errno = 0;
	cr_assert_eq(setxattr(mu_m(v, "f"), "system.test", "1", 1, 0), -1);
	cr_assert_eq(errno, EOPNOTSUPP, "%s", strerror(errno));
	cr_assert_str_eq(xget(mu_m(v, "f"), "security.test"),
			 "-Operation not supported");
	cr_assert_str_eq(xnames(mu_m(v, "f")), "user.a,");
	mu_unmount(v);
}

/* The backing name of the one sealed attribute of backing path. */
static void sealed_name(const char *path, char *out, size_t len)
{
	char names[4096];
	ssize_t n = llistxattr(path, names, sizeof(names));

	out[0] = 0;
	for (ssize_t at = 0; at < n; at += (ssize_t)strlen(names + at) + 1)
		if (!strncmp(names + at, "user.phifs.x.", 13))
			snprintf(out, len, "%s", names + at);
	cr_assert(out[0], "no sealed attribute on %s", path);
}

Test(mount_posix, an_attribute_altered_or_copied_in_the_backing_fails)
{
	char name1[128], name2[128], val[512];
	struct mu_vol *v;
	ssize_t n;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "one"), "1", 1);
	mu_write_file(mu_m(v, "two"), "2", 1);
	mu_write_file(mu_m(v, "three"), "3", 1);
	cr_assert(setxattr(mu_m(v, "one"), "user.a", "first", 5, 0) == 0,
		  "%s", strerror(errno));
	cr_assert(setxattr(mu_m(v, "two"), "user.a", "second", 6, 0) == 0);
	cr_assert(setxattr(mu_m(v, "three"), "user.a", "third", 5, 0) == 0);
	mu_unmount(v);
	/* one's sealed value flipped; one's copied over two's. */
	sealed_name(mu_b(v, "one"), name1, sizeof(name1));
	sealed_name(mu_b(v, "two"), name2, sizeof(name2));
	n = lgetxattr(mu_b(v, "one"), name1, val, sizeof(val));
	cr_assert(n > 20);
	cr_assert(lsetxattr(mu_b(v, "two"), name2, val, (size_t)n, 0) == 0);
	val[20] ^= 1;
	cr_assert(lsetxattr(mu_b(v, "one"), name1, val, (size_t)n, 0) == 0);
	/* three's under the name one's would have. */
	sealed_name(mu_b(v, "three"), name2, sizeof(name2));
	n = lgetxattr(mu_b(v, "three"), name2, val, sizeof(val));
	cr_assert(lsetxattr(mu_b(v, "three"), name1, val, (size_t)n, 0) == 0);
	cr_assert(lremovexattr(mu_b(v, "three"), name2) == 0);
	mu_mount(v);
	cr_assert_str_eq(xget(mu_m(v, "one"), "user.a"),
			 "-Input/output error");
	cr_assert_str_eq(xget(mu_m(v, "two"), "user.a"),
			 "-Input/output error");
	cr_assert_str_eq(xnames(mu_m(v, "one")), "");
	cr_assert_str_eq(xnames(mu_m(v, "two")), "");
	cr_assert_str_eq(xnames(mu_m(v, "three")), "");
	/* Set again, it is whole. */
	cr_assert(setxattr(mu_m(v, "two"), "user.a", "new", 3, 0) == 0);
	cr_assert_str_eq(xget(mu_m(v, "two"), "user.a"), "new");
	mu_unmount(v);
}

Test(mount_posix, cp_a_keeps_extended_attributes_both_ways)
{
	char cmd[3 * PATH_MAX];
	struct mu_vol *v;

	mu_require_fuse();
	v = mu_vol_new(0);
	mkdir(mu_b(v, "../plain"), 0755);
	mu_write_file(mu_b(v, "../plain/f"), "data", 4);
	cr_assert(setxattr(mu_b(v, "../plain/f"), "user.origin", "lab", 3,
			   0) == 0, "%s", strerror(errno));
	mu_mount(v);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", mu_b(v, "../plain"),
		 mu_m(v, "in"));
	cr_assert(system(cmd) == 0, "%s", cmd);
	cr_assert_str_eq(xget(mu_m(v, "in/f"), "user.origin"), "lab");
	cr_assert(setxattr(mu_m(v, "in"), "user.dir", "d", 1, 0) == 0);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", mu_m(v, "in"),
		 mu_m(v, "copy"));
	cr_assert(system(cmd) == 0, "%s", cmd);
	cr_assert_str_eq(xget(mu_m(v, "copy/f"), "user.origin"), "lab");
	cr_assert_str_eq(xget(mu_m(v, "copy"), "user.dir"), "d");
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", mu_m(v, "copy"),
		 mu_b(v, "../out"));
	cr_assert(system(cmd) == 0, "%s", cmd);
	cr_assert_str_eq(xget(mu_b(v, "../out/f"), "user.origin"), "lab");
	cr_assert_str_eq(xnames(mu_b(v, "../out")), "user.dir,");
	mu_unmount(v);
}

/*
 * -o no_xattr: the daemon has no attribute handlers, the kernel is told
 * ENOSYS once and answers EOPNOTSUPP itself from then on (which also spares
 * each write its security.capability lookup), and files work as before.
 */
Test(mount_posix, with_no_xattr_attributes_are_refused_and_files_work)
{
	static const char *const o[] = { "-o", "no_xattr", NULL };
	struct mu_vol *v;
	uint8_t *got;
	size_t n;

	mu_require_fuse();
	v = mu_vol_new(0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, o), 0, "%s", v->err);
	mu_write_file(mu_m(v, "f"), "chart", 5);
	for (int k = 0; k < 2; k++) {	/* the kernel's answer the 2nd time */
		errno = 0;
		cr_expect_eq(setxattr(mu_m(v, "f"), "user.k", "v", 1, 0), -1);
		cr_expect_eq(errno, EOPNOTSUPP, "setxattr: %s", strerror(errno));
		errno = 0;
		cr_expect_eq(getxattr(mu_m(v, "f"), "user.k", NULL, 0), -1);
		cr_expect_eq(errno, EOPNOTSUPP, "getxattr: %s", strerror(errno));
		errno = 0;
		cr_expect_eq(removexattr(mu_m(v, "f"), "user.k"), -1);
		cr_expect_eq(errno, EOPNOTSUPP, "removexattr: %s",
			     strerror(errno));
	}
	cr_assert_eq(mu_read_file(mu_m(v, "f"), &got, &n), 0);
	cr_expect(n == 5 && !memcmp(got, "chart", 5));
	free(got);
	mu_unmount(v);
}
