/*
 * test_mount_many.c — the daemon holds a handle per inode the kernel
 * remembers; with a low open-file limit it must still serve a tree far
 * larger than the limit (it asks the kernel to forget), losing nothing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "mountutil.h"

TestSuite(mount_many, .fini = mu_cleanup_all, .timeout = 120);

#define DIRS 40
#define FILES 50	/* per folder: 2,000 files, 2,040 inodes */

Test(mount_many, a_tree_larger_than_the_open_file_limit_is_served_whole)
{
	struct rlimit lim = { 256, 256 };
	struct mu_vol *v;
	char rel[64], want[64];

	mu_require_fuse();
	v = mu_vol_new(0);
	/* The daemon inherits the limit from this process. */
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	mu_mount(v);
	for (int d = 0; d < DIRS; d++) {
		snprintf(rel, sizeof(rel), "d%02d", d);
		cr_assert_eq(mkdir(mu_m(v, rel), 0755), 0, "mkdir %s: %s", rel,
			     strerror(errno));
		for (int f = 0; f < FILES; f++) {
			snprintf(rel, sizeof(rel), "d%02d/f%02d", d, f);
			snprintf(want, sizeof(want), "file %d of folder %d", f, d);
			mu_write_file(mu_m(v, rel), want, strlen(want));
		}
	}
	for (int d = 0; d < DIRS; d++)
		for (int f = 0; f < FILES; f++) {
			uint8_t *got;
			size_t n;

			snprintf(rel, sizeof(rel), "d%02d/f%02d", d, f);
			snprintf(want, sizeof(want), "file %d of folder %d", f, d);
			cr_assert_eq(mu_read_file(mu_m(v, rel), &got, &n), 0,
				     "read %s", rel);
			cr_assert_eq(n, strlen(want));
			cr_assert(!memcmp(got, want, n), "%s reads wrong", rel);
			free(got);
		}
	mu_unmount(v);
}
