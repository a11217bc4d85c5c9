/*
 * format.h — the on-disk layout of one encrypted file: the two-slot header
 * region, the sealed 4096-byte blocks, the hole maps of sparse files and all
 * offset maths.  Pure: no I/O, no paths, no locks.  docs/FORMAT.md is the
 * byte-for-byte description; this module is its only implementation.
 *
 * Backing file:  [ header region: slot 0 @0, slot 1 @512 ]  then groups of
 * FORMAT_GROUP_BLOCKS data blocks, each group followed by its map block.
 * Every stored block is nonce(12) || ciphertext(4096) || tag(16); the last
 * block of a file is stored whole, its tail past the size being zeros.
 */
#ifndef PHIFS_FORMAT_H
#define PHIFS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "phifs/crypto.h"

#define FORMAT_VERSION 1
#define FORMAT_ID_LEN 16
#define FORMAT_BLOCK_SIZE 4096u
#define FORMAT_BLOCK_OVERHEAD (CRYPTO_GCM_NONCE_LEN + CRYPTO_GCM_TAG_LEN)
#define FORMAT_STORED_BLOCK (FORMAT_BLOCK_SIZE + FORMAT_BLOCK_OVERHEAD)
#define FORMAT_SLOT_SIZE 256u
#define FORMAT_SLOT_STRIDE 512u
#define FORMAT_HEADER_SIZE 1024u
/* Data blocks per group; one map block (one bit per data block) follows. */
#define FORMAT_GROUP_BLOCKS (FORMAT_BLOCK_SIZE * 8u)
#define FORMAT_AAD_LEN (2 * FORMAT_ID_LEN + 4 + 8)

/* Header flags. */
#define FORMAT_F_SPARSE 0x0001u	/* hole maps are in force */
#define FORMAT_F_TREE 0x0002u	/* with SPARSE: maps form a tree, and a
				 * map the tree says is absent is a hole */
#define FORMAT_F_ATTRS 0x0004u	/* the slot authenticates the file's
				 * mode, owner and group (format_attrs) */
#define FORMAT_F_KNOWN (FORMAT_F_SPARSE | FORMAT_F_TREE | FORMAT_F_ATTRS)

/*
 * A file's permission bits (at most 07777), owner and group, as a header
 * with FORMAT_F_ATTRS authenticates them: these win over the backing
 * file's own, which anyone with write access to the backing can change.
 */
struct format_attrs {
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
};

/*
 * The map tree of a TREE file (docs/FORMAT.md, "Map tree"): node (0, g) is
 * the map of group g; node (l, i) for l = 1, 2 is a bitmap of which nodes
 * (l - 1, i * FANOUT + c) exist.  Every top node below the size exists.
 */
#define FORMAT_TREE_FANOUT FORMAT_GROUP_BLOCKS
#define FORMAT_TREE_LEVELS 3u

/*
 * Largest plaintext size the format allows: the backing offset of every
 * stored block, map blocks included, fits in an off_t.
 */
extern const uint64_t FORMAT_MAX_SIZE;
/* The same for a TREE file, whose nodes take a little more room. */
extern const uint64_t FORMAT_MAX_SIZE_TREE;

/* The fields of one header slot (docs/FORMAT.md, "Header slot"). */
struct format_header {
	uint16_t version;
	uint16_t flags;
	uint32_t key_version;	/* master key version that wrapped the DEK */
	uint64_t seq;		/* slot sequence number: higher wins */
	uint8_t volume_id[FORMAT_ID_LEN];
	uint8_t file_id[FORMAT_ID_LEN];
	uint32_t dek_gen;	/* DEK generation, bumped by rekey */
	uint64_t size;		/* authenticated plaintext size */
	uint8_t wrapped_dek[CRYPTO_WRAPPED_LEN];
	struct format_attrs attrs;	/* with FORMAT_F_ATTRS, else zeros */
};

/*
 * Keys of one open file, derived from its DEK: one for blocks, one for the
 * header MAC.  Owns both keys.
 */
struct format_fkeys {
	uint8_t volume_id[FORMAT_ID_LEN];
	uint8_t file_id[FORMAT_ID_LEN];
	uint32_t dek_gen;
	struct crypto_key *block_key;
	struct crypto_key *mac_key;
};

/* Returns the KEK of a master key version, or NULL if unknown or retired. */
typedef const struct crypto_key *(*format_kek_fn)(void *arg, uint32_t version);

/* --- offset maths (all total, no overflow for sizes <= FORMAT_MAX_SIZE) --- */

/* Number of blocks a file of `size` bytes has: ceil(size / 4096). */
uint64_t format_nblocks(uint64_t size);
/* Backing offset of data block `index` (the layout of dense files and of
 * SPARSE files without TREE; a TREE file agrees for group 0 only). */
uint64_t format_block_offset(uint64_t index);
/* Backing offset of the map block of group `group` (the same layout). */
uint64_t format_map_offset(uint64_t group);
/* Backing offset of data block `index` in a file with header flags `flags`. */
uint64_t format_block_offset_in(uint16_t flags, uint64_t index);
/* Backing offset of tree node (level, i) in such a file; level 0 is the map
 * of group i, the only level a file without TREE has. */
uint64_t format_node_offset(uint16_t flags, unsigned level, uint64_t i);
/* The largest plaintext size a file with header flags `flags` may have. */
uint64_t format_max_size(uint16_t flags);
/* Backing size of a dense file of `size` bytes (header + its blocks). */
uint64_t format_backing_size(uint64_t size);

/* --- header slots --- */

/*
 * Derives the file keys from a DEK.  *out is filled only on success;
 * release it with format_fkeys_release().
 */
int format_fkeys_init(struct format_fkeys *out, const struct crypto_key *dek,
		      const uint8_t volume_id[FORMAT_ID_LEN],
		      const uint8_t file_id[FORMAT_ID_LEN], uint32_t dek_gen);
void format_fkeys_release(struct format_fkeys *fk);

/* Wraps dek into h->wrapped_dek under kek, binding h's ids, version, gen. */
int format_dek_wrap(struct format_header *h, const struct crypto_key *kek,
		    const struct crypto_key *dek);
/* Unwraps h->wrapped_dek; -EKEYREJECTED if kek is not the one. */
int format_dek_unwrap(const struct format_header *h,
		      const struct crypto_key *kek, struct crypto_key *dek);

/* Encodes h into a slot and MACs it with fk->mac_key. */
int format_slot_encode(const struct format_header *h,
		       const struct format_fkeys *fk,
		       uint8_t slot[FORMAT_SLOT_SIZE]);
/*
 * Parses a slot without authenticating it: -EUCLEAN if it is not a phifs
 * slot (bad magic, reserved bytes set), -EPROTO for an unknown version or
 * flag.  Fields are trustworthy only after format_slot_verify().
 */
int format_slot_parse(const uint8_t slot[FORMAT_SLOT_SIZE],
		      struct format_header *h);
/* Checks the slot MAC: 0 or -EUCLEAN. */
int format_slot_verify(const uint8_t slot[FORMAT_SLOT_SIZE],
		       const struct format_fkeys *fk);

/*
 * Which slot format_header_load chose, and the other slot when it was
 * refused and might have been the newer: it parsed with a higher seq and
 * did not authenticate, or did not parse at all (seq unknown).  A refused
 * slot that parsed with a lower seq is never tried, so never named.
 */
struct format_pick {
	int slot;		/* holds the header chosen */
	int refused;		/* the other slot, or -1 */
	int refused_rc;		/* why: as format_header_load's errors */
	bool refused_seq_known;	/* it parsed: refused_seq is its claim */
	uint64_t refused_seq;	/* unauthenticated */
};

/*
 * Picks the header from a header region: of the slots that parse, unwrap
 * and verify, the one with the higher seq.  volume_id is the volume the file
 * must belong to.  On success fills *h, *fk (caller releases) and *pick.
 * Errors, most telling first when no slot is good: -EPROTO (newer format),
 * -ENOKEY (master key version unknown or retired), -EKEYREJECTED (unwrap
 * failed: wrong key), -EUCLEAN (corrupt or foreign header).
 */
int format_header_load(const uint8_t region[FORMAT_HEADER_SIZE],
		       const uint8_t volume_id[FORMAT_ID_LEN],
		       format_kek_fn kek, void *kek_arg,
		       struct format_header *h, struct format_fkeys *fk,
		       struct format_pick *pick);

/*
 * A header moved to another master key version: the two slots to write,
 * slot[0] at idx[0] first, then slot[1] at idx[1], each whole before the
 * next begins.  The first goes over the slot that lost, so whatever stops
 * the second leaves the file opening under the new version; the second
 * replaces the slot that still wrapped the DEK under the old version, so
 * that once both are written the old KEK opens nothing in this file.
 */
struct format_rewrap {
	int idx[2];
	uint8_t slot[2][FORMAT_SLOT_SIZE];
	uint32_t from;		/* the version the DEK was wrapped under */
};

/*
 * Re-wraps the DEK of the header in region under new_kek, the KEK of
 * master key version `version`: the same header (size, flags, DEK) with
 * seq + 1 and seq + 2.  -EALREADY when both slots already hold it under
 * that version; otherwise format_header_load()'s errors.  Pure.
 */
int format_header_rewrap(const uint8_t region[FORMAT_HEADER_SIZE],
			 const uint8_t volume_id[FORMAT_ID_LEN],
			 format_kek_fn kek, void *kek_arg, uint32_t version,
			 const struct crypto_key *new_kek,
			 struct format_rewrap *rw);

/* --- blocks --- */

/*
 * Seals one 4096-byte plaintext block as data block `index`.  nonce must be
 * fresh from crypto_random() (callers draw many at once: one RNG call per
 * block costs more than the AES).  out may not overlap pt.
 */
int format_block_seal(const struct format_fkeys *fk, uint64_t index,
		      const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
		      const uint8_t pt[FORMAT_BLOCK_SIZE],
		      uint8_t out[FORMAT_STORED_BLOCK]);
/* Opens data block `index`: 0, or -EBADMSG (pt is then zeroed). */
int format_block_open(const struct format_fkeys *fk, uint64_t index,
		      const uint8_t in[FORMAT_STORED_BLOCK],
		      uint8_t pt[FORMAT_BLOCK_SIZE]);
/* The same for the map block of group `group`. */
int format_map_seal(const struct format_fkeys *fk, uint64_t group,
		    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
		    const uint8_t map[FORMAT_BLOCK_SIZE],
		    uint8_t out[FORMAT_STORED_BLOCK]);
int format_map_open(const struct format_fkeys *fk, uint64_t group,
		    const uint8_t in[FORMAT_STORED_BLOCK],
		    uint8_t map[FORMAT_BLOCK_SIZE]);
/* The same for tree node (level, i), sealed as FORMAT_NODE_INDEX(level, i). */
int format_node_seal(const struct format_fkeys *fk, unsigned level,
		     uint64_t i, const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
		     const uint8_t node[FORMAT_BLOCK_SIZE],
		     uint8_t out[FORMAT_STORED_BLOCK]);
int format_node_open(const struct format_fkeys *fk, unsigned level,
		     uint64_t i, const uint8_t in[FORMAT_STORED_BLOCK],
		     uint8_t node[FORMAT_BLOCK_SIZE]);

/* --- the journal of in-place rewrites (docs/FORMAT.md, "Journal") --- */

/* Most blocks one journal record carries. */
#define FORMAT_JOURNAL_MAX 64u
/* Stored-block index of a map block, as journal records name them. */
#define FORMAT_MAP_INDEX(group) ((1ULL << 63) | (group))
/* ... and of tree node (level, i); level 0 is FORMAT_MAP_INDEX(i). */
#define FORMAT_NODE_INDEX(level, i) \
	((1ULL << 63) | (uint64_t)(level) << 56 | (i))

/*
 * Backing offset of a stored block in a file with header flags `flags`: a
 * data block, or FORMAT_NODE_INDEX(level, i).  0 (the header's place, never
 * a block's) for a node index that file cannot have.
 */
uint64_t format_stored_offset(uint16_t flags, uint64_t stored_index);
/* Opens a stored block, data or map, by its stored index. */
int format_stored_open(const struct format_fkeys *fk, uint64_t stored_index,
		       const uint8_t in[FORMAT_STORED_BLOCK],
		       uint8_t pt[FORMAT_BLOCK_SIZE]);

/*
 * Seals the head of a journal record: the stored indices of the n blocks
 * that follow it (n <= FORMAT_JOURNAL_MAX).  open returns -EBADMSG unless
 * the head authenticates for this file and is well formed.
 */
int format_journal_seal(const struct format_fkeys *fk,
			const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
			const uint64_t *index, unsigned n,
			uint8_t out[FORMAT_STORED_BLOCK]);
int format_journal_open(const struct format_fkeys *fk,
			const uint8_t in[FORMAT_STORED_BLOCK],
			uint64_t index[FORMAT_JOURNAL_MAX], unsigned *n);

/* --- size tags --- */

/*
 * A closed file's backing xattr FORMAT_SIZE_XATTR may hold its committed
 * size, masked and tagged together with its authenticated mode, owner and
 * group (tag version 2): size XOR pad (8) || HMAC-SHA256(size key,
 * "phifs size v2" || backing inode number (8) || size (8) || mode (4) ||
 * uid (4) || gid (4)), first 16 bytes; pad = first 8 bytes of
 * HMAC-SHA256(size key, "phifs size pad v1" || inode number).  stat checks
 * it against the backing's own mode and owner: it verifies only when they
 * are the authenticated ones, so a tag that verifies vouches for the size
 * and for them.  One that does not (forged, copied from another inode,
 * a version 1 tag, absent, or a mode or owner changed in the backing)
 * sends stat to the header.
 */
#define FORMAT_SIZE_XATTR "user.phifs.size"
#define FORMAT_SIZE_TAG_LEN 24u

int format_size_tag(const struct crypto_key *key, uint64_t ino, uint64_t size,
		    const struct format_attrs *a,
		    uint8_t out[FORMAT_SIZE_TAG_LEN]);
/* 0 and *size, or -EBADMSG. */
int format_size_untag(const struct crypto_key *key, uint64_t ino,
		      const struct format_attrs *a, const uint8_t *tag,
		      size_t len, uint64_t *size);

/* --- extended attributes --- */

/*
 * A caller's extended attribute (a user.* name and its value) is stored as
 * one backing xattr of the same object, name and value both sealed:
 *   backing name  FORMAT_XATTR_PREFIX || 32 lower-case hex digits of the
 *                 first 16 bytes of HMAC-SHA256(name key,
 *                 "phifs xattr name v1" || backing inode number (8) || name)
 *   value         nonce(12) || AES-256-GCM(key, name length u8 || name ||
 *                 value) || tag(16),
 *   AAD           "phifs xattr v1" || volume ID || backing inode number (8)
 *                 || the 32 hex digits of the backing name.
 * An attribute copied to another inode, another volume or another backing
 * name, or altered, does not open.  docs/FORMAT.md, "Extended attributes".
 */
#define FORMAT_XATTR_PREFIX "user.phifs.x."
#define FORMAT_XATTR_HASH_HEX 32u
/* Room for a backing name, with its NUL. */
#define FORMAT_XATTR_BNAME_MAX (sizeof(FORMAT_XATTR_PREFIX) + \
				FORMAT_XATTR_HASH_HEX)
/* Linux's limits on a name (XATTR_NAME_MAX) and a value (XATTR_SIZE_MAX). */
#define FORMAT_XATTR_NAME_MAX 255u
#define FORMAT_XATTR_VALUE_MAX 65536u
/* Sealed bytes beyond the name and the value. */
#define FORMAT_XATTR_OVERHEAD (CRYPTO_GCM_NONCE_LEN + 1u + CRYPTO_GCM_TAG_LEN)
#define FORMAT_XATTR_SEALED_MAX (FORMAT_XATTR_OVERHEAD + \
				 FORMAT_XATTR_NAME_MAX + FORMAT_XATTR_VALUE_MAX)

/* The backing name of attribute `name` of backing inode ino.  -ERANGE for
 * an empty name or one past FORMAT_XATTR_NAME_MAX. */
int format_xattr_bname(const struct crypto_key *name_key, uint64_t ino,
		       const char *name, char out[FORMAT_XATTR_BNAME_MAX]);
/* True when a backing xattr name has the shape of a sealed attribute's. */
bool format_xattr_is(const char *bname);
/*
 * Seals name and its vlen-byte value for backing name bname (from
 * format_xattr_bname) into out, which holds FORMAT_XATTR_OVERHEAD +
 * strlen(name) + vlen bytes; returns that length.  -ERANGE for a bad name,
 * -E2BIG past FORMAT_XATTR_VALUE_MAX.
 */
ssize_t format_xattr_seal(const struct crypto_key *key,
			  const uint8_t volume_id[FORMAT_ID_LEN], uint64_t ino,
			  const char *bname, const char *name,
			  const void *value, size_t vlen, uint8_t *out);
/*
 * Opens the len sealed bytes found under bname: the name, NUL-terminated,
 * into name, and the value into value (room for len -
 * FORMAT_XATTR_OVERHEAD bytes); returns the value's length.  -EBADMSG when
 * they do not authenticate (forged, altered, moved from another inode,
 * volume or backing name) or are malformed.
 */
ssize_t format_xattr_open(const struct crypto_key *key,
			  const uint8_t volume_id[FORMAT_ID_LEN], uint64_t ino,
			  const char *bname, const uint8_t *in, size_t len,
			  char name[FORMAT_XATTR_NAME_MAX + 1], uint8_t *value);

/* --- symlink targets --- */

/* Longest target a symlink may have: its sealed form must fit PATH_MAX. */
#define FORMAT_SYMLINK_MAX 3000u
/* Room for a sealed target, with its NUL. */
#define FORMAT_SYMLINK_SEALED_MAX 4096u

/*
 * A symlink's target as the backing directory stores it: "phifs1:" and the
 * unpadded base64url of nonce(12) || AES-256-GCM(key, target) || tag(16),
 * AAD "phifs symlink v1" || volume ID.  A symlink planted in the backing
 * directory does not open, so it can never be followed through the mount.
 * seal returns -ENAMETOOLONG past FORMAT_SYMLINK_MAX; open returns -EBADMSG
 * for anything it did not seal, and writes a NUL-terminated target.
 */
int format_symlink_seal(const struct crypto_key *key,
			const uint8_t volume_id[FORMAT_ID_LEN],
			const char *target,
			char out[FORMAT_SYMLINK_SEALED_MAX]);
int format_symlink_open(const struct crypto_key *key,
			const uint8_t volume_id[FORMAT_ID_LEN],
			const char *sealed, char *target, size_t max);
/* The target's length, from the sealed form's length alone (for stat). */
size_t format_symlink_length(size_t sealed_len);

/* --- node records --- */

/*
 * A device node or a long symlink, stored as the whole content of a regular
 * backing file that has the sticky bit (S_ISVTX) set, the mark that says
 * "look inside":
 *   "PHIFSREC" || version u16 (1) || kind u16 || nonce(12) ||
 *   AES-256-GCM(key, payload) || tag(16),
 * AAD "phifs record v1" || volume ID || the first 12 bytes.  The payload is
 * the target of a symlink (FORMAT_SYMLINK_MAX + 1 .. FORMAT_RECORD_TARGET_MAX
 * bytes when made, 1 .. FORMAT_RECORD_TARGET_MAX accepted), or major u32 ||
 * minor u32 of a device.  docs/FORMAT.md, "Node records".
 */
#define FORMAT_RECORD_VERSION 1
#define FORMAT_RECORD_HEAD 12u	/* magic, version, kind */
#define FORMAT_RECORD_OVERHEAD \
	(FORMAT_RECORD_HEAD + CRYPTO_GCM_NONCE_LEN + CRYPTO_GCM_TAG_LEN)
/* PATH_MAX - 1: the longest target POSIX lets a symlink have. */
#define FORMAT_RECORD_TARGET_MAX 4095u
#define FORMAT_RECORD_MAX (FORMAT_RECORD_OVERHEAD + FORMAT_RECORD_TARGET_MAX)

enum format_record_kind {
	FORMAT_RECORD_SYMLINK = 1,
	FORMAT_RECORD_CHR = 2,
	FORMAT_RECORD_BLK = 3,
};

struct format_record {
	enum format_record_kind kind;
	uint32_t major, minor;	/* devices */
	size_t len;		/* symlinks: the target's length */
	char target[FORMAT_RECORD_TARGET_MAX + 1];	/* NUL-terminated */
};

/* True when buf (len bytes read from a file's start) begins with the
 * record magic: a record, authentic or not, rather than an encrypted file. */
bool format_record_is(const uint8_t *buf, size_t len);
/*
 * Seals r into out and returns its length.  -ENAMETOOLONG for a target
 * longer than FORMAT_RECORD_TARGET_MAX, -EINVAL for an empty one or an
 * unknown kind.
 */
ssize_t format_record_seal(const struct crypto_key *key,
			   const uint8_t volume_id[FORMAT_ID_LEN],
			   const struct format_record *r,
			   uint8_t out[FORMAT_RECORD_MAX]);
/*
 * Opens the len bytes of a record into *r (written only on success):
 * -EUCLEAN when they are not a well-formed record, -EPROTO for a newer
 * version, -EBADMSG when they fail authentication (forged, altered, from
 * another volume or under another key).
 */
int format_record_open(const struct crypto_key *key,
		       const uint8_t volume_id[FORMAT_ID_LEN],
		       const uint8_t *in, size_t len, struct format_record *r);

/* --- folder records --- */

/*
 * A folder's permission bits, owner and group, sealed into a backing
 * xattr of the backing folder (FORMAT_FOLDER_XATTR), 68 bytes:
 *   "PHIFSDIR" || version u16 (1) || flags u16 (0) || nonce(12) ||
 *   AES-256-GCM(key, mode u32 || uid u32 || gid u32 || folder ID(16)) ||
 *   tag(16),
 * AAD "phifs folder v1" || volume ID || backing inode number u64 || the
 * first 12 bytes.  The inode number binds a record to its folder, so one
 * copied from another folder fails, and a rename needs no new record.
 * docs/FORMAT.md, "Folder records".
 */
#define FORMAT_FOLDER_XATTR "user.phifs.dir"
#define FORMAT_FOLDER_VERSION 1
#define FORMAT_FOLDER_LEN 68u

struct format_folder {
	struct format_attrs attrs;
	uint8_t id[FORMAT_ID_LEN];	/* random at creation */
};

/* Seals f for the folder of inode ino into out; -EINVAL past mode 07777. */
int format_folder_seal(const struct crypto_key *key,
		       const uint8_t volume_id[FORMAT_ID_LEN], uint64_t ino,
		       const struct format_folder *f,
		       uint8_t out[FORMAT_FOLDER_LEN]);
/*
 * Opens a record into *f (written only on success): -EUCLEAN when the len
 * bytes are not a well-formed record, -EPROTO for a newer version or an
 * unknown flag, -EBADMSG when it fails authentication (forged, altered,
 * copied from another folder or volume).
 */
int format_folder_open(const struct crypto_key *key,
		       const uint8_t volume_id[FORMAT_ID_LEN], uint64_t ino,
		       const uint8_t *in, size_t len, struct format_folder *f);

/* Bit of data block `index` in its group's map: set = stored, clear = hole. */
static inline bool format_map_test(const uint8_t *map, uint64_t index)
{
	uint64_t j = index % FORMAT_GROUP_BLOCKS;

	return map[j / 8] >> (j % 8) & 1;
}

static inline void format_map_set(uint8_t *map, uint64_t index, bool on)
{
	uint64_t j = index % FORMAT_GROUP_BLOCKS;
	uint8_t bit = (uint8_t)(1u << (j % 8));

	map[j / 8] = on ? (uint8_t)(map[j / 8] | bit) : (uint8_t)(map[j / 8] & ~bit);
}

/* Little-endian field helpers, shared with the keystore codec. */
static inline void format_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void format_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void format_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t format_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t format_get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t format_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#endif
