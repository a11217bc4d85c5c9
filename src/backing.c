/*
 * backing.c — the backing directory: its root fd and the translation from
 * names in the mount to names and handles in it.  Lookups take one name at
 * a time (backing_name refuses "..", "." and slashes) with openat2
 * RESOLVE_BENEATH and O_PATH | O_NOFOLLOW, so a planted symlink is opened
 * as the link itself, never walked through.  Knows nothing of FUSE or
 * contents.
 */
#include "phifs/backing.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

int backing_open(struct backing *b, const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	b->rootfd = fd;
	return 0;
}

void backing_close(struct backing *b)
{
	if (b->rootfd >= 0)
		close(b->rootfd);
	b->rootfd = -1;
}

int backing_name(const char *name, bool in_root, char out[NAME_MAX + 1])
{
	size_t n = strlen(name);

	if (n == 0 || !strcmp(name, ".") || !strcmp(name, "..") ||
	    strchr(name, '/'))
		return -EINVAL;
	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	if (backing_is_meta(name, in_root))
		return -ENOENT;
	memcpy(out, name, n + 1);
	return 0;
}

/* bname is prefix and 32 lower-case hex digits. */
static bool temp_name(const char *bname, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(bname, prefix, n) || strlen(bname) != n + 32)
		return false;
	for (const char *p = bname + n; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

bool backing_is_rekey_temp(const char *bname)
{
	return temp_name(bname, BACKING_REKEY_PREFIX);
}

bool backing_is_mkdir_temp(const char *bname)
{
	return temp_name(bname, BACKING_MKDIR_PREFIX);
}

bool backing_is_meta(const char *bname, bool in_root)
{
	/* A rekey's temporary file is a whole encrypted file that a kill
	 * may leave behind: never a user's. */
	return (in_root && strcmp(bname, BACKING_META) == 0) ||
	       backing_is_rekey_temp(bname) || backing_is_mkdir_temp(bname);
}

int backing_lookup(int dirfd, const char *bname, int *fd)
{
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		/* An O_PATH open of a symlink yields the link itself; the
		 * resolve flags only forbid walking through one. */
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	long r;

	do
		r = syscall(SYS_openat2, dirfd, bname, &how, sizeof(how));
	while (r < 0 && errno == EAGAIN);
	if (r < 0)
		return -errno;
	*fd = (int)r;
	return 0;
}

static void proc_path(int pathfd, char out[32])
{
	snprintf(out, 32, "/proc/self/fd/%d", pathfd);
}

int backing_reopen(int pathfd, int flags, int *fd)
{
	char proc[32];
	int r;

	/*
	 * The documented way to turn an O_PATH handle into an open file: the
	 * magic link leads to that very inode, never elsewhere.  Callers only
	 * reopen regular files and folders.
	 */
	proc_path(pathfd, proc);
	r = open(proc, flags | O_CLOEXEC);
	if (r < 0)
		return -errno;
	*fd = r;
	return 0;
}

/* Syscalls newer than Debian 12's headers; numbers are the same on every
 * architecture that uses the common table. */
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

struct xattr_args_v0 {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

static _Atomic bool no_getxattrat, no_fchmodat2;

ssize_t backing_getxattr(int pathfd, int dirfd, const char *bname,
			 const char *attr, void *buf, size_t len)
{
	struct xattr_args_v0 args = { (uintptr_t)buf, (uint32_t)len, 0 };
	char proc[32];
	int fd = -1;
	long n;

	if (dirfd >= 0 && !no_getxattrat) {
		n = syscall(SYS_getxattrat, dirfd, bname, AT_SYMLINK_NOFOLLOW,
			    attr, &args, sizeof(args));
		if (n >= 0)
			return n;
		if (errno != ENOSYS)
			return -errno;
		no_getxattrat = true;
	}
	/*
	 * Without getxattrat a caller that has no handle of its own (pathfd
	 * -1, as for a file being removed) still names the object as bname
	 * in dirfd: open it there the way a lookup does, never following a
	 * symlink or leaving dirfd.
	 */
	if (pathfd < 0) {
		int rc;

		if (dirfd < 0)
			return -EBADF;
		rc = backing_lookup(dirfd, bname, &fd);
		if (rc)
			return rc;
		pathfd = fd;
	}
	/* fgetxattr refuses O_PATH handles: the magic link leads to the
	 * very inode, like backing_reopen. */
	proc_path(pathfd, proc);
	n = getxattr(proc, attr, buf, len);
	n = n < 0 ? -errno : n;
	if (fd >= 0)
		close(fd);
	return n;
}

/* The f*xattr calls refuse O_PATH handles: the magic link leads to the
 * very inode, as in backing_getxattr. */
int backing_setxattr(int pathfd, const char *attr, const void *value,
		     size_t len, int flags)
{
	char proc[32];

	proc_path(pathfd, proc);
	return setxattr(proc, attr, value, len, flags) ? -errno : 0;
}

ssize_t backing_listxattr(int pathfd, char *buf, size_t len)
{
	char proc[32];
	ssize_t n;

	proc_path(pathfd, proc);
	n = listxattr(proc, buf, len);
	return n < 0 ? -errno : n;
}

int backing_removexattr(int pathfd, const char *attr)
{
	char proc[32];

	proc_path(pathfd, proc);
	return removexattr(proc, attr) ? -errno : 0;
}

int backing_chmod(int pathfd, mode_t mode)
{
	char proc[32];

	if (!no_fchmodat2) {
		if (!syscall(SYS_fchmodat2, pathfd, "", mode, AT_EMPTY_PATH))
			return 0;
		if (errno != ENOSYS && errno != EINVAL)
			return -errno;
		no_fchmodat2 = true;
	}
	proc_path(pathfd, proc);
	return chmod(proc, mode) ? -errno : 0;
}

int backing_utimens(int pathfd, const struct timespec tv[2])
{
	char proc[32];

	if (!utimensat(pathfd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
		return 0;
	if (errno != EINVAL)
		return -errno;
	proc_path(pathfd, proc);	/* kernels before AT_EMPTY_PATH here */
	return utimensat(AT_FDCWD, proc, tv, 0) ? -errno : 0;
}
