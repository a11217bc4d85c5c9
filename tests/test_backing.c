/*
 * test_backing.c — the backing directory's names and handles: which mount
 * names translate, and lookups, reopens, chmod, utimens and xattr reads
 * that never follow a symlink or leave their folder.  Each test that makes
 * system calls runs twice: on this kernel, and as on Linux 6.1 (Debian 12)
 * with the filter of oldkernel_filter.h, so that the fallbacks for
 * getxattrat and fchmodat2 run too.  Criterion gives each test a process
 * of its own, so the filter ends with its test.
 *
 * Each test works in a fresh folder under /var/tmp (a disk file system, so
 * that user xattrs exist):
 *   f        regular file, "hello", mode 0600, xattr user.t = "file"
 *   sub/     folder
 *   link     symlink to f
 *   out      symlink to / (outside the folder)
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "oldkernel_filter.h"
#include "phifs/backing.h"

static char dir[] = "/var/tmp/phifs-backing-XXXXXX";
static int dfd = -1;

static void make_tree(void)
{
	cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dfd, 0);
	{
		int fd = openat(dfd, "f", O_WRONLY | O_CREAT | O_EXCL, 0600);

		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, "hello", 5), 5);
		close(fd);
	}
	cr_assert_eq(mkdirat(dfd, "sub", 0700), 0);
	cr_assert_eq(symlinkat("f", dfd, "link"), 0);
	cr_assert_eq(symlinkat("/", dfd, "out"), 0);
}

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_tree(void)
{
	if (dfd >= 0)
		close(dfd);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(backing, .init = make_tree, .fini = remove_tree);

/*
 * BOTH(name) { body } defines two tests: name_on_this_kernel and
 * name_on_linux_6_1, the second with the filter installed first.
 */
#define BOTH(name)							\
	static void name(void);						\
	Test(backing, name##_on_this_kernel) { name(); }		\
	Test(backing, name##_on_linux_6_1)				\
	{								\
		cr_assert_eq(oldkernel_filter_install(), 0,		\
			     "cannot install the Linux 6.1 filter");	\
		name();							\
	}								\
	static void name(void)

static int lookup(const char *name)
{
	int fd = -1, rc = backing_lookup(dfd, name, &fd);

	cr_assert_eq(rc, 0, "backing_lookup %s: %s", name, strerror(-rc));
	return fd;
}

/* user.t on f, or a skip where the file system has no user xattrs. */
static void tag_f(void)
{
	char path[64];

	snprintf(path, sizeof(path), "%s/f", dir);
	if (setxattr(path, "user.t", "file", 4, 0) &&
	    (errno == ENOTSUP || errno == EOPNOTSUPP))
		cr_skip_test("%s has no user xattrs", dir);
	cr_assert_eq(getxattr(path, "user.t", NULL, 0), 4);
}

/* --- names: pure, no system calls, so one run is enough --- */

Test(backing, the_meta_folder_is_refused_in_the_root_only)
{
	char out[NAME_MAX + 1];

	cr_assert_eq(backing_name(BACKING_META, true, out), -ENOENT);
	cr_assert_eq(backing_name(BACKING_META, false, out), 0);
	cr_assert_str_eq(out, BACKING_META);
	cr_assert_eq(backing_name(BACKING_META "x", true, out), 0);
	cr_assert_str_eq(out, BACKING_META "x");
	cr_assert(backing_is_meta(BACKING_META, true));
	cr_assert_not(backing_is_meta(BACKING_META, false));
	cr_assert_not(backing_is_meta(BACKING_META "x", true));
	cr_assert_not(backing_is_meta("x", true));
}

Test(backing, a_rekey_temporary_is_hidden_in_every_folder_and_nothing_else)
{
	const char *tmp = BACKING_REKEY_PREFIX "0123456789abcdef0123456789abcdef";
	char out[NAME_MAX + 1];

	cr_assert(backing_is_meta(tmp, false));
	cr_assert(backing_is_meta(tmp, true));
	cr_assert_eq(backing_name(tmp, false, out), -ENOENT);
	/* Another length, upper case, anything after: a user's name. */
	cr_assert_eq(backing_name(BACKING_REKEY_PREFIX "0123", false, out), 0);
	cr_assert_eq(backing_name(BACKING_REKEY_PREFIX
				  "0123456789ABCDEF0123456789abcdef", false,
				  out), 0);
	cr_assert_eq(backing_name(BACKING_REKEY_PREFIX
				  "0123456789abcdef0123456789abcdefx", false,
				  out), 0);
	cr_assert_not(backing_is_meta(BACKING_REKEY_PREFIX, false));
}

Test(backing, empty_dot_dotdot_and_slashes_are_not_names)
{
	static const char *bad[] = { "", ".", "..", "/", "a/b", "a/", "/a",
				     "../x" };
	char out[NAME_MAX + 1] = "untouched";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(backing_name(bad[i], false, out), -EINVAL,
			     "\"%s\"", bad[i]);
	cr_assert_str_eq(out, "untouched");
	cr_assert_eq(backing_name("...", false, out), 0);
	cr_assert_eq(backing_name(".x", true, out), 0);
	cr_assert_str_eq(out, ".x");
}

Test(backing, a_name_may_have_name_max_bytes_and_no_more)
{
	char name[NAME_MAX + 2], out[NAME_MAX + 1];

	memset(name, 'n', NAME_MAX);
	name[NAME_MAX] = 0;
	cr_assert_eq(backing_name(name, true, out), 0);
	cr_assert_str_eq(out, name);
	name[NAME_MAX] = 'n';
	name[NAME_MAX + 1] = 0;
	cr_assert_eq(backing_name(name, true, out), -ENAMETOOLONG);
}

/* --- lookups --- */

BOTH(a_lookup_gives_an_o_path_handle)
{
	int fd = lookup("f");
	struct stat st;

	cr_assert(fcntl(fd, F_GETFL) & O_PATH);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	close(fd);
	fd = lookup("sub");
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	close(fd);
	cr_assert_eq(backing_lookup(dfd, "none", &fd), -ENOENT);
}

BOTH(a_lookup_of_a_symlink_gives_the_link_itself)
{
	int fd = lookup("link");
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert(S_ISLNK(st.st_mode), "the lookup followed the link");
	close(fd);
	fd = lookup("out");
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert(S_ISLNK(st.st_mode), "the lookup followed the link");
	close(fd);
}

BOTH(a_lookup_never_leaves_its_folder)
{
	static const char *away[] = { "..", "../", "/", "/etc", "out/etc",
				      "sub/../..", "out/" };
	int subfd = lookup("sub"), fd = -1;

	for (size_t i = 0; i < sizeof(away) / sizeof(away[0]); i++)
		cr_assert_eq(backing_lookup(dfd, away[i], &fd), -EXDEV,
			     "\"%s\" left the folder", away[i]);
	/* A handle is a folder to start from, as the daemon uses them. */
	cr_assert_eq(backing_lookup(subfd, "..", &fd), -EXDEV);
	cr_assert_eq(fd, -1, "a refused lookup wrote its out-parameter");
	close(subfd);
}

/* --- reopen --- */

BOTH(a_reopen_gives_the_file_behind_the_handle_for_io)
{
	int pfd = lookup("f"), fd = -1;
	char buf[8] = "";

	cr_assert_eq(backing_reopen(pfd, O_RDONLY, &fd), 0);
	cr_assert_eq(pread(fd, buf, sizeof(buf), 0), 5);
	cr_assert_str_eq(buf, "hello");
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	cr_assert_eq(backing_reopen(pfd, O_WRONLY, &fd), 0);
	cr_assert_eq(pwrite(fd, "J", 1, 0), 1);
	close(fd);
	cr_assert_eq(backing_reopen(pfd, O_RDONLY, &fd), 0);
	cr_assert_eq(pread(fd, buf, sizeof(buf), 0), 5);
	cr_assert_str_eq(buf, "Jello");
	close(fd);
	close(pfd);

	pfd = lookup("sub");
	cr_assert_eq(backing_reopen(pfd, O_RDONLY | O_DIRECTORY, &fd), 0);
	close(fd);
	close(pfd);
}

BOTH(a_reopen_follows_the_handle_not_the_name)
{
	int pfd = lookup("f"), fd = -1;
	char buf[8] = "";

	/* Renamed and replaced after the lookup: still the same file. */
	cr_assert_eq(renameat(dfd, "f", dfd, "g"), 0);
	cr_assert_eq(symlinkat("/etc/passwd", dfd, "f"), 0);
	cr_assert_eq(backing_reopen(pfd, O_RDONLY, &fd), 0);
	cr_assert_eq(pread(fd, buf, sizeof(buf), 0), 5);
	cr_assert_str_eq(buf, "hello");
	close(fd);
	close(pfd);
}

/* --- chmod and utimens on handles --- */

BOTH(chmod_through_a_handle_changes_that_file)
{
	int fd = lookup("f");
	struct stat st;

	cr_assert_eq(backing_chmod(fd, 0640), 0);
	cr_assert_eq(fstatat(dfd, "f", &st, 0), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);
	close(fd);
}

BOTH(chmod_of_a_symlinks_handle_is_refused_and_leaves_the_target_alone)
{
	int fd = lookup("link");
	struct stat st;

	/* Linux has no modes for symlinks: EOPNOTSUPP, on either path. */
	cr_assert_eq(backing_chmod(fd, 0604), -EOPNOTSUPP);
	cr_assert_eq(fstatat(dfd, "f", &st, 0), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "the chmod reached the target");
	close(fd);
}

BOTH(utimens_of_a_symlinks_handle_sets_the_links_own_times)
{
	const struct timespec tv[2] = { { 1000000000, 5 }, { 1100000000, 7 } };
	struct stat before, st;
	int fd = lookup("link");

	cr_assert_eq(fstatat(dfd, "f", &before, 0), 0);
	cr_assert_eq(backing_utimens(fd, tv), 0);
	cr_assert_eq(fstatat(dfd, "link", &st, AT_SYMLINK_NOFOLLOW), 0);
	cr_assert_eq(st.st_atim.tv_sec, 1000000000);
	cr_assert_eq(st.st_atim.tv_nsec, 5);
	cr_assert_eq(st.st_mtim.tv_sec, 1100000000);
	cr_assert_eq(st.st_mtim.tv_nsec, 7);
	cr_assert_eq(fstatat(dfd, "f", &st, 0), 0);
	cr_assert_eq(st.st_mtim.tv_sec, before.st_mtim.tv_sec,
		     "the utimens reached the target");
	cr_assert_eq(st.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	close(fd);
}

BOTH(utimens_through_a_handle_sets_a_files_times)
{
	const struct timespec tv[2] = { { 1200000000, 0 }, { 1300000000, 9 } };
	int fd = lookup("f");
	struct stat st;

	cr_assert_eq(backing_utimens(fd, tv), 0);
	cr_assert_eq(fstatat(dfd, "f", &st, 0), 0);
	cr_assert_eq(st.st_mtim.tv_sec, 1300000000);
	cr_assert_eq(st.st_mtim.tv_nsec, 9);
	close(fd);
}

/* --- xattrs --- */

BOTH(getxattr_reads_through_a_handle_a_name_or_both)
{
	int fd;
	char buf[16];

	tag_f();
	fd = lookup("f");
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(backing_getxattr(fd, -1, NULL, "user.t", buf,
				      sizeof(buf)), 4);
	cr_assert_str_eq(buf, "file");
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(backing_getxattr(fd, dfd, "f", "user.t", buf,
				      sizeof(buf)), 4);
	cr_assert_str_eq(buf, "file");
	cr_assert_eq(backing_getxattr(fd, dfd, "f", "user.none", buf,
				      sizeof(buf)), -ENODATA);
	cr_assert_eq(backing_getxattr(fd, dfd, "f", "user.t", buf, 2),
		     -ERANGE);
	close(fd);
}

/*
 * The remove path has no handle of its own: pathfd -1 with the name.  On
 * kernels without getxattrat this once fell back to /proc/self/fd/-1 and
 * failed, so a removed file's last attributes showed size 0.
 */
BOTH(getxattr_with_no_handle_reads_the_name_in_its_folder)
{
	char buf[16] = "";

	tag_f();
	cr_assert_eq(backing_getxattr(-1, dfd, "f", "user.t", buf,
				      sizeof(buf)), 4);
	cr_assert_str_eq(buf, "file");
	cr_assert_eq(backing_getxattr(-1, dfd, "f", "user.none", buf,
				      sizeof(buf)), -ENODATA);
	cr_assert_eq(backing_getxattr(-1, dfd, "none", "user.t", buf,
				      sizeof(buf)), -ENOENT);
}

BOTH(getxattr_of_a_symlink_is_the_links_own_never_its_targets)
{
	int fd;
	char buf[16];

	tag_f();
	fd = lookup("link");
	cr_assert_eq(backing_getxattr(fd, dfd, "link", "user.t", buf,
				      sizeof(buf)), -ENODATA);
	cr_assert_eq(backing_getxattr(fd, -1, NULL, "user.t", buf,
				      sizeof(buf)), -ENODATA);
	cr_assert_eq(backing_getxattr(-1, dfd, "link", "user.t", buf,
				      sizeof(buf)), -ENODATA);
	close(fd);
}
