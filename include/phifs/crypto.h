/*
 * crypto.h — the cryptographic primitives phifs uses: AES-256-GCM, HKDF-SHA256,
 * HMAC-SHA256, SHA-256, scrypt, Ed25519, a CSPRNG and constant-time compare.
 * The only module that includes OpenSSL.  Knows nothing of files, blocks or
 * keystores.
 *
 * All functions return 0 or -errno unless stated otherwise.  Keys are passed
 * as struct crypto_key, which always lives in secmem (locked, wiped on free).
 * All functions are thread-safe.  GCM keeps one cipher context per thread and
 * remembers the last keys it was given, so sealing block after block with the
 * same key costs no allocation and no key schedule.
 */
#ifndef PHIFS_CRYPTO_H
#define PHIFS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_LEN 32
#define CRYPTO_GCM_NONCE_LEN 12
#define CRYPTO_GCM_TAG_LEN 16
#define CRYPTO_SHA256_LEN 32
#define CRYPTO_ED25519_PUB_LEN 32
#define CRYPTO_ED25519_SIG_LEN 64
/* A key wrapped by crypto_wrap_key: nonce || ciphertext || tag. */
#define CRYPTO_WRAPPED_LEN \
	(CRYPTO_GCM_NONCE_LEN + CRYPTO_KEY_LEN + CRYPTO_GCM_TAG_LEN)

/*
 * A 256-bit secret.  `id` is a process-unique number given at creation
 * (never reused), which lets GCM reuse a thread's cipher context while the
 * key is the same.  Change `bytes` only through this API.
 */
struct crypto_key {
	uint8_t bytes[CRYPTO_KEY_LEN];
	uint64_t id;
};

/*
 * New zeroed key in secmem, or NULL (ENOMEM): a target for unwrap or HKDF,
 * which give it a new id when they fill it.  Do not write `bytes` directly.
 */
struct crypto_key *crypto_key_new(void);
/* New key from 32 given bytes (the caller wipes its copy), or NULL. */
struct crypto_key *crypto_key_from(const uint8_t bytes[CRYPTO_KEY_LEN]);
/* New random key, or NULL. */
struct crypto_key *crypto_key_random(void);
/* Wipes and frees; NULL does nothing. */
void crypto_key_free(struct crypto_key *k);

/* Fills buf with n bytes from the OS CSPRNG (via OpenSSL's DRBG). */
int crypto_random(void *buf, size_t n);
/*
 * n bytes for GCM nonces: unique (drawn from crypto_random, each byte
 * handed out once) but not for keys: a per-thread pool, cheap per call.
 */
int crypto_nonce(void *buf, size_t n);

/* Constant-time equality: 1 if the n bytes are equal, 0 otherwise. */
int crypto_memeq(const void *a, const void *b, size_t n);

/*
 * AES-256-GCM with a 96-bit nonce and a 128-bit tag.  ct may equal pt (in
 * place).  len may be 0 (tag over the AAD alone).  open returns -EBADMSG when
 * the tag does not verify, and then leaves pt wiped (zeroed).
 */
int crypto_gcm_seal(const struct crypto_key *k,
		    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
		    const void *aad, size_t aad_len,
		    const void *pt, size_t len, void *ct,
		    uint8_t tag[CRYPTO_GCM_TAG_LEN]);
int crypto_gcm_open(const struct crypto_key *k,
		    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
		    const void *aad, size_t aad_len,
		    const void *ct, size_t len, void *pt,
		    const uint8_t tag[CRYPTO_GCM_TAG_LEN]);

/*
 * Wraps a 32-byte key under kek with AES-256-GCM and a fresh random nonce,
 * binding aad: out = nonce || ciphertext || tag.  unwrap returns
 * -EKEYREJECTED if kek or aad is wrong or out was altered; *key is written
 * (and given a new id) only on success.
 */
int crypto_wrap_key(const struct crypto_key *kek, const void *aad,
		    size_t aad_len, const struct crypto_key *key,
		    uint8_t out[CRYPTO_WRAPPED_LEN]);
int crypto_unwrap_key(const struct crypto_key *kek, const void *aad,
		      size_t aad_len, const uint8_t in[CRYPTO_WRAPPED_LEN],
		      struct crypto_key *key);

/* HKDF-SHA256 (RFC 5869), extract and expand.  salt may be NULL/0. */
int crypto_hkdf(const void *ikm, size_t ikm_len, const void *salt,
		size_t salt_len, const void *info, size_t info_len,
		void *out, size_t out_len);
/* HKDF straight into a new key; *out written only on success. */
int crypto_hkdf_key(const struct crypto_key *ikm, const void *salt,
		    size_t salt_len, const char *info, struct crypto_key **out);

/* HMAC-SHA256 of msg under a 32-byte key. */
int crypto_hmac_sha256(const struct crypto_key *k, const void *msg,
		       size_t len, uint8_t out[CRYPTO_SHA256_LEN]);

/* SHA-256, one shot. */
int crypto_sha256(const void *msg, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);

/* SHA-256, streaming.  new returns NULL on ENOMEM; free(NULL) does nothing. */
struct crypto_sha256_ctx;
struct crypto_sha256_ctx *crypto_sha256_new(void);
int crypto_sha256_update(struct crypto_sha256_ctx *c, const void *p, size_t n);
/* Writes the digest and resets the context for reuse. */
int crypto_sha256_final(struct crypto_sha256_ctx *c,
			uint8_t out[CRYPTO_SHA256_LEN]);
void crypto_sha256_free(struct crypto_sha256_ctx *c);

/*
 * scrypt (RFC 7914) with N = 2^log_n.  Memory use is 128 * r * N bytes;
 * returns -EINVAL for parameters OpenSSL refuses.
 */
int crypto_scrypt(const void *pass, size_t pass_len, const void *salt,
		  size_t salt_len, unsigned log_n, uint32_t r, uint32_t p,
		  void *out, size_t out_len);

/*
 * Ed25519.  The private key is its 32-byte seed, held in a crypto_key.
 * verify returns 0 for a good signature, -EBADMSG for a bad one, and another
 * -errno if it could not check: anything but 0 means reject.
 */
int crypto_ed25519_keygen(struct crypto_key **priv,
			  uint8_t pub[CRYPTO_ED25519_PUB_LEN]);
int crypto_ed25519_public(const struct crypto_key *priv,
			  uint8_t pub[CRYPTO_ED25519_PUB_LEN]);
int crypto_ed25519_sign(const struct crypto_key *priv, const void *msg,
			size_t len, uint8_t sig[CRYPTO_ED25519_SIG_LEN]);
int crypto_ed25519_verify(const uint8_t pub[CRYPTO_ED25519_PUB_LEN],
			  const void *msg, size_t len,
			  const uint8_t sig[CRYPTO_ED25519_SIG_LEN]);

#endif
