/*
 * vfs_impl.h — what the parts of the operations core share (vfs.c: the
 * core, attributes and lookups; vfs_tree.c: changes to names; vfs_file.c:
 * files and folders; vfs_node.c: node records; vfs_xattr.c: extended
 * attributes).  Private to them.
 */
#ifndef PHIFS_VFS_IMPL_H
#define PHIFS_VFS_IMPL_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>

#include "phifs/closer.h"
#include "phifs/folders.h"
#include "phifs/inodes.h"
#include "phifs/nodes.h"
#include "phifs/prefetch.h"
#include "phifs/sizememo.h"
#include "phifs/vfs.h"

/* Bytes of a backing file fetched together with its header on open. */
#define VFS_OPEN_READAHEAD (128 * 1024)

/* Inval requests queued for the ticker; past that they are dropped (the
 * kernel's attributes time out, and a short read corrects its size). */
#define VFS_INVAL_MAX 16
/* Header notes remembered, so that a file is reported once, not on every
 * open or stat, while what was found stays the same. */
#define VFS_TOLD_KEPT 32

struct vfs_told {
	dev_t dev;
	ino_t ino;
	uint64_t seq;		/* of the slot used */
	int refused;		/* the slot refused, or -1 */
	int tag;		/* enum cfile_tag_state */
	uint64_t tag_size;
	/* A backing mode or owner found not the header's, and what it was
	 * (a second change behind phifs's back is a second finding). */
	bool attrs;
	struct format_attrs backing;
	bool named;		/* told with a path, not an inode number */
};

struct vfs {
	struct volume *vol;
	struct nodes *nodes;
	struct inodes *inodes;
	struct size_memo *sizes;	/* verified from size tags */
	struct crypto_key *link_key;	/* seals symlink targets */
	struct crypto_key *xattr_key;	/* seals extended attributes */
	struct crypto_key *xattr_name_key;	/* hashes their names */
	struct crypto_key *folder_key;	/* seals folder records */
	_Atomic bool folders_marked;	/* every folder has a record */
	bool as_root;		/* give created objects to the caller */
	const struct vfs_hooks *hooks;
	void *hooks_arg;
	const struct vfs_kernel *kernel;
	void *karg;
	struct prefetch *prefetch;	/* NULL until started, or failed */
	struct closer *closer;	/* the same; closes removed files' handles */
	char *mountpoint;	/* absolute; NULL when not told */
	pthread_t ticker;
	pthread_mutex_t tick_lock;	/* protects stop, reap_asked, inval */
	pthread_cond_t tick_cond;
	bool stop;
	bool reap_asked;
	/* Inodes whose attributes the kernel is to forget: asked for by
	 * request handlers, done by the ticker (never from a handler: the
	 * kernel may wait for that very request). */
	uint64_t inval[VFS_INVAL_MAX];
	unsigned n_inval;
	bool ticking;
	_Atomic bool ticker_idle;	/* waits untimed: no file is open */
	/* Renames begun and ended in the backing: a walk of the tree (a
	 * rotation's) is complete only if none ran while it did. */
	_Atomic uint64_t renames_begun, renames_ended;
	/* The figures of vfs_stats: relaxed atomics, no lock, in stripes
	 * that threads spread over, so that workers on different CPUs do
	 * not fight over one cache line for every read and write. */
	struct vfs_counters *counters;	/* VFS_STRIPES of them */
	/* protects n_auth, auth, auth_next, the header notes below */
	pthread_mutex_t auth_lock;
	uint64_t n_auth;
	unsigned auth_next;		/* the slot the next failure takes */
	struct vfs_auth_failure auth[VFS_AUTH_KEPT];
	uint64_t n_fallbacks, n_tag_mismatches, n_attr_mismatches;
	struct vfs_told told[VFS_TOLD_KEPT];	/* header notes reported */
	unsigned told_next;
	pthread_mutex_t open_lock;	/* protects files and dirs */
	/* Open files and folders: the kernel need not release them all
	 * before the daemon exits, and what it does not is freed here. */
	struct vfs_open *files, *dirs;
};

#define VFS_STRIPES 16

struct vfs_counters {
	_Atomic uint64_t ops[VFS_OP_COUNT];
	_Atomic uint64_t read, written;
	_Atomic uint64_t err[VFS_ERR_COUNT];
} __attribute__((aligned(64)));

/* A place on one of the lists of open handles. */
struct vfs_open {
	struct vfs_open *next, **pprev;
};

struct vfs_file {
	struct vfs_open link;	/* first: the list gives back the file */
	struct node *n;
	struct inode *i;
	int flags;		/* as opened */
	bool cold;		/* its first page was not in memory */
	struct vfs_caller opener;	/* groups: those known at open */
	struct vfs_groups groups;
};

struct vfs_dir {
	struct vfs_open link;	/* first, as in vfs_file */
	DIR *dp;
	struct inode *i;
	off_t off;		/* position dp is at */
	struct dirent *entry;	/* read but not yet handed on */
};

/* 0 or -errno from a libc call's -1. */
static inline int vfs_sys(int r)
{
	return r < 0 ? -errno : 0;
}

/*
 * The hooks, each operation exactly once: allow before, record after.
 * vfs_record passes on the record hook's answer: -EIO when the result
 * could not be recorded.
 */
int vfs_allow(struct vfs *v, const struct vfs_caller *c,
	      const struct vfs_req *r);
int vfs_record(struct vfs *v, const struct vfs_caller *c,
	       const struct vfs_req *r, long result, const void *bytes,
	       size_t len);
/*
 * Records an allowed operation's result, and passes it on; a success
 * whose record was not kept becomes that failure (fail closed).
 */
static inline int vfs_done(struct vfs *v, const struct vfs_caller *c,
			   const struct vfs_req *r, int rc)
{
	int e = vfs_record(v, c, r, rc, NULL, 0);

	return rc ? rc : e;
}

/*
 * The same for operations that hand out what they made (an entry with a
 * lookup counted, an open file): that stands whatever the record's fate,
 * for the kernel would never give it back.  The allow hook asked whether
 * the log could keep records before, and every read and write of what
 * was handed out is recorded, or refused, on its own.
 */
static inline int vfs_made(struct vfs *v, const struct vfs_caller *c,
			   const struct vfs_req *r, int rc)
{
	(void)vfs_record(v, c, r, rc, NULL, 0);
	return rc;
}

/*
 * allow, then record a refusal (r->refused set during the call); for
 * operations that end there.
 */
int vfs_gate(struct vfs *v, const struct vfs_caller *c, struct vfs_req *r);

struct inode *vfs_inode(struct vfs *v, uint64_t ino);
/* Translates a name in folder p: the one place names cross over. */
int vfs_name_in(struct vfs *v, struct inode *p, const char *name,
		char bname[NAME_MAX + 1]);
/* Looks bname up in p and fills e, one lookup counted. */
int vfs_entry_of(struct vfs *v, struct inode *p, const char *name,
		 const char *bname, struct vfs_entry *e);
/* The attributes of the object on pathfd, as the mount shows them. */
int vfs_fd_attrs(struct vfs *v, int pathfd, struct stat *st);
/* Mount sizes for backing attributes of bname in dirfd (pathfd or -1). */
int vfs_mount_sizes(struct vfs *v, int pathfd, int dirfd, const char *bname,
		    struct stat *st);
/* Frees removed files' space held by us or by the closer's queue. */
bool vfs_reclaim(struct vfs *v);
/* Hands a new object to the caller (root daemon only). */
void vfs_give(struct vfs *v, const struct vfs_caller *c, int dirfd,
	      const char *bname, int fd);
/* Links the object on fd (a handle) in as bname in dirfd. */
int vfs_link_in(int fd, int dirfd, const char *bname);

/*
 * Makes a regular file (with its header) as name in p for c and looks it
 * up into e; opened with flags into *out, or closed again when out is
 * NULL.  No hooks: for vfs_create and vfs_mknod.
 */
int vfs_make_file(struct vfs *v, const struct vfs_caller *c, struct inode *p,
		  const char *name, mode_t mode, int flags,
		  struct vfs_entry *e, struct vfs_file **out);

/*
 * Tells the operator (log.h), naming i by its path, that an operation on
 * it failed with rc, when that is something to tell: an integrity failure
 * (with the block, when cf names one) or a backing I/O error.  And any
 * failure to commit i's size.  rc >= 0 tells nothing.
 */
void vfs_report(struct vfs *v, const struct vfs_caller *c, struct inode *i,
		struct cfile *cf, long rc);
void vfs_report_size(struct vfs *v, struct inode *i, int rc);
bool vfs_integrity_error(long rc);
/* Counts an operation's result (every one passes here exactly once). */
void vfs_count(struct vfs *v, enum vfs_op op, long result);
/* nodes_commit_all's callback: a size not committed, told as such. */
void vfs_commit_failed(void *arg, dev_t dev, ino_t ino, int rc);

/* Reports that the sealed attribute bname of i fails authentication. */
void vfs_report_xattr(struct vfs *v, struct inode *i, const char *bname);

/* vfs_report for an object known by backing device and inode number. */
void vfs_report_at(struct vfs *v, dev_t dev, ino_t ino, long rc);

/*
 * Tells what opening cf found (cfile_take_note): a header slot refused, a
 * size tag that disagrees with the header.  A log line and a count, once
 * per file while the finding stays the same.  i names the file; NULL when
 * only dev and ino are known (a getattr).  When the kernel may hold the
 * tag's size for i, asks the ticker to make it forget it.
 */
void vfs_report_open(struct vfs *v, struct inode *i, dev_t dev, ino_t ino,
		     struct cfile *cf);
/* Queues the kernel's attributes of inode id for the ticker to drop. */
void vfs_inval_attrs(struct vfs *v, uint64_t id);

/*
 * Node records (vfs_node.c): device nodes and long symlinks, sealed in
 * regular backing files marked with the sticky bit.  make creates bname in
 * dirfd for c with permission bits perm (the mark added), or nothing.
 * read gives -ENODATA when the file on pathfd holds no record (an
 * encrypted file that has the sticky bit).  attrs turns the backing
 * attributes of such a file into the mount's: 0 done, -ENODATA not a
 * record; a forged one shows as an empty regular file, reported.
 */
int vfs_node_make(struct vfs *v, const struct vfs_caller *c, int dirfd,
		  const char *bname, mode_t perm,
		  const struct format_record *r);
int vfs_node_read(struct vfs *v, int pathfd, struct format_record *r);
int vfs_node_attrs(struct vfs *v, int pathfd, struct stat *st);

/*
 * Folders (vfs_folder.c): their mode and owner are their sealed records'.
 * attrs turns a backing folder's stat (the object on pathfd, or bname in
 * dirfd) into the mount's, and tells a record that disagrees, is missing
 * or fails.  set applies a chmod or chown (VFS_SET_MODE, _UID, _GID of
 * attr) to the folder on pathfd, record and backing.  made seals the
 * record of the folder just made as bname in dirfd (the backing's mode
 * and owner as they are then).  adopt, at the start,
 * gives every folder of a volume not yet marked a record, then marks it.
 */
int vfs_folder_attrs(struct vfs *v, int pathfd, int dirfd, const char *bname,
		     struct stat *st);
int vfs_folder_set(struct vfs *v, int pathfd, const struct stat *attr,
		   int set);
int vfs_folder_made(struct vfs *v, int dirfd, const char *bname);
/*
 * mkdir of bname in dirfd for c: made under a temporary name
 * (BACKING_MKDIR_PREFIX), given to c, sealed, then renamed into place
 * without replacing anything, so that no kill leaves a folder without its
 * record under its name.  sweep removes the empty temporaries such a kill
 * left in folder name of p: true if it removed one.
 */
int vfs_folder_mkdir(struct vfs *v, const struct vfs_caller *c, int dirfd,
		     const char *bname, mode_t mode);
bool vfs_folder_sweep(struct vfs *v, struct inode *p, const char *name);
int vfs_folders_adopt(struct vfs *v);
/*
 * Tells, once per folder while it stays the same, that its backing mode or
 * owner b is not its record's a (rc 0; restored: put back), or that its
 * record is missing (-ENODATA) or fails (rc) and a is served instead.
 */
void vfs_report_folder(struct vfs *v, dev_t dev, ino_t ino, int rc,
		       const struct format_attrs *b,
		       const struct format_attrs *a, bool restored);

/* A file was opened: the ticker has sizes to commit again. */
void vfs_wake_ticker(struct vfs *v);

/* Frees the files and folders the kernel left open at the end. */
void vfs_close_all(struct vfs *v);

#endif
