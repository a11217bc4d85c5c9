/*
 * audit_testlog.h — a log made by the real record and chain code for the
 * audit tests: segments in memory, checkpoints signed with a test key,
 * hostile names among the paths; and writing one to a folder.
 */
#ifndef AUDIT_TESTLOG_H
#define AUDIT_TESTLOG_H

#include <stdbool.h>

#include "phifs/audit.h"

#define TESTLOG_MAX_SEGS 64

struct testlog {
	struct audit_segment segs[TESTLOG_MAX_SEGS];
	size_t n;
	char anchor[AUDIT_MAX_LINE];	/* the last checkpoint line */
	size_t anchor_len;
};

/*
 * nsegs segments of per_seg records each, every segment closed by a
 * checkpoint, but the last one when `open_tail` (its records unsealed).
 */
int testlog_make(struct testlog *t, const struct crypto_key *key,
		 unsigned nsegs, unsigned per_seg, bool open_tail);
/* The same with pseudonymous paths under path_key (NULL: names). */
int testlog_make_with(struct testlog *t, const struct crypto_key *key,
		      unsigned nsegs, unsigned per_seg, bool open_tail,
		      const struct crypto_key *path_key);
void testlog_free(struct testlog *t);
/* Writes the segments and audit.pub of key into an existing folder. */
int testlog_write_dir(const struct testlog *t, const struct crypto_key *key,
		      const char *dir);
/* The i-th hostile name (any bytes but NUL), for paths. */
size_t testlog_name(unsigned i, char *buf, size_t cap);
#define TESTLOG_NAMES 6

#endif
