/*
 * closer.h — descriptors closed on a thread of their own.  The last close of
 * a backing file that has just been unlinked frees its inode and blocks:
 * in a cold `rm -rf` of a source tree that is a fifth of the daemon's CPU,
 * all of it inside UNLINK's round trip while the remover waits.  Handed to
 * the closer, it runs beside the next request instead.
 *
 * The queue is short (its descriptors count against the open-file limit);
 * when it is full, or there is no closer, the caller closes at once.
 * Thread-safe.
 */
#ifndef PHIFS_CLOSER_H
#define PHIFS_CLOSER_H

#include <stdbool.h>

struct closer;

/* Starts the thread; 0 or -errno.  Call after any fork. */
int closer_new(struct closer **out);

/* Closes fd soon (c NULL: now).  Never fails: it owns fd from here. */
void closer_put(struct closer *c, int fd);

/*
 * Returns once everything queued before the call is closed: space a delete
 * freed is free, and no close races the caller.  Whether there was any.
 */
bool closer_drain(struct closer *c);

/* Drains, stops the thread and frees c (NULL is fine). */
void closer_free(struct closer *c);

#endif
