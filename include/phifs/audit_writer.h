/*
 * audit_writer.h — the integrity log on disk: request threads hand records
 * to a bounded queue and never touch the log's files; one logger thread
 * chains them (audit.h), writes them in batches to O_APPEND segments,
 * group-commits, rolls segments by size and age, signs checkpoints, seals
 * closed segments, and on open mends the tail a crash left behind.
 *
 * Knows nothing of FUSE, the vfs, policy or paths' meaning: it is handed
 * finished records.  The signing key is borrowed from the caller
 * (keys_audit_key()).
 *
 * Functions return 0 or -errno.  audit_writer_put(), _ready(), _flush(),
 * _anchor() and _stats() are safe from any thread; open and close are not.
 */
#ifndef PHIFS_AUDIT_WRITER_H
#define PHIFS_AUDIT_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phifs/audit.h"
#include "phifs/crypto.h"

enum audit_sync {
	AUDIT_SYNC_BATCH,	/* group commit: fdatasync per batch */
	AUDIT_SYNC_ALWAYS,	/* put() returns once its record is durable */
	AUDIT_SYNC_NONE,	/* written, never synced by us */
};

struct audit_writer_conf {
	const char *dir;		/* created 0700 if missing */
	enum audit_sync sync;
	bool deny_on_failure;		/* on_failure = deny (default true) */
	size_t queue_max;		/* records queued before put() fails;
					 * 0: default */
	uint64_t segment_bytes;		/* roll after; 0: default */
	uint64_t segment_ms;		/* roll after; 0: default */
	uint64_t checkpoint_records;	/* sign after; 0: default */
	uint64_t checkpoint_ms;		/* sign after; 0: default */
	const struct crypto_key *key;	/* Ed25519 private; borrowed */
};

/* What open found and did. */
struct audit_writer_opened {
	bool recovered;			/* a torn or unsealed tail was mended
					 * and a recovery record written */
	uint64_t last_seq;		/* last good record before this mount */
	uint64_t cut_bytes;		/* bytes of a torn record cut */
};

struct audit_writer_stats {
	uint64_t queued;		/* records waiting now */
	uint64_t written, synced;	/* last seq written, last seq durable */
	uint64_t lag_ms;		/* age of the oldest record queued */
	uint64_t checkpoint_seq;	/* last checkpoint's seq; 0: none */
	int64_t checkpoint_ts;		/* its time, seconds since the epoch */
	uint64_t failures;		/* write or sync errors seen */
	uint64_t refused;		/* put() refusals (fail closed) */
	uint64_t dropped;		/* records lost under on_failure = allow */
	bool failing;			/* the log cannot keep records now */
	uint64_t unflagged;		/* times the file system or our
					 * privileges refused the append-only
					 * or immutable inode flag */
};

struct audit_writer;

/*
 * Opens the log folder conf->dir: writes audit.pub beside the segments
 * (refusing -EKEYREJECTED if one is there for another key), checks the
 * newest segment's tail, cuts a torn last record, and starts a new segment
 * with a recovery record when the last mount did not end sealed.  Then
 * starts the logger thread.
 */
int audit_writer_open(const struct audit_writer_conf *conf,
		      struct audit_writer **out,
		      struct audit_writer_opened *opened);

/*
 * Hands r to the log; r's strings need live only during the call (they
 * are copied).  seq, prev and hash are set by the writer; ts too when
 * r->ts_sec is 0.  Returns 0 once the record is queued (under
 * AUDIT_SYNC_ALWAYS: once it is durable), or -EIO when the log cannot
 * keep it and conf->deny_on_failure says the operation must be refused.
 * Under on_failure = allow it returns 0 and the loss is counted, and
 * recorded as a gap once the log works again.  -EINVAL for an op the
 * writer keeps for itself (checkpoint, recovery, gap) or a NUL in a path,
 * -ENAMETOOLONG for a path over 4,096 bytes or a rule over 1,024.
 */
int audit_writer_put(struct audit_writer *w, const struct audit_record *r);

/*
 * 0 if a record put now would be kept, -EIO if not (the log is failing or
 * its queue full): under on_failure = deny it lets a caller refuse before
 * it moves any plaintext; under allow the caller goes on, and the record
 * put is counted as dropped.
 */
int audit_writer_ready(struct audit_writer *w);

/* Waits until everything put so far is durable (at most timeout_ms). */
int audit_writer_flush(struct audit_writer *w, unsigned timeout_ms);

/*
 * Writes a checkpoint now, waits for it to be durable, and copies its line
 * (without '\n') into buf: the anchor for safekeeping elsewhere.
 */
int audit_writer_anchor(struct audit_writer *w, char *buf, size_t cap,
			size_t *len);

void audit_writer_stats(struct audit_writer *w, struct audit_writer_stats *s);

/*
 * Drains the queue, writes a final checkpoint, seals the last segment and
 * stops the thread.  The caller puts its unmount record first.  Returns the
 * first error the log met that was not reported yet.
 */
int audit_writer_close(struct audit_writer *w);

#endif
