/*
 * testutil.c — helpers for the tests; see testutil.h.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>

static int nibble(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

long tu_unhex(const char *hex, uint8_t *out, size_t max)
{
	size_t n = 0;

	while (hex[0] && hex[1]) {
		int hi = nibble(hex[0]), lo = nibble(hex[1]);

		if (hi < 0 || lo < 0 || n == max)
			return -1;
		out[n++] = (uint8_t)(hi << 4 | lo);
		hex += 2;
	}
	return hex[0] ? -1 : (long)n;
}

int tu_memfd(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	cr_assert(fd >= 0, "memfd_create failed");
	return fd;
}

uint64_t tu_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

uint8_t *tu_read_data(const char *name, size_t *len)
{
	char path[4096];
	FILE *f;
	uint8_t *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", PHIFS_TEST_DATA, name);
	f = fopen(path, "rb");
	cr_assert(f, "cannot open test data %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t)n : 1);
	cr_assert(buf);
	cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

bool tu_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
	long end = now_ms() + timeout_ms, pause = 1;

	while (!cond(arg)) {
		long left = end - now_ms();
		struct timespec ts;

		if (left <= 0)
			return cond(arg);
		if (pause > left)
			pause = left;
		ts.tv_sec = pause / 1000;
		ts.tv_nsec = pause % 1000 * 1000000L;
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		pause = pause < 10 ? pause * 2 : 20;
	}
	return true;
}

int tu_unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0 && strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
		     "connect %s: %s", path, strerror(errno));
	return fd;
}

size_t tu_read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = timeout_ms % 1000 * 1000 };
	size_t n = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (n + 1 < len) {
		ssize_t r = recv(fd, buf + n, len - n - 1, 0);

		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(buf, '\n', n))
			break;
	}
	buf[n] = 0;
	return n;
}

bool tu_recv_until(int fd, const char *want, char *buf, size_t len,
		   int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = timeout_ms % 1000 * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		ssize_t n = recv(fd, buf, len - 1, 0);

		if (n < 0)
			return false;
		buf[n] = 0;
		if (strstr(buf, want))
			return true;
	}
}
