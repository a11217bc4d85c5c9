/*
 * crypto.c — phifs's cryptographic primitives on top of OpenSSL 3: the
 * algorithms fetched once, AES-256-GCM with a per-thread cipher context that
 * keeps its key schedule while the key stays the same, key wrapping, HKDF,
 * HMAC, SHA-256 and the CSPRNG; scrypt and Ed25519 are the module's other
 * two files (crypto_scrypt.c, crypto_ed25519.c).  EVP's 1-is-success turns
 * into 0/-errno in these files and goes no further.  The crypto module is
 * the only one that includes OpenSSL; it knows nothing of files, blocks or
 * keystores.
 */
#include "crypto_impl.h"

#include "phifs/secmem.h"

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/* EVP counts in int; longer inputs go through in pieces of this size. */
#define EVP_CHUNK	(1 << 30)

/* Key ids start at 1: 0 means "no key" in a thread's GCM cache. */
static uint64_t next_key_id;

/*
 * Algorithms fetched once.  Passing EVP_aes_256_gcm() or EVP_sha256() would
 * make OpenSSL 3 look the implementation up in its provider store on every
 * init, under a lock; these are fetched once and kept for the life of the
 * process, so they are deliberately never freed.
 */
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *alg_gcm;
static EVP_MD *alg_sha256;
static EVP_KDF *alg_scrypt;
static EVP_MAC *alg_hmac;

/*
 * One GCM context per thread, with the key it was last given.  `key` is a
 * secmem copy of the bytes beside `id`: ids alone would go stale if a caller
 * wrote into crypto_key.bytes directly, and comparing 32 bytes is far
 * cheaper than a key schedule.  The struct itself is thread-local rather
 * than in secmem so that the context pointer stays visible to leak checkers
 * (they do not scan our private mappings); the pthread key exists only for
 * its destructor, which frees both when the thread exits.
 */
struct gcm_cache {
	EVP_CIPHER_CTX *ctx;
	uint8_t *key;		/* CRYPTO_KEY_LEN bytes of secmem */
	uint64_t id;
};

static pthread_once_t gcm_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t gcm_key;
static int gcm_key_err;
static __thread struct gcm_cache gcm_tls;

static void algs_fetch(void)
{
	alg_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	alg_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	alg_scrypt = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	alg_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* Every entry point that needs a fetched algorithm goes through here. */
static int algs(void)
{
	pthread_once(&algs_once, algs_fetch);
	if (alg_gcm == NULL || alg_sha256 == NULL ||
	    alg_scrypt == NULL || alg_hmac == NULL)
		return -EIO;
	return 0;
}

EVP_KDF *crypto_alg_scrypt(void)
{
	return algs() < 0 ? NULL : alg_scrypt;
}

static uint64_t new_key_id(void)
{
	return __atomic_add_fetch(&next_key_id, 1, __ATOMIC_RELAXED);
}

/* Whether a cache holding (id, copy) is keyed with k. */
static bool cache_holds(uint64_t id, const uint8_t *copy,
			const struct crypto_key *k)
{
	return id != 0 && id == k->id &&
	       CRYPTO_memcmp(copy, k->bytes, CRYPTO_KEY_LEN) == 0;
}

static void gcm_cache_release(void *arg)
{
	struct gcm_cache *c = arg;

	EVP_CIPHER_CTX_free(c->ctx);	/* cleanses the key schedule */
	secmem_free(c->key);		/* wipes the key copy */
	c->ctx = NULL;
	c->key = NULL;
	c->id = 0;
}

static void gcm_key_create(void)
{
	gcm_key_err = pthread_key_create(&gcm_key, gcm_cache_release);
}

/* This thread's GCM cache, set up on first use; NULL on ENOMEM. */
static struct gcm_cache *gcm_cache_get(void)
{
	struct gcm_cache *c = &gcm_tls;

	if (c->ctx != NULL)
		return c;
	pthread_once(&gcm_key_once, gcm_key_create);
	if (gcm_key_err != 0)
		return NULL;
	c->key = secmem_alloc(CRYPTO_KEY_LEN);
	c->ctx = EVP_CIPHER_CTX_new();
	c->id = 0;
	if (c->key == NULL || c->ctx == NULL ||
	    pthread_setspecific(gcm_key, c) != 0) {
		gcm_cache_release(c);
		return NULL;
	}
	return c;
}

/*
 * Readies c for k and nonce: the nonce alone when c already holds k, the
 * key schedule too when it does not.
 */
static int gcm_init(struct gcm_cache *c, const struct crypto_key *k,
		    const uint8_t *nonce, int enc)
{
	if (cache_holds(c->id, c->key, k))
		return EVP_CipherInit_ex(c->ctx, NULL, NULL, NULL, nonce,
					 enc) ? 0 : -EIO;
	/*
	 * Forget the old key first, in case the new one fails.  Once the
	 * context has its cipher, passing NULL keeps it: OpenSSL would
	 * otherwise free and allocate the cipher state anew.
	 */
	c->id = 0;
	if (!EVP_CipherInit_ex(c->ctx, EVP_CIPHER_CTX_get0_cipher(c->ctx) ?
			       NULL : alg_gcm, NULL, k->bytes, nonce, enc))
		return -EIO;
	c->id = k->id;
	memcpy(c->key, k->bytes, CRYPTO_KEY_LEN);
	return 0;
}

/*
 * Feeds len bytes of in to ctx, in pieces EVP's int counts can hold: AAD
 * when out is NULL, else text whose result goes to out.
 */
static int gcm_feed(EVP_CIPHER_CTX *ctx, const uint8_t *in, size_t len,
		    uint8_t *out)
{
	size_t done;
	int n;

	for (done = 0; done < len; done += (size_t)n) {
		size_t chunk = len - done;

		n = chunk > EVP_CHUNK ? EVP_CHUNK : (int)chunk;
		if (!EVP_CipherUpdate(ctx, out ? out + done : NULL, &n,
				      in + done, n))
			return -EIO;
	}
	return 0;
}

/* Seal: gives the tag out.  Open: checks it, -EBADMSG on a mismatch. */
static int gcm_final(EVP_CIPHER_CTX *ctx, uint8_t *tag, int enc)
{
	uint8_t fin[CRYPTO_GCM_TAG_LEN];	/* GCM's final writes nothing */
	int n;

	if (enc)
		return EVP_CipherFinal_ex(ctx, fin, &n) &&
		       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
					   CRYPTO_GCM_TAG_LEN, tag) ? 0 : -EIO;
	if (!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
				 CRYPTO_GCM_TAG_LEN, tag))
		return -EIO;
	/* GCM's final step of decryption fails only on the tag. */
	return EVP_CipherFinal_ex(ctx, fin, &n) > 0 ? 0 : -EBADMSG;
}

/*
 * Seal (enc = 1) or open (enc = 0).  EVP_CipherInit_ex takes the direction
 * on every call, and GCM runs AES forwards both ways, so one context and one
 * key schedule serve both; only the nonce is set when the key is unchanged.
 */
static int gcm_crypt(const struct crypto_key *k, const uint8_t *nonce,
		     const void *aad, size_t aad_len, const void *in,
		     size_t len, void *out, uint8_t *tag, int enc)
{
	struct gcm_cache *c;
	int rc;

	if (algs() < 0)
		return -EIO;
	c = gcm_cache_get();
	if (c == NULL)
		return -ENOMEM;
	rc = gcm_init(c, k, nonce, enc);
	if (!rc)
		rc = gcm_feed(c->ctx, aad, aad_len, NULL);
	if (!rc)
		rc = gcm_feed(c->ctx, in, len, out);
	if (!rc)
		rc = gcm_final(c->ctx, tag, enc);
	/* After an EVP failure the context's state is unknown: rekey. */
	if (rc == -EIO)
		c->id = 0;
	/* Unauthenticated plaintext must not leak out of a failed open. */
	if (rc < 0 && !enc && len > 0)
		OPENSSL_cleanse(out, len);
	return rc;
}

int crypto_gcm_seal(const struct crypto_key *k,
		    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
		    const void *aad, size_t aad_len,
		    const void *pt, size_t len, void *ct,
		    uint8_t tag[CRYPTO_GCM_TAG_LEN])
{
	return gcm_crypt(k, nonce, aad, aad_len, pt, len, ct, tag, 1);
}

int crypto_gcm_open(const struct crypto_key *k,
		    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
		    const void *aad, size_t aad_len,
		    const void *ct, size_t len, void *pt,
		    const uint8_t tag[CRYPTO_GCM_TAG_LEN])
{
	/* OpenSSL copies the tag in; the cast only satisfies its prototype. */
	return gcm_crypt(k, nonce, aad, aad_len, ct, len, pt, (uint8_t *)tag,
			 0);
}

struct crypto_key *crypto_key_new(void)
{
	struct crypto_key *k = secmem_alloc(sizeof(*k));

	if (k != NULL)
		k->id = new_key_id();
	return k;
}

struct crypto_key *crypto_key_from(const uint8_t bytes[CRYPTO_KEY_LEN])
{
	struct crypto_key *k = crypto_key_new();

	if (k != NULL)
		memcpy(k->bytes, bytes, CRYPTO_KEY_LEN);
	return k;
}

struct crypto_key *crypto_key_random(void)
{
	struct crypto_key *k = crypto_key_new();

	/* The private DRBG: key material never shares a stream with nonces. */
	if (k != NULL && RAND_priv_bytes(k->bytes, CRYPTO_KEY_LEN) != 1) {
		crypto_key_free(k);
		errno = EIO;
		return NULL;
	}
	return k;
}

void crypto_key_free(struct crypto_key *k)
{
	secmem_free(k);		/* wipes */
}

int crypto_random(void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n > 0) {
		int chunk = n > EVP_CHUNK ? EVP_CHUNK : (int)n;

		if (RAND_bytes(p, chunk) != 1)
			return -EIO;
		p += chunk;
		n -= (size_t)chunk;
	}
	return 0;
}

/*
 * GCM nonces must be unique, not secret, and a block write needs one or
 * two: OpenSSL's RNG asks getpid(2), a syscall, on every call, so nonces
 * come from a per-thread pool drawn NONCE_POOL bytes at a time.  A forked
 * child starts with an empty pool (pthread_atfork), so parent and child
 * never hand out the same bytes.
 */
#define NONCE_POOL 4092		/* 341 nonces */

static _Thread_local struct {
	size_t used;
	uint8_t bytes[NONCE_POOL];
} pool = { .used = NONCE_POOL };
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
	pool.used = NONCE_POOL;
}

static void pool_init(void)
{
	if (pthread_atfork(NULL, NULL, pool_forget))
		abort();
}

int crypto_nonce(void *buf, size_t n)
{
	int rc;

	if (n > NONCE_POOL)
		return crypto_random(buf, n);
	pthread_once(&pool_once, pool_init);
	if (NONCE_POOL - pool.used < n) {
		rc = crypto_random(pool.bytes, NONCE_POOL);
		if (rc)
			return rc;
		pool.used = 0;
	}
	memcpy(buf, pool.bytes + pool.used, n);
	memset(pool.bytes + pool.used, 0, n);	/* handed out once */
	pool.used += n;
	return 0;
}

int crypto_memeq(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

int crypto_wrap_key(const struct crypto_key *kek, const void *aad,
		    size_t aad_len, const struct crypto_key *key,
		    uint8_t out[CRYPTO_WRAPPED_LEN])
{
	uint8_t buf[CRYPTO_WRAPPED_LEN];
	int rc;

	/* Built aside so that out is written only on success. */
	rc = crypto_nonce(buf, CRYPTO_GCM_NONCE_LEN);
	if (rc < 0)
		goto out;
	rc = crypto_gcm_seal(kek, buf, aad, aad_len, key->bytes,
			     CRYPTO_KEY_LEN, buf + CRYPTO_GCM_NONCE_LEN,
			     buf + CRYPTO_GCM_NONCE_LEN + CRYPTO_KEY_LEN);
	if (rc < 0)
		goto out;
	memcpy(out, buf, CRYPTO_WRAPPED_LEN);
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

int crypto_unwrap_key(const struct crypto_key *kek, const void *aad,
		      size_t aad_len, const uint8_t in[CRYPTO_WRAPPED_LEN],
		      struct crypto_key *key)
{
	uint8_t tmp[CRYPTO_KEY_LEN];
	int rc;

	rc = crypto_gcm_open(kek, in, aad, aad_len, in + CRYPTO_GCM_NONCE_LEN,
			     CRYPTO_KEY_LEN, tmp,
			     in + CRYPTO_GCM_NONCE_LEN + CRYPTO_KEY_LEN);
	if (rc == -EBADMSG)
		rc = -EKEYREJECTED;
	if (rc < 0)
		goto out;
	memcpy(key->bytes, tmp, CRYPTO_KEY_LEN);
	/* New bytes, new id: no thread's GCM cache may take it for the old. */
	key->id = new_key_id();
	rc = 0;
out:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return rc;
}

/*
 * One HMAC-SHA256 context per thread, its digest set once (setting it by
 * name on every call cost more than the MAC), and keyed with the last
 * crypto_key it was given, like the GCM cache: keying hashes two blocks and
 * has OpenSSL copy the key, and the volume's size key alone is used on
 * every lookup, listing entry and getattr of a file.  Its keyed state
 * stays in OpenSSL's heap, as the AES key schedules do (SECURITY.md).
 * Raw keys (HKDF's) do not stay: the context is keyed with zeros after.
 * Freed, which cleanses it, at thread exit.
 */
struct hmac_cache {
	EVP_MAC_CTX *ctx;
	uint8_t *key;		/* CRYPTO_KEY_LEN bytes of secmem */
	uint64_t id;		/* 0: keyed with nothing worth keeping */
};

static pthread_once_t hmac_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t hmac_key;
static int hmac_key_err;
/* [0] keyed with crypto_keys, [1] with raw keys: HKDF does not evict the
 * size key. */
static __thread struct hmac_cache hmac_tls[2];
static const uint8_t hmac_zero_key[CRYPTO_SHA256_LEN];

static void hmac_release(struct hmac_cache *c)
{
	EVP_MAC_CTX_free(c->ctx);	/* cleanses the keyed state */
	secmem_free(c->key);
	c->ctx = NULL;
	c->key = NULL;
	c->id = 0;
}

static void hmac_release_both(void *arg)
{
	struct hmac_cache *c = arg;

	hmac_release(&c[0]);
	hmac_release(&c[1]);
}

static void hmac_key_create(void)
{
	hmac_key_err = pthread_key_create(&hmac_key, hmac_release_both);
}

/* This thread's HMAC cache for crypto_keys (raw false) or raw keys, made
 * on first use; NULL on ENOMEM. */
static struct hmac_cache *hmac_cache_get(bool raw)
{
	struct hmac_cache *c = &hmac_tls[raw];
	OSSL_PARAM params[2];

	if (c->ctx != NULL)
		return c;
	pthread_once(&hmac_key_once, hmac_key_create);
	if (hmac_key_err != 0)
		return NULL;
	c->id = 0;
	c->key = secmem_alloc(CRYPTO_KEY_LEN);
	c->ctx = EVP_MAC_CTX_new(alg_hmac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (c->key == NULL || c->ctx == NULL ||
	    !EVP_MAC_CTX_set_params(c->ctx, params) ||
	    pthread_setspecific(hmac_key, hmac_tls) != 0) {
		hmac_release(c);
		return NULL;
	}
	return c;
}

/*
 * Keys c with key: a crypto_key (k, remembered) or raw bytes (k NULL,
 * forgotten by hmac_forget).  A NULL key with k NULL restarts under the
 * current one.
 */
static int hmac_start(struct hmac_cache *c, const struct crypto_key *k,
		      const void *key, size_t key_len)
{
	if (k != NULL && cache_holds(c->id, c->key, k))
		return EVP_MAC_init(c->ctx, NULL, 0, NULL) ? 0 : -EIO;
	c->id = 0;	/* forget the old key first, in case this fails */
	if (k != NULL) {
		key = k->bytes;
		key_len = CRYPTO_KEY_LEN;
	}
	if (key != NULL && key_len == 0)
		key = hmac_zero_key;	/* RFC 2104 pads it with zeros anyway */
	if (!EVP_MAC_init(c->ctx, key, key_len, NULL))
		return -EIO;
	if (k != NULL) {
		c->id = k->id;
		memcpy(c->key, k->bytes, CRYPTO_KEY_LEN);
	}
	return 0;
}

/* Appends msg; n may be 0. */
static int hmac_add(struct hmac_cache *c, const void *msg, size_t n)
{
	return n == 0 || EVP_MAC_update(c->ctx, msg, n) ? 0 : -EIO;
}

static int hmac_end(struct hmac_cache *c, uint8_t out[CRYPTO_SHA256_LEN])
{
	size_t n;

	if (!EVP_MAC_final(c->ctx, out, &n, CRYPTO_SHA256_LEN) ||
	    n != CRYPTO_SHA256_LEN)
		return -EIO;
	return 0;
}

/* Leaves nothing of a raw key in c; dropped, which cleanses it, if that
 * fails. */
static void hmac_forget(struct hmac_cache *c)
{
	if (hmac_start(c, NULL, hmac_zero_key, sizeof(hmac_zero_key)) < 0)
		hmac_release(c);
}

/*
 * RFC 5869 on the cached HMAC context: OpenSSL's HKDF looks its digest up
 * by name on every call, which made it most of the cost of creating a
 * file.  Extract: PRK = HMAC(salt, IKM); expand: T(i) = HMAC(PRK, T(i-1) ‖
 * info ‖ i).
 */
int crypto_hkdf(const void *ikm, size_t ikm_len, const void *salt,
		size_t salt_len, const void *info, size_t info_len,
		void *out, size_t out_len)
{
	uint8_t prk[CRYPTO_SHA256_LEN], t[CRYPTO_SHA256_LEN], i = 0;
	struct hmac_cache *c;
	size_t done = 0, t_len = 0;
	int rc;

	if (out_len > 255 * CRYPTO_SHA256_LEN)
		return -EINVAL;
	rc = algs();
	if (rc < 0)
		return rc;
	c = hmac_cache_get(true);
	if (c == NULL)
		return -ENOMEM;
	if (salt == NULL || salt_len == 0) {
		salt = hmac_zero_key;	/* HashLen zeros */
		salt_len = sizeof(hmac_zero_key);
	}
	rc = hmac_start(c, NULL, salt, salt_len);
	if (!rc)
		rc = hmac_add(c, ikm, ikm_len);
	if (!rc)
		rc = hmac_end(c, prk);
	if (!rc)
		rc = hmac_start(c, NULL, prk, sizeof(prk));
	while (!rc && done < out_len) {
		size_t n = out_len - done < sizeof(t) ? out_len - done :
							 sizeof(t);

		i++;
		if (i > 1)
			rc = hmac_start(c, NULL, NULL, 0);	/* PRK again */
		if (!rc)
			rc = hmac_add(c, t, t_len);
		if (!rc)
			rc = hmac_add(c, info, info_len);
		if (!rc)
			rc = hmac_add(c, &i, 1);
		if (!rc)
			rc = hmac_end(c, t);
		if (!rc)
			memcpy((uint8_t *)out + done, t, n);
		t_len = sizeof(t);
		done += n;
	}
	OPENSSL_cleanse(prk, sizeof(prk));
	OPENSSL_cleanse(t, sizeof(t));
	hmac_forget(c);
	if (rc < 0)
		OPENSSL_cleanse(out, out_len);
	return rc;
}

int crypto_hkdf_key(const struct crypto_key *ikm, const void *salt,
		    size_t salt_len, const char *info, struct crypto_key **out)
{
	struct crypto_key *k;
	int rc;

	k = crypto_key_new();
	if (k == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/* Straight into secmem: no stack copy to wipe. */
	rc = crypto_hkdf(ikm->bytes, CRYPTO_KEY_LEN, salt, salt_len, info,
			 info != NULL ? strlen(info) : 0, k->bytes,
			 CRYPTO_KEY_LEN);
	if (rc < 0)
		goto out;
	*out = k;
	k = NULL;	/* transferred */
out:
	crypto_key_free(k);
	return rc;
}

int crypto_hmac_sha256(const struct crypto_key *k, const void *msg,
		       size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
	struct hmac_cache *c;
	int rc;

	rc = algs();
	if (rc < 0)
		return rc;
	c = hmac_cache_get(false);
	if (c == NULL)
		return -ENOMEM;
	rc = hmac_start(c, k, NULL, 0);
	if (!rc)
		rc = hmac_add(c, msg, len);
	if (!rc)
		rc = hmac_end(c, out);
	if (rc < 0)
		c->id = 0;	/* state unknown: key it anew next time */
	return rc;
}

int crypto_sha256(const void *msg, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
	unsigned int n;

	if (algs() < 0)
		return -EIO;
	/* EVP_Digest takes a size_t: no chunking needed. */
	if (!EVP_Digest(len > 0 ? msg : "", len, out, &n, alg_sha256, NULL) ||
	    n != CRYPTO_SHA256_LEN)
		return -EIO;
	return 0;
}

struct crypto_sha256_ctx {
	EVP_MD_CTX *md;
};

struct crypto_sha256_ctx *crypto_sha256_new(void)
{
	struct crypto_sha256_ctx *c;

	if (algs() < 0) {
		errno = EIO;
		return NULL;
	}
	c = OPENSSL_zalloc(sizeof(*c));
	if (c == NULL)
		goto fail;
	c->md = EVP_MD_CTX_new();
	if (c->md == NULL || !EVP_DigestInit_ex(c->md, alg_sha256, NULL))
		goto fail;
	return c;
fail:
	crypto_sha256_free(c);
	errno = ENOMEM;
	return NULL;
}

int crypto_sha256_update(struct crypto_sha256_ctx *c, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	return EVP_DigestUpdate(c->md, p, n) ? 0 : -EIO;
}

int crypto_sha256_final(struct crypto_sha256_ctx *c,
			uint8_t out[CRYPTO_SHA256_LEN])
{
	uint8_t md[CRYPTO_SHA256_LEN];
	unsigned int n;
	int rc = -EIO;

	if (!EVP_DigestFinal_ex(c->md, md, &n) || n != sizeof(md) ||
	    !EVP_DigestInit_ex(c->md, alg_sha256, NULL))
		goto out;
	memcpy(out, md, sizeof(md));
	rc = 0;
out:
	/* A digest may be of secret data. */
	OPENSSL_cleanse(md, sizeof(md));
	return rc;
}

void crypto_sha256_free(struct crypto_sha256_ctx *c)
{
	if (c == NULL)
		return;
	EVP_MD_CTX_free(c->md);
	OPENSSL_free(c);
}
