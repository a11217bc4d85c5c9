/*
 * bench_cfile.c — sequential seal+write and read+open throughput of cfile
 * on a file the caller names (put it on tmpfs to measure the CPU side, not
 * a disk).  Prints "write_Bps N" and "read_Bps N"; tools/bench compares
 * them with `openssl speed`.  Not a test: it asserts nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "phifs/cfile.h"
#include "phifs/crypto.h"

static struct crypto_key *kek;

static const struct crypto_key *kek_of(void *arg, uint32_t v)
{
	(void)arg;
	return v == 1 ? kek : NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what, int rc)
{
	fprintf(stderr, "bench_cfile: %s: %s\n", what, strerror(-rc));
	return 1;
}

int main(int argc, char **argv)
{
	uint8_t volid[16] = { 1 };
	struct cfile_volume vol = { .volume_id = volid, .kek = kek_of,
				    .active_version = 1, .journal_dirfd = -1 };
	unsigned long long size, chunk;
	struct cfile *f;
	uint8_t *buf;
	double t0, tw, tr;
	int fd, rc;

	if (argc < 2 || argc > 4) {
		fputs("usage: phifs-bench-cfile FILE [BYTES [CHUNK]]\n", stderr);
		return 2;
	}
	size = argc > 2 ? strtoull(argv[2], NULL, 0) : 1ULL << 30;
	chunk = argc > 3 ? strtoull(argv[3], NULL, 0) : 128 * 1024;
	kek = crypto_key_random();
	buf = malloc(chunk);
	if (!kek || !buf || !chunk)
		return die("setup", -ENOMEM);
	memset(buf, 'p', chunk);
	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return die(argv[1], -errno);

	rc = cfile_create(fd, &vol, &f);
	if (rc)
		return die("create", rc);
	t0 = now();
	for (unsigned long long off = 0; off < size; off += chunk) {
		ssize_t n = cfile_pwrite(f, buf, chunk, off);

		if (n != (ssize_t)chunk)
			return die("write", n < 0 ? (int)n : -EIO);
	}
	rc = cfile_fsync(f, 0);
	tw = now() - t0;
	if (rc || (rc = cfile_release(f)))
		return die("fsync", rc);

	rc = cfile_open(fd, &vol, &f);
	if (rc)
		return die("open", rc);
	t0 = now();
	for (unsigned long long off = 0; off < size; off += chunk) {
		ssize_t n = cfile_pread(f, buf, chunk, off);

		if (n != (ssize_t)chunk)
			return die("read", n < 0 ? (int)n : -EIO);
	}
	tr = now() - t0;
	cfile_release(f);
	close(fd);
	unlink(argv[1]);
	printf("write_Bps %.0f\nread_Bps %.0f\n", (double)size / tw,
	       (double)size / tr);
	crypto_key_free(kek);
	free(buf);
	return 0;
}
