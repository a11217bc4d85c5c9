/*
 * format.c — the layout of one encrypted file: header slots, sealed blocks,
 * hole maps and offset maths.  Pure: it computes and seals bytes that others
 * read and write.  docs/FORMAT.md is the byte-for-byte description; keep the
 * two in step.
 */
#include "phifs/format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


static const uint8_t slot_magic[8] = { 'P', 'H', 'I', 'F', 'S', 'H', 'D', 'R' };

/* Slot field offsets (docs/FORMAT.md, "Header slot"). */
enum {
	S_MAGIC = 0,
	S_VERSION = 8,
	S_FLAGS = 10,
	S_KEYVER = 12,
	S_SEQ = 16,
	S_VOLID = 24,
	S_FILEID = 40,
	S_DEKGEN = 56,
	S_RSVD1 = 60,
	S_SIZE = 64,
	S_WRAPPED = 72,
	S_ATTRS = S_WRAPPED + CRYPTO_WRAPPED_LEN,	/* 132, with ATTRS */
	S_MODE = S_ATTRS,
	S_UID = S_ATTRS + 4,
	S_GID = S_ATTRS + 8,
	S_ATTRS_END = S_ATTRS + 12,			/* 144 */
	S_MAC = FORMAT_SLOT_SIZE - CRYPTO_SHA256_LEN,	/* 224 */
};

/* One group on disk: its data blocks, then its map block. */
#define GROUP_STRIDE ((uint64_t)(FORMAT_GROUP_BLOCKS + 1) * FORMAT_STORED_BLOCK)
/* Map blocks are sealed under an index no data block can have; so is the
 * head of a journal record. */
#define MAP_INDEX_FLAG FORMAT_MAP_INDEX(0)
#define JOURNAL_INDEX (1ULL << 62)

const uint64_t FORMAT_MAX_SIZE = (((uint64_t)INT64_MAX - FORMAT_HEADER_SIZE) /
				  GROUP_STRIDE) * FORMAT_GROUP_BLOCKS *
				 FORMAT_BLOCK_SIZE;
/* A TREE file has one more stored block per FANOUT groups, and one more per
 * FANOUT^2: about 2^21 blocks at most, fewer than 128 groups' worth. */
const uint64_t FORMAT_MAX_SIZE_TREE = (((uint64_t)INT64_MAX -
					FORMAT_HEADER_SIZE) / GROUP_STRIDE -
				       128) * FORMAT_GROUP_BLOCKS *
				      FORMAT_BLOCK_SIZE;

uint64_t format_nblocks(uint64_t size)
{
	return size / FORMAT_BLOCK_SIZE + (size % FORMAT_BLOCK_SIZE != 0);
}

uint64_t format_block_offset(uint64_t index)
{
	uint64_t g = index / FORMAT_GROUP_BLOCKS;
	uint64_t j = index % FORMAT_GROUP_BLOCKS;

	return FORMAT_HEADER_SIZE + g * GROUP_STRIDE + j * FORMAT_STORED_BLOCK;
}

uint64_t format_map_offset(uint64_t group)
{
	return FORMAT_HEADER_SIZE + group * GROUP_STRIDE +
	       (uint64_t)FORMAT_GROUP_BLOCKS * FORMAT_STORED_BLOCK;
}

uint64_t format_backing_size(uint64_t size)
{
	uint64_t n = format_nblocks(size);

	return n ? format_block_offset(n - 1) + FORMAT_STORED_BLOCK :
		   FORMAT_HEADER_SIZE;
}

/*
 * Start of group g in a TREE file: after every group below it, one node
 * slot for each level-1 node that starts below it (right after the map of
 * its first group) and one for each level-2 node (right after that).
 */
static uint64_t tree_group_start(uint64_t g)
{
	const uint64_t f = FORMAT_TREE_FANOUT;
	uint64_t nodes = (g + f - 1) / f + (g + f * f - 1) / (f * f);

	return FORMAT_HEADER_SIZE + g * GROUP_STRIDE +
	       nodes * FORMAT_STORED_BLOCK;
}

uint64_t format_block_offset_in(uint16_t flags, uint64_t index)
{
	if (!(flags & FORMAT_F_TREE))
		return format_block_offset(index);
	return tree_group_start(index / FORMAT_GROUP_BLOCKS) +
	       index % FORMAT_GROUP_BLOCKS * FORMAT_STORED_BLOCK;
}

uint64_t format_node_offset(uint16_t flags, unsigned level, uint64_t i)
{
	const uint64_t f = FORMAT_TREE_FANOUT;

	if (!(flags & FORMAT_F_TREE))
		return level == 0 ? format_map_offset(i) : 0;
	if (level >= FORMAT_TREE_LEVELS)
		return 0;
	if (level == 0)
		return tree_group_start(i) +
		       (uint64_t)FORMAT_GROUP_BLOCKS * FORMAT_STORED_BLOCK;
	if (level == 1)
		return format_node_offset(flags, 0, i * f) +
		       FORMAT_STORED_BLOCK;
	return format_node_offset(flags, 0, i * f * f) +
	       2 * FORMAT_STORED_BLOCK;
}

uint64_t format_max_size(uint16_t flags)
{
	return flags & FORMAT_F_TREE ? FORMAT_MAX_SIZE_TREE : FORMAT_MAX_SIZE;
}

int format_fkeys_init(struct format_fkeys *out, const struct crypto_key *dek,
		      const uint8_t volume_id[FORMAT_ID_LEN],
		      const uint8_t file_id[FORMAT_ID_LEN], uint32_t dek_gen)
{
	struct format_fkeys fk = { .dek_gen = dek_gen };
	int rc;

	memcpy(fk.volume_id, volume_id, FORMAT_ID_LEN);
	memcpy(fk.file_id, file_id, FORMAT_ID_LEN);
	/* Separate keys for blocks and header: one DEK, two purposes. */
	rc = crypto_hkdf_key(dek, file_id, FORMAT_ID_LEN, "phifs block v1",
			     &fk.block_key);
	if (rc)
		goto out;
	rc = crypto_hkdf_key(dek, file_id, FORMAT_ID_LEN, "phifs header v1",
			     &fk.mac_key);
	if (rc)
		goto out;
	*out = fk;
	fk.block_key = fk.mac_key = NULL;	/* transferred */
out:
	crypto_key_free(fk.block_key);
	crypto_key_free(fk.mac_key);
	return rc;
}

void format_fkeys_release(struct format_fkeys *fk)
{
	crypto_key_free(fk->block_key);
	crypto_key_free(fk->mac_key);
	fk->block_key = fk->mac_key = NULL;
}

/* "phifs dek v1" || volume ID || file ID || key version || DEK generation */
#define DEK_AAD_LEN (12 + 2 * FORMAT_ID_LEN + 4 + 4)

static void dek_aad(const struct format_header *h, uint8_t aad[DEK_AAD_LEN])
{
	memcpy(aad, "phifs dek v1", 12);
	memcpy(aad + 12, h->volume_id, FORMAT_ID_LEN);
	memcpy(aad + 28, h->file_id, FORMAT_ID_LEN);
	format_put_le32(aad + 44, h->key_version);
	format_put_le32(aad + 48, h->dek_gen);
}

int format_dek_wrap(struct format_header *h, const struct crypto_key *kek,
		    const struct crypto_key *dek)
{
	uint8_t aad[DEK_AAD_LEN];

	dek_aad(h, aad);
	return crypto_wrap_key(kek, aad, sizeof(aad), dek, h->wrapped_dek);
}

int format_dek_unwrap(const struct format_header *h,
		      const struct crypto_key *kek, struct crypto_key *dek)
{
	uint8_t aad[DEK_AAD_LEN];

	dek_aad(h, aad);
	return crypto_unwrap_key(kek, aad, sizeof(aad), h->wrapped_dek, dek);
}

int format_slot_encode(const struct format_header *h,
		       const struct format_fkeys *fk,
		       uint8_t slot[FORMAT_SLOT_SIZE])
{
	memset(slot, 0, FORMAT_SLOT_SIZE);
	memcpy(slot + S_MAGIC, slot_magic, sizeof(slot_magic));
	format_put_le16(slot + S_VERSION, h->version);
	format_put_le16(slot + S_FLAGS, h->flags);
	format_put_le32(slot + S_KEYVER, h->key_version);
	format_put_le64(slot + S_SEQ, h->seq);
	memcpy(slot + S_VOLID, h->volume_id, FORMAT_ID_LEN);
	memcpy(slot + S_FILEID, h->file_id, FORMAT_ID_LEN);
	format_put_le32(slot + S_DEKGEN, h->dek_gen);
	format_put_le64(slot + S_SIZE, h->size);
	memcpy(slot + S_WRAPPED, h->wrapped_dek, CRYPTO_WRAPPED_LEN);
	if (h->flags & FORMAT_F_ATTRS) {
		format_put_le32(slot + S_MODE, h->attrs.mode);
		format_put_le32(slot + S_UID, h->attrs.uid);
		format_put_le32(slot + S_GID, h->attrs.gid);
	}
	return crypto_hmac_sha256(fk->mac_key, slot, S_MAC, slot + S_MAC);
}

static int all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	while (n--)
		acc |= *p++;
	return acc == 0;
}

int format_slot_parse(const uint8_t slot[FORMAT_SLOT_SIZE],
		      struct format_header *h)
{
	struct format_header t;
	int rsvd2;

	if (memcmp(slot + S_MAGIC, slot_magic, sizeof(slot_magic)))
		return -EUCLEAN;
	t.version = format_get_le16(slot + S_VERSION);
	t.flags = format_get_le16(slot + S_FLAGS);
	if (t.version == 0)
		return -EUCLEAN;
	if (t.version > FORMAT_VERSION || (t.flags & ~FORMAT_F_KNOWN))
		return -EPROTO;
	/* Without ATTRS the attributes' bytes are reserved, zero. */
	rsvd2 = t.flags & FORMAT_F_ATTRS ? S_ATTRS_END : S_ATTRS;
	if (!all_zero(slot + S_RSVD1, S_SIZE - S_RSVD1) ||
	    !all_zero(slot + rsvd2, S_MAC - rsvd2))
		return -EUCLEAN;
	memset(&t.attrs, 0, sizeof(t.attrs));
	if (t.flags & FORMAT_F_ATTRS) {
		t.attrs.mode = format_get_le32(slot + S_MODE);
		t.attrs.uid = format_get_le32(slot + S_UID);
		t.attrs.gid = format_get_le32(slot + S_GID);
		if (t.attrs.mode & ~07777u)
			return -EUCLEAN;
	}
	t.key_version = format_get_le32(slot + S_KEYVER);
	t.seq = format_get_le64(slot + S_SEQ);
	memcpy(t.volume_id, slot + S_VOLID, FORMAT_ID_LEN);
	memcpy(t.file_id, slot + S_FILEID, FORMAT_ID_LEN);
	t.dek_gen = format_get_le32(slot + S_DEKGEN);
	t.size = format_get_le64(slot + S_SIZE);
	if (t.size > format_max_size(t.flags) ||
	    (t.flags & FORMAT_F_TREE && !(t.flags & FORMAT_F_SPARSE)))
		return -EUCLEAN;
	memcpy(t.wrapped_dek, slot + S_WRAPPED, CRYPTO_WRAPPED_LEN);
	*h = t;
	return 0;
}

int format_slot_verify(const uint8_t slot[FORMAT_SLOT_SIZE],
		       const struct format_fkeys *fk)
{
	uint8_t mac[CRYPTO_SHA256_LEN];
	int rc;

	rc = crypto_hmac_sha256(fk->mac_key, slot, S_MAC, mac);
	if (rc)
		return rc;
	return crypto_memeq(mac, slot + S_MAC, sizeof(mac)) ? 0 : -EUCLEAN;
}

/* Authenticates one parsed slot: unwrap its DEK, derive keys, check MAC. */
static int slot_load(const uint8_t *slot, const struct format_header *h,
		     const uint8_t volume_id[FORMAT_ID_LEN], format_kek_fn kek,
		     void *kek_arg, struct format_fkeys *fk)
{
	const struct crypto_key *k;
	struct crypto_key *dek = NULL;
	struct format_fkeys t;
	int rc;

	/* A header from another volume is foreign, whatever its keys say. */
	if (memcmp(h->volume_id, volume_id, FORMAT_ID_LEN))
		return -EUCLEAN;
	k = kek(kek_arg, h->key_version);
	if (!k)
		return -ENOKEY;
	dek = crypto_key_new();
	if (!dek)
		return -ENOMEM;
	rc = format_dek_unwrap(h, k, dek);
	if (rc)
		goto out;
	rc = format_fkeys_init(&t, dek, h->volume_id, h->file_id, h->dek_gen);
	if (rc)
		goto out;
	rc = format_slot_verify(slot, &t);
	if (rc) {
		format_fkeys_release(&t);
		goto out;
	}
	*fk = t;
out:
	crypto_key_free(dek);
	return rc;
}

/* Of two failures, the one that tells the user most. */
static int worse(int a, int b)
{
	static const int rank[] = { -EPROTO, -ENOKEY, -EKEYREJECTED, -EUCLEAN };

	for (size_t i = 0; i < sizeof(rank) / sizeof(rank[0]); i++)
		if (a == rank[i] || b == rank[i])
			return rank[i];
	return a ? a : b;
}

int format_header_load(const uint8_t region[FORMAT_HEADER_SIZE],
		       const uint8_t volume_id[FORMAT_ID_LEN],
		       format_kek_fn kek, void *kek_arg,
		       struct format_header *h, struct format_fkeys *fk,
		       struct format_pick *pick)
{
	struct format_header cand[2];
	int prc[2], order[2] = { 0, 1 }, rc = -EUCLEAN;

	for (int i = 0; i < 2; i++)
		prc[i] = format_slot_parse(region + i * FORMAT_SLOT_STRIDE,
					   &cand[i]);
	if (!prc[0] && !prc[1] && cand[1].seq > cand[0].seq) {
		order[0] = 1;
		order[1] = 0;
	}
	/*
	 * Try the newer slot first; the older one matters only when the newer
	 * is torn or forged, so the usual open costs one unwrap.
	 */
	for (int n = 0; n < 2; n++) {
		int i = order[n], r = prc[i];

		if (!r)
			r = slot_load(region + i * FORMAT_SLOT_STRIDE, &cand[i],
				      volume_id, kek, kek_arg, fk);
		if (!r) {
			*h = cand[i];
			pick->slot = i;
			/* A slot that does not parse may have been the
			 * newer one: its seq is part of what is gone. */
			pick->refused = n || prc[!i] ? !i : -1;
			pick->refused_rc = n ? rc : prc[!i];
			pick->refused_seq_known = !prc[!i];
			pick->refused_seq = prc[!i] ? 0 : cand[!i].seq;
			return 0;
		}
		rc = n ? worse(rc, r) : r;
	}
	return rc;
}

/* Whether the slot that lost holds the same header under `version`. */
static bool slot_on_version(const uint8_t *slot, uint32_t version,
			    const struct format_fkeys *fk)
{
	struct format_header h;

	return !format_slot_parse(slot, &h) && h.key_version == version &&
	       !format_slot_verify(slot, fk);
}

/* Both slots of h re-wrapped to version under new_kek, into rw. */
static int rewrap_encode(const struct format_header *cur, int cur_idx,
			 format_kek_fn kek, void *kek_arg, uint32_t version,
			 const struct crypto_key *new_kek,
			 const struct format_fkeys *fk,
			 struct format_rewrap *rw)
{
	const struct crypto_key *old = kek(kek_arg, cur->key_version);
	struct crypto_key *dek = crypto_key_new();
	struct format_header h = *cur;
	int rc;

	if (!dek)
		return -ENOMEM;
	rc = old ? format_dek_unwrap(cur, old, dek) : -ENOKEY;
	h.key_version = version;
	if (!rc)
		rc = format_dek_wrap(&h, new_kek, dek);
	h.seq = cur->seq + 1;
	if (!rc)
		rc = format_slot_encode(&h, fk, rw->slot[0]);
	h.seq = cur->seq + 2;
	if (!rc)
		rc = format_slot_encode(&h, fk, rw->slot[1]);
	crypto_key_free(dek);
	if (rc)
		return rc;
	rw->idx[0] = !cur_idx;
	rw->idx[1] = cur_idx;
	rw->from = cur->key_version;
	return 0;
}

int format_header_rewrap(const uint8_t region[FORMAT_HEADER_SIZE],
			 const uint8_t volume_id[FORMAT_ID_LEN],
			 format_kek_fn kek, void *kek_arg, uint32_t version,
			 const struct crypto_key *new_kek,
			 struct format_rewrap *rw)
{
	struct format_header h;
	struct format_fkeys fk;
	struct format_pick pick;
	int idx, rc;

	rc = format_header_load(region, volume_id, kek, kek_arg, &h, &fk,
				&pick);
	if (rc)
		return rc;
	idx = pick.slot;
	if (h.key_version == version &&
	    slot_on_version(region + (!idx) * FORMAT_SLOT_STRIDE, version,
			    &fk))
		rc = -EALREADY;
	else
		rc = rewrap_encode(&h, idx, kek, kek_arg, version, new_kek,
				   &fk, rw);
	format_fkeys_release(&fk);
	return rc;
}

static void block_aad(const struct format_fkeys *fk, uint64_t index,
		      uint8_t aad[FORMAT_AAD_LEN])
{
	memcpy(aad, fk->volume_id, FORMAT_ID_LEN);
	memcpy(aad + FORMAT_ID_LEN, fk->file_id, FORMAT_ID_LEN);
	format_put_le32(aad + 2 * FORMAT_ID_LEN, fk->dek_gen);
	format_put_le64(aad + 2 * FORMAT_ID_LEN + 4, index);
}

int format_block_seal(const struct format_fkeys *fk, uint64_t index,
		      const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
		      const uint8_t pt[FORMAT_BLOCK_SIZE],
		      uint8_t out[FORMAT_STORED_BLOCK])
{
	uint8_t aad[FORMAT_AAD_LEN];

	memcpy(out, nonce, CRYPTO_GCM_NONCE_LEN);
	block_aad(fk, index, aad);
	return crypto_gcm_seal(fk->block_key, out, aad, sizeof(aad), pt,
			       FORMAT_BLOCK_SIZE, out + CRYPTO_GCM_NONCE_LEN,
			       out + CRYPTO_GCM_NONCE_LEN + FORMAT_BLOCK_SIZE);
}

int format_block_open(const struct format_fkeys *fk, uint64_t index,
		      const uint8_t in[FORMAT_STORED_BLOCK],
		      uint8_t pt[FORMAT_BLOCK_SIZE])
{
	uint8_t aad[FORMAT_AAD_LEN];

	block_aad(fk, index, aad);
	return crypto_gcm_open(fk->block_key, in, aad, sizeof(aad),
			       in + CRYPTO_GCM_NONCE_LEN, FORMAT_BLOCK_SIZE, pt,
			       in + CRYPTO_GCM_NONCE_LEN + FORMAT_BLOCK_SIZE);
}

int format_map_seal(const struct format_fkeys *fk, uint64_t group,
		    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
		    const uint8_t map[FORMAT_BLOCK_SIZE],
		    uint8_t out[FORMAT_STORED_BLOCK])
{
	return format_block_seal(fk, group | MAP_INDEX_FLAG, nonce, map, out);
}

int format_map_open(const struct format_fkeys *fk, uint64_t group,
		    const uint8_t in[FORMAT_STORED_BLOCK],
		    uint8_t map[FORMAT_BLOCK_SIZE])
{
	return format_block_open(fk, group | MAP_INDEX_FLAG, in, map);
}

int format_node_seal(const struct format_fkeys *fk, unsigned level,
		     uint64_t i, const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
		     const uint8_t node[FORMAT_BLOCK_SIZE],
		     uint8_t out[FORMAT_STORED_BLOCK])
{
	return format_block_seal(fk, FORMAT_NODE_INDEX(level, i), nonce, node,
				 out);
}

int format_node_open(const struct format_fkeys *fk, unsigned level,
		     uint64_t i, const uint8_t in[FORMAT_STORED_BLOCK],
		     uint8_t node[FORMAT_BLOCK_SIZE])
{
	return format_block_open(fk, FORMAT_NODE_INDEX(level, i), in, node);
}

uint64_t format_stored_offset(uint16_t flags, uint64_t stored_index)
{
	const uint64_t low = (1ULL << 56) - 1;

	if (stored_index & MAP_INDEX_FLAG)
		return format_node_offset(flags,
				(unsigned)(stored_index >> 56 & 0x7f),
				stored_index & low);
	return format_block_offset_in(flags, stored_index);
}

int format_stored_open(const struct format_fkeys *fk, uint64_t stored_index,
		       const uint8_t in[FORMAT_STORED_BLOCK],
		       uint8_t pt[FORMAT_BLOCK_SIZE])
{
	return format_block_open(fk, stored_index, in, pt);
}

static const uint8_t journal_magic[8] = { 'P', 'H', 'I', 'F', 'S', 'J', 'N', 'L' };

int format_journal_seal(const struct format_fkeys *fk,
			const uint8_t nonce[CRYPTO_GCM_NONCE_LEN],
			const uint64_t *index, unsigned n,
			uint8_t out[FORMAT_STORED_BLOCK])
{
	uint8_t head[FORMAT_BLOCK_SIZE] = { 0 };

	if (n == 0 || n > FORMAT_JOURNAL_MAX)
		return -EINVAL;
	memcpy(head, journal_magic, sizeof(journal_magic));
	format_put_le32(head + 8, n);
	for (unsigned i = 0; i < n; i++)
		format_put_le64(head + 16 + 8 * i, index[i]);
	return format_block_seal(fk, JOURNAL_INDEX, nonce, head, out);
}

int format_journal_open(const struct format_fkeys *fk,
			const uint8_t in[FORMAT_STORED_BLOCK],
			uint64_t index[FORMAT_JOURNAL_MAX], unsigned *n)
{
	uint8_t head[FORMAT_BLOCK_SIZE];
	unsigned count;
	int rc;

	rc = format_block_open(fk, JOURNAL_INDEX, in, head);
	if (rc)
		return rc;
	count = format_get_le32(head + 8);
	if (memcmp(head, journal_magic, sizeof(journal_magic)) || count == 0 ||
	    count > FORMAT_JOURNAL_MAX)
		return -EBADMSG;
	for (unsigned i = 0; i < count; i++)
		index[i] = format_get_le64(head + 16 + 8 * i);
	*n = count;
	return 0;
}

/* --- symlink targets --- */

static const char symlink_prefix[] = "phifs1:";
#define SYMLINK_PREFIX_LEN (sizeof(symlink_prefix) - 1)
#define SYMLINK_AAD_LEN (16 + FORMAT_ID_LEN)

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = b64[acc >> bits & 63];
		}
	}
	if (bits)
		out[o++] = b64[acc << (6 - bits) & 63];
	out[o] = 0;
	return o;
}

/* Decodes unpadded base64url; -1 on a character outside the alphabet. */
static long b64_decode(const char *in, uint8_t *out, size_t max)
{
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0;

	for (; *in; in++) {
		const char *p = strchr(b64, *in);

		if (!p)
			return -1;
		acc = acc << 6 | (uint32_t)(p - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == max)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Canonical only: unused trailing bits must be zero, so that no two
	 * strings decode to the same bytes. */
	if (bits >= 6 || (acc & ((1u << bits) - 1)))
		return -1;
	return (long)o;
}

static void symlink_aad(const uint8_t volume_id[FORMAT_ID_LEN],
			uint8_t aad[SYMLINK_AAD_LEN])
{
	memcpy(aad, "phifs symlink v1", 16);
	memcpy(aad + 16, volume_id, FORMAT_ID_LEN);
}

int format_symlink_seal(const struct crypto_key *key,
			const uint8_t volume_id[FORMAT_ID_LEN],
			const char *target,
			char out[FORMAT_SYMLINK_SEALED_MAX])
{
	uint8_t buf[CRYPTO_GCM_NONCE_LEN + FORMAT_SYMLINK_MAX +
		    CRYPTO_GCM_TAG_LEN], aad[SYMLINK_AAD_LEN];
	size_t n = strlen(target);
	int rc;

	if (n > FORMAT_SYMLINK_MAX)
		return -ENAMETOOLONG;
	symlink_aad(volume_id, aad);
	rc = crypto_nonce(buf, CRYPTO_GCM_NONCE_LEN);
	if (!rc)
		rc = crypto_gcm_seal(key, buf, aad, sizeof(aad), target, n,
				     buf + CRYPTO_GCM_NONCE_LEN,
				     buf + CRYPTO_GCM_NONCE_LEN + n);
	if (rc)
		return rc;
	memcpy(out, symlink_prefix, SYMLINK_PREFIX_LEN);
	b64_encode(buf, CRYPTO_GCM_NONCE_LEN + n + CRYPTO_GCM_TAG_LEN,
		   out + SYMLINK_PREFIX_LEN);
	return 0;
}

int format_symlink_open(const struct crypto_key *key,
			const uint8_t volume_id[FORMAT_ID_LEN],
			const char *sealed, char *target, size_t max)
{
	uint8_t buf[CRYPTO_GCM_NONCE_LEN + FORMAT_SYMLINK_MAX +
		    CRYPTO_GCM_TAG_LEN], aad[SYMLINK_AAD_LEN];
	long len;
	size_t n;
	int rc;

	if (strncmp(sealed, symlink_prefix, SYMLINK_PREFIX_LEN))
		return -EBADMSG;
	len = b64_decode(sealed + SYMLINK_PREFIX_LEN, buf, sizeof(buf));
	if (len < CRYPTO_GCM_NONCE_LEN + CRYPTO_GCM_TAG_LEN)
		return -EBADMSG;
	n = (size_t)len - CRYPTO_GCM_NONCE_LEN - CRYPTO_GCM_TAG_LEN;
	if (n + 1 > max)
		return -ENAMETOOLONG;
	symlink_aad(volume_id, aad);
	rc = crypto_gcm_open(key, buf, aad, sizeof(aad),
			     buf + CRYPTO_GCM_NONCE_LEN, n, target,
			     buf + CRYPTO_GCM_NONCE_LEN + n);
	target[rc ? 0 : n] = 0;
	return rc;
}

size_t format_symlink_length(size_t sealed_len)
{
	size_t bytes;

	if (sealed_len < SYMLINK_PREFIX_LEN)
		return 0;
	bytes = (sealed_len - SYMLINK_PREFIX_LEN) * 6 / 8;
	return bytes < CRYPTO_GCM_NONCE_LEN + CRYPTO_GCM_TAG_LEN ? 0 :
	       bytes - CRYPTO_GCM_NONCE_LEN - CRYPTO_GCM_TAG_LEN;
}

/* --- node records --- */

static const char record_magic[8] = { 'P', 'H', 'I', 'F', 'S', 'R', 'E', 'C' };
#define RECORD_AAD_LEN (15 + FORMAT_ID_LEN + FORMAT_RECORD_HEAD)
#define RECORD_DEVICE_LEN 8u

static void record_aad(const uint8_t volume_id[FORMAT_ID_LEN],
		       const uint8_t head[FORMAT_RECORD_HEAD],
		       uint8_t aad[RECORD_AAD_LEN])
{
	memcpy(aad, "phifs record v1", 15);
	memcpy(aad + 15, volume_id, FORMAT_ID_LEN);
	memcpy(aad + 15 + FORMAT_ID_LEN, head, FORMAT_RECORD_HEAD);
}

bool format_record_is(const uint8_t *buf, size_t len)
{
	return len >= sizeof(record_magic) &&
	       !memcmp(buf, record_magic, sizeof(record_magic));
}

ssize_t format_record_seal(const struct crypto_key *key,
			   const uint8_t volume_id[FORMAT_ID_LEN],
			   const struct format_record *r,
			   uint8_t out[FORMAT_RECORD_MAX])
{
	uint8_t aad[RECORD_AAD_LEN], dev[RECORD_DEVICE_LEN];
	uint8_t *nonce = out + FORMAT_RECORD_HEAD;
	uint8_t *ct = nonce + CRYPTO_GCM_NONCE_LEN;
	const void *pt;
	size_t n;
	int rc;

	switch (r->kind) {
	case FORMAT_RECORD_SYMLINK:
		n = strlen(r->target);
		if (n > FORMAT_RECORD_TARGET_MAX)
			return -ENAMETOOLONG;
		if (!n)
			return -EINVAL;
		pt = r->target;
		break;
	case FORMAT_RECORD_CHR:
	case FORMAT_RECORD_BLK:
		format_put_le32(dev, r->major);
		format_put_le32(dev + 4, r->minor);
		pt = dev;
		n = sizeof(dev);
		break;
	default:
		return -EINVAL;
	}
	memcpy(out, record_magic, sizeof(record_magic));
	format_put_le16(out + 8, FORMAT_RECORD_VERSION);
	format_put_le16(out + 10, (uint16_t)r->kind);
	record_aad(volume_id, out, aad);
	rc = crypto_nonce(nonce, CRYPTO_GCM_NONCE_LEN);
	if (!rc)
		rc = crypto_gcm_seal(key, nonce, aad, sizeof(aad), pt, n, ct,
				     ct + n);
	return rc ? rc : (ssize_t)(FORMAT_RECORD_OVERHEAD + n);
}

int format_record_open(const struct crypto_key *key,
		       const uint8_t volume_id[FORMAT_ID_LEN],
		       const uint8_t *in, size_t len, struct format_record *r)
{
	uint8_t aad[RECORD_AAD_LEN], pt[FORMAT_RECORD_TARGET_MAX];
	const uint8_t *nonce = in + FORMAT_RECORD_HEAD;
	const uint8_t *ct = nonce + CRYPTO_GCM_NONCE_LEN;
	unsigned version, kind;
	size_t n;
	int rc;

	if (len < FORMAT_RECORD_OVERHEAD || len > FORMAT_RECORD_MAX ||
	    !format_record_is(in, len))
		return -EUCLEAN;
	version = format_get_le16(in + 8);
	kind = format_get_le16(in + 10);
	if (version > FORMAT_RECORD_VERSION)
		return -EPROTO;
	n = len - FORMAT_RECORD_OVERHEAD;
	if (version == 0 ||
	    (kind == FORMAT_RECORD_SYMLINK && n == 0) ||
	    ((kind == FORMAT_RECORD_CHR || kind == FORMAT_RECORD_BLK) &&
	     n != RECORD_DEVICE_LEN) ||
	    kind < FORMAT_RECORD_SYMLINK || kind > FORMAT_RECORD_BLK)
		return -EUCLEAN;
	record_aad(volume_id, in, aad);
	rc = crypto_gcm_open(key, nonce, aad, sizeof(aad), ct, n, pt, ct + n);
	if (rc)
		return rc;
	/* Only what was sealed opens, and targets are sealed from C strings:
	 * a NUL inside cannot authenticate. */
	r->kind = (enum format_record_kind)kind;
	r->major = r->minor = 0;
	r->len = 0;
	r->target[0] = 0;
	if (kind == FORMAT_RECORD_SYMLINK) {
		memcpy(r->target, pt, n);
		r->target[n] = 0;
		r->len = n;
	} else {
		r->major = format_get_le32(pt);
		r->minor = format_get_le32(pt + 4);
	}
	explicit_bzero(pt, n);
	return 0;
}

/* --- size tags --- */

static int size_mac(const struct crypto_key *key, uint64_t ino, uint64_t size,
		    const struct format_attrs *a,
		    uint8_t mac[CRYPTO_SHA256_LEN])
{
	uint8_t msg[13 + 16 + 12];

	memcpy(msg, "phifs size v2", 13);
	format_put_le64(msg + 13, ino);
	format_put_le64(msg + 21, size);
	format_put_le32(msg + 29, a->mode);
	format_put_le32(msg + 33, a->uid);
	format_put_le32(msg + 37, a->gid);
	return crypto_hmac_sha256(key, msg, sizeof(msg), mac);
}

/* The pad that hides the size: the backing shows sizes to 4 KiB only. */
static int size_pad(const struct crypto_key *key, uint64_t ino, uint64_t *pad)
{
	uint8_t msg[17 + 8], mac[CRYPTO_SHA256_LEN];
	int rc;

	memcpy(msg, "phifs size pad v1", 17);
	format_put_le64(msg + 17, ino);
	rc = crypto_hmac_sha256(key, msg, sizeof(msg), mac);
	if (!rc)
		*pad = format_get_le64(mac);
	return rc;
}

int format_size_tag(const struct crypto_key *key, uint64_t ino, uint64_t size,
		    const struct format_attrs *a,
		    uint8_t out[FORMAT_SIZE_TAG_LEN])
{
	uint8_t mac[CRYPTO_SHA256_LEN];
	uint64_t pad;
	int rc = size_mac(key, ino, size, a, mac);

	if (!rc)
		rc = size_pad(key, ino, &pad);
	if (rc)
		return rc;
	format_put_le64(out, size ^ pad);
	memcpy(out + 8, mac, FORMAT_SIZE_TAG_LEN - 8);
	return 0;
}

int format_size_untag(const struct crypto_key *key, uint64_t ino,
		      const struct format_attrs *a, const uint8_t *tag,
		      size_t len, uint64_t *size)
{
	uint8_t mac[CRYPTO_SHA256_LEN];
	uint64_t s, pad;

	if (len != FORMAT_SIZE_TAG_LEN || size_pad(key, ino, &pad))
		return -EBADMSG;
	s = format_get_le64(tag) ^ pad;
	if (s > FORMAT_MAX_SIZE || size_mac(key, ino, s, a, mac) ||
	    !crypto_memeq(mac, tag + 8, FORMAT_SIZE_TAG_LEN - 8))
		return -EBADMSG;
	*size = s;
	return 0;
}

/* --- extended attributes --- */

#define XATTR_LABEL "phifs xattr v1"
#define XATTR_NAME_LABEL "phifs xattr name v1"
#define XATTR_AAD_LEN (sizeof(XATTR_LABEL) - 1 + FORMAT_ID_LEN + 8 + \
		       FORMAT_XATTR_HASH_HEX)

int format_xattr_bname(const struct crypto_key *name_key, uint64_t ino,
		       const char *name, char out[FORMAT_XATTR_BNAME_MAX])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t msg[sizeof(XATTR_NAME_LABEL) - 1 + 8 + FORMAT_XATTR_NAME_MAX];
	uint8_t mac[CRYPTO_SHA256_LEN];
	size_t n = strlen(name), at = sizeof(XATTR_NAME_LABEL) - 1;
	char *p;
	int rc;

	if (n == 0 || n > FORMAT_XATTR_NAME_MAX)
		return -ERANGE;
	memcpy(msg, XATTR_NAME_LABEL, at);
	format_put_le64(msg + at, ino);
	memcpy(msg + at + 8, name, n);
	rc = crypto_hmac_sha256(name_key, msg, at + 8 + n, mac);
	if (rc)
		return rc;
	memcpy(out, FORMAT_XATTR_PREFIX, sizeof(FORMAT_XATTR_PREFIX) - 1);
	p = out + sizeof(FORMAT_XATTR_PREFIX) - 1;
	for (size_t i = 0; i < FORMAT_XATTR_HASH_HEX / 2; i++) {
		*p++ = hex[mac[i] >> 4];
		*p++ = hex[mac[i] & 15];
	}
	*p = 0;
	return 0;
}

bool format_xattr_is(const char *bname)
{
	size_t k = sizeof(FORMAT_XATTR_PREFIX) - 1;

	if (strncmp(bname, FORMAT_XATTR_PREFIX, k) ||
	    strlen(bname) != k + FORMAT_XATTR_HASH_HEX)
		return false;
	for (const char *p = bname + k; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static void xattr_aad(const uint8_t volume_id[FORMAT_ID_LEN], uint64_t ino,
		      const char *bname, uint8_t aad[XATTR_AAD_LEN])
{
	size_t at = sizeof(XATTR_LABEL) - 1;

	memcpy(aad, XATTR_LABEL, at);
	memcpy(aad + at, volume_id, FORMAT_ID_LEN);
	format_put_le64(aad + at + FORMAT_ID_LEN, ino);
	memcpy(aad + at + FORMAT_ID_LEN + 8,
	       bname + sizeof(FORMAT_XATTR_PREFIX) - 1, FORMAT_XATTR_HASH_HEX);
}

ssize_t format_xattr_seal(const struct crypto_key *key,
			  const uint8_t volume_id[FORMAT_ID_LEN], uint64_t ino,
			  const char *bname, const char *name,
			  const void *value, size_t vlen, uint8_t *out)
{
	uint8_t aad[XATTR_AAD_LEN], *ct = out + CRYPTO_GCM_NONCE_LEN;
	size_t n = strlen(name), len = 1 + n + vlen;
	int rc;

	if (n == 0 || n > FORMAT_XATTR_NAME_MAX || !format_xattr_is(bname))
		return -ERANGE;
	if (vlen > FORMAT_XATTR_VALUE_MAX)
		return -E2BIG;
	/* Sealed in place: the plaintext is laid out where the ciphertext
	 * goes, so no copy of the value is left behind. */
	ct[0] = (uint8_t)n;
	memcpy(ct + 1, name, n);
	if (vlen)
		memcpy(ct + 1 + n, value, vlen);
	xattr_aad(volume_id, ino, bname, aad);
	rc = crypto_nonce(out, CRYPTO_GCM_NONCE_LEN);
	if (!rc)
		rc = crypto_gcm_seal(key, out, aad, sizeof(aad), ct, len, ct,
				     ct + len);
	if (rc) {
		explicit_bzero(ct, len);
		return rc;
	}
	return (ssize_t)(FORMAT_XATTR_OVERHEAD + n + vlen);
}

ssize_t format_xattr_open(const struct crypto_key *key,
			  const uint8_t volume_id[FORMAT_ID_LEN], uint64_t ino,
			  const char *bname, const uint8_t *in, size_t len,
			  char name[FORMAT_XATTR_NAME_MAX + 1], uint8_t *value)
{
	uint8_t aad[XATTR_AAD_LEN], *pt = NULL;
	const uint8_t *ct = in + CRYPTO_GCM_NONCE_LEN;
	size_t n, plen;
	ssize_t rc;

	if (len < FORMAT_XATTR_OVERHEAD + 1 || len > FORMAT_XATTR_SEALED_MAX ||
	    !format_xattr_is(bname))
		return -EBADMSG;
	plen = len - CRYPTO_GCM_NONCE_LEN - CRYPTO_GCM_TAG_LEN;
	pt = malloc(plen);
	if (!pt)
		return -ENOMEM;
	xattr_aad(volume_id, ino, bname, aad);
	rc = crypto_gcm_open(key, in, aad, sizeof(aad), ct, plen, pt,
			     ct + plen);
	if (rc)
		goto out;
	n = pt[0];
	/* Only what was sealed opens, and names are sealed from C strings
	 * of 1..255 bytes: a NUL inside cannot authenticate. */
	if (n == 0 || 1 + n > plen || memchr(pt + 1, 0, n)) {
		rc = -EBADMSG;
		goto out;
	}
	memcpy(name, pt + 1, n);
	name[n] = 0;
	if (plen > 1 + n)
		memcpy(value, pt + 1 + n, plen - 1 - n);
	rc = (ssize_t)(plen - 1 - n);
out:
	explicit_bzero(pt, plen);
	free(pt);
	return rc;
}
