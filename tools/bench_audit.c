/*
 * bench_audit.c — how fast audit_verify() checks a log in memory: N read
 * records of typical size (a short path, a SHA-256), a checkpoint every
 * 1,000 records, segments of 100,000; and how fast audit_chain_append()
 * encodes such records (the writer's cost per record).  Prints
 * "records_per_s N" (verify) and "encode_per_s N", each also per second
 * of the thread's own CPU time ("..._cpu"), which a shared machine
 * disturbs less, for tools/bench; and "pseudonym_per_cpu_s", paths of
 * three components made pseudonymous (`paths = pseudonymous`).  One
 * thread.  Not a test: it asserts nothing.
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

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall and CPU seconds since the last call. */
static void lap(double t[2])
{
	double w = clock_s(CLOCK_MONOTONIC), c = clock_s(CLOCK_THREAD_CPUTIME_ID);

	t[0] = w - t[0];
	t[1] = c - t[1];
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

/* The typical read record number seq would be. */
static void typical(struct audit_record *r, uint64_t seq, char *path,
		    size_t cap)
{
	r->op = AUDIT_READ;
	r->ts_sec = 1796601600 + (int64_t)(seq / 1000);
	r->ts_nsec = (uint32_t)(seq * 7919 % 1000000000);
	r->path_len = (size_t)snprintf(path, cap,
				       "/ward7/patient-%06u/notes.txt",
				       (unsigned)(seq % 5000));
	r->path = path;
	r->off = seq * 4096;
	r->result = 4096;
	memset(r->sha256, (int)seq, sizeof(r->sha256));
}

static const struct audit_record proto = {
	.uid = 1000, .gid = 100, .pid = 4242, .comm = "emr-viewer",
	.len = 4096,
};

static int make(struct audit_segment *segs, size_t nsegs, uint64_t total,
		const struct crypto_key *key)
{
	static char line[AUDIT_MAX_LINE], path[64], names[1024][32];
	struct audit_chain c;
	struct audit_record r = proto;
	int rc;

	audit_chain_init(&c);
	for (size_t s = 0; s < nsegs; s++) {
		segs[s].name = names[s];
		audit_segment_name(c.seq + 1, names[s]);
		segs[s].buf = malloc((size_t)PER_SEG * 1024);
		if (!segs[s].buf)
			return -ENOMEM;
		for (uint64_t i = 0; i < PER_SEG && c.seq < total; i++) {
			typical(&r, c.seq, path, sizeof(path));
			if ((rc = add(&c, &r, key, &segs[s], line)))
				return rc;
		}
	}
	return 0;
}

/* Encoding alone: the chain appends, no checkpoint, no copy. */
static int encode(uint64_t total, double t[2])
{
	static char line[AUDIT_MAX_LINE], path[64];
	struct audit_record r = proto;
	struct audit_chain c;
	size_t n;
	int rc;

	audit_chain_init(&c);
	lap(t);
	while (c.seq < total) {
		typical(&r, c.seq, path, sizeof(path));
		if ((rc = audit_chain_append(&c, &r, line, sizeof(line), &n)))
			return rc;
	}
	lap(t);
	return 0;
}

/* Pseudonymous paths: the typical path's three components, HMAC each. */
static int pseudonymize(uint64_t total, double t[2])
{
	static char path[64], out[256];
	struct crypto_key *k = crypto_key_random();
	size_t n, len;
	int rc = k ? 0 : -ENOMEM;

	lap(t);
	for (uint64_t i = 0; !rc && i < total; i++) {
		n = (size_t)snprintf(path, sizeof(path),
				     "/ward7/patient-%06u/notes.txt",
				     (unsigned)(i % 5000));
		rc = audit_path_pseudonym(k, path, n, out, sizeof(out), &len);
	}
	lap(t);
	crypto_key_free(k);
	return rc;
}

int main(int argc, char **argv)
{
	uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	size_t nsegs = (size_t)((total + PER_SEG - 1) / PER_SEG);
	uint8_t pub[CRYPTO_ED25519_PUB_LEN];
	struct audit_segment *segs;
	struct audit_verdict v;
	struct crypto_key *key;
	double t[2] = { 0, 0 }, e[2] = { 0, 0 }, p[2] = { 0, 0 };
	int rc;

	if (total == 0 || nsegs > 1024)
		return die("records: 1 .. 102,400,000", -EINVAL);
	segs = calloc(nsegs, sizeof(*segs));
	if (!segs || (rc = crypto_ed25519_keygen(&key, pub)) ||
	    (rc = make(segs, nsegs, total, key)))
		return die("making the log", segs ? rc : -ENOMEM);
	lap(t);
	rc = audit_verify(segs, nsegs, pub, NULL, 0, &v);
	lap(t);
	if (rc)
		return die(v.reason, rc);
	if ((rc = encode(total, e)))
		return die("encoding", rc);
	if ((rc = pseudonymize(total, p)))
		return die("pseudonyms", rc);
	printf("records %" PRIu64 "\nrecords_per_s %.0f\n"
	       "records_per_cpu_s %.0f\nencode_per_s %.0f\n"
	       "encode_per_cpu_s %.0f\npseudonym_per_cpu_s %.0f\n",
	       v.records, (double)v.records / t[0], (double)v.records / t[1],
	       (double)total / e[0], (double)total / e[1],
	       (double)total / p[1]);
	for (size_t s = 0; s < nsegs; s++)
		free((char *)segs[s].buf);
	free(segs);
	crypto_key_free(key);
	return 0;
}
