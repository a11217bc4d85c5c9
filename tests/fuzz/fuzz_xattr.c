/*
 * fuzz_xattr.c — libFuzzer harness for format_xattr_open(), which reads an
 * extended attribute as the backing directory stores it, where anyone with
 * write access to the backing directory can plant any value.  It must
 * refuse without crashing or reading out of bounds, and what it accepts
 * must be a name of 1..255 bytes without a NUL and a value that fits.
 *
 * Random bytes never carry a tag that verifies, so each input is also
 * sealed (its first byte says where the name ends) and opened back, which
 * must give the same name and value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/crypto.h"
#include "phifs/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t vol[FORMAT_ID_LEN] = { 1, 2, 3 };
static uint8_t sealed[FORMAT_XATTR_SEALED_MAX + 1];
static uint8_t value[FORMAT_XATTR_SEALED_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct crypto_key *key;
	char bname[FORMAT_XATTR_BNAME_MAX], name[FORMAT_XATTR_NAME_MAX + 1];
	char given[FORMAT_XATTR_NAME_MAX + 1];
	size_t n = size < sizeof(sealed) ? size : sizeof(sealed), k;
	ssize_t got;

	if (!key) {
		uint8_t fixed[CRYPTO_KEY_LEN] = { 9 };

		key = crypto_key_from(fixed);
	}
	/* As it comes. */
	if (format_xattr_bname(key, 7, "user.x", bname))
		abort();
	got = format_xattr_open(key, vol, 7, bname, data, n, name, value);
	if (got >= 0)
		abort();	/* nothing random authenticates */

	/* Sealed: name from the bytes after the first, up to its count. */
	if (size < 2)
		return 0;
	k = 1 + data[0] % FORMAT_XATTR_NAME_MAX;
	if (k > size - 1)
		k = size - 1;
	memcpy(given, data + 1, k);
	given[k] = 0;
	if (!given[0] || format_xattr_bname(key, 7, given, bname))
		return 0;
	n = size - 1 - k;
	if (n > FORMAT_XATTR_VALUE_MAX)
		n = FORMAT_XATTR_VALUE_MAX;
	got = format_xattr_seal(key, vol, 7, bname, given, data + 1 + k, n,
				sealed);
	if (got < 0)
		abort();
	got = format_xattr_open(key, vol, 7, bname, sealed, (size_t)got, name,
				value);
	if (got != (ssize_t)n || strcmp(name, given) ||
	    (n && memcmp(value, data + 1 + k, n)))
		abort();
	return 0;
}
