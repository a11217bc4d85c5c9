/*
 * inodes.c — the inode table: backing objects the kernel knows, their
 * handles and names.  Two hash tables under one mutex: inodes by (dev, ino)
 * and names by (folder, name), each doubling its buckets as it fills.
 * Knows nothing of FUSE, keys or file contents.
 */
#include "phifs/inodes.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "phifs/inohash.h"

#define START_BITS 8		/* 256 buckets to start with */
#define REAP_BATCH 256		/* entries dropped per inodes_reap */
#define MAX_DEPTH (PATH_MAX / 2)	/* "/a" per level at the least */

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

/* --- hashing --- */

static unsigned name_bucket(const struct inode *parent, const char *name,
			    unsigned bits)
{
	uint64_t h = (uint64_t)(uintptr_t)parent * 0x100000001B3ULL;

	for (; *name; name++)		/* FNV-1a */
		h = (h ^ (unsigned char)*name) * 0x100000001B3ULL;
	return (unsigned)((h * 0x9E3779B97F4A7C15ULL) >> (64 - bits));
}

/*
 * Each table doubles its buckets once it holds two entries a bucket: an
 * untarred source tree is 80,000 inodes, and every lookup walks a chain.
 * The old table stays if memory is short.
 */
static void inode_rehash(struct inodes *t)
{
	unsigned old = 1u << t->bits;
	struct inode **n = calloc(2 * (size_t)old, sizeof(*n)), **was = t->buckets;

	if (!n)
		return;
	for (unsigned b = 0; b < old; b++) {
		while (was[b]) {
			struct inode *i = was[b];
			unsigned nb = inohash_bucket(i->dev, i->ino, t->bits + 1);

			was[b] = i->next;
			i->next = n[nb];
			n[nb] = i;
		}
	}
	free(was);
	t->buckets = n;
	t->bits++;
}

static void link_rehash(struct inodes *t)
{
	unsigned old = 1u << t->lbits;
	struct ilink **n = calloc(2 * (size_t)old, sizeof(*n)), **was = t->links;

	if (!n)
		return;
	for (unsigned b = 0; b < old; b++) {
		while (was[b]) {
			struct ilink *l = was[b];
			unsigned nb = name_bucket(l->parent, l->name,
						  t->lbits + 1);

			was[b] = l->hnext;
			l->hnext = n[nb];
			n[nb] = l;
		}
	}
	free(was);
	t->links = n;
	t->lbits++;
}

static struct inode **inode_slot(struct inodes *t, dev_t dev, ino_t ino)
{
	return &t->buckets[inohash_bucket(dev, ino, t->bits)];
}

static struct inode *inode_find(struct inodes *t, dev_t dev, ino_t ino)
{
	struct inode *i;

	if (dev == t->root.dev && ino == t->root.ino)
		return &t->root;
	for (i = *inode_slot(t, dev, ino); i; i = i->next)
		if (i->dev == dev && i->ino == ino)
			break;
	return i;
}

static struct ilink **link_slot(struct inodes *t, const struct inode *parent,
				const char *name)
{
	struct ilink **pp = &t->links[name_bucket(parent, name, t->lbits)];

	while (*pp && ((*pp)->parent != parent || strcmp((*pp)->name, name)))
		pp = &(*pp)->hnext;
	return pp;
}

/* --- life and death --- */

static void inode_free(struct inode *i)
{
	if (i->fd >= 0)
		close(i->fd);
	free(i->fh);
	free(i->last);
	free(i);
}

static void free_dead(struct inode *dead)
{
	while (dead) {
		struct inode *i = dead;

		dead = i->next;
		inode_free(i);
	}
}

static void unhash(struct inodes *t, struct inode *i)
{
	struct inode **pp = inode_slot(t, i->dev, i->ino);

	while (*pp != i)
		pp = &(*pp)->next;
	*pp = i->next;
	t->ninodes--;
	if (i->fd >= 0)
		t->nfds--;
}

static void drop_if_unused(struct inodes *t, struct inode *i,
			   struct inode **dead);

/* Forgets one name; its folder may then go.  Under lock. */
static void unlink_name(struct inodes *t, struct ilink *l, struct inode **dead)
{
	struct ilink **pp = &t->links[name_bucket(l->parent, l->name,
						  t->lbits)];
	struct inode *parent = l->parent;

	while (*pp != l)	/* by address: a stale twin may share its key */
		pp = &(*pp)->hnext;
	*pp = l->hnext;
	for (pp = &l->child->names; *pp != l; pp = &(*pp)->cnext)
		;
	*pp = l->cnext;
	t->nlinks--;
	parent->children--;
	free(l);
	drop_if_unused(t, parent, dead);
}

/*
 * Takes i out of the table once nothing holds it (no lookups, pins or
 * names below it), with its own names; appends it to *dead, to be freed
 * out of the lock.  Under lock.
 */
static void drop_if_unused(struct inodes *t, struct inode *i,
			   struct inode **dead)
{
	if (i->root || i->nlookup || i->pins || i->children)
		return;
	if (i->gone) {
		*i->pprev = i->next;
		if (i->next)
			i->next->pprev = i->pprev;
	} else {
		unhash(t, i);
	}
	i->next = *dead;
	*dead = i;
	while (i->names)
		unlink_name(t, i->names, dead);
}

/*
 * Adds name in parent to i, l being preallocated for it (taken over).  A
 * name that meant another inode (changed behind our back) goes, after
 * the new one is in, so that the folder stays.  Under lock.
 */
static void add_name(struct inodes *t, struct inode *i, struct inode *parent,
		     struct ilink *l, struct inode **dead)
{
	struct ilink *stale = *link_slot(t, parent, l->name), **tail;
	unsigned b = name_bucket(parent, l->name, t->lbits);

	if (stale && stale->child == i) {
		free(l);
		return;
	}
	l->parent = parent;
	l->child = i;
	l->cnext = NULL;
	for (tail = &i->names; *tail; tail = &(*tail)->cnext)
		;
	*tail = l;
	parent->children++;
	l->hnext = t->links[b];
	t->links[b] = l;
	t->nlinks++;
	if (stale)
		unlink_name(t, stale, dead);
	if (t->nlinks > 2u << t->lbits)
		link_rehash(t);
}

static struct ilink *new_link(const char *name)
{
	size_t len = strlen(name);
	struct ilink *l = malloc(sizeof(*l) + len + 1);

	if (l)
		memcpy(l->name, name, len + 1);
	return l;
}

/* --- handles --- */

/* A file handle for the object on fd, or NULL. */
static struct file_handle *handle_of(int fd)
{
	struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ), *small;
	int mount_id;

	if (!h)
		return NULL;
	h->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", h, &mount_id, AT_EMPTY_PATH)) {
		free(h);
		return NULL;
	}
	small = realloc(h, sizeof(*h) + h->handle_bytes);
	return small ? small : h;
}

static bool in_use(struct inodes *t, const struct inode *i)
{
	return t->ops->in_use(t->arg, i->dev, i->ino);
}

/* Closes i's handle if nobody needs it now; under lock. */
static void park_one(struct inodes *t, struct inode *i)
{
	/* An open file may be unlinked, and then has no handle to reopen
	 * by; a handle from another file system would not resolve. */
	if (i->fd < 0 || i->pins || i->dev != t->root.dev || in_use(t, i))
		return;
	if (!i->fh && !(i->fh = handle_of(i->fd)))
		return;
	close(i->fd);
	i->fd = -1;
	t->nfds--;
}

/*
 * The kernel may remember more objects than the open-file limit allows
 * handles (a listed folder of 20,000 files), so above fd_high the handles
 * of inodes nobody uses are closed, round robin, down to 3/4 of it, and
 * opened again from their file handles when next needed; under lock.
 */
static void park(struct inodes *t)
{
	size_t target = t->lim.fd_high / 4 * 3;
	unsigned mask = (1u << t->bits) - 1;

	if (!t->lim.can_park)
		return;
	for (unsigned k = 0; k <= mask && t->nfds > target; k++) {
		unsigned b = t->park_next++ & mask;

		for (struct inode *i = t->buckets[b]; i && t->nfds > target;
		     i = i->next)
			park_one(t, i);
	}
}

/* One more handle counted; under lock, before i is hashed. */
static void count_fd(struct inodes *t)
{
	if (++t->nfds > t->lim.fd_high)
		park(t);
}

/* Opens parked i again; -ESTALE when its object is gone or replaced. */
static int unpark(struct inodes *t, struct inode *i)
{
	struct stat st;
	int fd;

	fd = open_by_handle_at(t->rootfd, i->fh,
			       O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESTALE : -errno;
	if (fstat(fd, &st) || st.st_dev != i->dev || st.st_ino != i->ino) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

int inodes_pin(struct inodes *t, struct inode *i)
{
	int fd;

	pthread_mutex_lock(&t->lock);
	if (i->fd >= 0 || i->gone) {
		fd = i->gone ? -ESTALE : i->fd;
		i->pins += !i->gone;
		pthread_mutex_unlock(&t->lock);
		return fd;
	}
	pthread_mutex_unlock(&t->lock);
	/* fh is set before fd is -1, and freed only with i. */
	fd = unpark(t, i);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&t->lock);
	if (i->gone) {
		pthread_mutex_unlock(&t->lock);
		close(fd);
		return -ESTALE;
	}
	if (i->fd >= 0) {	/* another thread was quicker */
		close(fd);
	} else {
		count_fd(t);	/* i->fd < 0: park() passes i by */
		i->fd = fd;
	}
	i->pins++;
	fd = i->fd;
	pthread_mutex_unlock(&t->lock);
	return fd;
}

void inodes_unpin(struct inodes *t, struct inode *i)
{
	struct inode *dead = NULL;

	pthread_mutex_lock(&t->lock);
	i->pins--;
	drop_if_unused(t, i, &dead);
	pthread_mutex_unlock(&t->lock);
	free_dead(dead);
}

bool inodes_fd_wait(struct inodes *t, int rc, int *tries)
{
	if ((rc != -EMFILE && rc != -ENFILE) || (*tries)++ == 40)
		return false;
	t->ops->wake_reaper(t->arg);
	usleep(5000);
	return true;
}

/* --- lookups --- */

/* A new inode for st on pathfd, hashed; under lock. */
static struct inode *inode_add(struct inodes *t, int pathfd,
			       const struct stat *st)
{
	struct inode *i = calloc(1, sizeof(*i));

	if (!i)
		return NULL;
	i->fd = -1;
	i->dev = st->st_dev;
	i->ino = st->st_ino;
	i->type = st->st_mode & S_IFMT;
	count_fd(t);		/* i is not in the table yet: not parked */
	i->fd = pathfd;
	i->next = *inode_slot(t, i->dev, i->ino);
	*inode_slot(t, i->dev, i->ino) = i;
	if (++t->ninodes > 2u << t->bits)
		inode_rehash(t);
	if (t->ninodes > t->lim.inode_high)
		t->ops->wake_reaper(t->arg);
	return i;
}

int inodes_get(struct inodes *t, int pathfd, const struct stat *st,
	       struct inode *parent, const char *name, struct inode **out)
{
	struct ilink *l = name ? new_link(name) : NULL;
	struct inode *i, *dead = NULL;
	bool fresh = false;

	if (name && !l) {
		close(pathfd);
		return -ENOMEM;
	}
	pthread_mutex_lock(&t->lock);
	i = inode_find(t, st->st_dev, st->st_ino);
	if (!i && (fresh = true) && !(i = inode_add(t, pathfd, st))) {
		pthread_mutex_unlock(&t->lock);
		free(l);
		close(pathfd);
		return -ENOMEM;
	}
	if (fresh) {
		pathfd = -1;
	} else if (i->fd < 0) {	/* parked: saves a reopen */
		count_fd(t);
		i->fd = pathfd;
		pathfd = -1;
	}
	i->nlookup++;
	if (l && !i->root)
		add_name(t, i, parent, l, &dead);
	else
		free(l);
	pthread_mutex_unlock(&t->lock);
	free_dead(dead);
	if (pathfd >= 0)
		close(pathfd);
	*out = i;
	return 0;
}

void inodes_forget(struct inodes *t, struct inode *i, uint64_t n)
{
	struct inode *dead = NULL;

	pthread_mutex_lock(&t->lock);
	i->nlookup = i->nlookup > n ? i->nlookup - n : 0;
	drop_if_unused(t, i, &dead);
	pthread_mutex_unlock(&t->lock);
	free_dead(dead);
}

/* --- names --- */

void inodes_unlinked(struct inodes *t, struct inode *parent,
		     const char *name)
{
	struct inode *dead = NULL;
	struct ilink *l;

	pthread_mutex_lock(&t->lock);
	l = *link_slot(t, parent, name);
	if (l)
		unlink_name(t, l, &dead);
	pthread_mutex_unlock(&t->lock);
	free_dead(dead);
}

static void hold(struct inode *i)
{
	if (i)
		i->pins++;
}

static void let_go(struct inodes *t, struct inode *i, struct inode **dead)
{
	if (i) {
		i->pins--;
		drop_if_unused(t, i, dead);
	}
}

/* Names l (taken over) for i, or frees it without i; under lock. */
static void name_or_free(struct inodes *t, struct inode *i,
			 struct inode *parent, struct ilink *l,
			 struct inode **dead)
{
	if (i && l)
		add_name(t, i, parent, l, dead);
	else
		free(l);
}

/*
 * Renaming one name of a file over another of the same file does nothing
 * (POSIX); otherwise the target's name goes and the source's moves, or
 * with RENAME_EXCHANGE the two swap.  Everything involved is held, so no
 * folder goes half-way.  Out of memory, a name is lost rather than wrong.
 */
void inodes_renamed(struct inodes *t, struct inode *p, const char *name,
		    struct inode *q, const char *newname, unsigned flags)
{
	struct ilink *to_new = new_link(newname), *to_old = new_link(name);
	struct inode *ac, *bc, *dead = NULL;
	struct ilink *a, *b;

	pthread_mutex_lock(&t->lock);
	a = *link_slot(t, p, name);
	b = *link_slot(t, q, newname);
	ac = a ? a->child : NULL;
	bc = b ? b->child : NULL;
	if (ac && ac == bc && !(flags & RENAME_EXCHANGE)) {
		free(to_new);
		free(to_old);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	hold(p), hold(q), hold(ac), hold(bc);
	if (a)
		unlink_name(t, a, &dead);
	if (b && b != a)
		unlink_name(t, b, &dead);
	name_or_free(t, ac, q, to_new, &dead);
	name_or_free(t, flags & RENAME_EXCHANGE ? bc : NULL, p, to_old, &dead);
	let_go(t, bc, &dead), let_go(t, ac, &dead);
	let_go(t, q, &dead), let_go(t, p, &dead);
	pthread_mutex_unlock(&t->lock);
	free_dead(dead);
}

/*
 * Writes the path of name l (its folders' first names up to the root)
 * into buf, from the end, then moves it to the start; under lock.  Its
 * length, -ENOENT when a folder on the way has no name known (removed),
 * -ENAMETOOLONG, or -ELOOP should a folder ever hold itself.
 */
static ssize_t path_of(const struct ilink *l, char *buf, size_t len)
{
	size_t at = len, depth = 0;

	if (!len)
		return -ENAMETOOLONG;
	buf[--at] = '\0';
	for (;;) {
		size_t nl = strlen(l->name);

		if (at < nl + 1)
			return -ENAMETOOLONG;
		at -= nl;
		memcpy(buf + at, l->name, nl);
		buf[--at] = '/';
		if (l->parent->root)
			break;
		if (!(l = l->parent->names))
			return -ENOENT;
		if (++depth == MAX_DEPTH)
			return -ELOOP;
	}
	memmove(buf, buf + at, len - at);
	return (ssize_t)(len - at - 1);
}

int inodes_path(struct inodes *t, struct inode *i, char *buf, size_t len)
{
	ssize_t n;

	if (i->root) {
		if (len < 2)
			return -ENAMETOOLONG;
		strcpy(buf, "/");
		return 0;
	}
	pthread_mutex_lock(&t->lock);
	n = i->names ? path_of(i->names, buf, len) : -ENOENT;
	pthread_mutex_unlock(&t->lock);
	return n < 0 ? (int)n : 0;
}

int inodes_path_of(struct inodes *t, dev_t dev, ino_t ino, char *buf,
		   size_t len)
{
	struct inode *i;
	ssize_t n = -ENOENT;

	pthread_mutex_lock(&t->lock);
	i = inode_find(t, dev, ino);
	if (i && i->root)
		n = len < 2 ? -ENAMETOOLONG : (strcpy(buf, "/"), 1);
	else if (i && i->names)
		n = path_of(i->names, buf, len);
	pthread_mutex_unlock(&t->lock);
	return n < 0 ? (int)n : 0;
}

/* Every path of i, NUL-separated, in a malloc'd buffer; *count of them. */
static int all_paths(struct inodes *t, struct inode *i, char **out,
		     size_t *count)
{
	size_t cap = PATH_MAX, used = 0, n = 0;
	char *buf = malloc(cap), *more;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&t->lock);
	for (struct ilink *l = i->names; l && !rc; l = l->cnext) {
		ssize_t len;

		if (cap - used < PATH_MAX) {
			if (!(more = realloc(buf, cap *= 2))) {
				rc = -ENOMEM;
				break;
			}
			buf = more;
		}
		len = path_of(l, buf + used, PATH_MAX);
		if (len >= 0) {
			used += (size_t)len + 1;
			n++;
		} else if (len != -ENOENT) {	/* a name in a lost folder */
			rc = (int)len;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (!rc && !n)
		rc = -ENOENT;
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*count = n;
	return 0;
}

int inodes_paths(struct inodes *t, struct inode *i,
		 int (*fn)(void *arg, const char *path), void *arg)
{
	size_t count = 0;
	char *buf = NULL, *p;
	int rc;

	if (i->root)
		return fn(arg, "/");
	rc = all_paths(t, i, &buf, &count);
	for (p = buf; !rc && count--; p += strlen(p) + 1)
		rc = fn(arg, p);
	free(buf);
	return rc;
}

int inodes_pin_parent(struct inodes *t, struct inode *i,
		      struct inode **parent, char name[NAME_MAX + 1])
{
	struct ilink *l;
	int fd = -EAGAIN;

	pthread_mutex_lock(&t->lock);
	l = i->names;
	if (l && l->parent->fd >= 0 && strlen(l->name) <= NAME_MAX) {
		l->parent->pins++;
		fd = l->parent->fd;
		*parent = l->parent;
		strcpy(name, l->name);
	}
	pthread_mutex_unlock(&t->lock);
	return fd;
}

/* --- removal --- */

/* inodes_gone for i; under lock. */
static int gone_locked(struct inodes *t, struct inode *i,
		       const struct stat *last, struct inode **dead)
{
	int fd = i->fd;

	if (i->root || i->gone || i->pins || in_use(t, i))
		return -1;
	/* Its attributes, for a descriptor that still names it (an O_PATH
	 * one does) and asks; without them that gets ESTALE. */
	if (last && !i->last && (i->last = malloc(sizeof(*i->last))))
		*i->last = *last;
	unhash(t, i);
	i->fd = -1;
	i->gone = true;
	i->next = t->gone;
	if (t->gone)
		t->gone->pprev = &i->next;
	i->pprev = &t->gone;
	t->gone = i;
	while (i->names)	/* none, unless changed behind our back */
		unlink_name(t, i->names, dead);
	return fd;
}

int inodes_gone(struct inodes *t, dev_t dev, ino_t ino,
		const struct stat *last)
{
	struct inode *i, *dead = NULL;
	int fd = -1;

	pthread_mutex_lock(&t->lock);
	i = inode_find(t, dev, ino);
	if (i)
		fd = gone_locked(t, i, last, &dead);
	pthread_mutex_unlock(&t->lock);
	free_dead(dead);
	return fd;
}

int inodes_closed(struct inodes *t, struct inode *i)
{
	struct inode *dead = NULL;
	struct stat st;
	bool removed;
	int fd = -1;

	pthread_mutex_lock(&t->lock);
	if (i->fd >= 0) {	/* a parked handle holds nothing */
		i->pins++;
		fd = i->fd;
	}
	pthread_mutex_unlock(&t->lock);
	if (fd < 0)
		return -1;
	removed = !fstat(fd, &st) && st.st_nlink == 0;
	pthread_mutex_lock(&t->lock);
	i->pins--;
	fd = removed ? gone_locked(t, i, NULL, &dead) : -1;
	pthread_mutex_unlock(&t->lock);
	free_dead(dead);
	return fd;
}

void inodes_set_last(struct inodes *t, struct inode *i,
		     const struct stat *st)
{
	struct stat *copy = malloc(sizeof(*copy));

	if (!copy)
		return;
	*copy = *st;
	pthread_mutex_lock(&t->lock);
	if (!i->last) {
		i->last = copy;
		copy = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	free(copy);
}

int inodes_last(struct inodes *t, struct inode *i, struct stat *st)
{
	int rc = -ESTALE;

	pthread_mutex_lock(&t->lock);
	if (i->gone && i->last) {
		*st = *i->last;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* --- keeping within the limits --- */

bool inodes_reap_due(struct inodes *t)
{
	return t->ninodes > t->lim.inode_high;	/* a hint: no lock */
}

/*
 * Every inode the kernel remembers holds a handle here, and the kernel
 * remembers a whole untarred source tree, more than the open-file limit
 * allows.  Above inode_high, ask the kernel to drop entries of files
 * nobody has open, and of folders; it then forgets them and their handles
 * close.  (A folder is forgotten only after its cached children.)
 */
void inodes_reap(struct inodes *t)
{
	struct { uint64_t parent; char *name; } drop[REAP_BATCH];
	size_t n = 0, want;
	unsigned nb;

	pthread_mutex_lock(&t->lock);
	want = t->ninodes > t->lim.inode_high ?
		       t->ninodes - t->lim.inode_high / 2 : 0;
	nb = 1u << t->bits;
	for (unsigned b = 0; b < nb && n < want && n < REAP_BATCH; b++)
		for (struct inode *i = t->buckets[b]; i && n < REAP_BATCH;
		     i = i->next)
			if (i->names && i->nlookup &&
			    (i->type == S_IFDIR || !in_use(t, i))) {
				drop[n].parent = inodes_id(i->names->parent);
				drop[n++].name = strdup(i->names->name);
			}
	pthread_mutex_unlock(&t->lock);
	/* Not under the lock: the kernel answers with FORGETs. */
	for (size_t k = 0; k < n; k++) {
		if (drop[k].name)
			t->ops->drop_entry(t->arg, drop[k].parent, drop[k].name);
		free(drop[k].name);
	}
}

bool inodes_reclaim_unlinked(struct inodes *t)
{
	bool freed = false;
	unsigned nb;

	pthread_mutex_lock(&t->lock);
	nb = 1u << t->bits;
	for (unsigned b = 0; b < nb; b++) {
		for (struct inode *i = t->buckets[b]; i; i = i->next) {
			struct stat st;
			char proc[32];
			int fd;

			if (i->fd < 0 || i->pins || fstat(i->fd, &st) ||
			    st.st_nlink || !S_ISREG(st.st_mode) ||
			    !st.st_blocks || in_use(t, i))
				continue;
			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", i->fd);
			fd = open(proc, O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			freed |= !ftruncate(fd, 0);
			close(fd);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return freed;
}

/* --- the table --- */

void inodes_default_limits(int rootfd, struct inodes_limits *lim)
{
	struct file_handle *h = handle_of(rootfd);
	struct rlimit r;
	int fd = -1;

	lim->fd_high = getrlimit(RLIMIT_NOFILE, &r) ? 512 :
		       r.rlim_cur / 2 > 64 ? r.rlim_cur / 2 : 64;
	/* The variable lets tests reach the path of daemons without the
	 * capability, which only ever makes things slower. */
	if (h && !getenv("PHIFS_NO_FILE_HANDLES"))
		fd = open_by_handle_at(rootfd, h, O_PATH | O_CLOEXEC);
	free(h);
	lim->can_park = fd >= 0;
	if (fd >= 0)
		close(fd);
	/* Parking bounds the handles; the reaper then only bounds memory. */
	lim->inode_high = lim->can_park ? 1u << 20 : lim->fd_high;
}

int inodes_new(int rootfd, const struct inodes_limits *lim,
	       const struct inodes_ops *ops, void *arg, struct inodes **out)
{
	struct inodes *t = calloc(1, sizeof(*t));
	struct stat st;

	if (!t)
		return -ENOMEM;
	t->bits = t->lbits = START_BITS;
	t->buckets = calloc(1u << t->bits, sizeof(*t->buckets));
	t->links = calloc(1u << t->lbits, sizeof(*t->links));
	t->root.fd = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (!t->buckets || !t->links || t->root.fd < 0 ||
	    fstat(t->root.fd, &st)) {
		int rc = t->buckets && t->links ? -errno : -ENOMEM;

		inodes_free(t);
		return rc;
	}
	t->root.dev = st.st_dev;
	t->root.ino = st.st_ino;
	t->root.type = S_IFDIR;
	t->root.root = true;
	t->root.nlookup = 1;
	t->rootfd = rootfd;
	t->lim = *lim;
	t->ops = ops;
	t->arg = arg;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void inodes_free(struct inodes *t)
{
	struct inode *dead = t ? t->gone : NULL;

	if (!t)
		return;
	for (unsigned b = 0; t->links && b < 1u << t->lbits; b++)
		while (t->links[b]) {
			struct ilink *l = t->links[b];

			t->links[b] = l->hnext;
			free(l);
		}
	for (unsigned b = 0; t->buckets && b < 1u << t->bits; b++)
		while (t->buckets[b]) {
			struct inode *i = t->buckets[b];

			t->buckets[b] = i->next;
			inode_free(i);
		}
	free_dead(dead);
	if (t->root.fd >= 0)
		close(t->root.fd);
	free(t->buckets);
	free(t->links);
	free(t);
}

struct inode *inodes_at(struct inodes *t, uint64_t id)
{
	return id == INODES_ROOT ? &t->root : (struct inode *)(uintptr_t)id;
}

uint64_t inodes_id(const struct inode *i)
{
	return i->root ? INODES_ROOT : (uint64_t)(uintptr_t)i;
}

dev_t inodes_dev(const struct inode *i)
{
	return i->dev;
}

ino_t inodes_ino(const struct inode *i)
{
	return i->ino;
}

mode_t inodes_type(const struct inode *i)
{
	return i->type;
}

bool inodes_is_root(struct inodes *t, const struct inode *i)
{
	return i == &t->root;
}

size_t inodes_count(struct inodes *t)
{
	return t->ninodes;
}
