/*
 * fuzz_keystore.c — libFuzzer harness for keys_decode(), the keystore codec
 * that reads a file anyone with write access to .phifs/ can alter.  It must
 * refuse any input without crashing, leaking or reading out of bounds, and
 * whatever it accepts must encode back to the same bytes.
 *
 * The fixed secret is the raw key of tests/data/golden_v1 (a test key), so
 * the golden keystore is a seed that reaches the slot, MAC and unwrap steps.
 * Random bytes rarely pass the trailing SHA-256, so each input is also tried
 * with its checksum made right, which lets the fuzzer reach the parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/crypto.h"
#include "phifs/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t golden_key[CRYPTO_KEY_LEN] = {
	0x48, 0xa8, 0xd0, 0x67, 0xcf, 0xfa, 0x2d, 0x5f,
	0xaa, 0x59, 0x77, 0xa1, 0x17, 0x2d, 0xf2, 0xf7,
	0x1f, 0xa1, 0x2a, 0x2d, 0xa7, 0x13, 0xdb, 0x31,
	0x6f, 0x81, 0x6c, 0x93, 0x94, 0x1c, 0xca, 0x29,
};

static void try_decode(const struct keys_secret *s, const uint8_t *data,
		       size_t size)
{
	struct keys_store *ks = NULL;
	uint8_t *again = NULL;
	size_t len = 0;

	if (keys_decode(data, size, s, &ks) != 0) {
		if (ks)
			abort();	/* *out is written only on success */
		return;
	}
	if (!keys_active_kek(ks) || !keys_audit_key(ks))
		abort();
	if (keys_encode(ks, &again, &len) != 0 || len != size ||
	    memcmp(again, data, size))
		abort();
	free(again);
	keys_free(ks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct keys_secret *s;
	uint8_t *fixed;

	if (!s) {
		s = keys_secret_raw(golden_key);
		if (!s)
			abort();
	}
	try_decode(s, data, size);
	if (size < CRYPTO_SHA256_LEN)
		return 0;
	fixed = malloc(size);
	if (!fixed)
		return 0;
	memcpy(fixed, data, size);
	if (crypto_sha256(fixed, size - CRYPTO_SHA256_LEN,
			  fixed + size - CRYPTO_SHA256_LEN) == 0)
		try_decode(s, fixed, size);
	free(fixed);
	return 0;
}
