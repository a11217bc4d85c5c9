/*
 * audit_dir.c — the thin file layer under the verifier: the segment files
 * of a log folder, sorted by name (so by first seq: the names are
 * zero-padded), each read whole.  Knows nothing of what a line means.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_impl.h"
#include "phifs/ioutil.h"

/* A segment can be no bigger than this and still be read whole. */
#define SEGMENT_MAX ((size_t)1 << 32)

static int read_at(int dirfd, const char *name, char **buf, size_t *len,
		   size_t max)
{
	struct stat st;
	size_t got;
	char *p = NULL;
	int fd, rc;

	/* Non-blocking: a FIFO planted as a segment or an anchor must not
	 * hang the auditor's command; it is refused below. */
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
		    O_NONBLOCK);
	if (fd < 0)
		return -errno;
	rc = fstat(fd, &st) ? -errno : 0;
	if (!rc && !S_ISREG(st.st_mode))
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	if (!rc && (uint64_t)st.st_size > max)
		rc = -EFBIG;
	/* A byte more for a NUL; a file growing under us is read as far
	 * as it was when we looked. */
	if (!rc && !(p = malloc((size_t)st.st_size + 1)))
		rc = -ENOMEM;
	if (!rc)
		rc = ioutil_read_all(fd, p, (size_t)st.st_size, &got);
	close(fd);
	if (rc) {
		free(p);
		return rc;
	}
	p[got] = '\0';
	*buf = p;
	*len = got;
	return 0;
}

int audit_read_file(const char *path, char **buf, size_t *len, size_t max)
{
	return read_at(AT_FDCWD, path, buf, len, max);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct audit_segment *)a)->name,
		      ((const struct audit_segment *)b)->name);
}

/* Adds one directory entry if it is a segment. */
static int add_entry(int dirfd, const char *name, struct audit_segset *set,
		     size_t *cap)
{
	struct audit_segment *g;
	uint64_t first;
	int rc;

	if (audit_segment_parse_name(name, &first))
		return 0;
	if (set->n == *cap) {
		size_t ncap = *cap ? 2 * *cap : 16;

		g = realloc(set->segs, ncap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		set->segs = g;
		*cap = ncap;
	}
	g = &set->segs[set->n];
	g->name = strdup(name);
	if (!g->name)
		return -ENOMEM;
	rc = read_at(dirfd, name, (char **)&g->buf, &g->len, SEGMENT_MAX);
	if (rc) {
		free((char *)g->name);
		return rc;
	}
	set->n++;
	return 0;
}

int audit_dir_load(const char *path, struct audit_segset *set, char *err,
		   size_t err_len)
{
	struct audit_segset s = { 0 };
	struct dirent *e;
	size_t cap = 0;
	DIR *d = opendir(path);
	int rc = 0;

	if (!d) {
		rc = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(-rc));
		return rc;
	}
	while ((errno = 0, e = readdir(d))) {
		rc = add_entry(dirfd(d), e->d_name, &s, &cap);
		if (rc) {
			snprintf(err, err_len, "%s/%s: %s", path, e->d_name,
				 strerror(-rc));
			goto out;
		}
	}
	if (errno) {
		rc = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(-rc));
		goto out;
	}
	if (s.n)	/* qsort(NULL, 0, ...) is undefined */
		qsort(s.segs, s.n, sizeof(*s.segs), by_name);
	*set = s;
	s.segs = NULL;	/* transferred */
	s.n = 0;
out:
	closedir(d);
	audit_dir_release(&s);
	return rc;
}

void audit_dir_release(struct audit_segset *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free((char *)set->segs[i].name);
		free((char *)set->segs[i].buf);
	}
	free(set->segs);
	set->segs = NULL;
	set->n = 0;
}
