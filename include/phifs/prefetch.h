/*
 * prefetch.h — reads ahead across files: when a reader goes through a
 * folder's files in listing order (find | xargs cat, grep -r, a backup), the
 * start of the next few files is asked of the disk while it reads this one,
 * so that a cold tree costs queued reads instead of one wait per file.
 *
 * Works on backing folders only (names as stored); knows nothing of FUSE.
 * A background thread does the opens, so a caller only queues.  Best
 * effort: anything that fails just reads ahead less.  Thread-safe.
 */
#ifndef PHIFS_PREFETCH_H
#define PHIFS_PREFETCH_H

#include <stdbool.h>
#include <sys/types.h>

struct prefetch;

/* Starts the background thread; `bytes` is how much of each file to ask. */
int prefetch_new(size_t bytes, struct prefetch **out);
/* Stops it, dropping queued work.  NULL does nothing. */
void prefetch_free(struct prefetch *p);

/*
 * The regular file `name` in the folder (dev, ino), reachable through the
 * handle dirfd (O_PATH is enough; borrowed), was opened for reading.  `cold`:
 * its first page was not in memory.  Reads ahead the files after it when it
 * is where an earlier read-ahead asked to be told, or when it is cold.
 */
void prefetch_opened(struct prefetch *p, int dirfd, dev_t dev, ino_t ino,
		     const char *name, bool cold);

#endif
