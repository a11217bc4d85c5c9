/*
 * crypto_ed25519.c — Ed25519 signatures (RFC 8032, pure, one shot), part of
 * the crypto module and, like the rest of it, a user of OpenSSL: key
 * generation, the public key of a seed, signing and verifying.  The seed is
 * a crypto_key in secmem; OpenSSL's copy of it is cleansed when freed.
 * Knows nothing of the audit log that the signatures vouch for.
 */
#include "crypto_impl.h"

#include <errno.h>
#include <string.h>

/* A new EVP_PKEY from a seed; NULL on failure. */
static EVP_PKEY *ed25519_priv(const struct crypto_key *priv)
{
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
					    priv->bytes, CRYPTO_KEY_LEN);
}

int crypto_ed25519_public(const struct crypto_key *priv,
			  uint8_t pub[CRYPTO_ED25519_PUB_LEN])
{
	uint8_t buf[CRYPTO_ED25519_PUB_LEN];
	size_t n = sizeof(buf);
	EVP_PKEY *pk;
	int rc = -EIO;

	pk = ed25519_priv(priv);
	if (pk == NULL)
		goto out;
	if (!EVP_PKEY_get_raw_public_key(pk, buf, &n) || n != sizeof(buf))
		goto out;
	memcpy(pub, buf, sizeof(buf));
	rc = 0;
out:
	EVP_PKEY_free(pk);		/* cleanses the private key */
	return rc;
}

int crypto_ed25519_keygen(struct crypto_key **priv,
			  uint8_t pub[CRYPTO_ED25519_PUB_LEN])
{
	struct crypto_key *k;
	int rc;

	/* An Ed25519 private key is 32 random bytes (RFC 8032, 5.1.5). */
	k = crypto_key_random();
	if (k == NULL) {
		rc = -EIO;
		goto out;
	}
	rc = crypto_ed25519_public(k, pub);
	if (rc < 0)
		goto out;
	*priv = k;
	k = NULL;	/* transferred */
out:
	crypto_key_free(k);
	return rc;
}

int crypto_ed25519_sign(const struct crypto_key *priv, const void *msg,
			size_t len, uint8_t sig[CRYPTO_ED25519_SIG_LEN])
{
	uint8_t buf[CRYPTO_ED25519_SIG_LEN];
	size_t n = sizeof(buf);
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY *pk;
	int rc = -EIO;

	pk = ed25519_priv(priv);
	mctx = EVP_MD_CTX_new();
	if (pk == NULL || mctx == NULL)
		goto out;
	/* Pure Ed25519 signs in one shot: no digest, no update calls. */
	if (!EVP_DigestSignInit(mctx, NULL, NULL, NULL, pk) ||
	    !EVP_DigestSign(mctx, buf, &n, len > 0 ? msg : (const void *)"",
			    len) ||
	    n != sizeof(buf))
		goto out;
	memcpy(sig, buf, sizeof(buf));
	rc = 0;
out:
	EVP_MD_CTX_free(mctx);
	EVP_PKEY_free(pk);
	return rc;
}

int crypto_ed25519_verify(const uint8_t pub[CRYPTO_ED25519_PUB_LEN],
			  const void *msg, size_t len,
			  const uint8_t sig[CRYPTO_ED25519_SIG_LEN])
{
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY *pk;
	int rc;

	pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub,
					 CRYPTO_ED25519_PUB_LEN);
	mctx = EVP_MD_CTX_new();
	if (mctx == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/* A public key OpenSSL will not take cannot vouch for anything. */
	rc = -EBADMSG;
	if (pk == NULL || !EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pk))
		goto out;
	/* 0 is a bad signature, < 0 a malformed one: both are rejections. */
	rc = EVP_DigestVerify(mctx, sig, CRYPTO_ED25519_SIG_LEN,
			      len > 0 ? msg : (const void *)"", len) == 1 ?
		0 : -EBADMSG;
out:
	EVP_MD_CTX_free(mctx);
	EVP_PKEY_free(pk);
	return rc;
}
