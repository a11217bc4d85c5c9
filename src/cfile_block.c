/*
 * cfile_block.c — cfile's blocks between plaintext and stored form: one
 * block read and opened (zeros for a hole or past the end), and chunks of
 * blocks sealed or opened on two threads through par.c.  Knows nothing of
 * where sealed blocks are written, the journal or the header.
 */
#include "cfile_impl.h"

#include <errno.h>
#include <string.h>

#include "phifs/par.h"
#include "phifs/secmem.h"

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
	if (cfile_sparse(f)) {
		rc = cfile_map_copy(f, idx / GB, map);
		if (rc)
			return rc;
		if (!format_map_test(map, idx)) {
			memset(pt, 0, BS);
			return 0;
		}
	}
	rc = cfile_pread_full(f->fd, stored, SB,
			      format_block_offset_in(f->flags, idx), &got);
	if (rc)
		return rc;
	if (got < SB)
		return cfile_fault_at(f, idx, -EBADMSG);
	rc = format_block_open(&f->fk, idx, stored, pt);
	return rc ? cfile_fault_at(f, idx, rc) : 0;
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
		const uint8_t *p = j->src ?
				   j->src + (idx * BS + from - j->off) : zeros;

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
int cfile_seal_blocks(struct cfile *f, uint64_t b0, uint64_t n,
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
			/* The file ends before this block does. */
			rc = cfile_fault_at(j->f, idx, -EBADMSG);
			break;
		}
		rc = format_block_open(&j->f->fk, idx, j->in + i * SB,
				       from == 0 && to == BS ? d : pt);
		if (rc)
			(void)cfile_fault_at(j->f, idx, rc);
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
int cfile_open_blocks(struct cfile *f, uint64_t b0, uint64_t n,
		      const uint8_t *buf, size_t got, uint8_t *dst,
		      uint64_t pos, uint64_t end)
{
	uint8_t map[BS];
	struct chunk_job j = {
		.f = f, .b0 = b0, .off = pos, .end = end, .in = buf,
		.got = got, .out = dst,
	};
	int rc = 0;

	if (cfile_sparse(f)) {
		rc = cfile_map_copy(f, b0 / GB, map);
		j.map = map;
	}
	if (!rc)
		rc = par_for(open_range, &j, (size_t)n, PAR_BLOCKS);
	return rc;
}
