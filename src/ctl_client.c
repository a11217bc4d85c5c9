/*
 * ctl_client.c — one request to the control socket and its answer, for
 * phifsctl and the tests.  Blocking, with one deadline for the whole
 * exchange; knows nothing of what the request means.
 */
#include "phifs/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX (16u << 20)	/* a status is a few KiB */

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits for ev on fd until deadline: 0 or -ETIMEDOUT, -errno. */
static int wait_for(int fd, short ev, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int64_t left = deadline - now_ms();
	int n;

	if (left <= 0)
		return -ETIMEDOUT;
	n = poll(&p, 1, (int)left);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n ? 0 : -ETIMEDOUT;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		int rc;

		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		rc = wait_for(fd, POLLOUT, deadline);
		if (rc)
			return rc;
	}
	return 0;
}

static int read_line(int fd, int64_t deadline, char **answer)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap), *nl;
	int rc;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			char *b = cap < ANSWER_MAX ? realloc(buf, cap * 2) :
						     NULL;

			if (!b) {
				rc = cap < ANSWER_MAX ? -ENOMEM : -EMSGSIZE;
				goto out;
			}
			buf = b;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n == 0) {
			rc = -ECONNRESET;	/* closed before a whole line */
			goto out;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			rc = -errno;
			goto out;
		}
		if (n < 0) {
			rc = wait_for(fd, POLLIN, deadline);
			if (rc)
				goto out;
			continue;
		}
		len += (size_t)n;
		buf[len] = 0;
		nl = memchr(buf, '\n', len);
		if (nl) {
			*nl = 0;
			*answer = buf;
			return 0;
		}
	}
out:
	free(buf);
	return rc;
}

int ctl_request(const char *path, const char *request, int timeout_ms,
		char **answer)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t deadline = now_ms() + timeout_ms;
	size_t rlen = strlen(request);
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = timeout_ms % 1000 * 1000 };
	char *line = NULL;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	/*
	 * Connected blocking, so that a full backlog is waited for (up to
	 * the send timeout), then switched to non-blocking for the rest.
	 */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    fcntl(fd, F_SETFL, O_NONBLOCK)) {
		rc = errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT :
							       -errno;
		goto out;
	}
	line = malloc(rlen + 1);
	if (!line) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(line, request, rlen);
	line[rlen] = '\n';
	rc = send_all(fd, line, rlen + 1, deadline);
	if (!rc)
		rc = read_line(fd, deadline, answer);
out:
	free(line);
	close(fd);
	return rc;
}
