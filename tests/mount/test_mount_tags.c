/*
 * test_mount_tags.c — stat takes a closed file's size from its size tag
 * (an xattr of the backing file), so a tag anyone can write must never show
 * a size the header does not authenticate; a header slot refused and a
 * tag that disagrees with the header are told (log line, status figures),
 * and once the daemon knows, stat shows what reads deliver.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mountutil.h"
#include "testutil.h"

TestSuite(mount_tags, .fini = mu_cleanup_all, .timeout = 60);

#define TAG "user.phifs.size"

static off_t size_of(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	return st.st_size;
}

Test(mount_tags, forged_or_copied_size_tags_never_change_what_stat_shows)
{
	uint8_t small[100], big[50000], tag[64];
	struct mu_vol *v;
	ssize_t n;

	mu_require_fuse();
	memset(small, 's', sizeof(small));
	memset(big, 'b', sizeof(big));
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "small"), small, sizeof(small));
	mu_write_file(mu_m(v, "big"), big, sizeof(big));
	mu_unmount(v);
	n = getxattr(mu_b(v, "big"), TAG, tag, sizeof(tag));
	if (n < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
		mu_skip("the backing file system has no user xattrs");
	cr_assert(n > 0, "a closed file has no size tag: %s", strerror(errno));

	/* The big file's tag on the small one: another inode, no match. */
	cr_assert_eq(setxattr(mu_b(v, "small"), TAG, tag, (size_t)n, 0), 0);
	/* A forged tag claiming 10 bytes on the big one. */
	tag[0] = 10;
	for (int i = 1; i < 8; i++)
		tag[i] = 0;
	cr_assert_eq(setxattr(mu_b(v, "big"), TAG, tag, (size_t)n, 0), 0);
	mu_mount(v);
	cr_assert_eq(size_of(mu_m(v, "small")), (off_t)sizeof(small));
	cr_assert_eq(size_of(mu_m(v, "big")), (off_t)sizeof(big));
	mu_unmount(v);

	/* A missing tag: the header answers, and the next close tags again. */
	cr_assert_eq(removexattr(mu_b(v, "big"), TAG), 0);
	mu_mount(v);
	cr_assert_eq(size_of(mu_m(v, "big")), (off_t)sizeof(big));
	mu_write_file(mu_m(v, "big"), big, 4000);
	mu_unmount(v);
	cr_assert_gt(getxattr(mu_b(v, "big"), TAG, tag, sizeof(tag)), 0);
	mu_mount(v);
	cr_assert_eq(size_of(mu_m(v, "big")), 4000);
	mu_unmount(v);
}

/* Asks the daemon, not the kernel's attribute cache. */
static off_t daemon_size_of(const char *path)
{
	struct statx stx;

	cr_assert_eq(statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_SIZE,
			   &stx), 0, "statx %s: %s", path, strerror(errno));
	return (off_t)stx.stx_size;
}

/*
 * The daemon remembers sizes it verified from tags once the backing
 * file's ctime has settled (2 s).  A change through the mount must still
 * show at once.
 */
Test(mount_tags, a_remembered_size_follows_every_later_change)
{
	uint8_t buf[4000], tag[64];
	struct mu_vol *v;

	mu_require_fuse();
	memset(buf, 'r', sizeof(buf));
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "f"), buf, 100);
	if (getxattr(mu_b(v, "f"), TAG, tag, sizeof(tag)) < 0 &&
	    (errno == ENOTSUP || errno == EOPNOTSUPP))
		mu_skip("the backing file system has no user xattrs");
	/* The scenario, not a wait for an event: the ctime must be older
	 * than 2 s for the daemon to remember the size. */
	sleep(3);
	cr_assert_eq(daemon_size_of(mu_m(v, "f")), 100);
	cr_assert_eq(daemon_size_of(mu_m(v, "f")), 100);	/* remembered */

	cr_assert_eq(truncate(mu_m(v, "f"), 4000), 0);
	cr_assert_eq(daemon_size_of(mu_m(v, "f")), 4000);
	mu_write_file(mu_m(v, "f"), buf, 50);
	cr_assert_eq(daemon_size_of(mu_m(v, "f")), 50);

	mu_unmount(v);
}

/* --- a header slot refused, a tag that disagrees: told, never silent --- */

/* The daemon's log so far: its stderr, in the foreground. */
struct logged {
	const struct mu_vol *v;
	const char *want;
	char text[16384];
};

static bool log_has(void *arg)
{
	struct logged *l = arg;
	char path[160];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/phifs.err", l->v->dir);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, l->text, sizeof(l->text) - 1);
	close(fd);
	l->text[n > 0 ? n : 0] = 0;
	return strstr(l->text, l->want) != NULL;
}

static void expect_logged(const struct mu_vol *v, const char *want)
{
	struct logged l = { .v = v, .want = want };

	cr_assert(tu_wait_until(log_has, &l, 10000), "no '%s' in the log:\n%s",
		  want, l.text);
}

/* A figure of `phifsctl status --json` (a top-level integer). */
static uint64_t status_figure(const struct mu_vol *v, const char *key)
{
	char cmd[512], out[8192], pat[64];
	const char *p;
	size_t n;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s/phifsctl status --json %s",
		 PHIFS_BIN_DIR, v->backing);
	f = popen(cmd, "r");
	cr_assert(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	cr_assert_eq(pclose(f), 0, "%s", out);
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(out, pat);
	cr_assert(p, "no %s in %s", pat, out);
	return strtoull(p + strlen(pat), NULL, 10);
}

/* Appends len bytes of c to path through the mount, and commits them
 * (fsync: a RELEASE may come after the next open, which then shares the
 * same open file and its one commit). */
static void append(const char *path, char c, size_t len)
{
	static uint8_t buf[65536];
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);

	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	memset(buf, c, len);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	cr_assert_eq(fsync(fd), 0);
	cr_assert_eq(close(fd), 0);
}

/* A file grown from 32768 to 36864 bytes and closed; skips without
 * user xattrs on the backing. */
static struct mu_vol *grown_volume(void)
{
	struct mu_vol *v;
	uint8_t tag[64];

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	append(mu_m(v, "f"), 'a', 32768);
	append(mu_m(v, "f"), 'b', 4096);
	mu_unmount(v);
	if (getxattr(mu_b(v, "f"), TAG, tag, sizeof(tag)) < 0 &&
	    (errno == ENOTSUP || errno == EOPNOTSUPP))
		mu_skip("the backing file system has no user xattrs");
	return v;
}

/* Flips a bit of the size in the header slot with the higher seq; returns
 * that slot. */
static int damage_newer_slot(const struct mu_vol *v)
{
	uint64_t s0, s1;
	uint8_t b;
	off_t at;
	int fd = open(mu_b(v, "f"), O_RDWR), newer;

	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, &s0, 8, 16), 8);
	cr_assert_eq(pread(fd, &s1, 8, 512 + 16), 8);
	newer = s1 > s0;
	at = (off_t)newer * 512 + 64;
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x08;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
	return newer;
}

/* What a whole read gives. */
static size_t read_length(const char *path)
{
	uint8_t *buf;
	size_t len;

	cr_assert_eq(mu_read_file(path, &buf, &len), 0);
	free(buf);
	return len;
}

struct size_wait {
	const char *path;
	off_t want, seen;
};

static bool stat_shows(void *arg)
{
	struct size_wait *w = arg;
	struct stat st;

	w->seen = stat(w->path, &st) ? -1 : st.st_size;
	return w->seen == w->want;
}

/* Waits until stat (the kernel's cache included) shows want. */
static void expect_stat_size(const char *path, off_t want)
{
	struct size_wait w = { path, want, -1 };

	cr_assert(tu_wait_until(stat_shows, &w, 10000),
		  "stat %s shows %lld, not %lld", path, (long long)w.seen,
		  (long long)want);
}

Test(mount_tags, a_damaged_newer_slot_without_a_tag_is_told_as_a_torn_write)
{
	struct mu_vol *v = grown_volume();
	char want[128];
	int bad;

	/* A torn header write: the commit removed the tag first. */
	cr_assert_eq(removexattr(mu_b(v, "f"), TAG), 0);
	bad = damage_newer_slot(v);
	mu_mount_fg(v);
	cr_expect_eq(size_of(mu_m(v, "f")), 32768);
	cr_expect_eq(read_length(mu_m(v, "f")), 32768);
	cr_expect_eq(read_length(mu_m(v, "f")), 32768);
	snprintf(want, sizeof(want), "/f: header slot %d (seq ", bad);
	expect_logged(v, want);
	expect_logged(v, "expected after a crash during a header write");
	cr_expect_eq(status_figure(v, "header_fallbacks"), 1,
		     "one file, told once");
	cr_expect_eq(status_figure(v, "size_tag_mismatches"), 0);
	mu_unmount(v);
}

Test(mount_tags, a_damaged_newer_slot_under_a_valid_tag_is_told_as_tampering)
{
	struct mu_vol *v = grown_volume();
	int fd;

	damage_newer_slot(v);
	mu_mount_fg(v);
	/* Before any open only the tag is known: it says 36864. */
	cr_assert_eq(size_of(mu_m(v, "f")), 36864);
	fd = open(mu_m(v, "f"), O_RDONLY);
	cr_assert(fd >= 0);
	/* Once the daemon knows, stat follows, kernel cache and all. */
	expect_stat_size(mu_m(v, "f"), 32768);
	cr_expect_eq(daemon_size_of(mu_m(v, "f")), 32768);
	close(fd);
	cr_expect_eq(read_length(mu_m(v, "f")), 32768);
	expect_logged(v, "under a valid size tag (36864 bytes), so not a "
		      "crash: damage or tampering");
	expect_logged(v, "the tag is removed");
	cr_expect_eq(status_figure(v, "header_fallbacks"), 1);
	cr_expect_eq(status_figure(v, "size_tag_mismatches"), 1);
	mu_unmount(v);
	/* The close tagged the size in force. */
	mu_mount(v);
	cr_expect_eq(size_of(mu_m(v, "f")), 32768);
	cr_expect_eq(read_length(mu_m(v, "f")), 32768);
	mu_unmount(v);
}

Test(mount_tags, a_size_tag_put_back_is_told_and_the_header_size_served)
{
	uint8_t old[64];
	struct mu_vol *v;
	ssize_t n;
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	append(mu_m(v, "f"), 'a', 100);
	mu_unmount(v);
	n = getxattr(mu_b(v, "f"), TAG, old, sizeof(old));
	if (n < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
		mu_skip("the backing file system has no user xattrs");
	cr_assert(n > 0);
	mu_mount(v);
	append(mu_m(v, "f"), 'b', 4096);
	mu_unmount(v);
	/* The old tag, authentic for this inode, put back. */
	cr_assert_eq(setxattr(mu_b(v, "f"), TAG, old, (size_t)n, 0), 0);

	mu_mount_fg(v);
	cr_assert_eq(size_of(mu_m(v, "f")), 100, "the tag, before any open");
	fd = open(mu_m(v, "f"), O_RDONLY);
	cr_assert(fd >= 0);
	expect_stat_size(mu_m(v, "f"), 4196);
	close(fd);
	cr_expect_eq(read_length(mu_m(v, "f")), 4196);
	expect_logged(v, "/f: size tag says 100 bytes but the header");
	expect_logged(v, "says 4196: the tag was put back or planted");
	cr_expect_eq(status_figure(v, "size_tag_mismatches"), 1);
	cr_expect_eq(status_figure(v, "header_fallbacks"), 0);
	mu_unmount(v);
	mu_mount(v);
	cr_expect_eq(size_of(mu_m(v, "f")), 4196, "the tag was replaced");
	mu_unmount(v);
}
