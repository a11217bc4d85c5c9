/*
 * test_format.c — offset maths up to the largest size, header slots and
 * sealed blocks: round trips and every kind of tampering.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/crypto.h"
#include "phifs/format.h"
#include "testutil.h"

#define GROUP_STRIDE ((uint64_t)(FORMAT_GROUP_BLOCKS + 1) * FORMAT_STORED_BLOCK)

static struct crypto_key *kek1, *kek2;
static uint8_t vol[FORMAT_ID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };

static const struct crypto_key *kek_of(void *arg, uint32_t v)
{
	(void)arg;
	return v == 1 ? kek1 : v == 2 ? kek2 : NULL;
}

/* A fresh nonce in a static buffer, for one call. */
static const uint8_t *nonce(void)
{
	static uint8_t n[CRYPTO_GCM_NONCE_LEN];

	cr_assert_eq(crypto_random(n, sizeof(n)), 0);
	return n;
}

static void setup(void)
{
	kek1 = crypto_key_random();
	kek2 = crypto_key_random();
	cr_assert(kek1 && kek2);
}

static void teardown(void)
{
	crypto_key_free(kek1);
	crypto_key_free(kek2);
}

TestSuite(format, .init = setup, .fini = teardown);

Test(format, block_count_rounds_up)
{
	cr_assert_eq(format_nblocks(0), 0);
	cr_assert_eq(format_nblocks(1), 1);
	cr_assert_eq(format_nblocks(4095), 1);
	cr_assert_eq(format_nblocks(4096), 1);
	cr_assert_eq(format_nblocks(4097), 2);
	cr_assert_eq(format_nblocks(FORMAT_MAX_SIZE),
		     FORMAT_MAX_SIZE / FORMAT_BLOCK_SIZE);
}

Test(format, blocks_follow_the_header_and_maps_close_each_group)
{
	cr_assert_eq(format_block_offset(0), FORMAT_HEADER_SIZE);
	cr_assert_eq(format_block_offset(1),
		     FORMAT_HEADER_SIZE + FORMAT_STORED_BLOCK);
	cr_assert_eq(format_map_offset(0),
		     format_block_offset(FORMAT_GROUP_BLOCKS - 1) +
			     FORMAT_STORED_BLOCK);
	cr_assert_eq(format_block_offset(FORMAT_GROUP_BLOCKS),
		     format_map_offset(0) + FORMAT_STORED_BLOCK);
	cr_assert_eq(format_map_offset(7) + FORMAT_STORED_BLOCK,
		     format_block_offset(8 * (uint64_t)FORMAT_GROUP_BLOCKS));
}

Test(format, backing_size_of_dense_files)
{
	cr_assert_eq(format_backing_size(0), FORMAT_HEADER_SIZE);
	cr_assert_eq(format_backing_size(1),
		     FORMAT_HEADER_SIZE + FORMAT_STORED_BLOCK);
	cr_assert_eq(format_backing_size(4096),
		     FORMAT_HEADER_SIZE + FORMAT_STORED_BLOCK);
	cr_assert_eq(format_backing_size(4097),
		     FORMAT_HEADER_SIZE + 2 * FORMAT_STORED_BLOCK);
	/* Past 4 GiB: 2^20 blocks, 32 map slots among them. */
	cr_assert_eq(format_backing_size(1ULL << 32),
		     FORMAT_HEADER_SIZE + 32 * GROUP_STRIDE -
			     FORMAT_STORED_BLOCK);
}

Test(format, the_largest_file_fits_an_off_t_and_one_group_more_would_not)
{
	uint64_t last = format_nblocks(FORMAT_MAX_SIZE) - 1;
	uint64_t g = last / FORMAT_GROUP_BLOCKS;

	cr_assert_eq(FORMAT_MAX_SIZE % FORMAT_BLOCK_SIZE, 0);
	cr_assert(format_block_offset(last) + FORMAT_STORED_BLOCK <=
		  (uint64_t)INT64_MAX);
	cr_assert(format_map_offset(g) + FORMAT_STORED_BLOCK <=
		  (uint64_t)INT64_MAX);
	cr_assert(format_map_offset(g + 1) + FORMAT_STORED_BLOCK >
		  (uint64_t)INT64_MAX);
	cr_assert(FORMAT_MAX_SIZE > (1ULL << 62), "max size %llu",
		  (unsigned long long)FORMAT_MAX_SIZE);
}

#define TREE (FORMAT_F_SPARSE | FORMAT_F_TREE)
#define F ((uint64_t)FORMAT_TREE_FANOUT)

Test(format, a_tree_file_has_its_node_slots_after_the_first_map_they_cover)
{
	const uint64_t sb = FORMAT_STORED_BLOCK, gb = FORMAT_GROUP_BLOCKS;

	/* Group 0 as in every other layout, so a dense file can go tree. */
	for (uint64_t b = 0; b < gb; b += 4099)
		cr_assert_eq(format_block_offset_in(TREE, b),
			     format_block_offset(b));
	cr_assert_eq(format_node_offset(TREE, 0, 0), format_map_offset(0));
	cr_assert_eq(format_node_offset(TREE, 1, 0), format_map_offset(0) + sb);
	cr_assert_eq(format_node_offset(TREE, 2, 0),
		     format_map_offset(0) + 2 * sb);
	cr_assert_eq(format_block_offset_in(TREE, gb),
		     format_map_offset(0) + 3 * sb);
	/* Group 1 .. F - 1: one stride each; level 1 node 1 after group F. */
	cr_assert_eq(format_node_offset(TREE, 0, F - 1) + sb,
		     format_block_offset_in(TREE, F * gb));
	cr_assert_eq(format_node_offset(TREE, 1, 1),
		     format_node_offset(TREE, 0, F) + sb);
	cr_assert_eq(format_block_offset_in(TREE, (F + 1) * gb),
		     format_node_offset(TREE, 1, 1) + sb);
	/* Level 2 node 1 after group F^2 and level 1 node F. */
	cr_assert_eq(format_node_offset(TREE, 1, F),
		     format_node_offset(TREE, 0, F * F) + sb);
	cr_assert_eq(format_node_offset(TREE, 2, 1),
		     format_node_offset(TREE, 1, F) + sb);
	cr_assert_eq(format_block_offset_in(TREE, (F * F + 1) * gb),
		     format_node_offset(TREE, 2, 1) + sb);
	/* Nodes a layout lacks have no place; stored indices decode. */
	cr_assert_eq(format_node_offset(FORMAT_F_SPARSE, 1, 0), 0);
	cr_assert_eq(format_node_offset(TREE, FORMAT_TREE_LEVELS, 0), 0);
	cr_assert_eq(format_stored_offset(TREE, FORMAT_NODE_INDEX(2, 1)),
		     format_node_offset(TREE, 2, 1));
	cr_assert_eq(format_stored_offset(TREE, FORMAT_MAP_INDEX(7)),
		     format_node_offset(TREE, 0, 7));
	cr_assert_eq(format_stored_offset(FORMAT_F_SPARSE, FORMAT_MAP_INDEX(7)),
		     format_map_offset(7));
	cr_assert_eq(format_stored_offset(TREE, 5 * gb + 3),
		     format_block_offset_in(TREE, 5 * gb + 3));
	cr_assert_eq(format_stored_offset(FORMAT_F_SPARSE,
					  FORMAT_NODE_INDEX(1, 0)), 0);
}

Test(format, the_largest_tree_file_fits_an_off_t)
{
	uint64_t last = format_nblocks(FORMAT_MAX_SIZE_TREE) - 1;
	uint64_t g = last / FORMAT_GROUP_BLOCKS;

	cr_assert_eq(FORMAT_MAX_SIZE_TREE % FORMAT_BLOCK_SIZE, 0);
	cr_assert_lt(FORMAT_MAX_SIZE_TREE, FORMAT_MAX_SIZE);
	cr_assert_eq(format_max_size(TREE), FORMAT_MAX_SIZE_TREE);
	cr_assert_eq(format_max_size(FORMAT_F_SPARSE), FORMAT_MAX_SIZE);
	cr_assert(format_block_offset_in(TREE, last) + FORMAT_STORED_BLOCK <=
		  (uint64_t)INT64_MAX);
	cr_assert(format_node_offset(TREE, 0, g) + FORMAT_STORED_BLOCK <=
		  (uint64_t)INT64_MAX);
	cr_assert(format_node_offset(TREE, 2, last / (F * F * F)) +
		  FORMAT_STORED_BLOCK <= (uint64_t)INT64_MAX);
	cr_assert(FORMAT_MAX_SIZE_TREE > (1ULL << 62));
}

Test(format, tree_offsets_never_overlap_up_to_the_max)
{
	const uint64_t gb = FORMAT_GROUP_BLOCKS, sb = FORMAT_STORED_BLOCK;
	uint64_t seed = 7, maxg = format_nblocks(FORMAT_MAX_SIZE_TREE) / gb;

	for (int i = 0; i < 100000; i++) {
		/* Every fourth sample on a level-1 or level-2 boundary. */
		uint64_t g = tu_rand(&seed) % (maxg - 1);
		uint64_t b, o;

		if (i % 4 == 1)
			g -= g % F;
		else if (i % 4 == 2)
			g -= g % (F * F);
		b = g * gb + tu_rand(&seed) % (gb - 1);
		o = format_block_offset_in(TREE, b);
		cr_assert_eq(format_block_offset_in(TREE, b + 1), o + sb);
		/* After a group: its map, then a level-1 node if the group
		 * is the first of one, then a level-2 node likewise. */
		o = format_block_offset_in(TREE, g * gb + gb - 1);
		cr_assert_eq(format_node_offset(TREE, 0, g), o + sb);
		cr_assert_eq(format_block_offset_in(TREE, (g + 1) * gb),
			     o + sb * (2 + (g % F == 0) + (g % (F * F) == 0)));
	}
}

Test(format, offsets_increase_strictly_and_never_overlap_up_to_the_max)
{
	uint64_t seed = 42, maxb = format_nblocks(FORMAT_MAX_SIZE);

	for (int i = 0; i < 100000; i++) {
		uint64_t b = tu_rand(&seed) % (maxb - 1);
		uint64_t o = format_block_offset(b);
		uint64_t next = format_block_offset(b + 1);

		cr_assert(next >= o + FORMAT_STORED_BLOCK);
		if ((b + 1) % FORMAT_GROUP_BLOCKS)
			cr_assert_eq(next, o + FORMAT_STORED_BLOCK);
		else
			cr_assert_eq(next, format_map_offset(b /
				     FORMAT_GROUP_BLOCKS) +
				     FORMAT_STORED_BLOCK);
		cr_assert_eq(format_nblocks(b * FORMAT_BLOCK_SIZE + 1), b + 1);
	}
}

/* A header for a fresh file, its keys, and the region with both slots. */
struct hdr_fixture {
	struct format_header h;
	struct format_fkeys fk;
	uint8_t region[FORMAT_HEADER_SIZE];
};

static void make_header(struct hdr_fixture *x, uint32_t keyver,
			const uint8_t *volume)
{
	struct crypto_key *dek = crypto_key_random();

	memset(x, 0, sizeof(*x));
	x->h.version = FORMAT_VERSION;
	x->h.key_version = keyver;
	x->h.dek_gen = 1;
	x->h.size = 123456;
	memcpy(x->h.volume_id, volume, FORMAT_ID_LEN);
	cr_assert_eq(crypto_random(x->h.file_id, FORMAT_ID_LEN), 0);
	cr_assert_eq(format_dek_wrap(&x->h, kek_of(NULL, keyver), dek), 0);
	cr_assert_eq(format_fkeys_init(&x->fk, dek, volume, x->h.file_id, 1),
		     0);
	crypto_key_free(dek);
	x->h.seq = 5;
	cr_assert_eq(format_slot_encode(&x->h, &x->fk, x->region), 0);
	x->h.seq = 6;
	x->h.size = 654321;
	cr_assert_eq(format_slot_encode(&x->h, &x->fk,
					x->region + FORMAT_SLOT_STRIDE), 0);
}

static int load_pick(const uint8_t *region, struct format_header *h,
		     struct format_pick *pick)
{
	struct format_fkeys fk;
	int rc = format_header_load(region, vol, kek_of, NULL, h, &fk, pick);

	if (!rc)
		format_fkeys_release(&fk);
	return rc;
}

static int load(const uint8_t *region, struct format_header *h, int *slot)
{
	struct format_pick pick;
	int rc = load_pick(region, h, &pick);

	if (!rc)
		*slot = pick.slot;
	return rc;
}

Test(format, the_slot_with_the_higher_sequence_number_wins)
{
	struct hdr_fixture x;
	struct format_header h;
	int slot;

	make_header(&x, 1, vol);
	cr_assert_eq(load(x.region, &h, &slot), 0);
	cr_assert_eq(slot, 1);
	cr_assert_eq(h.seq, 6);
	cr_assert_eq(h.size, 654321);
	cr_assert_arr_eq(h.file_id, x.h.file_id, FORMAT_ID_LEN);
	format_fkeys_release(&x.fk);
}

Test(format, a_torn_slot_falls_back_to_the_other)
{
	struct hdr_fixture x;
	struct format_header h;
	int slot;

	make_header(&x, 1, vol);
	/* Half of the newer slot written, half still old bytes. */
	memset(x.region + FORMAT_SLOT_STRIDE + 100, 0x5a, 156);
	cr_assert_eq(load(x.region, &h, &slot), 0);
	cr_assert_eq(slot, 0);
	cr_assert_eq(h.size, 123456);
	format_fkeys_release(&x.fk);
}

Test(format, the_pick_names_a_refused_newer_slot_and_its_seq)
{
	struct hdr_fixture x;
	struct format_header h;
	struct format_pick p;

	make_header(&x, 1, vol);
	cr_assert_eq(load_pick(x.region, &h, &p), 0);
	cr_assert_eq(p.slot, 1);
	cr_assert_eq(p.refused, -1, "both slots good: nothing refused");

	x.region[FORMAT_SLOT_STRIDE + 70] ^= 0x01;	/* its size: MAC */
	cr_assert_eq(load_pick(x.region, &h, &p), 0);
	cr_assert_eq(p.slot, 0);
	cr_assert_eq(h.seq, 5);
	cr_assert_eq(p.refused, 1);
	cr_assert_eq(p.refused_rc, -EUCLEAN);
	cr_assert(p.refused_seq_known);
	cr_assert_eq(p.refused_seq, 6);

	x.region[FORMAT_SLOT_STRIDE] ^= 0x01;		/* its magic */
	cr_assert_eq(load_pick(x.region, &h, &p), 0);
	cr_assert_eq(p.refused, 1, "an unparsed slot may have been newer");
	cr_assert(!p.refused_seq_known);

	/* The older slot damaged: the newer is used, and the older is
	 * never tried (one unwrap per open), so not named. */
	format_fkeys_release(&x.fk);
	make_header(&x, 1, vol);
	x.region[70] ^= 0x01;
	cr_assert_eq(load_pick(x.region, &h, &p), 0);
	cr_assert_eq(p.slot, 1);
	cr_assert_eq(p.refused, -1);
	format_fkeys_release(&x.fk);
}

Test(format, every_flipped_byte_of_a_lone_slot_is_refused)
{
	struct hdr_fixture x;
	struct format_header h;
	int slot;

	make_header(&x, 1, vol);
	memset(x.region + FORMAT_SLOT_STRIDE, 0, FORMAT_SLOT_SIZE);
	cr_assert_eq(load(x.region, &h, &slot), 0);
	for (unsigned i = 0; i < FORMAT_SLOT_SIZE; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			int rc;

			x.region[i] ^= (uint8_t)(1u << bit);
			rc = load(x.region, &h, &slot);
			cr_assert(rc == -EUCLEAN || rc == -EPROTO ||
				  rc == -EKEYREJECTED || rc == -ENOKEY,
				  "byte %u bit %d: rc %d", i, bit, rc);
			x.region[i] ^= (uint8_t)(1u << bit);
		}
	}
	format_fkeys_release(&x.fk);
}

Test(format, a_header_of_another_volume_is_foreign)
{
	struct hdr_fixture x;
	struct format_header h;
	uint8_t other[FORMAT_ID_LEN] = { 9, 9, 9 };
	int slot;

	make_header(&x, 1, other);
	cr_assert_eq(load(x.region, &h, &slot), -EUCLEAN);
	format_fkeys_release(&x.fk);
}

Test(format, wrong_and_unknown_master_keys_are_told_apart)
{
	struct hdr_fixture x;
	struct format_header h;
	struct crypto_key *saved;
	int slot;

	make_header(&x, 2, vol);
	saved = kek2;
	kek2 = kek1;		/* version 2 now names a different key */
	cr_assert_eq(load(x.region, &h, &slot), -EKEYREJECTED);
	kek2 = NULL;		/* version 2 retired */
	cr_assert_eq(load(x.region, &h, &slot), -ENOKEY);
	kek2 = saved;
	cr_assert_eq(load(x.region, &h, &slot), 0);
	format_fkeys_release(&x.fk);
}

Test(format, newer_format_versions_and_unknown_flags_are_refused)
{
	struct hdr_fixture x;
	struct format_header h;
	uint8_t slot[FORMAT_SLOT_SIZE];
	int idx;

	make_header(&x, 1, vol);
	x.h.version = FORMAT_VERSION + 1;
	cr_assert_eq(format_slot_encode(&x.h, &x.fk, slot), 0);
	cr_assert_eq(format_slot_parse(slot, &h), -EPROTO);
	x.h.version = FORMAT_VERSION;
	x.h.flags = 0x8000;
	cr_assert_eq(format_slot_encode(&x.h, &x.fk, slot), 0);
	cr_assert_eq(format_slot_parse(slot, &h), -EPROTO);
	memcpy(x.region, slot, sizeof(slot));
	memcpy(x.region + FORMAT_SLOT_STRIDE, slot, sizeof(slot));
	cr_assert_eq(load(x.region, &h, &idx), -EPROTO);
	format_fkeys_release(&x.fk);
}

Test(format, tree_headers_need_the_sparse_flag_and_a_size_in_their_limit)
{
	struct hdr_fixture x;
	struct format_header h;
	uint8_t slot[FORMAT_SLOT_SIZE];

	make_header(&x, 1, vol);
	x.h.flags = FORMAT_F_SPARSE | FORMAT_F_TREE;
	x.h.size = FORMAT_MAX_SIZE_TREE;
	cr_assert_eq(format_slot_encode(&x.h, &x.fk, slot), 0);
	cr_assert_eq(format_slot_parse(slot, &h), 0);
	cr_assert_eq(h.flags, FORMAT_F_SPARSE | FORMAT_F_TREE);
	x.h.size = FORMAT_MAX_SIZE_TREE + 1;
	cr_assert_eq(format_slot_encode(&x.h, &x.fk, slot), 0);
	cr_assert_eq(format_slot_parse(slot, &h), -EUCLEAN);
	x.h.size = 1;
	x.h.flags = FORMAT_F_TREE;
	cr_assert_eq(format_slot_encode(&x.h, &x.fk, slot), 0);
	cr_assert_eq(format_slot_parse(slot, &h), -EUCLEAN);
	x.h.flags = 0x0008;	/* the next bit is still unknown */
	cr_assert_eq(format_slot_encode(&x.h, &x.fk, slot), 0);
	cr_assert_eq(format_slot_parse(slot, &h), -EPROTO);
	format_fkeys_release(&x.fk);
}

Test(format, a_block_round_trips_and_each_seal_uses_a_new_nonce)
{
	struct hdr_fixture x;
	static uint8_t pt[FORMAT_BLOCK_SIZE], out[FORMAT_BLOCK_SIZE];
	static uint8_t s1[FORMAT_STORED_BLOCK], s2[FORMAT_STORED_BLOCK];

	make_header(&x, 1, vol);
	for (unsigned i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)(i * 7);
	cr_assert_eq(format_block_seal(&x.fk, 3, nonce(), pt, s1), 0);
	cr_assert_eq(format_block_seal(&x.fk, 3, nonce(), pt, s2), 0);
	cr_assert_neq(memcmp(s1, s2, CRYPTO_GCM_NONCE_LEN), 0);
	cr_assert_eq(format_block_open(&x.fk, 3, s1, out), 0);
	cr_assert_arr_eq(out, pt, sizeof(pt));
	cr_assert_eq(format_block_open(&x.fk, 3, s2, out), 0);
	cr_assert_arr_eq(out, pt, sizeof(pt));
	format_fkeys_release(&x.fk);
}

Test(format, every_flipped_byte_of_a_block_fails_and_yields_no_plaintext)
{
	struct hdr_fixture x;
	static uint8_t pt[FORMAT_BLOCK_SIZE], out[FORMAT_BLOCK_SIZE];
	static uint8_t s[FORMAT_STORED_BLOCK];
	static const uint8_t zero[FORMAT_BLOCK_SIZE];

	make_header(&x, 1, vol);
	memset(pt, 'P', sizeof(pt));
	cr_assert_eq(format_block_seal(&x.fk, 0, nonce(), pt, s), 0);
	for (unsigned i = 0; i < FORMAT_STORED_BLOCK; i++) {
		s[i] ^= 0x01;
		cr_assert_eq(format_block_open(&x.fk, 0, s, out), -EBADMSG,
			     "byte %u", i);
		cr_assert_arr_eq(out, zero, sizeof(out));
		s[i] ^= 0x01;
	}
	format_fkeys_release(&x.fk);
}

Test(format, a_block_moved_to_another_index_file_or_generation_fails)
{
	struct hdr_fixture x, y;
	static uint8_t pt[FORMAT_BLOCK_SIZE], out[FORMAT_BLOCK_SIZE];
	static uint8_t s[FORMAT_STORED_BLOCK];
	static const uint8_t zero[FORMAT_STORED_BLOCK];

	make_header(&x, 1, vol);
	make_header(&y, 1, vol);
	memset(pt, 'Q', sizeof(pt));
	cr_assert_eq(format_block_seal(&x.fk, 7, nonce(), pt, s), 0);
	cr_assert_eq(format_block_open(&x.fk, 8, s, out), -EBADMSG);
	cr_assert_eq(format_block_open(&y.fk, 7, s, out), -EBADMSG);
	/* The same block index as a map is another thing altogether. */
	cr_assert_eq(format_map_open(&x.fk, 7, s, out), -EBADMSG);
	x.fk.dek_gen = 2;
	cr_assert_eq(format_block_open(&x.fk, 7, s, out), -EBADMSG);
	x.fk.dek_gen = 1;
	/* A zeroed block is no hole: it fails like any other damage. */
	cr_assert_eq(format_block_open(&x.fk, 7, zero, out), -EBADMSG);
	cr_assert_eq(format_block_open(&x.fk, 7, s, out), 0);
	format_fkeys_release(&x.fk);
	format_fkeys_release(&y.fk);
}

Test(format, map_bits_address_blocks_within_their_group)
{
	static uint8_t map[FORMAT_BLOCK_SIZE];
	uint64_t g5 = 5ULL * FORMAT_GROUP_BLOCKS;

	format_map_set(map, g5 + 9, true);
	cr_assert(format_map_test(map, 9));
	cr_assert(format_map_test(map, g5 + 9));
	cr_assert(!format_map_test(map, g5 + 8));
	cr_assert_eq(map[1], 0x02);
	format_map_set(map, g5 + FORMAT_GROUP_BLOCKS - 1, true);
	cr_assert_eq(map[FORMAT_BLOCK_SIZE - 1], 0x80);
	format_map_set(map, 9, false);
	cr_assert_eq(map[1], 0);
}

Test(format, a_symlink_target_round_trips_and_its_length_shows_without_a_key)
{
	static const char *targets[] = { "a", "../patients/1001/record.txt",
					 "/etc/passwd", "x y\tz" };
	char sealed[FORMAT_SYMLINK_SEALED_MAX], out[FORMAT_SYMLINK_MAX + 1];
	char *longest = malloc(FORMAT_SYMLINK_MAX + 1);

	memset(longest, 'L', FORMAT_SYMLINK_MAX);
	longest[FORMAT_SYMLINK_MAX] = 0;
	for (unsigned i = 0; i < 5; i++) {
		const char *t = i < 4 ? targets[i] : longest;

		cr_assert_eq(format_symlink_seal(kek1, vol, t, sealed), 0);
		cr_assert_lt(strlen(sealed), FORMAT_SYMLINK_SEALED_MAX);
		if (strlen(t) > 5)
			cr_assert(!strstr(sealed, t), "target in the clear");
		cr_assert_eq(format_symlink_length(strlen(sealed)), strlen(t));
		cr_assert_eq(format_symlink_open(kek1, vol, sealed, out,
						 sizeof(out)), 0);
		cr_assert_str_eq(out, t);
	}
	free(longest);
}

Test(format, planted_or_altered_symlink_targets_do_not_open)
{
	char sealed[FORMAT_SYMLINK_SEALED_MAX], out[256];
	uint8_t other[FORMAT_ID_LEN] = { 42 };
	char *toolong = malloc(FORMAT_SYMLINK_MAX + 2);

	cr_assert_eq(format_symlink_open(kek1, vol, "/etc", out, sizeof(out)),
		     -EBADMSG);
	cr_assert_eq(format_symlink_open(kek1, vol, "phifs1:AAAA", out,
					 sizeof(out)), -EBADMSG);
	cr_assert_eq(format_symlink_open(kek1, vol, "phifs1:!!", out,
					 sizeof(out)), -EBADMSG);
	cr_assert_eq(format_symlink_seal(kek1, vol, "../x", sealed), 0);
	cr_assert_eq(format_symlink_open(kek2, vol, sealed, out, sizeof(out)),
		     -EBADMSG);
	cr_assert_eq(format_symlink_open(kek1, other, sealed, out, sizeof(out)),
		     -EBADMSG);
	for (size_t i = 7; sealed[i]; i++) {
		char c = sealed[i];

		sealed[i] = c == 'A' ? 'B' : 'A';
		cr_assert_neq(format_symlink_open(kek1, vol, sealed, out,
						  sizeof(out)), 0, "char %zu", i);
		sealed[i] = c;
	}
	memset(toolong, 'x', FORMAT_SYMLINK_MAX + 1);
	toolong[FORMAT_SYMLINK_MAX + 1] = 0;
	cr_assert_eq(format_symlink_seal(kek1, vol, toolong, sealed),
		     -ENAMETOOLONG);
	free(toolong);
}

/* Seals r, asserting success; the record's length. */
static size_t seal_record(const struct format_record *r, uint8_t *out)
{
	ssize_t n = format_record_seal(kek1, vol, r, out);

	cr_assert_gt(n, 0, "seal: %zd", n);
	return (size_t)n;
}

Test(format, device_and_symlink_records_round_trip)
{
	static struct format_record r, got;
	static uint8_t rec[FORMAT_RECORD_MAX];
	size_t n;

	r = (struct format_record){ .kind = FORMAT_RECORD_CHR, .major = 1,
				    .minor = 3 };
	n = seal_record(&r, rec);
	cr_assert_eq(n, FORMAT_RECORD_OVERHEAD + 8);
	cr_assert(format_record_is(rec, n));
	cr_assert_eq(format_record_open(kek1, vol, rec, n, &got), 0);
	cr_assert_eq(got.kind, FORMAT_RECORD_CHR);
	cr_assert_eq(got.major, 1);
	cr_assert_eq(got.minor, 3);

	r = (struct format_record){ .kind = FORMAT_RECORD_BLK,
				    .major = 0xfffff000u, .minor = 0xfffffu };
	n = seal_record(&r, rec);
	cr_assert_eq(format_record_open(kek1, vol, rec, n, &got), 0);
	cr_assert_eq(got.kind, FORMAT_RECORD_BLK);
	cr_assert_eq(got.major, 0xfffff000u);
	cr_assert_eq(got.minor, 0xfffffu);

	r = (struct format_record){ .kind = FORMAT_RECORD_SYMLINK };
	memset(r.target, 'T', FORMAT_RECORD_TARGET_MAX);
	n = seal_record(&r, rec);
	cr_assert_eq(n, FORMAT_RECORD_MAX);
	cr_assert(!memmem(rec, n, "TTTTTTTT", 8), "target in the clear");
	cr_assert_eq(format_record_open(kek1, vol, rec, n, &got), 0);
	cr_assert_eq(got.kind, FORMAT_RECORD_SYMLINK);
	cr_assert_eq(got.len, FORMAT_RECORD_TARGET_MAX);
	cr_assert_str_eq(got.target, r.target);
}

Test(format, a_record_with_any_byte_flipped_or_forged_does_not_open)
{
	static struct format_record r, got;
	static uint8_t rec[FORMAT_RECORD_MAX], copy[FORMAT_RECORD_MAX];
	uint8_t other[FORMAT_ID_LEN] = { 42 };
	size_t n;

	for (int k = 0; k < 2; k++) {
		r = (struct format_record){ .kind = FORMAT_RECORD_BLK,
					    .major = 8, .minor = 1 };
		if (k) {
			r.kind = FORMAT_RECORD_SYMLINK;
			memset(r.target, 'a', 3500);
		}
		n = seal_record(&r, rec);
		for (size_t i = 0; i < n; i++) {
			memcpy(copy, rec, n);
			copy[i] ^= 1;
			cr_assert_neq(format_record_open(kek1, vol, copy, n,
							 &got), 0,
				      "byte %zu of kind %d", i, (int)r.kind);
		}
		/* Cut short or grown, under another key or volume. */
		cr_assert_neq(format_record_open(kek1, vol, rec, n - 1, &got),
			      0);
		memcpy(copy, rec, n);
		copy[n] = 0;
		cr_assert_neq(format_record_open(kek1, vol, copy, n + 1, &got),
			      0);
		cr_assert_eq(format_record_open(kek2, vol, rec, n, &got),
			     -EBADMSG);
		cr_assert_eq(format_record_open(kek1, other, rec, n, &got),
			     -EBADMSG);
	}
	/* A record claiming another kind: the kind is authenticated. */
	r = (struct format_record){ .kind = FORMAT_RECORD_CHR, .major = 1 };
	n = seal_record(&r, rec);
	rec[10] = FORMAT_RECORD_BLK;
	cr_assert_eq(format_record_open(kek1, vol, rec, n, &got), -EBADMSG);
	rec[10] = 9;
	cr_assert_eq(format_record_open(kek1, vol, rec, n, &got), -EUCLEAN);
	rec[10] = FORMAT_RECORD_CHR;
	rec[8] = 2;
	cr_assert_eq(format_record_open(kek1, vol, rec, n, &got), -EPROTO);
	/* Planted: not a record, or only the magic. */
	cr_assert(!format_record_is((const uint8_t *)"PHIFSHDR", 8));
	cr_assert_eq(format_record_open(kek1, vol,
					(const uint8_t *)"PHIFSREC", 8, &got),
		     -EUCLEAN);
	memset(copy, 0, sizeof(copy));
	memcpy(copy, "PHIFSREC\1\0\2\0", 12);
	cr_assert_eq(format_record_open(kek1, vol, copy,
					FORMAT_RECORD_OVERHEAD + 8, &got),
		     -EBADMSG);
}

Test(format, empty_record_targets_and_unknown_kinds_are_refused)
{
	static struct format_record r;
	static uint8_t rec[FORMAT_RECORD_MAX];

	r = (struct format_record){ .kind = FORMAT_RECORD_SYMLINK };
	cr_assert_eq(format_record_seal(kek1, vol, &r, rec), -EINVAL);
	r.kind = 7;
	cr_assert_eq(format_record_seal(kek1, vol, &r, rec), -EINVAL);
}

Test(format, a_size_tag_verifies_only_for_its_inode_size_mode_owner_and_key)
{
	const struct format_attrs a = { 0600, 1000, 100 };
	struct format_attrs b;
	uint8_t tag[FORMAT_SIZE_TAG_LEN];
	uint64_t size;

	cr_assert_eq(format_size_tag(kek1, 77, 123456789, &a, tag), 0);
	cr_assert_neq(format_get_le64(tag), 123456789, "size in the clear");
	cr_assert_eq(format_size_untag(kek1, 77, &a, tag, sizeof(tag), &size),
		     0);
	cr_assert_eq(size, 123456789);
	cr_assert_eq(format_size_untag(kek1, 78, &a, tag, sizeof(tag), &size),
		     -EBADMSG, "a tag copied to another inode");
	cr_assert_eq(format_size_untag(kek2, 77, &a, tag, sizeof(tag), &size),
		     -EBADMSG);
	cr_assert_eq(format_size_untag(kek1, 77, &a, tag, sizeof(tag) - 1,
				       &size), -EBADMSG);
	/* A chmod or chown in the backing: the tag no longer vouches. */
	b = a, b.mode = 0666;
	cr_assert_eq(format_size_untag(kek1, 77, &b, tag, sizeof(tag), &size),
		     -EBADMSG, "mode changed");
	b = a, b.uid = 1001;
	cr_assert_eq(format_size_untag(kek1, 77, &b, tag, sizeof(tag), &size),
		     -EBADMSG, "owner changed");
	b = a, b.gid = 101;
	cr_assert_eq(format_size_untag(kek1, 77, &b, tag, sizeof(tag), &size),
		     -EBADMSG, "group changed");
	for (unsigned i = 0; i < sizeof(tag); i++) {
		tag[i] ^= 4;
		cr_assert_eq(format_size_untag(kek1, 77, &a, tag, sizeof(tag),
					       &size), -EBADMSG, "byte %u", i);
		tag[i] ^= 4;
	}
}

Test(format, a_header_with_attrs_authenticates_mode_owner_and_group)
{
	struct hdr_fixture x;
	struct format_header h;
	uint8_t slot[FORMAT_SLOT_SIZE];

	make_header(&x, 1, vol);
	x.h.flags = FORMAT_F_ATTRS;
	x.h.attrs = (struct format_attrs){ 04755, 1000, 100 };
	cr_assert_eq(format_slot_encode(&x.h, &x.fk, slot), 0);
	cr_assert_eq(format_slot_parse(slot, &h), 0);
	cr_assert_eq(format_slot_verify(slot, &x.fk), 0);
	cr_expect_eq(h.flags, FORMAT_F_ATTRS);
	cr_expect_eq(h.attrs.mode, 04755);
	cr_expect_eq(h.attrs.uid, 1000);
	cr_expect_eq(h.attrs.gid, 100);
	/* Each byte of them is under the MAC. */
	for (unsigned i = 132; i < 144; i++) {
		slot[i] ^= 1;
		cr_expect_neq(format_slot_parse(slot, &h) == 0 &&
			      format_slot_verify(slot, &x.fk) == 0, true,
			      "byte %u", i);
		slot[i] ^= 1;
	}
	/* Without the flag those bytes are reserved; a mode is 07777 at
	 * most. */
	x.h.flags = 0;
	cr_assert_eq(format_slot_encode(&x.h, &x.fk, slot), 0);
	cr_assert_eq(format_slot_parse(slot, &h), 0);
	cr_expect_eq(h.attrs.mode, 0, "no flag, no attributes");
	slot[136] = 1;
	cr_expect_eq(format_slot_parse(slot, &h), -EUCLEAN);
	x.h.flags = FORMAT_F_ATTRS;
	x.h.attrs.mode = 010000;
	cr_assert_eq(format_slot_encode(&x.h, &x.fk, slot), 0);
	cr_expect_eq(format_slot_parse(slot, &h), -EUCLEAN);
	format_fkeys_release(&x.fk);
}

/* --- extended attributes --- */

static uint8_t xsealed[FORMAT_XATTR_SEALED_MAX];
static uint8_t xvalue[FORMAT_XATTR_SEALED_MAX];

/* Seals name=value for inode ino under kek1 (name key kek2). */
static size_t seal_xattr(uint64_t ino, const char *name, const char *value,
			 char bname[FORMAT_XATTR_BNAME_MAX])
{
	ssize_t n;

	cr_assert_eq(format_xattr_bname(kek2, ino, name, bname), 0);
	n = format_xattr_seal(kek1, vol, ino, bname, name, value,
			      strlen(value), xsealed);
	cr_assert_eq(n, (ssize_t)(FORMAT_XATTR_OVERHEAD + strlen(name) +
				  strlen(value)));
	return (size_t)n;
}

Test(format, an_xattr_round_trips_under_an_opaque_name_bound_to_its_inode)
{
	char bname[FORMAT_XATTR_BNAME_MAX], other[FORMAT_XATTR_BNAME_MAX];
	char name[FORMAT_XATTR_NAME_MAX + 1];
	size_t n = seal_xattr(42, "user.diagnosis", "F32.1", bname);

	cr_assert(format_xattr_is(bname), "%s", bname);
	cr_assert_eq(strncmp(bname, FORMAT_XATTR_PREFIX,
			     strlen(FORMAT_XATTR_PREFIX)), 0);
	cr_assert_null(strstr(bname, "diagnosis"));
	cr_assert_null(memmem(xsealed, n, "F32.1", 5), "the value is sealed");
	cr_assert_null(memmem(xsealed, n, "diagnosis", 9), "the name too");
	cr_assert_eq(format_xattr_open(kek1, vol, 42, bname, xsealed, n, name,
				       xvalue), 5);
	cr_assert_str_eq(name, "user.diagnosis");
	cr_assert_eq(memcmp(xvalue, "F32.1", 5), 0);
	/* The same name on another inode has another backing name. */
	cr_assert_eq(format_xattr_bname(kek2, 43, "user.diagnosis", other), 0);
	cr_assert_str_neq(other, bname);
	cr_assert(!format_xattr_is(FORMAT_SIZE_XATTR));
	cr_assert(!format_xattr_is("user.phifs.x.0123"));
	/* An empty value, and names the kernel would not pass. */
	n = seal_xattr(42, "user.e", "", bname);
	cr_assert_eq(format_xattr_open(kek1, vol, 42, bname, xsealed, n, name,
				       xvalue), 0);
	cr_assert_eq(format_xattr_bname(kek2, 42, "", bname), -ERANGE);
}

Test(format, an_xattr_flipped_moved_or_from_another_volume_does_not_open)
{
	char bname[FORMAT_XATTR_BNAME_MAX], bname2[FORMAT_XATTR_BNAME_MAX];
	char name[FORMAT_XATTR_NAME_MAX + 1];
	uint8_t other[FORMAT_ID_LEN] = { 9 };
	size_t n = seal_xattr(7, "user.a", "value", bname);

	for (size_t i = 0; i < n; i++) {
		xsealed[i] ^= 0x01;
		cr_expect_eq(format_xattr_open(kek1, vol, 7, bname, xsealed, n,
					       name, xvalue), -EBADMSG,
			     "byte %zu", i);
		xsealed[i] ^= 0x01;
	}
	cr_assert_eq(format_xattr_open(kek1, vol, 7, bname, xsealed, n, name,
				       xvalue), 5);
	/* Another inode, another volume, another key, another name. */
	cr_expect_eq(format_xattr_open(kek1, vol, 8, bname, xsealed, n, name,
				       xvalue), -EBADMSG);
	cr_expect_eq(format_xattr_open(kek1, other, 7, bname, xsealed, n,
				       name, xvalue), -EBADMSG);
	cr_expect_eq(format_xattr_open(kek2, vol, 7, bname, xsealed, n, name,
				       xvalue), -EBADMSG);
	cr_assert_eq(format_xattr_bname(kek2, 7, "user.b", bname2), 0);
	cr_expect_eq(format_xattr_open(kek1, vol, 7, bname2, xsealed, n, name,
				       xvalue), -EBADMSG);
	/* Cut short, or grown. */
	cr_expect_eq(format_xattr_open(kek1, vol, 7, bname, xsealed, n - 1,
				       name, xvalue), -EBADMSG);
	cr_expect_eq(format_xattr_open(kek1, vol, 7, bname, xsealed, 10, name,
				       xvalue), -EBADMSG);
	xsealed[n] = 0;
	cr_expect_eq(format_xattr_open(kek1, vol, 7, bname, xsealed, n + 1,
				       name, xvalue), -EBADMSG);
}

Test(format, xattr_values_up_to_the_linux_limit_seal)
{
	char bname[FORMAT_XATTR_BNAME_MAX], name[FORMAT_XATTR_NAME_MAX + 1];
	char longname[FORMAT_XATTR_NAME_MAX + 2];
	static uint8_t big[FORMAT_XATTR_VALUE_MAX + 1];
	ssize_t n;

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	cr_assert_eq(format_xattr_bname(kek2, 1, longname, bname), -ERANGE);
	longname[FORMAT_XATTR_NAME_MAX] = 0;
	cr_assert_eq(format_xattr_bname(kek2, 1, longname, bname), 0);
	n = format_xattr_seal(kek1, vol, 1, bname, longname, big,
			      FORMAT_XATTR_VALUE_MAX, xsealed);
	cr_assert_eq(n, (ssize_t)FORMAT_XATTR_SEALED_MAX);
	cr_assert_eq(format_xattr_open(kek1, vol, 1, bname, xsealed,
				       (size_t)n, name, xvalue),
		     (ssize_t)FORMAT_XATTR_VALUE_MAX);
	cr_assert_eq(format_xattr_seal(kek1, vol, 1, bname, longname, big,
				       FORMAT_XATTR_VALUE_MAX + 1, xsealed),
		     -E2BIG);
}

/* Loads region with only KEK v (the other unknown), as an old keystore. */
static const struct crypto_key *only_kek1(void *arg, uint32_t v)
{
	(void)arg;
	return v == 1 ? kek1 : NULL;
}

static void apply(uint8_t *region, const struct format_rewrap *rw, int n)
{
	for (int i = 0; i < n; i++)
		memcpy(region + rw->idx[i] * FORMAT_SLOT_STRIDE, rw->slot[i],
		       FORMAT_SLOT_SIZE);
}

Test(format, a_rewrap_moves_both_slots_to_the_new_version_and_nothing_else)
{
	struct hdr_fixture x;
	struct format_rewrap rw;
	struct format_header h, g;
	struct format_fkeys fk;
	struct format_pick pick;
	int slot;

	make_header(&x, 1, vol);
	cr_assert_eq(format_header_rewrap(x.region, vol, kek_of, NULL, 2, kek2,
					  &rw), 0);
	cr_assert_eq(rw.from, 1);
	cr_assert_eq(rw.idx[0], 0, "the losing slot goes first");
	cr_assert_eq(rw.idx[1], 1);
	apply(x.region, &rw, 2);
	cr_assert_eq(load(x.region, &h, &slot), 0);
	cr_assert_eq(h.key_version, 2);
	cr_assert_eq(h.seq, 8);
	cr_assert_eq(h.size, 654321, "size kept");
	/* Same DEK: the file's block keys are unchanged. */
	cr_assert_eq(format_header_load(x.region, vol, kek_of, NULL, &g, &fk,
					&pick), 0);
	cr_assert_eq(format_slot_verify(x.region, &x.fk), 0);
	format_fkeys_release(&fk);
	/* The old KEK alone opens neither slot any more. */
	cr_assert_eq(format_header_load(x.region, vol, only_kek1, NULL, &g,
					&fk, &pick), -ENOKEY);
	cr_assert_eq(format_header_rewrap(x.region, vol, kek_of, NULL, 2, kek2,
					  &rw), -EALREADY);
	format_fkeys_release(&x.fk);
}

Test(format, a_rewrap_stopped_after_its_first_slot_opens_and_is_redone)
{
	struct hdr_fixture x;
	struct format_rewrap rw;
	struct format_header h;
	int slot;

	make_header(&x, 1, vol);
	cr_assert_eq(format_header_rewrap(x.region, vol, kek_of, NULL, 2, kek2,
					  &rw), 0);
	apply(x.region, &rw, 1);
	cr_assert_eq(load(x.region, &h, &slot), 0);
	cr_assert_eq(h.key_version, 2);
	cr_assert_eq(h.size, 654321);
	/* The other slot still wraps under v1: not done yet. */
	cr_assert_eq(format_header_rewrap(x.region, vol, kek_of, NULL, 2, kek2,
					  &rw), 0);
	cr_assert_eq(rw.from, 2);
	/* The second write torn: the first one still opens the file. */
	apply(x.region, &rw, 1);
	memset(x.region + rw.idx[1] * FORMAT_SLOT_STRIDE + 100, 0x5a, 100);
	cr_assert_eq(load(x.region, &h, &slot), 0);
	cr_assert_eq(h.key_version, 2);
	format_fkeys_release(&x.fk);
}

/* --- folder records --- */

Test(format, a_folder_record_opens_only_for_its_inode_and_volume)
{
	struct crypto_key *k = crypto_key_random();
	const struct format_folder f = { { 02750, 1234, 5678 },
					 { 0xf0, 1, 2, 3, 4, 5, 6, 7, 8 } };
	uint8_t rec[FORMAT_FOLDER_LEN], other[FORMAT_ID_LEN] = { 9 };
	struct format_folder g;

	cr_assert_not_null(k);
	cr_assert_eq(format_folder_seal(k, vol, 42, &f, rec), 0);
	cr_assert_eq(memcmp(rec, "PHIFSDIR\1\0\0\0", 12), 0);
	cr_assert_eq(format_folder_open(k, vol, 42, rec, sizeof(rec), &g), 0);
	cr_expect_eq(memcmp(&g, &f, sizeof(f)), 0);
	/* Copied onto another folder, or from another volume. */
	cr_expect_eq(format_folder_open(k, vol, 43, rec, sizeof(rec), &g),
		     -EBADMSG);
	cr_expect_eq(format_folder_open(k, other, 42, rec, sizeof(rec), &g),
		     -EBADMSG);
	for (size_t i = 12; i < sizeof(rec); i++) {
		rec[i] ^= 1;
		cr_expect_eq(format_folder_open(k, vol, 42, rec, sizeof(rec),
						&g), -EBADMSG, "byte %zu", i);
		rec[i] ^= 1;
	}
	cr_expect_eq(format_folder_open(k, vol, 42, rec, sizeof(rec) - 1, &g),
		     -EUCLEAN);
	rec[0] ^= 1;
	cr_expect_eq(format_folder_open(k, vol, 42, rec, sizeof(rec), &g),
		     -EUCLEAN);
	rec[0] ^= 1;
	rec[8] = 2;	/* a newer version */
	cr_expect_eq(format_folder_open(k, vol, 42, rec, sizeof(rec), &g),
		     -EPROTO);
	rec[8] = 1;
	rec[10] = 1;	/* an unknown flag */
	cr_expect_eq(format_folder_open(k, vol, 42, rec, sizeof(rec), &g),
		     -EPROTO);
	g = f;
	g.attrs.mode = 010755;	/* a type bit is not a permission bit */
	cr_expect_eq(format_folder_seal(k, vol, 42, &g, rec), -EINVAL);
	crypto_key_free(k);
}
