/*
 * test_cfile.c — one encrypted file on a memfd against a plain reference
 * file: random {offset, length} tables, holes, offsets past 4 GiB, lazy
 * size commits, tampering, concurrency and short writes.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "phifs/cfile.h"
#include "phifs/crypto.h"
#include "phifs/format.h"
#include "oldkernel_filter.h"
#include "cfixture.h"
#include "testutil.h"

#define BS FORMAT_BLOCK_SIZE
#define SB FORMAT_STORED_BLOCK
#define GiB (1ULL << 30)

static void setup(void)
{
	cf_setup(0xfe, 0xed);
}

static void teardown(void)
{
	cf_teardown();
}

TestSuite(cfile, .init = setup, .fini = teardown, .timeout = 240);

static void fill(uint8_t *p, size_t n, uint64_t *seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(tu_rand(seed) >> 56);
}

/* Compares [off, off + len) of the cfile with the reference fd. */
static void same_range(struct cfile *f, int ref, uint64_t off, size_t len)
{
	uint8_t *a = malloc(len + 1), *b = malloc(len + 1);
	ssize_t n = cfile_pread(f, a, len, off);
	ssize_t m = pread(ref, b, len, (off_t)off);

	cr_assert(n >= 0, "cfile_pread at %llu: %zd",
		  (unsigned long long)off, n);
	cr_assert_eq(n, m, "length at %llu: %zd vs %zd",
		     (unsigned long long)off, n, m);
	cr_assert(memcmp(a, b, (size_t)n) == 0, "content at %llu+%zu",
		  (unsigned long long)off, len);
	free(a);
	free(b);
}

static uint64_t ref_size(int ref)
{
	struct stat st;

	cr_assert_eq(fstat(ref, &st), 0);
	return (uint64_t)st.st_size;
}

static void same_file(struct cfile *f, int ref)
{
	uint64_t size = ref_size(ref);

	cr_assert_eq(cfile_size(f), size);
	for (uint64_t off = 0; off < size; off += 1 << 20)
		same_range(f, ref, off, 1 << 20);
}

static const uint64_t edges[] = { 0, 1, 4095, 4096, 4097, 8191, 8192,
				  3 * 4096 - 5, 65536 + 3 };
static const size_t lens[] = { 0, 1, 4095, 4096, 4097, 8192, 12289,
			       100000, 300000 };

/* One random operation, applied to both. */
static void random_op(struct cfile **f, int fd, int ref, uint64_t *seed,
		      uint64_t span, uint8_t *buf)
{
	uint64_t r = tu_rand(seed), off;
	size_t len;

	off = r % 3 ? edges[r / 3 % 9] + (r >> 8) % 4 * (span / 4) :
		      (r >> 8) % span;
	len = tu_rand(seed) % 2 ? lens[tu_rand(seed) % 9] :
				  tu_rand(seed) % 70000;
	switch (tu_rand(seed) % 10) {
	case 0:
		cr_assert_eq(cfile_truncate(*f, off), 0);
		cr_assert_eq(ftruncate(ref, (off_t)off), 0);
		break;
	case 1:
		*f = cf_reopen(*f, fd);
		break;
	case 2:
		cr_assert_eq(cfile_fsync(*f, 0), 0);
		break;
	default:
		fill(buf, len, seed);
		cr_assert_eq(cfile_pwrite(*f, buf, len, off), (ssize_t)len);
		cr_assert_eq(pwrite(ref, buf, len, (off_t)off), (ssize_t)len);
	}
	same_range(*f, ref, off > 5000 ? off - 5000 : 0, len + 10000);
	cr_assert_eq(cfile_size(*f), ref_size(ref));
}

Test(cfile, random_tables_match_a_plain_file)
{
	static uint8_t buf[400000];
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int fd, ref = tu_memfd("ref");
	struct cfile *f = cf_new("cfile", &fd);

	for (int i = 0; i < 3000; i++)
		random_op(&f, fd, ref, &seed, 1 << 20, buf);
	same_file(f, ref);
	f = cf_reopen(f, fd);
	same_file(f, ref);
	cfile_release(f);
}

Test(cfile, random_tables_past_4_gib_match_a_plain_file)
{
	static uint8_t buf[400000];
	uint64_t seed = 7;
	int fd, ref = tu_memfd("ref");
	struct cfile *f = cf_new("cfile", &fd);

	/* Each op's neighbourhood is compared; the holes read as zeros. */
	for (int i = 0; i < 400; i++)
		random_op(&f, fd, ref, &seed, 5 * GiB, buf);
	f = cf_reopen(f, fd);
	for (uint64_t off = 0; off < ref_size(ref); off += 97 * (1 << 20))
		same_range(f, ref, off, 70000);
	cfile_release(f);
}

Test(cfile, a_write_far_past_the_end_keeps_the_backing_sparse)
{
	static const char marker[] = "patient 4711: diagnosis";
	int fd;
	struct cfile *f = cf_new("cfile", &fd);
	struct stat st;
	char out[sizeof(marker)], zero[4096] = { 0 }, z[4096];
	uint64_t at = 5 * GiB + 123;

	cr_assert_eq(cfile_pwrite(f, "head", 4, 0), 4);
	cr_assert_eq(cfile_pwrite(f, marker, sizeof(marker), at),
		     (ssize_t)sizeof(marker));
	cr_assert_eq(cfile_size(f), at + sizeof(marker));
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_size(f), at + sizeof(marker));
	cr_assert_eq(cfile_pread(f, out, sizeof(out), at), (ssize_t)sizeof(out));
	cr_assert_str_eq(out, marker);
	cr_assert_eq(cfile_pread(f, z, sizeof(z), 3 * GiB), 4096);
	cr_assert_arr_eq(z, zero, sizeof(z));
	cr_assert_eq(cfile_pread(f, z, 4, 0), 4);
	cr_assert_arr_eq(z, "head", 4);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_lt(st.st_blocks * 512, 1 << 20, "backing uses %lld bytes",
		     (long long)st.st_blocks * 512);
	cfile_release(f);
}

Test(cfile, a_truncate_up_reads_zeros_where_data_was_before)
{
	static uint8_t buf[3 * BS], out[3 * BS];
	static const uint8_t zero[3 * BS];
	int fd;
	struct cfile *f = cf_new("cfile", &fd);

	memset(buf, 0xAB, sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_truncate(f, 10), 0);
	cr_assert_eq(cfile_truncate(f, 3 * BS), 0);
	cr_assert_eq(cfile_pread(f, out, sizeof(out), 0), (ssize_t)sizeof(out));
	cr_assert_arr_eq(out, buf, 10);
	cr_assert_arr_eq(out + 10, zero, sizeof(out) - 10);
	cfile_release(f);
}

Test(cfile, appends_do_not_write_the_header_until_a_commit)
{
	static uint8_t buf[BS];
	int fd;
	struct cfile *f = cf_new("cfile", &fd), *g;
	uint8_t region[FORMAT_HEADER_SIZE], before[FORMAT_HEADER_SIZE];

	cr_assert_eq(pread(fd, before, sizeof(before), 0), (ssize_t)sizeof(before));
	for (int i = 0; i < 50; i++)
		cr_assert_eq(cfile_pwrite(f, buf, 1000, i * 1000ULL), 1000);
	cr_assert_eq(pread(fd, region, sizeof(region), 0), (ssize_t)sizeof(region));
	cr_assert_arr_eq(region, before, sizeof(region));
	/* A second opener (as after a crash) sees the committed size. */
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	cr_assert_eq(cfile_size(g), 0);
	cfile_release(g);
	cr_assert_eq(cfile_commit(f), 0);
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	cr_assert_eq(cfile_size(g), 50000);
	cfile_release(g);
	cfile_release(f);
}

Test(cfile, blocks_written_after_the_last_commit_are_ignored_when_it_grows)
{
	static uint8_t buf[2 * BS], out[2 * BS];
	static const uint8_t zero[2 * BS];
	int fd;
	struct cfile *f = cf_new("cfile", &fd), *g;

	memset(buf, 'a', 100);
	cr_assert_eq(cfile_pwrite(f, buf, 100, 0), 100);
	cr_assert_eq(cfile_fsync(f, 0), 0);
	memset(buf, 'b', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), 100),
		     (ssize_t)sizeof(buf));
	/* "Crash": f is never committed; g takes over the file. */
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	cr_assert_eq(cfile_size(g), 100);
	cr_assert_eq(cfile_truncate(g, 2 * BS), 0);
	cr_assert_eq(cfile_pread(g, out, sizeof(out), 0), (ssize_t)sizeof(out));
	cr_assert_eq(out[99], 'a');
	cr_assert_arr_eq(out + 100, zero, sizeof(out) - 100);
	cfile_release(g);
	free(f);	/* leak nothing, commit nothing: not cfile_release */
}

/* Reads every block alone; returns a bitmask of blocks that failed. */
static unsigned failing_blocks(struct cfile *f, unsigned nblocks)
{
	uint8_t out[BS];
	unsigned mask = 0;

	for (unsigned b = 0; b < nblocks; b++) {
		ssize_t n = cfile_pread(f, out, BS, (uint64_t)b * BS);

		if (n < 0) {
			cr_assert_eq(n, -EBADMSG);
			mask |= 1u << b;
		}
	}
	return mask;
}

static void flip(int fd, uint64_t off)
{
	uint8_t c;

	cr_assert_eq(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x10;
	cr_assert_eq(pwrite(fd, &c, 1, (off_t)off), 1);
}

Test(cfile, every_flipped_byte_of_a_block_fails_that_block_only)
{
	static uint8_t buf[3 * BS];
	int fd;
	struct cfile *f = cf_new("cfile", &fd);

	memset(buf, 'x', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_fsync(f, 0), 0);
	for (uint64_t i = 0; i < 3 * SB; i++) {
		flip(fd, FORMAT_HEADER_SIZE + i);
		cr_assert_eq(failing_blocks(f, 3), 1u << (i / SB), "byte %llu",
			     (unsigned long long)i);
		flip(fd, FORMAT_HEADER_SIZE + i);
	}
	cr_assert_eq(failing_blocks(f, 3), 0);
	cfile_release(f);
}

Test(cfile, every_flipped_byte_of_the_live_slot_fails_when_the_other_is_gone)
{
	int fd, slot;
	struct cfile *f = cf_new("cfile", &fd), *g;
	static const uint8_t zero[FORMAT_SLOT_SIZE];

	cr_assert_eq(cfile_pwrite(f, "abc", 3, 0), 3);
	cr_assert_eq(cfile_release(f), 0);	/* commit: slot 1 is live */
	slot = 1;
	cr_assert_eq(pwrite(fd, zero, sizeof(zero), 0), (ssize_t)sizeof(zero));
	for (unsigned i = 0; i < FORMAT_SLOT_SIZE; i++) {
		int rc;

		flip(fd, slot * FORMAT_SLOT_STRIDE + i);
		rc = cfile_open(fd, &cf_vol, &g);
		cr_assert(rc == -EUCLEAN || rc == -EPROTO ||
			  rc == -EKEYREJECTED || rc == -ENOKEY,
			  "byte %u: rc %d", i, rc);
		flip(fd, slot * FORMAT_SLOT_STRIDE + i);
	}
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	cr_assert_eq(cfile_size(g), 3);
	cfile_release(g);
}

Test(cfile, a_torn_header_write_falls_back_to_the_older_slot)
{
	int fd;
	struct cfile *f = cf_new("cfile", &fd), *g;
	uint8_t out[3];

	cr_assert_eq(cfile_pwrite(f, "abc", 3, 0), 3);
	cr_assert_eq(cfile_commit(f), 0);	/* slot 1: size 3 */
	cr_assert_eq(cfile_pwrite(f, "defg", 4, 3), 4);
	cr_assert_eq(cfile_commit(f), 0);	/* slot 0: size 7 */
	cr_assert_eq(pwrite(fd, "torn", 4, 200), 4);
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	cr_assert_eq(cfile_size(g), 3);
	cr_assert_eq(cfile_pread(g, out, 3, 0), 3);
	cr_assert_arr_eq(out, "abc", 3);
	cfile_release(g);
	cfile_release(f);
}

static void copy_bytes(int from, uint64_t src, int to, uint64_t dst,
		       size_t n)
{
	uint8_t buf[2 * SB];

	cr_assert(n <= sizeof(buf));
	cr_assert_eq(pread(from, buf, n, (off_t)src), (ssize_t)n);
	cr_assert_eq(pwrite(to, buf, n, (off_t)dst), (ssize_t)n);
}

static struct cfile *three_blocks(int *fd, char c)
{
	static uint8_t buf[3 * BS];
	struct cfile *f = cf_new("cfile", fd);

	memset(buf, c, sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_fsync(f, 0), 0);
	return f;
}

Test(cfile, swapped_blocks_fail)
{
	int fd;
	struct cfile *f = three_blocks(&fd, 's');
	uint8_t b0[SB], b1[SB];

	cr_assert_eq(pread(fd, b0, SB, format_block_offset(0)), SB);
	cr_assert_eq(pread(fd, b1, SB, format_block_offset(1)), SB);
	cr_assert_eq(pwrite(fd, b1, SB, format_block_offset(0)), SB);
	cr_assert_eq(pwrite(fd, b0, SB, format_block_offset(1)), SB);
	cr_assert_eq(failing_blocks(f, 3), 0x3);
	cfile_release(f);
}

Test(cfile, a_block_from_another_file_fails)
{
	int fa, fb;
	struct cfile *a = three_blocks(&fa, 'a'), *b = three_blocks(&fb, 'b');

	copy_bytes(fb, format_block_offset(1), fa, format_block_offset(1), SB);
	cr_assert_eq(failing_blocks(a, 3), 0x2);
	cfile_release(a);
	cfile_release(b);
}

Test(cfile, a_header_from_another_file_opens_but_no_block_reads)
{
	int fa, fb;
	struct cfile *a = three_blocks(&fa, 'a'), *b = three_blocks(&fb, 'b');

	cfile_release(a);
	copy_bytes(fb, 0, fa, 0, FORMAT_HEADER_SIZE);
	cr_assert_eq(cfile_open(fa, &cf_vol, &a), 0);
	cr_assert_eq(failing_blocks(a, 3), 0x7);
	cfile_release(a);
	cfile_release(b);
}

Test(cfile, a_file_from_another_volume_is_refused)
{
	int fd;
	struct cfile *f = three_blocks(&fd, 'v');
	uint8_t other[FORMAT_ID_LEN] = { 1 };
	struct cfile_volume vol2 = { .volume_id = other, .kek = cf_vol.kek,
				     .active_version = 1, .journal_dirfd = -1 };

	cfile_release(f);
	cr_assert_eq(cfile_open(fd, &vol2, &f), -EUCLEAN);
}

Test(cfile, a_zeroed_block_fails_in_dense_and_sparse_files)
{
	static const uint8_t zero[SB];
	int fd;
	struct cfile *f = three_blocks(&fd, 'z');
	uint64_t far = 1000ULL * BS;

	cr_assert_eq(pwrite(fd, zero, SB, format_block_offset(1)), SB);
	cr_assert_eq(failing_blocks(f, 3), 0x2);
	/* Make it sparse; the zeroed block is still no hole. */
	cr_assert_eq(cfile_pwrite(f, "end", 3, far), 3);
	cr_assert_eq(failing_blocks(f, 3), 0x2);
	f = cf_reopen(f, fd);
	cr_assert_eq(failing_blocks(f, 3), 0x2);
	/* Zeroing its map is caught too, for every block it covers. */
	cr_assert_eq(pwrite(fd, zero, SB, format_map_offset(0)), SB);
	f = cf_reopen(f, fd);
	cr_assert_eq(failing_blocks(f, 3), 0x7);
	cfile_release(f);
}

Test(cfile, blocks_cut_off_the_end_fail_and_the_rest_reads)
{
	int fd;
	struct cfile *f = three_blocks(&fd, 'c');

	cr_assert_eq(ftruncate(fd, (off_t)format_block_offset(2)), 0);
	cr_assert_eq(failing_blocks(f, 3), 0x4);
	cr_assert_eq(ftruncate(fd, (off_t)format_block_offset(1) + 100), 0);
	cr_assert_eq(failing_blocks(f, 3), 0x6);
	cfile_release(f);
}

struct writer {
	struct cfile *f;
	int id;
};

/* Each writer writes whole-file patterns of its own byte, block-unaligned. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[5 * BS];

	memset(buf, 'A' + w->id, sizeof(buf));
	for (int i = 0; i < 200; i++) {
		uint64_t off = (uint64_t)((i * 7 + w->id * 13) % 11) * 1000;

		if (cfile_pwrite(w->f, buf, sizeof(buf) - off % BS, off) < 0)
			return (void *)1;
	}
	return NULL;
}

static void *reader_main(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[BS];

	for (int i = 0; i < 2000; i++) {
		ssize_t n = cfile_pread(w->f, buf, BS, (uint64_t)(i % 4) * BS);

		if (n < 0)
			return (void *)2;
		for (ssize_t j = 1; j < n; j++) {
			/* A block never mixes two writes' bytes, except at
			 * write boundaries, which are multiples of 1000. */
			if (buf[j] != buf[j - 1] &&
			    ((uint64_t)(i % 4) * BS + (uint64_t)j) % 1000)
				return (void *)3;
		}
	}
	return NULL;
}

Test(cfile, concurrent_writers_and_readers_never_tear_a_block)
{
	int fd;
	struct cfile *f = cf_new("cfile", &fd);
	pthread_t t[6];
	struct writer w[6];
	void *res;

	for (int i = 0; i < 6; i++) {
		w[i] = (struct writer){ f, i };
		cr_assert_eq(pthread_create(&t[i], NULL,
					    i < 4 ? writer_main : reader_main,
					    &w[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(pthread_join(t[i], &res), 0);
		cr_assert_null(res, "thread %d failed: %p", i, res);
	}
	cfile_release(f);
}

Test(cfile, a_full_disk_gives_a_short_write_that_reads_back)
{
	static uint8_t buf[20 * BS], out[20 * BS];
	struct rlimit lim;
	int fd;
	struct cfile *f = three_blocks(&fd, 'o');
	ssize_t n;

	/* RLIMIT_FSIZE cuts writes short the way a full disk does. */
	signal(SIGXFSZ, SIG_IGN);
	lim.rlim_cur = lim.rlim_max = format_block_offset(8) + 100;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	memset(buf, 'n', sizeof(buf));
	n = cfile_pwrite(f, buf, sizeof(buf), 2 * BS + 10);
	cr_assert_gt(n, 0);
	cr_assert_lt(n, (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_size(f), 2 * BS + 10 + (uint64_t)n);
	cr_assert_eq(cfile_pread(f, out, sizeof(out), 0),
		     (ssize_t)(2 * BS + 10 + (uint64_t)n));
	for (uint64_t i = 0; i < 2 * BS + 10; i++)
		cr_assert_eq(out[i], 'o');
	for (uint64_t i = 2 * BS + 10; i < 2 * BS + 10 + (uint64_t)n; i++)
		cr_assert_eq(out[i], 'n');
	/* Nothing more fits: an error, and the file is unharmed. */
	cr_assert_lt(cfile_pwrite(f, buf, sizeof(buf), cfile_size(f)), 0);
	cr_assert_eq(failing_blocks(f, 8), 0);
	cfile_release(f);
}

Test(cfile, sizes_past_the_format_limit_are_refused)
{
	int fd;
	struct cfile *f = cf_new("cfile", &fd);

	cr_assert_eq(cfile_pwrite(f, "x", 1, FORMAT_MAX_SIZE), -EFBIG);
	cr_assert_eq(cfile_truncate(f, FORMAT_MAX_SIZE + 1), -EFBIG);
	cfile_release(f);
}

Test(cfile, a_file_truncated_to_zero_is_dense_again_and_small)
{
	int fd;
	struct cfile *f = cf_new("cfile", &fd);
	struct stat st;

	cr_assert_eq(cfile_pwrite(f, "x", 1, 1ULL << 33), 1);
	cr_assert_eq(cfile_truncate(f, 0), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, FORMAT_HEADER_SIZE);
	cr_assert_eq(cfile_pwrite(f, "abc", 3, 0), 3);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_size(f), 3);
	cfile_release(f);
}

/* --- a writer killed at random moments (kill -9) --- */

#define KILL_BLOCKS 64
#define KILL_SIZE (KILL_BLOCKS * BS)

/* Every third write of the killed writer is a punch or a zero range. */
static bool kill_falloc;

/*
 * The k-th write of the killed writer: deterministic, so both sides know.
 * *mode is -1 for a write of val, or the fallocate mode zeroing the range.
 */
static void kth_write(uint64_t k, uint64_t *off, size_t *len, uint8_t *val,
		      int *mode)
{
	uint64_t s = k * 0x9E3779B97F4A7C15ULL + 1;

	*off = tu_rand(&s) % KILL_SIZE;
	*len = 1 + tu_rand(&s) % (64 * 1024);
	*val = (uint8_t)(1 + k % 255);
	*mode = -1;
	if (kill_falloc && k % 3 == 0) {
		*len = 1 + tu_rand(&s) % KILL_SIZE;
		*val = 0;
		*mode = k % 2 ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE :
				FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	}
	if (*off + *len > KILL_SIZE)
		*len = KILL_SIZE - *off;
}

static void apply_write(uint8_t *img, uint64_t k)
{
	uint64_t off;
	size_t len;
	uint8_t val;
	int mode;

	kth_write(k, &off, &len, &val, &mode);
	memset(img + off, val, len);
}

/* Child: overwrite forever, telling the parent each write that returned. */
static void writer_child(int fd, int log)
{
	static uint8_t buf[64 * 1024];
	struct cfile *f;

	if (cfile_open(fd, &cf_vol, &f))
		_exit(3);
	for (uint64_t k = 1;; k++) {
		uint64_t off;
		size_t len;
		uint8_t val;
		int mode;

		kth_write(k, &off, &len, &val, &mode);
		memset(buf, val, len);
		if (mode >= 0 ? cfile_fallocate(f, mode, off, len) != 0 :
				cfile_pwrite(f, buf, len, off) != (ssize_t)len)
			_exit(4);
		if (write(log, &k, sizeof(k)) != sizeof(k))
			_exit(5);
	}
}

/*
 * Kills a writer `rounds` times, each after at least min_us; returns how
 * many blocks were torn.
 */
static unsigned kill_rounds(int rounds, int journal_dirfd, unsigned min_us)
{
	static uint8_t img[3][KILL_SIZE], out[KILL_SIZE];
	uint64_t seed = 99;
	unsigned torn = 0;

	cf_vol.journal_dirfd = journal_dirfd;
	for (int r = 0; r < rounds; r++) {
		int fd, logp[2], status;
		struct cfile *f = cf_new("cfile", &fd);
		uint64_t k = 0, got;
		pid_t pid;

		memset(out, 0, sizeof(out));
		cr_assert_eq(cfile_pwrite(f, out, KILL_SIZE, 0), KILL_SIZE);
		cr_assert_eq(cfile_release(f), 0);	/* all committed */
		cr_assert_eq(pipe(logp), 0);
		pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			close(logp[0]);
			writer_child(fd, logp[1]);
		}
		close(logp[1]);
		/* The scenario: a kill at a random moment of the writes. */
		usleep((useconds_t)(min_us + tu_rand(&seed) % 30000));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		cr_assert(WIFSIGNALED(status), "writer exited %d",
			  WEXITSTATUS(status));
		while (read(logp[0], &got, sizeof(got)) == sizeof(got))
			k = got;
		close(logp[0]);
		/* The file holds the state after write k, k+1 or k+2 (the
		 * log lags a write that returned), block by block. */
		memset(img, 0, sizeof(img));
		for (uint64_t j = 1; j <= k + 2; j++) {
			if (j <= k)
				apply_write(img[0], j);
			if (j <= k + 1)
				apply_write(img[1], j);
			apply_write(img[2], j);
		}
		cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
		for (unsigned b = 0; b < KILL_BLOCKS; b++) {
			uint8_t *p = out + b * BS;
			ssize_t n = cfile_pread(f, p, BS, (uint64_t)b * BS);

			if (n < 0) {
				torn++;
				continue;
			}
			cr_assert_eq(n, BS);
			cr_assert(!memcmp(p, img[0] + b * BS, BS) ||
				  !memcmp(p, img[1] + b * BS, BS) ||
				  !memcmp(p, img[2] + b * BS, BS),
				  "round %d block %u: neither old nor new", r, b);
		}
		cfile_release(f);
		close(fd);
	}
	cf_vol.journal_dirfd = -1;
	return torn;
}

/* kill_rounds with a journal folder of its own, which must end empty. */
static void kill_with_journal(int rounds, unsigned min_us)
{
	char dir[] = "/tmp/phifs-journal-XXXXXX";
	int jfd;

	cr_assert(mkdtemp(dir));
	jfd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert(jfd >= 0);
	cr_assert_eq(kill_rounds(rounds, jfd, min_us), 0, "a block was torn");
	close(jfd);
	rmdir(dir);	/* every journal was replayed and removed */
	cr_assert_eq(access(dir, F_OK), -1, "journal left behind");
}

Test(cfile, a_writer_killed_mid_rewrite_leaves_every_block_old_or_new)
{
	kill_with_journal(40, 2000);
}

/* Late kills: hundreds of records in, the journal is written through its
 * mapping (after JOURNAL_MAP_AFTER records), which must hold up the same. */
Test(cfile, a_writer_killed_after_many_rewrites_leaves_every_block_old_or_new)
{
	kill_with_journal(20, 60000);
}

/* Punches and zero ranges among the writes: holes made, dense files
 * going sparse, backing space punched, each at any moment of a kill. */
Test(cfile, a_writer_killed_amid_punches_and_zero_ranges_leaves_old_or_zero)
{
	kill_falloc = true;
	kill_with_journal(40, 2000);
	kill_with_journal(10, 60000);
}

Test(cfile, a_failing_backing_read_is_an_error_never_a_short_read)
{
	static uint8_t buf[4 * BS], out[4 * BS];
	char proc[64];
	int fd, wo;
	struct cfile *f = cf_new("cfile", &fd);

	memset(buf, 'r', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_commit(f), 0);
	/* Swap the fd under the cfile for a write-only one: every backing
	 * read now fails, as a dying disk's would. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	wo = open(proc, O_WRONLY);
	cr_assert(wo >= 0);
	cr_assert_eq(dup2(wo, fd), fd);
	for (uint64_t off = 0; off < sizeof(buf); off += 1000)
		cr_assert_lt(cfile_pread(f, out, sizeof(out) - off, off), 0,
			     "read at %llu", (unsigned long long)off);
	free(f);	/* its fd is no longer usable to commit through */
	close(wo);
}

Test(cfile, a_read_failing_past_its_first_chunk_returns_no_partial_count)
{
	static uint8_t buf[100 * BS];
	int fd;
	struct cfile *f = cf_new("cfile", &fd);

	memset(buf, 'p', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_commit(f), 0);
	/* Block 80 and on are gone: the first 64-block chunk reads fine. */
	cr_assert_eq(ftruncate(fd, (off_t)format_block_offset(80)), 0);
	cr_assert_eq(cfile_pread(f, buf, sizeof(buf), 0), -EBADMSG);
	cr_assert_eq(cfile_pread(f, buf, 70 * BS, 0), 70 * BS);
	cfile_release(f);
}

/* The size of the one journal in dir. */
static off_t journal_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct stat st = { 0 };

	cr_assert(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			cr_assert_eq(fstatat(dirfd(d), e->d_name, &st, 0), 0);
	closedir(d);
	return st.st_size;
}

Test(cfile, a_shrink_voids_the_journal_so_no_stale_record_replays)
{
	static uint8_t buf[8 * BS];
	char dir[] = "/tmp/phifs-journal-XXXXXX";
	struct cfile *f, *g;
	int fd, jfd;

	cr_assert(mkdtemp(dir));
	jfd = open(dir, O_RDONLY | O_DIRECTORY);
	cf_vol.journal_dirfd = jfd;
	f = cf_new("cfile", &fd);
	memset(buf, 'o', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_commit(f), 0);
	/* Journaled rewrites of committed block 5, enough for the journal
	 * to be mapped ... */
	memset(buf, 'X', BS);
	for (int i = 0; i < 40; i++)
		cr_assert_eq(cfile_pwrite(f, buf, BS, 5 * BS), BS);
	cr_assert_eq(journal_bytes(dir), (FORMAT_JOURNAL_MAX + 1) * SB,
		     "the journal was not mapped (allocated whole)");
	/* ... then block 5 falls past the end, and is written anew without
	 * the journal once the file grows back. */
	cr_assert_eq(cfile_truncate(f, 2 * BS), 0);
	memset(buf, 'Y', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, 6 * BS, 2 * BS), 6 * BS);
	cr_assert_eq(cfile_commit(f), 0);
	/* "Crash": f is never released; g's open replays what is left. */
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	cr_assert_eq(cfile_pread(g, buf, BS, 5 * BS), BS);
	cr_assert_eq(buf[0], 'Y', "a stale journal record came back");
	cfile_release(g);
	free(f);
	cf_vol.journal_dirfd = -1;
	close(jfd);
	cr_assert_eq(rmdir(dir), 0, "a journal was left behind");
}

/*
 * An append whose first block lies inside the committed size journals its
 * chunk, which runs on past that size.  A second append rewrites the last of
 * those blocks before any commit covers it, so without the journal; after
 * the commit that covers it, replaying the first record must not bring the
 * old block back.
 */
Test(cfile, a_record_never_names_blocks_past_the_committed_size)
{
	static uint8_t buf[20000], got[20000];
	char dir[] = "/tmp/phifs-journal-XXXXXX";
	struct cfile *f, *g;
	int fd, jfd;

	cr_assert(mkdtemp(dir));
	jfd = open(dir, O_RDONLY | O_DIRECTORY);
	cf_vol.journal_dirfd = jfd;
	f = cf_new("cfile", &fd);
	memset(buf, 'a', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, 8193, 0), 8193);
	cr_assert_eq(cfile_commit(f), 0);
	/* Blocks 2-4 in one chunk: block 2 is committed, 3 and 4 are not. */
	memset(buf, 'b', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, 11802, 8193), 11802);
	/* Block 4 again, still uncommitted: written in place. */
	memset(buf, 'c', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, 18550, 19995), 18550);
	cr_assert_eq(cfile_commit(f), 0);
	/* "Crash": f is never released; g's open replays what is left. */
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	cr_assert_eq(cfile_size(g), 38545);
	cr_assert_eq(cfile_pread(g, got, 18550, 19995), 18550);
	for (size_t i = 0; i < 18550; i++)
		cr_assert_eq(got[i], 'c', "byte %zu of the second append is "
			     "0x%02x: a stale journal record came back",
			     19995 + i, got[i]);
	cfile_release(g);
	free(f);
	cf_vol.journal_dirfd = -1;
	close(jfd);
	cr_assert_eq(rmdir(dir), 0, "a journal was left behind");
}

/* Pages of fd's [off, off + len) in the page cache. */
static size_t resident(int fd, off_t off, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	off_t start = off / page * page;
	size_t span = (size_t)(off + (off_t)len - start), n = 0;
	unsigned char vec[4096];
	void *p = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, start);

	cr_assert_neq(p, MAP_FAILED);
	cr_assert_leq(span / (size_t)page + 1, sizeof(vec));
	cr_assert_eq(mincore(p, span, vec), 0);
	for (size_t i = 0; i < (span + (size_t)page - 1) / (size_t)page; i++)
		n += vec[i] & 1;
	munmap(p, span);
	return n;
}

struct residency {
	int fd;
	off_t off;
	size_t len, pages, got;
};

/* Whether all the pages wanted are in: the read-ahead runs elsewhere. */
static bool all_resident(void *arg)
{
	struct residency *r = arg;

	r->got = resident(r->fd, r->off, r->len);
	return r->got >= r->pages;
}

Test(cfile, readahead_brings_in_the_stored_range_and_no_more)
{
	static uint8_t buf[1 << 20];
	char path[] = "/var/tmp/phifs-ra.XXXXXX";
	uint64_t from = format_block_offset(256), to = format_block_offset(512);
	struct statfs sfs;
	struct cfile *f;
	size_t pages = (size_t)(to - from) / 4096, got;
	struct residency ra;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	unlink(path);
	if (fstatfs(fd, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC)
		cr_skip_test("/var/tmp is tmpfs: its pages cannot be dropped");
	cr_assert_eq(cfile_create(fd, &cf_vol, &f), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf),
					  (uint64_t)i << 20), (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_fsync(f, 0), 0);
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	cr_assert_eq(resident(fd, (off_t)from, (size_t)(to - from)), 0);

	/* Plaintext [1 MiB, 2 MiB): stored blocks 256 to 511. */
	cfile_readahead(f, 1 << 20, 1 << 20);
	ra.fd = fd;
	ra.off = (off_t)from;
	ra.len = (size_t)(to - from);
	ra.pages = pages;
	tu_wait_until(all_resident, &ra, 5000);
	got = ra.got;
	cr_assert_geq(got, pages, "%zu of %zu pages read ahead", got, pages);
	/* Nothing from plaintext 3 MiB on. */
	cr_assert_eq(resident(fd, (off_t)format_block_offset(768),
			      (size_t)(format_block_offset(1024) -
				       format_block_offset(768))), 0);
	/* Past the end or empty: nothing to do, nothing breaks. */
	cfile_readahead(f, 8u << 20, 1 << 20);
	cfile_readahead(f, 0, 0);
	cfile_release(f);
	close(fd);
}

/* --- what is reported and what is refused --- */

Test(cfile, the_block_that_fails_authentication_is_named)
{
	uint8_t buf[5 * BS], out[BS];
	struct cfile *f;
	int fd;

	f = cf_new("cfile", &fd);
	memset(buf, 7, sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_release(f), 0);
	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
	cr_expect_eq(cfile_fault(f), -1);
	cr_assert_eq(pwrite(fd, "\x55", 1, (off_t)format_block_offset(3) + 20),
		     1);
	cr_expect_eq(cfile_pread(f, out, BS, 3 * BS), -EBADMSG);
	cr_expect_eq(cfile_fault(f), 3);
	cr_expect_eq(cfile_pread(f, buf, sizeof(buf), 0), -EBADMSG,
		     "through the chunked path too");
	cr_expect_eq(cfile_fault(f), 3);
	cfile_release(f);
	close(fd);
}

/*
 * A size tag that stays after the header moves on would show its old size
 * once the file is closed: a commit that cannot remove it must fail.
 */
Test(cfile, a_size_tag_that_cannot_be_removed_fails_the_commit)
{
	struct crypto_key *sk = crypto_key_new();
	uint8_t buf[100] = { 1 };
	struct cfile *f;
	int fd;

	cr_assert_not_null(sk);
	cf_vol.size_key = sk;
	f = cf_new("cfile", &fd);
	cr_assert_eq(cfile_pwrite(f, buf, 10, 0), 10);
	cr_assert_eq(cfile_release(f), 0);
	if (fgetxattr(fd, FORMAT_SIZE_XATTR, NULL, 0) < 0)
		cr_skip_test("no size tag here (user xattrs on memfd: %s)",
			     strerror(errno));
	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(oldkernel_filter_fail(SYS_fremovexattr, EIO), 0);
	cr_expect_eq(cfile_commit(f), -EIO);
	cr_expect_eq(cfile_release(f), -EIO, "the size stays uncommitted");
	close(fd);
	cf_vol.size_key = NULL;
	crypto_key_free(sk);
}

/* --- what an open tells its caller --- */

/* A file of 32768 bytes grown to 36864, closed: slot 0 now the newer. */
static void grown_file(int *fd)
{
	static uint8_t buf[9 * BS];
	struct cfile *f;

	memset(buf, 'g', sizeof(buf));
	f = cf_new("cfile", fd);
	cr_assert_eq(cfile_pwrite(f, buf, 8 * BS, 0), 8 * BS);
	cr_assert_eq(cfile_commit(f), 0);
	cr_assert_eq(cfile_pwrite(f, buf, BS, 8 * BS), BS);
	cr_assert_eq(cfile_release(f), 0);
}

/* The slot with the higher seq (its seq field: bytes 16..23). */
static int newer_slot(int fd)
{
	uint64_t s0, s1;

	cr_assert_eq(pread(fd, &s0, 8, 16), 8);
	cr_assert_eq(pread(fd, &s1, 8, FORMAT_SLOT_STRIDE + 16), 8);
	return s1 > s0;
}

Test(cfile, an_open_that_falls_back_from_a_damaged_slot_says_which)
{
	struct cfile_note n;
	struct cfile *f;
	uint8_t buf[9 * BS];
	int fd, bad;

	grown_file(&fd);
	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
	cr_expect(!cfile_take_note(f, &n), "a sound header tells nothing");
	cr_assert_eq(cfile_release(f), 0);

	bad = newer_slot(fd);
	flip(fd, (uint64_t)bad * FORMAT_SLOT_STRIDE + 64);	/* its size */
	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
	cr_expect_eq(cfile_size(f), 8 * BS, "the older header is in force");
	cr_expect_eq(cfile_pread(f, buf, sizeof(buf), 0), 8 * BS);
	cr_assert(cfile_take_note(f, &n));
	cr_expect_eq(n.pick.refused, bad);
	cr_expect_eq(n.pick.slot, !bad);
	cr_expect_eq(n.pick.refused_rc, -EUCLEAN);
	cr_expect(n.pick.refused_seq_known);
	cr_expect_eq(n.pick.refused_seq, n.seq + 1);
	cr_expect_eq(n.size, 8 * BS);
	cr_expect_eq(n.tag, CFILE_TAG_NONE, "no size key, no tag");
	cr_expect(!cfile_take_note(f, &n), "told once per open");
	cr_assert_eq(cfile_release(f), 0);
	close(fd);
}

/* A size key for cf_vol, or a skip where memfds take no user xattrs. */
static struct crypto_key *with_size_key(void)
{
	struct crypto_key *sk = crypto_key_random();
	int fd = tu_memfd("probe"), r;

	cr_assert_not_null(sk);
	r = fsetxattr(fd, "user.phifs.probe", "x", 1, 0);
	close(fd);
	if (r < 0) {
		crypto_key_free(sk);
		cr_skip_test("no user xattrs on memfd: %s", strerror(errno));
	}
	cf_vol.size_key = sk;
	return sk;
}

Test(cfile, a_fallback_under_a_valid_size_tag_is_told_with_the_tag)
{
	uint8_t tag[FORMAT_SIZE_TAG_LEN];
	struct crypto_key *sk;
	struct cfile_note n;
	struct cfile *f;
	uint64_t said;
	struct stat st;
	int fd, bad;

	sk = with_size_key();
	grown_file(&fd);
	cr_assert_eq(fgetxattr(fd, FORMAT_SIZE_XATTR, tag, sizeof(tag)),
		     (ssize_t)sizeof(tag), "a closed file has a tag");
	bad = newer_slot(fd);
	flip(fd, (uint64_t)bad * FORMAT_SLOT_STRIDE + 64);
	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
	cr_assert(cfile_take_note(f, &n));
	cr_expect_eq(n.pick.refused, bad);
	cr_expect_eq(n.tag, CFILE_TAG_DIFFERS);
	cr_expect_eq(n.tag_size, 9 * BS);
	cr_expect_eq(n.size, 8 * BS);
	cr_expect(n.tag_removed, "open for writing: the tag goes");
	cr_expect_lt(fgetxattr(fd, FORMAT_SIZE_XATTR, tag, sizeof(tag)), 0);
	cr_assert_eq(cfile_release(f), 0);
	/* The close tags the size in force, which stat then shows. */
	cr_assert_eq(fgetxattr(fd, FORMAT_SIZE_XATTR, tag, sizeof(tag)),
		     (ssize_t)sizeof(tag));
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(format_size_untag(sk, (uint64_t)st.st_ino,
				       &(struct format_attrs){
					       st.st_mode & 07777, st.st_uid,
					       st.st_gid }, tag,
				       sizeof(tag), &said), 0);
	cr_expect_eq(said, 8 * BS);
	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
	cr_assert(cfile_take_note(f, &n), "the slot is still damaged");
	cr_expect_eq(n.tag, CFILE_TAG_MATCHES);
	cr_assert_eq(cfile_release(f), 0);
	close(fd);
	cf_vol.size_key = NULL;
	crypto_key_free(sk);
}

Test(cfile, a_size_tag_rolled_back_is_told_and_the_header_wins)
{
	uint8_t old[FORMAT_SIZE_TAG_LEN], buf[BS] = { 0 };
	struct crypto_key *sk;
	struct cfile_note n;
	struct cfile *f;
	int fd, ro;

	char path[64];

	sk = with_size_key();
	f = cf_new("cfile", &fd);
	cr_assert_eq(cfile_pwrite(f, buf, 100, 0), 100);
	cr_assert_eq(cfile_release(f), 0);
	cr_assert_eq(fgetxattr(fd, FORMAT_SIZE_XATTR, old, sizeof(old)),
		     (ssize_t)sizeof(old));
	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
	cr_assert_eq(cfile_pwrite(f, buf, BS, 100), BS);
	cr_assert_eq(cfile_release(f), 0);
	/* The old tag put back: it verifies, and says 100. */
	cr_assert_eq(fsetxattr(fd, FORMAT_SIZE_XATTR, old, sizeof(old), 0), 0);

	/* Read-only: told, and the tag stays. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY);
	cr_assert_geq(ro, 0);
	cr_assert_eq(cfile_open(ro, &cf_vol, &f), 0);
	cr_expect_eq(cfile_size(f), 100 + BS);
	cr_assert(cfile_take_note(f, &n));
	cr_expect_eq(n.pick.refused, -1);
	cr_expect_eq(n.tag, CFILE_TAG_DIFFERS);
	cr_expect_eq(n.tag_size, 100);
	cr_expect_eq(n.size, 100 + BS);
	cr_expect(!n.tag_removed);
	cr_assert_eq(cfile_release(f), 0);
	close(ro);

	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
	cr_assert(cfile_take_note(f, &n));
	cr_expect(n.tag_removed);
	cr_assert_eq(cfile_release(f), 0);
	close(fd);
	cf_vol.size_key = NULL;
	crypto_key_free(sk);
}

/* --- fallocate --- */

/*
 * fallocate on the reference memfd.  Its file system (shmem) zeroes no
 * range, so a zero range is a punch there, the size extended after.
 */
static void ref_fallocate(int ref, int mode, uint64_t off, uint64_t len)
{
	uint64_t size = ref_size(ref), end = off + len;

	if (!(mode & FALLOC_FL_ZERO_RANGE)) {
		cr_assert_eq(fallocate(ref, mode, (off_t)off, (off_t)len), 0);
		return;
	}
	if (off < size)
		cr_assert_eq(fallocate(ref, FALLOC_FL_PUNCH_HOLE |
				       FALLOC_FL_KEEP_SIZE, (off_t)off,
				       (off_t)((end < size ? end : size) - off)),
			     0);
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > size)
		cr_assert_eq(ftruncate(ref, (off_t)end), 0);
}

static const int falloc_modes[] = {
	0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	FALLOC_FL_ZERO_RANGE, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
};

/* One random write, truncate, reopen or fallocate (any mode), on both. */
static void random_falloc_op(struct cfile **f, int fd, int ref,
			     uint64_t *seed, uint64_t span, uint8_t *buf)
{
	uint64_t r = tu_rand(seed), off, len;
	int mode;

	if (r % 3) {
		random_op(f, fd, ref, seed, span, buf);
		return;
	}
	off = (r >> 8) % 2 ? edges[(r >> 9) % 9] + (r >> 16) % 4 * (span / 4) :
			     (r >> 8) % span;
	len = 1 + tu_rand(seed) % (tu_rand(seed) % 2 ? 300000 : 9000);
	mode = falloc_modes[tu_rand(seed) % 5];
	cr_assert_eq(cfile_fallocate(*f, mode, off, len), 0,
		     "mode %d at %llu+%llu", mode, (unsigned long long)off,
		     (unsigned long long)len);
	ref_fallocate(ref, mode, off, len);
	same_range(*f, ref, off > 5000 ? off - 5000 : 0, len + 10000);
	cr_assert_eq(cfile_size(*f), ref_size(ref));
}

Test(cfile, random_tables_with_every_fallocate_mode_match_a_plain_file)
{
	static uint8_t buf[400000];
	uint64_t seed = 0x5eed;
	int fd, ref = tu_memfd("ref");
	struct cfile *f = cf_new("cfile", &fd);

	for (int i = 0; i < 2000; i++)
		random_falloc_op(&f, fd, ref, &seed, 2 << 20, buf);
	same_file(f, ref);
	f = cf_reopen(f, fd);
	same_file(f, ref);
	cfile_release(f);
}

/* Backing bytes allocated to fd. */
static uint64_t allocated(int fd)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

Test(cfile, fallocate_reserves_the_stored_blocks_and_mode_0_extends)
{
	static uint8_t out[450 * BS];
	static const uint8_t zero[450 * BS];
	int fd;
	struct cfile *f = cf_new("cfile", &fd);
	uint64_t before;

	cr_assert_eq(cfile_pwrite(f, "abc", 3, 0), 3);
	before = allocated(fd);
	/* Past the end, keeping the size: space, and no new bytes. */
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 200 * BS), 0);
	cr_assert_eq(cfile_size(f), 3);
	cr_assert_geq(allocated(fd), before + 199 * SB);
	before = allocated(fd);
	/* Mode 0 far past the end: sparse, reads zeros, space reserved. */
	cr_assert_eq(cfile_fallocate(f, 0, 250 * BS + 7, 200 * BS), 0);
	cr_assert_eq(cfile_size(f), 450 * BS + 7);
	cr_assert_geq(allocated(fd), before + 199 * SB);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_size(f), 450 * BS + 7);
	cr_assert_eq(cfile_pread(f, out, sizeof(out), 0), (ssize_t)sizeof(out));
	cr_assert_arr_eq(out, "abc", 3);
	cr_assert_arr_eq(out + 3, zero, sizeof(out) - 3);
	/* Inside the file: nothing changes. */
	cr_assert_eq(cfile_fallocate(f, 0, 0, 10), 0);
	cr_assert_eq(cfile_size(f), 450 * BS + 7);
	cr_assert_eq(cfile_pread(f, out, 3, 0), 3);
	cr_assert_arr_eq(out, "abc", 3);
	cfile_release(f);
}

Test(cfile, fallocate_refuses_collapse_insert_bad_modes_and_ranges)
{
	int fd;
	struct cfile *f = three_blocks(&fd, 'm');

	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_COLLAPSE_RANGE, 0, BS),
		     -EOPNOTSUPP);
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_INSERT_RANGE, 0, BS),
		     -EOPNOTSUPP);
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, BS),
		     -EOPNOTSUPP, "a punch must keep the size");
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_PUNCH_HOLE |
				     FALLOC_FL_ZERO_RANGE |
				     FALLOC_FL_KEEP_SIZE, 0, BS), -EOPNOTSUPP);
	cr_assert_eq(cfile_fallocate(f, 0, 0, 0), -EINVAL);
	cr_assert_eq(cfile_fallocate(f, 0, FORMAT_MAX_SIZE, 1), -EFBIG);
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_KEEP_SIZE,
				     FORMAT_MAX_SIZE - 10, 11), -EFBIG);
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_ZERO_RANGE, 1, UINT64_MAX),
		     -EFBIG);
	cr_assert_eq(cfile_size(f), 3 * BS);
	cr_assert_eq(failing_blocks(f, 3), 0);
	cfile_release(f);
}

/* A dense file of n blocks of c, committed. */
static struct cfile *n_blocks(int *fd, unsigned n, char c)
{
	uint8_t *buf = malloc((size_t)n * BS);
	struct cfile *f = cf_new("cfile", fd);

	memset(buf, c, (size_t)n * BS);
	cr_assert_eq(cfile_pwrite(f, buf, (size_t)n * BS, 0),
		     (ssize_t)n * BS);
	free(buf);
	return cf_reopen(f, *fd);
}

/* Plaintext [off, off + len) of f is all c. */
static void all_of(struct cfile *f, uint64_t off, size_t len, char c)
{
	uint8_t *out = malloc(len);

	cr_assert_eq(cfile_pread(f, out, len, off), (ssize_t)len);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(out[i], (uint8_t)c, "byte %llu",
			     (unsigned long long)(off + i));
	free(out);
}

Test(cfile, a_punched_hole_reads_zeros_frees_space_and_stays_authenticated)
{
	static const uint8_t zero[SB];
	int fd;
	struct cfile *f = n_blocks(&fd, 64, 'p'), *g;
	uint64_t before = allocated(fd);

	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_PUNCH_HOLE |
				     FALLOC_FL_KEEP_SIZE, 5 * BS + 100,
				     40 * BS), 0);
	cr_assert_eq(cfile_size(f), 64 * BS);
	all_of(f, 0, 5 * BS + 100, 'p');
	all_of(f, 5 * BS + 100, 40 * BS, 0);
	all_of(f, 45 * BS + 100, 19 * BS - 100, 'p');
	cr_assert_lt(allocated(fd), before - 30 * SB, "the space went back");
	/* What a crash now would find: the punch is in force on disk. */
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	all_of(g, 5 * BS + 100, 40 * BS, 0);
	all_of(g, 45 * BS + 100, 19 * BS - 100, 'p');
	cfile_release(g);
	f = cf_reopen(f, fd);
	all_of(f, 5 * BS + 100, 40 * BS, 0);
	/* The holes are the map's word, which is sealed: zeroed, it fails
	 * every block of the group, holes included. */
	cr_assert_eq(pwrite(fd, zero, SB, (off_t)format_map_offset(0)), SB);
	f = cf_reopen(f, fd);
	cr_assert_eq(failing_blocks(f, 32), 0xffffffffu);
	cfile_release(f);
}

Test(cfile, a_flipped_map_byte_fails_the_punched_blocks_too)
{
	int fd;
	struct cfile *f = n_blocks(&fd, 40, 'q');

	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_PUNCH_HOLE |
				     FALLOC_FL_KEEP_SIZE, 0, 20 * BS), 0);
	f = cf_reopen(f, fd);
	cr_assert_eq(failing_blocks(f, 32), 0);
	flip(fd, format_map_offset(0) + 100);
	f = cf_reopen(f, fd);
	cr_assert_eq(failing_blocks(f, 32), 0xffffffffu);
	cfile_release(f);
}

Test(cfile, a_small_zero_range_is_encrypted_zeros_never_a_hole)
{
	static const uint8_t zero[SB];
	int fd;
	struct cfile *f = n_blocks(&fd, 8, 'z');

	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_ZERO_RANGE |
				     FALLOC_FL_KEEP_SIZE, BS - 1, 3 * BS + 2),
		     0);
	all_of(f, 0, BS - 1, 'z');
	all_of(f, BS - 1, 3 * BS + 2, 0);
	all_of(f, 4 * BS + 1, 4 * BS - 1, 'z');
	f = cf_reopen(f, fd);
	all_of(f, BS - 1, 3 * BS + 2, 0);
	/* An all-zero stored block is damage, not a hole. */
	cr_assert_eq(pwrite(fd, zero, SB, (off_t)format_block_offset(2)), SB);
	cr_assert_eq(failing_blocks(f, 8), 0x4);
	cfile_release(f);
}

Test(cfile, a_zero_range_past_the_end_extends_unless_keep_size)
{
	int fd;
	struct cfile *f = n_blocks(&fd, 4, 'e');

	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_ZERO_RANGE |
				     FALLOC_FL_KEEP_SIZE, 3 * BS, 100 * BS),
		     0);
	cr_assert_eq(cfile_size(f), 4 * BS);
	all_of(f, 0, 3 * BS, 'e');
	all_of(f, 3 * BS, BS, 0);
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_ZERO_RANGE, BS + 5,
				     100 * BS), 0);
	cr_assert_eq(cfile_size(f), 101 * BS + 5);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_size(f), 101 * BS + 5);
	all_of(f, 0, BS + 5, 'e');
	all_of(f, BS + 5, 100 * BS, 0);
	cfile_release(f);
}

Test(cfile, a_fallocate_without_space_leaves_the_file_as_it_was)
{
	int fd;
	struct cfile *f = n_blocks(&fd, 4, 's');
	uint64_t before;
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	before = allocated(fd);
	/* The backing store is full from here on. */
	cr_assert_eq(oldkernel_filter_fail(SYS_fallocate, ENOSPC), 0);
	cr_assert_eq(cfile_fallocate(f, 0, 2 * BS, 1000 * BS), -ENOSPC);
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_ZERO_RANGE, BS, 100 * BS),
		     -ENOSPC);
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 10 * BS),
		     -ENOSPC);
	cr_assert_eq(cfile_size(f), 4 * BS);
	all_of(f, 0, 4 * BS, 's');
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_size(f), 4 * BS);
	all_of(f, 0, 4 * BS, 's');
	cr_assert_eq(allocated(fd), before);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, format_backing_size(4 * BS));
	cfile_release(f);
}

Test(cfile, a_zero_range_that_made_holes_is_on_disk_when_it_returns)
{
	int fd;
	struct cfile *f = n_blocks(&fd, 64, 'k'), *g;

	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_ZERO_RANGE |
				     FALLOC_FL_KEEP_SIZE, 10 * BS, 30 * BS),
		     0);
	/* A second opener sees what a kill now would leave. */
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	all_of(g, 0, 10 * BS, 'k');
	all_of(g, 10 * BS, 30 * BS, 0);
	all_of(g, 40 * BS, 24 * BS, 'k');
	cfile_release(g);
	cfile_release(f);
}

Test(cfile, a_reservation_reserves_the_journal_too_while_the_file_is_open)
{
	char dir[] = "/tmp/phifs-journal-XXXXXX";
	struct cfile *f;
	int fd;

	cr_assert(mkdtemp(dir));
	cf_vol.journal_dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert(cf_vol.journal_dirfd >= 0);
	f = n_blocks(&fd, 4, 'j');
	cr_assert_eq(journal_bytes(dir), 0, "no journal yet");
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 8 * BS), 0);
	/* Rewrites of committed blocks go through it: its largest size. */
	cr_assert_eq(journal_bytes(dir), (off_t)(FORMAT_JOURNAL_MAX + 1) * SB);
	all_of(f, 0, 4 * BS, 'j');
	cfile_release(f);
	close(cf_vol.journal_dirfd);
	cf_vol.journal_dirfd = -1;
	cr_assert_eq(rmdir(dir), 0, "the journal went with the last close");
}

Test(cfile, a_punch_and_a_reservation_across_a_group_boundary)
{
	static uint8_t buf[64 * BS];
	const uint64_t seam = (uint64_t)FORMAT_GROUP_BLOCKS * BS;
	int fd;
	struct cfile *f = cf_new("cfile", &fd);

	memset(buf, 'g', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), seam - 32 * BS),
		     (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_fallocate(f, FALLOC_FL_PUNCH_HOLE |
				     FALLOC_FL_KEEP_SIZE, seam - 20 * BS - 1,
				     40 * BS + 2), 0);
	cr_assert_eq(cfile_fallocate(f, 0, seam - 4 * BS, 1000 * BS), 0);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_size(f), seam + 996 * BS);
	all_of(f, seam - 32 * BS, 12 * BS - 1, 'g');
	all_of(f, seam - 20 * BS - 1, 40 * BS + 2, 0);
	all_of(f, seam + 20 * BS + 1, 12 * BS - 1, 'g');
	all_of(f, seam + 32 * BS, 964 * BS, 0);
	cfile_release(f);
}

/* --- mode, owner and group --- */

static struct format_attrs fd_attrs(int fd)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	return (struct format_attrs){ st.st_mode & 07777, st.st_uid,
				      st.st_gid };
}

Test(cfile, a_new_file_authenticates_its_mode_and_owner_and_a_change_commits)
{
	struct format_attrs a, want;
	struct cfile *f, *g;
	int fd;

	f = cf_new("cfile", &fd);
	want = fd_attrs(fd);
	cr_assert_eq(cfile_attrs(f, &a), 0);
	cr_expect_eq(a.mode, want.mode);
	cr_expect_eq(a.uid, want.uid);
	cr_expect_eq(a.gid, want.gid);
	want.mode = 0640;
	cr_assert_eq(fchmod(fd, 0640), 0);
	cr_assert_eq(cfile_set_attrs(f, &want), 0);
	want.mode = 010000;
	cr_expect_eq(cfile_set_attrs(f, &want), -EINVAL);
	/* Committed at once, before any close: a kill keeps it. */
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	cr_assert_eq(cfile_attrs(g, &a), 0);
	cr_expect_eq(a.mode, 0640);
	cr_expect(!cfile_attrs_differed(g), "the backing has them too");
	cfile_release(g);
	cfile_release(f);
	close(fd);
}

Test(cfile, a_chmod_behind_our_back_is_told_and_put_back)
{
	struct format_attrs a, was;
	struct cfile_note n;
	struct cfile *f;
	int fd;

	f = cf_new("cfile", &fd);
	was = fd_attrs(fd);
	cr_assert_eq(cfile_release(f), 0);
	/* The probe's attack: a file opened to everyone in the backing. */
	cr_assert_eq(fchmod(fd, 0666 ^ was.mode ? 0666 : 0606), 0);
	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
	cr_assert_eq(cfile_attrs(f, &a), 0);
	cr_expect_eq(a.mode, was.mode, "the header's mode wins");
	cr_expect(cfile_attrs_differed(f));
	cr_assert(cfile_take_note(f, &n));
	cr_expect(n.attrs_differ);
	cr_expect_eq(n.attrs.mode, was.mode);
	cr_expect_neq(n.backing.mode, was.mode);
	cr_expect(n.attrs_restored);
	cr_expect_eq(fd_attrs(fd).mode, was.mode, "given back to the backing");
	cr_expect_eq(n.pick.refused, -1, "nothing else to tell");
	cr_assert_eq(cfile_release(f), 0);
	close(fd);
}

Test(cfile, a_size_tag_vouches_for_mode_and_owner_and_is_set_again_after_a_change)
{
	uint8_t tag[FORMAT_SIZE_TAG_LEN];
	struct format_attrs a;
	struct crypto_key *sk;
	struct cfile *f;
	uint64_t said;
	struct stat st;
	int fd;

	sk = with_size_key();
	f = cf_new("cfile", &fd);
	cr_assert_eq(cfile_pwrite(f, "abc", 3, 0), 3);
	cr_assert_eq(cfile_release(f), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	a = fd_attrs(fd);
	cr_assert_eq(fgetxattr(fd, FORMAT_SIZE_XATTR, tag, sizeof(tag)),
		     (ssize_t)sizeof(tag));
	cr_assert_eq(format_size_untag(sk, st.st_ino, &a, tag, sizeof(tag),
				       &said), 0);
	cr_expect_eq(said, 3);
	/* A chmod in the backing: the tag no longer verifies there. */
	a.mode ^= 0044;
	cr_expect_eq(format_size_untag(sk, st.st_ino, &a, tag, sizeof(tag),
				       &said), -EBADMSG);
	/* A chmod through cfile: a new header, and at the close a new tag
	 * for the new mode. */
	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
	cr_assert_eq(fchmod(fd, a.mode), 0);
	cr_assert_eq(cfile_set_attrs(f, &a), 0);
	cr_expect_lt(fgetxattr(fd, FORMAT_SIZE_XATTR, tag, sizeof(tag)), 0,
		     "the commit removed the tag");
	cr_assert_eq(cfile_release(f), 0);
	cr_assert_eq(fgetxattr(fd, FORMAT_SIZE_XATTR, tag, sizeof(tag)),
		     (ssize_t)sizeof(tag));
	cr_expect_eq(format_size_untag(sk, st.st_ino, &a, tag, sizeof(tag),
				       &said), 0);
	cr_expect_eq(said, 3);
	close(fd);
	cf_vol.size_key = NULL;
	crypto_key_free(sk);
}
