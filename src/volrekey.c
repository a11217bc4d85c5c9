/*
 * volrekey.c — rekey of an offline volume: each file copied under a fresh
 * DEK (cfile_rekey_copy) into a temporary file beside it, given the file's
 * owner, mode, times and attributes, synced, named in the rekey marker,
 * and renamed over the file.  The marker makes a rerun after a kill skip
 * what the killed run finished; its temporaries are removed.  Knows
 * nothing of argv, terminals or FUSE.
 */
#include "phifs/volrekey.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "phifs/crypto.h"
#include "phifs/errmsg.h"
#include "phifs/format.h"
#include "phifs/secmem.h"
#include "volkeys_impl.h"

#define MARKER_MAGIC "phifs rekey v1\n"
/* One marker line: 32 hex digits of a file ID, a space, the DEK
 * generation its copy has, a newline. */
#define LINE_MAX_LEN (32 + 1 + 10 + 1)

/* Files the marker names, by file ID: the generation their copy has. */
struct done {
	struct { uint8_t id[FORMAT_ID_LEN]; uint32_t gen; } *e;
	size_t n, cap;		/* cap a power of two, or 0 */
};

struct rekey {
	struct volume *v;
	struct volrekey_progress *p;
	volrekey_progress_fn fn;
	void *arg;
	struct done done;
	struct seen made;	/* inodes this run wrote: never again */
	int markfd;
	struct crypto_key *xkey, *xname_key;	/* extended attributes */
	uint8_t *xbuf, *xval;	/* a sealed value, an opened one */
};

static void tell(struct rekey *r, enum volrekey_step step)
{
	r->p->step = step;
	if (r->fn)
		r->fn(r->arg, r->p);
}

/* --- the marker --- */

static size_t done_slot(const struct done *d, const uint8_t *id)
{
	uint64_t h;

	memcpy(&h, id, sizeof(h));	/* file IDs are random */
	return (size_t)h & (d->cap - 1);
}

static int done_put(struct done *d, const uint8_t *id, uint32_t gen)
{
	size_t i;

	if (2 * (d->n + 1) > d->cap) {
		struct done t = { .cap = d->cap ? 2 * d->cap : 256 };

		t.e = calloc(t.cap, sizeof(*t.e));
		if (!t.e)
			return -ENOMEM;
		for (size_t k = 0; k < d->cap; k++)
			if (d->e[k].gen)
				(void)done_put(&t, d->e[k].id, d->e[k].gen);
		free(d->e);
		*d = t;
	}
	for (i = done_slot(d, id); d->e[i].gen &&
	     memcmp(d->e[i].id, id, FORMAT_ID_LEN); i = (i + 1) & (d->cap - 1))
		;
	d->n += !d->e[i].gen;
	memcpy(d->e[i].id, id, FORMAT_ID_LEN);
	d->e[i].gen = gen;
	return 0;
}

/* The generation the marker names for id, or 0. */
static uint32_t done_get(const struct done *d, const uint8_t *id)
{
	if (!d->cap)
		return 0;
	for (size_t i = done_slot(d, id); d->e[i].gen;
	     i = (i + 1) & (d->cap - 1))
		if (!memcmp(d->e[i].id, id, FORMAT_ID_LEN))
			return d->e[i].gen;
	return 0;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' :
	       c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One whole line into d; -EUCLEAN when it is not one. */
static int parse_line(struct done *d, const char *s, size_t len)
{
	uint8_t id[FORMAT_ID_LEN];
	unsigned long gen = 0;

	if (len < 32 + 2 || len > LINE_MAX_LEN - 1 || s[32] != ' ')
		return -EUCLEAN;
	for (size_t i = 0; i < 32; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);

		if (hi < 0 || lo < 0)
			return -EUCLEAN;
		id[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	for (size_t i = 33; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EUCLEAN;
		gen = gen * 10 + (unsigned long)(s[i] - '0');
	}
	if (!gen || gen > UINT32_MAX)
		return -EUCLEAN;
	return done_put(d, id, (uint32_t)gen);
}

/* Writes the first line of a marker on fd (empty) and makes it durable. */
static int marker_start(int fd, int dirfd)
{
	ssize_t n = write(fd, MARKER_MAGIC, sizeof(MARKER_MAGIC) - 1);

	if (n != sizeof(MARKER_MAGIC) - 1)
		return n < 0 ? -errno : -EIO;
	return fsync(fd) || fsync(dirfd) ? -errno : 0;
}

/*
 * Reads the marker on fd into r->done, and cuts a torn last line (a kill
 * inside an append) so that the next append starts a line of its own.  A
 * marker cut inside its first line (a kill as it was made) names nothing
 * and no temporary can exist yet: it is started again, as a new one.
 */
static int marker_load(struct rekey *r, int fd)
{
	struct stat st;
	char *buf = NULL;
	size_t len, pos, good;
	int rc = 0;

	if (fstat(fd, &st))
		return -errno;
	len = (size_t)st.st_size;
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	if (pread(fd, buf, len, 0) != (ssize_t)len)
		rc = -EIO;
	if (!rc && len < sizeof(MARKER_MAGIC) - 1 &&
	    !memcmp(buf, MARKER_MAGIC, len)) {
		free(buf);
		r->p->resumed = false;
		return ftruncate(fd, 0) ? -errno : marker_start(fd,
							      r->v->metafd);
	}
	if (!rc && (len < sizeof(MARKER_MAGIC) - 1 ||
		    memcmp(buf, MARKER_MAGIC, sizeof(MARKER_MAGIC) - 1)))
		rc = -EUCLEAN;
	good = pos = sizeof(MARKER_MAGIC) - 1;
	while (!rc && pos < len) {
		char *nl = memchr(buf + pos, '\n', len - pos);

		if (!nl)
			break;	/* torn: its copy may exist, never renamed */
		rc = parse_line(&r->done, buf + pos, (size_t)(nl - buf) - pos);
		if (rc == -EUCLEAN && (size_t)(nl - buf) + 1 == len)
			rc = 0;	/* a torn line whose newline made it */
		else if (!rc)
			good = (size_t)(nl - buf) + 1;
		pos = (size_t)(nl - buf) + 1;
	}
	free(buf);
	if (!rc && good < len && ftruncate(fd, (off_t)good))
		rc = -errno;
	return rc;
}

/* Opens the marker of a killed run, or makes a new one. */
static int marker_open(struct rekey *r, char *err, size_t err_len)
{
	int mfd = r->v->metafd, fd, rc = 0;

	fd = openat(mfd, VOLREKEY_MARKER, O_RDWR | O_APPEND | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd >= 0) {
		r->p->resumed = true;
		rc = marker_load(r, fd);
	} else if (errno == ENOENT) {
		fd = openat(mfd, VOLREKEY_MARKER, O_RDWR | O_APPEND | O_CREAT |
			    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		rc = fd < 0 ? -errno : marker_start(fd, mfd);
	} else {
		rc = -errno;
	}
	r->markfd = fd;
	if (rc)
		return errmsg(err, err_len, rc, "%s/%s: %s", BACKING_META,
			      VOLREKEY_MARKER, rc == -EUCLEAN ? "corrupt "
			      "rekey marker" : strerror(-rc));
	return 0;
}

/* Names a file's copy in the marker, durably, before its rename. */
static int marker_append(struct rekey *r, const uint8_t *id, uint32_t gen)
{
	char line[LINE_MAX_LEN + 1];
	int n = 0;

	for (size_t i = 0; i < FORMAT_ID_LEN; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x",
			      id[i]);
	n += snprintf(line + n, sizeof(line) - (size_t)n, " %u\n",
		      (unsigned)gen);
	ssize_t w = write(r->markfd, line, (size_t)n);

	if (w != n)	/* a short write leaves errno as it was */
		return w < 0 ? -errno : -EIO;
	return fdatasync(r->markfd) ? -errno : 0;
}

/* After a pass without failures: nothing is left to finish. */
static int marker_remove(struct rekey *r, char *err, size_t err_len)
{
	int rc = 0;

	if (unlinkat(r->v->metafd, VOLREKEY_MARKER, 0) && errno != ENOENT)
		rc = -errno;
	if (!rc && fsync(r->v->metafd))
		rc = -errno;
	if (rc)
		return errmsg(err, err_len, rc, "%s/%s: %s", BACKING_META,
			      VOLREKEY_MARKER, strerror(-rc));
	return 0;
}

/* --- one file --- */

/*
 * The caller's extended attributes of old (inode ino) sealed again for
 * new's inode: their backing names and AADs hold the inode number.  Other
 * backing attributes are copied as they are, but the size tag, which the
 * copy has already; one that does not open (planted, damaged) opened
 * nowhere before either, and is left out.
 */
static int copy_xattrs(struct rekey *r, int old, int new, uint64_t ino)
{
	char list[65536], name[FORMAT_XATTR_NAME_MAX + 1];
	char bname[FORMAT_XATTR_BNAME_MAX];
	const uint8_t *vid = r->v->cv.volume_id;
	struct stat st;
	ssize_t len = flistxattr(old, list, sizeof(list)), n, vlen = 0;

	if (len < 0)
		return errno == ENOTSUP ? 0 : -errno;
	if (fstat(new, &st))
		return -errno;
	for (char *a = list; a < list + len && vlen >= 0; a += strlen(a) + 1) {
		if (!strcmp(a, FORMAT_SIZE_XATTR))
			continue;
		n = fgetxattr(old, a, r->xbuf, FORMAT_XATTR_SEALED_MAX);
		if (n < 0) {
			vlen = -errno;
			break;
		}
		if (!format_xattr_is(a)) {
			if (fsetxattr(new, a, r->xbuf, (size_t)n, 0))
				vlen = -errno;
			continue;
		}
		vlen = format_xattr_open(r->xkey, vid, ino, a, r->xbuf,
					 (size_t)n, name, r->xval);
		if (vlen == -EBADMSG) {
			vlen = 0;
			continue;
		}
		if (vlen >= 0)
			vlen = format_xattr_bname(r->xname_key,
				(uint64_t)st.st_ino, name, bname) ?: vlen;
		if (vlen >= 0)
			n = format_xattr_seal(r->xkey, vid, (uint64_t)st.st_ino,
					      bname, name, r->xval,
					      (size_t)vlen, r->xbuf);
		if (vlen >= 0 && n < 0)
			vlen = n;
		else if (vlen >= 0 && fsetxattr(new, bname, r->xbuf, (size_t)n, 0))
			vlen = -errno;
	}
	/* The plain attribute name may itself be PHI. */
	secmem_wipe(name, sizeof(name));
	return vlen < 0 ? (int)vlen : 0;
}

/* The copy on tfd takes the original's owner, mode (a: those its header
 * authenticates) and times. */
static int copy_inode(int tfd, const struct stat *st,
		      const struct format_attrs *a)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };

	/* chown first: it clears set-user-ID and set-group-ID bits. */
	if ((a->uid != geteuid() || a->gid != getegid()) &&
	    fchown(tfd, a->uid, a->gid))
		return -errno;
	if (fchmod(tfd, a->mode & 07777) || futimens(tfd, ts))
		return -errno;
	return 0;
}

/*
 * The mode and owner the copy is to have: those the original's header
 * authenticates, or for a header made before phifs kept them, the
 * backing file's (as its next commit would record them).
 */
static int source_attrs(struct cfile *src, const struct stat *st,
			struct format_attrs *a)
{
	int rc = cfile_attrs(src, a);

	if (rc == -ENODATA) {
		*a = (struct format_attrs){ .mode = st->st_mode & 07777,
					    .uid = st->st_uid,
					    .gid = st->st_gid };
		rc = 0;
	}
	return rc;
}

static void temp_name(const uint8_t *id, char out[BACKING_REKEY_NAME_LEN + 1])
{
	int n = snprintf(out, BACKING_REKEY_NAME_LEN + 1, "%s",
			 BACKING_REKEY_PREFIX);

	for (size_t i = 0; i < FORMAT_ID_LEN; i++)
		n += snprintf(out + n, (size_t)(BACKING_REKEY_NAME_LEN + 1 - n),
			      "%02x", id[i]);
}

/* Copies src into the temporary tmp beside it and makes it durable. */
static int write_copy(struct rekey *r, struct cfile *src, int dirfd,
		      const char *tmp, const struct stat *st, int fd)
{
	struct cfile *dst = NULL;
	struct format_attrs a;
	int tfd, rc, rrc;

	rc = source_attrs(src, st, &a);
	if (rc)
		return rc;
	if (unlinkat(dirfd, tmp, 0) && errno != ENOENT)
		return -errno;	/* a killed run's copy, never renamed */
	tfd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
		     O_CLOEXEC, 0600);
	if (tfd < 0)
		return -errno;
	rc = cfile_rekey_copy(src, tfd, &r->v->cv, &dst);
	if (!rc) {
		r->p->dek_gen = cfile_dek_gen(dst);
		rc = cfile_set_attrs(dst, &a);
		/* The fresh size tag covers the mode and owner: they first. */
		if (!rc)
			rc = copy_inode(tfd, st, &a);
		rrc = cfile_release(dst);
		if (!rc)
			rc = rrc;
	}
	if (!rc)
		rc = copy_xattrs(r, fd, tfd, (uint64_t)st->st_ino);
	if (!rc)
		rc = fsync(tfd) ? -errno : 0;
	close(tfd);
	return rc;
}

/* Puts the durable copy tmp in place of name, remembering its inode. */
static int swap_in(struct rekey *r, int dirfd, const char *tmp,
		   const char *name, const uint8_t *id)
{
	struct stat st;
	int rc;

	rc = marker_append(r, id, r->p->dek_gen);
	if (rc)
		return rc;
	tell(r, VOLREKEY_LOGGED);
	if (fstatat(dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW) ||
	    renameat(dirfd, tmp, dirfd, name) || fsync(dirfd))
		return -errno;
	rc = volkeys_seen_add(&r->made, st.st_dev, st.st_ino);
	return rc < 0 ? rc : 0;
}

/* Rekeys the file name in dirfd (a real folder fd): 0, 1 when it needed
 * nothing, 2 when refused, or -errno. */
static int rekey_file(struct rekey *r, int dirfd, const char *name)
{
	char tmp[BACKING_REKEY_NAME_LEN + 1];
	struct cfile *src = NULL;
	struct stat st;
	uint8_t id[FORMAT_ID_LEN];
	int fd, rc;

	fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fstat(fd, &st) ? -errno : 0;
	if (!rc && st.st_nlink > 1) {
		if (!r->p->refused)
			r->p->refused_links = st.st_nlink;
		rc = 2;
		goto out;
	}
	if (!rc)
		rc = cfile_open(fd, &r->v->cv, &src);
	if (rc)
		goto out;
	memcpy(id, cfile_file_id(src), FORMAT_ID_LEN);
	if (done_get(&r->done, id) == cfile_dek_gen(src)) {
		rc = 1;		/* renamed in by the killed run */
		goto out;
	}
	temp_name(id, tmp);
	rc = write_copy(r, src, dirfd, tmp, &st, fd);
	if (!rc) {
		r->p->bytes += cfile_size(src);
		tell(r, VOLREKEY_COPIED);
		rc = swap_in(r, dirfd, tmp, name, id);
	}
	if (rc)
		(void)unlinkat(dirfd, tmp, 0);	/* the original stays */
out:
	(void)cfile_release(src);	/* only read: nothing to commit */
	close(fd);
	return rc;
}

static int rekey_visit(struct volkeys_walk *w, int dirfd, const char *name)
{
	struct rekey *r = w->arg;
	struct volrekey_progress *p = r->p;
	struct stat st;
	int rc;

	if (!fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) &&
	    volkeys_seen_has(&r->made, st.st_dev, st.st_ino))
		return 0;	/* a copy of ours, listed again after its rename */
	rc = rekey_file(r, dirfd, name);
	if (rc == -ENOMEM)
		return rc;
	if (!rc)
		p->done++;
	else if (rc == 1)
		p->skipped++;
	else if (rc == 2 && !p->refused++)
		snprintf(p->first_refused, sizeof(p->first_refused), "%s",
			 w->path);
	else if (rc < 0 && !p->failed++) {
		snprintf(p->first_bad, sizeof(p->first_bad), "%s", w->path);
		p->first_err = rc;
	}
	tell(r, VOLREKEY_FILE);
	return 0;
}

static int estimate_visit(struct volkeys_walk *w, int dirfd, const char *name)
{
	(void)dirfd;
	(void)name;
	((struct rekey *)w->arg)->p->estimate++;
	return 0;
}

static int stray_visit(struct volkeys_walk *w, int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0))
		return errno == ENOENT ? 0 : -errno;
	((struct rekey *)w->arg)->p->strays++;
	return 0;
}

static int nothing_visit(struct volkeys_walk *w, int dirfd, const char *name)
{
	(void)w;
	(void)dirfd;
	(void)name;
	return 0;
}

/* --- the paths named --- */

struct target {
	int dirfd;		/* the folder holding it, or -1 for the root */
	char leaf[NAME_MAX + 1];
	char rel[PATH_MAX];	/* from the volume's root; "" the root */
	bool folder;
};

/* Appends the component [s, s + len) to the path in out, of length *n. */
static int push(char out[PATH_MAX], size_t *n, const char *s, size_t len)
{
	char name[NAME_MAX + 1];

	if (len > NAME_MAX || *n + 1 + len >= PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(name, s, len);
	name[len] = 0;
	if (backing_is_meta(name, !*n))
		return -EXDEV;	/* phifs's own, outside the mount's tree */
	if (*n)
		out[(*n)++] = '/';
	memcpy(out + *n, s, len);
	*n += len;
	out[*n] = 0;
	return 0;
}

/*
 * path as a path from the volume's root ("" for the root), its ".." and
 * "." taken away: -EXDEV when it leads outside the volume.  An absolute
 * path must lie in the backing directory.
 */
static int rel_path(const struct volume *v, const char *path,
		    char out[PATH_MAX])
{
	char root[PATH_MAX], proc[32];
	const char *s = path;
	size_t n = 0, rl;
	ssize_t len;
	int rc = 0;

	if (*path == '/') {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d",
			 v->backing.rootfd);
		len = readlink(proc, root, sizeof(root) - 1);
		if (len < 0)
			return -errno;
		root[len] = 0;
		rl = strcmp(root, "/") ? (size_t)len : 0;
		if (strncmp(path, root, rl) || (path[rl] && path[rl] != '/'))
			return -EXDEV;
		s = path + rl;
	}
	out[0] = 0;
	while (*s && !rc) {
		const char *e = strchrnul(s, '/');
		size_t clen = (size_t)(e - s);

		if (clen == 2 && !strncmp(s, "..", 2)) {
			char *slash = strrchr(out, '/');

			if (!n)
				return -EXDEV;
			n = slash ? (size_t)(slash - out) : 0;
			out[n] = 0;
		} else if (clen && !(clen == 1 && *s == '.')) {
			rc = push(out, &n, s, clen);
		}
		s = *e ? e + 1 : e;
	}
	return rc;
}

/* Opens the folder holding t->rel, never through a symlink, and checks
 * what t->rel is. */
static int target_open(const struct volume *v, struct target *t)
{
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	char parent[PATH_MAX], *slash, *leaf;
	struct stat st;
	long fd;

	t->dirfd = -1;
	t->folder = !*t->rel;
	if (t->folder)
		return 0;
	snprintf(parent, sizeof(parent), "%s", t->rel);
	slash = strrchr(parent, '/');
	leaf = slash ? slash + 1 : parent;
	if (strlen(leaf) > NAME_MAX)	/* push() let none through */
		return -ENAMETOOLONG;
	memcpy(t->leaf, leaf, strlen(leaf) + 1);
	if (slash)
		*slash = 0;
	fd = syscall(SYS_openat2, v->backing.rootfd, slash ? parent : ".",
		     &how, sizeof(how));
	if (fd < 0)
		return -errno;
	t->dirfd = (int)fd;
	if (fstatat(t->dirfd, t->leaf, &st, AT_SYMLINK_NOFOLLOW))
		return -errno;
	t->folder = S_ISDIR(st.st_mode);
	if (!t->folder && (!S_ISREG(st.st_mode) ||
			   ((st.st_mode & S_ISVTX) &&
			    volkeys_is_record(t->dirfd, t->leaf))))
		return -EINVAL;	/* symlink, node record, FIFO, ... */
	return 0;
}

static const char *target_error(int rc)
{
	return rc == -EXDEV ? "outside the volume" :
	       rc == -ELOOP ? "a symlink on the way (never followed)" :
	       rc == -EINVAL ? "not an encrypted file (symlink, device or "
			       "special file)" : strerror(-rc);
}

/* Checks every path before any file changes. */
static int targets_open(const struct volume *v, char *const *paths,
			size_t n, struct target *t, char *err, size_t err_len)
{
	for (size_t i = 0; i < n; i++)
		t[i].dirfd = -1;	/* none to close after a failure */
	for (size_t i = 0; i < n; i++) {
		int rc = rel_path(v, paths[i], t[i].rel);

		if (!rc)
			rc = target_open(v, &t[i]);
		if (rc)
			return errmsg(err, err_len, rc, "%s: %s", paths[i],
				      target_error(rc));
	}
	return 0;
}

/* One pass of visit over the targets (the whole volume when n is 0). */
static int pass(struct rekey *r, struct target *t, size_t n,
		int (*visit)(struct volkeys_walk *, int, const char *),
		char *err, size_t err_len)
{
	struct target all = { .dirfd = -1, .folder = true };
	struct volkeys_walk w = { .v = r->v, .visit = visit, .arg = r };
	int rc = 0;

	if (!n) {
		t = &all;
		n = 1;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		int fd = t[i].dirfd < 0 ? r->v->backing.rootfd : t[i].dirfd;

		if (t[i].folder) {
			fd = openat(fd, t[i].dirfd < 0 ? "." : t[i].leaf,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				    O_CLOEXEC);
			rc = volkeys_walk_dir(&w, fd < 0 ? -errno : fd,
					      t[i].rel, err, err_len);
			continue;
		}
		snprintf(w.path, sizeof(w.path), "%s", t[i].rel);
		rc = visit(&w, fd, t[i].leaf);
	}
	return rc;
}

/* --- the run --- */

static int rekey_init(struct rekey *r, char *err, size_t err_len)
{
	int rc = keys_volume_key(r->v->keys, "phifs xattr v1", &r->xkey);

	if (!rc)
		rc = keys_volume_key(r->v->keys, "phifs xattr name v1",
				     &r->xname_key);
	r->xbuf = malloc(FORMAT_XATTR_SEALED_MAX);
	r->xval = malloc(FORMAT_XATTR_VALUE_MAX);
	if (!rc && (!r->xbuf || !r->xval))
		rc = -ENOMEM;
	if (rc)
		return errmsg(err, err_len, rc, "volume keys: %s",
			      strerror(-rc));
	return marker_open(r, err, err_len);
}

static void rekey_release(struct rekey *r, struct target *t, size_t n)
{
	for (size_t i = 0; t && i < n; i++)
		if (t[i].dirfd >= 0)
			close(t[i].dirfd);
	free(t);
	if (r->markfd >= 0)
		close(r->markfd);
	crypto_key_free(r->xkey);
	crypto_key_free(r->xname_key);
	if (r->xval)
		secmem_wipe(r->xval, FORMAT_XATTR_VALUE_MAX);
	free(r->xval);
	free(r->xbuf);
	free(r->done.e);
	free(r->made.e);
}

/* The line for a pass that left files behind; 0 when none. */
static int outcome(const struct volrekey_progress *p, char *err,
		   size_t err_len)
{
	if (p->failed)
		return errmsg(err, err_len, -EIO, "%llu file(s) not rekeyed "
			      "(first: %s: %s); run rekey again once fixed",
			      (unsigned long long)p->failed, p->first_bad,
			      strerror(-p->first_err));
	if (p->refused)
		return errmsg(err, err_len, -EMLINK, "%llu hard-linked "
			      "file(s) not rekeyed (first: %s, %llu links): a "
			      "rename would split the link; copy the file to "
			      "break it, then rekey it",
			      (unsigned long long)p->refused,
			      p->first_refused,
			      (unsigned long long)p->refused_links);
	return 0;
}

int volrekey_run(struct volume *v, char *const *paths, size_t npaths,
		 volrekey_progress_fn fn, void *arg,
		 struct volrekey_progress *p, char *err, size_t err_len)
{
	struct rekey r = { .v = v, .p = p, .fn = fn, .arg = arg,
			   .markfd = -1 };
	struct target *t = calloc(npaths ? npaths : 1, sizeof(*t));
	int rc;

	memset(p, 0, sizeof(*p));
	if (!t) {
		rekey_release(&r, t, 0);
		return errmsg(err, err_len, -ENOMEM, "out of memory");
	}
	rc = targets_open(v, paths, npaths, t, err, err_len);
	if (!rc)
		rc = rekey_init(&r, err, err_len);
	/* A killed run may have left copies beside any file. */
	if (!rc && p->resumed) {
		struct volkeys_walk w = { .v = v, .visit = nothing_visit,
					  .stray = stray_visit, .arg = &r };
		int fd = openat(v->backing.rootfd, ".", O_RDONLY |
				O_DIRECTORY | O_CLOEXEC);

		rc = volkeys_walk_dir(&w, fd < 0 ? -errno : fd, "", err,
				      err_len);
	}
	if (!rc)
		rc = pass(&r, t, npaths, estimate_visit, err, err_len);
	if (!rc)
		tell(&r, VOLREKEY_START);
	if (!rc)
		rc = pass(&r, t, npaths, rekey_visit, err, err_len);
	if (!rc && !p->failed)
		rc = marker_remove(&r, err, err_len);
	rekey_release(&r, t, npaths);
	return rc ? rc : outcome(p, err, err_len);
}
