/*
 * test_mount_owner.c — a root daemon with allow_other: what a user creates
 * through the mount belongs to that user, and Unix permission bits hold
 * against other users (default_permissions).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountutil.h"

TestSuite(mount_owner, .fini = mu_cleanup_all, .timeout = 60);

#define ALICE 4711
#define BOB 4712

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
	static const char *const extra[] = { "-o", "allow_other", NULL };
	struct mu_vol *v;
	struct stat st;
	char path[512];

	mu_require_fuse();
	if (geteuid() != 0)
		mu_skip("needs root: the daemon must be able to chown");
	v = mu_vol_new(0);
	/* Other users must be able to reach the mount point. */
	cr_assert_eq(chmod(v->dir, 0755), 0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 0, "%s",
		     v->err);
	cr_assert_eq(chmod(v->mnt, 01777), 0);

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
	static const char *const extra[] = { "-o", "allow_other", NULL };
	struct mu_vol *v;
	struct stat st;
	char path[512];

	mu_require_fuse();
	if (geteuid() != 0)
		mu_skip("needs root: the daemon must be able to chown");
	v = mu_vol_new(0);
	cr_assert_eq(chmod(v->dir, 0755), 0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 0, "%s",
		     v->err);
	cr_assert_eq(chmod(v->mnt, 01777), 0);
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
