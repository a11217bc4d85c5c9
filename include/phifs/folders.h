/*
 * folders.h — the sealed record of a backing folder's mode, owner and
 * group (format_folder, kept in the backing xattr FORMAT_FOLDER_XATTR of
 * the folder itself): reading and writing it on a handle, and the walk
 * that gives every folder of a volume a record so that the volume can be
 * marked (KEYS_F_FOLDERS): from then on a folder without a good record
 * was tampered with.  Knows nothing of FUSE, of the mount's inodes or of
 * how a finding is told.
 *
 * Functions return 0 or -errno.  Thread-safe.
 */
#ifndef PHIFS_FOLDERS_H
#define PHIFS_FOLDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "phifs/format.h"
#include "phifs/keys.h"

/* What sealing and opening records needs. */
struct folders_key {
	const struct crypto_key *key;	/* keys_volume_key(FOLDERS_LABEL) */
	const uint8_t *volume_id;	/* FORMAT_ID_LEN bytes */
	bool as_root;	/* may chown; else a folder it may not write is
			 * made writable for the write only */
};

#define FOLDERS_LABEL "phifs folder v1"

/*
 * The record of the folder of inode ino, the object on pathfd (or bname in
 * dirfd when pathfd is -1; see backing_getxattr): 0, -ENODATA when it has
 * none, -EBADMSG / -EUCLEAN / -EPROTO when the one it has does not open
 * for it, or the backing's error.
 */
int folders_read(const struct folders_key *k, int pathfd, int dirfd,
		 const char *bname, uint64_t ino, struct format_folder *out);
/* Seals f as the record of the folder on pathfd, of inode ino. */
int folders_write(const struct folders_key *k, int pathfd, uint64_t ino,
		  const struct format_folder *f);
/* A record of the backing's mode and owner in st, with a new random ID. */
int folders_fresh(const struct stat *st, struct format_folder *f);
/* The backing's mode and owner in st, as a record holds them. */
struct format_attrs folders_backing(const struct stat *st);
/* Gives the folder on pathfd mode and, with owner, owner and group a. */
int folders_put_back(int pathfd, const struct format_attrs *a, bool owner);

/* What a walk did, for the operator. */
struct folders_tally {
	uint64_t folders;	/* walked */
	uint64_t sealed;	/* had no record: given the backing's */
	uint64_t replaced;	/* had one that did not open: the same */
	uint64_t restored;	/* backing put back to the record's */
	uint64_t failed;	/* could not be read or sealed */
};

/*
 * Walks every folder under the backing root rootfd (the meta folder left
 * out) and gives each that has no good record one of the backing's mode
 * and owner, trust on first use; a good record wins over the backing,
 * which is put back.  Every folder is tried; the first error is returned.
 */
int folders_adopt(const struct folders_key *k, int rootfd,
		  struct folders_tally *t);

/*
 * For a new volume (phifsctl init): seals the record of the root folder
 * rootfd and sets KEYS_F_FOLDERS in ks, which the caller then saves.
 */
int folders_init(struct keys_store *ks, int rootfd, bool as_root);

#endif
