/*
 * bench_audit.c — how fast audit_verify() checks a log in memory: N read
 * records of typical size (a short path, a SHA-256), a checkpoint every
 * 1,000 records, segments of 100,000.  Prints "records_per_s N" for
 * tools/bench.  One thread.  Not a test: it asserts nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phifs/audit.h"

#define PER_SEG 100000
#define EVERY 1000

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what, int rc)
{
	fprintf(stderr, "bench_audit: %s: %s\n", what, strerror(-rc));
	return 1;
}

/* Appends one record to segment g (its buffer big enough). */
static int add(struct audit_chain *c, struct audit_record *r,
	       const struct crypto_key *key, struct audit_segment *g,
	       char *line)
{
	size_t n;
	int rc = (c->seq + 1) % EVERY == 0 ?
		 audit_chain_checkpoint(c, r, key, line, AUDIT_MAX_LINE, &n) :
		 audit_chain_append(c, r, line, AUDIT_MAX_LINE, &n);

	if (!rc) {
		memcpy((char *)g->buf + g->len, line, n);
		g->len += n;
	}
	return rc;
}

static int make(struct audit_segment *segs, size_t nsegs, uint64_t total,
		const struct crypto_key *key)
{
	static char line[AUDIT_MAX_LINE], path[64], names[1024][32];
	struct audit_chain c;
	struct audit_record r = { .uid = 1000, .gid = 100, .pid = 4242,
				  .comm = "emr-viewer", .len = 4096 };
	int rc;

	audit_chain_init(&c);
	for (size_t s = 0; s < nsegs; s++) {
		segs[s].name = names[s];
		audit_segment_name(c.seq + 1, names[s]);
		segs[s].buf = malloc((size_t)PER_SEG * 1024);
		if (!segs[s].buf)
			return -ENOMEM;
		for (uint64_t i = 0; i < PER_SEG && c.seq < total; i++) {
			r.op = AUDIT_READ;
			r.ts_sec = 1796601600 + (int64_t)(c.seq / 1000);
			r.ts_nsec = (uint32_t)(c.seq * 7919 % 1000000000);
			r.path_len = (size_t)snprintf(path, sizeof(path),
				"/ward7/patient-%06u/notes.txt",
				(unsigned)(c.seq % 5000));
			r.path = path;
			r.off = c.seq * 4096;
			r.result = 4096;
			memset(r.sha256, (int)c.seq, sizeof(r.sha256));
			if ((rc = add(&c, &r, key, &segs[s], line)))
				return rc;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	size_t nsegs = (size_t)((total + PER_SEG - 1) / PER_SEG);
	uint8_t pub[CRYPTO_ED25519_PUB_LEN];
	struct audit_segment *segs;
	struct audit_verdict v;
	struct crypto_key *key;
	double t0;
	int rc;

	if (total == 0 || nsegs > 1024)
		return die("records: 1 .. 102,400,000", -EINVAL);
	segs = calloc(nsegs, sizeof(*segs));
	if (!segs || (rc = crypto_ed25519_keygen(&key, pub)) ||
	    (rc = make(segs, nsegs, total, key)))
		return die("making the log", segs ? rc : -ENOMEM);
	t0 = now();
	rc = audit_verify(segs, nsegs, pub, NULL, 0, &v);
	if (rc)
		return die(v.reason, rc);
	printf("records %" PRIu64 "\nrecords_per_s %.0f\n", v.records,
	       (double)v.records / (now() - t0));
	for (size_t s = 0; s < nsegs; s++)
		free((char *)segs[s].buf);
	free(segs);
	crypto_key_free(key);
	return 0;
}
