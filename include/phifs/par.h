/*
 * par.h — a loop over [0, n) shared between the calling thread and one
 * helper thread.  Sealing or opening a chunk of 64 blocks is about 150 µs
 * of AES-GCM here, and a sequential reader or writer waits for each request
 * in turn, so the daemon's sequential I/O is bound by one core's AES.
 *
 * One helper per process, started on first use (again in a forked child),
 * none on a single CPU.  When it is busy with another caller's loop, the
 * caller runs the whole loop itself: never a queue, never a wait for
 * another request.  Thread-safe.
 */
#ifndef PHIFS_PAR_H
#define PHIFS_PAR_H

#include <stddef.h>

/* Runs [lo, hi) of a loop; 0 or -errno. */
typedef int (*par_fn)(void *arg, size_t lo, size_t hi);

/*
 * fn over [0, n), in two halves at once when n >= min and the helper is
 * free, else in one piece here.  Returns the first half's error, else the
 * second's; both halves always run to their end.
 */
int par_for(par_fn fn, void *arg, size_t n, size_t min);

#endif
