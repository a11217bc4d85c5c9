/*
 * nodes.h — the open files of a mount: one encrypted file (cfile) per
 * backing inode, shared by every handle on it, so that two opens of one file
 * (or of two hard links to it) see one size and one lock.  Knows nothing of
 * FUSE or paths.
 *
 * Functions return 0 or -errno.  Thread-safe.
 */
#ifndef PHIFS_NODES_H
#define PHIFS_NODES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "phifs/cfile.h"

struct node {
	struct cfile *cf;
	int fd;			/* backing file, O_RDWR where possible */
	dev_t dev;
	ino_t ino;
	unsigned refs;		/* under the table's lock, as are: */
	bool closing;		/* its last close is under way */
	uint64_t last_size;	/* when closing: its size, */
	struct format_attrs last_attrs;	/* mode and owner, */
	bool last_known;	/* and whether its header has them */
	struct node *next;
};

struct nodes;

/* vol is borrowed and must outlive the table. */
int nodes_new(const struct cfile_volume *vol, struct nodes **out);
/* Releases every node still open (committing them).  NULL does nothing. */
void nodes_free(struct nodes *t);

/*
 * The node of the backing file on fd, which this call takes over: fd becomes
 * the node's, or is closed when the inode is open already.  `create` makes a
 * new encrypted file on fd (which must be empty) instead of opening one.
 * While the inode's last close is under way, waits for it: one cfile of an
 * inode at a time, or the closing one could remove the journal or set a
 * size tag under the new one.
 */
int nodes_get(struct nodes *t, int fd, bool create, struct node **out);
/* Drops a reference; the last one commits the header and closes. */
int nodes_put(struct nodes *t, struct node *n);

/* The plaintext size of an inode if it is open: 0, or -ENOENT if not. */
int nodes_size(struct nodes *t, dev_t dev, ino_t ino, uint64_t *size);
/*
 * The same, and the mode and owner its header authenticates into *a with
 * *known true (false for a header that has none yet: cfile_attrs).
 */
int nodes_attrs(struct nodes *t, dev_t dev, ino_t ino, uint64_t *size,
		struct format_attrs *a, bool *known);
/*
 * How many files are open.  Sequentially consistent with nodes_get's
 * insert, so that a thread that says it is going idle, then finds no file
 * open, and an opener that then looks whether it went idle, cannot both
 * miss each other.
 */
size_t nodes_count(struct nodes *t);

/*
 * Re-wraps the encrypted file on fd (O_RDWR; still the caller's) to master
 * key version `version`: through its cfile when it is open
 * (cfile_rewrap_open), else directly (cfile_rewrap) while no open of any
 * file can start.  -EALREADY when it is on it already, or is empty (being
 * made: the create takes the active version).
 */
int nodes_rewrap(struct nodes *t, int fd, uint32_t version);

/*
 * Commits the header of every open file whose size changed; calls failed
 * (if not NULL, out of the table's lock) for each that could not be, up
 * to 16 a call.  0, or the first error.
 */
int nodes_commit_all(struct nodes *t,
		     void (*failed)(void *arg, dev_t dev, ino_t ino, int rc),
		     void *arg);

#endif
