/*
 * volkeys.h — key work on a whole volume that no daemon has mounted (or,
 * for the rotation, through a daemon's volkeys_ops: rotate.h): how
 * many files each master key version wraps, counted from their headers; a
 * master key rotation (new version, every file's DEK re-wrapped, old
 * versions retired), resumable after a kill; and retiring a version no file
 * uses.  Walks the backing tree as the daemon sees it: no symlink followed,
 * the .phifs folder, symlinks and node records skipped, a hard-linked file
 * visited once.  Knows nothing of argv, terminals or FUSE.
 *
 * Functions return 0 or -errno and leave one line for a human in err.  The
 * caller holds the volume lock (volume_open with lock) for anything that
 * changes the volume.
 */
#ifndef PHIFS_VOLKEYS_H
#define PHIFS_VOLKEYS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phifs/volume.h"

/*
 * BACKING/.phifs/rotation: the version an unfinished rotation moves files
 * to (docs/FORMAT.md, "Rotation marker").
 */
#define VOLKEYS_MARKER "rotation"

/* Files per master key version; entries in the keystore's order. */
struct volkeys_count {
	size_t n;
	struct keys_version_info *versions;
	uint64_t *files;		/* files[i] use versions[i] */
	uint64_t unreadable;		/* headers that do not open */
	char first_bad[PATH_MAX];	/* the first of them, from the root */
	int first_err;			/* and why */
};

/* Counts every file's version; release c even on failure. */
int volkeys_count(const struct volume *v, struct volkeys_count *c,
		  char *err, size_t err_len);
void volkeys_count_release(struct volkeys_count *c);

enum volkeys_phase {
	VOLKEYS_PASS = 1,	/* re-wrapping files */
	VOLKEYS_RETIRING = 2,	/* the pass is complete and synced */
};

struct volkeys_progress {
	enum volkeys_phase phase;
	uint32_t target;		/* the version files move to */
	bool resumed;			/* finishing an earlier rotation */
	uint64_t estimate;		/* regular files in the tree */
	uint64_t done;			/* re-wrapped */
	uint64_t skipped;		/* already on target */
	uint64_t failed;		/* not re-wrapped: see first_bad */
	char first_bad[PATH_MAX];
	int first_err;
	uint32_t retired[8];		/* versions retired at the end */
	size_t nretired;		/* may exceed 8; the first 8 kept */
};

/* Called as the pass starts, after each file, and once at
 * VOLKEYS_RETIRING. */
typedef void (*volkeys_progress_fn)(void *arg,
				    const struct volkeys_progress *p);

/*
 * Rotates the master key: unless a marker names an unfinished rotation to
 * the active version (then that one is finished), a new version becomes
 * active, saved with its marker before any file changes; every file's DEK
 * is re-wrapped to it; then, when no file failed, the backing is synced,
 * the other decrypt-only versions are retired (left decrypt-only with
 * keep_old) and the marker removed.  A kill at any point leaves every file
 * readable, and a second call finishes the job.  *p holds the outcome;
 * -EIO when files failed (the old versions then stay decrypt-only).
 */
int volkeys_rotate(struct volume *v, bool keep_old, volkeys_progress_fn fn,
		   void *arg, struct volkeys_progress *p, char *err,
		   size_t err_len);

/*
 * How a mounted volume's daemon re-wraps (volkeys_rotate_with): rewrap(arg,
 * fd, version) instead of cfile_rewrap on the file's fd (O_RDWR, the
 * caller's), returning as it does.  renames(arg, out) tells renames
 * begun and ended so far (vfs_renames): the tree is walked again, up to
 * `passes` times in all, until a walk ran with no rename under way, since
 * a rename may move a file from a folder not walked yet into one walked
 * already.  Without such a walk older versions are not retired (a missed
 * file would lose its key) and the rotation fails with -EAGAIN, its
 * marker kept for a rerun.
 */
struct volkeys_ops {
	int (*rewrap)(void *arg, int fd, uint32_t version);
	void (*renames)(void *arg, uint64_t out[2]);
	void *arg;
	unsigned passes;
};
int volkeys_rotate_with(struct volume *v, bool keep_old,
			const struct volkeys_ops *ops, volkeys_progress_fn fn,
			void *arg, struct volkeys_progress *p, char *err,
			size_t err_len);

/*
 * Destroys the key of a decrypt-only version after counting that no file
 * uses it: -EBUSY for the active version or one that files still use (or
 * when a header cannot be read, as it might), -ENOENT unknown, -EALREADY
 * retired.
 */
int volkeys_retire(struct volume *v, uint32_t version, char *err,
		   size_t err_len);

#endif
