/*
 * test_folders_crash.c — a daemon killed at every step of a mkdir (made
 * under a temporary name, given to its creator, sealed, renamed into
 * place) leaves either no folder or one whose record opens, never one
 * that shows as tampered with; and what a kill left never blocks the
 * rmdir of the folder it was made in.  The steps' system calls are
 * wrapped at link time (--wrap), as test_cfile_crash.c does, and a child
 * process is stopped right before the chosen one.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "phifs/log.h"
#include "phifs/vfs.h"
#include "volfixture.h"

static int calls, kill_at;	/* 0: never */

/* Stops the process before the kill_at-th wrapped call, as a kill would. */
static void step(void)
{
	if (kill_at && ++calls == kill_at)
		_exit(7);
}

int __real_mkdirat(int dirfd, const char *path, mode_t mode);
int __wrap_mkdirat(int dirfd, const char *path, mode_t mode);
int __wrap_mkdirat(int dirfd, const char *path, mode_t mode)
{
	step();
	return __real_mkdirat(dirfd, path, mode);
}

int __real_fchownat(int dirfd, const char *path, uid_t uid, gid_t gid,
		    int flags);
int __wrap_fchownat(int dirfd, const char *path, uid_t uid, gid_t gid,
		    int flags);
int __wrap_fchownat(int dirfd, const char *path, uid_t uid, gid_t gid,
		    int flags)
{
	step();
	return __real_fchownat(dirfd, path, uid, gid, flags);
}

int __real_setxattr(const char *path, const char *name, const void *value,
		    size_t size, int flags);
int __wrap_setxattr(const char *path, const char *name, const void *value,
		    size_t size, int flags);
int __wrap_setxattr(const char *path, const char *name, const void *value,
		    size_t size, int flags)
{
	step();
	return __real_setxattr(path, name, value, size, flags);
}

int __real_renameat2(int olddirfd, const char *oldpath, int newdirfd,
		     const char *newpath, unsigned int flags);
int __wrap_renameat2(int olddirfd, const char *oldpath, int newdirfd,
		     const char *newpath, unsigned int flags);
int __wrap_renameat2(int olddirfd, const char *oldpath, int newdirfd,
		     const char *newpath, unsigned int flags)
{
	step();
	return __real_renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

static char dir[64], keyfile[96], logged[4096];
static struct volume *vol;

static void sink(int priority, const char *line)
{
	(void)priority;
	strncat(logged, line, sizeof(logged) - strlen(logged) - 2);
	strcat(logged, "\n");
}

static void setup(void)
{
	strcpy(dir, "/tmp/phifs-fcrash-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	umask(0);
	vol = vf_make(dir, keyfile, sizeof(keyfile));
	log_set_sink(sink);
	log_open(false);
}

static void teardown(void)
{
	char cmd[256];

	volume_close(vol);
	log_close();
	log_set_sink(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, keyfile);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(folders_crash, .init = setup, .fini = teardown, .timeout = 60);

static struct vfs_groups groups = { .n = -1 };
static const struct vfs_caller caller = {
	.uid = 1234, .gid = 5678, .pid = 42, .groups = &groups,
};

/* In a child: mkdir p/d, stopped before wrapped call k.  Its exit code. */
static int mkdir_killed_at(uint64_t p, int k)
{
	struct vfs_entry e;
	struct vfs *v;
	int st;
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0) {
		if (vfs_new(vol, NULL, NULL, &v))
			_exit(100);
		calls = 0;
		kill_at = k;
		_exit(vfs_mkdir(v, &caller, p, "d", 0700, &e) ? 101 : 0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 102;
}

Test(folders_crash, a_mkdir_killed_at_any_step_leaves_no_folder_or_a_good_one)
{
	struct vfs_entry e, pe;
	struct vfs *v;
	int done = 0, rc;

	for (int k = 1; k <= 6 && !done; k++) {
		cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
		cr_assert_eq(vfs_mkdir(v, &caller, VFS_ROOT, "p", 0755, &pe),
			     0);
		rc = mkdir_killed_at(pe.ino, k);
		cr_assert(rc == 7 || rc == 0, "step %d: exit %d", k, rc);
		done = rc == 0;	/* past the last step: not killed */
		vfs_free(v);
		logged[0] = 0;
		cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
		cr_assert_eq(vfs_lookup(v, &caller, VFS_ROOT, "p", &pe), 0);
		rc = vfs_lookup(v, &caller, pe.ino, "d", &e);
		cr_assert(rc == 0 || rc == -ENOENT, "step %d: %d", k, rc);
		if (!rc) {
			cr_expect_eq(e.attr.st_mode, S_IFDIR | 0700,
				     "step %d: mode %o", k, e.attr.st_mode);
			vfs_forget(v, e.ino, 1);
			cr_assert_eq(vfs_rmdir(v, &caller, pe.ino, "d"), 0);
		}
		cr_expect_eq(logged[0], 0, "step %d told: %s", k, logged);
		cr_assert_eq(vfs_rmdir(v, &caller, VFS_ROOT, "p"), 0,
			     "step %d: what the kill left blocks the rmdir", k);
		vfs_forget(v, pe.ino, 1);
		vfs_free(v);
	}
	cr_expect(done, "the mkdir never got past its last step");
}
