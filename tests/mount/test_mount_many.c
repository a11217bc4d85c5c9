/*
 * test_mount_many.c — the daemon holds a handle per inode the kernel
 * remembers; with a low open-file limit it must still serve a tree far
 * larger than the limit (it asks the kernel to forget), losing nothing.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
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

static void serve_a_tree_larger_than_the_limit(void)
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
			int rc;

			snprintf(rel, sizeof(rel), "d%02d/f%02d", d, f);
			snprintf(want, sizeof(want), "file %d of folder %d", f, d);
			rc = mu_read_file(mu_m(v, rel), &got, &n);
			cr_assert_eq(rc, 0, "read %s: %s", rel, strerror(-rc));
			cr_assert_eq(n, strlen(want));
			cr_assert(!memcmp(got, want, n), "%s reads wrong", rel);
			free(got);
		}
	mu_unmount(v);
}

/* Root daemons park handles (reopened from file handles). */
Test(mount_many, a_tree_larger_than_the_open_file_limit_is_served_whole)
{
	serve_a_tree_larger_than_the_limit();
}

/* Without CAP_DAC_READ_SEARCH the daemon asks the kernel to forget. */
Test(mount_many, without_file_handles_the_kernel_is_asked_to_forget)
{
	cr_assert_eq(setenv("PHIFS_NO_FILE_HANDLES", "1", 1), 0);
	serve_a_tree_larger_than_the_limit();
}

#define ONE_DIR 3000

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Listing a folder hands the kernel every entry with its attributes
 * (READDIRPLUS), many replies' worth here: each name comes once, and each
 * size is the plaintext one, also cold after a remount and under the low
 * open-file limit, where the daemon must forget as it goes.
 */
Test(mount_many, a_large_folder_lists_every_name_once_with_its_size)
{
	struct rlimit lim = { 256, 256 };
	char *names[ONE_DIR + 1];
	struct mu_vol *v;
	struct dirent *de;
	char rel[64];
	uint8_t buf[9001];
	size_t n = 0;
	DIR *dp;

	mu_require_fuse();
	v = mu_vol_new(0);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	mu_mount(v);
	cr_assert_eq(mkdir(mu_m(v, "big"), 0755), 0);
	mu_fill(buf, sizeof(buf), 7);
	for (int f = 0; f < ONE_DIR; f++) {
		snprintf(rel, sizeof(rel), "big/file-%04d", f);
		mu_write_file(mu_m(v, rel), buf, (size_t)(f * 37 % 9001));
	}
	mu_unmount(v);
	mu_mount(v);
	dp = opendir(mu_m(v, "big"));
	cr_assert(dp);
	while ((de = readdir(dp))) {
		struct stat st;
		int f;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		cr_assert_lt(n, ONE_DIR, "more entries than files");
		cr_assert_eq(sscanf(de->d_name, "file-%d", &f), 1, "%s",
			     de->d_name);
		cr_assert_eq(fstatat(dirfd(dp), de->d_name, &st,
				     AT_SYMLINK_NOFOLLOW), 0, "stat %s: %s",
			     de->d_name, strerror(errno));
		cr_assert_eq(st.st_size, f * 37 % 9001, "size of %s",
			     de->d_name);
		names[n++] = strdup(de->d_name);
	}
	closedir(dp);
	cr_assert_eq(n, ONE_DIR);
	qsort(names, n, sizeof(*names), name_cmp);
	for (size_t k = 0; k < n; k++) {
		snprintf(rel, sizeof(rel), "file-%04zu", k);
		cr_assert_str_eq(names[k], rel, "listed twice or missing");
		free(names[k]);
	}
	mu_unmount(v);
}
