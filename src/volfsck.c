/*
 * volfsck.c — phifsctl fsck's checks over an offline volume (volfsck.h).
 * Each object is checked by what the daemon would do to serve it: a file
 * is opened and read to its end, a symlink's target and a node record are
 * opened, sealed attributes are opened; nothing is written but what
 * cfile_open itself mends.
 */
#include "phifs/volfsck.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "phifs/cfile.h"
#include "phifs/crypto.h"
#include "phifs/errmsg.h"
#include "phifs/folders.h"
#include "phifs/format.h"
#include "phifs/secmem.h"
#include "volkeys_impl.h"

/* Plaintext read at a time; a failing chunk is read again block by block
 * to name the blocks. */
#define CHUNK (64u * 1024u)	/* secmem_alloc's largest */
/* Blocks named per file before the rest are only counted. */
#define NAMED_BLOCKS 8

struct fsck {
	struct volfsck_report *rep;
	volfsck_fn fn;
	void *arg;
	struct crypto_key *link_key, *xattr_key, *folder_key;
	struct folders_key fk;
	bool marked;			/* every folder must have a record */
	uint8_t *buf;			/* CHUNK bytes, locked: plaintext */
	uint8_t *xbuf;			/* a sealed attribute */
	uint8_t *xval;			/* an opened one, locked */
};

static void say(struct fsck *k, bool problem, const char *path,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void say(struct fsck *k, bool problem, const char *path,
		const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (problem)
		k->rep->problems++;
	else
		k->rep->notes++;
	k->fn(k->arg, problem, *path ? path : ".", what);
}

/* Why a header does not open, as a reader should be told it. */
static const char *header_why(int rc)
{
	switch (rc) {
	case -EPROTO:
		return "written by a newer phifs";
	case -ENOKEY:
		return "its master key version is unknown or retired";
	case -EKEYREJECTED:
		return "its file key does not unwrap (another key)";
	case -EUCLEAN:
		return "corrupt, or from another volume";
	default:
		return strerror(-rc);
	}
}

/* --- sealed extended attributes, on files and folders alike --- */

static void check_xattrs(struct fsck *k, struct volkeys_walk *w, int fd)
{
	char list[65536], name[FORMAT_XATTR_NAME_MAX + 1];
	struct stat st;
	ssize_t len = flistxattr(fd, list, sizeof(list)), n;

	if (len < 0) {
		if (errno != ENOTSUP)
			say(k, true, w->path, "extended attributes cannot be "
			    "listed: %s", strerror(errno));
		return;
	}
	if (fstat(fd, &st)) {
		say(k, true, w->path, "cannot stat: %s", strerror(errno));
		return;
	}
	for (char *a = list; a < list + len; a += strlen(a) + 1) {
		if (!format_xattr_is(a))
			continue;
		k->rep->xattrs++;
		n = fgetxattr(fd, a, k->xbuf, FORMAT_XATTR_SEALED_MAX);
		if (n >= 0)
			n = format_xattr_open(k->xattr_key,
					      w->v->cv.volume_id,
					      (uint64_t)st.st_ino, a, k->xbuf,
					      (size_t)n, name, k->xval);
		if (n == -EBADMSG)
			say(k, true, w->path, "extended attribute %s fails "
			    "authentication (altered, or copied from another "
			    "file)", a);
		else if (n < 0)
			say(k, true, w->path, "extended attribute %s cannot "
			    "be read: %s", a, strerror((int)-n));
	}
	secmem_wipe(name, sizeof(name));
}

/* --- encrypted files --- */

/* Reads the blocks of [off, off + len) one by one, naming those that fail. */
static void name_blocks(struct fsck *k, struct volkeys_walk *w,
			struct cfile *cf, uint64_t off, uint64_t len,
			unsigned *named, uint64_t *failed)
{
	for (uint64_t o = off; o < off + len; o += FORMAT_BLOCK_SIZE) {
		ssize_t n = cfile_pread(cf, k->buf, FORMAT_BLOCK_SIZE, o);

		if (n >= 0)
			continue;
		++*failed;
		if ((*named)++ < NAMED_BLOCKS)
			say(k, true, w->path, "block %" PRIu64 " %s",
			    o / FORMAT_BLOCK_SIZE, n == -EBADMSG ?
			    "fails authentication" : strerror((int)-n));
	}
}

/* Reads the whole file; every chunk that fails is narrowed to blocks. */
static void read_all(struct fsck *k, struct volkeys_walk *w, struct cfile *cf)
{
	uint64_t size = cfile_size(cf), failed = 0;
	unsigned named = 0;

	for (uint64_t off = 0; off < size; off += CHUNK) {
		uint64_t len = size - off < CHUNK ? size - off : CHUNK;
		ssize_t n = cfile_pread(cf, k->buf, (size_t)len, off);

		if (n == (ssize_t)len)
			continue;
		if (n >= 0) {
			say(k, true, w->path, "ends at %" PRIu64 " bytes, "
			    "short of the %" PRIu64 " its header says",
			    off + (uint64_t)n, size);
			break;
		}
		name_blocks(k, w, cf, off, len, &named, &failed);
	}
	if (named > NAMED_BLOCKS)
		say(k, true, w->path, "%" PRIu64 " block(s) fail in all",
		    failed);
	k->rep->bytes += size;
	secmem_wipe(k->buf, CHUNK);
}

/* What the open noticed and cfile tells no one: said as notes. */
static void tell_note(struct fsck *k, struct volkeys_walk *w,
		      struct cfile *cf)
{
	struct cfile_note n;

	if (!cfile_take_note(cf, &n))
		return;
	if (n.pick.refused >= 0)
		say(k, false, w->path, "header slot %d refused (%s), slot %d "
		    "(seq %" PRIu64 ") in force: a torn header write, or "
		    "damage", n.pick.refused, header_why(n.pick.refused_rc),
		    n.pick.slot, n.seq);
	if (n.tag == CFILE_TAG_DIFFERS)
		say(k, false, w->path, "size tag says %" PRIu64 " bytes, the "
		    "header %" PRIu64 ": a tag rolled back or planted; the "
		    "header wins", n.tag_size, n.size);
	if (n.attrs_differ)
		say(k, false, w->path, "backing mode %04o owner %u:%u, the "
		    "header's %04o %u:%u: changed behind phifs's back; %s",
		    n.backing.mode, n.backing.uid, n.backing.gid,
		    n.attrs.mode, n.attrs.uid, n.attrs.gid,
		    n.attrs_restored ? "put back" : "not put back (no right "
		    "to)");
}

/* A rewrite left in its journal: the next mount (read-write) finishes it. */
static void check_journal(struct fsck *k, struct volkeys_walk *w,
			  struct cfile *cf)
{
	const uint8_t *id = cfile_file_id(cf);
	char name[2 * FORMAT_ID_LEN + 1];

	if (w->v->journalfd < 0)
		return;
	for (int i = 0; i < FORMAT_ID_LEN; i++)
		snprintf(name + 2 * i, 3, "%02x", id[i]);
	if (!faccessat(w->v->journalfd, name, F_OK, AT_SYMLINK_NOFOLLOW))
		say(k, false, w->path, "a rewrite was interrupted (journal "
		    "%s): the next mount finishes it", name);
}

static int file_visit(struct volkeys_walk *w, int dirfd, const char *name)
{
	struct fsck *k = w->arg;
	struct cfile *cf = NULL;
	int fd, rc;

	k->rep->files++;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
	if (fd < 0) {
		say(k, true, w->path, "cannot open: %s", strerror(errno));
		return 0;
	}
	rc = cfile_open(fd, &w->v->cv, &cf);
	if (rc == -ENOMEM) {
		close(fd);
		return rc;
	}
	if (rc) {
		say(k, true, w->path, "header does not open: %s",
		    header_why(rc));
	} else {
		tell_note(k, w, cf);
		check_journal(k, w, cf);
		read_all(k, w, cf);
		cfile_release(cf);
	}
	check_xattrs(k, w, fd);
	close(fd);
	return 0;
}

/* --- everything else --- */

static void check_symlink(struct fsck *k, struct volkeys_walk *w, int dirfd,
			  const char *name)
{
	char sealed[FORMAT_SYMLINK_SEALED_MAX], target[FORMAT_SYMLINK_MAX + 1];
	ssize_t n = readlinkat(dirfd, name, sealed, sizeof(sealed) - 1);
	int rc;

	k->rep->symlinks++;
	if (n < 0) {
		say(k, true, w->path, "cannot read the symlink: %s",
		    strerror(errno));
		return;
	}
	sealed[n] = 0;
	rc = format_symlink_open(k->link_key, w->v->cv.volume_id, sealed,
				 target, sizeof(target));
	if (rc)
		say(k, true, w->path, "symlink target %s", rc == -EBADMSG ?
		    "fails authentication (planted or altered)" :
		    strerror(-rc));
	secmem_wipe(target, sizeof(target));
}

static void check_record(struct fsck *k, struct volkeys_walk *w, int dirfd,
			 const char *name)
{
	uint8_t in[FORMAT_RECORD_MAX + 1];
	struct format_record *r = malloc(sizeof(*r));
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
			O_CLOEXEC);
	ssize_t n = fd < 0 ? -errno : pread(fd, in, sizeof(in), 0);
	int rc = n < 0 ? (int)(fd < 0 ? n : -errno) : 0;

	k->rep->records++;
	if (fd >= 0)
		close(fd);
	if (!rc && !r)
		rc = -ENOMEM;
	if (!rc)
		rc = format_record_open(k->link_key, w->v->cv.volume_id, in,
					(size_t)n, r);
	if (rc == -EBADMSG)
		say(k, true, w->path, "node record fails authentication "
		    "(planted or altered)");
	else if (rc == -EUCLEAN)
		say(k, true, w->path, "node record is malformed");
	else if (rc)
		say(k, true, w->path, "node record cannot be read: %s",
		    strerror(-rc));
	if (r)
		secmem_wipe(r, sizeof(*r));
	free(r);
}

/* The folder's sealed mode and owner (FORMAT.md, "Folder records"). */
static void check_record_of(struct fsck *k, struct volkeys_walk *w, int fd)
{
	struct format_folder f;
	struct format_attrs b;
	struct stat st;
	int rc;

	if (fstat(fd, &st)) {
		say(k, true, w->path, "cannot stat: %s", strerror(errno));
		return;
	}
	rc = folders_read(&k->fk, fd, -1, NULL, (uint64_t)st.st_ino, &f);
	if (rc == -ENODATA && !k->marked)
		return;		/* the next mount gives it one */
	if (rc == -ENODATA)
		say(k, true, w->path, "folder record missing: the mount shows "
		    "it as mode 0000");
	else if (rc == -EBADMSG || rc == -EUCLEAN)
		say(k, true, w->path, "folder record fails authentication "
		    "(altered, copied from another folder, or the volume was "
		    "copied file by file): the mount shows it as mode 0000");
	else if (rc)
		say(k, true, w->path, "folder record cannot be read: %s",
		    strerror(-rc));
	if (rc)
		return;
	b = folders_backing(&st);
	if (b.mode != f.attrs.mode || b.uid != f.attrs.uid ||
	    b.gid != f.attrs.gid)
		say(k, false, w->path, "backing mode %04o owner %u:%u, the "
		    "record's %04o %u:%u: changed behind phifs's back; the "
		    "mount puts it back", b.mode, b.uid, b.gid,
		    f.attrs.mode, f.attrs.uid, f.attrs.gid);
}

static void check_folder(struct fsck *k, struct volkeys_walk *w, int dirfd,
			 const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			O_CLOEXEC);

	k->rep->folders++;
	if (fd < 0) {
		say(k, true, w->path, "cannot open the folder: %s",
		    strerror(errno));
		return;
	}
	check_record_of(k, w, fd);
	check_xattrs(k, w, fd);
	close(fd);
}

static int other_visit(struct volkeys_walk *w, int dirfd, const char *name,
		       const struct stat *st)
{
	struct fsck *k = w->arg;

	if (S_ISDIR(st->st_mode))
		check_folder(k, w, dirfd, name);
	else if (S_ISLNK(st->st_mode))
		check_symlink(k, w, dirfd, name);
	else if (S_ISREG(st->st_mode))
		check_record(k, w, dirfd, name);
	else
		k->rep->others++;
	return 0;
}

/* A rekey's copy left by a kill: the next `key rekey` deals with it. */
static int stray_visit(struct volkeys_walk *w, int dirfd, const char *name)
{
	(void)dirfd;
	(void)name;
	say(w->arg, false, w->path, "a rekey's temporary copy, left by an "
	    "interrupted `phifsctl key rekey`: rerun it to finish");
	return 0;
}

static int fsck_init(struct fsck *k, const struct volume *v)
{
	int rc = keys_volume_key(v->keys, "phifs symlink v1", &k->link_key);

	if (!rc)
		rc = keys_volume_key(v->keys, "phifs xattr v1", &k->xattr_key);
	if (!rc)
		rc = keys_volume_key(v->keys, FOLDERS_LABEL, &k->folder_key);
	if (rc)
		return rc;
	k->fk.key = k->folder_key;
	k->fk.volume_id = v->cv.volume_id;
	k->fk.as_root = geteuid() == 0;
	k->marked = keys_flags(v->keys) & KEYS_F_FOLDERS;
	k->buf = secmem_alloc(CHUNK);
	k->xval = secmem_alloc(FORMAT_XATTR_VALUE_MAX);
	k->xbuf = malloc(FORMAT_XATTR_SEALED_MAX);
	return k->buf && k->xval && k->xbuf ? 0 : -ENOMEM;
}

static void fsck_done(struct fsck *k)
{
	crypto_key_free(k->link_key);
	crypto_key_free(k->xattr_key);
	crypto_key_free(k->folder_key);
	secmem_free(k->buf);
	secmem_free(k->xval);
	free(k->xbuf);
}

int volfsck_run(const struct volume *v, volfsck_fn fn, void *arg,
		struct volfsck_report *rep, char *err, size_t err_len)
{
	struct fsck k = { .rep = rep, .fn = fn, .arg = arg };
	struct volkeys_walk w = {
		.v = v, .visit = file_visit, .stray = stray_visit,
		.other = other_visit, .arg = &k,
	};
	int rc, fd;

	memset(rep, 0, sizeof(*rep));
	rc = fsck_init(&k, v);
	if (rc) {
		fsck_done(&k);
		return errmsg(err, err_len, rc, "%s", strerror(-rc));
	}
	/* The root folder is checked as any other, then walked. */
	w.path[0] = 0;
	check_folder(&k, &w, v->backing.rootfd, ".");
	fd = openat(v->backing.rootfd, ".", O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC);
	rc = volkeys_walk_dir(&w, fd < 0 ? -errno : fd, "", err, err_len);
	fsck_done(&k);
	return rc;
}

int volfsck_adopt_folders(const struct volume *v, struct folders_tally *t,
			  char *err, size_t err_len)
{
	struct crypto_key *key = NULL;
	struct folders_key fk = {
		.volume_id = v->cv.volume_id, .as_root = geteuid() == 0,
	};
	int rc = keys_volume_key(v->keys, FOLDERS_LABEL, &key);

	memset(t, 0, sizeof(*t));
	fk.key = key;
	if (!rc)
		rc = folders_adopt(&fk, v->backing.rootfd, t);
	crypto_key_free(key);
	if (rc)
		return errmsg(err, err_len, rc, "folder records: %s",
			      strerror(-rc));
	return 0;
}
