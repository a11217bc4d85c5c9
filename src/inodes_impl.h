/*
 * inodes_impl.h — what the two files of the inode table share (inodes.c:
 * the table, handles and lifetimes; inodes_names.c: names and paths).
 * Private to them.  Every function here runs under the table's lock.
 */
#ifndef PHIFS_INODES_IMPL_H
#define PHIFS_INODES_IMPL_H

#include <pthread.h>

#include "phifs/inodes.h"


/* One name of an inode: child is `name` in folder `parent`. */
struct ilink {
	struct inode *parent, *child;
	struct ilink *hnext;	/* in its bucket of t->links */
	struct ilink *cnext;	/* in child->names, oldest first */
	char name[];
};

/* Every field but the identity is under the table's lock. */
struct inode {
	int fd;			/* O_PATH handle, or -1 parked or gone */
	unsigned pins;		/* users of fd right now */
	struct file_handle *fh;	/* opens fd again; set when first parked */
	dev_t dev;
	ino_t ino;
	mode_t type;		/* S_IFMT bits */
	bool root;
	bool gone;		/* removed: out of the hash, no handle */
	uint64_t nlookup;
	unsigned children;	/* names of other inodes in this folder */
	struct ilink *names;
	struct stat *last;	/* when gone: its attributes, or NULL */
	struct inode *next;	/* in its bucket, in t->gone, or dead */
	struct inode **pprev;	/* what points at it in t->gone */
};

struct inodes {
	pthread_mutex_t lock;	/* protects all below and every inode */
	const struct inodes_ops *ops;
	void *arg;
	int rootfd;		/* the backing root (borrowed) */
	struct inode root;
	struct inode **buckets;
	unsigned bits;
	struct ilink **links;
	unsigned lbits;
	size_t nlinks;
	struct inode *gone;	/* removed objects the kernel still knows */
	_Atomic size_t ninodes;
	size_t nfds;		/* handles of hashed inodes */
	struct inodes_limits lim;
	unsigned park_next;	/* bucket park() looks at next */
};

/* The inode of (dev, ino), or NULL. */
struct inode *inodes_find(struct inodes *t, dev_t dev, ino_t ino);
/*
 * Takes i out of the table once nothing holds it (no lookups, pins or
 * names below it), with its own names; appends it to *dead, to be freed
 * by inodes_free_dead out of the lock.
 */
void inodes_drop(struct inodes *t, struct inode *i, struct inode **dead);
void inodes_free_dead(struct inode *dead);

/* A name to give: preallocated, since the lock must not wait on malloc
 * failing half-way.  NULL on ENOMEM. */
struct ilink *inodes_new_link(const char *name);
/* Gives i the name l in parent (l taken over). */
void inodes_add_name(struct inodes *t, struct inode *i, struct inode *parent,
		     struct ilink *l, struct inode **dead);
/* Forgets one name; its folder may then go. */
void inodes_unlink_name(struct inodes *t, struct ilink *l,
			struct inode **dead);

#endif
