/*
 * crypto_scrypt.c — scrypt, the stretching of a passphrase into a key, part
 * of the crypto module and, like the rest of it, a user of OpenSSL: the
 * parameters are checked against OpenSSL's own limits here, so that a
 * refusal reads -EINVAL and a failure after the checks -ENOMEM.  Knows
 * nothing of keystores or of the costs a keystore may ask for (keys).
 */
#include "crypto_impl.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

/*
 * OpenSSL's own limits (crypto/evp/pbe_scrypt.c, providers' kdf_scrypt.c),
 * checked here so that a refusal is -EINVAL and a later failure -ENOMEM.
 * Returns the memory scrypt needs, or 0 if the parameters are refused.
 */
static uint64_t scrypt_mem(unsigned log_n, uint32_t r, uint32_t p)
{
	uint64_t n, blen, vlen;

	if (log_n < 1 || log_n > 63 || r == 0 || p == 0)
		return 0;
	n = (uint64_t)1 << log_n;
	if (p > ((1U << 30) - 1) / r)			/* p * r < 2^30 */
		return 0;
	if (16 * (uint64_t)r <= 63 && log_n >= 16 * r)	/* N < 2^(16 r) */
		return 0;
	blen = (uint64_t)p * 128 * r;
	if (blen > INT_MAX)
		return 0;
	if (n + 2 > UINT64_MAX / 128 / r)
		return 0;
	vlen = 128 * r * (n + 2);
	if (vlen > UINT64_MAX - blen || blen + vlen > SIZE_MAX)
		return 0;
	return blen + vlen;
}

int crypto_scrypt(const void *pass, size_t pass_len, const void *salt,
		  size_t salt_len, unsigned log_n, uint32_t r, uint32_t p,
		  void *out, size_t out_len)
{
	OSSL_PARAM params[7], *pp = params;
	EVP_KDF_CTX *kctx = NULL;
	EVP_KDF *alg;
	uint64_t n, maxmem;
	int rc;

	maxmem = scrypt_mem(log_n, r, p);
	if (maxmem == 0 || out_len == 0) {
		rc = -EINVAL;
		goto out;
	}
	n = (uint64_t)1 << log_n;
	alg = crypto_alg_scrypt();
	if (alg == NULL) {
		rc = -EIO;
		goto out;
	}
	kctx = EVP_KDF_CTX_new(alg);
	if (kctx == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/*
	 * OpenSSL refuses anything above maxmem, 32 MiB by default, which
	 * N = 2^17, r = 8 (128 MiB) exceeds: allow what these parameters
	 * need and no more.
	 */
	*pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
						  (void *)(pass ? pass : ""),
						  pass_len);
	*pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
						  (void *)(salt ? salt : ""),
						  salt_len);
	*pp++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*pp++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
	*pp++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
	*pp++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM,
					    &maxmem);
	*pp = OSSL_PARAM_construct_end();
	if (EVP_KDF_CTX_set_params(kctx, params) != 1) {
		rc = -EINVAL;
		goto out;
	}
	/* The parameters passed the checks above: what is left is memory. */
	rc = EVP_KDF_derive(kctx, out, out_len, NULL) == 1 ? 0 : -ENOMEM;
out:
	EVP_KDF_CTX_free(kctx);		/* cleanses its copy of the password */
	return rc;
}
