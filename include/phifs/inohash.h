/*
 * inohash.h — the one hash of a backing inode (dev, ino), for every table
 * keyed by it.  Fibonacci hashing: inode numbers come in runs, and the
 * multiply spreads a run over the high bits, so take buckets from there.
 */
#ifndef PHIFS_INOHASH_H
#define PHIFS_INOHASH_H

#include <stdint.h>
#include <sys/types.h>

static inline uint64_t inohash(dev_t dev, ino_t ino)
{
	return ((uint64_t)ino ^ (uint64_t)dev << 40) * 0x9E3779B97F4A7C15ULL;
}

/* A bucket of a table of 2^bits buckets. */
static inline unsigned inohash_bucket(dev_t dev, ino_t ino, unsigned bits)
{
	return bits ? (unsigned)(inohash(dev, ino) >> (64 - bits)) : 0;
}

#endif
