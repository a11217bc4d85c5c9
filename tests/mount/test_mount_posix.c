/*
 * test_mount_posix.c — the corners of POSIX a restore, an image unpacker or
 * a chroot builder reaches: a symlink's own times (utimensat with
 * AT_SYMLINK_NOFOLLOW, `touch -h`).  Each through the mount, and again
 * after a remount.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
