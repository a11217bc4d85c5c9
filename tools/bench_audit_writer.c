/*
 * bench_audit_writer.c — how many records a second the integrity log's
 * writer keeps: THREADS threads put N write records each (a short path, a
 * SHA-256) into a fresh log under DIR, then close seals it.  Prints
 * "records_per_s N" and "put_us_mean N" (mean time in put()).  Not a
 * test: it asserts nothing.  DIR must not exist yet.
 * Usage: phifs-bench-audit-writer DIR [batch|always|none] [THREADS] [N]
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phifs/audit_writer.h"

struct worker {
	struct audit_writer *w;
	unsigned long n;
	double put_s;
	int rc;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *work(void *arg)
{
	struct worker *k = arg;
	struct audit_record r = {
		.uid = 1000, .gid = 100, .pid = 4242, .comm = "bench",
		.op = AUDIT_WRITE, .path = "/patients/1001/scan-0001.dcm",
		.len = 4096, .result = 4096,
	};

	r.path_len = strlen(r.path);
	for (unsigned long i = 0; i < k->n; i++) {
		double t = now();

		r.off = i * 4096;
		k->rc = audit_writer_put(k->w, &r);
		k->put_s += now() - t;
		if (k->rc == -EIO) {	/* the queue is full: wait for room */
			while (audit_writer_ready(k->w))
				sched_yield();
			i--;
		} else if (k->rc) {
			break;
		}
	}
	return NULL;
}

static enum audit_sync sync_of(const char *s)
{
	return !strcmp(s, "always") ? AUDIT_SYNC_ALWAYS :
	       !strcmp(s, "none") ? AUDIT_SYNC_NONE : AUDIT_SYNC_BATCH;
}

int main(int argc, char **argv)
{
	struct audit_writer_conf c = { .deny_on_failure = true };
	uint8_t pub[CRYPTO_ED25519_PUB_LEN];
	struct worker k[64];
	pthread_t t[64];
	struct audit_writer *w;
	struct crypto_key *key;
	unsigned nt = argc > 3 ? (unsigned)atoi(argv[3]) : 4;
	unsigned long n = argc > 4 ? strtoul(argv[4], NULL, 10) : 100000;
	double t0, put_s = 0;
	int rc;

	if (argc < 2 || nt < 1 || nt > 64) {
		fprintf(stderr, "usage: phifs-bench-audit-writer DIR "
			"[batch|always|none] [THREADS] [N]\n");
		return 2;
	}
	c.dir = argv[1];
	c.sync = sync_of(argc > 2 ? argv[2] : "batch");
	if ((rc = crypto_ed25519_keygen(&key, pub)))
		return 1;
	c.key = key;
	if ((rc = audit_writer_open(&c, &w, NULL))) {
		fprintf(stderr, "bench: %s: %s\n", c.dir, strerror(-rc));
		return 1;
	}
	t0 = now();
	for (unsigned i = 0; i < nt; i++) {
		k[i] = (struct worker){ .w = w, .n = n };
		pthread_create(&t[i], NULL, work, &k[i]);
	}
	for (unsigned i = 0; i < nt; i++) {
		pthread_join(t[i], NULL);
		put_s += k[i].put_s;
	}
	rc = audit_writer_close(w);
	printf("records_per_s %.0f\nput_us_mean %.2f\n",
	       (double)nt * (double)n / (now() - t0),
	       put_s * 1e6 / ((double)nt * (double)n));
	crypto_key_free(key);
	return rc ? 1 : 0;
}
