/*
 * test_cfile_crash.c — a crash after every single backing write of a
 * sparse file's grows, rewrites and shrinks, in order: each state a kill
 * can leave must open and read old or new data, never fail.  The backing
 * writes (pwrite, pwritev, ftruncate, fallocate) are wrapped at link time
 * (-Wl,--wrap): after the budget runs out they change nothing and fail,
 * which leaves the file as a kill at that moment would.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "phifs/cfile.h"
#include "phifs/crypto.h"
#include "phifs/format.h"
#include "cfixture.h"
#include "testutil.h"

/* Backing writes still allowed; negative: no limit. */
static long budget = -1;

static bool spend(void)
{
	if (budget < 0)
		return true;
	if (budget == 0) {
		errno = EIO;
		return false;
	}
	budget--;
	return true;
}

ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __real_pwritev(int fd, const struct iovec *iov, int cnt, off_t off);
int __real_ftruncate(int fd, off_t len);
int __real_fallocate(int fd, int mode, off_t off, off_t len);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwritev(int fd, const struct iovec *iov, int cnt, off_t off);
int __wrap_ftruncate(int fd, off_t len);
int __wrap_fallocate(int fd, int mode, off_t off, off_t len);

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return spend() ? __real_pwrite(fd, buf, n, off) : -1;
}

ssize_t __wrap_pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return spend() ? __real_pwritev(fd, iov, cnt, off) : -1;
}

int __wrap_ftruncate(int fd, off_t len)
{
	return spend() ? __real_ftruncate(fd, len) : -1;
}

int __wrap_fallocate(int fd, int mode, off_t off, off_t len)
{
	return spend() ? __real_fallocate(fd, mode, off, len) : -1;
}

static char jdir[] = "/tmp/phifs-crash-XXXXXX";

static void setup(void)
{
	cf_setup(0xc4, 0xa5);
	cr_assert(mkdtemp(jdir));
	cf_vol.journal_dirfd = open(jdir, O_RDONLY | O_DIRECTORY);
	cr_assert(cf_vol.journal_dirfd >= 0);
}

static void teardown(void)
{
	close(cf_vol.journal_dirfd);
	rmdir(jdir);
	cf_teardown();
}

TestSuite(crash, .init = setup, .fini = teardown, .timeout = 240);

#define SPOTS 8u
#define LEN 64u

/* Group 0, a far group, another level-1 node's range, the end. */
static const uint64_t spot[SPOTS] = {
	0, 300 << 20, 1ULL << 33, (1ULL << 40) + 4000, (1ULL << 42) + 5,
	(3ULL << 42) + 4096, 1ULL << 44, (1ULL << 44) + (1ULL << 27),
};

/* A committed file with 'a' at spots 0, 2, ... up to `last`. */
static int base_file(unsigned last)
{
	uint8_t buf[LEN];
	struct cfile *f;
	int fd = tu_memfd("crash");

	memset(buf, 'a', sizeof(buf));
	cr_assert_eq(cfile_create(fd, &cf_vol, &f), 0);
	for (unsigned i = 0; i <= last; i += 2)
		cr_assert_eq(cfile_pwrite(f, buf, LEN, spot[i]), LEN);
	cr_assert_eq(cfile_release(f), 0);
	return fd;
}

/* The operations a crash interrupts: fills holes inside the size, grows
 * into new level-1 ranges, rewrites, shrinks, with commits between. */
static void run_ops(struct cfile *f)
{
	uint8_t buf[LEN];

	memset(buf, 'b', sizeof(buf));
	for (unsigned i = 0; i < SPOTS; i++) {
		if (cfile_pwrite(f, buf, LEN, spot[i]) != LEN)
			return;
		if (i % 3 == 2 && cfile_commit(f))
			return;
	}
	if (cfile_truncate(f, spot[5] + LEN) || cfile_commit(f))
		return;
	memset(buf, 'c', sizeof(buf));
	if (cfile_pwrite(f, buf, LEN, spot[7]) != LEN ||
	    cfile_pwrite(f, buf, LEN, spot[1]) != LEN)
		return;
	(void)cfile_commit(f);
}

/* Copies the whole backing file, holes kept. */
static int clone_file(int from)
{
	int to = tu_memfd("clone");
	off_t end = lseek(from, 0, SEEK_END), data = 0, hole;
	static uint8_t buf[1 << 16];

	cr_assert_eq(ftruncate(to, end), 0);
	while ((data = lseek(from, data, SEEK_DATA)) >= 0 && data < end) {
		hole = lseek(from, data, SEEK_HOLE);
		for (off_t o = data; o < hole; o += sizeof(buf)) {
			size_t n = (size_t)(hole - o) < sizeof(buf) ?
				   (size_t)(hole - o) : sizeof(buf);

			cr_assert_eq(pread(from, buf, n, o), (ssize_t)n);
			cr_assert_eq(pwrite(to, buf, n, o), (ssize_t)n);
		}
		data = hole;
	}
	return to;
}

/* Every spot below the size reads whole, one value throughout. */
static void reads_whole(int fd, long n)
{
	uint8_t out[LEN];
	struct cfile *f;

	cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0, "crash after %ld writes", n);
	for (unsigned i = 0; i < SPOTS; i++) {
		uint64_t size = cfile_size(f);
		size_t len = size <= spot[i] ? 0 : size - spot[i] < LEN ?
			     (size_t)(size - spot[i]) : LEN;

		if (!len)
			continue;
		cr_assert_eq(cfile_pread(f, out, len, spot[i]), (ssize_t)len,
			     "crash after %ld writes: spot %u", n, i);
		for (size_t j = 1; j < len; j++)
			cr_assert_eq(out[j], out[0], "crash after %ld writes: "
				     "spot %u", n, i);
	}
	cr_assert_eq(cfile_release(f), 0);
}

/* Crashes after each write of run_ops() on a copy of base. */
static void crash_everywhere(int base)
{
	long n;

	for (n = 0;; n++) {
		int fd = clone_file(base);
		struct cfile *f;
		bool done;

		cr_assert_eq(cfile_open(fd, &cf_vol, &f), 0);
		budget = n;
		run_ops(f);
		(void)cfile_release(f);
		done = budget > 0;	/* the operations ran out first */
		budget = -1;
		reads_whole(fd, n);
		close(fd);
		if (done)
			break;
	}
	cr_assert_gt(n, 20, "only %ld writes", n);
	close(base);
}

Test(crash, a_crash_after_any_backing_write_leaves_a_file_that_reads)
{
	crash_everywhere(base_file(4));
}

Test(crash, a_crash_while_a_dense_file_goes_sparse_leaves_it_readable)
{
	crash_everywhere(base_file(0));
}
