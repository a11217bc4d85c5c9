/*
 * test_cfile_tree.c — sparse files whose maps form a tree (FORMAT_F_TREE):
 * what a far write costs on the backing store, holes that stay
 * authenticated when maps are absent, and failed grows that leave the
 * backing file as they found it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "phifs/cfile.h"
#include "phifs/crypto.h"
#include "phifs/format.h"
#include "cfixture.h"
#include "testutil.h"

#define BS FORMAT_BLOCK_SIZE
#define SB FORMAT_STORED_BLOCK
#define GB FORMAT_GROUP_BLOCKS
#define TREE (FORMAT_F_SPARSE | FORMAT_F_TREE)
#define MiB (1ULL << 20)

static void setup(void)
{
	cf_setup(0x7e, 0xe5);
}

static void teardown(void)
{
	cf_teardown();
}

TestSuite(tree, .init = setup, .fini = teardown, .timeout = 240);

/* The layout flags of the header in force: the slot with the higher seq
 * (every header written now has FORMAT_F_ATTRS too). */
static uint16_t header_flags(int fd)
{
	uint8_t region[FORMAT_HEADER_SIZE];
	struct format_header h[2];

	cr_assert_eq(pread(fd, region, sizeof(region), 0),
		     (ssize_t)sizeof(region));
	cr_assert_eq(format_slot_parse(region, &h[0]), 0);
	cr_assert_eq(format_slot_parse(region + FORMAT_SLOT_STRIDE, &h[1]), 0);
	return h[h[1].seq > h[0].seq].flags & (uint16_t)~FORMAT_F_ATTRS;
}

static long long allocated(int fd)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	return (long long)st.st_blocks * 512;
}

/* Writes one byte at `at` in a file holding "head" at 0, and reads both
 * back and a hole between them after a reopen. */
static void one_byte_far_away(uint64_t at)
{
	static const uint8_t zero[BS];
	uint8_t out[BS];
	int fd;
	struct cfile *f = cf_new("tree", &fd);

	cr_assert_eq(cfile_pwrite(f, "head", 4, 0), 4);
	cr_assert_eq(cfile_pwrite(f, "x", 1, at), 1);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_size(f), at + 1);
	cr_assert_eq(cfile_pread(f, out, 1, at), 1);
	cr_assert_eq(out[0], 'x');
	cr_assert_eq(cfile_pread(f, out, 4, 0), 4);
	cr_assert_arr_eq(out, "head", 4);
	cr_assert_eq(cfile_pread(f, out, BS, at / 2), BS);
	cr_assert_arr_eq(out, zero, BS);
	cr_assert_eq(cfile_pread(f, out, BS, at - BS + 1), BS);
	cr_assert_arr_eq(out, zero, BS - 1);
	cr_assert_lt(allocated(fd), 1 << 20, "a byte at %llu costs %lld bytes",
		     (unsigned long long)at, allocated(fd));
	cr_assert_eq(header_flags(fd), TREE);
	cfile_release(f);
	close(fd);
}

Test(tree, a_byte_at_2_to_the_40_costs_under_a_mebibyte)
{
	one_byte_far_away(1ULL << 40);
}

Test(tree, a_byte_at_2_to_the_43_costs_under_a_mebibyte)
{
	one_byte_far_away(1ULL << 43);
}

Test(tree, a_byte_past_the_first_top_node_costs_little_too)
{
	one_byte_far_away((1ULL << 57) + 12345);
}

/* A file with "head" at 0, "tail" at 2^40 and a hole between. */
static struct cfile *two_ends(int *fd)
{
	struct cfile *f = cf_new("tree", fd);

	cr_assert_eq(cfile_pwrite(f, "head", 4, 0), 4);
	cr_assert_eq(cfile_pwrite(f, "tail", 4, 1ULL << 40), 4);
	return cf_reopen(f, *fd);
}

/* Zeroes the stored node (level, i) of the file on fd, or punches it. */
static void damage_node(int fd, unsigned level, uint64_t i, bool punch)
{
	static const uint8_t zero[SB];
	off_t at = (off_t)format_node_offset(TREE, level, i);

	if (punch)
		cr_assert_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE |
				       FALLOC_FL_KEEP_SIZE, at, SB), 0);
	else
		cr_assert_eq(pwrite(fd, zero, SB, at), (ssize_t)SB);
}

/* Reads at off: 0 if it gives n bytes, or the error. */
static ssize_t read_at(struct cfile *f, uint64_t off)
{
	uint8_t out[BS];
	ssize_t n = cfile_pread(f, out, 4, off);

	return n == 4 ? 0 : n;
}

Test(tree, a_missing_or_damaged_node_fails_every_read_below_it)
{
	const uint64_t tail = 1ULL << 40, hole = 1ULL << 35;
	const uint64_t g = tail / BS / GB;
	int fd;
	struct cfile *f = two_ends(&fd);

	cr_assert_eq(read_at(f, tail), 0);
	cr_assert_eq(read_at(f, hole), 0);
	cfile_release(f);

	/* The map of the tail's group, absent: its data does not become a
	 * hole of zeros. */
	f = two_ends(&fd);
	damage_node(fd, 0, g, true);
	cr_assert_eq(read_at(f, tail), -EBADMSG);
	cr_assert_eq(read_at(f, 0), 0, "other groups are not affected");
	cr_assert_eq(read_at(f, hole), 0);
	cfile_release(f);

	/* The node that says which groups have maps: every group under it
	 * fails, holes included, since none can be told apart any more. */
	f = two_ends(&fd);
	damage_node(fd, 1, 0, false);
	cr_assert_eq(read_at(f, tail), -EBADMSG);
	cr_assert_eq(read_at(f, hole), -EBADMSG);
	cr_assert_eq(read_at(f, 0), -EBADMSG);
	cfile_release(f);

	f = two_ends(&fd);
	damage_node(fd, 2, 0, true);
	cr_assert_eq(read_at(f, hole), -EBADMSG);
	cr_assert_eq(read_at(f, tail), -EBADMSG);
	cfile_release(f);
}

Test(tree, a_map_copied_into_a_hole_group_does_not_make_it_data)
{
	const uint64_t tail = 1ULL << 40, g = tail / BS / GB;
	static const uint8_t zero[BS];
	uint8_t stored[SB], out[BS];
	int fd;
	struct cfile *f = two_ends(&fd);

	/* The tail's map and block, planted in group g - 1, a hole. */
	cr_assert_eq(pread(fd, stored, SB, (off_t)format_node_offset(TREE, 0, g)),
		     (ssize_t)SB);
	cr_assert_eq(pwrite(fd, stored, SB,
			    (off_t)format_node_offset(TREE, 0, g - 1)),
		     (ssize_t)SB);
	cr_assert_eq(pread(fd, stored, SB,
			   (off_t)format_block_offset_in(TREE, tail / BS)),
		     (ssize_t)SB);
	cr_assert_eq(pwrite(fd, stored, SB,
			    (off_t)format_block_offset_in(TREE,
							  tail / BS - GB)),
		     (ssize_t)SB);
	cr_assert_eq(cfile_pread(f, out, BS, tail - GB * BS), BS);
	cr_assert_arr_eq(out, zero, BS);
	cfile_release(f);
}

Test(tree, holes_and_data_survive_rewrites_truncates_and_reopens)
{
	static uint8_t buf[3 * BS], out[3 * BS];
	static const uint8_t zero[3 * BS];
	const uint64_t far = (1ULL << 41) + 7;
	int fd;
	struct cfile *f = two_ends(&fd);

	memset(buf, 'd', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), far), (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, 10, 5ULL << 30), 10);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_pread(f, out, sizeof(out), far), (ssize_t)sizeof(out));
	cr_assert_arr_eq(out, buf, sizeof(out));
	/* Shrink below the far data, grow again: it reads as zeros. */
	cr_assert_eq(cfile_truncate(f, (1ULL << 40) + 4), 0);
	cr_assert_eq(cfile_truncate(f, far + sizeof(buf)), 0);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_pread(f, out, sizeof(out), far), (ssize_t)sizeof(out));
	cr_assert_arr_eq(out, zero, sizeof(out));
	cr_assert_eq(cfile_pread(f, out, 4, 1ULL << 40), 4);
	cr_assert_arr_eq(out, "tail", 4);
	cr_assert_eq(cfile_pread(f, out, 10, 5ULL << 30), 10);
	cr_assert_arr_eq(out, buf, 10);
	/* Down to a size in group 0, and out again. */
	cr_assert_eq(cfile_truncate(f, 2), 0);
	cr_assert_eq(cfile_pwrite(f, "again", 5, 1ULL << 40), 5);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_pread(f, out, 5, 1ULL << 40), 5);
	cr_assert_arr_eq(out, "again", 5);
	cr_assert_eq(cfile_pread(f, out, 4, 0), 4);
	cr_assert_arr_eq(out, "he\0\0", 4);
	cr_assert_eq(cfile_pread(f, out, 10, 5ULL << 30), 10);
	cr_assert_arr_eq(out, zero, 10);
	cr_assert_lt(allocated(fd), 1 << 20);
	cfile_release(f);
}

/* Limits the backing file as a full or small file system would. */
static void limit_file_size(uint64_t max)
{
	struct rlimit lim = { .rlim_cur = max, .rlim_max = max };

	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

static void backing_is(int fd, const struct stat *before)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, before->st_size, "backing size %lld, was %lld",
		     (long long)st.st_size, (long long)before->st_size);
	cr_assert_eq(st.st_blocks, before->st_blocks,
		     "backing blocks %lld, were %lld", (long long)st.st_blocks,
		     (long long)before->st_blocks);
}

Test(tree, a_write_or_truncate_that_fails_leaves_the_backing_as_it_was)
{
	static uint8_t buf[10 * BS], out[10 * BS];
	struct stat before;
	int fd;
	struct cfile *f = cf_new("tree", &fd);

	memset(buf, 'k', sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	f = cf_reopen(f, fd);
	cr_assert_eq(fstat(fd, &before), 0);
	limit_file_size(1ULL << 30);
	/* Its maps fit below the limit, the byte does not. */
	cr_assert_eq(cfile_pwrite(f, "x", 1, 1ULL << 40), -EFBIG);
	backing_is(fd, &before);
	/* A top node past the first lies far beyond the limit. */
	cr_assert_eq(cfile_truncate(f, 1ULL << 58), -EFBIG);
	backing_is(fd, &before);
	cr_assert_eq(cfile_size(f), sizeof(buf));
	/* A dense gap of zeros that does not fit. */
	limit_file_size((uint64_t)before.st_size + SB);
	cr_assert_lt(cfile_pwrite(f, "y", 1, sizeof(buf) + 8 * BS), 0);
	backing_is(fd, &before);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_size(f), sizeof(buf));
	cr_assert_eq(cfile_pread(f, out, sizeof(out), 0), (ssize_t)sizeof(out));
	cr_assert_arr_eq(out, buf, sizeof(out));
	cfile_release(f);
}

Test(tree, a_failed_grow_of_a_tree_file_keeps_its_nodes_and_frees_the_rest)
{
	static uint8_t out[8];
	struct stat before;
	int fd;
	struct cfile *f = two_ends(&fd);

	cr_assert_eq(fstat(fd, &before), 0);
	limit_file_size((uint64_t)before.st_size + MiB);
	/* The first block of the next group fits, its new map does not. */
	cr_assert_lt(cfile_pwrite(f, "z", 1, (1ULL << 40) + 128 * MiB), 0);
	backing_is(fd, &before);
	cr_assert_eq(cfile_truncate(f, 1ULL << 58), -EFBIG);
	backing_is(fd, &before);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_size(f), (1ULL << 40) + 4);
	cr_assert_eq(cfile_pread(f, out, 4, 1ULL << 40), 4);
	cr_assert_arr_eq(out, "tail", 4);
	cr_assert_eq(cfile_pread(f, out, 4, 0), 4);
	cr_assert_arr_eq(out, "head", 4);
	/* And it still grows where there is room. */
	cr_assert_eq(cfile_pwrite(f, "more", 4, (1ULL << 40) + 8), 4);
	f = cf_reopen(f, fd);
	cr_assert_eq(cfile_pread(f, out, 4, (1ULL << 40) + 8), 4);
	cr_assert_arr_eq(out, "more", 4);
	cfile_release(f);
}

Test(tree, sizes_past_the_tree_limit_are_refused_before_any_write)
{
	struct stat before;
	int fd;
	struct cfile *f = two_ends(&fd);

	cr_assert_eq(fstat(fd, &before), 0);
	cr_assert_eq(cfile_pwrite(f, "x", 1, FORMAT_MAX_SIZE_TREE), -EFBIG);
	cr_assert_eq(cfile_truncate(f, FORMAT_MAX_SIZE_TREE + 1), -EFBIG);
	backing_is(fd, &before);
	cfile_release(f);
}

Test(tree, a_dense_file_past_its_first_group_keeps_a_map_per_group)
{
	static uint8_t buf[1 << 20], out[8];
	const uint64_t dense = 129 * MiB, far = 5ULL << 30;
	int fd;
	struct cfile *f = cf_new("tree", &fd);

	memset(buf, 'q', sizeof(buf));
	for (uint64_t off = 0; off < dense; off += sizeof(buf))
		cr_assert_eq(cfile_pwrite(f, buf, sizeof(buf), off),
			     (ssize_t)sizeof(buf));
	cr_assert_eq(cfile_pwrite(f, "far", 3, far), 3);
	f = cf_reopen(f, fd);
	/* Its blocks stay where the dense layout put them. */
	cr_assert_eq(header_flags(fd), FORMAT_F_SPARSE);
	cr_assert_eq(cfile_pread(f, out, 3, far), 3);
	cr_assert_arr_eq(out, "far", 3);
	cr_assert_eq(cfile_pread(f, out, 8, dense - 4), 8);
	cr_assert_arr_eq(out, "qqqq\0\0\0\0", 8);
	cfile_release(f);
}

Test(tree, a_file_truncated_to_zero_is_dense_again)
{
	int fd;
	struct cfile *f = two_ends(&fd);

	cr_assert_eq(cfile_truncate(f, 0), 0);
	f = cf_reopen(f, fd);
	cr_assert_eq(header_flags(fd), 0);
	cr_assert_eq(cfile_pwrite(f, "x", 1, 3), 1);
	f = cf_reopen(f, fd);
	cr_assert_eq(header_flags(fd), 0);
	cr_assert_eq(lseek(fd, 0, SEEK_END),
		     (off_t)format_backing_size(4));
	cfile_release(f);
}

/* --- a writer of a tree file killed at random moments (kill -9) --- */

#define SPOTS 12u
#define SPOT_LEN 100u

/* Where the tree writer writes: in group 0, other groups, other level-1
 * nodes (4 TiB each) and another level-2 node (128 PiB). */
static uint64_t spot(unsigned i)
{
	static const uint64_t at[SPOTS] = {
		0, 5000, 200ULL << 20, 1ULL << 33, (1ULL << 40) + 4090,
		(1ULL << 42) + 77, (3ULL << 42) + 1, 1ULL << 43,
		(1ULL << 57) + 3, (1ULL << 57) + (1ULL << 42),
		(1ULL << 44) + 9, (1ULL << 41) + 4096 * 3,
	};

	return at[i];
}

/* Child: grows, rewrites, commits and shrinks the file forever. */
static void tree_writer(int fd)
{
	uint8_t buf[SPOT_LEN];
	struct cfile *f;
	uint64_t s = 4711;

	if (cfile_open(fd, &cf_vol, &f))
		_exit(3);
	for (uint64_t k = 1;; k++) {
		unsigned i = (unsigned)(tu_rand(&s) % SPOTS);

		memset(buf, (int)(1 + k % 255), sizeof(buf));
		if (cfile_pwrite(f, buf, sizeof(buf), spot(i)) != SPOT_LEN)
			_exit(4);
		if (k % 5 == 0 && cfile_commit(f))
			_exit(5);
		if (k % 17 == 0 &&
		    cfile_truncate(f, spot((unsigned)(tu_rand(&s) % SPOTS))))
			_exit(6);
	}
}

/* Every spot below the size reads whole, one value throughout. */
static void spots_read_whole(struct cfile *f, int round)
{
	uint8_t out[SPOT_LEN];
	uint64_t size = cfile_size(f);

	for (unsigned i = 0; i < SPOTS; i++) {
		uint64_t at = spot(i);
		size_t n = size <= at ? 0 :
			   size - at < SPOT_LEN ? (size_t)(size - at) : SPOT_LEN;

		if (!n)
			continue;
		cr_assert_eq(cfile_pread(f, out, n, at), (ssize_t)n,
			     "round %d spot %u", round, i);
		for (size_t j = 1; j < n; j++)
			cr_assert_eq(out[j], out[0], "round %d spot %u", round,
				     i);
	}
}

Test(tree, a_writer_killed_at_any_moment_leaves_a_file_that_reads)
{
	char dir[] = "/tmp/phifs-journal-XXXXXX";
	uint8_t seed_spot[SPOT_LEN];
	uint64_t seed = 5;
	int jfd;

	cr_assert(mkdtemp(dir));
	jfd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert(jfd >= 0);
	cf_vol.journal_dirfd = jfd;
	for (int r = 0; r < 30; r++) {
		int fd, status;
		struct cfile *f = cf_new("tree", &fd);
		pid_t pid;

		memset(seed_spot, 'S', sizeof(seed_spot));
		cr_assert_eq(cfile_pwrite(f, seed_spot, SPOT_LEN, 0), SPOT_LEN);
		cr_assert_eq(cfile_release(f), 0);
		pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0)
			tree_writer(fd);
		usleep((useconds_t)(1000 + tu_rand(&seed) % 40000));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		cr_assert(WIFSIGNALED(status), "writer exited %d",
			  WEXITSTATUS(status));
		cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0, "round %d", r);
		spots_read_whole(f, r);
		cfile_release(f);
		close(fd);
	}
	cf_vol.journal_dirfd = -1;
	close(jfd);
	cr_assert_eq(rmdir(dir), 0, "journal left behind");
}
