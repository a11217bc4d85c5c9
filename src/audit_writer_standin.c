/*
 * audit_writer_standin.c — A STAND-IN for the integrity log's writer, so
 * that its callers (the daemon, the record hook) can be built and tested
 * before the real one (src/audit_writer.c) lands; at the merge that file
 * replaces this one, behind the same header (audit_writer.h).
 *
 * Synchronous: put() encodes, writes and (per the sync mode) fdatasyncs
 * under one mutex on the caller's thread.  No queue, no logger thread, no
 * segment roll, no crash recovery: one segment, continued across mounts,
 * a checkpoint every conf->checkpoint_records records and at close.
 */
#include "phifs/audit_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "phifs/ioutil.h"

#define STANDIN_CHECKPOINT_RECORDS 1000

struct audit_writer {
	pthread_mutex_t lock;
	int fd;				/* the segment, O_APPEND */
	struct audit_chain chain;
	struct audit_writer_conf conf;
	uint64_t since_checkpoint;
	struct audit_writer_stats st;
	char line[AUDIT_MAX_LINE + 1];
};

static void now(struct audit_record *r)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	r->ts_sec = ts.tv_sec;
	r->ts_nsec = (uint32_t)ts.tv_nsec;
}

/* audit.pub beside the log: written once, refused if for another key. */
static int put_pub(int dfd, const struct crypto_key *key)
{
	uint8_t pub[CRYPTO_ED25519_PUB_LEN], had[CRYPTO_ED25519_PUB_LEN];
	char text[AUDIT_PUB_TEXT_LEN + 1], old[AUDIT_PUB_TEXT_LEN + 8];
	int rc = crypto_ed25519_public(key, pub), fd;
	ssize_t n;

	if (rc)
		return rc;
	audit_pub_format(pub, text);
	fd = openat(dfd, AUDIT_PUB_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		n = read(fd, old, sizeof(old));
		close(fd);
		if (n < 0 || audit_pub_parse(old, (size_t)n, had))
			return -EKEYREJECTED;
		return memcmp(had, pub, sizeof(pub)) ? -EKEYREJECTED : 0;
	}
	fd = openat(dfd, AUDIT_PUB_FILE, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC | O_NOFOLLOW, 0444);
	if (fd < 0)
		return -errno;
	rc = ioutil_write_all(fd, text, strlen(text));
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

/* Carries the chain on from the last line of the one segment, if any. */
static int resume(struct audit_writer *w, int dfd, const char *name)
{
	struct audit_record r;
	char err[128];
	off_t size, at;
	ssize_t n;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	size = lseek(fd, 0, SEEK_END);
	at = size > AUDIT_MAX_LINE + 1 ? size - AUDIT_MAX_LINE - 1 : 0;
	n = pread(fd, w->line, (size_t)(size - at), at);
	close(fd);
	if (n <= 0 || w->line[n - 1] != '\n')
		return n < 0 ? -errno : n ? -EUCLEAN : 0;
	w->line[--n] = 0;
	{
		char *last = memrchr(w->line, '\n', (size_t)n);
		size_t off = last ? (size_t)(last - w->line) + 1 : 0;

		rc = audit_record_parse(w->line + off, (size_t)n - off, &r,
					err, sizeof(err));
	}
	if (rc)
		return -EUCLEAN;	/* no recovery in the stand-in */
	w->chain.seq = r.seq;
	memcpy(w->chain.head, r.hash, AUDIT_HASH_LEN);
	audit_record_release(&r);
	return 0;
}

int audit_writer_open(const struct audit_writer_conf *conf,
		      struct audit_writer **out,
		      struct audit_writer_opened *opened)
{
	char name[AUDIT_SEG_NAME_LEN + 1];
	struct audit_writer *w = calloc(1, sizeof(*w));
	int dfd = -1, rc;

	if (!w)
		return -ENOMEM;
	w->conf = *conf;
	w->fd = -1;
	audit_chain_init(&w->chain);
	pthread_mutex_init(&w->lock, NULL);
	memset(opened, 0, sizeof(*opened));
	if (mkdir(conf->dir, 0700) && errno != EEXIST) {
		rc = -errno;
		goto fail;
	}
	dfd = open(conf->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = dfd < 0 ? -errno : put_pub(dfd, conf->key);
	audit_segment_name(1, name);
	if (!rc)
		rc = resume(w, dfd, name);
	if (!rc) {
		w->fd = openat(dfd, name, O_WRONLY | O_CREAT | O_APPEND |
			       O_CLOEXEC | O_NOFOLLOW, 0600);
		rc = w->fd < 0 ? -errno : 0;
	}
	if (dfd >= 0)
		close(dfd);
	if (rc)
		goto fail;
	opened->last_seq = w->chain.seq;
	w->st.written = w->st.synced = w->chain.seq;
	*out = w;
	return 0;
fail:
	pthread_mutex_destroy(&w->lock);
	free(w);
	return rc;
}

/* Writes the line in w->line of len bytes; under lock. */
static int write_line(struct audit_writer *w, size_t len, bool sync)
{
	int rc = ioutil_write_all(w->fd, w->line, len);

	if (!rc && sync && fdatasync(w->fd))
		rc = -errno;
	if (rc) {
		w->st.failures++;
		w->st.failing = true;
		return rc;
	}
	w->st.failing = false;
	w->st.written = w->chain.seq;
	if (sync)
		w->st.synced = w->chain.seq;
	return 0;
}

static int checkpoint_locked(struct audit_writer *w)
{
	struct audit_record r = { .pid = (int32_t)getpid() };
	size_t len;
	int rc;

	now(&r);
	snprintf(r.comm, sizeof(r.comm), "phifs");
	rc = audit_chain_checkpoint(&w->chain, &r, w->conf.key, w->line,
				    sizeof(w->line), &len);
	if (!rc)
		rc = write_line(w, len, w->conf.sync != AUDIT_SYNC_NONE);
	if (!rc) {
		w->st.checkpoint_seq = w->chain.seq;
		w->st.checkpoint_ts = r.ts_sec;
		w->since_checkpoint = 0;
	}
	return rc;
}

int audit_writer_put(struct audit_writer *w, const struct audit_record *in)
{
	struct audit_record r = *in;
	uint64_t every = w->conf.checkpoint_records ?
				 w->conf.checkpoint_records :
				 STANDIN_CHECKPOINT_RECORDS;
	size_t len;
	int rc;

	if (!r.ts_sec)
		now(&r);
	pthread_mutex_lock(&w->lock);
	rc = audit_chain_append(&w->chain, &r, w->line, sizeof(w->line),
				&len);
	if (!rc)
		rc = write_line(w, len, w->conf.sync == AUDIT_SYNC_ALWAYS);
	if (!rc && ++w->since_checkpoint >= every)
		rc = checkpoint_locked(w);
	if (rc && !w->conf.deny_on_failure) {
		w->st.dropped++;
		rc = 0;
	} else if (rc) {
		w->st.refused++;
		rc = -EIO;
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int audit_writer_ready(struct audit_writer *w)
{
	bool failing;

	pthread_mutex_lock(&w->lock);
	failing = w->st.failing && w->conf.deny_on_failure;
	pthread_mutex_unlock(&w->lock);
	return failing ? -EIO : 0;
}

int audit_writer_flush(struct audit_writer *w, unsigned timeout_ms)
{
	int rc = 0;

	(void)timeout_ms;	/* synchronous: nothing waits */
	pthread_mutex_lock(&w->lock);
	if (fdatasync(w->fd))
		rc = -errno;
	else
		w->st.synced = w->st.written;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int audit_writer_anchor(struct audit_writer *w, char *buf, size_t cap,
			size_t *len)
{
	int rc;

	pthread_mutex_lock(&w->lock);
	rc = checkpoint_locked(w);
	if (!rc && fdatasync(w->fd))
		rc = -errno;
	if (!rc) {
		char *nl = memchr(w->line, '\n', sizeof(w->line));
		size_t n = nl ? (size_t)(nl - w->line) : 0;

		if (n + 1 > cap) {
			rc = -ENOSPC;
		} else {
			memcpy(buf, w->line, n);
			buf[n] = 0;
			*len = n;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void audit_writer_stats(struct audit_writer *w, struct audit_writer_stats *s)
{
	pthread_mutex_lock(&w->lock);
	*s = w->st;
	pthread_mutex_unlock(&w->lock);
}

int audit_writer_close(struct audit_writer *w)
{
	int rc;

	if (!w)
		return 0;
	pthread_mutex_lock(&w->lock);
	rc = checkpoint_locked(w);
	if (!rc && fdatasync(w->fd))
		rc = -errno;
	pthread_mutex_unlock(&w->lock);
	close(w->fd);
	pthread_mutex_destroy(&w->lock);
	explicit_bzero(w->line, sizeof(w->line));
	free(w);
	return rc;
}
