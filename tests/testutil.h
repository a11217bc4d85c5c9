/*
 * testutil.h — small helpers shared by the Criterion tests: hex decoding,
 * anonymous in-memory files, a seeded PRNG for reproducible random tables,
 * and a wait on a condition with a deadline.
 */
#ifndef PHIFS_TESTUTIL_H
#define PHIFS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes hex into out (at most max bytes); returns the byte count or -1. */
long tu_unhex(const char *hex, uint8_t *out, size_t max);
/* A new memfd, aborting the test if it cannot be had. */
int tu_memfd(const char *name);
/* xorshift64*: deterministic for a given seed, so failures replay. */
uint64_t tu_rand(uint64_t *state);
/* Reads a whole file under tests/data; *len set; caller frees. */
uint8_t *tu_read_data(const char *name, size_t *len);

/*
 * Calls cond(arg) until it returns true or timeout_ms have passed, with
 * short, growing pauses between calls (1 ms up to 20 ms); cond is called
 * once more at the deadline.  Returns whether cond came true.  For tests
 * that wait for something another process or thread does: the wait ends
 * as soon as it happens, and a slow machine gets the whole deadline.
 */
bool tu_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* A stream connection to the Unix socket at path, asserting success. */
int tu_unix_connect(const char *path);
/*
 * Reads from fd until a newline, the end or timeout_ms without a byte;
 * NUL-terminates buf.  The bytes read: 0 when closed without a word.
 */
size_t tu_read_line(int fd, char *buf, size_t len, int timeout_ms);
/*
 * Receives datagrams on fd into buf until one holds want (true), or none
 * came for timeout_ms (false).
 */
bool tu_recv_until(int fd, const char *want, char *buf, size_t len,
		   int timeout_ms);

#endif
