/*
 * fuzz_journal.c — libFuzzer harness for format_journal_open(), the decoder
 * of a rewrite journal's record head (docs/FORMAT.md, "Journal"), which
 * cfile_journal_replay (private to cfile, in src/cfile_store.c) calls on
 * whatever BACKING/.phifs/journal/<file ID> holds when a file is opened for
 * writing.  It must refuse without crashing or writing past index[64].
 *
 * Random bytes never authenticate, so each input is also sealed as a head's
 * plaintext under the journal's block index (2^62, FORMAT.md) and opened
 * back: that reaches the parser, which must accept exactly the heads with
 * the magic and a count from 1 to 64, and give back their indices.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/crypto.h"
#include "phifs/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define JOURNAL_INDEX (1ULL << 62)

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct format_fkeys fk;
	static bool ready;
	static const uint8_t nonce[CRYPTO_GCM_NONCE_LEN] = { 5 };
	uint8_t stored[FORMAT_STORED_BLOCK] = { 0 };
	uint8_t head[FORMAT_BLOCK_SIZE] = { 0 };
	uint64_t index[FORMAT_JOURNAL_MAX + 1];
	unsigned n = 0, count;
	bool valid;

	if (!ready) {
		uint8_t fixed[CRYPTO_KEY_LEN] = { 3 };
		uint8_t vol[FORMAT_ID_LEN] = { 1 }, file[FORMAT_ID_LEN] = { 2 };
		struct crypto_key *dek = crypto_key_from(fixed);

		if (!dek || format_fkeys_init(&fk, dek, vol, file, 1))
			abort();
		crypto_key_free(dek);
		ready = true;
	}
	/* A guard past the 64 the decoder may write. */
	index[FORMAT_JOURNAL_MAX] = 0x5a5a5a5a5a5a5a5aULL;

	/* The bytes as a stored head: they must not authenticate. */
	memcpy(stored, data, size < sizeof(stored) ? size : sizeof(stored));
	if (!format_journal_open(&fk, stored, index, &n))
		abort();

	/* The bytes as a head's plaintext, sealed. */
	memcpy(head, data, size < sizeof(head) ? size : sizeof(head));
	if (format_block_seal(&fk, JOURNAL_INDEX, nonce, head, stored))
		abort();
	count = (unsigned)head[8] | (unsigned)head[9] << 8 |
		(unsigned)head[10] << 16 | (unsigned)head[11] << 24;
	valid = !memcmp(head, "PHIFSJNL", 8) && count >= 1 &&
		count <= FORMAT_JOURNAL_MAX;
	n = 0;
	if (format_journal_open(&fk, stored, index, &n) !=
	    (valid ? 0 : -EBADMSG))
		abort();
	if (index[FORMAT_JOURNAL_MAX] != 0x5a5a5a5a5a5a5a5aULL)
		abort();
	if (!valid)
		return 0;
	if (n != count)
		abort();
	for (unsigned i = 0; i < n; i++)
		if (index[i] != le64(head + 16 + 8 * i))
			abort();
	return 0;
}
