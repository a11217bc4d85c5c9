/*
 * format_folder.c — the bytes of a folder record, part of the format
 * module (docs/FORMAT.md, "Folder records").  Pure: no I/O; which xattr
 * holds the bytes and when they are read is the caller's business.
 */
#include "phifs/format.h"

#include <errno.h>
#include <string.h>

#include "phifs/secmem.h"

#define FOLDER_HEAD 12u		/* magic, version, flags */
#define FOLDER_PLAIN (3 * 4 + FORMAT_ID_LEN)
#define FOLDER_LABEL "phifs folder v1"
#define FOLDER_AAD_LEN \
	(sizeof(FOLDER_LABEL) - 1 + FORMAT_ID_LEN + 8 + FOLDER_HEAD)

_Static_assert(FOLDER_HEAD + CRYPTO_GCM_NONCE_LEN + FOLDER_PLAIN +
		       CRYPTO_GCM_TAG_LEN == FORMAT_FOLDER_LEN,
	       "FORMAT_FOLDER_LEN is the record's length");

static const uint8_t folder_magic[8] = { 'P', 'H', 'I', 'F',
					 'S', 'D', 'I', 'R' };

static void folder_aad(const uint8_t volume_id[FORMAT_ID_LEN], uint64_t ino,
		       const uint8_t head[FOLDER_HEAD],
		       uint8_t aad[FOLDER_AAD_LEN])
{
	size_t n = sizeof(FOLDER_LABEL) - 1;

	memcpy(aad, FOLDER_LABEL, n);
	memcpy(aad + n, volume_id, FORMAT_ID_LEN);
	format_put_le64(aad + n + FORMAT_ID_LEN, ino);
	memcpy(aad + n + FORMAT_ID_LEN + 8, head, FOLDER_HEAD);
}

int format_folder_seal(const struct crypto_key *key,
		       const uint8_t volume_id[FORMAT_ID_LEN], uint64_t ino,
		       const struct format_folder *f,
		       uint8_t out[FORMAT_FOLDER_LEN])
{
	uint8_t aad[FOLDER_AAD_LEN], pt[FOLDER_PLAIN];
	uint8_t *nonce = out + FOLDER_HEAD;
	uint8_t *ct = nonce + CRYPTO_GCM_NONCE_LEN;
	int rc;

	if (f->attrs.mode & ~07777u)
		return -EINVAL;
	memcpy(out, folder_magic, sizeof(folder_magic));
	format_put_le16(out + 8, FORMAT_FOLDER_VERSION);
	format_put_le16(out + 10, 0);
	format_put_le32(pt, f->attrs.mode);
	format_put_le32(pt + 4, f->attrs.uid);
	format_put_le32(pt + 8, f->attrs.gid);
	memcpy(pt + 12, f->id, FORMAT_ID_LEN);
	folder_aad(volume_id, ino, out, aad);
	rc = crypto_nonce(nonce, CRYPTO_GCM_NONCE_LEN);
	if (!rc)
		rc = crypto_gcm_seal(key, nonce, aad, sizeof(aad), pt,
				     sizeof(pt), ct, ct + sizeof(pt));
	secmem_wipe(pt, sizeof(pt));
	return rc;
}

int format_folder_open(const struct crypto_key *key,
		       const uint8_t volume_id[FORMAT_ID_LEN], uint64_t ino,
		       const uint8_t *in, size_t len, struct format_folder *f)
{
	uint8_t aad[FOLDER_AAD_LEN], pt[FOLDER_PLAIN];
	const uint8_t *nonce = in + FOLDER_HEAD;
	const uint8_t *ct = nonce + CRYPTO_GCM_NONCE_LEN;
	unsigned version;
	int rc;

	if (len < FOLDER_HEAD || memcmp(in, folder_magic, 8))
		return -EUCLEAN;
	version = format_get_le16(in + 8);
	if (version > FORMAT_FOLDER_VERSION || format_get_le16(in + 10))
		return -EPROTO;
	if (version == 0 || len != FORMAT_FOLDER_LEN)
		return -EUCLEAN;
	folder_aad(volume_id, ino, in, aad);
	rc = crypto_gcm_open(key, nonce, aad, sizeof(aad), ct, sizeof(pt),
			     pt, ct + sizeof(pt));
	if (rc)
		return rc;
	if (format_get_le32(pt) & ~07777u) {
		rc = -EUCLEAN;
	} else {
		f->attrs.mode = format_get_le32(pt);
		f->attrs.uid = format_get_le32(pt + 4);
		f->attrs.gid = format_get_le32(pt + 8);
		memcpy(f->id, pt + 12, FORMAT_ID_LEN);
	}
	secmem_wipe(pt, sizeof(pt));
	return rc;
}
