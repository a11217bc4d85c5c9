/*
 * crypto_impl.h — what the files of the crypto module share (crypto.c: the
 * algorithms fetched once, AES-256-GCM, key wrapping, HKDF, HMAC, SHA-256
 * and the CSPRNG; crypto_scrypt.c: passphrase stretching;
 * crypto_ed25519.c: signatures).  Private to them: it includes OpenSSL,
 * which no other module may.
 */
#ifndef PHIFS_CRYPTO_IMPL_H
#define PHIFS_CRYPTO_IMPL_H

#include <openssl/evp.h>

#include "phifs/crypto.h"

/*
 * The scrypt KDF, fetched once for the life of the process (never freed),
 * or NULL when OpenSSL could not give the algorithms phifs needs.
 */
EVP_KDF *crypto_alg_scrypt(void);

#endif
