/*
 * loop.h — the daemon's request loop: worker threads taking requests from
 * the FUSE device, one at a time, by turns.
 *
 * Why not libfuse's loop: there every idle worker sleeps in read(), so each
 * request of an application that waits for the last reply before it sends
 * the next (psync I/O, tar, ls) wakes a sleeping thread, often on an idle
 * CPU.  Waking an idle CPU costs more than serving a 4 KiB read (on virtual
 * machines it is a trip through the hypervisor).  Here one worker at a time
 * holds the device, and after a reply it keeps looking for the next request
 * for a few microseconds before it sleeps.  How long adapts to the gaps it
 * sees, so an idle or slow-paced mount does not spin at all.
 */
#ifndef PHIFS_LOOP_H
#define PHIFS_LOOP_H

#include "phifs/fs.h"

/*
 * Serves se with up to max_threads workers until it is unmounted or
 * fuse_session_exit is called (the signal handlers do).  Give the calling
 * thread libfuse's signal handlers first: workers block those signals, so
 * they reach it.  0 when stopped, or -errno when the device failed.
 */
int loop_run(struct fuse_session *se, unsigned max_threads);

#endif
