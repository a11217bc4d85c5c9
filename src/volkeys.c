/*
 * volkeys.c — key work over every file of an offline volume: counts per
 * master key version, the rotation pass and its resume marker, retiring a
 * version.  The walk sees the backing tree as the daemon does (vfs.c):
 * nothing followed, .phifs, symlinks and node records (sticky regular
 * files with a record's magic) skipped.  Knows nothing of argv, terminals or FUSE; headers are
 * cfile's, keys the keystore's.
 */
#include "phifs/volkeys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/atomicfile.h"
#include "phifs/errmsg.h"
#include "phifs/format.h"
#include "volkeys_impl.h"

#define MARKER_MAGIC "phifs rotation v1\ntarget "
/* Re-wraps in flight in an offline rotation: enough to keep a disk's
 * queue busy with the cold inode and header reads. */
#define ROTATE_THREADS 8

static size_t seen_hash(dev_t dev, ino_t ino, size_t cap)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (size_t)(h ^ h >> 29) & (cap - 1);
}

int volkeys_seen_add(struct seen *s, dev_t dev, ino_t ino)
{
	size_t i;

	if (2 * (s->n + 1) > s->cap) {
		struct seen t = { .cap = s->cap ? 2 * s->cap : 256 };

		t.e = calloc(t.cap, sizeof(*t.e));
		if (!t.e)
			return -ENOMEM;
		for (size_t k = 0; k < s->cap; k++)
			if (s->e[k].ino)
				(void)volkeys_seen_add(&t, s->e[k].dev, s->e[k].ino);
		free(s->e);
		*s = t;
	}
	for (i = seen_hash(dev, ino, s->cap); s->e[i].ino;
	     i = (i + 1) & (s->cap - 1))
		if (s->e[i].ino == ino && s->e[i].dev == dev)
			return 0;
	s->e[i].dev = dev;
	s->e[i].ino = ino;
	s->n++;
	return 1;
}

bool volkeys_seen_has(const struct seen *s, dev_t dev, ino_t ino)
{
	if (!s->cap)
		return false;
	for (size_t i = seen_hash(dev, ino, s->cap); s->e[i].ino;
	     i = (i + 1) & (s->cap - 1))
		if (s->e[i].ino == ino && s->e[i].dev == dev)
			return true;
	return false;
}

bool volkeys_is_record(int dirfd, const char *name)
{
	uint8_t head[FORMAT_RECORD_HEAD];
	ssize_t n = -1;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
			O_CLOEXEC);

	if (fd >= 0) {
		n = pread(fd, head, sizeof(head), 0);
		close(fd);
	}
	/* One that cannot be read is left to the pass, which says why. */
	return n > 0 && format_record_is(head, (size_t)n);
}

static int walk_dir(struct volkeys_walk *w, int fd, bool root);

/* One directory entry: a folder walked, an encrypted file visited. */
static int walk_entry(struct volkeys_walk *w, int dfd, const char *name,
		      unsigned char type, bool root)
{
	struct stat st;
	int rc, sub;

	if (w->stray && backing_is_rekey_temp(name))
		return w->stray(w, dfd, name);
	if (!strcmp(name, ".") || !strcmp(name, "..") ||
	    backing_is_meta(name, root))
		return 0;
	if (type == DT_REG && w->by_type)
		return w->visit(w, dfd, name);
	if (type == DT_REG && w->pool)
		return volkeys_pool_submit(w->pool, dfd, name, w->path);
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode)) {
		if (w->other && (rc = w->other(w, dfd, name, &st)))
			return rc;
		sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		return sub < 0 ? -errno : walk_dir(w, sub, false);
	}
	/* Symlinks, node records and anything else hold no DEK. */
	if (!S_ISREG(st.st_mode) ||
	    ((st.st_mode & S_ISVTX) && volkeys_is_record(dfd, name)))
		return w->other ? w->other(w, dfd, name, &st) : 0;
	if (st.st_nlink > 1) {
		rc = volkeys_seen_add(&w->seen, st.st_dev, st.st_ino);
		if (rc <= 0)
			return rc;
	}
	return w->visit(w, dfd, name);
}

/* Walks the folder on fd, which it owns. */
static int walk_dir(struct volkeys_walk *w, int fd, bool root)
{
	size_t plen = w->plen;
	struct dirent *de;
	DIR *d = fdopendir(fd);
	int rc = 0, rc2;

	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			rc = -errno;
			break;
		}
		w->plen = plen + (size_t)snprintf(w->path + plen,
			sizeof(w->path) - plen, "%s%s", plen ? "/" : "",
			de->d_name);
		if (w->plen >= sizeof(w->path))
			w->plen = sizeof(w->path) - 1;
		rc = walk_entry(w, dirfd(d), de->d_name, de->d_type, root);
		if (rc)
			break;
		w->path[w->plen = plen] = 0;
	}
	/* Its visits use its descriptor: all end before it closes. */
	rc2 = w->pool ? volkeys_pool_drain(w->pool) : 0;
	closedir(d);
	return rc ? rc : rc2;
}

int volkeys_walk_dir(struct volkeys_walk *w, int fd, const char *prefix,
		     char *err, size_t err_len)
{
	int rc;

	w->plen = (size_t)snprintf(w->path, sizeof(w->path), "%s", prefix);
	if (w->plen >= sizeof(w->path))
		w->plen = sizeof(w->path) - 1;
	rc = fd < 0 ? fd : walk_dir(w, fd, !*prefix);
	free(w->seen.e);
	w->seen = (struct seen){ 0 };
	if (rc < 0)
		return errmsg(err, err_len, rc, "%s: %s",
			      w->plen ? w->path : ".", strerror(-rc));
	return rc;
}

/* Visits every encrypted file of v; a failure names the path where. */
static int walk(struct volkeys_walk *w, char *err, size_t err_len)
{
	int fd = openat(w->v->backing.rootfd, ".", O_RDONLY | O_DIRECTORY |
			O_CLOEXEC);

	return volkeys_walk_dir(w, fd < 0 ? -errno : fd, "", err, err_len);
}

/* --- counting --- */

static int count_visit(struct volkeys_walk *w, int dirfd, const char *name)
{
	struct volkeys_count *c = w->arg;
	uint32_t ver = 0;
	int rc, fd;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
	rc = fd < 0 ? -errno : cfile_header_version(fd, &w->v->cv, &ver);
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; !rc && i < c->n; i++)
		if (c->versions[i].version == ver) {
			c->files[i]++;
			return 0;
		}
	if (rc == -ENOMEM)
		return rc;
	if (!c->unreadable++) {
		snprintf(c->first_bad, sizeof(c->first_bad), "%s", w->path);
		c->first_err = rc ? rc : -ENOKEY;
	}
	return 0;
}

int volkeys_count(const struct volume *v, struct volkeys_count *c,
		  char *err, size_t err_len)
{
	struct volkeys_walk w = { .v = v, .visit = count_visit, .arg = c };
	size_t n = keys_versions(v->keys, NULL, 0);

	memset(c, 0, sizeof(*c));
	c->versions = calloc(n, sizeof(*c->versions));
	c->files = calloc(n, sizeof(*c->files));
	if (!c->versions || !c->files)
		return errmsg(err, err_len, -ENOMEM, "out of memory");
	c->n = keys_versions(v->keys, c->versions, n);
	return walk(&w, err, err_len);
}

void volkeys_count_release(struct volkeys_count *c)
{
	free(c->versions);
	free(c->files);
	c->versions = NULL;
	c->files = NULL;
	c->n = 0;
}

/* --- rotation --- */

struct pass {
	struct volkeys_progress *p;
	volkeys_progress_fn fn;
	void *arg;
	const struct volkeys_ops *ops;	/* NULL: cfile_rewrap */
};

static int estimate_visit(struct volkeys_walk *w, int dirfd, const char *name)
{
	(void)dirfd;
	(void)name;
	((struct volkeys_progress *)w->arg)->estimate++;
	return 0;
}

static int rewrap_visit(struct volkeys_walk *w, int dirfd, const char *name)
{
	struct pass *ps = w->arg;
	struct volkeys_progress *p = ps->p;
	int rc, fd;

	fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
	if (fd < 0)
		rc = -errno;
	else if (ps->ops)
		rc = ps->ops->rewrap(ps->ops->arg, fd, p->target);
	else
		rc = cfile_rewrap(fd, &w->v->cv, p->target, NULL);
	if (fd >= 0)
		close(fd);
	if (rc == -ENOMEM || rc == -ECANCELED)
		return rc;
	volkeys_walk_lock(w);
	if (!rc)
		p->done++;
	else if (rc == -EALREADY)
		p->skipped++;
	else if (!p->failed++) {
		snprintf(p->first_bad, sizeof(p->first_bad), "%s", w->path);
		p->first_err = rc;
	}
	if (ps->fn)
		ps->fn(ps->arg, p);
	volkeys_walk_unlock(w);
	return 0;
}

/* The target of an unfinished rotation, or -ENOENT when none is. */
static int marker_read(const struct volume *v, uint32_t *target)
{
	char buf[64], *end;
	unsigned long t;
	ssize_t n;
	int fd;

	fd = openat(v->metafd, VOLKEYS_MARKER, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	if (strncmp(buf, MARKER_MAGIC, sizeof(MARKER_MAGIC) - 1))
		return -EUCLEAN;
	errno = 0;
	t = strtoul(buf + sizeof(MARKER_MAGIC) - 1, &end, 10);
	if (errno || *end != '\n' || end[1] || !t || t > UINT32_MAX)
		return -EUCLEAN;
	*target = (uint32_t)t;
	return 0;
}

/* keys_rotate() for volume_keys_change(); *arg, the version it must make. */
static int rotate_change(struct keys_store *ks, void *arg, char *err,
			 size_t err_len)
{
	uint32_t want = *(uint32_t *)arg, t;
	int rc = keys_rotate(ks, &t);

	if (!rc && t != want)
		rc = -ESTALE;	/* cannot be: one change at a time */
	if (rc)
		return errmsg(err, err_len, rc, "new master key version: %s",
			      strerror(-rc));
	return 0;
}

/* Retires the decrypt-only versions of ks; *arg counts them in a
 * volkeys_progress. */
static int retire_change(struct keys_store *ks, void *arg, char *err,
			 size_t err_len)
{
	struct volkeys_progress *p = arg;
	size_t n = keys_versions(ks, NULL, 0);
	struct keys_version_info *vi = calloc(n ? n : 1, sizeof(*vi));
	int rc = 0;

	if (!vi)
		return errmsg(err, err_len, -ENOMEM, "out of memory");
	n = keys_versions(ks, vi, n);
	p->nretired = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (vi[i].state != KEYS_DECRYPT_ONLY)
			continue;
		rc = keys_retire(ks, vi[i].version);
		if (!rc && p->nretired < 8)
			p->retired[p->nretired] = vi[i].version;
		p->nretired += !rc;
	}
	free(vi);
	if (rc)
		return errmsg(err, err_len, rc, "retire: %s", strerror(-rc));
	return 0;
}

/* Starts a rotation (marker, then the keystore naming the new version)
 * or finds the one a kill left unfinished. */
static int rotation_begin(struct volume *v, struct volkeys_progress *p,
			  char *err, size_t err_len)
{
	struct keys_version_info *vi;
	char buf[64];
	uint32_t t;
	int rc = marker_read(v, &t), n;

	if (rc && rc != -ENOENT)
		return errmsg(err, err_len, rc, "%s/%s: %s", BACKING_META,
			      VOLKEYS_MARKER, rc == -EUCLEAN ? "corrupt "
			      "rotation marker" : strerror(-rc));
	if (!rc && t == keys_active_version(v->keys)) {
		p->target = t;
		p->resumed = true;
		return 0;
	}
	t = keys_versions(v->keys, NULL, 0);
	vi = calloc(t, sizeof(*vi));
	if (!vi)
		return errmsg(err, err_len, -ENOMEM, "out of memory");
	(void)keys_versions(v->keys, vi, t);
	if (vi[t - 1].version == UINT32_MAX) {
		free(vi);
		return errmsg(err, err_len, -EOVERFLOW, "new master key "
			      "version: %s", strerror(EOVERFLOW));
	}
	t = vi[t - 1].version + 1;	/* the one keys_rotate makes */
	free(vi);
	/* The marker first: one naming a version the keystore lacks is
	 * stale, and ignored. */
	n = snprintf(buf, sizeof(buf), MARKER_MAGIC "%u\n", (unsigned)t);
	rc = atomicfile_write(v->metafd, VOLKEYS_MARKER, buf, (size_t)n,
			      0600);
	if (rc)
		return errmsg(err, err_len, rc, "%s/%s: %s", BACKING_META,
			      VOLKEYS_MARKER, strerror(-rc));
	/* Published, not changed in place: a daemon's workers read it. */
	rc = volume_keys_change(v, rotate_change, &t, err, err_len);
	if (rc)
		return rc;
	p->target = t;
	return 0;
}

/* Retires the decrypt-only versions but the target, unless keep_old. */
static int rotation_end(struct volume *v, bool keep_old,
			struct volkeys_progress *p, char *err, size_t err_len)
{
	int rc = 0;

	if (!keep_old) {
		rc = volume_keys_change(v, retire_change, p, err, err_len);
		if (rc)
			return rc;
	}
	if (unlinkat(v->metafd, VOLKEYS_MARKER, 0) && errno != ENOENT)
		rc = -errno;
	if (!rc && fsync(v->metafd))
		rc = -errno;
	if (rc)
		return errmsg(err, err_len, rc, "%s: %s", BACKING_META,
			      strerror(-rc));
	return 0;
}

/* Renames so far, as ops tell them; none without ops (a locked volume). */
static void renames_now(const struct pass *ps, uint64_t out[2])
{
	out[0] = out[1] = 0;
	if (ps->ops && ps->ops->renames)
		ps->ops->renames(ps->ops->arg, out);
}

/*
 * Walks the tree until one walk ran with no rename begun, ended or under
 * way (a rename may move a file from a folder not walked yet into one
 * walked already), at most ops->passes walks in all; -EAGAIN when none
 * did.  The first walk's skipped count is the one told.
 */
static int settled_passes(struct volkeys_walk *w, struct pass *ps,
			  char *err, size_t err_len)
{
	struct volkeys_progress *p = ps->p;
	unsigned passes = ps->ops && ps->ops->passes ? ps->ops->passes : 1;
	uint64_t skipped = 0, was[2], now[2];
	int rc = 0;

	for (unsigned k = 0; k < passes && !rc; k++) {
		renames_now(ps, was);
		rc = walk(w, err, err_len);
		if (k == 0)
			skipped = p->skipped;
		p->skipped = skipped;
		renames_now(ps, now);
		if (!rc && was[0] == was[1] && now[0] == was[0] &&
		    now[1] == was[1])
			return 0;
	}
	if (rc)
		return rc;
	return errmsg(err, err_len, -EAGAIN, "files were renamed during each "
		      "of %u passes, so one may have been missed; older "
		      "versions stay decrypt-only: run rotate again", passes);
}

int volkeys_rotate(struct volume *v, bool keep_old, volkeys_progress_fn fn,
		   void *arg, struct volkeys_progress *p, char *err,
		   size_t err_len)
{
	return volkeys_rotate_with(v, keep_old, NULL, fn, arg, p, err,
				   err_len);
}

int volkeys_rotate_with(struct volume *v, bool keep_old,
			const struct volkeys_ops *ops, volkeys_progress_fn fn,
			void *arg, struct volkeys_progress *p, char *err,
			size_t err_len)
{
	struct pass ps = { .p = p, .fn = fn, .arg = arg, .ops = ops };
	struct volkeys_walk w = {
		.v = v, .visit = estimate_visit, .arg = p, .by_type = true,
	};
	struct volkeys_pool *pool = NULL;
	int rc;

	memset(p, 0, sizeof(*p));
	p->phase = VOLKEYS_PASS;
	rc = rotation_begin(v, p, err, err_len);
	if (!rc)
		rc = walk(&w, err, err_len);
	w.visit = rewrap_visit;
	w.arg = &ps;
	w.by_type = false;
	if (!rc && fn)
		fn(arg, p);
	/* Offline, the pass waits on the disk; a daemon's pass stays on one
	 * thread, beside the users it serves. */
	if (!rc && !ops && (rc = volkeys_pool_new(&w, ROTATE_THREADS, &pool)))
		errmsg(err, err_len, rc, "threads: %s", strerror(-rc));
	if (!rc)
		rc = settled_passes(&w, &ps, err, err_len);
	volkeys_pool_free(pool);
	if (rc)
		return rc;
	if (p->failed)
		return errmsg(err, err_len, -EIO, "%llu file(s) not re-wrapped "
			      "(first: %s: %s); older versions stay "
			      "decrypt-only, run rotate again once fixed",
			      (unsigned long long)p->failed, p->first_bad,
			      strerror(-p->first_err));
	/* Every new header durable before any old key goes. */
	if (syncfs(v->backing.rootfd))
		return errmsg(err, err_len, -errno, "sync: %s",
			      strerror(errno));
	p->phase = VOLKEYS_RETIRING;
	if (fn)
		fn(arg, p);
	return rotation_end(v, keep_old, p, err, err_len);
}

/* --- retire --- */

/* Whether version may be retired, from the keystore and the counts. */
static int retire_check(const struct volkeys_count *c, uint32_t version,
			char *err, size_t err_len)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->versions[i].version != version)
			continue;
		if (c->versions[i].state == KEYS_ACTIVE)
			return errmsg(err, err_len, -EBUSY, "version %u is the "
				      "active one; rotate first",
				      (unsigned)version);
		if (c->versions[i].state == KEYS_RETIRED)
			return errmsg(err, err_len, -EALREADY, "version %u is "
				      "already retired", (unsigned)version);
		if (c->files[i])
			return errmsg(err, err_len, -EBUSY, "version %u still "
				      "wraps %llu file(s); rotate first",
				      (unsigned)version,
				      (unsigned long long)c->files[i]);
		if (c->unreadable)
			return errmsg(err, err_len, -EBUSY, "%llu header(s) "
				      "cannot be read (first: %s: %s), so "
				      "version %u may still be in use",
				      (unsigned long long)c->unreadable,
				      c->first_bad, strerror(-c->first_err),
				      (unsigned)version);
		return 0;
	}
	return errmsg(err, err_len, -ENOENT, "no master key version %u",
		      (unsigned)version);
}

static int retire_one(struct keys_store *ks, void *arg, char *err,
		      size_t err_len)
{
	uint32_t version = *(uint32_t *)arg;
	int rc = keys_retire(ks, version);

	if (rc)
		return errmsg(err, err_len, rc, "version %u: %s",
			      (unsigned)version, strerror(-rc));
	return 0;
}

int volkeys_retire(struct volume *v, uint32_t version, char *err,
		   size_t err_len)
{
	struct volkeys_count c;
	int rc;

	rc = volkeys_count(v, &c, err, err_len);
	if (!rc)
		rc = retire_check(&c, version, err, err_len);
	volkeys_count_release(&c);
	if (rc)
		return rc;
	return volume_keys_change(v, retire_one, &version, err, err_len);
}
