/*
 * test_mount_prefetch.c — reading a folder's files in listing order on a
 * cold disk: once a cold file is opened, the start of the files after it is
 * asked of the disk ahead of the reader, a window at a time, and no more.
 * Residency is read with mincore(2) on the backing files.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mountutil.h"
#include "testutil.h"

TestSuite(mount_prefetch, .fini = mu_cleanup_all, .timeout = 120);

#define FILES 40
#define FILE_BYTES (64 * 1024)
#define WINDOW 16	/* as in prefetch.c */

static char names[FILES][NAME_MAX + 1];


/* Is the first page of the backing file in memory? */
static bool resident(const char *path)
{
	unsigned char vec = 0;
	int fd = open(path, O_RDONLY);
	void *m;

	cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert(m != MAP_FAILED);
	cr_assert_eq(mincore(m, 4096, &vec), 0);
	munmap(m, 4096);
	close(fd);
	return vec & 1;
}

/* Drops the backing file's pages; false when the file system keeps them
 * (tmpfs has no disk to read them back from). */
static bool evict(const char *path)
{
	int fd = open(path, O_RDONLY);

	cr_assert(fd >= 0);
	cr_assert_eq(fdatasync(fd), 0);
	cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	close(fd);
	return !resident(path);
}

/*
 * Waits up to 10 s for the first page of backing d/names[k].  The reads
 * asked for queue behind whatever else the disk is doing: in CI, beside
 * mount_many's 3,000 creates under ASan, 3 s were once not enough.  Without
 * the read-ahead the page never comes, however long the wait.
 */
static bool resident_cond(void *path)
{
	return resident(path);
}

static bool becomes_resident(struct mu_vol *v, int k)
{
	char rel[NAME_MAX + 8];

	snprintf(rel, sizeof(rel), "d/%.*s", NAME_MAX, names[k]);
	return tu_wait_until(resident_cond, (void *)mu_b(v, rel), 10000);
}

static void read_through_mount(struct mu_vol *v, int k)
{
	char rel[NAME_MAX + 8];
	uint8_t *got;
	size_t n;

	snprintf(rel, sizeof(rel), "d/%.*s", NAME_MAX, names[k]);
	cr_assert_eq(mu_read_file(mu_m(v, rel), &got, &n), 0);
	cr_assert_eq(n, FILE_BYTES);
	free(got);
}

Test(mount_prefetch, reading_a_cold_folder_in_order_asks_for_the_next_files)
{
	static uint8_t buf[FILE_BYTES];
	struct mu_vol *v;
	char rel[NAME_MAX + 8];
	struct dirent *e;
	DIR *d;
	int n = 0;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	cr_assert_eq(mkdir(mu_m(v, "d"), 0755), 0);
	for (int k = 0; k < FILES; k++) {
		snprintf(rel, sizeof(rel), "d/f%02d", k);
		mu_fill(buf, sizeof(buf), (uint64_t)k);
		mu_write_file(mu_m(v, rel), buf, sizeof(buf));
	}
	mu_unmount(v);

	/* The listing order, which the daemon passes through. */
	d = opendir(mu_b(v, "d"));
	cr_assert(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
	closedir(d);
	cr_assert_eq(n, FILES);
	for (int k = 0; k < FILES; k++) {
		snprintf(rel, sizeof(rel), "d/%.*s", NAME_MAX, names[k]);
		if (!evict(mu_b(v, rel)))
			mu_skip("the backing file system keeps its pages in memory "
				"(tmpfs?): nothing is ever cold");
	}

	mu_mount(v);
	/* A cold open: the window after it is asked for. */
	read_through_mount(v, 0);
	for (int k = 1; k <= WINDOW / 2; k++)
		cr_assert(becomes_resident(v, k), "file %d of the listing was "
			  "not read ahead after a cold read of file 0", k);
	/* Reaching the middle of the window asks for the next one. */
	for (int k = 1; k <= WINDOW / 2; k++)
		read_through_mount(v, k);
	for (int k = WINDOW + 1; k <= WINDOW + WINDOW / 2; k++)
		cr_assert(becomes_resident(v, k), "file %d was not read ahead "
			  "when the reader reached the window's middle", k);
	/*
	 * And no further than that.  A read-ahead too far is an event that
	 * must not come, so no condition can end this wait: asked with the
	 * others, it would have shown within 0.2 s of them.
	 */
	usleep(200000);
	snprintf(rel, sizeof(rel), "d/%.*s", NAME_MAX, names[FILES - 1]);
	cr_assert(!resident(mu_b(v, rel)), "the last file was read ahead: "
		  "the read-ahead is not bounded");
	mu_unmount(v);
}
