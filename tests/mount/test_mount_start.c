/*
 * test_mount_start.c — what phifs checks before it mounts and once it
 * runs: a mount point already in use is refused, one with files only with
 * -o nonempty, and the key source given on the command line no longer
 * shows in the daemon's /proc/PID/cmdline.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mountutil.h"

TestSuite(mount_start, .fini = mu_cleanup_all, .timeout = 60);

Test(mount_start, a_mount_point_in_use_is_refused_and_the_mount_kept)
{
	struct mu_vol *v, *w;
	uint8_t *buf;
	size_t len;

	mu_require_fuse();
	v = mu_vol_new(0);
	w = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "kept.txt"), "kept", 4);
	cr_assert_eq(mu_phifs(w, false, NULL, NULL, v->mnt, NULL), 1,
		     "a second volume mounted over the first: %s", w->err);
	cr_assert(strstr(w->err, "already in use (a fuse.phifs mount)"),
		  "%s", w->err);
	cr_assert_eq(mu_lines(w->err), 1, "%s", w->err);
	cr_assert_eq(mu_read_file(mu_m(v, "kept.txt"), &buf, &len), 0);
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(buf, "kept", 4), 0);
	free(buf);
	mu_unmount(v);
}

Test(mount_start, files_in_the_mount_point_need_nonempty_and_come_back)
{
	static const char *const extra[] = { "-o", "nonempty", NULL };
	struct mu_vol *v;
	struct stat st;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_write_file(mu_m(v, "under.txt"), "under", 5);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, NULL), 1,
		     "mounted over a file: %s", v->err);
	cr_assert(strstr(v->err, "not empty (holds 'under.txt')"), "%s",
		  v->err);
	cr_assert_not(mu_is_mounted(v->mnt));
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 0, "%s",
		     v->err);
	cr_assert_neq(stat(mu_m(v, "under.txt"), &st), 0,
		      "the mount shows the folder's own file");
	mu_unmount(v);
	cr_assert_eq(stat(mu_m(v, "under.txt"), &st), 0);
}
