/*
 * sizememo.h — plaintext sizes already verified from size tags, by backing
 * inode and ctime, so that a listing followed by an unlink or a getattr
 * reads and checks each tag once, not two or three times.  Knows nothing
 * of tags, keys or FUSE: it only remembers what its caller verified.
 *
 * A backing inode's ctime moves on every change to it (a write, a
 * truncate, a new size tag), except for changes within one tick of the
 * file system's clock.  So, as git does with racily clean index entries,
 * only a ctime that had settled (SIZE_MEMO_SETTLE seconds older than the
 * clock) when the size was verified is remembered: any later change then
 * has a later ctime, and misses.
 *
 * Direct-mapped: a newer entry evicts an older one in the same slot.
 * Thread-safe.
 */
#ifndef PHIFS_SIZEMEMO_H
#define PHIFS_SIZEMEMO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define SIZE_MEMO_SETTLE 2	/* seconds */

struct size_memo;

/* slots: a power of two.  NULL on ENOMEM. */
struct size_memo *size_memo_new(unsigned slots);
void size_memo_free(struct size_memo *m);

/* The size remembered for st's inode at st's ctime, if any. */
bool size_memo_get(struct size_memo *m, const struct stat *st,
		   uint64_t *size);
/* Remembers size, verified for st as it is now (CLOCK_REALTIME), unless
 * st's ctime is too recent to trust. */
void size_memo_put(struct size_memo *m, const struct stat *st, uint64_t size,
		   const struct timespec *now);

#endif
