/*
 * volkeys_impl.h — the walk of an offline volume's backing tree that the
 * key passes share (volkeys.c: counts and rotation; volrekey.c: rekey).
 * Private to them.  It sees the tree as the daemon does: nothing followed,
 * .phifs, symlinks and node records (sticky files with a record's magic)
 * skipped, a hard-linked file visited once.
 */
#ifndef PHIFS_VOLKEYS_IMPL_H
#define PHIFS_VOLKEYS_IMPL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "phifs/volume.h"

/* Inodes with more than one link already visited: a small hash set. */
struct seen {
	struct { dev_t dev; ino_t ino; } *e;
	size_t n, cap;		/* cap a power of two, or 0 */
};

/*
 * Whether the sticky regular file name in dirfd is a node record: the
 * sticky bit only says "look inside", and an encrypted file may have it
 * (chmod +t through the mount), so its first bytes decide.
 */
bool volkeys_is_record(int dirfd, const char *name);

/* 1 when (dev, ino) is new (and now remembered), 0 if seen, or -ENOMEM. */
int volkeys_seen_add(struct seen *s, dev_t dev, ino_t ino);
bool volkeys_seen_has(const struct seen *s, dev_t dev, ino_t ino);

struct volkeys_walk {
	const struct volume *v;
	/* 0 to go on; anything else stops the walk and is returned. */
	int (*visit)(struct volkeys_walk *w, int dirfd, const char *name);
	/* A rekey's temporary file (backing_is_rekey_temp), or NULL to skip
	 * them as the daemon does. */
	int (*stray)(struct volkeys_walk *w, int dirfd, const char *name);
	/* Every other entry (a folder before its walk, a symlink, a node
	 * record, a FIFO...), or NULL to pass them by. */
	int (*other)(struct volkeys_walk *w, int dirfd, const char *name,
		     const struct stat *st);
	void *arg;
	char path[PATH_MAX];	/* of the entry being visited, from root */
	size_t plen;
	struct seen seen;
	/* Regular files seen by their listing's type only (no stat): for an
	 * estimate, where a node record counted is no harm. */
	bool by_type;
	/* When set, regular files are visited on its threads, and visit
	 * takes volkeys_walk_lock() around what it shares. */
	struct volkeys_pool *pool;
	pthread_mutex_t *lock;	/* the pool's, in a worker's view */
};

/* Around what a visit shares with the other visits: no-ops without a pool. */
void volkeys_walk_lock(struct volkeys_walk *w);
void volkeys_walk_unlock(struct volkeys_walk *w);

/*
 * `threads` workers that visit w's regular files, set as w->pool until
 * freed.  A visit's error stops the walk (the first one is returned by the
 * submit or drain after it).
 */
int volkeys_pool_new(struct volkeys_walk *w, unsigned threads,
		     struct volkeys_pool **out);
void volkeys_pool_free(struct volkeys_pool *p);
/* Queues the regular file name in dirfd (path: its path from the root);
 * waits for room.  0, or the first visit error. */
int volkeys_pool_submit(struct volkeys_pool *p, int dirfd, const char *name,
			const char *path);
/* Waits until every queued visit has ended: 0 or the first visit error. */
int volkeys_pool_drain(struct volkeys_pool *p);

/*
 * Walks the folder on fd (owned; a -errno instead is returned as the
 * failure), whose path from the root is prefix ("" for the root itself).
 * A failure names the path where in err.
 */
int volkeys_walk_dir(struct volkeys_walk *w, int fd, const char *prefix,
		     char *err, size_t err_len);

#endif
