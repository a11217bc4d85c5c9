/*
 * test_mount_falloc.c — fallocate(2) through the mount: every mode a
 * database or a download tool uses (reserve, reserve past the end, punch a
 * hole, zero a range), the modes refused and their errno, the holes still
 * authenticated after a remount, and a backing store too small for a
 * reservation (an 8 MiB tmpfs): ENOSPC with the file left as it was, while
 * a reservation that did fit is written into after the store filled up.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mountutil.h"

TestSuite(mount_falloc, .fini = mu_cleanup_all, .timeout = 120);

#define KiB 1024
#define MiB (1024 * 1024)
/* Backing offset of group 0's hole map (docs/FORMAT.md). */
#define MAP0_OFFSET (1024 + 32768LL * 4124)
/* Past FORMAT_MAX_SIZE, inside the kernel's s_maxbytes (2^63 - 1). */
#define PAST_MAX 9200000000000000000LL

/* What the file should hold, and how long it is. */
static uint8_t model[4 * MiB];
static size_t model_len;

/* fallocate's effect on the model: a punch or a zero range zeroes what
 * it covers, and without KEEP_SIZE the file grows with zeros. */
static void model_falloc(int mode, off_t off, off_t len)
{
	size_t end = (size_t)(off + len), in = end < model_len ? end : model_len;

	if ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) &&
	    (size_t)off < in)
		memset(model + off, 0, in - (size_t)off);
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > model_len) {
		memset(model + model_len, 0, end - model_len);
		model_len = end;
	}
}

static void same_as_model(const char *path, const char *when)
{
	uint8_t *got;
	size_t n;
	int rc = mu_read_file(path, &got, &n);

	cr_assert(rc == 0, "%s: reading fails at %zu: %s", when, n,
		  strerror(-rc));
	cr_assert_eq(n, model_len, "%s: %zu bytes, want %zu", when, n,
		     model_len);
	for (size_t i = 0; i < n; i++)
		cr_assert(got[i] == model[i], "%s: byte %zu is %#x, want %#x",
			  when, i, got[i], model[i]);
	free(got);
}

static void falloc_ok(int fd, int mode, off_t off, off_t len)
{
	cr_assert(fallocate(fd, mode, off, len) == 0,
		  "fallocate mode %#x at %lld+%lld: %s", mode, (long long)off,
		  (long long)len, strerror(errno));
	model_falloc(mode, off, len);
}

static void falloc_fails(int fd, int mode, off_t off, off_t len, int err)
{
	errno = 0;
	cr_expect(fallocate(fd, mode, off, len) == -1 && errno == err,
		  "fallocate mode %#x at %lld+%lld: %s, want %s", mode,
		  (long long)off, (long long)len, strerror(errno),
		  strerror(err));
}

Test(mount_falloc, each_mode_does_what_linux_does_and_holes_stay_sealed)
{
	const int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	struct mu_vol *v;
	struct stat st;
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount_no_audit(v);
	model_len = 256 * KiB;
	mu_fill(model, model_len, 11);
	mu_write_file(mu_m(v, "f"), model, model_len);
	fd = open(mu_m(v, "f"), O_RDWR);
	cr_assert(fd >= 0);
	falloc_ok(fd, 0, 256 * KiB, 1 * MiB);
	cr_assert(fstat(fd, &st) == 0 && st.st_size == 256 * KiB + MiB);
	falloc_ok(fd, FALLOC_FL_KEEP_SIZE, 2 * MiB, 1 * MiB);
	cr_assert(fstat(fd, &st) == 0 && st.st_size == 256 * KiB + MiB);
	falloc_ok(fd, punch, 100, 200000);
	falloc_ok(fd, punch, 230 * KiB + 3, 5000);
	falloc_ok(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 210000,
		  10 * KiB);
	falloc_ok(fd, FALLOC_FL_ZERO_RANGE, MiB, 2 * MiB);
	cr_assert(fstat(fd, &st) == 0 && st.st_size == 3 * MiB);
	falloc_fails(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096, EOPNOTSUPP);
	falloc_fails(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096, EOPNOTSUPP);
	falloc_fails(fd, FALLOC_FL_INSERT_RANGE, 0, 4096, EOPNOTSUPP);
	falloc_fails(fd, 0, 0, 0, EINVAL);
	falloc_fails(fd, 0, PAST_MAX, 4096, EFBIG);
	falloc_fails(fd, FALLOC_FL_KEEP_SIZE, PAST_MAX, 4096, EFBIG);
	/* Still served: an error never turns fallocate off for good. */
	falloc_ok(fd, FALLOC_FL_KEEP_SIZE, 0, 4096);
	close(fd);
	same_as_model(mu_m(v, "f"), "through the mount");
	mu_unmount(v);
	mu_mount_no_audit(v);
	same_as_model(mu_m(v, "f"), "after a remount");
	mu_unmount(v);

	/* The holes are the sealed map's word: zeroed in the backing, the
	 * punched range reads as an error, not as zeros. */
	fd = open(mu_b(v, "f"), O_WRONLY);
	cr_assert(fd >= 0);
	{
		static const uint8_t zero[4124];

		cr_assert(pwrite(fd, zero, sizeof(zero), MAP0_OFFSET) ==
			  (ssize_t)sizeof(zero));
	}
	close(fd);
	mu_mount_no_audit(v);
	fd = open(mu_m(v, "f"), O_RDONLY);
	cr_assert(fd >= 0);
	{
		char buf[4096];

		errno = 0;
		cr_expect(pread(fd, buf, sizeof(buf), 8192) == -1 &&
			  errno == EIO, "a punched block under a zeroed map: "
			  "%s", strerror(errno));
	}
	close(fd);
	mu_unmount(v);
}

/* Appends until the store has less than 4 KiB free (each ENOSPC costs
 * the daemon's half second of retries); the bytes written. */
static size_t fill_store(const char *path)
{
	static uint8_t chunk[64 * KiB];
	size_t done = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0) {
		cr_assert(errno == ENOSPC, "create: %s", strerror(errno));
		return 0;
	}
	for (size_t len = sizeof(chunk); len >= 4 * KiB;) {
		ssize_t w = write(fd, chunk, len);

		if (w < 0 || fsync(fd)) {
			cr_assert(errno == ENOSPC, "filling: %s",
				  strerror(errno));
			len /= 2;
			continue;
		}
		done += (size_t)w;
		cr_assert(done < 64 * MiB, "an 8 MiB store never filled");
	}
	close(fd);
	return done;
}

Test(mount_falloc, a_store_too_small_gives_enospc_and_a_reservation_holds)
{
	struct mu_vol *v;
	struct stat st;
	int fd, db;

	mu_require_fuse();
	v = mu_vol_new(8 * MiB);
	mu_mount_no_audit(v);
	model_len = MiB;
	mu_fill(model, model_len, 12);
	mu_write_file(mu_m(v, "keep"), model, model_len);
	fd = open(mu_m(v, "keep"), O_RDWR);
	cr_assert(fd >= 0);
	falloc_fails(fd, 0, 0, 64 * MiB, ENOSPC);
	falloc_fails(fd, 0, 512 * KiB, 64 * MiB, ENOSPC);
	falloc_fails(fd, FALLOC_FL_KEEP_SIZE, 0, 64 * MiB, ENOSPC);
	falloc_fails(fd, FALLOC_FL_ZERO_RANGE, 4096, 64 * MiB, ENOSPC);
	cr_assert(fstat(fd, &st) == 0);
	cr_assert_eq(st.st_size, MiB, "size after the failures: %lld",
		     (long long)st.st_size);
	close(fd);
	same_as_model(mu_m(v, "keep"), "after the failed reservations");

	/* A reservation that fits holds after the store fills up. */
	db = open(mu_m(v, "db"), O_RDWR | O_CREAT, 0600);
	cr_assert(db >= 0);
	cr_assert(fallocate(db, 0, 0, 2 * MiB) == 0, "%s", strerror(errno));
	cr_assert(fsync(db) == 0);
	cr_assert(fill_store(mu_m(v, "fill")) > 0);
	{
		uint8_t *data = malloc(2 * MiB);

		cr_assert(data);
		mu_fill(data, 2 * MiB, 13);
		for (size_t at = 0; at < 2 * MiB; at += 64 * KiB)
			cr_assert(pwrite(db, data + at, 64 * KiB, (off_t)at) ==
				  64 * KiB, "writing the reserved range at "
				  "%zu: %s", at, strerror(errno));
		cr_assert(fsync(db) == 0, "%s", strerror(errno));
		close(db);
		mu_unmount(v);
		mu_mount_no_audit(v);
		same_as_model(mu_m(v, "keep"), "after a remount");
		memcpy(model, data, 2 * MiB);
		model_len = 2 * MiB;
		same_as_model(mu_m(v, "db"), "the reserved file");
		free(data);
	}
	mu_unmount(v);
}
