/*
 * rotate.c — the daemon's master key rotation while mounted: volkeys'
 * rotation (marker, new version published, passes, retire) on a thread of
 * its own, never the control loop's or a request worker's, each file
 * re-wrapped through vfs_rewrap.  Progress is copied under a mutex at each
 * file, for the status.  Knows nothing of the control socket or FUSE.
 */
#include "phifs/rotate.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phifs/log.h"

struct rotate {
	struct volume *vol;
	struct vfs *vfs;
	pthread_mutex_t lock;	/* st, thread, started, stopped */
	struct rotate_status st;
	struct timespec began;
	pthread_t thread;
	bool started;		/* thread not joined yet */
	bool stopped;
	atomic_bool cancel;
	void (*done)(void *arg, int rc, uint32_t version);
	void *done_arg;
};

static double since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) +
	       (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

int rotate_new(struct volume *vol, struct vfs *vfs, struct rotate **out)
{
	struct rotate *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	if (pthread_mutex_init(&r->lock, NULL)) {
		free(r);
		return -ENOMEM;
	}
	r->vol = vol;
	r->vfs = vfs;
	*out = r;
	return 0;
}

void rotate_free(struct rotate *r)
{
	if (!r)
		return;
	rotate_stop(r);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* volkeys' re-wrap: through the mount's open files; stops on cancel. */
static int rewrap(void *arg, int fd, uint32_t version)
{
	struct rotate *r = arg;

	if (atomic_load_explicit(&r->cancel, memory_order_relaxed))
		return -ECANCELED;
	return vfs_rewrap(r->vfs, fd, version);
}

static void renames(void *arg, uint64_t out[2])
{
	struct rotate *r = arg;

	vfs_renames(r->vfs, out);
}

static void progress(void *arg, const struct volkeys_progress *p)
{
	struct rotate *r = arg;

	pthread_mutex_lock(&r->lock);
	r->st.p = *p;
	r->st.seconds = since(&r->began);
	pthread_mutex_unlock(&r->lock);
}

static void *run(void *arg)
{
	struct rotate *r = arg;
	const struct volkeys_ops ops = {
		.rewrap = rewrap, .renames = renames, .arg = r,
		.passes = ROTATE_PASSES,
	};
	struct volkeys_progress *p = malloc(sizeof(*p));
	char *err = malloc(sizeof(r->st.error));
	size_t nretired = 0;
	uint32_t target = 0;
	int rc = -ENOMEM;

	if (p && err)
		rc = volkeys_rotate_with(r->vol, r->st.keep_old, &ops,
					 progress, r, p, err,
					 sizeof(r->st.error));
	else if (err)
		snprintf(err, sizeof(r->st.error), "out of memory");
	unsigned id;

	pthread_mutex_lock(&r->lock);
	id = r->st.id;
	if (p)
		r->st.p = *p;
	r->st.seconds = since(&r->began);
	snprintf(r->st.error, sizeof(r->st.error), "%s",
		 !rc ? "" : err ? err : "out of memory");
	r->st.state = rc ? ROTATE_FAILED : ROTATE_DONE;
	pthread_mutex_unlock(&r->lock);
	if (p) {
		target = p->target;
		nretired = p->nretired;
	}
	if (rc)
		log_msg(LOG_KIND_LIFECYCLE, LOG_ERR, "key rotation %u failed: "
			"%s", id, err ? err : "out of memory");
	else
		log_msg(LOG_KIND_LIFECYCLE, LOG_INFO, "key rotation %u: "
			"master key v%u in force, %llu file(s) re-wrapped, "
			"%zu version(s) retired", id, (unsigned)target,
			(unsigned long long)p->done, nretired);
	if (r->done)
		r->done(r->done_arg, rc, target);
	free(p);
	free(err);
	return NULL;
}

void rotate_on_done(struct rotate *r,
		    void (*fn)(void *arg, int rc, uint32_t version), void *arg)
{
	r->done = fn;
	r->done_arg = arg;
}

int rotate_start(struct rotate *r, bool keep_old, unsigned *id)
{
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	if (r->stopped)
		rc = -ESHUTDOWN;
	else if (r->st.state == ROTATE_RUNNING)
		rc = -EBUSY;
	if (rc)
		goto out;
	if (r->started)		/* the last one's thread has ended */
		pthread_join(r->thread, NULL);
	r->started = false;
	memset(&r->st.p, 0, sizeof(r->st.p));
	r->st.error[0] = 0;
	r->st.seconds = 0;
	r->st.keep_old = keep_old;
	r->st.state = ROTATE_RUNNING;
	r->st.id++;
	clock_gettime(CLOCK_MONOTONIC, &r->began);
	rc = -pthread_create(&r->thread, NULL, run, r);
	if (rc) {
		r->st.state = ROTATE_FAILED;
		snprintf(r->st.error, sizeof(r->st.error), "cannot start "
			 "its thread: %s", strerror(-rc));
		goto out;
	}
	r->started = true;
	*id = r->st.id;
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void rotate_stop(struct rotate *r)
{
	bool join;

	atomic_store(&r->cancel, true);
	pthread_mutex_lock(&r->lock);
	r->stopped = true;
	join = r->started;
	r->started = false;
	pthread_mutex_unlock(&r->lock);
	/* Out of the lock: the thread takes it to report. */
	if (join)
		pthread_join(r->thread, NULL);
}

void rotate_get(struct rotate *r, struct rotate_status *out)
{
	pthread_mutex_lock(&r->lock);
	*out = r->st;
	if (out->state == ROTATE_RUNNING)
		out->seconds = since(&r->began);
	pthread_mutex_unlock(&r->lock);
}

const char *rotate_state_name(enum rotate_state st)
{
	switch (st) {
	case ROTATE_NONE:
		return "none";
	case ROTATE_RUNNING:
		return "running";
	case ROTATE_DONE:
		return "done";
	case ROTATE_FAILED:
		return "failed";
	}
	return "?";
}
