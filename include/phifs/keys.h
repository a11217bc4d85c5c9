/*
 * keys.h — key sources and the volume keystore.
 *
 * Hierarchy: key source -> keyslot -> volume root key -> master key versions
 * (KEKs) -> per-file DEKs (those live in file headers, see format.h).  The
 * keystore holds every key wrapped; docs/FORMAT.md gives its bytes.  This
 * module knows nothing of files, FUSE or policy.
 *
 * Functions return 0 or -errno.  Where an `err` buffer is taken, a failure
 * also leaves there one line for a human naming the thing at fault (never
 * key material).  A struct keys_store is not thread-safe for changes; after
 * loading, concurrent keys_kek() calls are safe.  A daemon that changes
 * its keys while workers read them changes a keys_copy() and publishes
 * that (volume_keys_change()), never the store the workers read.
 */
#ifndef PHIFS_KEYS_H
#define PHIFS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "phifs/crypto.h"
#include "phifs/format.h"

#define KEYS_DIR ".phifs"
#define KEYS_FILE "keystore"
#define KEYS_ERR_LEN 256
#define KEYS_PASSPHRASE_MAX 1024

enum keys_secret_kind {
	KEYS_SECRET_RAW = 1,		/* 32 key bytes, from file: or cmd: */
	KEYS_SECRET_PASSPHRASE = 2,	/* stretched with scrypt */
};

/* A key as a key source gives it; lives in secmem. */
struct keys_secret {
	enum keys_secret_kind kind;
	size_t len;
	uint8_t bytes[KEYS_PASSPHRASE_MAX];
};

/*
 * Obtains a secret from a key source spec: "file:PATH" (a regular file of
 * 32 raw bytes or 64 hex digits plus an optional newline; refused if group-
 * or other-accessible), "cmd:COMMAND" (COMMAND split on blanks, run without
 * a shell, its stdout read as for file:, stopped with -ETIMEDOUT past
 * keys_source_set_timeout()) or "passphrase" (prompt on the terminal, else
 * one line of stdin).  *out is written only on success.
 */
int keys_source_load(const char *spec, struct keys_secret **out, char *err,
		     size_t err_len);

/*
 * As keys_source_load(), for a key source about to open a new key slot: a
 * passphrase is asked twice on a terminal ("New passphrase: ", then
 * again; the two must match) and refused (-EINVAL) when
 * keys_passphrase_weak() finds it weak.
 */
int keys_source_load_new(const char *spec, struct keys_secret **out,
			 char *err, size_t err_len);
#define KEYS_PASSPHRASE_MIN 12
/*
 * Why a passphrase is too weak to open a new slot (under
 * KEYS_PASSPHRASE_MIN bytes, one character repeated, or in a short list of
 * common ones), or NULL; NULL for raw keys.
 */
const char *keys_passphrase_weak(const struct keys_secret *s);

/* How long a cmd: key source may take by default, in ms. */
#define KEYS_SOURCE_TIMEOUT_MS 30000
/*
 * Sets how long a cmd: key command may take, in ms (<= 0: the default),
 * from its start to its end and the end of its output; past it,
 * keys_source_load() stops it and fails with -ETIMEDOUT.  For the whole
 * process: call before any thread loads a key.
 */
void keys_source_set_timeout(int ms);
/* A raw secret from 32 bytes (tests, keygen).  NULL on ENOMEM. */
struct keys_secret *keys_secret_raw(const uint8_t key[CRYPTO_KEY_LEN]);
struct keys_secret *keys_secret_passphrase(const char *pass);
void keys_secret_free(struct keys_secret *s);

/*
 * Writes a new random key to path (O_EXCL, mode 0400) as 64 hex digits and a
 * newline.  -EEXIST if the file exists.
 */
int keys_keygen(const char *path, char *err, size_t err_len);

enum keys_state {
	KEYS_ACTIVE = 1,	/* wraps new file keys */
	KEYS_DECRYPT_ONLY = 2,	/* unwraps existing file keys only */
	KEYS_RETIRED = 3,	/* destroyed; kept as a record */
};

struct keys_version_info {
	uint32_t version;
	enum keys_state state;
};

struct keys_slot_info {
	uint32_t id;
	enum keys_secret_kind kind;
};

/* scrypt cost of passphrase slots; NULL means the default (2^17, 8, 1). */
struct keys_params {
	unsigned scrypt_log_n;
	uint32_t scrypt_r;
	uint32_t scrypt_p;
};

struct keys_store;

/*
 * A new volume's keys: random volume ID and root key, master key version 1
 * active, an Ed25519 audit key pair, and slot 0 opened by `s`.
 */
int keys_create(const struct keys_secret *s, const struct keys_params *p,
		struct keys_store **out);

/*
 * Reads and unlocks KEYS_FILE in dirfd (the volume's .phifs folder).
 * -ENOENT no keystore, -EUCLEAN corrupt (checksum or structure),
 * -EPROTO newer format, -EKEYREJECTED no slot opens with this key.
 */
int keys_load(int dirfd, const struct keys_secret *s, struct keys_store **out,
	      char *err, size_t err_len);
/* Replaces KEYS_FILE in dirfd atomically: temp, fsync, rename, fsync dir. */
int keys_save(const struct keys_store *ks, int dirfd, char *err,
	      size_t err_len);

/* The pure codec under load/save; *buf is malloc'd, caller frees. */
int keys_encode(const struct keys_store *ks, uint8_t **buf, size_t *len);
int keys_decode(const uint8_t *buf, size_t len, const struct keys_secret *s,
		struct keys_store **out);

void keys_free(struct keys_store *ks);
/* A deep copy: its own slots, versions and keys (in secmem).  -ENOMEM. */
int keys_copy(const struct keys_store *ks, struct keys_store **out);

const uint8_t *keys_volume_id(const struct keys_store *ks);
uint32_t keys_active_version(const struct keys_store *ks);
/* The id of the slot that opened the store (0 for one just created). */
uint32_t keys_unlocking_slot(const struct keys_store *ks);
/* KEK of a version, or NULL if unknown or retired. */
const struct crypto_key *keys_kek(const struct keys_store *ks,
				  uint32_t version);
/* keys_kek() in the shape of format_kek_fn; arg is the keys_store. */
const struct crypto_key *keys_kek_fn(void *arg, uint32_t version);
/* Active version's KEK (never NULL for a loaded store). */
const struct crypto_key *keys_active_kek(const struct keys_store *ks);

/* "active", "decrypt-only", "retired"; "?" for anything else. */
const char *keys_state_name(enum keys_state st);
/* Fills up to max entries; returns how many there are in all. */
size_t keys_versions(const struct keys_store *ks,
		     struct keys_version_info *out, size_t max);
size_t keys_slots(const struct keys_store *ks, struct keys_slot_info *out,
		  size_t max);

/* New active version; the old active one becomes decrypt-only. */
int keys_rotate(struct keys_store *ks, uint32_t *new_version);
/* Destroys a decrypt-only version: -EBUSY for the active one. */
int keys_retire(struct keys_store *ks, uint32_t version);
int keys_add_slot(struct keys_store *ks, const struct keys_secret *s,
		  const struct keys_params *p, uint32_t *slot_id);
/* -EBUSY when it is the last slot. */
int keys_remove_slot(struct keys_store *ks, uint32_t slot_id);

/*
 * A volume-wide key for `purpose` (an HKDF label), derived from the root
 * key: the same for the volume's life, whatever the master key version.
 */
int keys_volume_key(const struct keys_store *ks, const char *purpose,
		    struct crypto_key **out);

/*
 * The volume's flags, kept in the keystore under its MAC, so that no one
 * without the key can clear them.  KEYS_F_FOLDERS: every folder carries a
 * sealed record of its mode and owner (docs/FORMAT.md, "Folder records"),
 * so a folder without a good one was tampered with.  A store with flags
 * is saved as keystore format version 2; without, as version 1.
 */
#define KEYS_F_FOLDERS 0x1u
#define KEYS_F_KNOWN KEYS_F_FOLDERS
uint32_t keys_flags(const struct keys_store *ks);
/* Sets the flags (in memory; keys_save writes them).  -EINVAL for a bit
 * not in KEYS_F_KNOWN. */
int keys_set_flags(struct keys_store *ks, uint32_t flags);

/* The audit signing key (borrowed) and its public half. */
const struct crypto_key *keys_audit_key(const struct keys_store *ks);
void keys_audit_pub(const struct keys_store *ks,
		    uint8_t pub[CRYPTO_ED25519_PUB_LEN]);

#endif
