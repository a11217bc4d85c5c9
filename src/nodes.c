/*
 * nodes.c — table of open backing inodes, each with its one cfile.  A small
 * hash table under one mutex; the cfile does its own locking for I/O.
 * Knows nothing of FUSE or paths.
 */
#include "phifs/nodes.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/inohash.h"

#define NBITS 10u
#define NBUCKETS (1u << NBITS)

/* lock protects buckets and every node's refs, closing and next. */
struct nodes {
	const struct cfile_volume *vol;
	pthread_mutex_t lock;
	pthread_cond_t closed;	/* a closing node left the table */
	_Atomic size_t count;	/* nodes in the table (seq_cst: see .h) */
	struct node *buckets[NBUCKETS];
};

static unsigned bucket(dev_t dev, ino_t ino)
{
	return inohash_bucket(dev, ino, NBITS);
}

int nodes_new(const struct cfile_volume *vol, struct nodes **out)
{
	struct nodes *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	if (pthread_mutex_init(&t->lock, NULL)) {
		free(t);
		return -ENOMEM;
	}
	if (pthread_cond_init(&t->closed, NULL)) {
		pthread_mutex_destroy(&t->lock);
		free(t);
		return -ENOMEM;
	}
	t->vol = vol;
	*out = t;
	return 0;
}

static int node_close(struct node *n)
{
	int rc = cfile_release(n->cf);

	close(n->fd);
	free(n);
	return rc;
}

void nodes_free(struct nodes *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < NBUCKETS; i++) {
		while (t->buckets[i]) {
			struct node *n = t->buckets[i];

			t->buckets[i] = n->next;
			node_close(n);
		}
	}
	pthread_cond_destroy(&t->closed);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct node *find(struct nodes *t, dev_t dev, ino_t ino)
{
	struct node *n = t->buckets[bucket(dev, ino)];

	while (n && (n->dev != dev || n->ino != ino))
		n = n->next;
	return n;
}

int nodes_get(struct nodes *t, int fd, bool create, struct node **out)
{
	struct node *n;
	struct stat st;
	int rc;

	if (fstat(fd, &st)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	pthread_mutex_lock(&t->lock);
	while ((n = find(t, st.st_dev, st.st_ino)) && n->closing)
		pthread_cond_wait(&t->closed, &t->lock);
	if (n) {
		n->refs++;
		pthread_mutex_unlock(&t->lock);
		close(fd);
		*out = n;
		return 0;
	}
	/* Opening under the lock keeps two openers from making two cfiles
	 * of one inode; it costs one header read and unwrap. */
	rc = -ENOMEM;
	n = calloc(1, sizeof(*n));
	if (n)
		rc = create ? cfile_create(fd, t->vol, &n->cf) :
			      cfile_open(fd, t->vol, &n->cf);
	if (rc) {
		pthread_mutex_unlock(&t->lock);
		free(n);
		close(fd);
		return rc;
	}
	n->fd = fd;
	n->dev = st.st_dev;
	n->ino = st.st_ino;
	n->refs = 1;
	n->next = t->buckets[bucket(n->dev, n->ino)];
	t->buckets[bucket(n->dev, n->ino)] = n;
	t->count++;
	pthread_mutex_unlock(&t->lock);
	*out = n;
	return 0;
}

int nodes_put(struct nodes *t, struct node *n)
{
	struct node **pp;
	int rc = 0, r;

	pthread_mutex_lock(&t->lock);
	if (n->refs > 1) {
		n->refs--;
		pthread_mutex_unlock(&t->lock);
		return 0;
	}
	pthread_mutex_unlock(&t->lock);
	/*
	 * Commit while the node is still in the table: until then, stat of
	 * this inode asks the node, not the header that is not written yet.
	 */
	rc = cfile_commit(n->cf);
	pthread_mutex_lock(&t->lock);
	if (--n->refs) {	/* opened again meanwhile */
		pthread_mutex_unlock(&t->lock);
		return rc;
	}
	/* Stays in the table, closing, until its release is done. */
	n->closing = true;
	n->last_size = cfile_size(n->cf);
	n->last_known = !cfile_attrs(n->cf, &n->last_attrs);
	pthread_mutex_unlock(&t->lock);
	r = cfile_release(n->cf);
	if (!rc)
		rc = r;
	pthread_mutex_lock(&t->lock);
	for (pp = &t->buckets[bucket(n->dev, n->ino)]; *pp != n;
	     pp = &(*pp)->next)
		;
	*pp = n->next;
	t->count--;
	pthread_cond_broadcast(&t->closed);
	pthread_mutex_unlock(&t->lock);
	close(n->fd);
	free(n);
	return rc;
}

int nodes_size(struct nodes *t, dev_t dev, ino_t ino, uint64_t *size)
{
	struct format_attrs a;
	bool known;

	return nodes_attrs(t, dev, ino, size, &a, &known);
}

int nodes_attrs(struct nodes *t, dev_t dev, ino_t ino, uint64_t *size,
		struct format_attrs *a, bool *known)
{
	struct node *n;
	int rc = -ENOENT;

	pthread_mutex_lock(&t->lock);
	n = find(t, dev, ino);
	if (n && n->closing) {	/* its cfile is being freed */
		*size = n->last_size;
		*a = n->last_attrs;
		*known = n->last_known;
		rc = 0;
	} else if (n) {
		*size = cfile_size(n->cf);
		*known = !cfile_attrs(n->cf, a);
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int nodes_commit_all(struct nodes *t,
		     void (*failed)(void *arg, dev_t dev, ino_t ino, int rc),
		     void *arg)
{
	struct { dev_t dev; ino_t ino; int rc; } bad[16];
	size_t nbad = 0;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < NBUCKETS; i++)
		for (struct node *n = t->buckets[i]; n; n = n->next) {
			int r = n->closing ? 0 : cfile_commit(n->cf);

			if (r && !rc)
				rc = r;
			if (r && nbad < 16)
				bad[nbad++] = (typeof(bad[0])){ n->dev, n->ino,
								r };
		}
	pthread_mutex_unlock(&t->lock);
	/* Out of the lock: the caller may look the inode up elsewhere. */
	for (size_t k = 0; failed && k < nbad; k++)
		failed(arg, bad[k].dev, bad[k].ino, bad[k].rc);
	return rc;
}

int nodes_rewrap(struct nodes *t, int fd, uint32_t version)
{
	struct node *n;
	struct stat st;
	int rc, r;

	if (fstat(fd, &st))
		return -errno;
	pthread_mutex_lock(&t->lock);
	while ((n = find(t, st.st_dev, st.st_ino)) && n->closing)
		pthread_cond_wait(&t->closed, &t->lock);
	if (!n) {
		/* Closed: the table's lock keeps any open from starting, as
		 * nodes_get opens under it.  A file still without a header
		 * is one being made, under the active version. */
		if (fstat(fd, &st))
			rc = -errno;
		else if (st.st_size == 0)
			rc = -EALREADY;
		else
			rc = cfile_rewrap(fd, t->vol, version, NULL);
		pthread_mutex_unlock(&t->lock);
		return rc;
	}
	n->refs++;	/* held open while its cfile re-wraps */
	pthread_mutex_unlock(&t->lock);
	rc = cfile_rewrap_open(n->cf, version);
	if (rc == -EBADF)	/* a read-only cfile never writes its header */
		rc = cfile_rewrap(fd, t->vol, version, NULL);
	r = nodes_put(t, n);
	return rc ? rc : r;
}

size_t nodes_count(struct nodes *t)
{
	return t->count;
}
