/*
 * audit_writer_impl.h — what the writer's two files share: the segment
 * files on disk (audit_seg.c: create, seal, the inode flags, mending the
 * tail a crash left) under the queue and logger thread (audit_writer.c).
 * The segment layer knows nothing of threads, queues or sync modes.
 */
#ifndef PHIFS_AUDIT_WRITER_IMPL_H
#define PHIFS_AUDIT_WRITER_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "phifs/audit.h"

/* How many segments the inode flags could not be set on; logged once. */
struct aseg_flagnote {
	uint64_t unflagged;
	bool logged;
};

/* What aseg_mend() found at the log's end. */
struct aseg_tail {
	struct audit_chain chain;	/* continues from the last good record */
	bool any;			/* the folder held a record */
	bool clean;			/* ended by a checkpoint, sealed */
	uint64_t cut;			/* bytes of a torn record cut */
	uint64_t segs;			/* segment files found */
	bool last_ck;			/* the last good record is a
					 * checkpoint: its seq and prev in
					 * chain.seq and ck_prev, and sig */
	uint8_t ck_prev[AUDIT_HASH_LEN];
	uint8_t ck_sig[CRYPTO_ED25519_SIG_LEN];
};

/*
 * Finds the newest segment in dirfd, cuts a torn last record (no '\n', or
 * a last line that does not parse), removes a segment left empty, and
 * seals the newest segment if it was not (it is never appended to again).
 * -EBADMSG (why in err) when the tail is damaged past one record.
 */
int aseg_mend(int dirfd, struct aseg_tail *t, struct aseg_flagnote *fn,
	      char *err, size_t err_len);

/* Creates seg-<first>.jsonl, O_APPEND, append-only where allowed. */
int aseg_create(int dirfd, uint64_t first, struct aseg_flagnote *fn,
		int *fd);

/*
 * Makes fd's segment durable, read-only (0444) and immutable where
 * allowed, and closes it (also on error).
 */
int aseg_seal(int fd, struct aseg_flagnote *fn);

#endif
