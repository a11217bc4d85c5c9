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

#include <stdint.h>
#include <sys/types.h>

#include "phifs/format.h"

struct cfile;

/* What a cfile needs to know of its volume; borrowed, must outlive it. */
struct cfile_volume {
	const uint8_t *volume_id;	/* FORMAT_ID_LEN bytes */
	format_kek_fn kek;		/* KEK by master key version */
	void *kek_arg;
	uint32_t active_version;	/* wraps the DEKs of new files */
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
 * file ID and DEK; writes both header slots.  fd stays the caller's: cfile
 * never closes it.
 */
int cfile_create(int fd, const struct cfile_volume *vol, struct cfile **out);
/*
 * Opens the encrypted file on fd (O_RDWR, or O_RDONLY for reading only).
 * Opened read-write, it first finishes a rewrite that a killed process left
 * in its journal.
 */
int cfile_open(int fd, const struct cfile_volume *vol, struct cfile **out);

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
uint64_t cfile_size(struct cfile *f);
/* Starts reading the stored blocks of plaintext [off, off + len), as far
 * as the file goes, into the page cache; does not wait for them. */
void cfile_readahead(struct cfile *f, uint64_t off, uint64_t len);
/* Commits the header if the size changed, then fsyncs (fdatasync if set). */
int cfile_fsync(struct cfile *f, int datasync);
/* Commits the header if the size changed since the last commit. */
int cfile_commit(struct cfile *f);
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
uint32_t cfile_key_version(const struct cfile *f);

#endif
