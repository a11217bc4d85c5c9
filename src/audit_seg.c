/*
 * audit_seg.c — the integrity log's segment files: made O_APPEND and
 * append-only, sealed read-only and immutable, and at open the newest one
 * mended after a crash.  Knows nothing of the queue, the logger thread or
 * sync modes; the meaning of a line it learns from audit_record_parse().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_writer_impl.h"
#include "phifs/ioutil.h"
#include "phifs/log.h"

/* The tail read to find the last line: a torn one and a whole one. */
#define TAIL_WINDOW (2 * ((size_t)AUDIT_MAX_LINE + 1))

static void note_unflagged(struct aseg_flagnote *fn, int err)
{
	fn->unflagged++;
	if (fn->logged)
		return;
	fn->logged = true;
	log_msg(LOG_KIND_IO, LOG_WARNING, "audit: the log's file system or "
		"privileges refuse the append-only and immutable inode flags "
		"(%s); segments are guarded by O_APPEND and mode 0444 only",
		strerror(err));
}

/*
 * Sets and clears inode flags.  A file system without them, or a daemon
 * without CAP_LINUX_IMMUTABLE, is noted, not an error: the flags harden
 * the log, O_APPEND and the modes do the work.
 */
static int chflags(int fd, int set, int clear, struct aseg_flagnote *fn)
{
	int f, nf;

	if (ioctl(fd, FS_IOC_GETFLAGS, &f) == 0) {
		nf = (f | set) & ~clear;
		if (nf == f || ioctl(fd, FS_IOC_SETFLAGS, &nf) == 0)
			return 0;
	} else if (!set) {
		return 0;	/* no flags here, so none to clear */
	}
	if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EPERM ||
	    errno == EINVAL) {
		if (set)
			note_unflagged(fn, errno);
		return 0;
	}
	return -errno;
}

/* An existing empty file of that name (a crash right after creating it). */
static int reuse_empty(int dirfd, const char *name, int *out)
{
	struct stat st;
	int fd = openat(dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC |
			O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size != 0) {
		close(fd);
		return -EEXIST;
	}
	*out = fd;
	return 0;
}

int aseg_create(int dirfd, uint64_t first, struct aseg_flagnote *fn,
		int *out)
{
	char name[AUDIT_SEG_NAME_LEN + 1];
	int fd, rc;

	audit_segment_name(first, name);
	fd = openat(dirfd, name, O_WRONLY | O_APPEND | O_CREAT | O_EXCL |
		    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST && !reuse_empty(dirfd, name, &fd))
		errno = 0;
	if (fd < 0)
		return -errno;
	rc = chflags(fd, FS_APPEND_FL, 0, fn);
	/* The name must outlive a crash with the records in it. */
	if (!rc && fsync(dirfd))
		rc = -errno;
	if (rc) {
		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

int aseg_seal(int fd, struct aseg_flagnote *fn)
{
	/* chmod is refused on an append-only file: clear it first. */
	int rc = chflags(fd, 0, FS_APPEND_FL, fn);

	if (!rc && fchmod(fd, 0444))
		rc = -errno;
	if (!rc && fsync(fd))
		rc = -errno;
	if (!rc)
		rc = chflags(fd, FS_IMMUTABLE_FL, 0, fn);
	if (!rc)
		close(fd);
	return rc;
}

/* The highest first seq among the segment names; -ENOENT for none. */
static int newest(int dirfd, uint64_t *first, uint64_t *count)
{
	struct dirent *e;
	uint64_t f;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	int rc = -ENOENT;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	*count = 0;
	while ((errno = 0, e = readdir(d))) {
		if (audit_segment_parse_name(e->d_name, &f))
			continue;
		if (rc || f > *first)
			*first = f;
		rc = 0;
		(*count)++;
	}
	if (errno)
		rc = -errno;
	closedir(d);
	return rc;
}

/* Cuts the file to keep bytes, through its flags and mode. */
static int cut_to(int dirfd, const char *name, int fd, uint64_t keep,
		  struct aseg_flagnote *fn)
{
	struct stat st;
	int wfd, rc;

	rc = chflags(fd, 0, FS_APPEND_FL | FS_IMMUTABLE_FL, fn);
	if (!rc && fstat(fd, &st))
		rc = -errno;
	if (!rc && !(st.st_mode & S_IWUSR) && fchmod(fd, 0600))
		rc = -errno;
	if (rc)
		return rc;
	if (keep == 0)
		return unlinkat(dirfd, name, 0) ? -errno : 0;
	wfd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (wfd < 0)
		return -errno;
	rc = ftruncate(wfd, (off_t)keep) || fsync(wfd) ? -errno : 0;
	close(wfd);
	return rc;
}

/* Where the line ending at end (its '\n' excluded) starts in buf. */
static int line_start(const char *buf, size_t end, bool at_file_start,
		      size_t *start)
{
	const char *nl = end ? memrchr(buf, '\n', end) : NULL;

	if (nl)
		*start = (size_t)(nl - buf) + 1;
	else if (at_file_start)
		*start = 0;
	else
		return -EBADMSG;	/* longer than a line may be */
	return 0;
}

struct window {
	char *buf;
	size_t n;
	uint64_t base;		/* file offset of buf[0] */
};

/*
 * The last good record in the window: cuts bytes after the last '\n'
 * and, if need be, one whole line that does not parse.  *keep is the
 * file's good length.
 */
static int last_record(const struct window *w, struct audit_record *r,
		       uint64_t *keep, char *why, size_t why_len)
{
	size_t end, start;
	const char *nl = memrchr(w->buf, '\n', w->n);
	int rc;

	if (!nl) {
		if (w->base)
			return -EBADMSG;
		*keep = 0;
		return -ENOENT;
	}
	end = (size_t)(nl - w->buf);
	for (int tries = 0; tries < 2; tries++) {
		if (line_start(w->buf, end, w->base == 0, &start))
			return -EBADMSG;
		*keep = w->base + end + 1;
		rc = audit_record_parse(w->buf + start, end - start, r, why,
					why_len);
		if (rc != -EBADMSG)
			return rc;
		*keep = w->base + start;
		if (start == 0)
			return w->base ? -EBADMSG : -ENOENT;
		end = start - 1;
	}
	return -EBADMSG;
}

static int read_window(int fd, uint64_t size, struct window *w)
{
	size_t got;
	int rc;

	w->n = size < TAIL_WINDOW ? (size_t)size : TAIL_WINDOW;
	w->base = size - w->n;
	w->buf = malloc(w->n);
	if (!w->buf)
		return -ENOMEM;
	if (lseek(fd, (off_t)w->base, SEEK_SET) < 0)
		rc = -errno;
	else
		rc = ioutil_read_all(fd, w->buf, w->n, &got);
	if (!rc && got != w->n)
		rc = -EIO;	/* shrank under us */
	return rc;
}

static void take_record(struct aseg_tail *t, const struct audit_record *r,
			bool sealed)
{
	t->chain.seq = r->seq;
	memcpy(t->chain.head, r->hash, AUDIT_HASH_LEN);
	t->any = true;
	t->last_ck = r->op == AUDIT_CHECKPOINT;
	t->clean = !t->cut && sealed && t->last_ck;
	memcpy(t->ck_prev, r->prev, AUDIT_HASH_LEN);
	memcpy(t->ck_sig, r->sig, CRYPTO_ED25519_SIG_LEN);
}

/* Seals the segment unless a clean close already did; closes fd. */
static int finish(int fd, bool sealed, struct aseg_flagnote *fn)
{
	int rc = sealed ? 0 : aseg_seal(fd, fn);

	if (sealed || rc)
		close(fd);
	return rc;
}

/* Reads the segment's tail and cuts what is torn; *have: r was parsed. */
static int check_tail(int dirfd, const char *name, int fd, uint64_t first,
		      uint64_t size, struct aseg_tail *t,
		      struct aseg_flagnote *fn, struct audit_record *r,
		      bool *have, uint64_t *keep, char *why, size_t why_len)
{
	struct window w = { 0 };
	int rc = 0;

	*keep = 0;
	if (size)
		rc = read_window(fd, size, &w);
	if (!rc && size) {
		rc = last_record(&w, r, keep, why, why_len);
		*have = rc == 0;
	}
	free(w.buf);
	if (rc == -ENOENT)
		rc = 0;		/* nothing good in it: cut it whole */
	if (!rc && *have && r->seq < first)
		rc = -EBADMSG;
	if (!rc && (*keep < size || size == 0)) {
		t->cut += size - *keep;
		rc = cut_to(dirfd, name, fd, *keep, fn);
	}
	return rc;
}

/* One segment: 1 when it held no record and is gone, 0 when mended. */
static int mend_one(int dirfd, uint64_t first, struct aseg_tail *t,
		    struct aseg_flagnote *fn, char *err, size_t err_len)
{
	char name[AUDIT_SEG_NAME_LEN + 1], why[200] = "";
	struct audit_record r;
	struct stat st;
	uint64_t keep = 0, cut_before = t->cut;
	bool have = false, sealed;
	int fd, rc;

	audit_segment_name(first, name);
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	rc = fstat(fd, &st) ? -errno : 0;
	if (!rc && !S_ISREG(st.st_mode))
		rc = -EBADMSG;
	if (!rc)
		rc = check_tail(dirfd, name, fd, first, (uint64_t)st.st_size,
				t, fn, &r, &have, &keep, why, sizeof(why));
	/* A segment cut here must be sealed again; one sealed before a
	 * newer, torn one that is gone stays as it is. */
	sealed = !(st.st_mode & 0222) && t->cut == cut_before;
	if (!rc && keep) {
		take_record(t, &r, sealed);
		rc = finish(fd, sealed, fn);
	} else {
		close(fd);
	}
	if (have)
		audit_record_release(&r);
	if (rc == -EBADMSG)
		snprintf(err, err_len, "%s: the log's tail is damaged beyond "
			 "a torn record%s%s; run phifsctl audit verify", name,
			 why[0] ? ": " : "", why);
	else if (rc)
		snprintf(err, err_len, "%s: %s", name, strerror(-rc));
	return rc ? rc : keep ? 0 : 1;
}

int aseg_mend(int dirfd, struct aseg_tail *t, struct aseg_flagnote *fn,
	      char *err, size_t err_len)
{
	uint64_t first = 0, count = 0;
	int rc;

	memset(t, 0, sizeof(*t));
	audit_chain_init(&t->chain);
	for (;;) {
		rc = newest(dirfd, &first, &count);
		if (!t->segs)
			t->segs = count;
		if (rc == -ENOENT)
			return 0;	/* a new chain */
		if (rc) {
			snprintf(err, err_len, "the log folder: %s",
				 strerror(-rc));
			return rc;
		}
		rc = mend_one(dirfd, first, t, fn, err, err_len);
		if (rc != 1)
			return rc;
	}
}
