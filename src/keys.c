/*
 * keys.c — the volume keystore: the volume ID, the root key behind one or
 * more key slots, the master key versions (KEKs) and the audit signing key,
 * how they are made, wrapped and opened, and the keystore file's load and
 * atomic replacement on disk; the file's bytes are keys_codec.c's.
 * docs/FORMAT.md ("Keystore") gives the bytes, the derivations and the load
 * order; these two files are their only implementation.  Knows nothing of
 * where secrets come from (keysrc.c), of file headers or DEKs (format.c),
 * or of policy.
 */
#include "keys_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/atomicfile.h"
#include "phifs/errmsg.h"
#include "phifs/ioutil.h"
#include "phifs/secmem.h"

/* scrypt's default cost for a new passphrase slot. */
#define KS_SCRYPT_LOG_N 17
#define KS_SCRYPT_R 8
#define KS_SCRYPT_P 1

/* Derivation labels (HKDF info) and AAD prefixes, all without a NUL. */
#define KS_INFO_SLOT "phifs keyslot v1"
#define KS_AAD_SLOT "phifs keystore slot v1"
#define KS_AAD_KEK "phifs keystore kek v1"
#define KS_AAD_AUDIT "phifs keystore audit v1"
#define KS_AAD_MAX (32 + FORMAT_ID_LEN + 4 + 1)

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
		    !keys_codec_scrypt_ok(sl->log_n, sl->r, sl->p) ||
		    s->len == 0 || s->len > KEYS_PASSPHRASE_MAX)
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

/* A copy of key k, or NULL (ENOMEM); NULL stays NULL in *out. */
static int key_dup(const struct crypto_key *k, struct crypto_key **out)
{
	*out = k ? crypto_key_from(k->bytes) : NULL;
	return k && !*out ? -ENOMEM : 0;
}

int keys_copy(const struct keys_store *ks, struct keys_store **out)
{
	struct keys_store *c = calloc(1, sizeof(*c));
	int rc = -ENOMEM;

	if (!c)
		return -ENOMEM;
	*c = *ks;
	c->root = c->audit = NULL;
	c->slots = calloc(ks->nslots ? ks->nslots : 1, sizeof(*c->slots));
	c->versions = calloc(ks->nversions ? ks->nversions : 1,
			     sizeof(*c->versions));
	if (!c->slots || !c->versions) {
		c->nversions = 0;
		goto out;
	}
	memcpy(c->slots, ks->slots, ks->nslots * sizeof(*c->slots));
	memcpy(c->versions, ks->versions,
	       ks->nversions * sizeof(*c->versions));
	for (size_t i = 0; i < ks->nversions; i++)
		c->versions[i].kek = NULL;	/* keys_free on the way out */
	for (size_t i = 0; i < ks->nversions; i++)
		if (key_dup(ks->versions[i].kek, &c->versions[i].kek))
			goto out;
	if (key_dup(ks->root, &c->root) || key_dup(ks->audit, &c->audit))
		goto out;
	*out = c;
	c = NULL;	/* transferred */
	rc = 0;
out:
	keys_free(c);
	return rc;
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
		if (rc == 0) {
			ks->unlocked_by = sl->id;
			return 0;
		}
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
	struct keys_store *ks = NULL;
	int rc;

	if (!s) {
		errmsg(err, err_len, 0, "keystore: no key given");
		return -EINVAL;
	}
	rc = keys_codec_parse(b, len, &ks, err, err_len);
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
	rc = keys_codec_check_mac(ks, b, len, err, err_len);
	if (rc < 0)
		goto out;
	rc = open_keys(ks, err, err_len);
	if (rc < 0)
		goto out;
	*out = ks;
	ks = NULL;	/* transferred */
	rc = 0;
out:
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
	rc = ioutil_read_all(fd, buf, (size_t)st.st_size, &len);
	if (rc < 0) {
		errmsg(err, err_len, 0, "keystore: read: %s", strerror(-rc));
		goto out;
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

uint32_t keys_unlocking_slot(const struct keys_store *ks)
{
	return ks->unlocked_by;
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

const char *keys_state_name(enum keys_state st)
{
	switch (st) {
	case KEYS_ACTIVE:
		return "active";
	case KEYS_DECRYPT_ONLY:
		return "decrypt-only";
	case KEYS_RETIRED:
		return "retired";
	}
	return "?";
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

uint32_t keys_flags(const struct keys_store *ks)
{
	return ks->flags;
}

int keys_set_flags(struct keys_store *ks, uint32_t flags)
{
	if (flags & ~KEYS_F_KNOWN)
		return -EINVAL;
	ks->flags = flags;
	return 0;
}
