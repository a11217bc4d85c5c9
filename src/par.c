/*
 * par.c — one helper thread that takes the second half of a loop; see
 * par.h.  A caller claims the helper under the lock, posts its half, runs
 * its own and waits for the helper's; a caller that finds it claimed runs
 * everything itself.
 */
#include "phifs/par.h"

#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t posted = PTHREAD_COND_INITIALIZER;
static pthread_cond_t finished = PTHREAD_COND_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static struct {
	bool running;	/* a helper exists in this process */
	bool failed;	/* it cannot: never try again */
	bool claimed;	/* a caller owns it, until its half is collected */
	bool has_job;	/* posted, not yet finished */
	par_fn fn;
	void *arg;
	size_t lo, hi;
	int rc;
} h;

static void *helper_main(void *unused)
{
	int rc;

	(void)unused;
	pthread_mutex_lock(&lock);
	for (;;) {
		while (!h.has_job)
			pthread_cond_wait(&posted, &lock);
		/* The job stays put until has_job is cleared. */
		pthread_mutex_unlock(&lock);
		rc = h.fn(h.arg, h.lo, h.hi);
		pthread_mutex_lock(&lock);
		h.rc = rc;
		h.has_job = false;
		pthread_cond_signal(&finished);
	}
	return NULL;
}

/* The child of a fork has no helper, and no caller in the middle of a
 * loop (only the forking thread survives). */
static void forget_helper(void)
{
	pthread_mutex_init(&lock, NULL);
	pthread_cond_init(&posted, NULL);
	pthread_cond_init(&finished, NULL);
	h.running = h.claimed = h.has_job = false;
}

static void atfork_init(void)
{
	if (pthread_atfork(NULL, NULL, forget_helper))
		h.failed = true;
}

/* Under lock: whether a helper runs, starting one if need be. */
static bool helper_ready(void)
{
	pthread_attr_t a;
	pthread_t t;

	if (h.running || h.failed)
		return h.running;
	h.failed = sysconf(_SC_NPROCESSORS_ONLN) < 2 ||
		   pthread_attr_init(&a) != 0;
	if (h.failed)
		return false;
	h.failed = pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED) ||
		   pthread_create(&t, &a, helper_main, NULL);
	pthread_attr_destroy(&a);
	h.running = !h.failed;
	return h.running;
}

int par_for(par_fn fn, void *arg, size_t n, size_t min)
{
	size_t mid = n / 2;
	int rc, rc2;

	if (n < min || n < 2)
		return fn(arg, 0, n);
	pthread_once(&atfork_once, atfork_init);
	pthread_mutex_lock(&lock);
	if (h.claimed || !helper_ready()) {
		pthread_mutex_unlock(&lock);
		return fn(arg, 0, n);
	}
	h.claimed = h.has_job = true;
	h.fn = fn;
	h.arg = arg;
	h.lo = mid;
	h.hi = n;
	pthread_cond_signal(&posted);
	pthread_mutex_unlock(&lock);

	rc = fn(arg, 0, mid);

	pthread_mutex_lock(&lock);
	while (h.has_job)
		pthread_cond_wait(&finished, &lock);
	rc2 = h.rc;
	h.claimed = false;
	pthread_mutex_unlock(&lock);
	return rc ? rc : rc2;
}
