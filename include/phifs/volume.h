/*
 * volume.h — an unlocked volume: its backing directory, its keystore and,
 * for a daemon, the lock that keeps a second daemon off it.  What the daemon
 * and phifsctl both need before touching a file.  Knows nothing of FUSE.
 *
 * Functions return 0 or -errno and leave one line for a human in err.
 */
#ifndef PHIFS_VOLUME_H
#define PHIFS_VOLUME_H

#include <stdbool.h>
#include <stddef.h>

#include "phifs/backing.h"
#include "phifs/cfile.h"
#include "phifs/keys.h"

#define VOLUME_LOCK "lock"
#define VOLUME_JOURNAL "journal"

struct volume {
	struct backing backing;
	int metafd;		/* BACKING/.phifs */
	int lockfd;		/* -1 unless locked */
	int journalfd;		/* BACKING/.phifs/journal */
	_Atomic bool journals;	/* it may hold one (cfile_volume) */
	struct keys_store *keys;
	struct crypto_key *size_key;	/* size tags (format.h) */
	struct cfile_volume cv;	/* points into keys */
};

/*
 * Opens the volume at dir and unlocks its keystore with the key source
 * spec.  With `lock`, also takes BACKING/.phifs/lock (exclusive, held until
 * volume_close) and writes the pid into it: -EBUSY if another process holds
 * it, with its pid in err.
 */
int volume_open(const char *dir, const char *keyspec, bool lock,
		struct volume **out, char *err, size_t err_len);
void volume_close(struct volume *v);

/*
 * A keystore swapped for another volume's (one the same key unlocks) would
 * mount, and every file would then fail: file headers name their volume in
 * clear, so this reads a few near the root (up to VOLUME_SAMPLE).  0, or
 * -EXDEV when every header read names another volume, with err naming
 * both volume IDs.  A volume with no file to read passes.
 */
#define VOLUME_SAMPLE 8
int volume_check_files(const struct volume *v, char *err, size_t err_len);

#endif
