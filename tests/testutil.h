/*
 * testutil.h — small helpers shared by the Criterion tests: hex decoding,
 * anonymous in-memory files, a seeded PRNG for reproducible random tables.
 */
#ifndef PHIFS_TESTUTIL_H
#define PHIFS_TESTUTIL_H

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

#endif
