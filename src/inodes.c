/*
 * inodes.c — the inode table: backing objects the kernel knows, in a hash
 * table by (dev, ino) that doubles its buckets as it fills, their handles
 * within the descriptor budget, and how long each lives.  Their names are
 * in inodes_names.c; both work under the table's one mutex.  Knows nothing
 * of FUSE, keys or file contents.
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

#include "inodes_impl.h"
#include "phifs/inohash.h"

#define START_BITS 8		/* 256 buckets to start with */
#define REAP_BATCH 256		/* entries dropped per inodes_reap */

/* --- hashing --- */

/*
 * Each table doubles its buckets once it holds two entries a bucket: an
 * untarred source tree is 80,000 inodes, and every lookup walks a chain.
 * The old table stays if memory is short.
 */
static void inode_rehash(struct inodes *t)
{
	unsigned old = 1u << t->bits;
	struct inode **was = t->buckets, **n = calloc(2 * (size_t)old,
						     sizeof(*n));

	if (!n)
		return;
	for (unsigned b = 0; b < old; b++) {
		while (was[b]) {
			struct inode *i = was[b];
			unsigned nb = inohash_bucket(i->dev, i->ino,
						     t->bits + 1);

			was[b] = i->next;
			i->next = n[nb];
			n[nb] = i;
		}
	}
	free(was);
	t->buckets = n;
	t->bits++;
}

static struct inode **inode_slot(struct inodes *t, dev_t dev, ino_t ino)
{
	return &t->buckets[inohash_bucket(dev, ino, t->bits)];
}

struct inode *inodes_find(struct inodes *t, dev_t dev, ino_t ino)
{
	struct inode *i;

	if (dev == t->root.dev && ino == t->root.ino)
		return &t->root;
	for (i = *inode_slot(t, dev, ino); i; i = i->next)
		if (i->dev == dev && i->ino == ino)
			break;
	return i;
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

void inodes_free_dead(struct inode *dead)
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

void inodes_drop(struct inodes *t, struct inode *i, struct inode **dead)
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
		inodes_unlink_name(t, i->names, dead);
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
	inodes_drop(t, i, &dead);
	pthread_mutex_unlock(&t->lock);
	inodes_free_dead(dead);
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
	struct ilink *l = name ? inodes_new_link(name) : NULL;
	struct inode *i, *dead = NULL;
	bool fresh = false;

	if (name && !l) {
		close(pathfd);
		return -ENOMEM;
	}
	pthread_mutex_lock(&t->lock);
	i = inodes_find(t, st->st_dev, st->st_ino);
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
		inodes_add_name(t, i, parent, l, &dead);
	else
		free(l);
	pthread_mutex_unlock(&t->lock);
	inodes_free_dead(dead);
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
	inodes_drop(t, i, &dead);
	pthread_mutex_unlock(&t->lock);
	inodes_free_dead(dead);
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
		inodes_unlink_name(t, i->names, dead);
	return fd;
}

int inodes_gone(struct inodes *t, dev_t dev, ino_t ino,
		const struct stat *last)
{
	struct inode *i, *dead = NULL;
	int fd = -1;

	pthread_mutex_lock(&t->lock);
	i = inodes_find(t, dev, ino);
	if (i)
		fd = gone_locked(t, i, last, &dead);
	pthread_mutex_unlock(&t->lock);
	inodes_free_dead(dead);
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
	inodes_free_dead(dead);
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
			t->ops->drop_entry(t->arg, drop[k].parent,
					   drop[k].name);
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
	inodes_free_dead(dead);
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
