/*
 * audit_gen.c — writes a test log for tests/test_cli_audit.sh with the real
 * record and chain code: audit_gen DIR KEYFILE NSEGS PER_SEG [open]
 * [pseudo BACKING SRC], the key a phifsctl keygen file (64 hex digits)
 * used as the Ed25519 seed; with pseudo, the paths pseudonymous under the
 * path key of the volume at BACKING, opened with key source SRC.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_testlog.h"
#include "phifs/keys.h"
#include "phifs/volume.h"

/* The volume's audit path key, or NULL. */
static struct crypto_key *path_key(const char *backing, const char *src)
{
	struct crypto_key *k = NULL;
	struct volume *vol;
	char err[512];

	if (volume_open(backing, src, false, &vol, err, sizeof(err))) {
		fprintf(stderr, "audit_gen: %s\n", err);
		return NULL;
	}
	if (keys_volume_key(vol->keys, AUDIT_PATH_KEY_PURPOSE, &k))
		k = NULL;
	volume_close(vol);
	return k;
}

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
	struct crypto_key *key, *pkey = NULL;
	bool open_tail = argc > 5 && !strcmp(argv[5], "open");
	int rest = 5 + open_tail;
	char hex[80] = "";
	FILE *f;
	int rc;

	if (argc < 5 || (argc != rest && (argc != rest + 3 ||
					  strcmp(argv[rest], "pseudo")))) {
		fprintf(stderr, "usage: audit_gen DIR KEYFILE NSEGS PER_SEG "
			"[open] [pseudo BACKING SRC]\n");
		return 2;
	}
	if (argc == rest + 3 &&
	    !(pkey = path_key(argv[rest + 1], argv[rest + 2])))
		return 1;
	f = fopen(argv[2], "r");
	if (!f || !fgets(hex, sizeof(hex), f) ||
	    strlen(hex) < 64 || seed_of(hex, seed)) {
		fprintf(stderr, "audit_gen: %s: not a key file\n", argv[2]);
		return 1;
	}
	fclose(f);
	key = crypto_key_from(seed);
	rc = !key || testlog_make_with(&t, key, (unsigned)atoi(argv[3]),
				       (unsigned)atoi(argv[4]), open_tail,
				       pkey) ||
	     testlog_write_dir(&t, key, argv[1]);
	testlog_free(&t);
	crypto_key_free(key);
	crypto_key_free(pkey);
	if (rc)
		fprintf(stderr, "audit_gen: could not write %s\n", argv[1]);
	return rc;
}
