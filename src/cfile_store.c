/*
 * cfile_store.c — how cfile's sealed blocks reach the backing file: per-
 * thread scratch for chunks of them, whole-buffer reads and writes, and the
 * journal that rewrites of committed blocks pass through first
 * (docs/FORMAT.md, "Journal").  Knows nothing of plaintext, hole maps or
 * the header: callers say which blocks are committed.
 */
#include "cfile_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "phifs/ioutil.h"
#include "phifs/secmem.h"

/* The largest journal record: its head and FORMAT_JOURNAL_MAX blocks. */
#define JOURNAL_BYTES ((FORMAT_JOURNAL_MAX + 1u) * FORMAT_STORED_BLOCK)
/* Records written before the journal is worth mapping. */
#define JOURNAL_MAP_AFTER 16u

/* --- per-thread scratch: chunk buffers are too large to malloc per call --- */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_init(void)
{
	if (pthread_key_create(&scratch_key, free))
		abort();
}

/*
 * CHUNK_BLOCKS stored blocks of this thread.  It holds only ciphertext:
 * plaintext is opened straight into the caller's buffer or a wiped stack
 * block, never here.
 */
uint8_t *cfile_scratch(void)
{
	uint8_t *p;

	pthread_once(&scratch_once, scratch_key_init);
	p = pthread_getspecific(scratch_key);
	if (!p) {
		p = malloc((size_t)CHUNK_BLOCKS * SB);
		if (p && pthread_setspecific(scratch_key, p)) {
			free(p);
			p = NULL;
		}
	}
	return p;
}

/* --- backing I/O --- */

/* Reads until len or end of file; *got says how far it came. */
int cfile_pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done,
				  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*got = done;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got = done;
	return 0;
}

/* Writes all of buf; on failure *put says how much did reach the file. */
static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off,
		       size_t *put)
{
	size_t done = 0;
	int rc = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done,
				   (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	*put = done;
	return rc;
}

static int pwritev_all(int fd, struct iovec *iov, int cnt, uint64_t off)
{
	while (cnt > 0) {
		ssize_t n = pwritev(fd, iov, cnt, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (uint64_t)n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* --- journal of in-place rewrites --- */

/* The journal's name: the file ID in hex, unique in the volume. */
static void journal_name(const struct cfile *f,
			 char name[2 * FORMAT_ID_LEN + 1])
{
	for (int i = 0; i < FORMAT_ID_LEN; i++)
		snprintf(name + 2 * i, 3, "%02x", f->fk.file_id[i]);
}

static int journal_open(struct cfile *f)
{
	char name[2 * FORMAT_ID_LEN + 1];

	if (f->jfd >= 0)
		return 0;
	journal_name(f, name);
	if (f->vol->journals)
		*f->vol->journals = true;
	f->jfd = openat(f->vol->journal_dirfd, name, O_RDWR | O_CREAT |
			O_NOFOLLOW | O_CLOEXEC, 0600);
	return f->jfd < 0 ? -errno : 0;
}

/*
 * A file rewritten again and again (a database, random 4 KiB writes) pays
 * a syscall per record; a mapping makes a record two copies instead.  Its
 * space is allocated first, so a store that fills up later can never make
 * a store to the mapping fault (SIGBUS): without the space, records keep
 * going through write(2).
 */
static void journal_map(struct cfile *f)
{
	void *m;

	if (f->jmap || ++f->jwrites < JOURNAL_MAP_AFTER)
		return;
	f->jwrites = 0;		/* a failure here is retried later */
	if (fallocate(f->jfd, 0, 0, JOURNAL_BYTES))
		return;
	m = mmap(NULL, JOURNAL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
		 f->jfd, 0);
	if (m != MAP_FAILED)
		f->jmap = m;
}

/*
 * Records n sealed blocks (stored indices first, first + 1, ...) before they
 * are written in place: head and blocks in one write (or copy).  A kill
 * inside it leaves a head whose blocks do not all authenticate, which replay
 * drops; the in-place write starts only once the record is whole.
 *
 * The record is not voided after the in-place write: replaying it would
 * write what its blocks already hold, since any later rewrite of a block it
 * names replaces it (those blocks are committed, so rewrites are journaled),
 * until a shrink makes them uncommitted; shrink voids it.  So a record names
 * committed blocks only: an uncommitted block in it could be rewritten in
 * place, unjournaled, before a commit covers it, and a replay (after a
 * crash, or an open racing the last close) would bring the old one back.
 */
static int journal_write(struct cfile *f, uint64_t first, unsigned n,
			 const uint8_t *blocks)
{
	uint64_t index[FORMAT_JOURNAL_MAX];
	uint8_t head[SB], nonce[CRYPTO_GCM_NONCE_LEN];
	struct iovec iov[2];
	int rc;

	for (unsigned i = 0; i < n; i++)
		index[i] = first + i;
	rc = journal_open(f);
	if (!rc)
		rc = crypto_nonce(nonce, sizeof(nonce));
	if (!rc)
		rc = format_journal_seal(&f->fk, nonce, index, n, head);
	if (rc)
		return rc;
	if (f->jmap) {
		memcpy(f->jmap, head, SB);
		memcpy(f->jmap + SB, blocks, (size_t)n * SB);
		return 0;
	}
	iov[0] = (struct iovec){ head, SB };
	iov[1] = (struct iovec){ (void *)blocks, (size_t)n * SB };
	rc = pwritev_all(f->jfd, iov, 2, 0);
	if (!rc)
		journal_map(f);
	return rc;
}

/*
 * Gives the journal its largest size now, for a reservation (fallocate):
 * rewrites of committed blocks pass through it, and must not meet ENOSPC
 * there once their own space is reserved.  It lasts while the file is
 * open, since the last close removes the journal.
 */
int cfile_journal_reserve(struct cfile *f)
{
	int rc;

	if (f->vol->journal_dirfd < 0 || f->jmap)
		return 0;
	rc = journal_open(f);
	if (!rc && fallocate(f->jfd, 0, 0, JOURNAL_BYTES))
		rc = -errno;
	return rc;
}

/* Voids the head: one small write within a page, which no kill can tear. */
int cfile_journal_void(struct cfile *f)
{
	static const uint8_t zero[CRYPTO_GCM_NONCE_LEN];

	if (f->jfd < 0)
		return 0;
	if (f->jmap) {
		memcpy(f->jmap, zero, sizeof(zero));
		return 0;
	}
	return ioutil_pwrite_all(f->jfd, zero, sizeof(zero), 0);
}

/*
 * Finishes a rewrite that a killed process left half done: if this file's
 * journal holds a record that authenticates whole, writes its blocks in
 * place.  A record that does not authenticate was never acted on.
 */
int cfile_journal_replay(struct cfile *f)
{
	uint64_t index[FORMAT_JOURNAL_MAX];
	char name[2 * FORMAT_ID_LEN + 1];
	uint8_t head[SB], pt[BS], *blocks = NULL;
	unsigned n = 0;
	size_t got;
	int jfd, rc;

	journal_name(f, name);
	jfd = openat(f->vol->journal_dirfd, name, O_RDONLY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (jfd < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = cfile_pread_full(jfd, head, SB, 0, &got);
	if (rc || got < SB || format_journal_open(&f->fk, head, index, &n))
		goto done;
	rc = -ENOMEM;
	blocks = malloc((size_t)n * SB);
	if (!blocks)
		goto done;
	rc = cfile_pread_full(jfd, blocks, (size_t)n * SB, SB, &got);
	if (rc || got < (size_t)n * SB)
		goto done;
	for (unsigned i = 0; i < n; i++)
		if (format_stored_open(&f->fk, index[i], blocks + i * SB, pt))
			goto done;
	/* A record is written under the committed header, whose layout
	 * places its blocks; a node that layout lacks is no record of ours. */
	for (unsigned i = 0; !rc && i < n; i++)
		if (!format_stored_offset(f->hdr.flags, index[i]))
			rc = -EUCLEAN;
	for (unsigned i = 0; !rc && i < n; i++)
		rc = ioutil_pwrite_all(f->fd, blocks + i * SB, SB,
				format_stored_offset(f->hdr.flags, index[i]));
	if (!rc)
		rc = fdatasync(f->fd) ? -errno : 0;
done:
	if (!rc)
		(void)unlinkat(f->vol->journal_dirfd, name, 0);
	secmem_wipe(pt, sizeof(pt));
	free(blocks);
	close(jfd);
	return rc;
}

/*
 * Writes n sealed blocks lying back to back at backing offset off, stored
 * indices first, first + 1, ...; the first `jn` of them (the committed ones)
 * through the journal.  *put says how many bytes reached their place.
 */
int cfile_put_blocks(struct cfile *f, uint64_t first, unsigned n,
		     const uint8_t *buf, uint64_t off, unsigned jn, size_t *put)
{
	bool journal = jn > 0 && f->vol->journal_dirfd >= 0;
	int rc;

	/* A record still needed must not be replaced: the file waits for
	 * its next open, which replays it. */
	if (journal && f->jpending) {
		*put = 0;
		return -EIO;
	}
	if (journal) {
		rc = journal_write(f, first, jn, buf);
		if (rc) {
			*put = 0;
			return rc;
		}
	}
	rc = pwrite_full(f->fd, buf, (size_t)n * SB, off, put);
	/* A failed in-place write may have torn a block: keep the record
	 * for the next open to finish the job. */
	if (journal && rc)
		f->jpending = true;
	return rc;
}

void cfile_journal_close(struct cfile *f)
{
	char name[2 * FORMAT_ID_LEN + 1];

	if (f->jfd < 0)
		return;
	/* Every rewrite it recorded is in place, unless one failed. */
	journal_name(f, name);
	if (f->jmap)
		munmap(f->jmap, JOURNAL_BYTES);
	close(f->jfd);
	if (!f->jpending)
		(void)unlinkat(f->vol->journal_dirfd, name, 0);
}
