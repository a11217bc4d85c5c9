/*
 * inodes.h — the inodes the kernel knows of a mount: one per backing object
 * (dev, ino), each with an O_PATH handle on it, a lookup count, and every
 * name it was found or made under (a hard-linked file has several), kept
 * through renames and removals so that an operation on an inode can be
 * judged and recorded by path.  Also the descriptor budget: above it, the
 * handles of idle inodes are parked (closed, reopened from file handles)
 * or, where file handles do not work, the kernel is asked to forget.
 *
 * Knows nothing of FUSE, keys or file contents.  An inode's id is what the
 * kernel is given; INODES_ROOT is the root's.  Thread-safe: one mutex.
 *
 * An inode lives while the kernel counts lookups of it, a request has it
 * pinned, or a name of another inode has it as parent; so every name's
 * folders can be walked up to the root.
 */
#ifndef PHIFS_INODES_H
#define PHIFS_INODES_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define INODES_ROOT 1u		/* the root's id (FUSE_ROOT_ID) */

struct inode;
struct inodes;

/* What the table asks of the layer above; called without its lock. */
struct inodes_ops {
	/* Whether (dev, ino) is open as a file: never parked nor let go. */
	bool (*in_use)(void *arg, dev_t dev, ino_t ino);
	/* Asks the kernel to forget the entry name in folder parent. */
	void (*drop_entry)(void *arg, uint64_t parent, const char *name);
	/* inodes_reap() should run soon, on a thread that serves no request
	 * (the kernel answers drop_entry with requests of its own). */
	void (*wake_reaper)(void *arg);
};

struct inodes_limits {
	size_t fd_high;		/* park handles above this many */
	size_t inode_high;	/* ask the kernel to forget above this */
	bool can_park;		/* file handles reopen here */
};

/*
 * Limits for this process: half the open-file limit, and parking where
 * file handles reopen under rootfd (CAP_DAC_READ_SEARCH) unless the
 * environment sets PHIFS_NO_FILE_HANDLES, for tests of the other path.
 */
void inodes_default_limits(int rootfd, struct inodes_limits *lim);

/* rootfd (the backing root) is borrowed; ops and arg must outlive t. */
int inodes_new(int rootfd, const struct inodes_limits *lim,
	       const struct inodes_ops *ops, void *arg, struct inodes **out);
/* Frees every inode; no call may be under way.  NULL does nothing. */
void inodes_free(struct inodes *t);

/* The inode of an id the kernel was given, and back. */
struct inode *inodes_at(struct inodes *t, uint64_t id);
uint64_t inodes_id(const struct inode *i);
/* Its backing identity and S_IFMT type, fixed for its life. */
dev_t inodes_dev(const struct inode *i);
ino_t inodes_ino(const struct inode *i);
mode_t inodes_type(const struct inode *i);
bool inodes_is_root(struct inodes *t, const struct inode *i);
size_t inodes_count(struct inodes *t);

/*
 * The O_PATH handle of i, open until inodes_unpin(): the fd, or -errno
 * (-ESTALE once its object is removed or replaced).  Every use of an
 * inode's handle goes through here.
 */
int inodes_pin(struct inodes *t, struct inode *i);
void inodes_unpin(struct inodes *t, struct inode *i);

/*
 * The inode of the object on pathfd (taken over: kept or closed) with
 * attributes st, found as name in parent (NULL for none): one more lookup
 * counted, and the name remembered.
 */
int inodes_get(struct inodes *t, int pathfd, const struct stat *st,
	       struct inode *parent, const char *name, struct inode **out);
/* The kernel forgot n lookups of i. */
void inodes_forget(struct inodes *t, struct inode *i, uint64_t n);

/*
 * At the open-file limit the reaper frees handles, which takes the kernel's
 * FORGETs: a call that met EMFILE or ENFILE (rc) waits a moment and tries
 * again, for up to 200 ms.  Whether to try again.
 */
bool inodes_fd_wait(struct inodes *t, int rc, int *tries);

/* Names: name in parent was removed, or renamed (renameat2 flags). */
void inodes_unlinked(struct inodes *t, struct inode *parent,
		     const char *name);
void inodes_renamed(struct inodes *t, struct inode *p, const char *name,
		    struct inode *q, const char *newname, unsigned flags);

/*
 * The path of i from the mount's root ("/" for the root, "/a/b"): its
 * first name when it has several.  -ENOENT when it has none (removed),
 * -ENAMETOOLONG past len.
 */
int inodes_path(struct inodes *t, struct inode *i, char *buf, size_t len);
/* inodes_path for the inode of backing object (dev, ino): -ENOENT when
 * the kernel does not know it. */
int inodes_path_of(struct inodes *t, dev_t dev, ino_t ino, char *buf,
		   size_t len);
/*
 * Calls fn with each path of i until fn returns non-zero (returned); 0,
 * -ENOENT for no name, or -ENAMETOOLONG past PATH_MAX.  Allocates
 * nothing; fn runs under the table's lock, so it must not call into the
 * table (nor wait on anything that does).
 */
int inodes_paths(struct inodes *t, struct inode *i,
		 int (*fn)(void *arg, const char *path), void *arg);
/*
 * The folder of i's first name, pinned if its handle is open now (else
 * -EAGAIN: this is for hints, which must not reopen), with the name.
 * Unpin the folder with inodes_unpin.
 */
int inodes_pin_parent(struct inodes *t, struct inode *i,
		      struct inode **parent, char name[NAME_MAX + 1]);

/*
 * The object (dev, ino) was removed (its last name, or a folder): its
 * handle leaves the table now rather than at the kernel's FORGET, which
 * comes late: until then it would hold the file's space, and a new file
 * may get the same inode number.  last: its attributes, for descriptors
 * that still name it.  Returns the handle for the caller to close (a last
 * close frees the file, which takes a while), or -1 when the object is
 * not known, in use, or pinned.
 */
int inodes_gone(struct inodes *t, dev_t dev, ino_t ino,
		const struct stat *last);
/* After the last close of i: inodes_gone's if it has no link left. */
int inodes_closed(struct inodes *t, struct inode *i);
/* Attributes of a removed inode, for inodes_gone after the fact. */
void inodes_set_last(struct inodes *t, struct inode *i,
		     const struct stat *st);
/* A removed inode's last attributes: 0, or -ESTALE. */
int inodes_last(struct inodes *t, struct inode *i, struct stat *st);

/* Asks the kernel to forget idle entries while above inode_high. */
void inodes_reap(struct inodes *t);
/* Whether inodes_reap has work (a hint, read without the lock). */
bool inodes_reap_due(struct inodes *t);
/*
 * Frees the space of removed files whose inode the kernel still holds
 * (our handle keeps their blocks until its FORGET).  Whether it did.
 */
bool inodes_reclaim_unlinked(struct inodes *t);

#endif
