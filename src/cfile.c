/*
 * cfile.c — one encrypted file behind an fd: plaintext pread, pwrite,
 * truncate and fallocate over the layout of format.h, the header and its
 * size tags, create, open and release.  Its blocks are sealed and opened in cfile_block.c, its hole
 * maps kept in cfile_map.c, and stored blocks written (through the journal)
 * in cfile_store.c.  Knows nothing of FUSE, paths or policy.
 *
 * Three rules keep every crash state readable:
 *  - Blocks are always stored whole, and bytes past the authenticated size
 *    are garbage: whatever extends the file (a write past the end, a
 *    truncate up) first zeroes or overwrites them.  So a size committed
 *    lazily never disagrees with how a block was sealed, and blocks written
 *    after the last commit are simply ignored.
 *  - Data is written before what points at it: blocks before their map
 *    bits, maps before the header that turns sparse mode on, the header
 *    before a backing truncate.
 *  - A kill can stop a pwrite at any page boundary, and every stored block
 *    straddles one.  So blocks that hold committed data are never rewritten
 *    in place before their new form is in the file's journal, which the
 *    next read-write open replays.
 */
#include "cfile_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "phifs/ioutil.h"
#include "phifs/secmem.h"

/*
 * A dense file extended by at most this many whole blocks gets encrypted
 * zeros; a larger hole switches it to sparse mode and hole maps.
 */
#define ZERO_FILL_MAX 16u

/* Blocks in one chunk from b0 up to last: a chunk never crosses a group. */
static uint64_t chunk_len(uint64_t b0, uint64_t last)
{
	uint64_t n = last - b0 + 1;

	if (n > CHUNK_BLOCKS)
		n = CHUNK_BLOCKS;
	if (n > GB - b0 % GB)
		n = GB - b0 % GB;
	return n;
}

/*
 * Writes the plaintext range [off, off + len) (src, or zeros if NULL),
 * chunk by chunk, and grows the size over what was written.  Returns the
 * bytes written, or -errno if none were.  Caller holds lock exclusively.
 */
ssize_t cfile_write_range(struct cfile *f, const uint8_t *src, size_t len,
			  uint64_t off)
{
	uint8_t *buf = cfile_scratch();
	size_t done = 0;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (done < len) {
		uint64_t pos = off + done, b0 = pos / BS;
		uint64_t n = chunk_len(b0, (off + len - 1) / BS);
		uint64_t end = (b0 + n) * BS, whole;
		size_t put;

		if (end > off + len)
			end = off + len;
		rc = cfile_seal_blocks(f, b0, n, src ? src + done : NULL,
				       pos, (size_t)(end - pos), buf);
		if (rc)
			break;
		rc = cfile_put_blocks(f, b0, (unsigned)n, buf,
				format_block_offset_in(f->flags, b0),
				cfile_committed_of(f, b0, n), &put);
		/* Only whole blocks count: a torn one past the size is
		 * garbage, and inside it the old block was rewritten in
		 * place, which needs no new space. */
		whole = put / SB;
		if (whole < n)
			end = (b0 + whole) * BS > pos ? (b0 + whole) * BS : pos;
		if (cfile_sparse(f) && whole) {
			int mrc = cfile_map_mark(f, b0, b0 + whole, true);

			if (mrc) {
				rc = rc ? rc : mrc;
				break;
			}
		}
		done += (size_t)(end - pos);
		if (off + done > f->size) {
			f->size = off + done;
			f->dirty = true;
		}
		if (rc)
			break;
	}
	return done ? (ssize_t)done : rc;
}

/* Writes zeros over [off, off + len): all of it, or an error. */
static int write_zeros(struct cfile *f, uint64_t off, uint64_t len)
{
	ssize_t w = cfile_write_range(f, NULL, (size_t)len, off);

	if (w < 0)
		return (int)w;
	return (uint64_t)w < len ? -ENOSPC : 0;
}

/*
 * Readies the file to grow to new_nb blocks, of which the caller writes
 * from block `first` on: zeroes the garbage in the tail of the last block,
 * and makes the blocks between the end and `first` read as zeros —
 * encrypted zeros when they are few, hole maps otherwise.  On failure the
 * size may have grown by zeros; the caller puts it back.
 */
static int grow(struct cfile *f, uint64_t first, uint64_t new_nb)
{
	uint64_t nb;
	int rc;

	if (f->size % BS && first > f->size / BS) {
		rc = write_zeros(f, f->size, BS - f->size % BS);
		if (rc)
			return rc;
	}
	nb = format_nblocks(f->size);
	/* Maps of groups the file grows into may be stale or missing. */
	if (cfile_sparse(f))
		return cfile_maps_clear(f, nb, new_nb);
	if (first <= nb)
		return 0;
	if (first - nb <= ZERO_FILL_MAX)
		return write_zeros(f, nb * BS, (first - nb) * BS);
	return cfile_go_sparse(f, new_nb);
}

/* What a grow changes, kept to undo it if it fails. */
struct grow_undo {
	uint64_t size;
	uint16_t flags;
	off_t len;	/* of the backing file */
};

/*
 * Checks a grow to `size` against the limit of the file's layout, before
 * anything touches the backing file, and notes what undo_grow() restores.
 */
static int grow_begin(struct cfile *f, uint64_t size, struct grow_undo *old)
{
	struct stat st;

	if (size > format_max_size(f->flags))
		return -EFBIG;
	if (fstat(f->fd, &st))
		return -errno;
	*old = (struct grow_undo){ f->size, f->flags, st.st_size };
	return 0;
}

/* Frees the backing bytes [from, to) below `end`; best effort (undo_grow). */
static void punch(struct cfile *f, uint64_t from, uint64_t to, uint64_t end)
{
	if (to > end)
		to = end;
	if (from < to)
		(void)fallocate(f->fd, FALLOC_FL_PUNCH_HOLE |
				FALLOC_FL_KEEP_SIZE, (off_t)from,
				(off_t)(to - from));
}

/* --- header --- */

/*
 * Size tags: a closed file's committed size, for stat (format.h).  A tag
 * exists only between a release and the next header commit, so after a
 * crash there is either a true tag or none.  The first commit of an open
 * removes whatever tag there is, and a release after a commit (or of a new
 * file) sets a fresh one; a file only read keeps the tag it had.  Tags are
 * a shortcut: without user xattrs there are none, and stat reads headers.
 */
static int tag_remove(struct cfile *f)
{
	/* A tag left in place would show its old size once the file is
	 * closed: no header that contradicts it is written until it goes. */
	if (f->tag != TAG_ABSENT && f->vol->size_key &&
	    fremovexattr(f->fd, FORMAT_SIZE_XATTR) && errno != ENODATA &&
	    errno != ENOTSUP)
		return -errno;
	f->tag = TAG_ABSENT;
	return 0;
}

static void tag_set(struct cfile *f)
{
	uint8_t tag[FORMAT_SIZE_TAG_LEN];
	struct stat st;

	if (f->tag != TAG_ABSENT || !f->writable || !f->vol->size_key ||
	    f->dirty || !f->attrs_known || fstat(f->fd, &st) ||
	    format_size_tag(f->vol->size_key, (uint64_t)st.st_ino, f->hdr.size,
			    &f->attrs, tag))
		return;
	if (!fsetxattr(f->fd, FORMAT_SIZE_XATTR, tag, sizeof(tag), 0))
		f->tag = TAG_SET;
}

/*
 * At open: does the file carry a tag that verifies (under the header's
 * mode and owner), and does it say the header's size?  A header without
 * them has no tag of this version.  Tags are true after any crash (the first commit of an
 * open removes the tag before it writes a header), so one that verifies
 * and differs was put back or planted.  Removed when we may write (a
 * failure only leaves it, reported, since the open file's size comes from
 * the header), so that the tag set at release tells the header's size.
 */
static void tag_check(struct cfile *f)
{
	uint8_t tag[FORMAT_SIZE_TAG_LEN];
	struct cfile_note *n = &f->note;
	struct stat st;
	ssize_t len;

	n->tag = CFILE_TAG_NONE;
	if (!f->vol->size_key || !f->attrs_known || fstat(f->fd, &st))
		return;
	len = fgetxattr(f->fd, FORMAT_SIZE_XATTR, tag, sizeof(tag));
	if (len <= 0 || format_size_untag(f->vol->size_key,
					  (uint64_t)st.st_ino, &f->attrs, tag,
					  (size_t)len, &n->tag_size))
		return;
	n->tag = n->tag_size == f->hdr.size ? CFILE_TAG_MATCHES :
					      CFILE_TAG_DIFFERS;
	if (n->tag == CFILE_TAG_DIFFERS && f->writable)
		n->tag_removed = !tag_remove(f);
}

static void attrs_of(const struct stat *st, struct format_attrs *a)
{
	*a = (struct format_attrs){ (uint32_t)st->st_mode & 07777u,
				    (uint32_t)st->st_uid,
				    (uint32_t)st->st_gid };
}

static bool attrs_eq(const struct format_attrs *a,
		     const struct format_attrs *b)
{
	return a->mode == b->mode && a->uid == b->uid && a->gid == b->gid;
}

/* Gives the backing file the mode and owner authenticated: 0 or -errno. */
static int attrs_restore(int fd, const struct format_attrs *a,
			 const struct format_attrs *now)
{
	/* Owner first: a chown may clear the set-id bits the mode has. */
	if ((a->uid != now->uid || a->gid != now->gid) &&
	    fchown(fd, (uid_t)a->uid, (gid_t)a->gid))
		return -errno;
	return fchmod(fd, (mode_t)a->mode) ? -errno : 0;
}

/*
 * At open: does the backing file show the mode and owner the header
 * authenticates?  The kernel judges access by what stat shows, so a
 * difference (a chmod or chown in the backing directory) is put back
 * where we may, and told.
 */
static void attrs_check(struct cfile *f)
{
	struct cfile_note *n = &f->note;
	struct stat st;

	if (!f->attrs_known || fstat(f->fd, &st))
		return;
	attrs_of(&st, &n->backing);
	if (attrs_eq(&n->backing, &f->attrs))
		return;
	n->attrs_differ = true;
	n->attrs = f->attrs;
	n->attrs_restored = !attrs_restore(f->fd, &f->attrs, &n->backing);
}

bool cfile_take_note(struct cfile *f, struct cfile_note *out)
{
	if (f->note.pick.refused < 0 && f->note.tag != CFILE_TAG_DIFFERS &&
	    !f->note.attrs_differ)
		return false;
	if (atomic_exchange(&f->note_taken, true))
		return false;
	*out = f->note;
	return true;
}

/*
 * Writes size, flags, mode and owner into the slot not holding the
 * current header.  A header that had no mode and owner (older phifs)
 * gets the backing file's: trust on first use.
 */
static int commit_locked(struct cfile *f)
{
	struct format_header h = f->hdr;
	uint8_t slot[FORMAT_SLOT_SIZE];
	int other = !f->slot, rc;
	struct stat st;

	if (!f->dirty)
		return 0;
	if (!f->attrs_known) {
		if (fstat(f->fd, &st))
			return -errno;
		attrs_of(&st, &f->attrs);
		f->attrs_known = true;
	}
	rc = tag_remove(f);	/* before the header it would contradict */
	if (rc)
		return rc;
	h.size = f->size;
	h.flags = f->flags | FORMAT_F_ATTRS;
	h.attrs = f->attrs;
	h.seq++;
	rc = format_slot_encode(&h, &f->fk, slot);
	if (!rc)
		rc = ioutil_pwrite_all(f->fd, slot, sizeof(slot),
				(uint64_t)other * FORMAT_SLOT_STRIDE);
	if (!rc) {
		f->hdr = h;
		f->slot = other;
		f->dirty = false;
	}
	return rc;
}

static struct cfile *cfile_alloc(int fd, const struct cfile_volume *vol)
{
	struct cfile *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->fd = fd;
	f->vol = vol;
	f->jfd = -1;
	f->fault = -1;
	f->note.pick.refused = -1;	/* nothing to tell yet */
	f->writable = (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY;
	if (pthread_rwlock_init(&f->lock, NULL)) {
		free(f);
		return NULL;
	}
	if (pthread_mutex_init(&f->map_lock, NULL)) {
		pthread_rwlock_destroy(&f->lock);
		free(f);
		return NULL;
	}
	return f;
}

static void cfile_free(struct cfile *f)
{
	cfile_journal_close(f);
	format_fkeys_release(&f->fk);
	pthread_rwlock_destroy(&f->lock);
	pthread_mutex_destroy(&f->map_lock);
	cfile_maps_free(f);
	free(f);
}

int cfile_create_as(int fd, const struct cfile_volume *vol,
		    const uint8_t *file_id, uint32_t dek_gen, struct cfile **out)
{
	uint8_t region[FORMAT_HEADER_SIZE] = { 0 };
	/* Read once: the header names the version whose KEK wraps. */
	uint32_t active = vol->active_version;
	struct format_header h = {
		.version = FORMAT_VERSION,
		.key_version = active,
		.dek_gen = dek_gen,
	};
	const struct crypto_key *kek = vol->kek(vol->kek_arg, active);
	struct crypto_key *dek = NULL;
	struct cfile *f = NULL;
	struct stat st;
	int rc = -ENOMEM;

	if (!kek)
		return -ENOKEY;
	/* The caller made fd with the mode and owner the file is to have. */
	if (fstat(fd, &st))
		return -errno;
	h.flags = FORMAT_F_ATTRS;
	attrs_of(&st, &h.attrs);
	f = cfile_alloc(fd, vol);
	dek = crypto_key_random();
	if (!f || !dek)
		goto out;
	memcpy(h.volume_id, vol->volume_id, FORMAT_ID_LEN);
	if (file_id)
		memcpy(h.file_id, file_id, FORMAT_ID_LEN);
	rc = file_id ? 0 : crypto_random(h.file_id, FORMAT_ID_LEN);
	if (!rc)
		rc = format_dek_wrap(&h, kek, dek);
	if (!rc)
		rc = format_fkeys_init(&f->fk, dek, h.volume_id, h.file_id,
				       h.dek_gen);
	if (rc)
		goto out;
	/* Both slots valid from the start, slot 0 the newer: either may
	 * tear later and the other still opens the file. */
	rc = format_slot_encode(&h, &f->fk, region + FORMAT_SLOT_STRIDE);
	h.seq = 1;
	if (!rc)
		rc = format_slot_encode(&h, &f->fk, region);
	if (!rc)
		rc = ioutil_pwrite_all(fd, region, sizeof(region), 0);
	if (rc)
		goto out;
	f->hdr = h;
	f->slot = 0;
	f->attrs = h.attrs;
	f->attrs_known = true;
	f->tag = TAG_ABSENT;	/* a new file has none yet */
	*out = f;
	f = NULL;	/* transferred */
out:
	crypto_key_free(dek);
	if (f)
		cfile_free(f);
	return rc;
}

int cfile_create(int fd, const struct cfile_volume *vol, struct cfile **out)
{
	return cfile_create_as(fd, vol, NULL, 1, out);
}

int cfile_open(int fd, const struct cfile_volume *vol, struct cfile **out)
{
	uint8_t region[FORMAT_HEADER_SIZE];
	struct cfile *f;
	size_t got;
	int rc;

	rc = cfile_pread_full(fd, region, sizeof(region), 0, &got);
	if (rc)
		return rc;
	if (got < sizeof(region))
		return -EUCLEAN;
	f = cfile_alloc(fd, vol);
	if (!f)
		return -ENOMEM;
	rc = format_header_load(region, vol->volume_id, vol->kek, vol->kek_arg,
				&f->hdr, &f->fk, &f->note.pick);
	if (rc) {
		cfile_free(f);	/* fk is untouched on failure: releases NULLs */
		return rc;
	}
	f->slot = f->note.pick.slot;
	f->size = f->hdr.size;
	f->flags = f->hdr.flags & (uint16_t)~FORMAT_F_ATTRS;
	f->attrs = f->hdr.attrs;
	f->attrs_known = f->hdr.flags & FORMAT_F_ATTRS;
	f->note.seq = f->hdr.seq;
	f->note.size = f->hdr.size;
	tag_check(f);
	attrs_check(f);
	if (vol->journal_dirfd >= 0 && f->writable &&
	    (!vol->journals || *vol->journals))
		rc = cfile_journal_replay(f);
	if (rc) {
		cfile_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

/* --- master key versions, on a closed file --- */

/* The header region of fd: -EUCLEAN when the file is too short for one. */
static int read_region(int fd, uint8_t region[FORMAT_HEADER_SIZE])
{
	size_t got;
	int rc = cfile_pread_full(fd, region, FORMAT_HEADER_SIZE, 0, &got);

	if (!rc && got < FORMAT_HEADER_SIZE)
		rc = -EUCLEAN;
	return rc;
}

int cfile_header_version(int fd, const struct cfile_volume *vol,
			 uint32_t *version)
{
	uint8_t region[FORMAT_HEADER_SIZE];
	struct format_header h;
	struct format_fkeys fk;
	struct format_pick pick;
	int rc;

	rc = read_region(fd, region);
	if (!rc)
		rc = format_header_load(region, vol->volume_id, vol->kek,
					vol->kek_arg, &h, &fk, &pick);
	if (rc)
		return rc;
	format_fkeys_release(&fk);
	*version = h.key_version;
	return 0;
}

int cfile_rewrap(int fd, const struct cfile_volume *vol, uint32_t version,
		 uint32_t *from)
{
	const struct crypto_key *kek = vol->kek(vol->kek_arg, version);
	uint8_t region[FORMAT_HEADER_SIZE];
	struct format_rewrap rw;
	int rc;

	if (!kek)
		return -ENOKEY;
	rc = read_region(fd, region);
	if (!rc)
		rc = format_header_rewrap(region, vol->volume_id, vol->kek,
					  vol->kek_arg, version, kek, &rw);
	if (rc)
		return rc;
	/* In this order: see struct format_rewrap. */
	for (int i = 0; i < 2 && !rc; i++)
		rc = ioutil_pwrite_all(fd, rw.slot[i], FORMAT_SLOT_SIZE,
				(uint64_t)rw.idx[i] * FORMAT_SLOT_STRIDE);
	if (!rc && from)
		*from = rw.from;
	return rc;
}

/*
 * The re-wrap of an open file must go through its cfile: f->hdr is what its
 * next commit starts from, so slots rewritten behind its back would be
 * overwritten by a header under the old version, or lose a size.
 */
static int rewrap_locked(struct cfile *f, uint32_t version)
{
	const struct crypto_key *kek = f->vol->kek(f->vol->kek_arg, version);
	uint8_t region[FORMAT_HEADER_SIZE];
	struct format_rewrap rw;
	struct format_header h;
	int rc;

	if (!kek)
		return -ENOKEY;
	if (!f->writable)
		return -EBADF;
	rc = commit_locked(f);	/* the header on disk is then f->hdr */
	if (!rc)
		rc = read_region(f->fd, region);
	if (!rc)
		rc = format_header_rewrap(region, f->vol->volume_id,
					  f->vol->kek, f->vol->kek_arg,
					  version, kek, &rw);
	for (int i = 0; i < 2 && !rc; i++)
		rc = ioutil_pwrite_all(f->fd, rw.slot[i], FORMAT_SLOT_SIZE,
				(uint64_t)rw.idx[i] * FORMAT_SLOT_STRIDE);
	if (!rc)
		rc = format_slot_parse(rw.slot[1], &h);
	if (rc)
		return rc;
	f->hdr = h;
	f->slot = rw.idx[1];
	return 0;
}

int cfile_rewrap_open(struct cfile *f, uint32_t version)
{
	int rc;

	pthread_rwlock_wrlock(&f->lock);
	rc = rewrap_locked(f, version);
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

/* --- plaintext I/O --- */

ssize_t cfile_pread(struct cfile *f, void *buf, size_t len, uint64_t off)
{
	uint8_t *sbuf = cfile_scratch();
	size_t done = 0;
	int rc = 0;

	if (!sbuf)
		return -ENOMEM;
	pthread_rwlock_rdlock(&f->lock);
	if (off >= f->size)
		len = 0;
	else if (len > f->size - off)
		len = (size_t)(f->size - off);
	while (!rc && done < len) {
		uint64_t pos = off + done, b0 = pos / BS;
		uint64_t n = chunk_len(b0, (off + len - 1) / BS);
		uint64_t end = (b0 + n) * BS < off + len ? (b0 + n) * BS :
			       off + len;
		size_t got;

		rc = cfile_pread_full(f->fd, sbuf, (size_t)n * SB,
				format_block_offset_in(f->flags, b0), &got);
		if (!rc)
			rc = cfile_open_blocks(f, b0, n, sbuf, got,
					       (uint8_t *)buf + done, pos,
					       end);
		if (!rc)
			done += (size_t)(end - pos);
	}
	pthread_rwlock_unlock(&f->lock);
	if (rc)
		secmem_wipe(buf, len);	/* nothing unauthenticated leaks */
	return rc ? rc : (ssize_t)done;
}

/*
 * Puts the file back as it was before a grow that failed (old: its size,
 * flags and backing length), so that a failed operation leaves nothing
 * behind.  Everything the attempt wrote lies past the old size, or is a
 * map the old state does not have: the backing file is cut back to its
 * old length, and what is below it punched out, except the map slots of
 * the old last group, which an old sparse state keeps in force.  Punching
 * is best effort: the caller fails with its own error, and what a punch
 * leaves is garbage by the format's rules, never read.
 */
static void undo_grow(struct cfile *f, const struct grow_undo *old)
{
	uint64_t nb = format_nblocks(old->size);
	uint16_t now = f->flags;	/* the layout the attempt wrote in */
	uint64_t from = format_block_offset_in(now, nb), keep = from;
	uint64_t end = (uint64_t)old->len;
	struct stat st;

	f->size = old->size;
	f->flags = old->flags;
	f->dirty = f->size != f->hdr.size ||
		   f->flags != (f->hdr.flags & (uint16_t)~FORMAT_F_ATTRS);
	cfile_maps_forget(f);
	/* Cut back, or if that fails, at least free what lies past. */
	if (!fstat(f->fd, &st) && st.st_size > old->len &&
	    ftruncate(f->fd, old->len))
		punch(f, end, (uint64_t)st.st_size, (uint64_t)st.st_size);
	if (!(old->flags & FORMAT_F_SPARSE) && (now & FORMAT_F_SPARSE)) {
		/* A dense file's maps, all new, after its groups' data. */
		for (uint64_t g = 0; g * GB < nb; g++)
			punch(f, format_node_offset(now, 0, g),
			      format_block_offset_in(now, (g + 1) * GB), end);
	} else if ((old->flags & FORMAT_F_SPARSE) && nb % GB) {
		keep = format_block_offset_in(now, (nb / GB + 1) * GB);
		punch(f, from, format_node_offset(now, 0, nb / GB), end);
	}
	punch(f, keep, end, end);
}

ssize_t cfile_pwrite(struct cfile *f, const void *buf, size_t len,
		     uint64_t off)
{
	struct grow_undo old;
	ssize_t rc = 0;
	bool grew = false;

	if (len == 0)
		return 0;
	if (off > FORMAT_MAX_SIZE || len > FORMAT_MAX_SIZE - off)
		return -EFBIG;
	pthread_rwlock_wrlock(&f->lock);
	if (off + len > f->size) {
		rc = grow_begin(f, off + len, &old);
		grew = !rc;
		if (!rc)
			rc = grow(f, off / BS, format_nblocks(off + len));
	}
	if (!rc)
		rc = cfile_write_range(f, buf, len, off);
	if (rc < 0 && grew)
		undo_grow(f, &old);	/* the zeros we grew by are garbage */
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

static int shrink(struct cfile *f, uint64_t size)
{
	uint64_t nb = format_nblocks(size), len;
	int rc;

	/*
	 * The journal's record may name blocks that are about to be past the
	 * end, where unjournaled writes may later change them: void it.
	 */
	rc = cfile_journal_void(f);
	if (rc)
		return rc;
	/* Map bits past the new end need no clearing: grow() clears them. */
	if (size == 0)	/* dense again */
		f->flags &= (uint16_t)~(FORMAT_F_SPARSE | FORMAT_F_TREE);
	f->size = size;
	f->dirty = true;
	/* The header must never claim more than the backing file holds. */
	rc = commit_locked(f);
	if (rc)
		return rc;
	/* A sparse file keeps the maps after its last group's data. */
	len = cfile_sparse(f) ?
	      format_block_offset_in(f->flags, ((nb - 1) / GB + 1) * GB) :
	      format_backing_size(size);
	return ftruncate(f->fd, (off_t)len) ? -errno : 0;
}

/*
 * Extends the file to size with zeros, as a truncate up.  On failure the
 * file is as it was; on success *old says how to put it back.
 */
static int grow_to(struct cfile *f, uint64_t size, struct grow_undo *old)
{
	int rc = grow_begin(f, size, old);

	if (rc)
		return rc;
	rc = grow(f, format_nblocks(size), format_nblocks(size));
	if (rc) {
		undo_grow(f, old);	/* the zeros we grew by are garbage */
		return rc;
	}
	f->size = size;
	f->dirty = true;
	return 0;
}

int cfile_truncate(struct cfile *f, uint64_t size)
{
	struct grow_undo old;
	int rc = 0;

	if (size > FORMAT_MAX_SIZE)
		return -EFBIG;
	pthread_rwlock_wrlock(&f->lock);
	if (size < f->size)
		rc = shrink(f, size);
	else if (size > f->size)
		rc = grow_to(f, size, &old);
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

/* --- fallocate --- */

/* The end of blocks [b, b1) within b's group. */
static uint64_t group_end(uint64_t b, uint64_t b1)
{
	uint64_t end = (b / GB + 1) * GB;

	return end < b1 ? end : b1;
}

/* Allocates [from, to) of the backing file, which keeps its length. */
static int backing_alloc(struct cfile *f, int mode, uint64_t from,
			 uint64_t to)
{
	return fallocate(f->fd, mode | FALLOC_FL_KEEP_SIZE, (off_t)from,
			 (off_t)(to - from)) ? -errno : 0;
}

/* Allocates one node of the file's maps (level 0: group g's map). */
static int alloc_node(struct cfile *f, unsigned level, uint64_t i,
		      uint64_t *hi)
{
	uint64_t at = format_node_offset(f->flags, level, i);

	if (!at)	/* no such level in this layout */
		return 0;
	if (at + SB > *hi)
		*hi = at + SB;
	return backing_alloc(f, 0, at, at + SB);
}

/*
 * Reserves backing space for the stored blocks [b0, b1) in the file's
 * present layout, and the map of each group they touch with the tree
 * nodes above it (a dense file has none yet, but may go sparse later), so
 * that writing them cannot meet ENOSPC.  The backing length stays: space
 * past it is reserved all the same.  On failure it gives back what it
 * took past the old backing end, where nothing was stored.
 */
static int reserve(struct cfile *f, uint64_t b0, uint64_t b1)
{
	const uint64_t fan = FORMAT_TREE_FANOUT;
	uint64_t hi = 0, from = format_block_offset_in(f->flags, b0);
	struct stat st;
	int rc = 0;

	if (fstat(f->fd, &st))
		return -errno;
	for (uint64_t b = b0; !rc && b < b1; b = group_end(b, b1)) {
		uint64_t g = b / GB, e = group_end(b, b1);
		uint64_t to = format_block_offset_in(f->flags, e - 1) + SB;

		if (to > hi)
			hi = to;
		rc = backing_alloc(f, 0, format_block_offset_in(f->flags, b),
				   to);
		if (!rc)
			rc = alloc_node(f, 0, g, &hi);
		if (!rc)
			rc = alloc_node(f, 1, g / fan, &hi);
		if (!rc)
			rc = alloc_node(f, 2, g / fan / fan, &hi);
	}
	if (rc && hi > (uint64_t)st.st_size)
		(void)backing_alloc(f, FALLOC_FL_PUNCH_HOLE,
				    from > (uint64_t)st.st_size ?
					    from : (uint64_t)st.st_size, hi);
	return rc;
}

/* Clears the map bits of blocks [b0, b1), group by group. */
static int maps_unmark(struct cfile *f, uint64_t b0, uint64_t b1)
{
	int rc = 0;

	for (uint64_t b = b0; !rc && b < b1; b = group_end(b, b1))
		rc = cfile_map_mark(f, b, group_end(b, b1), false);
	return rc;
}

/*
 * Makes the whole blocks [b0, b1), below the size, read as zeros: a few
 * of a dense file become encrypted zeros, as a small gap does in grow();
 * otherwise they become holes in the maps, the file going sparse first if
 * it is dense.  *holes says which.
 */
static int zero_blocks(struct cfile *f, uint64_t b0, uint64_t b1,
		       bool *holes)
{
	uint64_t end = b1 * BS < f->size ? b1 * BS : f->size;
	int rc = 0;

	*holes = cfile_sparse(f) || b1 - b0 > ZERO_FILL_MAX;
	if (!*holes)
		return write_zeros(f, b0 * BS, end - b0 * BS);
	if (!cfile_sparse(f))
		rc = cfile_go_sparse(f, format_nblocks(f->size));
	if (!rc)
		rc = maps_unmark(f, b0, b1);
	/* Until a header says sparse, a kill would bring the blocks' old
	 * data back: a zeroing that returned must outlive a kill, as a
	 * write does.  Maps are in place before it. */
	if (!rc && !(f->hdr.flags & FORMAT_F_SPARSE))
		rc = commit_locked(f);
	return rc;
}

/*
 * Gives the backing space of the hole blocks [b0, b1) back.  The header
 * that puts their cleared map bits in force must be on disk first: a
 * dense header, or maps that still say "stored", over punched space
 * would make the blocks unreadable.  So data, then header, each synced.
 */
static int punch_blocks(struct cfile *f, uint64_t b0, uint64_t b1)
{
	int rc = fdatasync(f->fd) ? -errno : 0;

	if (!rc)
		rc = commit_locked(f);
	if (!rc)
		rc = fdatasync(f->fd) ? -errno : 0;
	for (uint64_t b = b0; !rc && b < b1; b = group_end(b, b1)) {
		uint64_t at = format_block_offset_in(f->flags, b);

		rc = backing_alloc(f, FALLOC_FL_PUNCH_HOLE, at,
				   at + (group_end(b, b1) - b) * SB);
		if (rc == -EOPNOTSUPP)	/* the space stays: no harm */
			rc = 0;
	}
	return rc;
}

/*
 * Zeros [off, end), below the size: whole blocks through zero_blocks()
 * (the last block counts as whole when the range reaches the size, the
 * rest of it being garbage), the partial blocks at the edges rewritten as
 * encrypted zeros; punch gives the holes' backing space back.  A kill
 * leaves each byte old or zero.
 */
static int zero_range(struct cfile *f, uint64_t off, uint64_t end,
		      bool punch)
{
	uint64_t b0 = (off + BS - 1) / BS;
	uint64_t b1 = end == f->size ? format_nblocks(end) : end / BS;
	bool holes = false;
	int rc;

	if (b1 <= b0)
		return write_zeros(f, off, end - off);
	rc = zero_blocks(f, b0, b1, &holes);
	if (!rc && off < b0 * BS)
		rc = write_zeros(f, off, b0 * BS - off);
	if (!rc && b1 * BS < end)
		rc = write_zeros(f, b1 * BS, end - b1 * BS);
	if (!rc && holes && punch)
		rc = punch_blocks(f, b0, b1);
	return rc;
}

/*
 * fallocate(2) under the lock; see cfile_fallocate().  A grow comes
 * before the reservation, since it may change the layout (a dense file
 * going sparse moves its later groups' blocks), and is undone when the
 * space is short, so that a refused call leaves the file as it was.
 */
static int fallocate_locked(struct cfile *f, int mode, uint64_t off,
			    uint64_t end)
{
	bool grows = !(mode & FALLOC_FL_KEEP_SIZE) && end > f->size;
	uint64_t in = end < f->size ? end : f->size;
	struct grow_undo old;
	int rc;

	if (mode & FALLOC_FL_PUNCH_HOLE)
		return off < in ? zero_range(f, off, in, true) : 0;
	rc = cfile_journal_reserve(f);
	if (!rc && grows)
		rc = grow_to(f, end, &old);
	if (rc)
		return rc;
	rc = reserve(f, off / BS, format_nblocks(end));
	if (!rc && (mode & FALLOC_FL_ZERO_RANGE) && off < in)
		rc = zero_range(f, off, in, false);
	if (rc && grows)
		undo_grow(f, &old);
	return rc;
}

int cfile_fallocate(struct cfile *f, int mode, uint64_t off, uint64_t len)
{
	int rc;

	switch (mode) {
	case 0:
	case FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (len == 0)
		return -EINVAL;
	if (off > FORMAT_MAX_SIZE || len > FORMAT_MAX_SIZE - off)
		return -EFBIG;
	pthread_rwlock_wrlock(&f->lock);
	rc = fallocate_locked(f, mode, off, off + len);
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

void cfile_readahead(struct cfile *f, uint64_t off, uint64_t len)
{
	uint64_t size, end, from;
	uint16_t flags;

	pthread_rwlock_rdlock(&f->lock);
	size = f->size;
	flags = f->flags;
	pthread_rwlock_unlock(&f->lock);
	if (off >= size || len == 0)
		return;
	end = size - off < len ? size : off + len;
	from = format_block_offset_in(flags, off / BS);
	(void)posix_fadvise(f->fd, (off_t)from,
			    (off_t)(format_block_offset_in(flags,
					format_nblocks(end) - 1) + SB - from),
			    POSIX_FADV_WILLNEED);
}

uint64_t cfile_size(struct cfile *f)
{
	uint64_t size;

	pthread_rwlock_rdlock(&f->lock);
	size = f->size;
	pthread_rwlock_unlock(&f->lock);
	return size;
}

int cfile_attrs(struct cfile *f, struct format_attrs *out)
{
	int rc = -ENODATA;

	pthread_rwlock_rdlock(&f->lock);
	if (f->attrs_known) {
		*out = f->attrs;
		rc = 0;
	}
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

bool cfile_attrs_differed(const struct cfile *f)
{
	return f->note.attrs_differ;
}

int cfile_set_attrs(struct cfile *f, const struct format_attrs *a)
{
	struct format_attrs old;
	bool known, dirty;
	int rc;

	if (a->mode & ~07777u)
		return -EINVAL;
	if (!f->writable)
		return -EBADF;
	pthread_rwlock_wrlock(&f->lock);
	old = f->attrs;
	known = f->attrs_known;
	dirty = f->dirty;
	f->attrs = *a;
	f->attrs_known = true;
	f->dirty = true;
	rc = commit_locked(f);
	if (rc) {	/* the header in force still has the old ones */
		f->attrs = old;
		f->attrs_known = known;
		f->dirty = dirty || f->size != f->hdr.size;
	}
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

int cfile_commit(struct cfile *f)
{
	int rc;

	pthread_rwlock_wrlock(&f->lock);
	rc = commit_locked(f);
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

static int sync_fd(int fd, int datasync)
{
	return (datasync ? fdatasync(fd) : fsync(fd)) ? -errno : 0;
}

int cfile_fsync(struct cfile *f, int datasync)
{
	int rc = 0;

	pthread_rwlock_wrlock(&f->lock);
	/* Blocks reach the disk before the header that covers them. */
	if (f->dirty)
		rc = sync_fd(f->fd, 1);
	if (!rc)
		rc = commit_locked(f);
	if (!rc)
		rc = sync_fd(f->fd, datasync);
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

int cfile_release(struct cfile *f)
{
	int rc;

	if (!f)
		return 0;
	rc = cfile_commit(f);
	if (!rc)
		tag_set(f);
	cfile_free(f);
	return rc;
}

const uint8_t *cfile_file_id(const struct cfile *f)
{
	return f->fk.file_id;
}

uint32_t cfile_key_version(struct cfile *f)
{
	uint32_t v;

	pthread_rwlock_rdlock(&f->lock);	/* a re-wrap changes it */
	v = f->hdr.key_version;
	pthread_rwlock_unlock(&f->lock);
	return v;
}

uint32_t cfile_dek_gen(const struct cfile *f)
{
	return f->hdr.dek_gen;
}

int64_t cfile_fault(struct cfile *f)
{
	return f->fault;
}
