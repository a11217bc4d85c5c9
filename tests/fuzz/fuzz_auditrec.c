/*
 * fuzz_auditrec.c — libFuzzer harness: arbitrary bytes as one integrity
 * log line, and as a one-segment log for the verifier.  A line the parser
 * accepts must encode back to exactly its bytes (one record, one line);
 * a refusal says why in one line; the verifier never crashes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char line[AUDIT_MAX_LINE + 2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t pub[CRYPTO_ED25519_PUB_LEN] = { 1 };
	struct audit_segment seg = { "seg-00000000000000000001.jsonl",
				     (const char *)data, size };
	struct audit_record r;
	struct audit_verdict v;
	char why[256];
	size_t n;

	if (audit_record_parse((const char *)data, size, &r, why,
			       sizeof(why))) {
		if (!why[0] || strchr(why, '\n'))
			abort();
	} else {
		if (audit_record_encode(&r, line, sizeof(line), &n) ||
		    n != size + 1 || memcmp(line, data, size))
			abort();	/* not the one line of its record */
		audit_record_release(&r);
	}
	(void)audit_verify(&seg, 1, pub, NULL, 0, &v);
	return 0;
}
