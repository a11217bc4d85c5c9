/*
 * cfile.c — one encrypted file behind an fd: plaintext pread/pwrite/truncate
 * over the layout of format.h.  Knows nothing of FUSE, paths or policy.
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
#include "phifs/cfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "phifs/ioutil.h"
#include "phifs/par.h"
#include "phifs/secmem.h"

/* The largest journal record: its head and FORMAT_JOURNAL_MAX blocks. */
#define JOURNAL_BYTES ((FORMAT_JOURNAL_MAX + 1u) * FORMAT_STORED_BLOCK)
/* Records written before the journal is worth mapping. */
#define JOURNAL_MAP_AFTER 16u

/* Blocks sealed into one buffer and moved with one syscall. */
#define CHUNK_BLOCKS 64u

/*
 * Hole maps cached per open file, one group (128 MiB) each, by group
 * number modulo: random I/O over a 256 MiB file went to two groups in
 * turn, and with one map cached it read and opened a map per request.
 */
#define MAP_SLOTS 8u

struct map_slot {
	bool valid;
	uint64_t group;
	uint8_t map[FORMAT_BLOCK_SIZE];
};
/*
 * A dense file extended by at most this many whole blocks gets encrypted
 * zeros; a larger hole switches it to sparse mode and hole maps.
 */
#define ZERO_FILL_MAX 16u

#define BS FORMAT_BLOCK_SIZE
#define SB FORMAT_STORED_BLOCK
#define GB FORMAT_GROUP_BLOCKS

/*
 * Lock order: lock, then map_lock.  `lock` is shared by readers and held
 * exclusively by anything that changes the file; it protects size, flags,
 * hdr, slot, dirty and jfd.  map_lock protects the map cache, which readers fill
 * too.  fd, vol and fk never change after open.
 */
struct cfile {
	int fd;
	const struct cfile_volume *vol;
	struct format_fkeys fk;
	pthread_rwlock_t lock;
	bool writable;			/* fd open for writing */
	enum { TAG_UNKNOWN, TAG_ABSENT, TAG_SET } tag;	/* size tag on fd */
	int jfd;			/* journal, -1 until first needed */
	uint8_t *jmap;			/* jfd mapped whole, or NULL */
	unsigned jwrites;		/* records written through jfd */
	bool jpending;			/* its record must outlive us */
	struct format_header hdr;	/* as last committed */
	int slot;			/* slot holding hdr */
	uint64_t size;
	uint16_t flags;
	bool dirty;			/* size or flags differ from hdr */
	pthread_mutex_t map_lock;
	struct map_slot *maps;		/* MAP_SLOTS, from the first map */
	_Atomic int64_t fault;		/* cfile_fault's block, or -1 */
};

/* Remembers that block idx did not authenticate; returns rc. */
static int fault(struct cfile *f, uint64_t idx, int rc)
{
	f->fault = (int64_t)idx;
	return rc;
}

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
static uint8_t *scratch(void)
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
static int pread_full(int fd, void *buf, size_t len, uint64_t off,
		      size_t *got)
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
 * are written in place: head and blocks in one write (or copy).  A kill inside it
 * leaves a head whose blocks do not all authenticate, which replay drops;
 * the in-place write starts only once the record is whole.
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

/* Voids the head: one small write within a page, which no kill can tear. */
static int journal_void(struct cfile *f)
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
static int journal_replay(struct cfile *f)
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
	rc = pread_full(jfd, head, SB, 0, &got);
	if (rc || got < SB || format_journal_open(&f->fk, head, index, &n))
		goto done;
	rc = -ENOMEM;
	blocks = malloc((size_t)n * SB);
	if (!blocks)
		goto done;
	rc = pread_full(jfd, blocks, (size_t)n * SB, SB, &got);
	if (rc || got < (size_t)n * SB)
		goto done;
	for (unsigned i = 0; i < n; i++)
		if (format_stored_open(&f->fk, index[i], blocks + i * SB, pt))
			goto done;
	for (unsigned i = 0; !rc && i < n; i++)
		rc = ioutil_pwrite_all(f->fd, blocks + i * SB, SB,
				format_stored_offset(index[i]));
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
static int put_blocks(struct cfile *f, uint64_t first, unsigned n,
		      const uint8_t *buf, uint64_t off, unsigned jn,
		      size_t *put)
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

/* Does block `index` hold data that a crash must not lose? */
static bool committed(const struct cfile *f, uint64_t index)
{
	return index < format_nblocks(f->hdr.size);
}

/* How many of the n blocks from b0 on are committed: always a prefix. */
static unsigned committed_of(const struct cfile *f, uint64_t b0, uint64_t n)
{
	uint64_t nb = format_nblocks(f->hdr.size);

	if (b0 >= nb)
		return 0;
	return (unsigned)(nb - b0 < n ? nb - b0 : n);
}

/* --- hole maps --- */

static bool sparse(const struct cfile *f)
{
	return f->flags & FORMAT_F_SPARSE;
}

/* The cache slot of group g's map, or NULL on ENOMEM; under map_lock. */
static struct map_slot *map_slot(struct cfile *f, uint64_t g)
{
	if (!f->maps)
		f->maps = calloc(MAP_SLOTS, sizeof(*f->maps));
	return f->maps ? &f->maps[g % MAP_SLOTS] : NULL;
}

/* The map of group g, loaded into the cache.  Caller holds map_lock. */
static int map_load(struct cfile *f, uint64_t g, const uint8_t **map)
{
	struct map_slot *m = map_slot(f, g);
	uint8_t stored[SB];
	size_t got;
	int rc;

	if (!m)
		return -ENOMEM;
	if (m->valid && m->group == g) {
		*map = m->map;
		return 0;
	}
	m->valid = false;
	rc = pread_full(f->fd, stored, SB, format_map_offset(g), &got);
	if (!rc && got < SB)
		rc = -EBADMSG;	/* a map inside the size must be stored */
	if (!rc)
		rc = format_map_open(&f->fk, g, stored, m->map);
	if (rc == -EBADMSG)	/* named by the group's first block */
		(void)fault(f, g * GB, rc);
	if (!rc) {
		m->valid = true;
		m->group = g;
		*map = m->map;
	}
	return rc;
}

/* Copies the map of group g out for a reader. */
static int map_copy(struct cfile *f, uint64_t g, uint8_t map[BS])
{
	const uint8_t *cached;
	int rc;

	pthread_mutex_lock(&f->map_lock);
	rc = map_load(f, g, &cached);
	if (!rc)
		memcpy(map, cached, BS);
	pthread_mutex_unlock(&f->map_lock);
	return rc;
}

/* Seals and writes map[] as the map of group g, and caches it. */
static int map_store(struct cfile *f, uint64_t g, const uint8_t map[BS])
{
	uint8_t stored[SB], nonce[CRYPTO_GCM_NONCE_LEN];
	struct map_slot *m;
	int rc;

	size_t put;

	rc = crypto_nonce(nonce, sizeof(nonce));
	if (!rc)
		rc = format_map_seal(&f->fk, g, nonce, map, stored);
	/* Maps are in force on disk only once a committed header says so. */
	if (!rc)
		rc = put_blocks(f, FORMAT_MAP_INDEX(g), 1, stored,
				format_map_offset(g),
				(f->hdr.flags & FORMAT_F_SPARSE) &&
				committed(f, g * GB) ? 1u : 0u, &put);
	pthread_mutex_lock(&f->map_lock);
	m = map_slot(f, g);
	if (m) {	/* without a cache, the next use reads it back */
		m->valid = !rc;
		m->group = g;
		if (!rc)
			memcpy(m->map, map, BS);
	}
	pthread_mutex_unlock(&f->map_lock);
	return rc;
}

/*
 * Sets (on) or clears the bits of blocks [from, to), all in one group, and
 * writes the map if it changed.  Caller holds lock exclusively.
 */
static int map_mark(struct cfile *f, uint64_t from, uint64_t to, bool on)
{
	uint64_t g = from / GB;
	uint8_t map[BS];
	bool changed = false;
	int rc;

	rc = map_copy(f, g, map);
	for (uint64_t i = from; !rc && i < to; i++) {
		if (format_map_test(map, i) != on) {
			format_map_set(map, i, on);
			changed = true;
		}
	}
	if (!rc && changed)
		rc = map_store(f, g, map);
	return rc;
}

/*
 * Makes blocks [from, to) holes in the maps, writing fresh maps for groups
 * that start at or after `from`: whatever they held lay past the size.
 */
static int maps_clear(struct cfile *f, uint64_t from, uint64_t to)
{
	static const uint8_t zero_map[BS];
	int rc = 0;

	for (uint64_t i = from; !rc && i < to;) {
		uint64_t g = i / GB, end = (g + 1) * GB;

		if (i % GB)
			rc = map_mark(f, i, end < to ? end : to, false);
		else
			rc = map_store(f, g, zero_map);
		i = end;
	}
	return rc;
}

/*
 * Switches a dense file to sparse mode: maps for every group up to block
 * `to`, marking the blocks below the current size as stored.  The header
 * that says "sparse" is written later and only points at maps on disk.
 */
static int go_sparse(struct cfile *f, uint64_t to)
{
	uint64_t nb = format_nblocks(f->size);
	uint8_t map[BS];
	int rc = 0;

	for (uint64_t g = 0; !rc && g * GB < to; g++) {
		memset(map, 0, BS);
		for (uint64_t i = g * GB; i < nb && i < (g + 1) * GB; i++)
			format_map_set(map, i, true);
		rc = map_store(f, g, map);
	}
	if (!rc) {
		f->flags |= FORMAT_F_SPARSE;
		f->dirty = true;
	}
	return rc;
}

/* --- blocks --- */

/*
 * Reads and opens block idx into pt: zeros for a hole, or for a block at
 * or past the end of the file (its stored bytes are garbage).
 */
static int block_get(struct cfile *f, uint64_t idx, uint8_t pt[BS])
{
	uint8_t stored[SB], map[BS];
	size_t got;
	int rc;

	if (idx >= format_nblocks(f->size)) {
		memset(pt, 0, BS);
		return 0;
	}
	if (sparse(f)) {
		rc = map_copy(f, idx / GB, map);
		if (rc)
			return rc;
		if (!format_map_test(map, idx)) {
			memset(pt, 0, BS);
			return 0;
		}
	}
	rc = pread_full(f->fd, stored, SB, format_block_offset(idx), &got);
	if (rc)
		return rc;
	if (got < SB)
		return fault(f, idx, -EBADMSG);
	rc = format_block_open(&f->fk, idx, stored, pt);
	return rc ? fault(f, idx, rc) : 0;
}

/* A chunk of blocks to seal or open, shared by par_for's two halves. */
struct chunk_job {
	struct cfile *f;
	uint64_t b0;
	const uint8_t *src;	/* seal: new plaintext, or NULL for zeros */
	uint64_t off;		/* seal: where src goes; open: pos */
	uint64_t end;		/* plaintext [off, end) is the caller's */
	const uint8_t *nonces;	/* seal */
	const uint8_t *in;	/* open: the stored blocks read */
	size_t got;		/* open: bytes of them read */
	const uint8_t *map;	/* open: the group's hole map, if sparse */
	uint8_t *out;		/* seal: stored blocks; open: plaintext */
};

/* Splits a chunk in two from this many blocks (64 KiB) on. */
#define PAR_BLOCKS 16u

/* Block i of job j: its index, and the part [from, to) of it that the
 * plaintext range [off, end) covers. */
static uint64_t job_block(const struct chunk_job *j, size_t i, uint64_t *from,
			  uint64_t *to)
{
	uint64_t idx = j->b0 + i, start = idx * BS;

	*from = j->off > start ? j->off - start : 0;
	*to = j->end - start < BS ? j->end - start : BS;
	return idx;
}

/* Seals blocks [lo, hi) of job j. */
static int seal_range(void *arg, size_t lo, size_t hi)
{
	static const uint8_t zeros[BS];
	const struct chunk_job *j = arg;
	uint8_t pt[BS];
	int rc = 0;

	for (size_t i = lo; !rc && i < hi; i++) {
		uint64_t from, to, idx = job_block(j, i, &from, &to);
		const uint8_t *p = j->src ? j->src + (idx * BS + from - j->off) :
					    zeros;

		if (from || to < BS) {
			rc = block_get(j->f, idx, pt);
			if (rc)
				break;
			if (idx == j->f->size / BS)
				memset(pt + j->f->size % BS, 0,
				       BS - j->f->size % BS);
			memcpy(pt + from, p, to - from);
			p = pt;
		}
		rc = format_block_seal(&j->f->fk, idx,
				       j->nonces + i * CRYPTO_GCM_NONCE_LEN, p,
				       j->out + i * SB);
	}
	secmem_wipe(pt, sizeof(pt));
	return rc;
}

/*
 * Seals blocks [b0, b0 + n) (one group at most) into out.  The new content
 * of the plaintext range [off, off + len) is src, or zeros when src is NULL;
 * blocks it covers in part keep their other bytes (read-modify-write), with
 * the garbage past the end of the file zeroed.
 */
static int seal_blocks(struct cfile *f, uint64_t b0, uint64_t n,
		       const uint8_t *src, uint64_t off, size_t len,
		       uint8_t *out)
{
	uint8_t nonces[CHUNK_BLOCKS * CRYPTO_GCM_NONCE_LEN];
	struct chunk_job j = {
		.f = f, .b0 = b0, .src = src, .off = off, .end = off + len,
		.nonces = nonces, .out = out,
	};
	int rc;

	rc = crypto_nonce(nonces, (size_t)n * CRYPTO_GCM_NONCE_LEN);
	if (!rc)
		rc = par_for(seal_range, &j, (size_t)n, PAR_BLOCKS);
	return rc;
}

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
static ssize_t write_range(struct cfile *f, const uint8_t *src, size_t len,
			   uint64_t off)
{
	uint8_t *buf = scratch();
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
		rc = seal_blocks(f, b0, n, src ? src + done : NULL, pos,
				 (size_t)(end - pos), buf);
		if (rc)
			break;
		rc = put_blocks(f, b0, (unsigned)n, buf,
				format_block_offset(b0),
				committed_of(f, b0, n), &put);
		/* Only whole blocks count: a torn one past the size is
		 * garbage, and inside it the old block was rewritten in
		 * place, which needs no new space. */
		whole = put / SB;
		if (whole < n)
			end = (b0 + whole) * BS > pos ? (b0 + whole) * BS : pos;
		if (sparse(f) && whole) {
			int mrc = map_mark(f, b0, b0 + whole, true);

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
	ssize_t w = write_range(f, NULL, (size_t)len, off);

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
	if (sparse(f))
		return maps_clear(f, nb, new_nb);
	if (first <= nb)
		return 0;
	if (first - nb <= ZERO_FILL_MAX)
		return write_zeros(f, nb * BS, (first - nb) * BS);
	return go_sparse(f, new_nb);
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
	    f->dirty || fstat(f->fd, &st) ||
	    format_size_tag(f->vol->size_key, (uint64_t)st.st_ino, f->hdr.size,
			    tag))
		return;
	if (!fsetxattr(f->fd, FORMAT_SIZE_XATTR, tag, sizeof(tag), 0))
		f->tag = TAG_SET;
}

/* Writes size and flags into the slot not holding the current header. */
static int commit_locked(struct cfile *f)
{
	struct format_header h = f->hdr;
	uint8_t slot[FORMAT_SLOT_SIZE];
	int other = !f->slot, rc;

	if (!f->dirty)
		return 0;
	rc = tag_remove(f);	/* before the header it would contradict */
	if (rc)
		return rc;
	h.size = f->size;
	h.flags = f->flags;
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
	char name[2 * FORMAT_ID_LEN + 1];

	if (f->jfd >= 0) {
		/* Every rewrite it recorded is in place, unless one failed. */
		journal_name(f, name);
		if (f->jmap)
			munmap(f->jmap, JOURNAL_BYTES);
		close(f->jfd);
		if (!f->jpending)
			(void)unlinkat(f->vol->journal_dirfd, name, 0);
	}
	format_fkeys_release(&f->fk);
	pthread_rwlock_destroy(&f->lock);
	pthread_mutex_destroy(&f->map_lock);
	if (f->maps) {
		secmem_wipe(f->maps, MAP_SLOTS * sizeof(*f->maps));
		free(f->maps);
	}
	free(f);
}

int cfile_create(int fd, const struct cfile_volume *vol, struct cfile **out)
{
	uint8_t region[FORMAT_HEADER_SIZE] = { 0 };
	struct format_header h = {
		.version = FORMAT_VERSION,
		.key_version = vol->active_version,
		.dek_gen = 1,
	};
	const struct crypto_key *kek = vol->kek(vol->kek_arg,
						vol->active_version);
	struct crypto_key *dek = NULL;
	struct cfile *f = NULL;
	int rc = -ENOMEM;

	if (!kek)
		return -ENOKEY;
	f = cfile_alloc(fd, vol);
	dek = crypto_key_random();
	if (!f || !dek)
		goto out;
	memcpy(h.volume_id, vol->volume_id, FORMAT_ID_LEN);
	rc = crypto_random(h.file_id, FORMAT_ID_LEN);
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
	f->tag = TAG_ABSENT;	/* a new file has none yet */
	*out = f;
	f = NULL;	/* transferred */
out:
	crypto_key_free(dek);
	if (f)
		cfile_free(f);
	return rc;
}

int cfile_open(int fd, const struct cfile_volume *vol, struct cfile **out)
{
	uint8_t region[FORMAT_HEADER_SIZE];
	struct cfile *f;
	size_t got;
	int rc;

	rc = pread_full(fd, region, sizeof(region), 0, &got);
	if (rc)
		return rc;
	if (got < sizeof(region))
		return -EUCLEAN;
	f = cfile_alloc(fd, vol);
	if (!f)
		return -ENOMEM;
	rc = format_header_load(region, vol->volume_id, vol->kek, vol->kek_arg,
				&f->hdr, &f->fk, &f->slot);
	if (rc) {
		cfile_free(f);	/* fk is untouched on failure: releases NULLs */
		return rc;
	}
	f->size = f->hdr.size;
	f->flags = f->hdr.flags;
	if (vol->journal_dirfd >= 0 && f->writable &&
	    (!vol->journals || *vol->journals))
		rc = journal_replay(f);
	if (rc) {
		cfile_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

/* --- plaintext I/O --- */

/* Opens blocks [lo, hi) of job j. */
static int open_range(void *arg, size_t lo, size_t hi)
{
	const struct chunk_job *j = arg;
	uint8_t pt[BS];
	int rc = 0;

	for (size_t i = lo; !rc && i < hi; i++) {
		uint64_t from, to, idx = job_block(j, i, &from, &to);
		uint8_t *d = j->out + (idx * BS + from - j->off);

		if (j->map && !format_map_test(j->map, idx)) {
			memset(d, 0, to - from);
			continue;
		}
		if ((i + 1) * SB > j->got) {
			rc = fault(j->f, idx, -EBADMSG);  /* cut short */
			break;
		}
		rc = format_block_open(&j->f->fk, idx, j->in + i * SB,
				       from == 0 && to == BS ? d : pt);
		if (rc)
			(void)fault(j->f, idx, rc);
		else if (from != 0 || to != BS)
			memcpy(d, pt + from, to - from);
	}
	secmem_wipe(pt, sizeof(pt));
	return rc;
}

/*
 * Opens the stored blocks in buf (n blocks from b0, `got` bytes of them
 * read) into dst, which holds plaintext [pos, end).
 */
static int open_blocks(struct cfile *f, uint64_t b0, uint64_t n,
		       const uint8_t *buf, size_t got, uint8_t *dst,
		       uint64_t pos, uint64_t end)
{
	uint8_t map[BS];
	struct chunk_job j = {
		.f = f, .b0 = b0, .off = pos, .end = end, .in = buf,
		.got = got, .out = dst,
	};
	int rc = 0;

	if (sparse(f)) {
		rc = map_copy(f, b0 / GB, map);
		j.map = map;
	}
	if (!rc)
		rc = par_for(open_range, &j, (size_t)n, PAR_BLOCKS);
	return rc;
}

ssize_t cfile_pread(struct cfile *f, void *buf, size_t len, uint64_t off)
{
	uint8_t *sbuf = scratch();
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

		rc = pread_full(f->fd, sbuf, (size_t)n * SB,
				format_block_offset(b0), &got);
		if (!rc)
			rc = open_blocks(f, b0, n, sbuf, got,
					 (uint8_t *)buf + done, pos, end);
		if (!rc)
			done += (size_t)(end - pos);
	}
	pthread_rwlock_unlock(&f->lock);
	if (rc)
		secmem_wipe(buf, len);	/* nothing unauthenticated leaks */
	return rc ? rc : (ssize_t)done;
}

ssize_t cfile_pwrite(struct cfile *f, const void *buf, size_t len,
		     uint64_t off)
{
	uint64_t old_size;
	ssize_t rc = 0;

	if (len == 0)
		return 0;
	if (off > FORMAT_MAX_SIZE || len > FORMAT_MAX_SIZE - off)
		return -EFBIG;
	pthread_rwlock_wrlock(&f->lock);
	old_size = f->size;
	if (off + len > f->size)
		rc = grow(f, off / BS, format_nblocks(off + len));
	if (!rc)
		rc = write_range(f, buf, len, off);
	if (rc < 0 && f->size != old_size)
		f->size = old_size;	/* the zeros we grew by are garbage */
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
	rc = journal_void(f);
	if (rc)
		return rc;
	/* Map bits past the new end need no clearing: grow() clears them. */
	if (size == 0)
		f->flags &= (uint16_t)~FORMAT_F_SPARSE;	/* dense again */
	f->size = size;
	f->dirty = true;
	/* The header must never claim more than the backing file holds. */
	rc = commit_locked(f);
	if (rc)
		return rc;
	len = sparse(f) ? format_map_offset((nb - 1) / GB) + SB :
			  format_backing_size(size);
	return ftruncate(f->fd, (off_t)len) ? -errno : 0;
}

int cfile_truncate(struct cfile *f, uint64_t size)
{
	uint64_t old_size;
	int rc = 0;

	if (size > FORMAT_MAX_SIZE)
		return -EFBIG;
	pthread_rwlock_wrlock(&f->lock);
	old_size = f->size;
	if (size < f->size) {
		rc = shrink(f, size);
	} else if (size > f->size) {
		rc = grow(f, format_nblocks(size), format_nblocks(size));
		if (!rc) {
			f->size = size;
			f->dirty = true;
		} else {
			f->size = old_size;
		}
	}
	pthread_rwlock_unlock(&f->lock);
	return rc;
}

void cfile_readahead(struct cfile *f, uint64_t off, uint64_t len)
{
	uint64_t size = cfile_size(f), end;

	if (off >= size || len == 0)
		return;
	end = size - off < len ? size : off + len;
	(void)posix_fadvise(f->fd, (off_t)format_block_offset(off / BS),
			    (off_t)((format_nblocks(end) - off / BS) * SB),
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

uint32_t cfile_key_version(const struct cfile *f)
{
	return f->hdr.key_version;
}

int64_t cfile_fault(struct cfile *f)
{
	return f->fault;
}
