/*
 * fuzz_symlink.c — libFuzzer harness for format_symlink_open(), which reads
 * a symlink's target as the backing directory stores it, where anyone with
 * write access to the backing directory can plant any link.  It must refuse
 * without crashing or reading out of bounds, and what it accepts must be a
 * NUL-terminated target no longer than format_symlink_length() says.
 *
 * Random text rarely has the "phifs1:" prefix or a tag that verifies, so
 * each input is also tried behind the prefix, and sealed as a target and
 * opened back, which must give the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/crypto.h"
#include "phifs/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t vol[FORMAT_ID_LEN] = { 1, 2, 3 };

/* Opens sealed into buffers of every interesting size. */
static void try_open(const struct crypto_key *key, const char *sealed)
{
	static const size_t maxes[] = { 1, 2, 17, FORMAT_SYMLINK_MAX + 1 };
	char target[FORMAT_SYMLINK_MAX + 1];

	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		if (format_symlink_open(key, vol, sealed, target, maxes[i]))
			continue;
		if (strlen(target) >= maxes[i] ||
		    strlen(target) > format_symlink_length(strlen(sealed)))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct crypto_key *key;
	char sealed[FORMAT_SYMLINK_SEALED_MAX + 8];
	char target[FORMAT_SYMLINK_MAX + 1], back[FORMAT_SYMLINK_MAX + 1];
	size_t n = size < FORMAT_SYMLINK_SEALED_MAX ? size :
		   FORMAT_SYMLINK_SEALED_MAX;

	if (!key) {
		uint8_t fixed[CRYPTO_KEY_LEN] = { 9 };

		key = crypto_key_from(fixed);
	}
	/* As it comes, then behind the prefix. */
	memcpy(sealed, data, n);
	sealed[n] = 0;
	try_open(key, sealed);
	memcpy(sealed, "phifs1:", 7);
	memcpy(sealed + 7, data, n);
	sealed[7 + n] = 0;
	try_open(key, sealed);

	/* As a target: the round trip gives it back. */
	n = size < FORMAT_SYMLINK_MAX ? size : FORMAT_SYMLINK_MAX;
	memcpy(target, data, n);
	target[n] = 0;
	if (format_symlink_seal(key, vol, target, sealed))
		return 0;
	if (format_symlink_open(key, vol, sealed, back, sizeof(back)) ||
	    strcmp(back, target) ||
	    format_symlink_length(strlen(sealed)) != strlen(target))
		abort();
	return 0;
}
