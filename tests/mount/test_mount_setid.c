/*
 * test_mount_setid.c — set-user-id and set-group-id bits are dropped when
 * someone without CAP_FSETID changes a file, as on ext4: by a write, a
 * truncation, a truncating open, and by any chown.  With the request loop
 * the kernel leaves this to the daemon (FUSE_HANDLE_KILLPRIV_V2, src/loop.c),
 * which in exchange stops asking security.capability before every write;
 * with libfuse's loop (--no-poll) the kernel does it with a chmod of its own,
 * and misses two cases (below).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mountutil.h"
#include "phifs/ctl.h"

TestSuite(mount_setid, .fini = mu_cleanup_all, .timeout = 120);

#define BOB 4712	/* in none of the files' groups */

/* Runs fn(path) as BOB in a child; returns its exit code. */
static int as_bob(int (*fn)(const char *), const char *path)
{
	int st;
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) || setgid(BOB) || setuid(BOB))
			_exit(100);
		_exit(fn(path));
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 101;
}

static int append(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND);
	int rc = fd < 0 ? 1 : write(fd, "more", 4) != 4 ? 2 : 0;

	if (fd >= 0 && close(fd))
		rc = 3;
	return rc;
}

static int truncate_to_1(const char *path)
{
	return truncate(path, 1) ? 1 : 0;
}

static int open_truncating(const char *path)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	return fd < 0 ? 1 : (close(fd) ? 2 : 0);
}

/* The mode the kernel holds for path now, without asking the daemon. */
static mode_t kernel_mode(const char *path)
{
	struct statx sx;

	cr_assert_eq(statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_MODE,
			   &sx), 0, "%s: %s", path, strerror(errno));
	return sx.stx_mode & 07777;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

/* A root-owned file of mode m holding "hi". */
static void make(const char *path, mode_t m)
{
	mu_write_file(path, "hi", 2);
	cr_assert_eq(chmod(path, m), 0);
	cr_assert_eq(mode_of(path), m);
}

struct setid_case {
	const char *name;
	mode_t before, after;
	int (*change)(const char *);	/* by BOB; NULL: chown by root */
	bool loop_only;		/* missed by the kernel's own chmod */
};

/*
 * With libfuse's loop the kernel sends no chmod for a truncating open
 * (atomic_o_trunc: the OPEN truncates, and it skips the SETATTR that
 * would carry it) and keeps a set-group-id bit without group execute.
 */
static const struct setid_case cases[] = {
	{ "write", 06777, 0777, append, false },
	{ "truncate", 06777, 0777, truncate_to_1, false },
	{ "truncating open", 06777, 0777, open_truncating, true },
	/* Without group execute, set-group-id marks mandatory locking: it
	 * goes only when the writer is not in the file's group. */
	{ "write, sgid without group execute", 02767, 0767, append, true },
	{ "write to a plain file", 0777, 0777, append, false },
	{ "chown", 06777, 0777, NULL, false },
};

static void check_case(struct mu_vol *v, const struct setid_case *c)
{
	const char *path = mu_m(v, "f");
	char plain[512];
	mode_t ext4;

	/* The reference: the same change on the backing's own file system. */
	snprintf(plain, sizeof(plain), "%s/plain", v->dir);
	make(plain, c->before);
	if (c->change)
		cr_assert_eq(as_bob(c->change, plain), 0, "%s: %s", c->name,
			     plain);
	else
		cr_assert_eq(chown(plain, BOB, BOB), 0);
	ext4 = mode_of(plain);
	cr_assert_eq(ext4, c->after, "%s on the backing's fs: %o", c->name,
		     ext4);
	cr_assert_eq(unlink(plain), 0);

	make(path, c->before);
	if (c->change)
		cr_assert_eq(as_bob(c->change, path), 0, "%s", c->name);
	else
		cr_assert_eq(chown(path, BOB, BOB), 0);
	/* access() has the kernel fetch what it knows to be stale, as an
	 * exec would; what it then holds must not be set-id any more. */
	cr_assert_eq(access(path, R_OK), 0);
	cr_expect_eq(kernel_mode(path), c->after, "%s: the kernel holds %o",
		     c->name, kernel_mode(path));
	cr_expect_eq(mode_of(path), c->after, "%s: %o", c->name,
		     mode_of(path));
	cr_assert_eq(unlink(path), 0);
}

static void setid_bits(bool no_poll)
{
	static const char *const poll[] = { "-o", "allow_other", NULL };
	static const char *const libfuse[] = { "-o", "allow_other",
					       "--no-poll", NULL };
	struct mu_vol *v;

	mu_require_fuse();
	if (geteuid() != 0)
		mu_skip("needs root: the writer must be another user");
	v = mu_vol_new(0);
	cr_assert_eq(chmod(v->dir, 0755), 0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL,
			      no_poll ? libfuse : poll), 0, "%s", v->err);
	cr_assert_eq(chmod(v->mnt, 0755), 0);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		if (!no_poll || !cases[k].loop_only)
			check_case(v, &cases[k]);
	mu_unmount(v);
}

Test(mount_setid, dropped_as_on_ext4)
{
	setid_bits(false);
}

Test(mount_setid, dropped_as_on_ext4_with_libfuses_loop)
{
	setid_bits(true);
}

/* The requests the daemon's loop has taken so far (its status). */
static uint64_t requests(const struct mu_vol *v)
{
	char *a = NULL;
	const char *p;
	uint64_t n;
	int rc = ctl_request(mu_b(v, ".phifs/control.sock"),
			     "{\"cmd\":\"status\",\"version\":1}", 10000, &a);

	cr_assert_eq(rc, 0, "status: %s", strerror(-rc));
	p = strstr(a, "\"loop\":{");
	cr_assert(p, "no loop in %s", a);
	p = strstr(p, "\"requests\":");
	cr_assert(p, "no requests in %s", a);
	n = strtoull(p + strlen("\"requests\":"), NULL, 10);
	free(a);
	return n;
}

/*
 * Without FUSE_HANDLE_KILLPRIV_V2 the kernel sends GETXATTR
 * security.capability before each write: two requests a write.  With it,
 * one before the inode's first write only.
 */
Test(mount_setid, a_write_costs_one_request)
{
	enum { WRITES = 64 };
	struct mu_vol *v;
	uint64_t before, taken;
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	fd = open(mu_m(v, "w"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	cr_assert(fd >= 0, "%s", strerror(errno));
	before = requests(v);
	for (int k = 0; k < WRITES; k++)
		cr_assert_eq(pwrite(fd, "x", 1, k), 1);
	taken = requests(v) - before;
	cr_assert_eq(close(fd), 0);
	cr_expect_leq(taken, WRITES + 4, "%llu requests for %d writes",
		      (unsigned long long)taken, WRITES);
	mu_unmount(v);
}

/*
 * After the first, the loop's reader answers security.capability itself
 * (loop.h): the same answer as the file system's, and nothing else is
 * answered so.
 */
Test(mount_setid, security_capability_answered_as_before)
{
	struct mu_vol *v;
	char buf[16];
	const char *f;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	f = mu_m(v, "f");
	mu_write_file(f, "hi", 2);
	for (int k = 0; k < 3; k++) {
		cr_assert_eq(getxattr(f, "security.capability", buf,
				      sizeof(buf)), -1);
		cr_assert_eq(errno, EOPNOTSUPP, "%s", strerror(errno));
	}
	cr_assert_eq(getxattr(f, "security.selinux", buf, sizeof(buf)), -1);
	cr_assert_eq(errno, EOPNOTSUPP);
	cr_assert_eq(setxattr(f, "user.a", "v", 1, 0), 0, "%s",
		     strerror(errno));
	cr_assert_eq(getxattr(f, "user.a", buf, sizeof(buf)), 1);
	cr_assert_eq(getxattr(f, "user.b", buf, sizeof(buf)), -1);
	cr_assert_eq(errno, ENODATA);
	mu_unmount(v);
}
