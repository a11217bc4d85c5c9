/*
 * test_mount_tags.c — stat takes a closed file's size from its size tag
 * (an xattr of the backing file), so a tag anyone can write must never show
 * a size the header does not authenticate.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mountutil.h"

TestSuite(mount_tags, .fini = mu_cleanup_all, .timeout = 60);

#define TAG "user.phifs.size"

static off_t size_of(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	return st.st_size;
}

Test(mount_tags, forged_or_copied_size_tags_never_change_what_stat_shows)
{
	uint8_t small[100], big[50000], tag[64];
	struct mu_vol *v;
	ssize_t n;

	mu_require_fuse();
	memset(small, 's', sizeof(small));
	memset(big, 'b', sizeof(big));
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "small"), small, sizeof(small));
	mu_write_file(mu_m(v, "big"), big, sizeof(big));
	mu_unmount(v);
	n = getxattr(mu_b(v, "big"), TAG, tag, sizeof(tag));
	if (n < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
		mu_skip("the backing file system has no user xattrs");
	cr_assert(n > 0, "a closed file has no size tag: %s", strerror(errno));

	/* The big file's tag on the small one: another inode, no match. */
	cr_assert_eq(setxattr(mu_b(v, "small"), TAG, tag, (size_t)n, 0), 0);
	/* A forged tag claiming 10 bytes on the big one. */
	tag[0] = 10;
	for (int i = 1; i < 8; i++)
		tag[i] = 0;
	cr_assert_eq(setxattr(mu_b(v, "big"), TAG, tag, (size_t)n, 0), 0);
	mu_mount(v);
	cr_assert_eq(size_of(mu_m(v, "small")), (off_t)sizeof(small));
	cr_assert_eq(size_of(mu_m(v, "big")), (off_t)sizeof(big));
	mu_unmount(v);

	/* A missing tag: the header answers, and the next close tags again. */
	cr_assert_eq(removexattr(mu_b(v, "big"), TAG), 0);
	mu_mount(v);
	cr_assert_eq(size_of(mu_m(v, "big")), (off_t)sizeof(big));
	mu_write_file(mu_m(v, "big"), big, 4000);
	mu_unmount(v);
	cr_assert_gt(getxattr(mu_b(v, "big"), TAG, tag, sizeof(tag)), 0);
	mu_mount(v);
	cr_assert_eq(size_of(mu_m(v, "big")), 4000);
	mu_unmount(v);
}

/* Asks the daemon, not the kernel's attribute cache. */
static off_t daemon_size_of(const char *path)
{
	struct statx stx;

	cr_assert_eq(statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_SIZE,
			   &stx), 0, "statx %s: %s", path, strerror(errno));
	return (off_t)stx.stx_size;
}

/*
 * The daemon remembers sizes it verified from tags once the backing
 * file's ctime has settled (2 s).  A change through the mount must still
 * show at once.
 */
Test(mount_tags, a_remembered_size_follows_every_later_change)
{
	uint8_t buf[4000], tag[64];
	struct mu_vol *v;

	mu_require_fuse();
	memset(buf, 'r', sizeof(buf));
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "f"), buf, 100);
	if (getxattr(mu_b(v, "f"), TAG, tag, sizeof(tag)) < 0 &&
	    (errno == ENOTSUP || errno == EOPNOTSUPP))
		mu_skip("the backing file system has no user xattrs");
	/* The scenario, not a wait for an event: the ctime must be older
	 * than 2 s for the daemon to remember the size. */
	sleep(3);
	cr_assert_eq(daemon_size_of(mu_m(v, "f")), 100);
	cr_assert_eq(daemon_size_of(mu_m(v, "f")), 100);	/* remembered */

	cr_assert_eq(truncate(mu_m(v, "f"), 4000), 0);
	cr_assert_eq(daemon_size_of(mu_m(v, "f")), 4000);
	mu_write_file(mu_m(v, "f"), buf, 50);
	cr_assert_eq(daemon_size_of(mu_m(v, "f")), 50);

	mu_unmount(v);
}
