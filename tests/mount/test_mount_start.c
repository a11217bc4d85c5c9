/*
 * test_mount_start.c — what phifs checks before it mounts and once it
 * runs: a mount point already in use is refused, one with files only with
 * -o nonempty, and the key source given on the command line no longer
 * shows in the daemon's /proc/PID/cmdline.
 */
#include <criterion/criterion.h>
#include <stdint.h>
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

/* /proc/pid/cmdline with its NULs made blanks. */
static void cmdline_of(pid_t pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	f = fopen(path, "re");
	cr_assert(f, "%s", path);
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	for (size_t i = 0; i < n; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = 0;
}

Test(mount_start, the_key_source_is_gone_from_the_daemons_cmdline)
{
	char helper[256], a[512], b[512], c[512], cmd[8192];
	const char *extra[] = { "--key", c, a, "-o", b, NULL };
	struct mu_vol *v;
	uint8_t *buf;
	size_t len;
	FILE *f;

	mu_require_fuse();
	v = mu_vol_new(0);
	/* A helper that ignores its arguments: the token is only a marker. */
	snprintf(helper, sizeof(helper), "%s/helper", v->dir);
	f = fopen(helper, "we");
	cr_assert(f);
	fprintf(f, "#!/bin/sh\nexec cat '%s'\n", v->key);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(helper, 0700), 0);
	/* Every way argv can carry it; the -o one, last, is the one used. */
	snprintf(c, sizeof(c), "cmd:%s --token=SECRET-C", helper);
	snprintf(a, sizeof(a), "--key=cmd:%s --token=SECRET-A", helper);
	snprintf(b, sizeof(b), "default_permissions,key=cmd:%s "
		 "--token=SECRET-B,noatime", helper);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 0, "%s",
		     v->err);
	cr_assert_gt(v->daemon, 0);
	mu_write_file(mu_m(v, "f.txt"), "data", 4);
	cr_assert_eq(mu_read_file(mu_m(v, "f.txt"), &buf, &len), 0);
	cr_assert_eq(len, 4);
	free(buf);

	cmdline_of(v->daemon, cmd, sizeof(cmd));
	cr_assert_not(strstr(cmd, "SECRET"), "%s", cmd);
	cr_assert_not(strstr(cmd, helper), "%s", cmd);
	cr_assert_not(strstr(cmd, v->key), "%s", cmd);
	/* The rest is still there for ps to show. */
	cr_assert(strstr(cmd, v->backing), "%s", cmd);
	cr_assert(strstr(cmd, v->mnt), "%s", cmd);
	cr_assert(strstr(cmd, "default_permissions,key=*"), "%s", cmd);
	cr_assert(strstr(cmd, ",noatime"), "%s", cmd);
	mu_unmount(v);
}

/* Copies a file whole (the keystore), asserting success. */
static void copy_file(const char *from, const char *to)
{
	uint8_t *buf;
	size_t len;

	cr_assert_eq(mu_read_file(from, &buf, &len), 0, "read %s", from);
	mu_write_file(to, buf, len);
	free(buf);
}

/*
 * Another volume's keystore, which the same key unlocks, used to mount
 * and give EIO for every file.  It is refused, naming both volumes, and
 * the volume mounts again once its own keystore is back.
 */
Test(mount_start, a_keystore_from_another_volume_is_refused)
{
	struct mu_vol *a, *b;
	char own[256], saved[300];
	int st;

	mu_require_fuse();
	a = mu_vol_new(0);
	b = mu_vol_new(0);
	mu_mount(a);
	mu_write_file(mu_m(a, "chart"), "PHI", 3);
	cr_assert_eq(mkdir(mu_m(a, "ward"), 0755), 0);
	mu_write_file(mu_m(a, "ward/note"), "PHI", 3);
	mu_unmount(a);
	snprintf(own, sizeof(own), "%s", mu_b(a, ".phifs/keystore"));
	snprintf(saved, sizeof(saved), "%s.own", own);
	cr_assert_eq(rename(own, saved), 0);
	copy_file(mu_b(b, ".phifs/keystore"), own);
	st = mu_phifs(a, false, b->key, NULL, NULL, NULL);
	cr_expect_eq(st, 1, "exit %d: %s", st, a->err);
	cr_expect_eq(mu_lines(a->err), 1, "%s", a->err);
	cr_expect(strstr(a->err, "another volume"), "%s", a->err);
	cr_expect(!mu_is_mounted(a->mnt));
	cr_assert_eq(rename(saved, own), 0);
	mu_mount(a);
	mu_unmount(a);
}
