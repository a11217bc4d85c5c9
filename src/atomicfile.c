/*
 * atomicfile.c — whole-file replacement by temp file and rename, relative
 * to a folder fd.  Knows nothing of the file's meaning, of paths above the
 * folder, nor of secrets (the caller wipes its buffer; a temp file that
 * held a secret is unlinked like any other).
 */
#include "phifs/atomicfile.h"
#include "phifs/ioutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* O_EXCL | O_NOFOLLOW: a symlink planted at the temp name is never opened. */
#define TMP_FLAGS (O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC)

static int open_temp(int dirfd, const char *tmp, mode_t mode)
{
	int fd = openat(dirfd, tmp, TMP_FLAGS, mode & 07777);

	if (fd >= 0 || errno != EEXIST)
		return fd < 0 ? -errno : fd;
	/*
	 * Left by a crash: only ever an unfinished copy, never the target.
	 * unlinkat removes a symlink itself, not what it points at.
	 */
	if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT)
		return -errno;
	fd = openat(dirfd, tmp, TMP_FLAGS, mode & 07777);
	return fd < 0 ? -errno : fd;
}

/* Is the file at tmp still the one we wrote (st), or did a writer race us? */
static bool still_ours(int dirfd, const char *tmp, const struct stat *st)
{
	struct stat now;

	return fstatat(dirfd, tmp, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	       now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

static int rename_noreplace(int dirfd, const char *tmp, const char *name)
{
	if (renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/*
	 * The folder's file system has no RENAME_NOREPLACE: a hard link
	 * fails with EEXIST just the same, then the temp name goes.
	 */
	if (linkat(dirfd, tmp, dirfd, name, 0) < 0)
		return -errno;
	(void)unlinkat(dirfd, tmp, 0);
	return 0;
}

/* Gives the temp file its mode and contents, durably. */
static int fill(int fd, const void *buf, size_t len, mode_t mode)
{
	int rc;

	/* Exactly the mode asked for: the umask only ever takes bits away. */
	if (fchmod(fd, mode & 07777) < 0)
		return -errno;
	rc = ioutil_write_all(fd, buf, len);
	if (rc < 0)
		return rc;
	/* Data before name: else a crash can leave the new name, empty. */
	return fsync(fd) < 0 ? -errno : 0;
}

static int put(int dirfd, const char *name, const void *buf, size_t len,
	       mode_t mode, bool replace)
{
	struct stat st;
	char *tmp = NULL;
	int fd = -1, rc, made = 0;

	if (!name || !*name || strchr(name, '/'))
		return -EINVAL;
	/* Not even a temp file when the answer is known already. */
	if (!replace && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	if (asprintf(&tmp, "%s" ATOMICFILE_SUFFIX, name) < 0)
		return -ENOMEM;
	fd = open_temp(dirfd, tmp, mode);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		(void)unlinkat(dirfd, tmp, 0);
		goto out;
	}
	made = 1;
	rc = fill(fd, buf, len, mode);
	if (rc < 0)
		goto out;
	rc = close(fd) < 0 ? -errno : 0;
	fd = -1;
	if (rc < 0)
		goto out;
	if (!still_ours(dirfd, tmp, &st)) {
		made = 0;	/* someone else's now: leave it to them */
		rc = -EBUSY;
		goto out;
	}
	if (replace)
		rc = renameat(dirfd, tmp, dirfd, name) < 0 ? -errno : 0;
	else
		rc = rename_noreplace(dirfd, tmp, name);
	if (rc < 0)
		goto out;
	made = 0;
	/* Without this the rename itself may not survive a power cut. */
	rc = fsync(dirfd) < 0 ? -errno : 0;
out:
	if (fd >= 0)
		close(fd);
	if (made && still_ours(dirfd, tmp, &st))
		(void)unlinkat(dirfd, tmp, 0);
	free(tmp);
	return rc;
}

int atomicfile_write(int dirfd, const char *name, const void *buf, size_t len,
		     mode_t mode)
{
	return put(dirfd, name, buf, len, mode, true);
}

int atomicfile_create(int dirfd, const char *name, const void *buf,
		      size_t len, mode_t mode)
{
	return put(dirfd, name, buf, len, mode, false);
}
