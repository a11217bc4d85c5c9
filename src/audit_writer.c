/*
 * audit_writer.c — the integrity log's queue and logger thread: request
 * threads copy a record into a bounded FIFO and go; the logger takes
 * batches, chains them (audit.h), writes each batch with one write(2) and
 * commits it with one fdatasync, adds signed checkpoints, rolls and seals
 * segments (audit_seg.c), and fails closed while the disk refuses.
 *
 * Tickets order everything: each queued record gets the next one, and
 * the logger publishes the last ticket written and the last made durable,
 * so put() under sync = always and flush() wait on a number, not a record.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_writer_impl.h"
#include "phifs/atomicfile.h"
#include "phifs/audit_writer.h"
#include "phifs/ioutil.h"
#include "phifs/log.h"

#define DEF_QUEUE_MAX 16384
#define DEF_SEGMENT_BYTES (64ULL << 20)
#define DEF_SEGMENT_MS (24ULL * 3600 * 1000)
#define DEF_CHECKPOINT_RECORDS 10000
#define DEF_CHECKPOINT_MS 10000
#define BATCH_MAX 1024		/* records per write(2) */
#define RETRY_MS 200		/* a failing log tries again this often */
/*
 * Under sync = batch a batch gathers for this long after the last commit:
 * one fdatasync for the records of a few milliseconds, not one per record
 * (which a reader doing 4 KiB reads paid as a disk flush each).
 */
#define BATCH_WINDOW_MS 10
#define CLOSE_GIVE_UP_MS 2000	/* close() on a failing log waits this */
#define IDLE_MS 3600000
#define PATH_MAX_LEN 4096	/* what AUDIT_MAX_LINE is sized for */
#define RULE_MAX_LEN 1024
#define CK_LINE_CAP 1024	/* a checkpoint line, comm escaped */

/* A queued record; its strings live in data[]. */
struct qrec {
	struct qrec *next;
	uint64_t ticket;
	uint64_t t_ms;		/* monotonic, when queued: for the lag */
	bool cancelled;		/* refused under always before written */
	struct audit_record r;
	char data[];
};

/* What the logger saw under the lock before a step. */
struct plan {
	struct qrec *batch;
	uint64_t last_ticket;	/* of the batch, cancelled ones too */
	uint64_t lost;		/* records lost since the last gap record */
	int lost_err;
	uint64_t anchor;	/* anchor requests to answer */
	bool flush;		/* sync even under none */
	bool last;		/* closing and the queue is empty */
};

struct audit_writer {
	struct audit_writer_conf conf;
	char *dir;
	int dirfd;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake;	/* the logger: work, or stop */
	pthread_cond_t done;	/* callers: progress, or failure */

	/* Under mu. */
	struct qrec *head, *tail;
	size_t nq;
	uint64_t ticket;		/* the last given */
	uint64_t taken;			/* the last the logger took */
	uint64_t written, synced;	/* tickets */
	uint64_t flush_want;		/* a ticket to make durable */
	uint64_t anchor_want, anchor_done;
	int anchor_rc;
	char anchor[CK_LINE_CAP];
	size_t anchor_len;
	bool stop, failing;
	int err;			/* the failure now */
	int unreported;			/* an error no caller was told */
	uint64_t lost;
	int lost_err;
	uint64_t give_up_ms, retry_ms;
	uint64_t stepped_ms;	/* when the last batch was written */
	bool in_window;		/* the logger waits out a batch window:
				 * a put need not wake it */
	uint64_t pend_oldest_ms;	/* 0: nothing pending */
	uint64_t pend_records;
	struct audit_writer_stats st;

	/* The logger's own. */
	struct audit_chain chain;
	struct aseg_flagnote fn;
	struct audit_record self;	/* who writes checkpoints, gaps */
	int segfd;
	uint64_t seg_size, seg_t0;
	uint64_t since_ck, ck_t;
	char ck_line[CK_LINE_CAP];
	size_t ck_line_len;
	int64_t ck_ts;
	uint64_t ck_seq;
	bool roll;			/* seal once the pending bytes are in */
	char *pend;
	size_t pend_len, pend_off, pend_cap, pend_n;
	uint64_t pend_ticket, pend_seq, pend_t_ms;
	uint64_t l_written, l_synced;	/* tickets */
	uint64_t l_written_seq, l_synced_seq;
	bool unsynced;
	uint64_t unsynced_ticket, unsynced_seq;
	uint64_t enc_lost;		/* records encode refused */
};

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void stamp(struct audit_record *r)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	r->ts_sec = t.tv_sec;
	r->ts_nsec = (uint32_t)t.tv_nsec;
}

/* Waits on c until deadline_ms (monotonic); false at the deadline. */
static bool wait_until(pthread_cond_t *c, pthread_mutex_t *mu,
		       uint64_t deadline_ms)
{
	struct timespec t = {
		.tv_sec = (time_t)(deadline_ms / 1000),
		.tv_nsec = (long)(deadline_ms % 1000) * 1000000,
	};

	return pthread_cond_timedwait(c, mu, &t) != ETIMEDOUT;
}

/* ---- the request side ---- */

static int check_record(const struct audit_record *r)
{
	if ((unsigned)r->op >= AUDIT_OP_COUNT || r->op == AUDIT_CHECKPOINT ||
	    r->op == AUDIT_RECOVERY || r->op == AUDIT_GAP ||
	    (r->op == AUDIT_DENY && (unsigned)r->req >= AUDIT_OP_COUNT))
		return -EINVAL;
	if ((r->path_len && !r->path) || (r->path2_len && !r->path2))
		return -EINVAL;
	if (r->path_len > PATH_MAX_LEN || r->path2_len > PATH_MAX_LEN ||
	    (r->rule && strlen(r->rule) > RULE_MAX_LEN))
		return -ENAMETOOLONG;
	if ((r->path && memchr(r->path, 0, r->path_len)) ||
	    (r->path2 && memchr(r->path2, 0, r->path2_len)))
		return -EINVAL;
	return 0;
}

static char *put_bytes(char *p, const char *s, size_t n, const char **out)
{
	*out = p;
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	return p + n + 1;
}

/* One allocation: the record and copies of its strings. */
static struct qrec *copy_record(const struct audit_record *r)
{
	size_t rule_len = r->rule ? strlen(r->rule) : 0;
	struct qrec *q = malloc(sizeof(*q) + r->path_len + r->path2_len +
				rule_len + 3);
	char *p;

	if (!q)
		return NULL;
	memset(q, 0, sizeof(*q));
	q->r = *r;
	q->r.owned = false;
	q->r.comm[AUDIT_COMM_LEN - 1] = '\0';
	p = put_bytes(q->data, r->path, r->path_len, &q->r.path);
	p = put_bytes(p, r->path2, r->path2_len, &q->r.path2);
	put_bytes(p, r->rule, rule_len, &q->r.rule);
	if (!r->rule)
		q->r.rule = NULL;
	if (!q->r.ts_sec)
		stamp(&q->r);
	q->t_ms = now_ms();
	return q;
}

/* A record that cannot be kept: refused (deny) or counted lost (allow). */
static int refuse(struct audit_writer *w)
{
	if (w->conf.deny_on_failure) {
		w->st.refused++;
		w->unreported = 0;	/* the caller is told */
		return -EIO;
	}
	w->st.dropped++;
	w->lost++;
	if (!w->lost_err)
		w->lost_err = w->err ? w->err : -ENOBUFS;
	return 0;
}

/* Under always: until ticket t is durable, or the log fails. */
static int wait_durable(struct audit_writer *w, struct qrec *q, uint64_t t)
{
	while (w->synced < t) {
		if (w->failing && !w->conf.deny_on_failure)
			return 0;	/* kept in the queue; written later */
		if (w->failing) {
			/* Still queued: it must not appear for an operation
			 * that is refused.  Once taken, it may. */
			if (t > w->taken)
				q->cancelled = true;
			return refuse(w);
		}
		pthread_cond_wait(&w->done, &w->mu);
	}
	return 0;
}

int audit_writer_put(struct audit_writer *w, const struct audit_record *r)
{
	struct qrec *q;
	uint64_t t;
	int rc = check_record(r);

	if (rc)
		return rc;
	q = copy_record(r);
	pthread_mutex_lock(&w->mu);
	if (!q || w->failing || w->stop || w->nq >= w->conf.queue_max) {
		rc = refuse(w);
		pthread_mutex_unlock(&w->mu);
		free(q);
		return rc;
	}
	q->ticket = t = ++w->ticket;
	if (w->tail)
		w->tail->next = q;
	else
		w->head = q;
	w->tail = q;
	/* One wake-up per batch: the logger, when it waits out a window,
	 * takes what came meanwhile at its end. */
	if (w->nq++ == 0 && !w->in_window)
		pthread_cond_signal(&w->wake);
	else if (w->nq == BATCH_MAX)
		pthread_cond_signal(&w->wake);
	if (w->conf.sync == AUDIT_SYNC_ALWAYS)
		rc = wait_durable(w, q, t);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int audit_writer_ready(struct audit_writer *w)
{
	int rc = 0;

	pthread_mutex_lock(&w->mu);
	if (w->failing || w->nq >= w->conf.queue_max) {
		rc = -EIO;
		w->unreported = 0;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int audit_writer_flush(struct audit_writer *w, unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms, t;
	int rc = 0;

	pthread_mutex_lock(&w->mu);
	t = w->ticket;
	if (w->flush_want < t)
		w->flush_want = t;
	pthread_cond_signal(&w->wake);
	while (w->synced < t && !rc)
		if (!wait_until(&w->done, &w->mu, deadline) && w->synced < t)
			rc = w->failing ? -EIO : -ETIMEDOUT;
	if (rc == -EIO)
		w->unreported = 0;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int audit_writer_anchor(struct audit_writer *w, char *buf, size_t cap,
			size_t *len)
{
	uint64_t want;
	int rc;

	pthread_mutex_lock(&w->mu);
	want = ++w->anchor_want;
	pthread_cond_signal(&w->wake);
	while (w->anchor_done < want)
		pthread_cond_wait(&w->done, &w->mu);
	rc = w->anchor_rc;
	if (!rc && w->anchor_len >= cap)
		rc = -ENOSPC;
	if (!rc) {
		memcpy(buf, w->anchor, w->anchor_len);
		buf[w->anchor_len] = '\0';
		*len = w->anchor_len;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void audit_writer_stats(struct audit_writer *w, struct audit_writer_stats *s)
{
	uint64_t oldest, now = now_ms();

	pthread_mutex_lock(&w->mu);
	*s = w->st;
	s->queued = w->nq + w->pend_records;
	oldest = w->pend_oldest_ms ? w->pend_oldest_ms :
		 w->head ? w->head->t_ms : 0;
	s->lag_ms = oldest && now > oldest ? now - oldest : 0;
	s->failing = w->failing;
	pthread_mutex_unlock(&w->mu);
}

/* ---- the logger: encoding ---- */

static int pend_room(struct audit_writer *w)
{
	size_t need = w->pend_len + AUDIT_MAX_LINE + 1;
	char *p;

	if (need <= w->pend_cap)
		return 0;
	need = need < 2 * w->pend_cap ? 2 * w->pend_cap : need;
	p = realloc(w->pend, need);
	if (!p)
		return -ENOMEM;
	w->pend = p;
	w->pend_cap = need;
	return 0;
}

/* Chains r (a checkpoint when ck) onto the pending bytes. */
static int append(struct audit_writer *w, struct audit_record *r, bool ck)
{
	char *at;
	size_t n;
	int rc = pend_room(w);

	if (rc)
		return rc;
	at = w->pend + w->pend_len;
	rc = ck ? audit_chain_checkpoint(&w->chain, r, w->conf.key, at,
					 w->pend_cap - w->pend_len, &n)
		: audit_chain_append(&w->chain, r, at,
				     w->pend_cap - w->pend_len, &n);
	if (rc)
		return rc;
	w->pend_len += n;
	w->pend_n++;
	w->pend_seq = r->seq;
	if (!ck) {
		w->since_ck++;
		return 0;
	}
	w->since_ck = 0;
	w->ck_t = now_ms();
	w->ck_seq = r->seq;
	w->ck_ts = r->ts_sec;
	if (n - 1 < sizeof(w->ck_line)) {
		memcpy(w->ck_line, at, n - 1);
		w->ck_line_len = n - 1;
	}
	return 0;
}

/* A record of the writer's own: checkpoint, gap, recovery. */
static int append_own(struct audit_writer *w, enum audit_op op,
		      int64_t result, uint64_t len)
{
	struct audit_record r = w->self;

	stamp(&r);
	r.op = op;
	r.result = result;
	r.len = len;
	return append(w, &r, op == AUDIT_CHECKPOINT);
}

static void encode_batch(struct audit_writer *w, struct plan *p)
{
	struct qrec *q, *next;

	if (p->lost && append_own(w, AUDIT_GAP, p->lost_err, p->lost))
		w->enc_lost += p->lost;	/* said by the next gap */
	for (q = p->batch; q; q = next) {
		next = q->next;
		if (!q->cancelled) {
			if (!w->pend_t_ms)
				w->pend_t_ms = q->t_ms;
			if (append(w, &q->r, false))
				w->enc_lost++;
			else if (w->since_ck >= w->conf.checkpoint_records &&
				 append_own(w, AUDIT_CHECKPOINT, 0, 0))
				w->since_ck = 0;	/* the next is due */
		}
		free(q);
	}
	p->batch = NULL;
	if (p->last_ticket)
		w->pend_ticket = p->last_ticket;
}

/* ---- the logger: the disk ---- */

static int write_pending(struct audit_writer *w)
{
	int rc;

	if (w->segfd < 0) {
		rc = aseg_create(w->dirfd, w->l_written_seq + 1, &w->fn,
				 &w->segfd);
		if (rc)
			return rc;
		w->seg_size = 0;
		w->seg_t0 = now_ms();
	}
	while (w->pend_off < w->pend_len) {
		ssize_t n = write(w->segfd, w->pend + w->pend_off,
				  w->pend_len - w->pend_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		/* What a short write left is appended next time: the file
		 * is ours alone, so the line comes out whole. */
		w->pend_off += (size_t)n;
		w->seg_size += (uint64_t)n;
	}
	return 0;
}

/*
 * Moves the pending bytes to disk, syncs as the mode says (or always when
 * force), seals when a roll is due.  Called again after a failure, it
 * goes on from where that stopped.
 */
static int commit(struct audit_writer *w, bool force)
{
	bool wrote = w->pend_off < w->pend_len;
	int rc;

	if (wrote && (rc = write_pending(w)))
		return rc;
	if (wrote) {
		w->unsynced = true;
		w->unsynced_seq = w->pend_seq;
		w->l_written_seq = w->pend_seq;
	}
	w->pend_len = w->pend_off = w->pend_n = 0;
	w->pend_t_ms = 0;
	w->l_written = w->unsynced_ticket = w->pend_ticket;
	if (w->unsynced && (w->conf.sync != AUDIT_SYNC_NONE || force ||
			    w->roll)) {
		if (fdatasync(w->segfd))
			return -errno;
		w->unsynced = false;
		w->l_synced_seq = w->unsynced_seq;
	}
	if (!w->unsynced)
		w->l_synced = w->unsynced_ticket;
	if (w->roll && w->segfd >= 0) {
		if ((rc = aseg_seal(w->segfd, &w->fn)))
			return rc;
		w->segfd = -1;
		w->seg_size = 0;
	}
	w->roll = false;
	return 0;
}

static bool ck_due(const struct audit_writer *w, uint64_t now)
{
	return w->since_ck && (w->since_ck >= w->conf.checkpoint_records ||
			       now - w->ck_t >= w->conf.checkpoint_ms);
}

static bool roll_due(const struct audit_writer *w, uint64_t now)
{
	if (w->segfd < 0 && w->pend_len == w->pend_off)
		return false;
	return w->seg_size + (w->pend_len - w->pend_off) >=
	       w->conf.segment_bytes ||
	       (w->segfd >= 0 && now - w->seg_t0 >= w->conf.segment_ms);
}

/* One round: encode what was taken, add a checkpoint if due, commit. */
static int step(struct audit_writer *w, struct plan *p)
{
	uint64_t now;

	encode_batch(w, p);
	now = now_ms();
	if (roll_due(w, now) || (p->last && (w->segfd >= 0 ||
					     w->pend_len > w->pend_off)))
		w->roll = true;
	if (ck_due(w, now) || (w->roll && w->since_ck) ||
	    (p->anchor && (w->since_ck || !w->ck_line_len))) {
		int rc = append_own(w, AUDIT_CHECKPOINT, 0, 0);

		if (rc)
			return rc;
	}
	return commit(w, p->flush || p->anchor || p->last);
}

/* ---- the logger: the loop ---- */

static bool has_work(const struct audit_writer *w, uint64_t now)
{
	if (w->nq || w->lost || w->pend_len || w->roll)
		return true;
	if (w->unsynced && w->conf.sync != AUDIT_SYNC_NONE)
		return true;
	if (w->anchor_want > w->anchor_done || w->flush_want > w->synced)
		return true;
	if (ck_due(w, now) || roll_due(w, now))
		return true;
	return w->stop && (w->since_ck || w->segfd >= 0);
}

/*
 * Under sync = batch, when the next batch may go (0: now): the window
 * after the last one, unless someone waits on the log (flush, anchor,
 * close), a batch is full, or something else falls due.
 */
static uint64_t batch_opens(const struct audit_writer *w, uint64_t now)
{
	if (w->conf.sync != AUDIT_SYNC_BATCH || w->stop || w->failing ||
	    w->lost || w->roll || w->nq >= BATCH_MAX)
		return 0;
	if (w->anchor_want > w->anchor_done || w->flush_want > w->synced)
		return 0;
	if (ck_due(w, now) || roll_due(w, now))
		return 0;
	return now < w->stepped_ms + BATCH_WINDOW_MS ?
	       w->stepped_ms + BATCH_WINDOW_MS : 0;
}

/* When a timer falls due with nothing queued. */
static uint64_t next_due(const struct audit_writer *w, uint64_t now)
{
	uint64_t due = now + IDLE_MS;

	if (w->since_ck && w->ck_t + w->conf.checkpoint_ms < due)
		due = w->ck_t + w->conf.checkpoint_ms;
	if (w->segfd >= 0 && w->seg_t0 + w->conf.segment_ms < due)
		due = w->seg_t0 + w->conf.segment_ms;
	return due;
}

/* A generous guess at a record's line: escapes, base64, the fields. */
static uint64_t line_guess(const struct qrec *q)
{
	return 2 * (q->r.path_len + q->r.path2_len +
		    (q->r.rule ? strlen(q->r.rule) : 0)) + 512;
}

/*
 * Detaches up to BATCH_MAX records, unless bytes are still pending, and
 * no more than the segment has room for (one at least): a batch is one
 * write(2) to one segment.
 */
static void take(struct audit_writer *w, struct plan *p)
{
	struct qrec *q = w->head, *last = NULL;
	uint64_t room = w->seg_size < w->conf.segment_bytes ?
			w->conf.segment_bytes - w->seg_size : 0;
	size_t n = 0;

	memset(p, 0, sizeof(*p));
	if (w->pend_len == 0) {
		while (q && n < BATCH_MAX && (!n || line_guess(q) <= room)) {
			room -= line_guess(q) < room ? line_guess(q) : room;
			last = q;
			q = q->next;
			n++;
		}
		if (last) {
			p->batch = w->head;
			last->next = NULL;
			w->head = q;
			if (!q)
				w->tail = NULL;
			w->nq -= n;
			p->last_ticket = w->taken = last->ticket;
		}
		p->lost = w->lost;
		p->lost_err = w->lost_err;
		w->lost = 0;
		w->lost_err = 0;
	}
	p->anchor = w->anchor_want > w->anchor_done ? w->anchor_want : 0;
	p->flush = w->flush_want > w->synced;
	p->last = w->stop && !w->nq;
}

static void fail(struct audit_writer *w, int rc, struct plan *p)
{
	if (!w->failing)
		log_msg(LOG_KIND_IO, LOG_ERR, "audit: %s: cannot write the "
			"log (%s); %s until it can", w->dir, strerror(-rc),
			w->conf.deny_on_failure ? "refusing operations" :
			"records are lost");
	/* Retries of one failure are that failure: told once. */
	if (!w->failing && !w->unreported)
		w->unreported = rc;
	w->failing = true;
	w->err = rc;
	w->st.failures++;
	w->retry_ms = now_ms() + RETRY_MS;
	if (p->anchor > w->anchor_done) {
		w->anchor_done = p->anchor;
		w->anchor_rc = -EIO;
	}
}

/* Publishes a step's outcome to the callers. */
static void settle(struct audit_writer *w, int rc, struct plan *p)
{
	if (rc) {
		fail(w, rc, p);
	} else {
		if (w->failing)
			log_msg(LOG_KIND_IO, LOG_NOTICE, "audit: %s: the log "
				"is written again", w->dir);
		w->failing = false;
		w->err = 0;
		if (p->anchor > w->anchor_done) {
			memcpy(w->anchor, w->ck_line, w->ck_line_len);
			w->anchor_len = w->ck_line_len;
			w->anchor_rc = 0;
			w->anchor_done = p->anchor;
		}
		w->st.checkpoint_seq = w->ck_seq;
		w->st.checkpoint_ts = w->ck_ts;
	}
	if (w->enc_lost) {
		w->st.dropped += w->enc_lost;
		w->lost += w->enc_lost;
		w->lost_err = w->lost_err ? w->lost_err : -ENOMEM;
		w->enc_lost = 0;
	}
	w->written = w->l_written;
	w->synced = w->l_synced;
	w->st.unflagged = w->fn.unflagged;
	w->st.written = w->l_written_seq;
	w->st.synced = w->l_synced_seq;
	w->pend_records = w->pend_n;
	w->pend_oldest_ms = w->pend_len ? w->pend_t_ms : 0;
	pthread_cond_broadcast(&w->done);
}

/* Whether to go round again now; waits for work or a timer if not. */
static bool ready_to_step(struct audit_writer *w, bool *quit)
{
	uint64_t now = now_ms();

	*quit = false;
	if (w->failing) {
		if (w->stop && now >= w->give_up_ms) {
			*quit = true;
			return false;
		}
		if (now < w->retry_ms) {
			wait_until(&w->wake, &w->mu, w->stop && w->give_up_ms <
				   w->retry_ms ? w->give_up_ms : w->retry_ms);
			return false;
		}
		return true;
	}
	if (has_work(w, now)) {
		uint64_t opens = batch_opens(w, now);

		if (!opens)
			return true;
		w->in_window = true;
		wait_until(&w->wake, &w->mu, opens);
		w->in_window = false;
		return false;
	}
	if (w->stop) {
		*quit = true;
		return false;
	}
	wait_until(&w->wake, &w->mu, next_due(w, now));
	return false;
}

static void *logger_main(void *arg)
{
	struct audit_writer *w = arg;
	struct plan p;
	bool quit;
	int rc;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		if (!ready_to_step(w, &quit)) {
			if (quit)
				break;
			continue;
		}
		take(w, &p);
		pthread_mutex_unlock(&w->mu);
		rc = step(w, &p);
		pthread_mutex_lock(&w->mu);
		w->stepped_ms = now_ms();
		settle(w, rc, &p);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- open and close ---- */

static int check_conf(const struct audit_writer_conf *c)
{
	if (!c || !c->dir || !c->dir[0] || !c->key ||
	    (unsigned)c->sync > AUDIT_SYNC_NONE)
		return -EINVAL;
	return 0;
}

static void set_defaults(struct audit_writer_conf *c)
{
	if (!c->queue_max)
		c->queue_max = DEF_QUEUE_MAX;
	if (!c->segment_bytes)
		c->segment_bytes = DEF_SEGMENT_BYTES;
	if (!c->segment_ms)
		c->segment_ms = DEF_SEGMENT_MS;
	if (!c->checkpoint_records)
		c->checkpoint_records = DEF_CHECKPOINT_RECORDS;
	if (!c->checkpoint_ms)
		c->checkpoint_ms = DEF_CHECKPOINT_MS;
}

/* The audit.pub already in the folder. */
static int read_pub(int dirfd, uint8_t pub[CRYPTO_ED25519_PUB_LEN])
{
	char buf[AUDIT_PUB_TEXT_LEN + 1];
	size_t got;
	int fd = openat(dirfd, AUDIT_PUB_FILE, O_RDONLY | O_CLOEXEC |
			O_NOFOLLOW);
	int rc;

	if (fd < 0)
		return -errno;
	rc = ioutil_read_all(fd, buf, sizeof(buf), &got);
	close(fd);
	if (!rc && audit_pub_parse(buf, got, pub))
		rc = -EKEYREJECTED;
	return rc;
}

/*
 * audit.pub must name our key; when missing it is written (create), after
 * the log's tail has shown it was ours (check_last_sig).
 */
static int check_pub(struct audit_writer *w, bool create)
{
	uint8_t pub[CRYPTO_ED25519_PUB_LEN], have[CRYPTO_ED25519_PUB_LEN];
	char text[AUDIT_PUB_TEXT_LEN + 1];
	int rc = crypto_ed25519_public(w->conf.key, pub);

	if (rc)
		return rc;
	audit_pub_format(pub, text);
	rc = create ? atomicfile_create(w->dirfd, AUDIT_PUB_FILE, text,
					AUDIT_PUB_TEXT_LEN, 0444) : -EEXIST;
	if (rc != -EEXIST)
		return rc;
	rc = read_pub(w->dirfd, have);
	if (rc == -ENOENT && !create)
		return 0;
	if (!rc && memcmp(have, pub, sizeof(pub)))
		rc = -EKEYREJECTED;
	if (rc == -EKEYREJECTED)
		log_msg(LOG_KIND_AUTH, LOG_ERR, "audit: %s/%s is not this "
			"volume's audit key", w->dir, AUDIT_PUB_FILE);
	return rc;
}

static int open_dir(struct audit_writer *w)
{
	if (mkdir(w->dir, 0700) && errno != EEXIST)
		return -errno;
	w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return w->dirfd < 0 ? -errno : 0;
}

static void init_self(struct audit_writer *w)
{
	char comm[17] = "";

	memset(&w->self, 0, sizeof(w->self));
	w->self.uid = (uint32_t)getuid();
	w->self.gid = (uint32_t)getgid();
	w->self.pid = (int32_t)getpid();
	prctl(PR_GET_NAME, comm);
	memcpy(w->self.comm, comm, AUDIT_COMM_LEN - 1);
}

/*
 * After a crash: a recovery record (result: the bytes cut) opens a new
 * segment, its prev naming the last good record, and a checkpoint seals
 * what the dead daemon left unsigned.
 */
static int write_recovery(struct audit_writer *w, uint64_t cut)
{
	struct plan p = { .last = false };
	int rc = append_own(w, AUDIT_RECOVERY, (int64_t)cut, 0);

	if (!rc)
		rc = append_own(w, AUDIT_CHECKPOINT, 0, 0);
	if (!rc)
		rc = commit(w, true);
	if (!rc) {
		pthread_mutex_lock(&w->mu);
		settle(w, 0, &p);
		pthread_mutex_unlock(&w->mu);
	}
	return rc;
}

static int init_sync(struct audit_writer *w)
{
	pthread_condattr_t ca;
	int rc;

	if ((rc = pthread_mutex_init(&w->mu, NULL)))
		return -rc;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&w->wake, &ca);
	if (!rc && (rc = pthread_cond_init(&w->done, &ca)))
		pthread_cond_destroy(&w->wake);
	pthread_condattr_destroy(&ca);
	if (rc)
		pthread_mutex_destroy(&w->mu);
	return -rc;
}

/*
 * A log whose audit.pub is gone is still not continued under another key:
 * its last checkpoint must verify under ours.
 */
static int check_last_sig(struct audit_writer *w, const struct aseg_tail *t)
{
	uint8_t pub[CRYPTO_ED25519_PUB_LEN], msg[AUDIT_SIG_MSG_LEN];
	int rc = crypto_ed25519_public(w->conf.key, pub);

	if (rc || !t->last_ck)
		return rc;
	audit_checkpoint_msg(t->chain.seq, t->ck_prev, msg);
	if (!crypto_ed25519_verify(pub, msg, sizeof(msg), t->ck_sig))
		return 0;
	log_msg(LOG_KIND_AUTH, LOG_ERR, "audit: %s: the log's last checkpoint "
		"(seq %" PRIu64 ") is not signed by this volume's audit key",
		w->dir, t->chain.seq);
	return -EKEYREJECTED;
}

/* Mends the tail, carries the chain on, writes a recovery if due. */
static int start_chain(struct audit_writer *w,
		       struct audit_writer_opened *o)
{
	struct aseg_tail t;
	char err[512];
	bool recover;
	int rc = aseg_mend(w->dirfd, &t, &w->fn, err, sizeof(err));

	if (rc) {
		log_msg(LOG_KIND_IO, LOG_ERR, "audit: %s/%s", w->dir, err);
		return rc;
	}
	if ((rc = check_last_sig(w, &t)))
		return rc;
	w->chain = t.chain;
	w->ck_t = now_ms();
	w->l_written_seq = w->l_synced_seq = t.chain.seq;
	recover = (t.any && !t.clean) || t.cut;
	if (o) {
		o->recovered = recover;
		o->last_seq = t.chain.seq;
		o->cut_bytes = t.cut;
	}
	if (!recover)
		return 0;
	log_msg(LOG_KIND_IO, LOG_WARNING, "audit: %s: the last mount did not "
		"seal the log; recovering after seq %" PRIu64 " (%" PRIu64
		" torn bytes cut)", w->dir, t.chain.seq, t.cut);
	return write_recovery(w, t.cut);
}

static void free_writer(struct audit_writer *w)
{
	struct qrec *q, *next;

	for (q = w->head; q; q = next) {
		next = q->next;
		free(q);
	}
	if (w->segfd >= 0)
		close(w->segfd);
	if (w->dirfd >= 0)
		close(w->dirfd);
	free(w->pend);
	free(w->dir);
	free(w);
}

int audit_writer_open(const struct audit_writer_conf *conf,
		      struct audit_writer **out,
		      struct audit_writer_opened *opened)
{
	struct audit_writer *w;
	int rc = check_conf(conf);

	if (rc)
		return rc;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->conf = *conf;
	set_defaults(&w->conf);
	w->dirfd = w->segfd = -1;
	w->dir = strdup(conf->dir);
	w->conf.dir = w->dir;
	init_self(w);
	if (!w->dir)
		rc = -ENOMEM;
	else
		rc = init_sync(w);
	if (rc) {
		free_writer(w);
		return rc;
	}
	if (!(rc = open_dir(w)) && !(rc = check_pub(w, false)) &&
	    !(rc = start_chain(w, opened)) && !(rc = check_pub(w, true))) {
		w->st.unflagged = w->fn.unflagged;
		rc = -pthread_create(&w->thread, NULL, logger_main, w);
	}
	if (rc) {
		pthread_cond_destroy(&w->wake);
		pthread_cond_destroy(&w->done);
		pthread_mutex_destroy(&w->mu);
		free_writer(w);
		return rc;
	}
	*out = w;
	return 0;
}

int audit_writer_close(struct audit_writer *w)
{
	int rc;

	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	w->give_up_ms = now_ms() + CLOSE_GIVE_UP_MS;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	rc = w->unreported;
	if (!rc && (w->failing || w->nq || w->segfd >= 0))
		rc = w->err ? w->err : -EIO;
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->done);
	pthread_mutex_destroy(&w->mu);
	free_writer(w);
	return rc;
}
