/*
 * closer.c — a bounded ring of descriptors and one thread closing them in
 * order.  Drainers wait on the count closed so far, not on an empty ring, so
 * a steady stream of new puts cannot keep one waiting for ever.
 */
#include "phifs/closer.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define CLOSER_DEPTH 32

struct closer {
	pthread_mutex_t lock;
	pthread_cond_t work;	/* to the thread: a put, or stop */
	pthread_cond_t done;	/* to drainers: closed moved on */
	pthread_t thread;
	bool stop;
	uint64_t put;		/* descriptors queued so far */
	uint64_t closed;	/* of those, closed so far */
	int fds[CLOSER_DEPTH];
};

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		int fd;

		while (c->closed == c->put && !c->stop)
			pthread_cond_wait(&c->work, &c->lock);
		if (c->closed == c->put)
			break;		/* stopped, and nothing left */
		fd = c->fds[c->closed % CLOSER_DEPTH];
		pthread_mutex_unlock(&c->lock);
		(void)close(fd);
		pthread_mutex_lock(&c->lock);
		c->closed++;
		pthread_cond_broadcast(&c->done);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int closer_new(struct closer **out)
{
	struct closer *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->work, NULL);
	pthread_cond_init(&c->done, NULL);
	rc = pthread_create(&c->thread, NULL, closer_main, c);
	if (rc) {
		pthread_cond_destroy(&c->done);
		pthread_cond_destroy(&c->work);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return -rc;
	}
	*out = c;
	return 0;
}

void closer_put(struct closer *c, int fd)
{
	if (c) {
		pthread_mutex_lock(&c->lock);
		if (c->put - c->closed < CLOSER_DEPTH && !c->stop) {
			c->fds[c->put++ % CLOSER_DEPTH] = fd;
			pthread_cond_signal(&c->work);
			pthread_mutex_unlock(&c->lock);
			return;
		}
		pthread_mutex_unlock(&c->lock);
	}
	(void)close(fd);
}

bool closer_drain(struct closer *c)
{
	uint64_t want;

	if (!c)
		return false;
	pthread_mutex_lock(&c->lock);
	want = c->put;
	if (c->closed == want) {
		pthread_mutex_unlock(&c->lock);
		return false;
	}
	while (c->closed < want)
		pthread_cond_wait(&c->done, &c->lock);
	pthread_mutex_unlock(&c->lock);
	return true;
}

void closer_free(struct closer *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->done);
	pthread_cond_destroy(&c->work);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
