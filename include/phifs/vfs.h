/*
 * vfs.h — the operations core of a mount: every operation the mount serves,
 * on inode ids and plain names, for a caller, returning 0 or -errno.  The
 * one hall every operation passes: a hooks table (vfs_hooks) is asked to
 * `allow` each before anything in the backing directory is touched, and
 * told the result (`record`) after, with the plaintext bytes of reads and
 * writes.  With no hooks set, everything is allowed and nothing recorded.
 *
 * Knows nothing of FUSE: the adapter above (fs.c) builds the caller from
 * the request, calls here and replies.  Integrity failures come back as
 * their own codes (-EBADMSG, -EUCLEAN, ...); turning them into EIO is the
 * adapter's business.  Thread-safe.
 */
#ifndef PHIFS_VFS_H
#define PHIFS_VFS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "phifs/volume.h"

#define VFS_ROOT 1u		/* the root's inode id (FUSE_ROOT_ID) */

#define VFS_MAX_GROUPS 64	/* supplementary groups kept per caller */

/* A caller's supplementary groups, once asked for. */
struct vfs_groups {
	int n;			/* -1 until asked */
	gid_t gid[VFS_MAX_GROUPS];
};

/*
 * Who asks: the kernel's word on the calling process.  Its supplementary
 * groups are asked for only when first wanted (vfs_caller_groups), since
 * the kernel tells them only through /proc, a read per request.
 */
struct vfs_caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	/* Fills out with up to max groups: their count, or -errno. */
	int (*get_groups)(void *ctx, gid_t *out, size_t max);
	void *ctx;
	struct vfs_groups *groups;	/* the cache; n = -1 to start */
};

/* The caller's supplementary groups (none if they cannot be had). */
size_t vfs_caller_groups(const struct vfs_caller *c, const gid_t **out);

enum vfs_op {
	VFS_LOOKUP, VFS_GETATTR, VFS_SETATTR, VFS_READLINK,
	VFS_MKNOD, VFS_MKDIR, VFS_SYMLINK, VFS_LINK,
	VFS_UNLINK, VFS_RMDIR, VFS_RENAME,
	VFS_OPEN, VFS_CREATE, VFS_READ, VFS_WRITE, VFS_FSYNC, VFS_RELEASE,
	VFS_OPENDIR, VFS_READDIR, VFS_FSYNCDIR, VFS_RELEASEDIR,
	VFS_STATFS,
	VFS_SETXATTR, VFS_GETXATTR, VFS_LISTXATTR, VFS_REMOVEXATTR,
	VFS_FALLOCATE,
	VFS_OP_COUNT
};

/* "lookup", "getattr", ...; NULL past the enum. */
const char *vfs_op_name(enum vfs_op op);

/* What setattr changes (vfs_req.flags); the values are the kernel's. */
enum {
	VFS_SET_MODE = 1 << 0,
	VFS_SET_UID = 1 << 1,
	VFS_SET_GID = 1 << 2,
	VFS_SET_SIZE = 1 << 3,
	VFS_SET_ATIME = 1 << 4,	/* to attr's */
	VFS_SET_MTIME = 1 << 5,
	VFS_SET_ATIME_NOW = 1 << 7,
	VFS_SET_MTIME_NOW = 1 << 8,
	VFS_SET_ALL = (1 << 9) - 1 - (1 << 6),
};

/* One operation, as the hooks see it. */
struct vfs_req {
	enum vfs_op op;
	uint64_t ino;		/* the object, or the folder of name */
	const char *name;	/* the entry in ino, for ops on names;
				 * the attribute, for xattr ops */
	uint64_t ino2;		/* rename: new folder; link: new folder */
	const char *name2;	/* rename: new name; link: new name;
				 * symlink: the target */
	int flags;		/* open(2), renameat2, VFS_SET_*,
				 * setxattr(2) flags; fallocate(2)'s
				 * mode */
	mode_t mode;		/* create, mkdir, mknod; setattr's mode */
	uint64_t off;		/* read, write, fallocate; setattr's size */
	size_t len;		/* bytes asked to read, write or
				 * fallocate; an xattr's value size, or
				 * the buffer's */
	/* For operations on an open file: who opened it. */
	const struct vfs_caller *opener;
	/* For record: allow refused it (the result is its refusal). */
	bool refused;
};

struct vfs_hooks {
	/* 0 to go ahead, or -errno (-EACCES) to refuse. */
	int (*allow)(void *arg, const struct vfs_caller *c,
		     const struct vfs_req *r);
	/*
	 * The result (0, a byte count, or -errno; a refusal too, with
	 * r->refused); for reads and writes the plaintext bytes moved.  0,
	 * or -EIO when the result could not be recorded: a read then
	 * returns no bytes and fails with EIO, and so does a change that was
	 * made (except one that handed out an entry or an open file).
	 */
	int (*record)(void *arg, const struct vfs_caller *c,
		      const struct vfs_req *r, long result,
		      const void *bytes, size_t len);
	/*
	 * A file's block (-1: its header) failed authentication, met by c's
	 * operation (c NULL: by the daemon's own, as a stat's size).  path
	 * is empty when no name is known for it.
	 */
	void (*integrity)(void *arg, const struct vfs_caller *c,
			  const char *path, int64_t block);
};

/* What the core asks of the layer above; called without locks held. */
struct vfs_kernel {
	/* Ask the kernel to forget the entry name in folder parent. */
	void (*drop_entry)(void *arg, uint64_t parent, const char *name);
	/* Ask the kernel to forget the attributes it holds of inode ino. */
	void (*inval_attrs)(void *arg, uint64_t ino);
};

/* An entry for the kernel: inode id (0: none) and attributes. */
struct vfs_entry {
	uint64_t ino;
	struct stat attr;
};

struct vfs;
struct vfs_file;
struct vfs_dir;

/* vol is borrowed and must outlive the vfs; kernel and hooks may be NULL. */
int vfs_new(struct volume *vol, const struct vfs_kernel *kernel, void *karg,
	    struct vfs **out);
/* Set before serving; hooks and arg must outlive the vfs. */
void vfs_set_hooks(struct vfs *v, const struct vfs_hooks *hooks, void *arg);
/* The mount point, for tuning its readahead once mounted (copied). */
int vfs_set_mountpoint(struct vfs *v, const char *path);
/* Starts the background threads (after any fork), and stops them. */
int vfs_start(struct vfs *v);
void vfs_stop(struct vfs *v);
/* Stops, commits and closes every open file.  NULL does nothing. */
void vfs_free(struct vfs *v);

/*
 * What the mount did since vfs_new, for the control socket.  The counters
 * cost an operation a few relaxed atomic additions and no lock; a snapshot
 * of them is not one instant, only each figure is exact.
 */
#define VFS_AUTH_KEPT 8		/* authentication failures remembered */

enum vfs_err { VFS_ERR_EIO, VFS_ERR_ENOSPC, VFS_ERR_EACCES, VFS_ERR_COUNT };

struct vfs_auth_failure {
	char path[256];		/* in the mount, cut to fit */
	int64_t block;		/* -1: the header */
	int64_t time;		/* seconds since the epoch */
};

struct vfs_stats {
	uint64_t ops[VFS_OP_COUNT];	/* recorded operations, by kind */
	uint64_t read_bytes, write_bytes;	/* plaintext moved */
	uint64_t errors[VFS_ERR_COUNT];	/* integrity failures count as EIO */
	uint64_t auth_failures;
	/* Files found with a header slot refused (the older one used), and
	 * with a size tag that verifies but disagrees with the header: each
	 * file once for as long as what was found stays the same. */
	uint64_t header_fallbacks, size_tag_mismatches;
	/* files and folders whose backing mode or owner was not their
	 * header's or record's */
	uint64_t attr_mismatches;
	unsigned auth_kept;		/* entries in auth, newest first */
	struct vfs_auth_failure auth[VFS_AUTH_KEPT];
	uint64_t open_files, open_dirs;
	uint64_t inodes;		/* the kernel's, held with a handle */
};

/* Fills st; thread-safe, takes short locks (not the request path's). */
void vfs_stats(struct vfs *v, struct vfs_stats *st);
/* "EIO", "ENOSPC", "EACCES"; NULL past the enum. */
const char *vfs_err_name(enum vfs_err e);

/*
 * Commits the size of every open file whose size changed to its header
 * now, as the ticker does each second.  0 or the first -errno; each
 * failure is also told to the operator.  Thread-safe.
 */
int vfs_flush(struct vfs *v);

/*
 * Re-wraps the backing file on fd (O_RDWR, the caller's) to master key
 * version `version` without racing the mount's opens and commits
 * (nodes_rewrap): for a rotation while mounted.  -EALREADY when on it.
 */
int vfs_rewrap(struct vfs *v, int fd, uint32_t version);
/*
 * Renames begun and ended in the backing so far ([0], [1]): a walk of the
 * tree that began and ended with the same pair, begun equal to ended,
 * missed nothing a rename could have moved past it.
 */
void vfs_renames(struct vfs *v, uint64_t out[2]);
/*
 * The path of inode ino from the mount's root into buf (-ENAMETOOLONG
 * past len, -ENOENT when no name reaches it), and every path of it to fn:
 * inodes_paths, so fn runs under the inode table's lock and must not call
 * back into the vfs.
 */
int vfs_path(struct vfs *v, uint64_t ino, char *buf, size_t len);
int vfs_paths(struct vfs *v, uint64_t ino,
	      int (*fn)(void *arg, const char *path), void *arg);

/* Entries come with one lookup counted; the kernel's forget undoes it. */
int vfs_lookup(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	       const char *name, struct vfs_entry *e);
void vfs_forget(struct vfs *v, uint64_t ino, uint64_t n);
int vfs_getattr(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		struct stat *st);
/* Applies the VFS_SET_* in `set` from attr; f when done on an open file.
 * attr then holds the new attributes. */
int vfs_setattr(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		struct stat *attr, int set, struct vfs_file *f);
/* The target, NUL-terminated, in buf of len (at least PATH_MAX). */
int vfs_readlink(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		 char *buf, size_t len);
int vfs_mknod(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	      const char *name, mode_t mode, dev_t rdev, struct vfs_entry *e);
int vfs_mkdir(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	      const char *name, mode_t mode, struct vfs_entry *e);
int vfs_symlink(struct vfs *v, const struct vfs_caller *c,
		const char *target, uint64_t parent, const char *name,
		struct vfs_entry *e);
int vfs_link(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
	     uint64_t parent, const char *name, struct vfs_entry *e);
int vfs_unlink(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	       const char *name);
int vfs_rmdir(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	      const char *name);
int vfs_rename(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	       const char *name, uint64_t newparent, const char *newname,
	       unsigned flags);
int vfs_statfs(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
	       struct statvfs *sv);

/*
 * Extended attributes: user.* only, stored sealed (docs/FORMAT.md); any
 * other namespace gives -EOPNOTSUPP, and "user." alone -EINVAL, without
 * asking the hooks.  As the
 * system calls: flags XATTR_CREATE (-EEXIST) or XATTR_REPLACE (-ENODATA);
 * get and list with size 0 give the length needed, and -ERANGE when size
 * is short of it.  An attribute that fails authentication gives -EBADMSG
 * from get and is left out of the list; both report it.
 */
int vfs_setxattr(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		 const char *name, const void *value, size_t size, int flags);
ssize_t vfs_getxattr(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		     const char *name, void *buf, size_t size);
/* NUL-terminated names, one after the other. */
ssize_t vfs_listxattr(struct vfs *v, const struct vfs_caller *c,
		      uint64_t ino, char *buf, size_t size);
int vfs_removexattr(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		    const char *name);

/*
 * What an open leaves for vfs_opened(), which starts reading ahead the
 * files after it once the open is answered (any earlier and the reply
 * waits for it).  Its fields are the core's.
 */
struct vfs_hint {
	void *folder;
	int fd;
	bool cold;
	char name[NAME_MAX + 1];
};

/* Open files: flags as open(2). */
int vfs_open(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
	     int flags, struct vfs_file **out, struct vfs_hint *hint);
int vfs_create(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	       const char *name, mode_t mode, int flags, struct vfs_entry *e,
	       struct vfs_file **out);
/* Call once after every vfs_open, whatever became of it. */
void vfs_opened(struct vfs *v, struct vfs_hint *hint);
/*
 * Whether the open file f has a set-user-id or set-group-id bit, from the
 * mode its header authenticates: 0 (none), 1, or -ENODATA when its header
 * keeps no mode yet (ask vfs_getattr).  No hook is asked: it tells the
 * caller only whether a write must drop bits, not the mode itself.
 */
int vfs_file_setid(struct vfs_file *f);

/* Bytes read into buf / written from buf, or -errno. */
ssize_t vfs_read(struct vfs *v, const struct vfs_caller *c,
		 struct vfs_file *f, void *buf, size_t size, uint64_t off);
ssize_t vfs_write(struct vfs *v, const struct vfs_caller *c,
		  struct vfs_file *f, const void *buf, size_t size,
		  uint64_t off);
int vfs_fsync(struct vfs *v, const struct vfs_caller *c, struct vfs_file *f,
	      bool datasync);
/*
 * fallocate(2) on an open file, mode its FALLOC_FL_* flags (cfile.h says
 * which are served: reservations, punched holes and zeroed ranges, all
 * authenticated; -EOPNOTSUPP for collapse, insert and the rest).
 */
int vfs_fallocate(struct vfs *v, const struct vfs_caller *c,
		  struct vfs_file *f, int mode, uint64_t off, uint64_t len);
/* Frees f whatever the result (never refused: it ends what was let in).
 * c may be NULL when an open is undone before the caller saw it. */
int vfs_release(struct vfs *v, const struct vfs_caller *c,
		struct vfs_file *f);

/*
 * Folders.  vfs_readdir hands entries from offset off to fill until it
 * says no more fit; with plus, each comes with its attributes and one
 * lookup counted (ino 0: none), taken only once `fits` said yes.
 */
struct vfs_filler {
	bool plus;
	bool (*fits)(void *arg, const char *name);
	void (*add)(void *arg, const char *name, const struct vfs_entry *e,
		    off_t next);
	void *arg;
};
int vfs_opendir(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		struct vfs_dir **out);
int vfs_readdir(struct vfs *v, const struct vfs_caller *c,
		struct vfs_dir *d, off_t off, const struct vfs_filler *fill);
int vfs_fsyncdir(struct vfs *v, const struct vfs_caller *c,
		 struct vfs_dir *d, bool datasync);
void vfs_releasedir(struct vfs *v, const struct vfs_caller *c,
		    struct vfs_dir *d);

#endif
