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
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
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

bool backing_is_meta(const char *bname, bool in_root)
{
	return in_root && strcmp(bname, BACKING_META) == 0;
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

int backing_reopen(int pathfd, int flags, int *fd)
{
	char proc[32];
	int r;

	/*
	 * The documented way to turn an O_PATH handle into an open file: the
	 * magic link leads to that very inode, never elsewhere.  Callers only
	 * reopen regular files and folders.
	 */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pathfd);
	r = open(proc, flags | O_CLOEXEC);
	if (r < 0)
		return -errno;
	*fd = r;
	return 0;
}
