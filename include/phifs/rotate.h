/*
 * rotate.h — a master key rotation run by the daemon while its volume is
 * mounted (issue 16, SPEC "Keys and rotation"): volkeys' rotation on a
 * thread of its own, each file re-wrapped through the mount's open files
 * (vfs_rewrap) so that no open file's header is rewritten behind its back,
 * and its progress readable at any moment.  Knows nothing of the control
 * socket, FUSE or argv.
 *
 * Functions return 0 or -errno.  Thread-safe.
 */
#ifndef PHIFS_ROTATE_H
#define PHIFS_ROTATE_H

#include <stdbool.h>
#include <stdint.h>

#include "phifs/vfs.h"
#include "phifs/volkeys.h"
#include "phifs/volume.h"

/* Walks of the tree at most: see struct volkeys_ops. */
#define ROTATE_PASSES 3

enum rotate_state {
	ROTATE_NONE,		/* none since the mount */
	ROTATE_RUNNING,
	ROTATE_DONE,
	ROTATE_FAILED,		/* error says why */
};

/* The last rotation since the mount, as rotate_get() copies it. */
struct rotate_status {
	enum rotate_state state;
	unsigned id;			/* 1 for the first since the mount */
	bool keep_old;
	double seconds;			/* so far, or in all */
	struct volkeys_progress p;
	char error[PATH_MAX + 256];
};

struct rotate;

/* vol and vfs are borrowed and must outlive the rotate. */
int rotate_new(struct volume *vol, struct vfs *vfs, struct rotate **out);
/* Cancels a running rotation (rotate_stop) and frees.  NULL is fine. */
void rotate_free(struct rotate *r);

/*
 * Starts a rotation on its own thread: -EBUSY while one runs,
 * -ESHUTDOWN after rotate_stop; *id names it in rotate_get()'s status.
 */
int rotate_start(struct rotate *r, bool keep_old, unsigned *id);
/*
 * Stops a running rotation at its next file and waits for its thread; the
 * marker stays, so the next rotation (online or offline) finishes it.
 * No rotation starts after.  For the unmount.
 */
void rotate_stop(struct rotate *r);
/*
 * fn(arg, 0 or -errno, the version put in force) at the end of each
 * rotation, on its thread (for the integrity log).  Set before the first
 * rotate_start.
 */
void rotate_on_done(struct rotate *r,
		    void (*fn)(void *arg, int rc, uint32_t version), void *arg);

/* The last rotation's state and figures. */
void rotate_get(struct rotate *r, struct rotate_status *out);
const char *rotate_state_name(enum rotate_state st);

#endif
