/*
 * keys_codec.c — the keystore file's bytes, part of the keys module: the
 * encoder, the checks of the head (magic, checksum, format version) and of
 * the MAC, and the parser that turns a v1 or v2 body (v1 and the volume's
 * flags) into slots and versions.
 * docs/FORMAT.md ("Keystore") gives the bytes; this file and keys.c are
 * their only implementation.  Knows nothing of how a slot is opened, of
 * what the keys inside unlock, or of the file the bytes come from.
 */
#include "keys_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/errmsg.h"
#include "phifs/secmem.h"

#define KS_MAGIC "PHIFSKS"	/* and its NUL: 8 bytes */
#define KS_MAGIC_LEN 8
/* Version 2 is version 1 and the volume's flags; a store without flags is
 * written as version 1, which phifs made before flags still reads. */
#define KS_VERSION 2

/* Offsets in the head; docs/FORMAT.md has the same table. */
#define KS_OFF_VERSION 8
#define KS_OFF_VOLUME 10
#define KS_OFF_NSLOTS 26
#define KS_OFF_NVERSIONS 30
/* Magic, format version and checksum: the part every version keeps. */
#define KS_MIN_LEN (KS_MAGIC_LEN + 2 + CRYPTO_SHA256_LEN)

/* The limits of the scrypt cost a keystore may ask for. */
#define KS_SCRYPT_MAX_LOG_N 24
#define KS_SCRYPT_MAX_R 32
#define KS_SCRYPT_MAX_P 16
#define KS_SCRYPT_MAX_MEM (1ULL << 30)

/* The MAC key's derivation label (HKDF info), without a NUL. */
#define KS_INFO_MAC "phifs keystore mac v1"

int keys_codec_scrypt_ok(unsigned log_n, uint32_t r, uint32_t p)
{
	if (log_n < 1 || log_n > KS_SCRYPT_MAX_LOG_N)
		return 0;
	if (r < 1 || r > KS_SCRYPT_MAX_R || p < 1 || p > KS_SCRYPT_MAX_P)
		return 0;
	return 128ULL * r * (1ULL << log_n) <= KS_SCRYPT_MAX_MEM;
}

static size_t encoded_len(size_t nslots, size_t nversions, unsigned version)
{
	return KS_HEAD_LEN + nslots * KS_SLOT_LEN + nversions * KS_VER_LEN +
	       KS_AUDIT_LEN + (version >= 2 ? KS_FLAGS_LEN : 0) + KS_TAIL_LEN;
}

/* HMAC-SHA256 of msg under the MAC key derived from the root key. */
static int ks_mac(const struct crypto_key *root, const uint8_t *msg,
		  size_t len, uint8_t mac[CRYPTO_SHA256_LEN])
{
	struct crypto_key *mk = NULL;
	int rc;

	rc = crypto_hkdf_key(root, NULL, 0, KS_INFO_MAC, &mk);
	if (rc < 0)
		goto out;
	rc = crypto_hmac_sha256(mk, msg, len, mac);
out:
	crypto_key_free(mk);
	return rc;
}

static void put_slot(uint8_t *p, const struct keys_slot *sl)
{
	format_put_le32(p, sl->id);
	p[4] = (uint8_t)sl->kind;
	p[5] = sl->log_n;
	format_put_le32(p + 6, sl->r);
	format_put_le32(p + 10, sl->p);
	memcpy(p + 14, sl->salt, KS_SALT_LEN);
	memcpy(p + 14 + KS_SALT_LEN, sl->wrapped, CRYPTO_WRAPPED_LEN);
}

static void put_version(uint8_t *p, const struct keys_version *v)
{
	format_put_le32(p, v->version);
	p[4] = (uint8_t)v->state;
	memcpy(p + 5, v->wrapped, CRYPTO_WRAPPED_LEN);
}

int keys_encode(const struct keys_store *ks, uint8_t **buf, size_t *len)
{
	unsigned version = ks->flags ? 2 : 1;
	size_t n = encoded_len(ks->nslots, ks->nversions, version), off;
	uint8_t *b;
	int rc;

	b = malloc(n);
	if (!b)
		return -ENOMEM;
	memcpy(b, KS_MAGIC, KS_MAGIC_LEN);
	format_put_le16(b + KS_OFF_VERSION, (uint16_t)version);
	memcpy(b + KS_OFF_VOLUME, ks->volume_id, FORMAT_ID_LEN);
	format_put_le32(b + KS_OFF_NSLOTS, (uint32_t)ks->nslots);
	format_put_le32(b + KS_OFF_NVERSIONS, (uint32_t)ks->nversions);
	off = KS_HEAD_LEN;
	for (size_t i = 0; i < ks->nslots; i++, off += KS_SLOT_LEN)
		put_slot(b + off, &ks->slots[i]);
	for (size_t i = 0; i < ks->nversions; i++, off += KS_VER_LEN)
		put_version(b + off, &ks->versions[i]);
	memcpy(b + off, ks->audit_pub, CRYPTO_ED25519_PUB_LEN);
	off += CRYPTO_ED25519_PUB_LEN;
	memcpy(b + off, ks->audit_wrapped, CRYPTO_WRAPPED_LEN);
	off += CRYPTO_WRAPPED_LEN;
	if (version >= 2) {
		format_put_le32(b + off, ks->flags);
		off += KS_FLAGS_LEN;
	}
	rc = ks_mac(ks->root, b, off, b + off);
	if (rc < 0)
		goto out;
	off += CRYPTO_SHA256_LEN;
	rc = crypto_sha256(b, off, b + off);
	if (rc < 0)
		goto out;
	*buf = b;
	*len = n;
	b = NULL;	/* transferred */
	rc = 0;
out:
	free(b);
	return rc;
}

static int all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* The counts in the head: each within its bound, and the length right. */
static int check_counts(const uint8_t *b, size_t len, unsigned version,
			uint32_t *nslots, uint32_t *nversions, char *err,
			size_t err_len)
{
	uint32_t ns, nv;

	if (len < encoded_len(0, 0, version)) {
		errmsg(err, err_len, 0, "keystore is corrupt (truncated)");
		return -EUCLEAN;
	}
	ns = format_get_le32(b + KS_OFF_NSLOTS);
	nv = format_get_le32(b + KS_OFF_NVERSIONS);
	if (ns < 1 || ns > KS_MAX_SLOTS || nv < 1 || nv > KS_MAX_VERSIONS) {
		errmsg(err, err_len, 0,
		       "keystore is corrupt (%u slots, %u versions)",
		       (unsigned)ns, (unsigned)nv);
		return -EUCLEAN;
	}
	if (len != encoded_len(ns, nv, version)) {
		errmsg(err, err_len, 0,
		       "keystore is corrupt (%zu bytes where %u slots and %u "
		       "versions need %zu)", len, (unsigned)ns, (unsigned)nv,
		       encoded_len(ns, nv, version));
		return -EUCLEAN;
	}
	*nslots = ns;
	*nversions = nv;
	return 0;
}

/* Reads the slot at p as the store's next one; slot ids must ascend. */
static int parse_slot(const uint8_t *p, struct keys_store *ks, char *err,
		      size_t err_len)
{
	struct keys_slot *sl = &ks->slots[ks->nslots];
	int ok;

	sl->id = format_get_le32(p);
	sl->kind = (enum keys_secret_kind)p[4];
	sl->log_n = p[5];
	sl->r = format_get_le32(p + 6);
	sl->p = format_get_le32(p + 10);
	memcpy(sl->salt, p + 14, KS_SALT_LEN);
	memcpy(sl->wrapped, p + 14 + KS_SALT_LEN, CRYPTO_WRAPPED_LEN);
	if (sl->kind == KEYS_SECRET_RAW)
		ok = sl->log_n == 0 && sl->r == 0 && sl->p == 0;
	else if (sl->kind == KEYS_SECRET_PASSPHRASE)
		ok = keys_codec_scrypt_ok(sl->log_n, sl->r, sl->p);
	else
		ok = 0;
	if (!ok || (ks->nslots && sl->id <= sl[-1].id)) {
		errmsg(err, err_len, 0,
		       "keystore is corrupt (key slot %u is malformed)",
		       (unsigned)sl->id);
		return -EUCLEAN;
	}
	ks->nslots++;
	return 0;
}

/*
 * Reads the master key version at p as the store's next one; versions must
 * ascend from 1, and a retired one keeps no wrapped key.  Counts the active
 * ones in *nactive, which the caller checks once all are read.
 */
static int parse_version(const uint8_t *p, struct keys_store *ks,
			 size_t *nactive, char *err, size_t err_len)
{
	struct keys_version *v = &ks->versions[ks->nversions];
	int ok;

	v->version = format_get_le32(p);
	v->state = (enum keys_state)p[4];
	memcpy(v->wrapped, p + 5, CRYPTO_WRAPPED_LEN);
	ok = v->version >= 1 &&
	     (ks->nversions == 0 || v->version > v[-1].version);
	if (v->state == KEYS_ACTIVE) {
		(*nactive)++;
		ks->active = v->version;
	} else if (v->state == KEYS_RETIRED) {
		ok = ok && all_zero(v->wrapped, CRYPTO_WRAPPED_LEN);
	} else if (v->state != KEYS_DECRYPT_ONLY) {
		ok = 0;
	}
	if (!ok) {
		errmsg(err, err_len, 0,
		       "keystore is corrupt (master key version %u is "
		       "malformed)", (unsigned)v->version);
		return -EUCLEAN;
	}
	ks->nversions++;
	return 0;
}

/* The flags of a version 2 body at p: a bit this phifs does not know is
 * a newer phifs's promise it cannot keep. */
static int parse_flags(const uint8_t *p, struct keys_store *ks, char *err,
		       size_t err_len)
{
	ks->flags = format_get_le32(p);
	if (ks->flags & ~KEYS_F_KNOWN) {
		errmsg(err, err_len, 0,
		       "keystore flags 0x%x are newer than this phifs knows",
		       (unsigned)ks->flags);
		return -EPROTO;
	}
	return 0;
}

/*
 * Reads the body (counts, slots, versions, audit key, and for version 2
 * the flags) into ks without touching any key.  The checksum has passed,
 * so a failure here means a writer that broke the rules, not a flipped
 * bit: still -EUCLEAN.
 */
static int parse_body(const uint8_t *b, size_t len, unsigned version,
		      struct keys_store *ks, char *err, size_t err_len)
{
	uint32_t nslots, nversions;
	size_t off = KS_HEAD_LEN, nactive = 0;
	int rc;

	rc = check_counts(b, len, version, &nslots, &nversions, err,
			  err_len);
	if (rc < 0)
		return rc;
	memcpy(ks->volume_id, b + KS_OFF_VOLUME, FORMAT_ID_LEN);
	ks->slots = calloc(nslots, sizeof(*ks->slots));
	ks->versions = calloc(nversions, sizeof(*ks->versions));
	if (!ks->slots || !ks->versions) {
		errmsg(err, err_len, 0, "keystore: out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < nslots; i++, off += KS_SLOT_LEN) {
		rc = parse_slot(b + off, ks, err, err_len);
		if (rc < 0)
			return rc;
	}
	for (uint32_t i = 0; i < nversions; i++, off += KS_VER_LEN) {
		rc = parse_version(b + off, ks, &nactive, err, err_len);
		if (rc < 0)
			return rc;
	}
	if (nactive != 1) {
		errmsg(err, err_len, 0,
		       "keystore is corrupt (%zu active master key versions)",
		       nactive);
		return -EUCLEAN;
	}
	memcpy(ks->audit_pub, b + off, CRYPTO_ED25519_PUB_LEN);
	off += CRYPTO_ED25519_PUB_LEN;
	memcpy(ks->audit_wrapped, b + off, CRYPTO_WRAPPED_LEN);
	off += CRYPTO_WRAPPED_LEN;
	return version >= 2 ? parse_flags(b + off, ks, err, err_len) : 0;
}

/* The part every version keeps: the magic, the checksum, the version. */
static int check_head(const uint8_t *b, size_t len, char *err,
		      size_t err_len)
{
	uint8_t sum[CRYPTO_SHA256_LEN];
	uint16_t version;
	int rc;

	if (len < KS_MIN_LEN || memcmp(b, KS_MAGIC, KS_MAGIC_LEN)) {
		errmsg(err, err_len, 0, "keystore is corrupt (%s)",
		       len < KS_MIN_LEN ? "truncated" : "bad magic");
		return -EUCLEAN;
	}
	/*
	 * The checksum comes before the version: every version ends with the
	 * same SHA-256, so a flipped bit in the version field reads as
	 * corruption, and a newer keystore still reads as newer.
	 */
	rc = crypto_sha256(b, len - CRYPTO_SHA256_LEN, sum);
	if (rc < 0) {
		errmsg(err, err_len, 0, "keystore: %s", strerror(-rc));
		return rc;
	}
	if (!crypto_memeq(sum, b + len - CRYPTO_SHA256_LEN, sizeof(sum))) {
		errmsg(err, err_len, 0,
		       "keystore is corrupt (checksum mismatch)");
		return -EUCLEAN;
	}
	version = format_get_le16(b + KS_OFF_VERSION);
	if (version > KS_VERSION) {
		errmsg(err, err_len, 0,
		       "keystore format version %u is newer than this phifs "
		       "reads (%u)", version, KS_VERSION);
		return -EPROTO;
	}
	if (version < 1) {
		errmsg(err, err_len, 0,
		       "keystore is corrupt (format version 0)");
		return -EUCLEAN;
	}
	return 0;
}

int keys_codec_parse(const uint8_t *b, size_t len, struct keys_store **out,
		     char *err, size_t err_len)
{
	struct keys_store *ks;
	int rc;

	rc = check_head(b, len, err, err_len);
	if (rc < 0)
		return rc;
	ks = calloc(1, sizeof(*ks));
	if (!ks) {
		errmsg(err, err_len, 0, "keystore: out of memory");
		return -ENOMEM;
	}
	rc = parse_body(b, len, format_get_le16(b + KS_OFF_VERSION), ks, err,
			err_len);
	if (rc < 0)
		goto out;
	*out = ks;
	ks = NULL;	/* transferred */
out:
	keys_free(ks);
	return rc;
}

int keys_codec_check_mac(const struct keys_store *ks, const uint8_t *b,
			 size_t len, char *err, size_t err_len)
{
	uint8_t mac[CRYPTO_SHA256_LEN];
	int rc;

	rc = ks_mac(ks->root, b, len - KS_TAIL_LEN, mac);
	if (rc < 0) {
		errmsg(err, err_len, 0, "keystore: %s", strerror(-rc));
		goto out;
	}
	if (!crypto_memeq(mac, b + len - KS_TAIL_LEN, sizeof(mac))) {
		errmsg(err, err_len, 0, "keystore fails authentication");
		rc = -EUCLEAN;
	}
out:
	secmem_wipe(mac, sizeof(mac));
	return rc;
}
