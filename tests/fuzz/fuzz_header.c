/*
 * fuzz_header.c — libFuzzer harness: arbitrary bytes as a file's header
 * region and first block.  format_header_load must refuse or accept without
 * crashing, and an accepted header's blocks must open or fail cleanly.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "phifs/crypto.h"
#include "phifs/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct crypto_key *kek_of(void *arg, uint32_t v)
{
	return v == 1 ? arg : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct crypto_key *kek;
	static const uint8_t vol[FORMAT_ID_LEN];
	uint8_t region[FORMAT_HEADER_SIZE] = { 0 };
	uint8_t block[FORMAT_STORED_BLOCK] = { 0 }, pt[FORMAT_BLOCK_SIZE];
	struct format_header h;
	struct format_fkeys fk;
	struct format_pick pick;

	if (!kek) {
		uint8_t fixed[CRYPTO_KEY_LEN] = { 7 };

		kek = crypto_key_from(fixed);
	}
	memcpy(region, data, size < sizeof(region) ? size : sizeof(region));
	if (size > sizeof(region))
		memcpy(block, data + sizeof(region),
		       size - sizeof(region) < sizeof(block) ?
		       size - sizeof(region) : sizeof(block));
	for (int i = 0; i < 2; i++)
		(void)format_slot_parse(region + i * FORMAT_SLOT_STRIDE, &h);
	if (format_header_load(region, vol, kek_of, kek, &h, &fk, &pick))
		return 0;
	(void)format_block_open(&fk, 0, block, pt);
	(void)format_map_open(&fk, 0, block, pt);
	format_fkeys_release(&fk);
	return 0;
}
