/*
 * test_closer.c — the closer: a queued descriptor is closed without anyone
 * waiting for it, a drain returns only when all queued before it are closed,
 * a full queue or a NULL closer closes at once, and free closes what is left.
 * Pipes show a close from outside: the read end sees EOF once the last write
 * end is closed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "phifs/closer.h"

#define MANY 200

static bool is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Whether the write end of the pipe whose read end is rfd is closed. */
static bool writer_closed(int rfd, int timeout_ms)
{
	struct pollfd p = { .fd = rfd, .events = POLLIN };

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLHUP);
}

Test(closer, a_queued_descriptor_is_closed_without_a_drain)
{
	struct closer *c;
	int p[2];

	cr_assert_eq(closer_new(&c), 0);
	cr_assert_eq(pipe(p), 0);
	closer_put(c, p[1]);
	cr_assert(writer_closed(p[0], 5000), "not closed within 5 s");
	(void)closer_drain(c);	/* it may still be counting that close */
	cr_assert(!closer_drain(c), "a drain of an empty queue waited");
	close(p[0]);
	closer_free(c);
}

Test(closer, a_drain_returns_after_every_earlier_put_is_closed)
{
	int r[MANY], w[MANY];
	struct closer *c;

	cr_assert_eq(closer_new(&c), 0);
	for (int i = 0; i < MANY; i++) {
		int p[2];

		cr_assert_eq(pipe(p), 0);
		r[i] = p[0];
		w[i] = p[1];
	}
	/* More than the queue holds: the rest are closed here, at once. */
	for (int i = 0; i < MANY; i++)
		closer_put(c, w[i]);
	closer_drain(c);
	for (int i = 0; i < MANY; i++) {
		cr_assert(writer_closed(r[i], 0), "pipe %d still open after "
			  "the drain", i);
		close(r[i]);
	}
	closer_free(c);
}

Test(closer, without_a_closer_it_closes_at_once)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	closer_put(NULL, p[1]);
	cr_assert(!is_open(p[1]));
	cr_assert(writer_closed(p[0], 0));
	cr_assert(!closer_drain(NULL));
	closer_free(NULL);
	close(p[0]);
}

Test(closer, free_closes_what_is_still_queued)
{
	int r[16];
	struct closer *c;

	cr_assert_eq(closer_new(&c), 0);
	for (int i = 0; i < 16; i++) {
		int p[2];

		cr_assert_eq(pipe(p), 0);
		r[i] = p[0];
		closer_put(c, p[1]);
	}
	closer_free(c);
	for (int i = 0; i < 16; i++) {
		cr_assert(writer_closed(r[i], 0), "pipe %d open after free", i);
		close(r[i]);
	}
}

struct putter {
	struct closer *c;
	int r[MANY];
};

static void *put_many(void *arg)
{
	struct putter *p = arg;

	for (int i = 0; i < MANY; i++) {
		int fd[2];

		if (pipe(fd))
			return (void *)(long)errno;
		p->r[i] = fd[0];
		closer_put(p->c, fd[1]);
		if (i % 50 == 49)
			closer_drain(p->c);
	}
	closer_drain(p->c);
	return NULL;
}

Test(closer, threads_putting_and_draining_at_once_lose_nothing)
{
	struct putter p[4];
	pthread_t t[4];
	struct closer *c;

	cr_assert_eq(closer_new(&c), 0);
	for (int k = 0; k < 4; k++) {
		p[k].c = c;
		cr_assert_eq(pthread_create(&t[k], NULL, put_many, &p[k]), 0);
	}
	for (int k = 0; k < 4; k++) {
		void *ret;

		pthread_join(t[k], &ret);
		cr_assert_null(ret, "pipe: %s", strerror((int)(long)ret));
		/* Its own drain covered all of its own puts. */
		for (int i = 0; i < MANY; i++) {
			cr_assert(writer_closed(p[k].r[i], 0));
			close(p[k].r[i]);
		}
	}
	closer_free(c);
}
