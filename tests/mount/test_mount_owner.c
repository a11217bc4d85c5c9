/*
 * test_mount_owner.c — a root daemon with allow_other: what a user creates
 * through the mount belongs to that user, and Unix permission bits hold
 * against other users (default_permissions).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountutil.h"

TestSuite(mount_owner, .fini = mu_cleanup_all, .timeout = 60);

#define ALICE 4711
#define BOB 4712

/* A volume mounted allow_other as root, its mount point reachable by all
 * and its root folder 01777: alice and bob (real uids, switched in
 * children) share it. */
static struct mu_vol *shared_mount(void)
{
	static const char *const extra[] = { "-o", "allow_other", NULL };
	struct mu_vol *v;

	mu_require_fuse();
	if (geteuid() != 0)
		mu_skip("needs root: the daemon must be able to chown");
	v = mu_vol_new(0);
	cr_assert_eq(chmod(v->dir, 0755), 0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 0, "%s",
		     v->err);
	cr_assert_eq(chmod(v->mnt, 01777), 0);
	return v;
}

/* Runs fn as uid/gid in a child; returns its exit code. */
static int as_user(uid_t uid, int (*fn)(const char *), const char *arg)
{
	int st;
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) || setgid(uid) || setuid(uid))
			_exit(100);
		_exit(fn(arg));
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 101;
}

static int make_private(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	if (fd < 0)
		return 1;
	if (write(fd, "alice only", 10) != 10)
		return 2;
	return close(fd) ? 3 : 0;
}

static int try_read(const char *path)
{
	int fd = open(path, O_RDONLY);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == EACCES ? 13 : 1;
}

static int try_mkdir(const char *path)
{
	return mkdir(path, 0755) ? (errno == EACCES ? 13 : 1) : 0;
}

Test(mount_owner, files_belong_to_their_creator_and_modes_hold)
{
	struct mu_vol *v;
	struct stat st;
	char path[512];

	v = shared_mount();

	snprintf(path, sizeof(path), "%s", mu_m(v, "alice.txt"));
	cr_assert_eq(as_user(ALICE, make_private, path), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_uid, ALICE, "owner %u", st.st_uid);
	cr_assert_eq(st.st_gid, ALICE);
	cr_assert_eq(st.st_size, 10);
	/* The backing file belongs to her too. */
	cr_assert_eq(stat(mu_b(v, "alice.txt"), &st), 0);
	cr_assert_eq(st.st_uid, ALICE);
	cr_assert_eq(as_user(ALICE, try_read, path), 0);
	cr_assert_eq(as_user(BOB, try_read, path), 13, "bob read a 0600 file");

	cr_assert_eq(chmod(v->mnt, 0755), 0);
	snprintf(path, sizeof(path), "%s", mu_m(v, "bobdir"));
	cr_assert_eq(as_user(BOB, try_mkdir, path), 13,
		     "bob made a folder in root's 0755 folder");
	mu_unmount(v);
}

static int try_append(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == EACCES ? 13 : 1;
}

/*
 * The probe's attack: chmod 666 on the backing file of a 0600 file, right
 * after a denied open (which makes the kernel ask for fresh attributes).
 * The header authenticates the mode, so the mount keeps serving 0600 and
 * puts it back in the backing.
 */
Test(mount_owner, a_chmod_in_the_backing_opens_nothing_to_others)
{
	struct mu_vol *v;
	struct stat st;
	char path[512];

	v = shared_mount();
	snprintf(path, sizeof(path), "%s", mu_m(v, "alice.txt"));
	cr_assert_eq(as_user(ALICE, make_private, path), 0);
	cr_assert_eq(as_user(BOB, try_read, path), 13);

	cr_assert_eq(chmod(mu_b(v, "alice.txt"), 0666), 0);
	cr_assert_eq(as_user(BOB, try_read, path), 13,
		     "bob read a 0600 file made 0666 in the backing");
	cr_assert_eq(as_user(BOB, try_append, path), 13,
		     "bob may append to it");
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode);
	cr_assert_eq(stat(mu_b(v, "alice.txt"), &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600, "put back in the backing");

	/* The owner too: a chown in the backing gives bob nothing. */
	cr_assert_eq(chown(mu_b(v, "alice.txt"), BOB, BOB), 0);
	cr_assert_eq(as_user(BOB, try_read, path), 13,
		     "bob read a file chowned to him in the backing");
	cr_assert_eq(as_user(ALICE, try_read, path), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_uid, ALICE);

	/* A chmod through the mount is the owner's, and holds. */
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_eq(as_user(BOB, try_read, path), 0);
	cr_assert_eq(stat(mu_b(v, "alice.txt"), &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0644);
	cr_expect_eq(st.st_uid, ALICE);
	mu_unmount(v);
}

/* A figure of `phifsctl status --json` (a top-level integer). */
static uint64_t status_figure(const struct mu_vol *v, const char *key)
{
	char cmd[512], out[8192], pat[64];
	const char *p;
	size_t n;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s/phifsctl status --json %s",
		 PHIFS_BIN_DIR, v->backing);
	f = popen(cmd, "r");
	cr_assert(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	cr_assert_eq(pclose(f), 0, "%s", out);
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(out, pat);
	cr_assert(p, "no %s in %s", pat, out);
	return strtoull(p + strlen(pat), NULL, 10);
}

static int make_private_dir(const char *path)
{
	return mkdir(path, 0700) ? 1 : 0;
}

static int try_list(const char *path)
{
	DIR *d = opendir(path);

	if (d) {
		closedir(d);
		return 0;
	}
	return errno == EACCES ? 13 : 1;
}

/* Creates path/bob.txt; 13 when refused. */
static int try_create_in(const char *path)
{
	char p[600];
	int fd;

	snprintf(p, sizeof(p), "%s/bob.txt", path);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == EACCES ? 13 : 1;
}

/*
 * The same attack on a folder: chmod 777 (and chown to bob) of the backing
 * folder of alice's 0700 folder.  The folder's sealed record holds its
 * mode and owner, so bob can neither list nor create in it.
 */
Test(mount_owner, a_chmod_of_a_backing_folder_opens_nothing_to_others)
{
	struct mu_vol *v;
	struct stat st;
	char path[512];

	v = shared_mount();
	snprintf(path, sizeof(path), "%s", mu_m(v, "alice"));
	cr_assert_eq(as_user(ALICE, make_private_dir, path), 0);
	cr_assert_eq(as_user(BOB, try_list, path), 13);
	cr_assert_eq(as_user(BOB, try_create_in, path), 13);

	cr_assert_eq(chmod(mu_b(v, "alice"), 0777), 0);
	cr_assert_eq(as_user(BOB, try_list, path), 13,
		     "bob listed a 0700 folder made 0777 in the backing");
	cr_assert_eq(as_user(BOB, try_create_in, path), 13,
		     "bob created in it");
	cr_assert_eq(chown(mu_b(v, "alice"), BOB, BOB), 0);
	cr_assert_eq(as_user(BOB, try_list, path), 13,
		     "bob listed a folder chowned to him in the backing");
	cr_assert_eq(as_user(BOB, try_create_in, path), 13);
	cr_assert_eq(as_user(ALICE, try_create_in, path), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0700, "mode %o", st.st_mode);
	cr_expect_eq(st.st_uid, ALICE);
	cr_assert_eq(stat(mu_b(v, "alice"), &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0700, "put back in the backing");
	cr_expect_eq(st.st_uid, ALICE);
	cr_expect_geq(status_figure(v, "attr_mismatches"), 1);

	/* A chmod through the mount is the owner's, and holds. */
	cr_assert_eq(chmod(path, 0755), 0);
	cr_assert_eq(as_user(BOB, try_list, path), 0);
	cr_assert_eq(stat(mu_b(v, "alice"), &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0755);
	mu_unmount(v);
}
