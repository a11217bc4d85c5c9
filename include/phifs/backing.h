/*
 * backing.h — all access to a volume's backing directory goes through here:
 * one directory fd, and one function that turns a path under the mount into
 * (parent directory fd, name).  Every lookup is resolved beneath the root
 * and refuses symlinks on the way (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS), so a symlink planted in the backing directory cannot
 * lead outside it.  Encrypted file names, when they come, change only
 * backing_resolve().  Knows nothing of FUSE, keys or file contents.
 *
 * Functions return 0 or -errno.  Thread-safe.
 */
#ifndef PHIFS_BACKING_H
#define PHIFS_BACKING_H

#include <limits.h>
#include <stdbool.h>

/* The folder inside the backing root that holds keystore, lock, log. */
#define BACKING_META ".phifs"

struct backing {
	int rootfd;
};

/* Where a mount path lives: the parent folder and the name in it. */
struct backing_path {
	int dirfd;		/* borrowed from the backing when !owned */
	bool owned;
	char name[NAME_MAX + 1];	/* "." for the root itself */
};

int backing_open(struct backing *b, const char *dir);
void backing_close(struct backing *b);

/*
 * Translates a mount path ("/", "/a/b") to its backing location.  Paths
 * into BACKING_META give -ENOENT: it does not exist for the mount.
 */
int backing_resolve(const struct backing *b, const char *path,
		    struct backing_path *out);
void backing_path_release(struct backing_path *p);

/*
 * Opens the object at p (never following a symlink at the end either).
 * flags as for open(2); O_NOFOLLOW and O_CLOEXEC are added.
 */
int backing_openat(const struct backing_path *p, int flags, int mode,
		   int *fd);

/* True when name in the root is the meta folder (for readdir). */
bool backing_is_meta(const char *name, bool in_root);

#endif
