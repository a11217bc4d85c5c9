/*
 * ioutil.h — whole-buffer reads and writes on a file descriptor: the loops
 * that retry short reads and writes and EINTR, so that no module keeps its own copy.  Knows
 * nothing of what the bytes are or where the fd came from.
 */
#ifndef PHIFS_IOUTIL_H
#define PHIFS_IOUTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Writes all len bytes of buf at fd's offset, retrying short writes and
 * EINTR.  Returns 0, or -errno of the write that failed (-EIO if a write
 * made no progress); some bytes may have reached the file then.
 */
int ioutil_write_all(int fd, const void *buf, size_t len);

/* As ioutil_write_all, at offset off; the fd's own offset is left alone. */
int ioutil_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/*
 * Reads from fd's offset into buf until len bytes came or the file ended,
 * retrying short reads and EINTR.  *got is the bytes read, also on error.
 * Returns 0, or -errno of the read that failed.
 */
int ioutil_read_all(int fd, void *buf, size_t len, size_t *got);

#endif
