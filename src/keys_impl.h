/*
 * keys_impl.h — what the two files of the keystore module share (keys.c:
 * the keys, the slots that open them and what is done with them;
 * keys_codec.c: the keystore file's bytes).  Private to them.
 */
#ifndef PHIFS_KEYS_IMPL_H
#define PHIFS_KEYS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "phifs/crypto.h"
#include "phifs/format.h"
#include "phifs/keys.h"

/* Field sizes; docs/FORMAT.md has the same table. */
#define KS_SALT_LEN 32
#define KS_HEAD_LEN 34
#define KS_SLOT_LEN (4 + 1 + 1 + 4 + 4 + KS_SALT_LEN + CRYPTO_WRAPPED_LEN)
#define KS_VER_LEN (4 + 1 + CRYPTO_WRAPPED_LEN)
#define KS_AUDIT_LEN (CRYPTO_ED25519_PUB_LEN + CRYPTO_WRAPPED_LEN)
#define KS_TAIL_LEN (2 * CRYPTO_SHA256_LEN)	/* MAC, then checksum */
#define KS_FLAGS_LEN 4		/* version 2 only, before the MAC */

/* Bounds that only reject absurd input; no real volume comes near. */
#define KS_MAX_SLOTS 64
#define KS_MAX_VERSIONS 65535
#define KS_MAX_LEN (KS_HEAD_LEN + KS_MAX_SLOTS * KS_SLOT_LEN + \
		    KS_MAX_VERSIONS * KS_VER_LEN + KS_AUDIT_LEN + \
		    KS_FLAGS_LEN + KS_TAIL_LEN)

struct keys_slot {
	uint32_t id;
	enum keys_secret_kind kind;
	uint8_t log_n;		/* scrypt cost; all three 0 for raw slots */
	uint32_t r, p;
	uint8_t salt[KS_SALT_LEN];
	uint8_t wrapped[CRYPTO_WRAPPED_LEN];	/* the root key */
};

struct keys_version {
	uint32_t version;
	enum keys_state state;
	struct crypto_key *kek;			/* NULL once retired */
	uint8_t wrapped[CRYPTO_WRAPPED_LEN];	/* zeros once retired */
};

/*
 * The wrapped forms are kept next to the keys so that encoding needs no
 * fresh nonces: keys_encode() of a decoded store gives back its bytes.
 */
struct keys_store {
	uint8_t volume_id[FORMAT_ID_LEN];
	struct crypto_key *root;
	struct keys_slot *slots;	/* ids ascending */
	size_t nslots;
	uint32_t unlocked_by;		/* id of the slot that opened root */
	struct keys_version *versions;	/* versions ascending */
	size_t nversions;
	uint32_t active;
	struct crypto_key *audit;	/* Ed25519 seed */
	uint8_t audit_pub[CRYPTO_ED25519_PUB_LEN];
	uint8_t audit_wrapped[CRYPTO_WRAPPED_LEN];
	uint32_t flags;			/* KEYS_F_*; 0 is a version 1 file */
};

/*
 * Nonzero when a keystore may carry these scrypt costs: bounded so that a
 * file cannot ask for 64 GiB.
 */
int keys_codec_scrypt_ok(unsigned log_n, uint32_t r, uint32_t p);

/*
 * Checks the magic, the checksum and the format version of the keystore in
 * b, then reads its slots, versions and public audit key into a new store
 * that holds no key yet.  0, -EUCLEAN (corrupt), -EPROTO (newer version)
 * or -ENOMEM, each with a line in err; *out is set on success only, and the
 * caller frees it with keys_free().
 */
int keys_codec_parse(const uint8_t *b, size_t len, struct keys_store **out,
		     char *err, size_t err_len);

/*
 * Checks the MAC of the keystore in b (whose checksum has passed) under the
 * MAC key derived from ks->root.  0, -EUCLEAN when it does not match, or
 * the error of the derivation; each with a line in err.
 */
int keys_codec_check_mac(const struct keys_store *ks, const uint8_t *b,
			 size_t len, char *err, size_t err_len);

#endif
