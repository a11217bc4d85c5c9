/*
 * volkeys_pool.c — the walk's regular files visited on several threads
 * (volkeys_impl.h).  An offline rotation spends its time waiting for each
 * cold inode and header block in turn, not computing: with a few visits in
 * flight the disk serves them together.  A folder's visits all end before
 * the walk leaves it, as they use its descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "volkeys_impl.h"

#define QUEUE 64

struct job {
	int dirfd;
	char name[NAME_MAX + 1];
	char path[PATH_MAX];
};

struct volkeys_pool {
	pthread_mutex_t lock;
	pthread_cond_t more;		/* a job queued, or stop */
	pthread_cond_t idle;		/* a job finished */
	struct job *q;			/* QUEUE slots, a ring */
	size_t head, n, busy;
	int rc;				/* the first visit's error */
	bool stop;
	struct volkeys_walk *w;
	pthread_t *t;
	unsigned nt;
};

void volkeys_walk_lock(struct volkeys_walk *w)
{
	if (w->lock)
		pthread_mutex_lock(w->lock);
}

void volkeys_walk_unlock(struct volkeys_walk *w)
{
	if (w->lock)
		pthread_mutex_unlock(w->lock);
}

/* What walk_entry does for a regular file, on a worker, for one job. */
static int visit(struct volkeys_pool *p, const struct job *j)
{
	struct volkeys_walk *w = p->w, view = {
		.v = w->v, .visit = w->visit, .arg = w->arg, .lock = &p->lock,
	};
	struct stat st;
	int rc;

	if (fstatat(j->dirfd, j->name, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : -errno;
	/* Replaced since the listing (only a daemon's users can): the walk
	 * has passed it, and what is there now is new. */
	if (!S_ISREG(st.st_mode) ||
	    ((st.st_mode & S_ISVTX) && volkeys_is_record(j->dirfd, j->name)))
		return 0;
	if (st.st_nlink > 1) {
		pthread_mutex_lock(&p->lock);
		rc = volkeys_seen_add(&w->seen, st.st_dev, st.st_ino);
		pthread_mutex_unlock(&p->lock);
		if (rc <= 0)
			return rc;
	}
	memcpy(view.path, j->path, sizeof(view.path));
	view.plen = strlen(view.path);
	return w->visit(&view, j->dirfd, j->name);
}

static void *worker(void *arg)
{
	struct volkeys_pool *p = arg;
	struct job *j = malloc(sizeof(*j));
	int rc;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->n && !p->stop)
			pthread_cond_wait(&p->more, &p->lock);
		if (!p->n)
			break;
		if (j)
			*j = p->q[p->head];
		p->head = (p->head + 1) % QUEUE;
		p->n--;
		p->busy++;
		pthread_mutex_unlock(&p->lock);
		rc = j ? visit(p, j) : -ENOMEM;
		pthread_mutex_lock(&p->lock);
		if (rc && !p->rc)
			p->rc = rc;
		p->busy--;
		pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->lock);
	free(j);
	return NULL;
}

int volkeys_pool_new(struct volkeys_walk *w, unsigned threads,
		     struct volkeys_pool **out)
{
	struct volkeys_pool *p = calloc(1, sizeof(*p));
	int rc = 0;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->w = w;
	p->q = calloc(QUEUE, sizeof(*p->q));
	p->t = calloc(threads, sizeof(*p->t));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->more, NULL);
	pthread_cond_init(&p->idle, NULL);
	if (!p->q || !p->t)
		rc = -ENOMEM;
	for (; !rc && p->nt < threads; p->nt++)
		rc = -pthread_create(&p->t[p->nt], NULL, worker, p);
	if (rc) {
		volkeys_pool_free(p);
		return rc;
	}
	w->pool = p;
	*out = p;
	return 0;
}

void volkeys_pool_free(struct volkeys_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nt; i++)
		pthread_join(p->t[i], NULL);
	if (p->w && p->w->pool == p)
		p->w->pool = NULL;
	pthread_cond_destroy(&p->more);
	pthread_cond_destroy(&p->idle);
	pthread_mutex_destroy(&p->lock);
	free(p->q);
	free(p->t);
	free(p);
}

int volkeys_pool_submit(struct volkeys_pool *p, int dirfd, const char *name,
			const char *path)
{
	struct job *j;
	int rc;

	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&p->lock);
	while (p->n == QUEUE && !p->rc)
		pthread_cond_wait(&p->idle, &p->lock);
	rc = p->rc;
	if (!rc) {
		j = &p->q[(p->head + p->n) % QUEUE];
		j->dirfd = dirfd;
		strcpy(j->name, name);
		snprintf(j->path, sizeof(j->path), "%s", path);
		p->n++;
		pthread_cond_signal(&p->more);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int volkeys_pool_drain(struct volkeys_pool *p)
{
	int rc;

	pthread_mutex_lock(&p->lock);
	while (p->n || p->busy)
		pthread_cond_wait(&p->idle, &p->lock);
	rc = p->rc;
	pthread_mutex_unlock(&p->lock);
	return rc;
}
