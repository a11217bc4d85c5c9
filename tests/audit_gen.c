/*
 * audit_gen.c — writes a test log for tests/test_cli_audit.sh with the real
 * record and chain code: audit_gen DIR KEYFILE NSEGS PER_SEG [open], the
 * key a phifsctl keygen file (64 hex digits) used as the Ed25519 seed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_testlog.h"

/* 64 hex digits, then a newline or nothing. */
static int seed_of(const char *hex, uint8_t seed[CRYPTO_KEY_LEN])
{
	for (int i = 0; i < CRYPTO_KEY_LEN; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		seed[i] = (uint8_t)v;
	}
	return hex[64] == '\n' || hex[64] == '\0' ? 0 : -1;
}

int main(int argc, char **argv)
{
	static struct testlog t;
	uint8_t seed[CRYPTO_KEY_LEN];
	struct crypto_key *key;
	char hex[80] = "";
	FILE *f;
	int rc;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: audit_gen DIR KEYFILE NSEGS PER_SEG "
			"[open]\n");
		return 2;
	}
	f = fopen(argv[2], "r");
	if (!f || !fgets(hex, sizeof(hex), f) ||
	    strlen(hex) < 64 || seed_of(hex, seed)) {
		fprintf(stderr, "audit_gen: %s: not a key file\n", argv[2]);
		return 1;
	}
	fclose(f);
	key = crypto_key_from(seed);
	rc = !key || testlog_make(&t, key, (unsigned)atoi(argv[3]),
				  (unsigned)atoi(argv[4]), argc == 6) ||
	     testlog_write_dir(&t, key, argv[1]);
	testlog_free(&t);
	crypto_key_free(key);
	if (rc)
		fprintf(stderr, "audit_gen: could not write %s\n", argv[1]);
	return rc;
}
