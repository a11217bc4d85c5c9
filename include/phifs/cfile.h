/*
 * cfile.h — one encrypted file behind a file descriptor: pread, pwrite,
 * truncate, size and fsync on plaintext offsets, with read-modify-write of
 * partial blocks, sparse files and files past 4 GiB.  Knows nothing of FUSE,
 * paths or policy; the layout comes from format.h.
 *
 * The authenticated size is kept in memory while the file is open and
 * committed to the header on cfile_fsync(), cfile_release(), whenever a
 * shrink or a switch to sparse mode makes it necessary, and by
 * cfile_commit() (which a daemon calls at a short interval); appends do not
 * pay a header write each.
 *
 * Thread-safety: all calls on one cfile may come from many threads at once.
 * Reads run in parallel; writes, truncates and commits are serialised, and a
 * reader never sees half of a write's block.
 *
 * Errors: -EBADMSG a block fails to authenticate, or is missing from a
 * backing file cut short of its authenticated size (a read fails only if it
 * covers such a block); -EUCLEAN corrupt or foreign header; -EKEYREJECTED or
 * -ENOKEY the file key cannot be unwrapped; -EFBIG past FORMAT_MAX_SIZE
 * (FORMAT_MAX_SIZE_TREE for a file with a map tree); other -errno from the
 * backing file (-ENOSPC, -EFBIG, -EIO, ...).  A write or truncate that
 * fails leaves the backing file as it found it (docs/FORMAT.md).
 */
#ifndef PHIFS_CFILE_H
#define PHIFS_CFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "phifs/format.h"

struct cfile;

/* What a cfile needs to know of its volume; borrowed, must outlive it. */
struct cfile_volume {
	const uint8_t *volume_id;	/* FORMAT_ID_LEN bytes */
	format_kek_fn kek;		/* KEK by master key version */
	void *kek_arg;
	/*
	 * Wraps the DEKs of new files.  Atomic: a daemon's rotation moves it
	 * while workers create files, after kek already knows the version.
	 */
	_Atomic uint32_t active_version;
	/*
	 * Folder for the journals of in-place rewrites, or -1 for none.
	 * Without one, a process killed inside a rewrite of committed blocks
	 * can leave a block half old, half new (unreadable).
	 */
	int journal_dirfd;
	/*
	 * Whether that folder may hold a journal (set by cfile when it makes
	 * one), so that opens need not look while it is empty; NULL: always
	 * look.
	 */
	_Atomic bool *journals;
	/*
	 * Key of the size tags (format.h) a closed file carries for stat, or
	 * NULL for none.
	 */
	const struct crypto_key *size_key;
};

/*
 * Makes fd (empty, opened O_RDWR) a new encrypted file of size 0 with a fresh
 * file ID and DEK; writes both header slots, which authenticate fd's mode
 * (its permission bits), owner and group as they are now.  fd stays the caller's: cfile
 * never closes it.
 */
int cfile_create(int fd, const struct cfile_volume *vol, struct cfile **out);
/*
 * Opens the encrypted file on fd (O_RDWR, or O_RDONLY for reading only).
 * Opened read-write, it first finishes a rewrite that a killed process left
 * in its journal.  A backing mode or owner that is not the header's is
 * given the header's (fchmod, fchown: where the process may), and noted.
 */
int cfile_open(int fd, const struct cfile_volume *vol, struct cfile **out);

/*
 * What an open found that its caller should tell the operator: cfile tells
 * no one.  A header slot refused (pick.refused >= 0: a torn header write,
 * or damage) or a size tag that verifies but disagrees with the header
 * chosen (a tag rolled back or planted: tags are true after any crash).
 * The header always wins; a differing tag is removed when the file is open
 * for writing (tag_removed), so that stat shows the header's size after
 * the close.  Also a backing mode or owner that is not the header's
 * (attrs_differ below).
 */
enum cfile_tag_state {
	CFILE_TAG_NONE,		/* none, or one that does not verify */
	CFILE_TAG_MATCHES,	/* verifies and says the header's size */
	CFILE_TAG_DIFFERS,	/* verifies and says another size */
};

struct cfile_note {
	struct format_pick pick;	/* the slot used, and any refused */
	uint64_t seq;			/* of the slot used */
	uint64_t size;			/* in the header used */
	enum cfile_tag_state tag;
	uint64_t tag_size;		/* what a verified tag says */
	bool tag_removed;
	/* The backing file's mode or owner differed from the header's (a
	 * chmod or chown behind phifs's back): the header's are in force,
	 * and were given back to the backing file when attrs_restored. */
	bool attrs_differ;
	bool attrs_restored;
	struct format_attrs attrs;	/* the header's */
	struct format_attrs backing;	/* what the backing file had */
};

/*
 * Copies the note of f's open to *out and returns true, when there is
 * something to tell (a refused slot or a differing tag) and no caller took
 * it before: one report per open, however many share f.  Thread-safe.
 */
bool cfile_take_note(struct cfile *f, struct cfile_note *out);

/*
 * Reads up to len bytes at off; returns the count (short only at the
 * authenticated end of file) or -errno.  Never returns bytes that did not
 * authenticate.
 */
ssize_t cfile_pread(struct cfile *f, void *buf, size_t len, uint64_t off);
/*
 * Writes len bytes at off, extending the file as needed.  Returns len, or
 * fewer when the backing file system fills part-way (every byte counted
 * reads back), or -errno when nothing was written.
 */
ssize_t cfile_pwrite(struct cfile *f, const void *buf, size_t len,
		     uint64_t off);
int cfile_truncate(struct cfile *f, uint64_t size);
/*
 * fallocate(2) on plaintext [off, off + len), mode as its FALLOC_FL_* flags:
 *  - 0 and KEEP_SIZE reserve the backing space of the range's stored blocks
 *    and hole maps, so that writes into it cannot meet ENOSPC for their
 *    blocks; 0 also extends the size as a truncate up does (zeros).  When
 *    the space is short (-ENOSPC), the file is left as it was.
 *  - PUNCH_HOLE | KEEP_SIZE and ZERO_RANGE (with or without KEEP_SIZE) make
 *    the range read as zeros, still authenticated: edges rewritten as
 *    encrypted zeros, whole blocks as encrypted zeros or holes in the maps
 *    (a dense file going sparse); a punch gives the holes' backing space
 *    back, a zero range reserves it as mode 0 does.
 *  - Any other mode (COLLAPSE_RANGE, INSERT_RANGE: every block after off
 *    would be re-encrypted under a new index) gives -EOPNOTSUPP.
 * -EINVAL for len 0, -EFBIG past FORMAT_MAX_SIZE; -EOPNOTSUPP also when the
 * backing file system cannot reserve space.
 */
int cfile_fallocate(struct cfile *f, int mode, uint64_t off, uint64_t len);
uint64_t cfile_size(struct cfile *f);
/* Starts reading the stored blocks of plaintext [off, off + len), as far
 * as the file goes, into the page cache; does not wait for them. */
void cfile_readahead(struct cfile *f, uint64_t off, uint64_t len);
/* Commits the header if the size changed, then fsyncs (fdatasync if set). */
int cfile_fsync(struct cfile *f, int datasync);
/* Commits the header if the size changed since the last commit. */
int cfile_commit(struct cfile *f);

/*
 * The permission bits (07777), owner and group f's header authenticates:
 * 0, or -ENODATA for a header made before phifs kept them (the backing
 * file's are then the file's, until its next header commit records them:
 * trust on first use).  Thread-safe.
 */
int cfile_attrs(struct cfile *f, struct format_attrs *out);
/*
 * Commits a header with mode, owner and group a (crash-atomic, as every
 * commit); the caller changes the backing file's to match.  -EBADF when
 * f is open read-only, -EINVAL for a mode past 07777.
 */
int cfile_set_attrs(struct cfile *f, const struct format_attrs *a);
/*
 * Whether the open of f found the backing file's mode or owner not the
 * header's: then the kernel may have judged an access by forged ones.
 */
bool cfile_attrs_differed(const struct cfile *f);
/* Commits, then frees.  NULL does nothing.  Returns the commit's result. */
int cfile_release(struct cfile *f);
/*
 * The block that last failed to authenticate in f, or -1: for reporting
 * an integrity error, after a call returned one.  A damaged hole map is
 * named by the first block it covers.  With readers at once it may be
 * another reader's.
 */
int64_t cfile_fault(struct cfile *f);

/* The file's 128-bit ID and the master key version wrapping its DEK. */
const uint8_t *cfile_file_id(const struct cfile *f);
uint32_t cfile_key_version(struct cfile *f);

/* The generation of the file's DEK (1 at creation, + 1 per rekey). */
uint32_t cfile_dek_gen(const struct cfile *f);

/*
 * Rekey: makes fd (empty, O_RDWR, no other cfile on it) a copy of src's
 * plaintext under a fresh DEK wrapped by vol's active master key version,
 * with src's file ID and DEK generation + 1, so that every block and map
 * is sealed anew and none of src's opens in it.  Holes stay holes: a
 * sparse src gives a sparse copy with the same blocks stored, a dense one
 * a dense copy.  The copy's header is committed, not synced; *out is open
 * on fd.  -EOVERFLOW when the generation cannot grow.
 */
int cfile_rekey_copy(struct cfile *src, int fd,
		     const struct cfile_volume *vol, struct cfile **out);

/*
 * On a file no cfile has open (an offline volume): the master key version
 * that wraps its DEK, from the header that authenticates.
 */
int cfile_header_version(int fd, const struct cfile_volume *vol,
			 uint32_t *version);
/*
 * Re-wraps the DEK of the file on fd (O_RDWR, no cfile open on it) to
 * master key version `version`, both header slots, without touching data
 * (format_header_rewrap()); *from, if given, gets the version it had.
 * -EALREADY when both slots are already on it.  Not synced: the caller
 * syncs before the old version's key may go.
 */
int cfile_rewrap(int fd, const struct cfile_volume *vol, uint32_t version,
		 uint32_t *from);
/*
 * cfile_rewrap() for an open file, through f and under its lock: pending
 * size committed first, then both slots re-wrapped, and f's header
 * becomes the new one, so later commits stay on `version`.  -EALREADY
 * when both slots are on it; -EBADF when f is open read-only (it never
 * writes its header then: cfile_rewrap() on another fd is safe).
 */
int cfile_rewrap_open(struct cfile *f, uint32_t version);

#endif
