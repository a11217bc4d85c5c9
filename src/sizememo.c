/*
 * sizememo.c — a direct-mapped table of verified sizes, keyed by backing
 * inode and ctime; see sizememo.h for why a ctime is trusted only once it
 * has settled.
 */
#include "phifs/sizememo.h"

#include <pthread.h>
#include <stdlib.h>

#include "phifs/inohash.h"

struct slot {
	dev_t dev;
	ino_t ino;		/* 0: empty (no file system gives inode 0) */
	struct timespec ctime;
	uint64_t size;
};

struct size_memo {
	pthread_mutex_t lock;
	unsigned mask;
	struct slot slots[];
};

struct size_memo *size_memo_new(unsigned slots)
{
	struct size_memo *m;

	if (slots == 0 || (slots & (slots - 1)))
		return NULL;
	m = calloc(1, sizeof(*m) + slots * sizeof(struct slot));
	if (!m)
		return NULL;
	if (pthread_mutex_init(&m->lock, NULL)) {
		free(m);
		return NULL;
	}
	m->mask = slots - 1;
	return m;
}

void size_memo_free(struct size_memo *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static struct slot *slot_of(struct size_memo *m, const struct stat *st)
{
	return &m->slots[(inohash(st->st_dev, st->st_ino) >> 32) & m->mask];
}

bool size_memo_get(struct size_memo *m, const struct stat *st,
		   uint64_t *size)
{
	struct slot *s = slot_of(m, st);
	bool hit;

	pthread_mutex_lock(&m->lock);
	hit = s->ino != 0 && s->ino == st->st_ino && s->dev == st->st_dev &&
	      s->ctime.tv_sec == st->st_ctim.tv_sec &&
	      s->ctime.tv_nsec == st->st_ctim.tv_nsec;
	if (hit)
		*size = s->size;
	pthread_mutex_unlock(&m->lock);
	return hit;
}

void size_memo_put(struct size_memo *m, const struct stat *st, uint64_t size,
		   const struct timespec *now)
{
	struct slot *s = slot_of(m, st);

	/* A ctime in the future (a clock set back) never settles. */
	if (st->st_ino == 0 ||
	    st->st_ctim.tv_sec > now->tv_sec - SIZE_MEMO_SETTLE)
		return;
	pthread_mutex_lock(&m->lock);
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->ctime = st->st_ctim;
	s->size = size;
	pthread_mutex_unlock(&m->lock);
}
