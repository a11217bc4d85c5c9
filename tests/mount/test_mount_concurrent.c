/*
 * test_mount_concurrent.c — several threads and several processes writing
 * one file through the mount at once, with unaligned ranges that share
 * blocks, while a reader reads it.  The result must be one that the same
 * writes applied one after another could give:
 *
 *  - disjoint ranges (each writer its own, neighbours sharing blocks) end up
 *    exactly as their writer last wrote them: a read-modify-write of a shared
 *    block must not lose a neighbour's bytes;
 *  - overlapping ranges, each written once by every writer with a value
 *    unique to (writer, range): every byte holds the value of some write that
 *    covers it, and the "was overwritten by" order these values imply has no
 *    cycle (so each write is atomic and some serial order explains it all);
 *  - no read, concurrent or after, fails.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountutil.h"
#include "testutil.h"

TestSuite(mount_concurrent, .fini = mu_cleanup_all, .timeout = 120);

#define NTHREADS 3
#define NPROCS 3
#define NW (NTHREADS + NPROCS)
#define FSIZE (40 * 4096 + 777)
#define NDISJ 16		/* disjoint ranges per writer */
#define NPASS 3			/* passes over them */
#define NOVER 40		/* overlapping ranges; NW * NOVER < 255 */
#define ROUNDS 4

struct range {
	size_t off, len;
};

static struct range disj[NW * NDISJ];	/* range i belongs to writer i % NW */
static struct range over[NOVER];
static uint64_t seed, seed0;	/* seed0 replays the whole test */
static int phase;			/* 1 disjoint, 2 overlapping */
static int go_pipe[2];
static char path[512];

static uint8_t disj_value(int r, int pass)
{
	return (uint8_t)(1 + (r * NPASS + pass) % 254);
}

static uint8_t over_value(int w, int j)
{
	return (uint8_t)(1 + w * NOVER + j);
}

/* One writer's work for the current phase; 0 or an errno. */
static int writer(int w, int fd)
{
	uint64_t rs = seed * 31 + (uint64_t)w * 7919 + (uint64_t)phase + 1;
	uint8_t buf[FSIZE];	/* a disjoint range can be most of the file */
	int order[NOVER > NDISJ ? NOVER : NDISJ];
	char c;

	/* Everyone starts when the write end of go_pipe closes. */
	while (read(go_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	if (phase == 1) {
		for (int p = 0; p < NPASS; p++) {
			for (int i = 0; i < NDISJ; i++)
				order[i] = i;
			for (int i = NDISJ - 1; i > 0; i--) {
				int j = (int)(tu_rand(&rs) % (uint64_t)(i + 1)), t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
			for (int i = 0; i < NDISJ; i++) {
				int r = order[i] * NW + w;

				memset(buf, disj_value(r, p), disj[r].len);
				if (pwrite(fd, buf, disj[r].len, (off_t)disj[r].off) !=
				    (ssize_t)disj[r].len)
					return errno ? errno : EIO;
			}
		}
	} else {
		for (int i = 0; i < NOVER; i++)
			order[i] = i;
		for (int i = NOVER - 1; i > 0; i--) {
			int j = (int)(tu_rand(&rs) % (uint64_t)(i + 1)), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (int i = 0; i < NOVER; i++) {
			int j = order[i];

			memset(buf, over_value(w, j), over[j].len);
			if (pwrite(fd, buf, over[j].len, (off_t)over[j].off) !=
			    (ssize_t)over[j].len)
				return errno ? errno : EIO;
		}
	}
	return 0;
}

struct targ {
	int w, fd, err;
};

static void *thread_main(void *p)
{
	struct targ *t = p;

	t->err = writer(t->w, t->fd);
	return NULL;
}

/* A reader racing the writers: every read must succeed and be full. */
struct rarg {
	volatile int stop;
	int err;
	long reads;
	char what[128];
};

static void *reader_main(void *p)
{
	struct rarg *r = p;
	uint64_t rs = seed + 99;
	static uint8_t buf[3 * 4096] __attribute__((aligned(4096)));
	int fd = open(path, O_RDONLY | O_DIRECT);

	if (fd < 0)
		fd = open(path, O_RDONLY);
	if (fd < 0) {
		r->err = errno;
		snprintf(r->what, sizeof(r->what), "open");
		return NULL;
	}
	while (!r->stop) {
		size_t blk = tu_rand(&rs) % 40;
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)blk * 4096);

		if (n < 0 || (size_t)n != (FSIZE - blk * 4096 < sizeof(buf) ?
					   FSIZE - blk * 4096 : sizeof(buf))) {
			r->err = n < 0 ? errno : EPIPE;
			snprintf(r->what, sizeof(r->what), "pread at block %zu "
				 "returned %zd", blk, n);
			break;
		}
		r->reads++;
	}
	close(fd);
	return NULL;
}

/* Runs one phase with NPROCS processes and NTHREADS threads at once. */
static void run_phase(void)
{
	pid_t pids[NPROCS];
	pthread_t th[NTHREADS], rd;
	struct targ ta[NTHREADS];
	struct rarg ra = { 0 };
	int shared;

	cr_assert(pipe(go_pipe) == 0);
	/* Processes first: fork before any thread of ours exists. */
	for (int i = 0; i < NPROCS; i++) {
		pids[i] = fork();
		cr_assert(pids[i] >= 0);
		if (pids[i] == 0) {
			int fd = open(path, O_RDWR), e;

			close(go_pipe[1]);
			e = fd < 0 ? errno : writer(NTHREADS + i, fd);
			_exit(e > 255 ? 255 : e);
		}
	}
	shared = open(path, O_RDWR);
	cr_assert(shared >= 0, "open %s: %s", path, strerror(errno));
	for (int i = 0; i < NTHREADS; i++) {
		/* Threads 0 and 1 share one open file, thread 2 has its own. */
		ta[i] = (struct targ){ i, i < 2 ? shared : open(path, O_RDWR), 0 };
		cr_assert(ta[i].fd >= 0);
		cr_assert(pthread_create(&th[i], NULL, thread_main, &ta[i]) == 0);
	}
	cr_assert(pthread_create(&rd, NULL, reader_main, &ra) == 0);
	close(go_pipe[1]);	/* go */
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NPROCS; i++) {
		int st;

		cr_assert(waitpid(pids[i], &st, 0) == pids[i]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer process "
			  "%d failed: %s", i, WIFEXITED(st) ?
			  strerror(WEXITSTATUS(st)) : "killed by a signal");
	}
	ra.stop = 1;
	pthread_join(rd, NULL);
	close(go_pipe[0]);
	for (int i = 0; i < NTHREADS; i++) {
		cr_assert(ta[i].err == 0, "writer thread %d failed: %s", i,
			  strerror(ta[i].err));
		if (i == 2)
			close(ta[i].fd);
	}
	close(shared);
	cr_assert(ra.err == 0, "a read racing the writers failed (seed %llu): "
		  "%s: %s", (unsigned long long)seed0, ra.what, strerror(ra.err));
}

static uint8_t *read_back(void)
{
	uint8_t *got;
	size_t len;
	int rc = mu_read_file(path, &got, &len);

	cr_assert(rc == 0, "reading the file back: %s", strerror(-rc));
	cr_assert_eq(len, (size_t)FSIZE, "the file is %zu bytes, want %d", len,
		     FSIZE);
	return got;
}

static void check_disjoint(const uint8_t *got, uint8_t *expect)
{
	for (int r = 0; r < NW * NDISJ; r++)
		memset(expect + disj[r].off, disj_value(r, NPASS - 1), disj[r].len);
	for (size_t i = 0; i < FSIZE; i++)
		cr_assert(got[i] == expect[i], "seed %llu: byte %zu (block %zu) "
			  "is 0x%02x, its writer wrote 0x%02x there last: a "
			  "write to a neighbouring range in the same block lost "
			  "it", (unsigned long long)seed0, i, i / 4096, got[i],
			  expect[i]);
}

/* Every byte from a write covering it, and the implied order acyclic. */
static void check_serializable(const uint8_t *got, const uint8_t *before)
{
	static bool edge[NW * NOVER][NW * NOVER];
	int indeg[NW * NOVER] = { 0 }, queue[NW * NOVER], qn = 0, done = 0;

	memset(edge, 0, sizeof(edge));
	for (size_t p = 0; p < FSIZE; p++) {
		int x = -1, covered = 0;

		for (int j = 0; j < NOVER; j++)
			if (p >= over[j].off && p < over[j].off + over[j].len)
				covered = 1;
		if (!covered) {
			cr_assert(got[p] == before[p], "seed %llu: byte %zu, which "
				  "no write covers, changed", (unsigned long long)seed0, p);
			continue;
		}
		if (got[p] >= 1 && got[p] <= NW * NOVER)
			x = got[p] - 1;
		cr_assert(x >= 0 && p >= over[x % NOVER].off &&
			  p < over[x % NOVER].off + over[x % NOVER].len,
			  "seed %llu: byte %zu holds 0x%02x, a value no write "
			  "covering it wrote", (unsigned long long)seed0, p, got[p]);
		/* Every other write covering p came before x. */
		for (int w = 0; w < NW; w++)
			for (int j = 0; j < NOVER; j++) {
				int y = w * NOVER + j;

				if (y != x && p >= over[j].off &&
				    p < over[j].off + over[j].len)
					edge[y][x] = true;
			}
	}
	for (int a = 0; a < NW * NOVER; a++)
		for (int b = 0; b < NW * NOVER; b++)
			indeg[b] += edge[a][b];
	for (int a = 0; a < NW * NOVER; a++)
		if (!indeg[a])
			queue[qn++] = a;
	while (done < qn) {
		int a = queue[done++];

		for (int b = 0; b < NW * NOVER; b++)
			if (edge[a][b] && --indeg[b] == 0)
				queue[qn++] = b;
	}
	cr_assert_eq(qn, NW * NOVER, "seed %llu: no serial order of the "
		     "writes explains the file: some write is not atomic, or "
		     "bytes of two writes are interleaved", (unsigned long long)seed0);
}

static void make_ranges(uint64_t *rs)
{
	size_t cuts[NW * NDISJ + 1];

	/* Disjoint: cut [0, FSIZE) at sorted random unaligned points. */
	cuts[0] = 0;
	for (int i = 1; i < NW * NDISJ; i++)
		cuts[i] = 1 + tu_rand(rs) % (FSIZE - 1);
	cuts[NW * NDISJ] = FSIZE;
	for (int i = 1; i < NW * NDISJ; i++)
		for (int j = i; j > 1 && cuts[j] < cuts[j - 1]; j--) {
			size_t t = cuts[j];

			cuts[j] = cuts[j - 1];
			cuts[j - 1] = t;
		}
	for (int i = 0; i < NW * NDISJ; i++)
		disj[i] = (struct range){ cuts[i], cuts[i + 1] - cuts[i] };
	/* Overlapping: 1 byte to 4 blocks, some starting on a seam. */
	for (int j = 0; j < NOVER; j++) {
		size_t len = 1 + tu_rand(rs) % (4 * 4096), off;

		off = tu_rand(rs) % 3 ? tu_rand(rs) % FSIZE
				      : (tu_rand(rs) % 40) * 4096;
		if (off + len > FSIZE)
			len = FSIZE - off;
		over[j] = (struct range){ off, len ? len : 1 };
		if (off + over[j].len > FSIZE)
			over[j].off = FSIZE - 1;
	}
}

Test(mount_concurrent, concurrent_writers_give_a_result_some_serial_order_gives)
{
	struct mu_vol *v;
	uint8_t *expect = calloc(1, FSIZE), *got;
	uint64_t rs;

	mu_require_fuse();
	cr_assert(expect);
	seed = seed0 = mu_seed();
	rs = seed | 1;
	fprintf(stderr, "mount_concurrent: seed %llu (replay with "
		"PHIFS_TEST_SEED)\n", (unsigned long long)seed0);
	v = mu_vol_new(0);
	mu_mount(v);
	snprintf(path, sizeof(path), "%s", mu_m(v, "shared"));
	mu_write_file(path, expect, FSIZE);	/* zeros */

	for (int round = 0; round < ROUNDS; round++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		make_ranges(&rs);
		phase = 1;
		run_phase();
		got = read_back();
		check_disjoint(got, expect);
		free(got);

		phase = 2;
		run_phase();
		got = read_back();
		check_serializable(got, expect);
		/* The next round starts from what is there now. */
		memcpy(expect, got, FSIZE);
		free(got);
	}
	mu_unmount(v);
	mu_mount(v);
	got = read_back();
	cr_assert(memcmp(got, expect, FSIZE) == 0, "the file reads back "
		  "differently after a remount");
	free(got);
	free(expect);
	mu_unmount(v);
}
