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

#include <stdbool.h>
#include <stdint.h>
#include <linux/fuse.h>

#include "phifs/fs.h"

/* The loop's figures, for the status; written with relaxed atomics. */
struct loop_stats {
	_Atomic uint64_t requests;	/* taken from the device */
	_Atomic uint64_t replies;	/* of those, served */
	_Atomic unsigned threads;	/* workers started */
};

/*
 * Serves se with up to max_threads workers until it is unmounted, or
 * fuse_session_exit is called and then a signal with a handler (that does
 * not restart) is sent to the calling thread; send it again until this
 * returns, since one sent just before the wait began is not seen.  The
 * workers inherit the calling thread's signal mask.  st (may be NULL) is
 * kept up to date.  0 when stopped, or -errno when the device failed.
 */
int loop_run(struct fuse_session *se, unsigned max_threads,
	     struct loop_stats *st);

/*
 * loop_run negotiates FUSE_HANDLE_KILLPRIV_V2 when the kernel offers it
 * (libfuse 3.14 cannot), which spares each write a GETXATTR
 * security.capability.  The kernel then leaves the dropping of set-user-id
 * and set-group-id bits to the file system: on a write, a truncation or a
 * truncating open by a process without CAP_FSETID, and on chown.  In those
 * handlers, true when the request this thread serves asks for it.  Always
 * false outside loop_run (libfuse's own loop: the kernel does it itself).
 */
bool loop_kill_suidgid(void);

/*
 * The kernel asks GETXATTR security.capability before a file's first write
 * and at each chown and truncation.  Once the file system has answered it
 * "none" (EOPNOTSUPP or ENODATA, which for phifs holds for every inode: it
 * stores no security.* attribute and refuses the name before anything is
 * asked or touched), loop_run's reader gives that answer to each later
 * question itself, without a worker or libfuse.  The two steps, pure, for
 * tests: loop_cap_learn gives the -errno to remember from the reply out to
 * the request req (len bytes), or 0; loop_cap_reply fills out with the
 * answer to req from what was learned, or is false.
 */
int loop_cap_learn(const void *req, size_t len,
		   const struct fuse_out_header *out);
bool loop_cap_reply(int learned, const void *req, size_t len,
		    struct fuse_out_header *out);

#endif
