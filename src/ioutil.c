/*
 * ioutil.c — whole-buffer read and write loops.  Knows nothing of files' contents,
 * paths or secrets: the caller wipes its own buffers.
 */
#include "phifs/ioutil.h"

#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

int ioutil_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		/* A write of 0 bytes would loop for ever: call it an error. */
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ioutil_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int ioutil_read_all(int fd, void *buf, size_t len, size_t *got)
{
	uint8_t *p = buf;
	size_t n = 0;
	int rc = 0;

	while (n < len) {
		ssize_t r = read(fd, p + n, len - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			rc = -errno;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	*got = n;
	return rc;
}
