/*
 * loop.c — workers take the FUSE device by turns.
 *
 * One worker, the holder, owns the device.  It reads a request and, when
 * nothing else is queued, keeps the device while it serves it, then reads
 * again: a synchronous stream stays on one hot thread and wakes no one.
 * It hands the device to a follower at once when more requests are queued
 * or the request is one that takes long (read-ahead's large reads, fsync),
 * and a standby follower, which looks every HOLD_NS, takes it over from a
 * holder busy with one request since its last look, so a slow request
 * (fsync, a cold read) delays the requests behind it by at most 2 HOLD_NS.
 *
 * With nothing to read, the holder polls the non-blocking device for a
 * window before it sleeps in poll(): the window doubles when a request came
 * just after it closed and halves when the gap was long, as the kernel's
 * guest halt-polling does, so an idle mount does not spin.
 *
 * The loop also speaks for the file system at INIT where libfuse 3.14
 * cannot: it asks for FUSE_HANDLE_KILLPRIV_V2 (see loop.h), by adding the
 * flag to the INIT reply on its way to the device (fuse_session_custom_io).
 * And it answers the kernel's own question, GETXATTR security.capability,
 * itself once the file system has answered it (answer_cap).
 */
#include "phifs/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SPIN_START_NS 8000u	/* the first window once gaps are short */
#define SPIN_MAX_NS 64000u	/* gaps longer than this are idle time */
#define HOLD_NS 250000u		/* the standby's period */
#define LONG_READ (128u << 10)	/* read-ahead's size: hand the device on */
#define THREAD_SLOTS 64u		/* the most max_threads can ask for */

enum holder_state { TAKING, ASLEEP, BUSY };

struct loop {
	struct fuse_session *se;
	int dev;			/* the FUSE device, non-blocking */
	int stop;			/* eventfd, readable once stopping */
	pthread_mutex_t lock;
	pthread_cond_t turn;		/* to followers: free device, or stop */
	uint64_t holder;		/* its turn number, 0 when free */
	uint64_t turns;			/* turns given out so far */
	enum holder_state state;
	uint64_t busy_seq;		/* requests the holder started serving */
	bool standby;			/* a follower watches the holder */
	bool stopping;
	int err;			/* first device error, -errno */
	unsigned idle;			/* followers waiting */
	unsigned nthreads, max;
	pthread_t threads[THREAD_SLOTS];
	_Atomic uint32_t spin_ns;	/* the holder's current window */
	_Atomic unsigned serving;	/* workers inside a request */
	_Atomic int cap_answer;		/* -errno for security.capability */
	struct loop_stats *st;		/* NULL: nobody asks */
};

/* The request this thread serves, and its loop, for the device hooks. */
static _Thread_local const struct fuse_buf *serving_now;
static _Thread_local struct loop *serving_loop;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Learns from one gap between starting to wait and a request. */
static void adapt(struct loop *l, uint64_t gap)
{
	uint32_t w = atomic_load_explicit(&l->spin_ns, memory_order_relaxed);

	if (gap > SPIN_MAX_NS)
		w /= 2;
	else if (gap > w)
		w = w ? (w * 2 > SPIN_MAX_NS ? SPIN_MAX_NS : w * 2) :
			SPIN_START_NS;
	atomic_store_explicit(&l->spin_ns, w, memory_order_relaxed);
}

/*
 * Requests that take long anyway, and come with others in flight: the
 * kernel's read-ahead sends large reads several at a time, and the next
 * may arrive while this one is served.  (A large write is one writer's,
 * which waits for the reply.)
 */
static bool long_request(const struct fuse_buf *fb)
{
	const struct fuse_in_header *h = fb->mem;
	const void *arg = h + 1;
	size_t need = sizeof(*h);

	if ((fb->flags & FUSE_BUF_IS_FD) || fb->size < need)
		return false;
	switch (h->opcode) {
	case FUSE_FSYNC:
	case FUSE_FSYNCDIR:
		return true;
	case FUSE_READ:
		need += sizeof(struct fuse_read_in);
		return fb->size >= need &&
		       ((const struct fuse_read_in *)arg)->size >= LONG_READ;
	default:
		return false;
	}
}

static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, timeout_ms) > 0;
}

/* Sleeps until the device or the stop event is readable: 0, 1 on stop. */
static int sleep_on_device(struct loop *l)
{
	struct pollfd p[2] = {
		{ .fd = l->dev, .events = POLLIN },
		{ .fd = l->stop, .events = POLLIN },
	};

	pthread_mutex_lock(&l->lock);
	l->state = ASLEEP;
	pthread_mutex_unlock(&l->lock);
	if (poll(p, 2, -1) < 0 && errno != EINTR)
		return -errno;
	pthread_mutex_lock(&l->lock);
	l->state = TAKING;
	if (l->standby)		/* it waits without a timeout while we sleep */
		pthread_cond_broadcast(&l->turn);
	pthread_mutex_unlock(&l->lock);
	return p[1].revents ? 1 : 0;
}

/* The holder's read: > 0 a request in fb, 0 stop, -errno. */
static int take_request(struct loop *l, struct fuse_buf *fb)
{
	uint64_t start = now_ns(), until;
	bool slept = false;
	int res;

	until = start + atomic_load_explicit(&l->spin_ns, memory_order_relaxed);
	for (;;) {
		res = fuse_session_receive_buf(l->se, fb);
		if (res != -EAGAIN && res != -EINTR)
			break;
		/* While others serve requests, polling would take a CPU
		 * from them: what comes next likely waits on their replies. */
		if (!slept && now_ns() < until &&
		    !atomic_load_explicit(&l->serving, memory_order_relaxed)) {
			sched_yield();	/* a runnable thread here goes first */
			continue;
		}
		res = sleep_on_device(l);
		if (res)
			return res > 0 ? 0 : res;
		slept = true;
	}
	if (res > 0)
		adapt(l, now_ns() - start);
	return res;
}

/* The argument of the request fb after its header, if it holds size bytes. */
static const void *request_arg(const struct fuse_buf *fb, uint32_t opcode,
			       size_t size)
{
	const struct fuse_in_header *h;

	if (!fb || (fb->flags & FUSE_BUF_IS_FD) || fb->size < sizeof(*h) + size)
		return NULL;
	h = fb->mem;
	return h->opcode == opcode ? h + 1 : NULL;
}

bool loop_kill_suidgid(void)
{
	const struct fuse_buf *fb = serving_now;
	const struct fuse_write_in *w;
	const struct fuse_open_in *o;
	const struct fuse_create_in *c;
	const struct fuse_setattr_in *a;

	if ((w = request_arg(fb, FUSE_WRITE, sizeof(*w))))
		return w->write_flags & FUSE_WRITE_KILL_SUIDGID;
	if ((o = request_arg(fb, FUSE_OPEN, sizeof(*o))))
		return o->open_flags & FUSE_OPEN_KILL_SUIDGID;
	if ((c = request_arg(fb, FUSE_CREATE, sizeof(*c))))
		return c->open_flags & FUSE_OPEN_KILL_SUIDGID;
	if ((a = request_arg(fb, FUSE_SETATTR, sizeof(*a))))
		return a->valid & FATTR_KILL_SUIDGID;
	return false;
}

#define CAP_NAME "security.capability"

/* Whether the request req (len bytes) is a GETXATTR of security.capability. */
static bool asks_cap(const void *req, size_t len)
{
	const struct fuse_in_header *h = req;
	const size_t at = sizeof(*h) + sizeof(struct fuse_getxattr_in);

	return req && len >= at + sizeof(CAP_NAME) &&
	       h->opcode == FUSE_GETXATTR &&
	       !memcmp((const char *)req + at, CAP_NAME, sizeof(CAP_NAME));
}

int loop_cap_learn(const void *req, size_t len,
		   const struct fuse_out_header *out)
{
	if (!asks_cap(req, len) || out->len != sizeof(*out) ||
	    out->unique != ((const struct fuse_in_header *)req)->unique)
		return 0;
	return out->error == -EOPNOTSUPP || out->error == -ENODATA ?
		       out->error : 0;
}

bool loop_cap_reply(int learned, const void *req, size_t len,
		    struct fuse_out_header *out)
{
	if (!learned || !asks_cap(req, len))
		return false;
	*out = (struct fuse_out_header){
		.len = sizeof(*out), .error = learned,
		.unique = ((const struct fuse_in_header *)req)->unique,
	};
	return true;
}

static bool in_memory(const struct fuse_buf *fb)
{
	return fb && !(fb->flags & FUSE_BUF_IS_FD);
}

/* 1 when the reader answered fb itself (loop.h), 0 not, or -errno. */
static int answer_cap(struct loop *l, const struct fuse_buf *fb)
{
	struct fuse_out_header out;

	if (!in_memory(fb) ||
	    !loop_cap_reply(atomic_load_explicit(&l->cap_answer,
						 memory_order_relaxed),
			    fb->mem, fb->size, &out))
		return 0;
	if (l->st) {
		atomic_fetch_add_explicit(&l->st->requests, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&l->st->replies, 1,
					  memory_order_relaxed);
	}
	/* ENOENT: the kernel gave up on it (interrupted) meanwhile. */
	if (write(l->dev, &out, sizeof(out)) < 0 && errno != ENOENT)
		return -errno;
	return 1;
}

/* The reply out goes to the request this thread serves: learn from it. */
static void learn_cap(const struct fuse_out_header *out)
{
	const struct fuse_buf *fb = serving_now;
	int err;

	if (!in_memory(fb))
		return;
	err = loop_cap_learn(fb->mem, fb->size, out);
	if (err)
		atomic_store_explicit(&serving_loop->cap_answer, err,
				      memory_order_relaxed);
}

static ssize_t dev_read(int fd, void *buf, size_t len, void *unused)
{
	(void)unused;
	return read(fd, buf, len);
}

/*
 * Every reply and notice goes out here.  libfuse 3.14 passes on to the
 * kernel only the INIT flags it knows, and FUSE_HANDLE_KILLPRIV_V2 is not
 * one: without it the kernel asks GETXATTR security.capability before
 * every write (file_remove_privs), a round trip each; with it, only before
 * an inode's first write (SB_NOSEC), and it tells the file system when to
 * drop set-id bits (loop_kill_suidgid) instead of sending a chmod.  So the
 * successful reply to the INIT this thread serves gets the flag added
 * when the kernel offered it.
 */
static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *unused)
{
	const struct fuse_init_in *in =
		request_arg(serving_now, FUSE_INIT, sizeof(*in));
	const struct fuse_out_header *out = iov[0].iov_base;
	struct fuse_init_out reply;
	struct iovec v[2];

	(void)unused;
	if (count == 1 && iov[0].iov_len == sizeof(*out))
		learn_cap(out);
	if (!in || count != 2 || iov[0].iov_len < sizeof(*out) || out->error ||
	    out->unique != ((const struct fuse_in_header *)serving_now->mem)
				   ->unique ||
	    !(in->flags & FUSE_HANDLE_KILLPRIV_V2) ||
	    iov[1].iov_len < offsetof(struct fuse_init_out, flags) +
				     sizeof(reply.flags) ||
	    iov[1].iov_len > sizeof(reply))
		return writev(fd, iov, count);
	memcpy(&reply, iov[1].iov_base, iov[1].iov_len);
	reply.flags |= FUSE_HANDLE_KILLPRIV_V2;
	v[0] = iov[0];
	v[1] = (struct iovec){ .iov_base = &reply, .iov_len = iov[1].iov_len };
	return writev(fd, v, 2);
}

static const struct fuse_custom_io dev_io = {
	.read = dev_read,
	.writev = dev_writev,
};

/* take_request, past the requests the reader answers itself. */
static int take_unanswered(struct loop *l, struct fuse_buf *fb)
{
	int res, rc;

	for (;;) {
		res = take_request(l, fb);
		if (res <= 0)
			return res;
		rc = answer_cap(l, fb);
		if (rc <= 0)
			return rc ? rc : res;
	}
}

static void *worker(void *arg);

/* Under lock.  A thread that cannot start only costs parallelism. */
static void start_worker(struct loop *l)
{
	if (!l->stopping && l->nthreads < l->max &&
	    !pthread_create(&l->threads[l->nthreads], NULL, worker, l)) {
		l->nthreads++;
		if (l->st)
			atomic_store_explicit(&l->st->threads, l->nthreads,
					      memory_order_relaxed);
	}
}

/* Under lock: stop every worker and wake the thread in loop_run. */
static void stop_all(struct loop *l, int err)
{
	static const uint64_t one = 1;

	if (err && !l->err)
		l->err = err;
	if (!l->stopping) {
		l->stopping = true;
		pthread_cond_broadcast(&l->turn);
		if (write(l->stop, &one, sizeof(one)) < 0)
			abort();	/* an eventfd write cannot fail here */
	}
}

/* Under lock: a waiting follower wakes, or a new one starts. */
static void wake_or_start(struct loop *l)
{
	if (l->idle)
		pthread_cond_signal(&l->turn);
	else
		start_worker(l);
}

/*
 * Under lock, as the one standby: waits HOLD_NS at a time while the holder
 * works, and frees the device when one request has kept it busy that long.
 */
static void watch_holder(struct loop *l)
{
	uint64_t seq = l->busy_seq;
	uint64_t t = now_ns() + HOLD_NS;
	struct timespec until = {
		.tv_sec = (time_t)(t / 1000000000u),
		.tv_nsec = (long)(t % 1000000000u),
	};

	l->standby = true;
	l->idle++;
	if (l->state == ASLEEP)
		pthread_cond_wait(&l->turn, &l->lock);
	else
		pthread_cond_timedwait(&l->turn, &l->lock, &until);
	l->idle--;
	l->standby = false;
	if (l->holder && l->state == BUSY && l->busy_seq == seq &&
	    now_ns() >= t)
		l->holder = 0;		/* stuck in a slow request: take over */
}

/* Under lock: a follower waits for its turn, as the standby if none is. */
static void follow(struct loop *l)
{
	if (!l->standby) {
		watch_holder(l);
		return;
	}
	l->idle++;
	pthread_cond_wait(&l->turn, &l->lock);
	l->idle--;
}

/*
 * Under lock, with a request in hand: keep the device while serving it, or
 * hand it on when more is queued or this one takes long.  The turn kept, or
 * 0.
 */
static uint64_t keep_or_hand_on(struct loop *l, uint64_t me, bool more)
{
	if (more) {
		l->holder = 0;
		wake_or_start(l);
		return 0;
	}
	l->state = BUSY;
	l->busy_seq++;
	if (!l->standby)	/* someone must watch */
		wake_or_start(l);
	return me;
}

static void serve(struct loop *l, const struct fuse_buf *fb)
{
	atomic_fetch_add_explicit(&l->serving, 1, memory_order_relaxed);
	if (l->st)
		atomic_fetch_add_explicit(&l->st->requests, 1,
					  memory_order_relaxed);
	serving_now = fb;
	serving_loop = l;
	fuse_session_process_buf(l->se, fb);
	serving_now = NULL;
	if (l->st)
		atomic_fetch_add_explicit(&l->st->replies, 1,
					  memory_order_relaxed);
	atomic_fetch_sub_explicit(&l->serving, 1, memory_order_relaxed);
}

static void *worker(void *arg)
{
	struct loop *l = arg;
	struct fuse_buf fb = { .mem = NULL };
	uint64_t me = 0;

	pthread_mutex_lock(&l->lock);
	while (!l->stopping) {
		bool more;
		int res;

		if (l->holder && l->holder != me) {
			me = 0;
			follow(l);
			continue;
		}
		if (!l->holder)
			me = l->holder = ++l->turns;
		l->state = TAKING;
		pthread_mutex_unlock(&l->lock);
		res = take_unanswered(l, &fb);
		more = res > 0 &&
		       (long_request(&fb) || readable(l->dev, 0));
		pthread_mutex_lock(&l->lock);
		if (res <= 0 || l->stopping || fuse_session_exited(l->se)) {
			stop_all(l, res < 0 ? res : 0);	/* unmounted, told to */
			break;
		}
		/* Still the holder: only a BUSY one is taken over. */
		me = keep_or_hand_on(l, me, more);
		pthread_mutex_unlock(&l->lock);
		serve(l, &fb);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	free(fb.mem);
	return NULL;
}

/*
 * Waits until a worker stops the loop (an unmount, a device error) or
 * fuse_session_exit was called, which the caller follows with a signal to
 * this thread: ppoll then returns EINTR.  The caller repeats that signal
 * until loop_run returns, so one sent between the check and the wait only
 * delays the stop.
 */
static void wait_for_stop(struct loop *l)
{
	struct pollfd p = { .fd = l->stop, .events = POLLIN };

	while (!fuse_session_exited(l->se) && !(p.revents & POLLIN))
		(void)ppoll(&p, 1, NULL, NULL);
	pthread_mutex_lock(&l->lock);
	stop_all(l, 0);
	pthread_mutex_unlock(&l->lock);
}


static int loop_init(struct loop *l, struct fuse_session *se, unsigned max,
		     struct loop_stats *st)
{
	pthread_condattr_t ca;
	int fl;

	*l = (struct loop){ .se = se, .max = max, .st = st };
	if (l->max < 2)
		l->max = 2;		/* a holder and its standby */
	if (l->max > THREAD_SLOTS)
		l->max = THREAD_SLOTS;
	l->dev = fuse_session_fd(se);
	fl = fcntl(l->dev, F_GETFL);
	if (fl < 0 || fcntl(l->dev, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	fl = fuse_session_custom_io(se, &dev_io, l->dev);
	if (fl)
		return fl;
	l->stop = eventfd(0, EFD_CLOEXEC);
	if (l->stop < 0)
		return -errno;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->turn, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

int loop_run(struct fuse_session *se, unsigned max_threads,
	     struct loop_stats *st)
{
	struct loop l;
	int rc;

	rc = loop_init(&l, se, max_threads, st);
	if (rc)
		return rc;
	pthread_mutex_lock(&l.lock);
	start_worker(&l);
	rc = l.nthreads ? 0 : -EAGAIN;
	pthread_mutex_unlock(&l.lock);
	if (!rc)
		wait_for_stop(&l);
	for (unsigned i = 0; i < l.nthreads; i++)	/* none start now */
		pthread_join(l.threads[i], NULL);
	close(l.stop);
	pthread_cond_destroy(&l.turn);
	pthread_mutex_destroy(&l.lock);
	return rc ? rc : l.err;
}
