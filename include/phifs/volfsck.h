/*
 * volfsck.h — checks a whole volume that no daemon has mounted: every file
 * header and every block of every encrypted file authenticates, and so do
 * symlink targets, node records and sealed extended attributes; what a
 * crash or a change behind phifs's back left (a refused header slot, a
 * size tag that disagrees, a mode or owner not the header's, an unfinished
 * rewrite, a rekey's temporary copy) is told too.  Walks the backing tree
 * as the daemon sees it (volkeys_impl.h).  Knows nothing of argv or FUSE.
 *
 * Reads only, with one exception cfile_open makes: a backing file's mode
 * or owner that is not its header's is put back (docs/FORMAT.md).
 */
#ifndef PHIFS_VOLFSCK_H
#define PHIFS_VOLFSCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phifs/volume.h"

/* What the walk saw and found. */
struct volfsck_report {
	uint64_t files, bytes;		/* encrypted files, plaintext bytes */
	uint64_t folders, symlinks, records, others, xattrs;
	uint64_t problems;		/* something does not authenticate or
					 * cannot be read */
	uint64_t notes;			/* readable, but worth telling */
};

/*
 * One finding: `problem` when something fails (the volume is damaged or
 * was tampered with there), else a note; path from the volume's root ("."
 * for the root), what in one line.
 */
typedef void (*volfsck_fn)(void *arg, bool problem, const char *path,
			   const char *what);

/*
 * Checks v (the caller holds its lock: volume_open with lock), calling fn
 * for each finding.  0 when the walk finished (rep->problems says how it
 * went), or -errno when it could not go on, with the path where in err.
 */
int volfsck_run(const struct volume *v, volfsck_fn fn, void *arg,
		struct volfsck_report *rep, char *err, size_t err_len);

/*
 * After a restore that gave folders new backing inode numbers (a copy file
 * by file), every folder record fails; this gives each folder without a
 * good record one of the backing's mode and owner, as a first mount of an
 * old volume does (folders_adopt: trust on first use, so only for a backing
 * one trusts), and puts back the backing of those whose record is good.
 * The caller holds the lock.  0 or -errno with err.
 */
struct folders_tally;
int volfsck_adopt_folders(const struct volume *v, struct folders_tally *t,
			  char *err, size_t err_len);

#endif
