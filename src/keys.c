/*
 * keys.c — the volume keystore: the volume ID, the root key behind one or
 * more key slots, the master key versions (KEKs) and the audit signing key,
 * with the codec for the keystore file and its atomic replacement on disk.
 * docs/FORMAT.md ("Keystore") gives the bytes, the derivations and the load
 * order; this file is their only implementation.  Knows nothing of where
 * secrets come from (keysrc.c), of file headers or DEKs (format.c), or of
 * policy.
 */
#include "phifs/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/atomicfile.h"
#include "phifs/errmsg.h"
#include "phifs/secmem.h"

#define KS_MAGIC "PHIFSKS"	/* and its NUL: 8 bytes */
#define KS_MAGIC_LEN 8
#define KS_VERSION 1

/* Field sizes and offsets; docs/FORMAT.md has the same table. */
#define KS_SALT_LEN 32
#define KS_OFF_VERSION 8
#define KS_OFF_VOLUME 10
#define KS_OFF_NSLOTS 26
#define KS_OFF_NVERSIONS 30
#define KS_HEAD_LEN 34
#define KS_SLOT_LEN (4 + 1 + 1 + 4 + 4 + KS_SALT_LEN + CRYPTO_WRAPPED_LEN)
#define KS_VER_LEN (4 + 1 + CRYPTO_WRAPPED_LEN)
#define KS_AUDIT_LEN (CRYPTO_ED25519_PUB_LEN + CRYPTO_WRAPPED_LEN)
#define KS_TAIL_LEN (2 * CRYPTO_SHA256_LEN)	/* MAC, then checksum */
/* Magic, format version and checksum: the part every version keeps. */
#define KS_MIN_LEN (KS_MAGIC_LEN + 2 + CRYPTO_SHA256_LEN)

/* Bounds that only reject absurd input; no real volume comes near. */
#define KS_MAX_SLOTS 64
#define KS_MAX_VERSIONS 65535
#define KS_MAX_LEN (KS_HEAD_LEN + KS_MAX_SLOTS * KS_SLOT_LEN + \
		    KS_MAX_VERSIONS * KS_VER_LEN + KS_AUDIT_LEN + KS_TAIL_LEN)

/* scrypt: the default cost and the limits a keystore may ask for. */
#define KS_SCRYPT_LOG_N 17
#define KS_SCRYPT_R 8
#define KS_SCRYPT_P 1
#define KS_SCRYPT_MAX_LOG_N 24
#define KS_SCRYPT_MAX_R 32
#define KS_SCRYPT_MAX_P 16
#define KS_SCRYPT_MAX_MEM (1ULL << 30)

/* Derivation labels (HKDF info) and AAD prefixes, all without a NUL. */
#define KS_INFO_SLOT "phifs keyslot v1"
#define KS_INFO_MAC "phifs keystore mac v1"
#define KS_AAD_SLOT "phifs keystore slot v1"
#define KS_AAD_KEK "phifs keystore kek v1"
#define KS_AAD_AUDIT "phifs keystore audit v1"
#define KS_AAD_MAX (32 + FORMAT_ID_LEN + 4 + 1)

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
	struct keys_version *versions;	/* versions ascending */
	size_t nversions;
	uint32_t active;
	struct crypto_key *audit;	/* Ed25519 seed */
	uint8_t audit_pub[CRYPTO_ED25519_PUB_LEN];
	uint8_t audit_wrapped[CRYPTO_WRAPPED_LEN];
};

static size_t aad_slot(uint8_t *aad, const uint8_t *volume_id,
		       const struct keys_slot *sl)
{
	size_t n = sizeof(KS_AAD_SLOT) - 1;

	memcpy(aad, KS_AAD_SLOT, n);
	memcpy(aad + n, volume_id, FORMAT_ID_LEN);
	n += FORMAT_ID_LEN;
	format_put_le32(aad + n, sl->id);
	n += 4;
	aad[n++] = (uint8_t)sl->kind;
	return n;
}

static size_t aad_kek(uint8_t *aad, const uint8_t *volume_id,
		      uint32_t version)
{
	size_t n = sizeof(KS_AAD_KEK) - 1;

	memcpy(aad, KS_AAD_KEK, n);
	memcpy(aad + n, volume_id, FORMAT_ID_LEN);
	n += FORMAT_ID_LEN;
	format_put_le32(aad + n, version);
	return n + 4;
}

static size_t aad_audit(uint8_t *aad, const uint8_t *volume_id)
{
	size_t n = sizeof(KS_AAD_AUDIT) - 1;

	memcpy(aad, KS_AAD_AUDIT, n);
	memcpy(aad + n, volume_id, FORMAT_ID_LEN);
	return n + FORMAT_ID_LEN;
}

/* scrypt costs a keystore may carry; bounded so a file cannot ask 64 GiB. */
static int scrypt_ok(unsigned log_n, uint32_t r, uint32_t p)
{
	if (log_n < 1 || log_n > KS_SCRYPT_MAX_LOG_N)
		return 0;
	if (r < 1 || r > KS_SCRYPT_MAX_R || p < 1 || p > KS_SCRYPT_MAX_P)
		return 0;
	return 128ULL * r * (1ULL << log_n) <= KS_SCRYPT_MAX_MEM;
}

/* The key that wraps the root key in one slot, from the slot's secret. */
static int slot_key(const struct keys_slot *sl, const struct keys_secret *s,
		    struct crypto_key **out)
{
	uint8_t *tmp;
	struct crypto_key *k;
	int rc;

	if (s->kind != sl->kind)
		return -EINVAL;
	tmp = secmem_alloc(CRYPTO_KEY_LEN);
	if (!tmp)
		return -ENOMEM;
	if (sl->kind == KEYS_SECRET_RAW) {
		if (s->len != CRYPTO_KEY_LEN) {
			rc = -EINVAL;
			goto out;
		}
		rc = crypto_hkdf(s->bytes, s->len, sl->salt, KS_SALT_LEN,
				 KS_INFO_SLOT, sizeof(KS_INFO_SLOT) - 1, tmp,
				 CRYPTO_KEY_LEN);
	} else {
		rc = crypto_scrypt(s->bytes, s->len, sl->salt, KS_SALT_LEN,
				   sl->log_n, sl->r, sl->p, tmp,
				   CRYPTO_KEY_LEN);
	}
	if (rc < 0)
		goto out;
	k = crypto_key_from(tmp);
	if (!k) {
		rc = -ENOMEM;
		goto out;
	}
	*out = k;
	rc = 0;
out:
	secmem_free(tmp);
	return rc;
}

/* Fills a new slot opened by s: fresh salt, then the root key wrapped. */
static int slot_make(const struct keys_store *ks, const struct keys_secret *s,
		     const struct keys_params *p, uint32_t id,
		     struct keys_slot *sl)
{
	struct crypto_key *sk = NULL;
	uint8_t aad[KS_AAD_MAX];
	size_t aad_len;
	int rc;

	if (!s)
		return -EINVAL;
	memset(sl, 0, sizeof(*sl));
	sl->id = id;
	sl->kind = s->kind;
	if (s->kind == KEYS_SECRET_PASSPHRASE) {
		sl->log_n = (uint8_t)(p ? p->scrypt_log_n : KS_SCRYPT_LOG_N);
		sl->r = p ? p->scrypt_r : KS_SCRYPT_R;
		sl->p = p ? p->scrypt_p : KS_SCRYPT_P;
		if ((p && p->scrypt_log_n > 255) ||
		    !scrypt_ok(sl->log_n, sl->r, sl->p) || s->len == 0 ||
		    s->len > KEYS_PASSPHRASE_MAX)
			return -EINVAL;
	} else if (s->kind != KEYS_SECRET_RAW || s->len != CRYPTO_KEY_LEN) {
		return -EINVAL;
	}
	rc = crypto_random(sl->salt, KS_SALT_LEN);
	if (rc < 0)
		goto out;
	rc = slot_key(sl, s, &sk);
	if (rc < 0)
		goto out;
	aad_len = aad_slot(aad, ks->volume_id, sl);
	rc = crypto_wrap_key(sk, aad, aad_len, ks->root, sl->wrapped);
out:
	crypto_key_free(sk);
	return rc;
}

/* A fresh random KEK for `version`, wrapped under the root key. */
static int version_make(const struct keys_store *ks, uint32_t version,
			enum keys_state state, struct keys_version *v)
{
	uint8_t aad[KS_AAD_MAX];
	size_t aad_len;
	struct crypto_key *k;
	int rc;

	k = crypto_key_random();
	if (!k)
		return -ENOMEM;
	aad_len = aad_kek(aad, ks->volume_id, version);
	rc = crypto_wrap_key(ks->root, aad, aad_len, k, v->wrapped);
	if (rc < 0) {
		crypto_key_free(k);
		return rc;
	}
	v->version = version;
	v->state = state;
	v->kek = k;
	return 0;
}

void keys_free(struct keys_store *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->nversions; i++)
		crypto_key_free(ks->versions[i].kek);
	free(ks->versions);
	free(ks->slots);
	crypto_key_free(ks->audit);
	crypto_key_free(ks->root);
	free(ks);
}

int keys_create(const struct keys_secret *s, const struct keys_params *p,
		struct keys_store **out)
{
	struct keys_store *ks;
	uint8_t aad[KS_AAD_MAX];
	size_t aad_len;
	int rc;

	ks = calloc(1, sizeof(*ks));
	if (!ks)
		return -ENOMEM;
	ks->slots = calloc(1, sizeof(*ks->slots));
	ks->versions = calloc(1, sizeof(*ks->versions));
	ks->root = crypto_key_random();
	if (!ks->slots || !ks->versions || !ks->root) {
		rc = -ENOMEM;
		goto out;
	}
	rc = crypto_random(ks->volume_id, FORMAT_ID_LEN);
	if (rc < 0)
		goto out;
	rc = slot_make(ks, s, p, 0, &ks->slots[0]);
	if (rc < 0)
		goto out;
	ks->nslots = 1;
	rc = version_make(ks, 1, KEYS_ACTIVE, &ks->versions[0]);
	if (rc < 0)
		goto out;
	ks->nversions = 1;
	ks->active = 1;
	rc = crypto_ed25519_keygen(&ks->audit, ks->audit_pub);
	if (rc < 0)
		goto out;
	aad_len = aad_audit(aad, ks->volume_id);
	rc = crypto_wrap_key(ks->root, aad, aad_len, ks->audit,
			     ks->audit_wrapped);
	if (rc < 0)
		goto out;
	*out = ks;
	ks = NULL;	/* transferred */
	rc = 0;
out:
	keys_free(ks);
	return rc;
}

static size_t encoded_len(size_t nslots, size_t nversions)
{
	return KS_HEAD_LEN + nslots * KS_SLOT_LEN + nversions * KS_VER_LEN +
	       KS_AUDIT_LEN + KS_TAIL_LEN;
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

int keys_encode(const struct keys_store *ks, uint8_t **buf, size_t *len)
{
	size_t n = encoded_len(ks->nslots, ks->nversions), off;
	uint8_t *b;
	int rc;

	b = malloc(n);
	if (!b)
		return -ENOMEM;
	memcpy(b, KS_MAGIC, KS_MAGIC_LEN);
	format_put_le16(b + KS_OFF_VERSION, KS_VERSION);
	memcpy(b + KS_OFF_VOLUME, ks->volume_id, FORMAT_ID_LEN);
	format_put_le32(b + KS_OFF_NSLOTS, (uint32_t)ks->nslots);
	format_put_le32(b + KS_OFF_NVERSIONS, (uint32_t)ks->nversions);
	off = KS_HEAD_LEN;
	for (size_t i = 0; i < ks->nslots; i++) {
		const struct keys_slot *sl = &ks->slots[i];

		format_put_le32(b + off, sl->id);
		b[off + 4] = (uint8_t)sl->kind;
		b[off + 5] = sl->log_n;
		format_put_le32(b + off + 6, sl->r);
		format_put_le32(b + off + 10, sl->p);
		memcpy(b + off + 14, sl->salt, KS_SALT_LEN);
		memcpy(b + off + 14 + KS_SALT_LEN, sl->wrapped,
		       CRYPTO_WRAPPED_LEN);
		off += KS_SLOT_LEN;
	}
	for (size_t i = 0; i < ks->nversions; i++) {
		const struct keys_version *v = &ks->versions[i];

		format_put_le32(b + off, v->version);
		b[off + 4] = (uint8_t)v->state;
		memcpy(b + off + 5, v->wrapped, CRYPTO_WRAPPED_LEN);
		off += KS_VER_LEN;
	}
	memcpy(b + off, ks->audit_pub, CRYPTO_ED25519_PUB_LEN);
	off += CRYPTO_ED25519_PUB_LEN;
	memcpy(b + off, ks->audit_wrapped, CRYPTO_WRAPPED_LEN);
	off += CRYPTO_WRAPPED_LEN;
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

/*
 * Reads the v1 body (counts, slots, versions, audit key) into ks without
 * touching any key.  The checksum has passed, so a failure here means a
 * writer that broke the rules, not a flipped bit: still -EUCLEAN.
 */
static int parse_v1(const uint8_t *b, size_t len, struct keys_store *ks,
		    char *err, size_t err_len)
{
	uint32_t nslots, nversions;
	size_t off = KS_HEAD_LEN, nactive = 0;

	if (len < encoded_len(0, 0)) {
		errmsg(err, err_len, 0, "keystore is corrupt (truncated)");
		return -EUCLEAN;
	}
	memcpy(ks->volume_id, b + KS_OFF_VOLUME, FORMAT_ID_LEN);
	nslots = format_get_le32(b + KS_OFF_NSLOTS);
	nversions = format_get_le32(b + KS_OFF_NVERSIONS);
	if (nslots < 1 || nslots > KS_MAX_SLOTS || nversions < 1 ||
	    nversions > KS_MAX_VERSIONS) {
		errmsg(err, err_len, 0,
		       "keystore is corrupt (%u slots, %u versions)",
		       (unsigned)nslots, (unsigned)nversions);
		return -EUCLEAN;
	}
	if (len != encoded_len(nslots, nversions)) {
		errmsg(err, err_len, 0,
		       "keystore is corrupt (%zu bytes where %u slots and %u "
		       "versions need %zu)", len, (unsigned)nslots,
		       (unsigned)nversions, encoded_len(nslots, nversions));
		return -EUCLEAN;
	}
	ks->slots = calloc(nslots, sizeof(*ks->slots));
	ks->versions = calloc(nversions, sizeof(*ks->versions));
	if (!ks->slots || !ks->versions) {
		errmsg(err, err_len, 0, "keystore: out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < nslots; i++, off += KS_SLOT_LEN) {
		struct keys_slot *sl = &ks->slots[i];
		int ok;

		sl->id = format_get_le32(b + off);
		sl->kind = (enum keys_secret_kind)b[off + 4];
		sl->log_n = b[off + 5];
		sl->r = format_get_le32(b + off + 6);
		sl->p = format_get_le32(b + off + 10);
		memcpy(sl->salt, b + off + 14, KS_SALT_LEN);
		memcpy(sl->wrapped, b + off + 14 + KS_SALT_LEN,
		       CRYPTO_WRAPPED_LEN);
		if (sl->kind == KEYS_SECRET_RAW)
			ok = sl->log_n == 0 && sl->r == 0 && sl->p == 0;
		else if (sl->kind == KEYS_SECRET_PASSPHRASE)
			ok = scrypt_ok(sl->log_n, sl->r, sl->p);
		else
			ok = 0;
		if (!ok || (i && sl->id <= ks->slots[i - 1].id)) {
			errmsg(err, err_len, 0,
			       "keystore is corrupt (key slot %u is malformed)",
			       (unsigned)sl->id);
			return -EUCLEAN;
		}
		ks->nslots++;
	}
	for (uint32_t i = 0; i < nversions; i++, off += KS_VER_LEN) {
		struct keys_version *v = &ks->versions[i];
		int ok;

		v->version = format_get_le32(b + off);
		v->state = (enum keys_state)b[off + 4];
		memcpy(v->wrapped, b + off + 5, CRYPTO_WRAPPED_LEN);
		ok = v->version >= 1 &&
		     (i == 0 || v->version > ks->versions[i - 1].version);
		if (v->state == KEYS_ACTIVE) {
			nactive++;
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
	return 0;
}

/* Finds the root key: the first slot of the secret's kind that opens. */
static int open_slots(struct keys_store *ks, const struct keys_secret *s,
		      char *err, size_t err_len)
{
	uint8_t aad[KS_AAD_MAX];
	size_t aad_len;
	int rc;

	ks->root = crypto_key_new();
	if (!ks->root) {
		errmsg(err, err_len, 0, "keystore: out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < ks->nslots; i++) {
		const struct keys_slot *sl = &ks->slots[i];
		struct crypto_key *sk = NULL;

		if (sl->kind != s->kind)
			continue;
		rc = slot_key(sl, s, &sk);
		if (rc == -EINVAL)
			continue;	/* e.g. a raw secret of odd length */
		if (rc < 0) {
			errmsg(err, err_len, 0, "keystore: key slot %u: %s",
			       (unsigned)sl->id, strerror(-rc));
			return rc;
		}
		aad_len = aad_slot(aad, ks->volume_id, sl);
		rc = crypto_unwrap_key(sk, aad, aad_len, sl->wrapped,
				       ks->root);
		crypto_key_free(sk);
		if (rc == 0)
			return 0;
		if (rc != -EKEYREJECTED) {
			errmsg(err, err_len, 0, "keystore: key slot %u: %s",
			       (unsigned)sl->id, strerror(-rc));
			return rc;
		}
	}
	errmsg(err, err_len, 0, "wrong key: no key slot opens with it");
	return -EKEYREJECTED;
}

/* Unwraps the KEKs and the audit seed; the MAC has already passed. */
static int open_keys(struct keys_store *ks, char *err, size_t err_len)
{
	uint8_t aad[KS_AAD_MAX], pub[CRYPTO_ED25519_PUB_LEN];
	size_t aad_len;
	int rc;

	for (size_t i = 0; i < ks->nversions; i++) {
		struct keys_version *v = &ks->versions[i];

		if (v->state == KEYS_RETIRED)
			continue;
		v->kek = crypto_key_new();
		if (!v->kek) {
			errmsg(err, err_len, 0, "keystore: out of memory");
			return -ENOMEM;
		}
		aad_len = aad_kek(aad, ks->volume_id, v->version);
		rc = crypto_unwrap_key(ks->root, aad, aad_len, v->wrapped,
				       v->kek);
		if (rc < 0) {
			errmsg(err, err_len, 0,
			       "keystore fails authentication (master key "
			       "version %u)", (unsigned)v->version);
			return rc == -EKEYREJECTED ? -EUCLEAN : rc;
		}
	}
	ks->audit = crypto_key_new();
	if (!ks->audit) {
		errmsg(err, err_len, 0, "keystore: out of memory");
		return -ENOMEM;
	}
	aad_len = aad_audit(aad, ks->volume_id);
	rc = crypto_unwrap_key(ks->root, aad, aad_len, ks->audit_wrapped,
			       ks->audit);
	if (rc == 0)
		rc = crypto_ed25519_public(ks->audit, pub);
	if (rc == 0 && !crypto_memeq(pub, ks->audit_pub, sizeof(pub)))
		rc = -EKEYREJECTED;
	if (rc < 0) {
		errmsg(err, err_len, 0,
		       "keystore fails authentication (audit key)");
		return rc == -EKEYREJECTED ? -EUCLEAN : rc;
	}
	return 0;
}

/* keys_decode() with an error line; the load order is in docs/FORMAT.md. */
static int decode(const uint8_t *b, size_t len, const struct keys_secret *s,
		  struct keys_store **out, char *err, size_t err_len)
{
	uint8_t sum[CRYPTO_SHA256_LEN], mac[CRYPTO_SHA256_LEN];
	struct keys_store *ks = NULL;
	uint16_t version;
	int rc;

	if (!s) {
		errmsg(err, err_len, 0, "keystore: no key given");
		return -EINVAL;
	}
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
		errmsg(err, err_len, 0, "keystore is corrupt (checksum mismatch)");
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
		errmsg(err, err_len, 0, "keystore is corrupt (format version 0)");
		return -EUCLEAN;
	}
	ks = calloc(1, sizeof(*ks));
	if (!ks) {
		errmsg(err, err_len, 0, "keystore: out of memory");
		return -ENOMEM;
	}
	rc = parse_v1(b, len, ks, err, err_len);
	if (rc < 0)
		goto out;
	rc = open_slots(ks, s, err, err_len);
	if (rc < 0)
		goto out;
	/*
	 * The MAC needs the root key, so it comes after the slots.  A slot
	 * that opens proves the key right; a MAC that fails then proves the
	 * file altered by someone able to fix up the checksum.
	 */
	rc = ks_mac(ks->root, b, len - KS_TAIL_LEN, mac);
	if (rc < 0) {
		errmsg(err, err_len, 0, "keystore: %s", strerror(-rc));
		goto out;
	}
	if (!crypto_memeq(mac, b + len - KS_TAIL_LEN, sizeof(mac))) {
		rc = -EUCLEAN;
		errmsg(err, err_len, 0, "keystore fails authentication");
		goto out;
	}
	rc = open_keys(ks, err, err_len);
	if (rc < 0)
		goto out;
	*out = ks;
	ks = NULL;	/* transferred */
	rc = 0;
out:
	secmem_wipe(mac, sizeof(mac));
	keys_free(ks);
	return rc;
}

int keys_decode(const uint8_t *buf, size_t len, const struct keys_secret *s,
		struct keys_store **out)
{
	return decode(buf, len, s, out, NULL, 0);
}

int keys_load(int dirfd, const struct keys_secret *s, struct keys_store **out,
	      char *err, size_t err_len)
{
	uint8_t *buf = NULL;
	struct stat st;
	size_t len = 0;
	int fd, rc;

	fd = openat(dirfd, KEYS_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		errmsg(err, err_len, 0, "keystore: %s",
		       rc == -ENOENT ? "not found (not a phifs volume?)"
				     : strerror(-rc));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		errmsg(err, err_len, 0, "keystore: %s", strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > KS_MAX_LEN) {
		rc = -EUCLEAN;
		errmsg(err, err_len, 0, "keystore is corrupt (%s)",
		       S_ISREG(st.st_mode) ? "too large"
					   : "not a regular file");
		goto out;
	}
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (!buf) {
		rc = -ENOMEM;
		errmsg(err, err_len, 0, "keystore: out of memory");
		goto out;
	}
	/* Reads to the size fstat gave; the file is replaced, never grown. */
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			errmsg(err, err_len, 0, "keystore: read: %s",
			       strerror(-rc));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	rc = decode(buf, len, s, out, err, err_len);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int keys_save(const struct keys_store *ks, int dirfd, char *err,
	      size_t err_len)
{
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	rc = keys_encode(ks, &buf, &len);
	if (rc < 0) {
		errmsg(err, err_len, 0, "keystore: encode: %s", strerror(-rc));
		return rc;
	}
	/* Every key in it is wrapped, yet no one else has reason to read it. */
	rc = atomicfile_write(dirfd, KEYS_FILE, buf, len, 0600);
	if (rc < 0)
		errmsg(err, err_len, 0, "keystore: cannot replace it: %s",
		       strerror(-rc));
	free(buf);
	return rc;
}

const uint8_t *keys_volume_id(const struct keys_store *ks)
{
	return ks->volume_id;
}

uint32_t keys_active_version(const struct keys_store *ks)
{
	return ks->active;
}

/* Versions are kept ascending, so a lookup is a binary search. */
static struct keys_version *find_version(const struct keys_store *ks,
					 uint32_t version)
{
	size_t lo = 0, hi = ks->nversions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ks->versions[mid].version == version)
			return &ks->versions[mid];
		if (ks->versions[mid].version < version)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct crypto_key *keys_kek(const struct keys_store *ks,
				  uint32_t version)
{
	const struct keys_version *v = find_version(ks, version);

	return v ? v->kek : NULL;	/* NULL too when retired */
}

const struct crypto_key *keys_kek_fn(void *arg, uint32_t version)
{
	return keys_kek(arg, version);
}

const struct crypto_key *keys_active_kek(const struct keys_store *ks)
{
	return keys_kek(ks, ks->active);
}

size_t keys_versions(const struct keys_store *ks,
		     struct keys_version_info *out, size_t max)
{
	for (size_t i = 0; i < ks->nversions && i < max; i++) {
		out[i].version = ks->versions[i].version;
		out[i].state = ks->versions[i].state;
	}
	return ks->nversions;
}

size_t keys_slots(const struct keys_store *ks, struct keys_slot_info *out,
		  size_t max)
{
	for (size_t i = 0; i < ks->nslots && i < max; i++) {
		out[i].id = ks->slots[i].id;
		out[i].kind = ks->slots[i].kind;
	}
	return ks->nslots;
}

int keys_rotate(struct keys_store *ks, uint32_t *new_version)
{
	struct keys_version *vs, *old;
	uint32_t last = ks->versions[ks->nversions - 1].version;
	int rc;

	if (ks->nversions >= KS_MAX_VERSIONS)
		return -ENOSPC;
	if (last == UINT32_MAX)
		return -EOVERFLOW;
	vs = realloc(ks->versions, (ks->nversions + 1) * sizeof(*vs));
	if (!vs)
		return -ENOMEM;
	ks->versions = vs;
	rc = version_make(ks, last + 1, KEYS_ACTIVE, &vs[ks->nversions]);
	if (rc < 0)
		return rc;
	old = find_version(ks, ks->active);
	old->state = KEYS_DECRYPT_ONLY;
	ks->nversions++;
	ks->active = last + 1;
	if (new_version)
		*new_version = last + 1;
	return 0;
}

int keys_retire(struct keys_store *ks, uint32_t version)
{
	struct keys_version *v = find_version(ks, version);

	if (!v)
		return -ENOENT;
	if (v->state == KEYS_ACTIVE)
		return -EBUSY;
	/* The entry stays, so the version number is never handed out again. */
	crypto_key_free(v->kek);	/* wipes */
	v->kek = NULL;
	v->state = KEYS_RETIRED;
	memset(v->wrapped, 0, sizeof(v->wrapped));
	return 0;
}

int keys_add_slot(struct keys_store *ks, const struct keys_secret *s,
		  const struct keys_params *p, uint32_t *slot_id)
{
	struct keys_slot *sl, fresh;
	uint32_t last = ks->slots[ks->nslots - 1].id;
	int rc;

	if (ks->nslots >= KS_MAX_SLOTS)
		return -ENOSPC;
	if (last == UINT32_MAX)
		return -EOVERFLOW;
	rc = slot_make(ks, s, p, last + 1, &fresh);
	if (rc < 0)
		return rc;
	sl = realloc(ks->slots, (ks->nslots + 1) * sizeof(*sl));
	if (!sl)
		return -ENOMEM;
	ks->slots = sl;
	sl[ks->nslots++] = fresh;
	if (slot_id)
		*slot_id = last + 1;
	return 0;
}

int keys_remove_slot(struct keys_store *ks, uint32_t slot_id)
{
	size_t i;

	for (i = 0; i < ks->nslots; i++)
		if (ks->slots[i].id == slot_id)
			break;
	if (i == ks->nslots)
		return -ENOENT;
	if (ks->nslots == 1)
		return -EBUSY;
	memmove(&ks->slots[i], &ks->slots[i + 1],
		(ks->nslots - i - 1) * sizeof(*ks->slots));
	ks->nslots--;
	return 0;
}

int keys_volume_key(const struct keys_store *ks, const char *purpose,
		    struct crypto_key **out)
{
	return crypto_hkdf_key(ks->root, ks->volume_id, FORMAT_ID_LEN, purpose,
			       out);
}

const struct crypto_key *keys_audit_key(const struct keys_store *ks)
{
	return ks->audit;
}

void keys_audit_pub(const struct keys_store *ks,
		    uint8_t pub[CRYPTO_ED25519_PUB_LEN])
{
	memcpy(pub, ks->audit_pub, CRYPTO_ED25519_PUB_LEN);
}
