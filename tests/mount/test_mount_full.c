/*
 * test_mount_full.c — a backing store that runs out of space (an 8 MiB
 * tmpfs): writers get ENOSPC, never EIO; every byte reported written (write
 * and then fsync succeeded) reads back after a remount; the partly written
 * last block of a file that existed before stays intact when an append to it
 * fails; and once a file is deleted, writes succeed again without a remount.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "mountutil.h"

TestSuite(mount_full, .fini = mu_cleanup_all, .timeout = 120);

#define PRE_SIZE 10000		/* two whole blocks and a partial third */
#define F1_SIZE (3 << 20)
#define FILL_MAX (16 << 20)

static uint8_t *pattern;

/* The file reads back as pattern(seed)[0, len) and nothing else. */
static void expect_file(const char *path, uint64_t seed, size_t len,
			const char *when)
{
	uint8_t *got, *want = malloc(len + 1);
	size_t n;
	int rc = mu_read_file(path, &got, &n);

	cr_assert(want);
	mu_fill(want, len, seed);
	cr_assert(rc == 0, "%s: reading %s fails at %zu: %s", when, path, n,
		  strerror(-rc));
	cr_assert_eq(n, len, "%s: %s has %zu bytes, want %zu", when, path, n, len);
	cr_assert(memcmp(got, want, len) == 0, "%s: %s reads back wrong", when,
		  path);
	free(got);
	free(want);
}

/*
 * Appends pattern bytes [*done, ...) in chunks of chunk bytes, each followed
 * by an fsync, until an error; *done counts the bytes acknowledged by both.
 * Returns the errno that stopped it.
 */
static int fill(int fd, size_t *done, size_t chunk)
{
	while (*done < FILL_MAX) {
		size_t len = chunk < FILL_MAX - *done ? chunk : FILL_MAX - *done;
		ssize_t r = write(fd, pattern + *done, len);

		if (r < 0)
			return errno;
		if (fsync(fd))
			return errno;
		*done += (size_t)r;
	}
	return 0;
}

Test(mount_full, a_full_backing_store_gives_enospc_and_loses_nothing_written)
{
	struct mu_vol *v;
	uint8_t *pre = malloc(PRE_SIZE + 5000);
	size_t done = 0, size, pre_acked;
	struct stat st;
	int fd, e;

	mu_require_fuse();
	cr_assert(pre);
	pattern = malloc(FILL_MAX);
	cr_assert(pattern);
	mu_fill(pattern, FILL_MAX, 3);
	mu_fill(pre, PRE_SIZE + 5000, 1);
	v = mu_vol_new(8 << 20);
	mu_mount_no_audit(v);

	/* A file with a partial last block, and one to delete later. */
	mu_write_file(mu_m(v, "pre"), pre, PRE_SIZE);
	{
		uint8_t *f1 = malloc(F1_SIZE);

		cr_assert(f1);
		mu_fill(f1, F1_SIZE, 2);
		mu_write_file(mu_m(v, "f1"), f1, F1_SIZE);
		free(f1);
	}

	/* Fill it up: big chunks, then small ones, then single bytes. */
	fd = open(mu_m(v, "fill"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	e = fill(fd, &done, 256 * 1024);
	cr_assert(e != 0, "16 MiB fit on an 8 MiB backing store");
	cr_assert(e == ENOSPC, "a write to the full store failed with %s, want "
		  "ENOSPC (after %zu bytes)", strerror(e), done);
	e = fill(fd, &done, 4096);
	cr_assert(e == ENOSPC, "a 4 KiB write to the full store: %s, want ENOSPC",
		  strerror(e));
	e = fill(fd, &done, 1);
	cr_assert(e == ENOSPC, "a 1-byte write to the full store: %s, want ENOSPC",
		  e ? strerror(e) : "it succeeded forever");
	close(fd);
	cr_assert(done > 0);

	/* Appending to the file with the partial last block fails cleanly:
	 * short writes may fill that block, then ENOSPC. */
	fd = open(mu_m(v, "pre"), O_WRONLY | O_APPEND);
	cr_assert(fd >= 0);
	{
		size_t app = 0;

		e = 0;
		while (app < 5000) {
			ssize_t r = write(fd, pre + PRE_SIZE + app, 5000 - app);

			if (r < 0 || fsync(fd)) {
				e = errno;
				break;
			}
			app += (size_t)r;
		}
		cr_assert(app < 5000, "an append of 5000 bytes to a full store "
			  "succeeded");
		cr_assert(e == ENOSPC, "the failed append gives %s, want ENOSPC",
			  strerror(e));
		pre_acked = PRE_SIZE + app;
	}
	close(fd);
	cr_assert(stat(mu_m(v, "pre"), &st) == 0);
	size = (size_t)st.st_size;
	cr_assert(size >= pre_acked && size <= PRE_SIZE + 5000, "pre is %zu "
		  "bytes after the failed append; %zu were acknowledged", size,
		  pre_acked);
	expect_file(mu_m(v, "pre"), 1, size, "after the failed append");

	/* Everything acknowledged is there after a remount. */
	mu_unmount(v);
	mu_mount_no_audit(v);
	expect_file(mu_m(v, "f1"), 2, F1_SIZE, "after a remount");
	cr_assert(stat(mu_m(v, "pre"), &st) == 0);
	cr_assert((size_t)st.st_size >= pre_acked, "pre shrank to %lld bytes; "
		  "%zu were acknowledged", (long long)st.st_size, pre_acked);
	expect_file(mu_m(v, "pre"), 1, (size_t)st.st_size, "after a remount");
	{
		uint8_t *got;
		size_t n;
		int rc = mu_read_file(mu_m(v, "fill"), &got, &n);

		cr_assert(rc == 0, "reading the file that filled the store fails "
			  "at %zu: %s", n, strerror(-rc));
		cr_assert(n >= done, "%zu bytes of the filling file were "
			  "acknowledged, %zu are there", done, n);
		cr_assert(memcmp(got, pattern, n) == 0, "the filling file reads "
			  "back wrong");
		free(got);
	}

	/*
	 * Fill again in this mount, then delete: writes work at once.  A new
	 * file needs room for its header, so on a store this full even the
	 * create may say ENOSPC (an empty backing file cannot stand for an
	 * empty file: anyone could cut a file to nothing).
	 */
	fd = open(mu_m(v, "fill2"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		done = 0;
		e = fill(fd, &done, 64 * 1024);
		cr_assert(e == ENOSPC, "filling again: %s, want ENOSPC",
			  strerror(e));
		e = fill(fd, &done, 1);
		cr_assert(e == ENOSPC);
		close(fd);
	} else {
		cr_assert(errno == ENOSPC, "create on a full store: %s, want "
			  "ENOSPC", strerror(errno));
	}
	cr_assert(unlink(mu_m(v, "f1")) == 0, "unlink: %s", strerror(errno));
	fd = open(mu_m(v, "pre"), O_WRONLY | O_TRUNC);
	cr_assert(fd >= 0);
	{
		ssize_t w = write(fd, pre, PRE_SIZE + 5000);

		cr_assert(w == PRE_SIZE + 5000, "a write after freeing 3 MiB "
			  "gives %zd of %d bytes: %s", w, PRE_SIZE + 5000,
			  w < 0 ? strerror(errno) : "short");
	}
	cr_assert(fsync(fd) == 0, "fsync after freeing 3 MiB fails: %s",
		  strerror(errno));
	close(fd);
	expect_file(mu_m(v, "pre"), 1, PRE_SIZE + 5000, "after the delete");
	mu_unmount(v);
	mu_mount_no_audit(v);
	expect_file(mu_m(v, "pre"), 1, PRE_SIZE + 5000, "after the delete and "
		    "a remount");
	mu_unmount(v);
	free(pre);
	free(pattern);
}

/* The backing file's size and allocated bytes, as stat shows them. */
static void backing_stat(struct mu_vol *v, const char *name, struct stat *st)
{
	cr_assert(stat(mu_b(v, name), st) == 0, "%s: %s", name,
		  strerror(errno));
}

/*
 * A byte far out costs little of the backing store (the map tree), and a
 * write or truncate that the backing file system refuses (ext4 ends files
 * at 16 TiB; tmpfs and others much later) leaves no allocation behind.
 */
Test(mount_full, far_writes_cost_little_and_failed_ones_leave_nothing)
{
	struct mu_vol *v;
	struct stat before, after;
	struct statfs fs;
	char c = 0;
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount_no_audit(v);
	fd = open(mu_m(v, "far"), O_RDWR | O_CREAT, 0600);
	cr_assert(fd >= 0);
	cr_assert(pwrite(fd, "h", 1, 0) == 1);
	cr_assert(pwrite(fd, "x", 1, 1LL << 40) == 1, "%s", strerror(errno));
	cr_assert(fsync(fd) == 0);
	backing_stat(v, "far", &before);
	cr_assert_lt((long long)before.st_blocks * 512, 1 << 20,
		     "a byte at 2^40 costs %lld backing bytes",
		     (long long)before.st_blocks * 512);
	cr_assert(pread(fd, &c, 1, 1LL << 40) == 1);
	cr_assert_eq(c, 'x');
	cr_assert(close(fd) == 0);
	/* A small dense file: its maps would fit, the byte does not. */
	fd = open(mu_m(v, "fail"), O_RDWR | O_CREAT, 0600);
	cr_assert(fd >= 0);
	cr_assert(pwrite(fd, "h", 1, 0) == 1);
	cr_assert(fsync(fd) == 0);
	backing_stat(v, "fail", &before);
	cr_assert(statfs(v->backing, &fs) == 0);
	if (pwrite(fd, "y", 1, (1LL << 44) + (1LL << 40)) < 0) {
		cr_assert(errno == EFBIG || errno == ENOSPC, "%s",
			  strerror(errno));
		backing_stat(v, "fail", &after);
		cr_assert_eq(after.st_size, before.st_size);
		cr_assert_eq(after.st_blocks, before.st_blocks,
			     "a failed write left %lld bytes allocated",
			     (long long)(after.st_blocks - before.st_blocks) *
				     512);
	} else {
		cr_assert_neq(fs.f_type, EXT4_SUPER_MAGIC,
			      "ext4 took a byte past 16 TiB");
	}
	cr_assert(close(fd) == 0);
	/* 2^58 needs a second top node, at 2^57 in the backing file. */
	if (truncate(mu_m(v, "fail"), 1LL << 58) < 0) {
		backing_stat(v, "fail", &after);
		cr_assert_eq(after.st_size, before.st_size);
		cr_assert_eq(after.st_blocks, before.st_blocks);
	}
	mu_unmount(v);
}
