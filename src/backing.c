/*
 * backing.c — the backing directory: one root fd and the translation from
 * mount paths to where they live in it.  Lookups go through openat2 with
 * RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS, so neither ".." nor a planted
 * symlink can reach outside the root.  Knows nothing of FUSE or contents.
 */
#include "phifs/backing.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int openat2_beneath(int dirfd, const char *path, int flags, int mode)
{
	struct open_how how = {
		.flags = (unsigned long long)(flags | O_NOFOLLOW | O_CLOEXEC),
		.mode = (unsigned long long)mode,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	do
		fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	return fd < 0 ? -errno : (int)fd;
}

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

bool backing_is_meta(const char *name, bool in_root)
{
	return in_root && strcmp(name, BACKING_META) == 0;
}

int backing_resolve(const struct backing *b, const char *path,
		    struct backing_path *out)
{
	const char *rel = path, *slash;
	size_t dlen, nlen;
	char dir[PATH_MAX];
	int fd;

	while (*rel == '/')
		rel++;
	if (*rel == 0) {
		*out = (struct backing_path){ b->rootfd, false, "." };
		return 0;
	}
	slash = strchr(rel, '/');
	dlen = slash ? (size_t)(slash - rel) : strlen(rel);
	if (dlen == strlen(BACKING_META) && !memcmp(rel, BACKING_META, dlen))
		return -ENOENT;
	slash = strrchr(rel, '/');
	if (!slash) {
		nlen = strlen(rel);
		if (nlen > NAME_MAX)
			return -ENAMETOOLONG;
		out->dirfd = b->rootfd;
		out->owned = false;
		memcpy(out->name, rel, nlen + 1);
		return 0;
	}
	dlen = (size_t)(slash - rel);
	nlen = strlen(slash + 1);
	if (dlen >= sizeof(dir))
		return -ENAMETOOLONG;
	if (nlen > NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(dir, rel, dlen);
	dir[dlen] = 0;
	fd = openat2_beneath(b->rootfd, dir, O_PATH | O_DIRECTORY, 0);
	if (fd < 0)
		return fd == -ELOOP || fd == -EXDEV ? -EACCES : fd;
	out->dirfd = fd;
	out->owned = true;
	memcpy(out->name, slash + 1, nlen + 1);
	return 0;
}

void backing_path_release(struct backing_path *p)
{
	if (p->owned)
		close(p->dirfd);
	p->owned = false;
	p->dirfd = -1;
}

int backing_openat(const struct backing_path *p, int flags, int mode,
		   int *fd)
{
	int r = openat2_beneath(p->dirfd, p->name, flags, mode);

	if (r < 0)
		return r;
	*fd = r;
	return 0;
}
