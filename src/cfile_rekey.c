/*
 * cfile_rekey.c — a file copied under a fresh DEK (rekey): the same file
 * ID and plaintext, the next DEK generation, every stored block and map
 * sealed anew, holes kept.  The copy goes to another backing file, so the
 * source stays whole until its caller swaps the two; nothing here is
 * journaled.  Knows nothing of paths, renames or the volume.
 */
#include "cfile_impl.h"

#include <errno.h>
#include <stdlib.h>

#include "phifs/secmem.h"

/* Plaintext moved per read and write: one chunk of stored blocks. */
#define COPY_BYTES ((size_t)CHUNK_BLOCKS * BS)

/* Copies blocks [b, b1) of src to dst through buf; dst lock exclusive. */
static int copy_blocks(struct cfile *src, struct cfile *dst, uint64_t b,
		       uint64_t b1, uint8_t *buf)
{
	while (b < b1) {
		uint64_t n = b1 - b < CHUNK_BLOCKS ? b1 - b : CHUNK_BLOCKS;
		ssize_t got = cfile_pread(src, buf, (size_t)(n * BS), b * BS);
		ssize_t put;

		if (got < 0)
			return (int)got;
		if (got == 0)
			return 0;	/* src ends inside the run */
		put = cfile_write_range(dst, buf, (size_t)got, b * BS);
		if (put < 0)
			return (int)put;
		if (put < got)
			return -ENOSPC;
		b += n;
	}
	return 0;
}

/* The end of the run of blocks from b, below end, whose map bits equal
 * `stored`. */
static uint64_t run_end(const uint8_t *map, uint64_t b, uint64_t end,
			bool stored)
{
	while (b < end && format_map_test(map, b) == stored)
		b++;
	return b;
}

/* A sparse src: dst made sparse at src's size, all holes, then the
 * stored runs copied (their map bits set as they are written). */
static int copy_sparse(struct cfile *src, struct cfile *dst, uint64_t size,
		       uint8_t *buf)
{
	uint64_t nb = format_nblocks(size), b = 0;
	uint8_t map[BS];
	int rc = cfile_go_sparse(dst, nb);

	dst->size = size;
	dst->dirty = true;
	while (!rc && b < nb) {
		uint64_t gend = (b / GB + 1) * GB < nb ? (b / GB + 1) * GB : nb;

		pthread_rwlock_rdlock(&src->lock);
		rc = cfile_map_copy(src, b / GB, map);
		pthread_rwlock_unlock(&src->lock);
		while (!rc && b < gend) {
			uint64_t e = run_end(map, b, gend, true);

			if (e > b)
				rc = copy_blocks(src, dst, b, e, buf);
			b = run_end(map, e, gend, false);
		}
	}
	secmem_wipe(map, sizeof(map));
	return rc;
}

int cfile_rekey_copy(struct cfile *src, int fd,
		     const struct cfile_volume *vol, struct cfile **out)
{
	uint64_t size = cfile_size(src);
	struct cfile *dst = NULL;
	uint8_t *buf;
	bool sparse;
	int rc;

	if (src->hdr.dek_gen == UINT32_MAX)
		return -EOVERFLOW;
	buf = malloc(COPY_BYTES);
	if (!buf)
		return -ENOMEM;
	rc = cfile_create_as(fd, vol, src->hdr.file_id, src->hdr.dek_gen + 1,
			     &dst);
	if (rc)
		goto out;
	pthread_rwlock_rdlock(&src->lock);
	sparse = cfile_sparse(src);
	pthread_rwlock_unlock(&src->lock);
	pthread_rwlock_wrlock(&dst->lock);
	rc = sparse ? copy_sparse(src, dst, size, buf) :
		      copy_blocks(src, dst, 0, format_nblocks(size), buf);
	pthread_rwlock_unlock(&dst->lock);
	if (!rc)
		rc = cfile_commit(dst);
	if (!rc) {
		*out = dst;
		dst = NULL;
	}
out:
	if (dst)
		(void)cfile_release(dst);	/* a copy the caller drops */
	secmem_wipe(buf, COPY_BYTES);
	free(buf);
	return rc;
}
