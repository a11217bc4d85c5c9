/*
 * test_mount_crash.c — kill -9 of the daemon at random moments, in the
 * foreground and daemonized, during (a) sequential writes with periodic
 * fsync, (b) random unaligned overwrites of an existing file and (c) a
 * create/rename/unlink storm.  After each kill the dead mount is unmounted
 * and the volume mounted again, and then: every file in the tree reads
 * without error, whatever was fsync'ed before the kill is there, and every
 * block of the overwritten file is in a state that the writes made before the
 * kill, applied in order, passed through.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mountutil.h"
#include "testutil.h"

TestSuite(mount_crash, .fini = mu_cleanup_all, .timeout = 180);

#define ROUNDS 8		/* per workload: 24 kills in all */
#define SEQ_MAX (6 << 20)

static uint64_t seed, rs;
static volatile int stop_workers;

static void msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void remount(struct mu_vol *v, int round)
{
	/* Alternate: the foreground daemon is our child, the other is not. */
	if (round % 2)
		mu_mount_fg(v);
	else
		mu_mount(v);
}

/* Kills the daemon at a random moment while worker runs, then remounts. */
static void kill_during(struct mu_vol *v, int round, void *(*worker)(void *),
			void *arg)
{
	pthread_t th;
	DIR *d;

	stop_workers = 0;
	cr_assert(pthread_create(&th, NULL, worker, arg) == 0);
	/* The scenario: a kill at a random moment of the workload. */
	msleep(2 + (long)(tu_rand(&rs) % 150));
	mu_kill9(v);
	pthread_join(th, NULL);
	/* Dead: ENOTCONN (opendir always asks the daemon; stat may be
	 * answered from the attribute cache).  Or already gone, if the daemon
	 * asked for auto_unmount; then it sees the empty folder. */
	errno = 0;
	d = opendir(v->mnt);
	if (d) {
		closedir(d);
		cr_assert(!mu_is_mounted(v->mnt), "after kill -9 the mount "
			  "still answers opendir");
	} else {
		cr_assert_eq(errno, ENOTCONN, "after kill -9 the mount answers "
			     "opendir with %s, want ENOTCONN", strerror(errno));
	}
	mu_unmount_dead(v);
	remount(v, round + 1);
}

/* Every file under dir (on the mount) reads to its end without error. */
static void read_whole_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	cr_assert(d, "opendir %s after a crash: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		char p[1024];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		cr_assert(lstat(p, &st) == 0, "lstat %s after a crash: %s", p,
			  strerror(errno));
		if (S_ISDIR(st.st_mode)) {
			read_whole_tree(p);
		} else if (S_ISREG(st.st_mode)) {
			uint8_t *buf;
			size_t len;
			int rc = mu_read_file(p, &buf, &len);

			cr_assert(rc == 0, "seed %llu: reading %s after a crash "
				  "fails at byte %zu of %lld: %s",
				  (unsigned long long)seed, p, len,
				  (long long)st.st_size, strerror(-rc));
			cr_assert_eq((off_t)len, st.st_size, "seed %llu: %s reads "
				     "%zu bytes, stat says %lld",
				     (unsigned long long)seed, p, len,
				     (long long)st.st_size);
			free(buf);
		}
	}
	closedir(d);
}

/* ---- (a) sequential writes with periodic fsync ---- */

static uint8_t *seq_pattern;

struct seq {
	char path[512];
	size_t written;		/* bytes write() reported */
	size_t attempted;	/* bytes handed to write(): an upper bound */
	size_t durable;		/* bytes covered by a successful fsync */
	uint64_t rs;
};

static void *seq_worker(void *p)
{
	struct seq *s = p;
	int fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int chunks = 0;

	if (fd < 0)
		return NULL;
	while (s->written < SEQ_MAX) {
		size_t len = 1 + tu_rand(&s->rs) % 20000;
		ssize_t r;

		if (len > SEQ_MAX - s->written)
			len = SEQ_MAX - s->written;
		/* Count it before the call: it may land even if we never
		 * hear back. */
		s->attempted = s->written + len;
		r = write(fd, seq_pattern + s->written, len);
		if (r <= 0)
			break;
		s->written += (size_t)r;
		if (++chunks % (1 + (int)(tu_rand(&s->rs) % 4)) == 0) {
			if (fsync(fd))
				break;
			s->durable = s->written;
		}
	}
	close(fd);
	return NULL;
}

Test(mount_crash, kill_9_during_sequential_writes_keeps_every_fsynced_byte)
{
	struct mu_vol *v;
	struct seq runs[ROUNDS];

	mu_require_fuse();
	seed = mu_seed();
	rs = seed | 1;
	fprintf(stderr, "mount_crash (a): seed %llu\n", (unsigned long long)seed);
	seq_pattern = malloc(SEQ_MAX);
	cr_assert(seq_pattern);
	mu_fill(seq_pattern, SEQ_MAX, seed);
	v = mu_vol_new(0);
	mu_mount(v);

	for (int r = 0; r < ROUNDS; r++) {
		memset(&runs[r], 0, sizeof(runs[r]));
		snprintf(runs[r].path, sizeof(runs[r].path), "%s",
			 mu_m(v, r % 2 ? "fg" : "bg"));
		snprintf(runs[r].path + strlen(runs[r].path), 16, "-%d", r);
		runs[r].rs = tu_rand(&rs) | 1;
		kill_during(v, r, seq_worker, &runs[r]);

		read_whole_tree(v->mnt);
		for (int j = 0; j <= r; j++) {
			uint8_t *buf;
			size_t len;
			int rc = mu_read_file(runs[j].path, &buf, &len);

			if (rc == -ENOENT && runs[j].durable == 0) {
				/* Created, but not durable yet: may be gone. */
				continue;
			}
			cr_assert(rc == 0, "seed %llu: reading %s: %s",
				  (unsigned long long)seed, runs[j].path,
				  strerror(-rc));
			cr_assert(len >= runs[j].durable, "seed %llu: %s has %zu "
				  "bytes after the crash; %zu were fsync'ed",
				  (unsigned long long)seed, runs[j].path, len,
				  runs[j].durable);
			cr_assert(len <= runs[j].attempted, "seed %llu: %s has "
				  "%zu bytes; only %zu were ever written",
				  (unsigned long long)seed, runs[j].path, len,
				  runs[j].attempted);
			cr_assert(memcmp(buf, seq_pattern, len) == 0, "seed %llu: "
				  "%s holds bytes that were not written there",
				  (unsigned long long)seed, runs[j].path);
			free(buf);
		}
	}
	mu_unmount(v);
	free(seq_pattern);
}

/* ---- (b) random unaligned overwrites ---- */

#define OW_BLOCKS 32
#define OW_SIZE (OW_BLOCKS * 4096)
#define OW_MAXW 4096

struct ow_write {
	size_t off, len;
	uint64_t seed;
};

struct ow {
	char path[512];
	struct ow_write log[OW_MAXW];
	int n;			/* writes attempted */
	int durable;		/* writes covered by a successful fsync */
	uint64_t rs;
};

static void ow_content(const struct ow_write *w, uint8_t *buf)
{
	mu_fill(buf, w->len, w->seed);
}

static void *ow_worker(void *p)
{
	struct ow *o = p;
	int fd = open(o->path, O_WRONLY | O_CLOEXEC);
	static uint8_t buf[3 * 4096 + 100];

	if (fd < 0)
		return NULL;
	while (o->n < OW_MAXW) {
		struct ow_write *w = &o->log[o->n];

		w->off = tu_rand(&o->rs) % OW_SIZE;
		w->len = 1 + tu_rand(&o->rs) % (3 * 4096 + 100);
		if (w->off + w->len > OW_SIZE)
			w->len = OW_SIZE - w->off;
		w->seed = tu_rand(&o->rs);
		ow_content(w, buf);
		o->n++;		/* attempted: it may land */
		if (pwrite(fd, buf, w->len, (off_t)w->off) != (ssize_t)w->len)
			break;
		if (tu_rand(&o->rs) % 8 == 0) {
			if (fsync(fd))
				break;
			o->durable = o->n;
		}
	}
	close(fd);
	return NULL;
}

/*
 * Block b of got must equal base with writes 0..k (those touching b) applied
 * in order, for some k >= durable.
 */
static void check_ow_block(const struct ow *o, const uint8_t *base,
			   const uint8_t *got, size_t b)
{
	uint8_t state[4096], tmp[3 * 4096 + 100];
	size_t lo = b * 4096, hi = lo + 4096;
	int matched = -1;

	memcpy(state, base + lo, 4096);
	if (!memcmp(state, got + lo, 4096))
		matched = 0;
	for (int i = 0; i < o->n; i++) {
		const struct ow_write *w = &o->log[i];
		size_t a = w->off > lo ? w->off : lo;
		size_t e = w->off + w->len < hi ? w->off + w->len : hi;

		if (a >= e)
			continue;
		ow_content(w, tmp);
		memcpy(state + (a - lo), tmp + (a - w->off), e - a);
		if (!memcmp(state, got + lo, 4096))
			matched = i + 1;
	}
	cr_assert(matched >= 0, "seed %llu: block %zu of the overwritten file "
		  "is in no state the writes passed through (torn or mixed)",
		  (unsigned long long)seed, b);
	/* The last write to b that was fsync'ed must be in. */
	for (int i = o->durable - 1; i >= 0; i--) {
		const struct ow_write *w = &o->log[i];

		if (w->off < hi && w->off + w->len > lo) {
			cr_assert(matched > i, "seed %llu: block %zu lost a "
				  "write that was fsync'ed before the kill",
				  (unsigned long long)seed, b);
			break;
		}
	}
}

Test(mount_crash, kill_9_during_unaligned_overwrites_leaves_each_block_old_or_new)
{
	struct mu_vol *v;
	struct ow *o = calloc(1, sizeof(*o));
	uint8_t *base = malloc(OW_SIZE), *got;
	size_t len;
	int fd, rc;

	mu_require_fuse();
	cr_assert(o && base);
	seed = mu_seed();
	rs = seed | 1;
	fprintf(stderr, "mount_crash (b): seed %llu\n", (unsigned long long)seed);
	v = mu_vol_new(0);
	mu_mount(v);
	snprintf(o->path, sizeof(o->path), "%s", mu_m(v, "overwritten"));
	mu_fill(base, OW_SIZE, seed);
	mu_write_file(o->path, base, OW_SIZE);
	fd = open(o->path, O_RDONLY);
	cr_assert(fd >= 0 && fsync(fd) == 0);
	close(fd);

	for (int r = 0; r < ROUNDS; r++) {
		o->n = o->durable = 0;
		o->rs = tu_rand(&rs) | 1;
		kill_during(v, r, ow_worker, o);

		read_whole_tree(v->mnt);
		rc = mu_read_file(o->path, &got, &len);
		cr_assert(rc == 0, "seed %llu: reading the overwritten file "
			  "after a crash fails at %zu: %s",
			  (unsigned long long)seed, len, strerror(-rc));
		cr_assert_eq(len, (size_t)OW_SIZE, "seed %llu: the overwritten "
			     "file is %zu bytes after a crash",
			     (unsigned long long)seed, len);
		for (size_t b = 0; b < OW_BLOCKS; b++)
			check_ow_block(o, base, got, b);
		memcpy(base, got, OW_SIZE);	/* the next round's old state */
		free(got);
	}
	mu_unmount(v);
	free(base);
	free(o);
}

/* ---- (c) create / rename / unlink storm ---- */

#define ST_MAX 100000

struct storm {
	char dir[512];
	int round;
	int n;			/* files begun */
	unsigned char durable[ST_MAX / 8 + 1];	/* keepers fsync'ed, by i */
};

static size_t st_len(int round, int i)
{
	return (size_t)((round * 131 + i * 7919) % 9000 + 1);
}

static uint64_t st_seed(int round, int i)
{
	return seed ^ ((uint64_t)round << 32 | (uint64_t)i);
}

static int write_named(const char *path, int round, int i, bool sync)
{
	static uint8_t buf[9001];
	size_t len = st_len(round, i);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	mu_fill(buf, len, st_seed(round, i));
	if (write(fd, buf, len) != (ssize_t)len || (sync && fsync(fd))) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static void *storm_worker(void *p)
{
	struct storm *s = p;
	char a[600], b[600];
	int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return NULL;
	for (int i = 0; s->n < ST_MAX; i++) {
		s->n = i + 1;
		if (i % 10 == 0) {
			/* A keeper: written, fsync'ed, its folder fsync'ed. */
			snprintf(a, sizeof(a), "%s/k%d_%d", s->dir, s->round, i);
			if (write_named(a, s->round, i, true) || fsync(dfd))
				break;
			s->durable[i / 8] |= (unsigned char)(1 << (i % 8));
			continue;
		}
		snprintf(a, sizeof(a), "%s/t%d_%d", s->dir, s->round, i);
		snprintf(b, sizeof(b), "%s/r%d_%d", s->dir, s->round, i);
		if (write_named(a, s->round, i, false) || rename(a, b))
			break;
		if (i % 3 == 0 && i >= 3 && (i - 3) % 10) {
			snprintf(b, sizeof(b), "%s/r%d_%d", s->dir, s->round, i - 3);
			if (unlink(b))
				break;
		}
	}
	close(dfd);
	return NULL;
}

static void check_storm(struct storm *runs, int nruns)
{
	char seen[ROUNDS][ST_MAX / 4 + 1];	/* 2 bits: t seen, r seen */
	DIR *d = opendir(runs[0].dir);
	struct dirent *de;
	static uint8_t want[9001];

	memset(seen, 0, sizeof(seen));
	cr_assert(d);
	while ((de = readdir(d))) {
		char kind, p[1024];
		int round, i;
		uint8_t *buf;
		size_t len;
		int rc;

		if (de->d_name[0] == '.')
			continue;
		cr_assert(sscanf(de->d_name, "%c%d_%d", &kind, &round, &i) == 3 &&
			  (kind == 't' || kind == 'r' || kind == 'k') &&
			  round >= 0 && round < nruns && i >= 0 &&
			  i < runs[round].n, "seed %llu: the storm folder has "
			  "an entry '%s' that was never created",
			  (unsigned long long)seed, de->d_name);
		snprintf(p, sizeof(p), "%s/%s", runs[0].dir, de->d_name);
		rc = mu_read_file(p, &buf, &len);
		cr_assert(rc == 0, "seed %llu: reading %s after a crash: %s",
			  (unsigned long long)seed, de->d_name, strerror(-rc));
		mu_fill(want, st_len(round, i), st_seed(round, i));
		cr_assert(len <= st_len(round, i) && !memcmp(buf, want, len),
			  "seed %llu: %s holds %zu bytes that are not a prefix of "
			  "what was written to it", (unsigned long long)seed,
			  de->d_name, len);
		if (kind == 'k' && (runs[round].durable[i / 8] & (1 << (i % 8))))
			cr_assert_eq(len, st_len(round, i), "seed %llu: the "
				     "fsync'ed file %s has %zu bytes, want %zu",
				     (unsigned long long)seed, de->d_name, len,
				     st_len(round, i));
		free(buf);
		if (kind != 'k') {
			char bit = kind == 't' ? 1 : 2;

			cr_assert(!(seen[round][i / 4] & (bit ^ 3) << (i % 4 * 2)),
				  "seed %llu: both t%d_%d and r%d_%d exist: a "
				  "rename was not atomic", (unsigned long long)seed,
				  round, i, round, i);
			seen[round][i / 4] |= (char)(bit << (i % 4 * 2));
		} else {
			seen[round][i / 4] |= (char)(3 << (i % 4 * 2));
		}
	}
	closedir(d);
	/* Every fsync'ed keeper is there. */
	for (int r = 0; r < nruns; r++)
		for (int i = 0; i < runs[r].n; i++)
			if (runs[r].durable[i / 8] & (1 << (i % 8)))
				cr_assert(seen[r][i / 4] >> (i % 4 * 2) & 3,
					  "seed %llu: the fsync'ed file k%d_%d is "
					  "gone after a crash",
					  (unsigned long long)seed, r, i);
}

Test(mount_crash, kill_9_during_a_create_rename_unlink_storm_keeps_the_tree_readable)
{
	struct mu_vol *v;
	struct storm *runs = calloc(ROUNDS, sizeof(*runs));

	mu_require_fuse();
	cr_assert(runs);
	seed = mu_seed();
	rs = seed | 1;
	fprintf(stderr, "mount_crash (c): seed %llu\n", (unsigned long long)seed);
	v = mu_vol_new(0);
	mu_mount(v);
	cr_assert(mkdir(mu_m(v, "storm"), 0700) == 0);

	for (int r = 0; r < ROUNDS; r++) {
		snprintf(runs[r].dir, sizeof(runs[r].dir), "%s", mu_m(v, "storm"));
		runs[r].round = r;
		kill_during(v, r, storm_worker, &runs[r]);
		read_whole_tree(v->mnt);
		check_storm(runs, r + 1);
	}
	mu_unmount(v);
	free(runs);
}
