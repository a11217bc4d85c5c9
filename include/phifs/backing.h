/*
 * backing.h — all access to a volume's backing directory goes through here:
 * one root fd, one function that turns a name in the mount into its name in
 * the backing directory (today the same name; encrypted names will change
 * only backing_name), and lookups that never follow a symlink or leave the
 * folder they start in, so that a symlink planted in the backing directory
 * cannot lead outside it.  Knows nothing of FUSE, keys or file contents.
 *
 * Functions return 0 or -errno.  Thread-safe.
 */
#ifndef PHIFS_BACKING_H
#define PHIFS_BACKING_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

/* The folder inside the backing root that holds keystore, lock, journals. */
#define BACKING_META ".phifs"

struct backing {
	int rootfd;
};

int backing_open(struct backing *b, const char *dir);
void backing_close(struct backing *b);

/*
 * Translates one name from the mount (in the root folder when in_root) to
 * its backing name.  -ENOENT for the meta folder and names of rekey
 * temporaries (backing_is_meta), which do not exist for
 * the mount; -EINVAL for "", ".", ".." or a name with a slash;
 * -ENAMETOOLONG past NAME_MAX.
 */
int backing_name(const char *name, bool in_root, char out[NAME_MAX + 1]);

/*
 * The temporary backing file a rekey writes beside a file before renaming
 * it over the file: this prefix, then the file ID in 32 lower-case hex
 * digits (docs/FORMAT.md, "Rekey").
 */
#define BACKING_REKEY_PREFIX ".phifs-rekey-"
#define BACKING_REKEY_NAME_LEN (sizeof(BACKING_REKEY_PREFIX) - 1 + 32)

/* True when bname has the shape of a rekey's temporary file. */
bool backing_is_rekey_temp(const char *bname);

/*
 * The temporary name a folder made through the mount has until its record
 * is sealed: this prefix and 32 lower-case hex digits (random).  A kill
 * before the rename that gives it its name leaves an empty folder of that
 * name, which nobody sees (docs/FORMAT.md, "Folder records").
 */
#define BACKING_MKDIR_PREFIX ".phifs-mkdir-"
#define BACKING_MKDIR_NAME_LEN (sizeof(BACKING_MKDIR_PREFIX) - 1 + 32)

/* True when bname has the shape of a mkdir's temporary folder. */
bool backing_is_mkdir_temp(const char *bname);

/*
 * True when a backing name is phifs's own, never the mount's (readdir,
 * lookups): the meta folder in the root, a rekey's temporary file or a
 * mkdir's temporary folder in any folder.
 */
bool backing_is_meta(const char *bname, bool in_root);

/*
 * Opens bname (a backing name) in dirfd as an O_PATH handle, without
 * following a symlink and without leaving dirfd.
 */
int backing_lookup(int dirfd, const char *bname, int *fd);

/* Opens the object behind an O_PATH handle for I/O, with flags. */
int backing_reopen(int pathfd, int flags, int *fd);

/*
 * An extended attribute of the object behind an O_PATH handle: its length,
 * or -errno.  With dirfd >= 0 the object is also bname in dirfd, which
 * saves the /proc walk on kernels with getxattrat(2); pathfd may then be
 * -1, and kernels without getxattrat look bname up in dirfd as
 * backing_lookup does.  Callers must not trust the value to be pathfd's (a
 * rename may come between), only to be the attribute of some object, which
 * a MAC bound to the inode settles.
 */
ssize_t backing_getxattr(int pathfd, int dirfd, const char *bname,
			 const char *attr, void *buf, size_t len);

/*
 * setxattr(2) (flags XATTR_CREATE, XATTR_REPLACE), listxattr(2) and
 * removexattr(2) on the object behind an O_PATH handle (never a symlink's
 * target: the handle is the object).  list returns the length, or -errno.
 */
int backing_setxattr(int pathfd, const char *attr, const void *value,
		     size_t len, int flags);
ssize_t backing_listxattr(int pathfd, char *buf, size_t len);
int backing_removexattr(int pathfd, const char *attr);

/* chmod and utimensat for an O_PATH handle (a symlink's own times). */
int backing_chmod(int pathfd, mode_t mode);
int backing_utimens(int pathfd, const struct timespec tv[2]);

#endif
