/*
 * volrekey.h — rekey on a volume that no daemon has mounted: each named
 * file (or every file) copied under a fresh DEK into a temporary file
 * beside it, made durable, then renamed over it, so the old ciphertext
 * stays whole until the new one is on disk.  A marker in .phifs lists the
 * files a run has finished, so that a run killed anywhere is finished by
 * the next one without rekeying a file twice (docs/FORMAT.md, "Rekey").
 * Knows nothing of argv, terminals or FUSE.
 *
 * Functions return 0 or -errno and leave one line for a human in err.  The
 * caller holds the volume lock (volume_open with lock).
 */
#ifndef PHIFS_VOLREKEY_H
#define PHIFS_VOLREKEY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phifs/volume.h"

/* BACKING/.phifs/rekey: the files an unfinished rekey has finished. */
#define VOLREKEY_MARKER "rekey"

enum volrekey_step {
	VOLREKEY_START = 1,	/* the pass begins; estimate is known */
	VOLREKEY_COPIED,	/* a file's copy is durable beside it */
	VOLREKEY_LOGGED,	/* and named in the marker; the rename next */
	VOLREKEY_FILE,		/* a file is through, whatever its outcome */
};

struct volrekey_progress {
	enum volrekey_step step;
	bool resumed;			/* finishing a killed run */
	uint64_t estimate;		/* regular files to go through */
	uint64_t done;			/* rekeyed */
	uint64_t skipped;		/* finished by the killed run */
	uint64_t refused;		/* hard-linked: see first_refused */
	uint64_t failed;		/* not rekeyed: see first_bad */
	uint64_t bytes;			/* plaintext re-encrypted */
	uint64_t strays;		/* temporaries of a killed run removed */
	uint32_t dek_gen;		/* of the last file rekeyed */
	char first_bad[PATH_MAX];
	int first_err;
	char first_refused[PATH_MAX];
	uint64_t refused_links;		/* its link count */
};

/* Called at each step of each file, and once at VOLREKEY_START. */
typedef void (*volrekey_progress_fn)(void *arg,
				     const struct volrekey_progress *p);

/*
 * Rekeys the files at paths (npaths of them: files, or folders for every
 * file below; relative to the volume's root, or absolute inside the
 * backing directory), or every file when npaths is 0.  Paths are checked
 * before any file changes: -EXDEV for one outside the volume (or in
 * .phifs), -ENOENT, -ELOOP for a symlink on the way (never followed),
 * -EINVAL for something that is not an encrypted file.  Each file gets
 * DEK generation + 1, a fresh DEK under the active master key version, and
 * keeps its mode, owner, times and extended attributes (re-sealed for its
 * new inode).  A hard-linked file is refused (a rename would split the
 * link): -EMLINK after the pass.  Files that fail are counted and the pass
 * goes on: -EIO after it, and the marker stays for a rerun.  *p holds the
 * outcome.
 */
int volrekey_run(struct volume *v, char *const *paths, size_t npaths,
		 volrekey_progress_fn fn, void *arg,
		 struct volrekey_progress *p, char *err, size_t err_len);

#endif
