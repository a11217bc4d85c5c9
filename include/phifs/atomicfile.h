/*
 * atomicfile.h — replace or create a small file in a folder so that a crash
 * or failure leaves the old file or the new one, never a mix: the Git
 * lockfile way (temp file beside the target, write, fsync, rename, fsync
 * the folder).  Names are resolved relative to a folder fd and are single
 * components, so no symlink on the way is followed.  Knows nothing of what
 * the bytes mean.
 */
#ifndef PHIFS_ATOMICFILE_H
#define PHIFS_ATOMICFILE_H

#include <stddef.h>
#include <sys/types.h>

/* The temp file is the target's name with this suffix, in the same folder. */
#define ATOMICFILE_SUFFIX ".tmp"

/*
 * Writes len bytes of buf as the whole content of name in dirfd, with mode
 * exactly (umask does not apply), replacing whatever name was (a symlink
 * there is replaced, not followed).  A temp file left at name.tmp by a
 * crash is removed first; writers of one target must be serialised by the
 * caller (the keystore's by the volume lock).
 *
 * Returns 0, or -errno: -EINVAL if name is empty or holds a '/', -EBUSY if
 * another writer took over the temp name meanwhile, or the error of the
 * step that failed.  On any failure before the rename, name is untouched
 * and the temp file gone.  Only if the last step (fsync of the folder)
 * fails is the new content already in place, though perhaps not durable.
 * dirfd must be a real open folder (not O_PATH), for that fsync.
 */
int atomicfile_write(int dirfd, const char *name, const void *buf, size_t len,
		     mode_t mode);

/*
 * As atomicfile_write, but never replaces: -EEXIST if name exists in dirfd
 * (as anything, a dangling symlink included), checked again at the rename,
 * so that a file appearing meanwhile is not overwritten either.
 */
int atomicfile_create(int dirfd, const char *name, const void *buf,
		      size_t len, mode_t mode);

#endif
