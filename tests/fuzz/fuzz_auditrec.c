/*
 * fuzz_auditrec.c — libFuzzer harness: arbitrary bytes as one integrity
 * log line, and as a one-segment log for the verifier.  A line the parser
 * accepts must encode back to exactly its bytes (one record, one line);
 * a refusal says why in one line; the verifier never crashes.  The line
 * is tried once more with its hash made right, so that mutations reach
 * the scanner's acceptance, not only its hash check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char line[AUDIT_MAX_LINE + 2], fixed[AUDIT_MAX_LINE + 2];

static void one_line(const char *data, size_t size)
{
	struct audit_record r;
	char why[256];
	size_t n;

	why[0] = '\0';
	if (audit_record_parse(data, size, &r, why, sizeof(why))) {
		if (!why[0] || strchr(why, '\n'))
			abort();
		return;
	}
	if (audit_record_encode(&r, line, sizeof(line), &n) ||
	    n != size + 1 || memcmp(line, data, size))
		abort();	/* not the one line of its record */
	audit_record_release(&r);
}

/* ,"hash":"<64 hex>"} at the end: the hex replaced by the body's hash. */
static void with_hash_fixed(const uint8_t *data, size_t size)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t h[CRYPTO_SHA256_LEN];
	size_t body = size - 75;

	if (size < 77 || size > AUDIT_MAX_LINE ||
	    memcmp(data + body, ",\"hash\":\"", 9))
		return;
	memcpy(fixed, data, size);
	if (crypto_sha256(fixed, body, h))
		abort();
	for (int i = 0; i < CRYPTO_SHA256_LEN; i++) {
		fixed[body + 9 + 2 * i] = digits[h[i] >> 4];
		fixed[body + 10 + 2 * i] = digits[h[i] & 15];
	}
	one_line(fixed, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t pub[CRYPTO_ED25519_PUB_LEN] = { 1 };
	struct audit_segment seg = { "seg-00000000000000000001.jsonl",
				     (const char *)data, size };
	struct audit_verdict v;

	one_line((const char *)data, size);
	with_hash_fixed(data, size);
	(void)audit_verify(&seg, 1, pub, NULL, 0, &v);
	return 0;
}
