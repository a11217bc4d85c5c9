/*
 * volume.h — an unlocked volume: its backing directory, its keystore and,
 * for a daemon, the lock that keeps a second daemon off it.  What the daemon
 * and phifsctl both need before touching a file.  Knows nothing of FUSE.
 *
 * Functions return 0 or -errno and leave one line for a human in err.
 */
#ifndef PHIFS_VOLUME_H
#define PHIFS_VOLUME_H

#include <pthread.h>
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
	/*
	 * The keystore in force: an immutable snapshot, read without a lock
	 * (cv.kek loads it once a call).  volume_keys_change() publishes a
	 * new one; the ones before stay in `old` until volume_close, as a
	 * worker may still hold a KEK they own.
	 */
	struct keys_store *_Atomic keys;
	struct volume_keys_old *old;	/* under keys_lock */
	pthread_mutex_t keys_lock;	/* one change at a time */
	struct crypto_key *size_key;	/* size tags (format.h) */
	struct cfile_volume cv;	/* kek_arg is the volume */
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
 * Changes the keystore while workers may read it: change(copy, arg) on a
 * keys_copy() of the one in force, which is then saved (keys_save) and
 * only then published, and cv.active_version after it, so that a worker
 * that sees the new active version finds its KEK.  A failed change or save
 * publishes nothing.  One change at a time (keys_lock).  0 or -errno with
 * err; change's own error is passed on, its line left as it wrote it.
 */
int volume_keys_change(struct volume *v,
		       int (*change)(struct keys_store *ks, void *arg,
				     char *err, size_t err_len),
		       void *arg, char *err, size_t err_len);
/* cfile_volume.kek over the snapshot in force; arg is the volume. */
const struct crypto_key *volume_kek(void *arg, uint32_t version);

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
