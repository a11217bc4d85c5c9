/*
 * test_keys.c — Criterion tests of the keystore (keys.c) and the key
 * sources (keysrc.c): codec round trips, tamper and truncation sweeps,
 * rotation and slot changes, crash-safe saving, and the golden v1 keystore
 * under tests/data/golden_v1, which every later version must still open.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* nftw, asprintf; the build defines it too */
#endif

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "phifs/crypto.h"
#include "phifs/keys.h"
#include "phifs/secmem.h"
#include "testutil.h"

/* Cheap scrypt so passphrase tests take milliseconds. */
static const struct keys_params fast = { 10, 8, 1 };

/*
 * The golden v1 keystore: slot 0 opens with tests/data/golden_v1/key.hex,
 * slot 1 with GOLDEN_PASS; version 1 retired, 2 decrypt-only, 3 active.
 * The values below were printed by the generator when it made the files.
 */
#define GOLDEN_PASS "golden v1 passphrase"
#define GOLDEN_VOLUME_ID "1a20a4bc1a444d8da5c33a2acb225c71"
#define GOLDEN_AUDIT_PUB \
	"26b319039e6f252f2f9ec43019c01020bd169de664bedad9909e0fd19a17f6a7"
#define GOLDEN_KEK2 \
	"66d05177bb07b9df62484ae3c28bbff7145bb8514fff041439bf402d72533091"
#define GOLDEN_KEK3 \
	"b84b8b9c57649c8aaebf729daa2791b353f8ef6f7c51bd6f99d6ac0bb6677a99"
#define GOLDEN_SIZE 597

static struct keys_secret *raw_secret(uint8_t fill)
{
	uint8_t k[CRYPTO_KEY_LEN];
	struct keys_secret *s;

	memset(k, fill, sizeof(k));
	s = keys_secret_raw(k);
	cr_assert(s);
	return s;
}

static struct keys_secret *pass_secret(const char *pass)
{
	struct keys_secret *s = keys_secret_passphrase(pass);

	cr_assert(s);
	return s;
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* A fresh private folder; removed by rm_tree at the end of the test. */
static char *temp_dir(void)
{
	const char *base = getenv("TMPDIR");
	char *d;

	cr_assert(asprintf(&d, "%s/phifs-keys-XXXXXX",
			   base && *base ? base : "/tmp") > 0);
	cr_assert(mkdtemp(d), "mkdtemp failed");
	return d;
}

static void rm_tree(char *d)
{
	nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(d);
}

static int open_dir(const char *d)
{
	int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	cr_assert(fd >= 0);
	return fd;
}

static void write_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert(fd >= 0, "cannot create %s", path);
	cr_assert(write(fd, p, n) == (ssize_t)n);
	cr_assert(fchmod(fd, mode) == 0);
	close(fd);
}

/* Puts bytes in place as the keystore of dfd, as a meddler would. */
static void write_keystore(int dfd, const uint8_t *buf, size_t len)
{
	int fd = openat(dfd, KEYS_FILE, O_WRONLY | O_CREAT | O_TRUNC |
			O_CLOEXEC, 0600);

	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void encode(const struct keys_store *ks, uint8_t **buf, size_t *len)
{
	cr_assert_eq(keys_encode(ks, buf, len), 0);
}

/* Rewrites the trailing SHA-256 after a deliberate change. */
static void fix_checksum(uint8_t *buf, size_t len)
{
	cr_assert_eq(crypto_sha256(buf, len - CRYPTO_SHA256_LEN,
				   buf + len - CRYPTO_SHA256_LEN), 0);
}

static void assert_same_keks(const struct keys_store *a,
			     const struct keys_store *b)
{
	struct keys_version_info va[16], vb[16];
	size_t na = keys_versions(a, va, 16), nb = keys_versions(b, vb, 16);

	cr_assert_eq(na, nb);
	cr_assert_eq(keys_active_version(a), keys_active_version(b));
	for (size_t i = 0; i < na; i++) {
		const struct crypto_key *ka = keys_kek(a, va[i].version);
		const struct crypto_key *kb = keys_kek(b, vb[i].version);

		cr_assert_eq(va[i].version, vb[i].version);
		cr_assert_eq(va[i].state, vb[i].state);
		if (va[i].state == KEYS_RETIRED) {
			cr_assert_null(ka);
			cr_assert_null(kb);
			continue;
		}
		cr_assert(ka && kb);
		cr_assert_arr_eq(ka->bytes, kb->bytes, CRYPTO_KEY_LEN);
	}
	cr_assert_arr_eq(keys_volume_id(a), keys_volume_id(b), FORMAT_ID_LEN);
	cr_assert_arr_eq(keys_audit_key(a)->bytes, keys_audit_key(b)->bytes,
			 CRYPTO_KEY_LEN);
}

Test(keys, a_raw_slot_store_survives_an_encode_decode_round_trip)
{
	struct keys_secret *s = raw_secret(1);
	struct keys_store *ks, *back;
	struct keys_version_info v[4];
	struct keys_slot_info sl[4];
	uint8_t *buf, *buf2, pub[CRYPTO_ED25519_PUB_LEN];
	size_t len, len2;

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(keys_active_version(ks), 1);
	cr_assert_not_null(keys_active_kek(ks));
	cr_assert_eq(keys_versions(ks, v, 4), 1);
	cr_assert_eq(v[0].version, 1);
	cr_assert_eq(v[0].state, KEYS_ACTIVE);
	cr_assert_eq(keys_slots(ks, sl, 4), 1);
	cr_assert_eq(sl[0].id, 0);
	cr_assert_eq(sl[0].kind, KEYS_SECRET_RAW);
	encode(ks, &buf, &len);
	cr_assert_eq(len, 361, "one slot, one version: %zu bytes", len);
	cr_assert_eq(keys_decode(buf, len, s, &back), 0);
	assert_same_keks(ks, back);
	keys_audit_pub(back, pub);
	cr_assert_eq(crypto_ed25519_public(keys_audit_key(back), pub), 0);
	/* Encoding is deterministic: a decoded store gives back its bytes. */
	encode(back, &buf2, &len2);
	cr_assert_eq(len, len2);
	cr_assert_arr_eq(buf, buf2, len);
	free(buf);
	free(buf2);
	keys_free(back);
	keys_free(ks);
	keys_secret_free(s);
}

Test(keys, a_passphrase_slot_store_survives_an_encode_decode_round_trip)
{
	struct keys_secret *s = pass_secret("correct horse battery staple");
	struct keys_store *ks, *back;
	struct keys_slot_info sl[1];
	uint8_t *buf;
	size_t len;

	cr_assert_eq(keys_create(s, &fast, &ks), 0);
	keys_slots(ks, sl, 1);
	cr_assert_eq(sl[0].kind, KEYS_SECRET_PASSPHRASE);
	encode(ks, &buf, &len);
	cr_assert_eq(keys_decode(buf, len, s, &back), 0);
	assert_same_keks(ks, back);
	free(buf);
	keys_free(back);
	keys_free(ks);
	keys_secret_free(s);
}

Test(keys, scrypt_parameters_out_of_bounds_are_refused)
{
	struct keys_secret *s = pass_secret("pass");
	struct keys_params bad[] = {
		{ 0, 8, 1 }, { 25, 8, 1 }, { 10, 0, 1 }, { 10, 8, 0 },
		{ 10, 33, 1 }, { 10, 8, 17 }, { 24, 32, 1 }, { 300, 8, 1 },
	};
	struct keys_store *ks = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(keys_create(s, &bad[i], &ks), -EINVAL,
			     "params #%zu accepted", i);
	cr_assert_null(ks);
	keys_secret_free(s);
}

Test(keys, a_saved_store_loads_back_from_its_folder)
{
	struct keys_secret *s = raw_secret(2);
	struct keys_store *ks, *back = NULL;
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	struct stat st;
	int dfd = open_dir(d);

	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "keystore"), "err: %s", err);
	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(keys_save(ks, dfd, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fstatat(dfd, KEYS_FILE, &st, 0), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(fstatat(dfd, KEYS_FILE ".tmp", &st, 0), -1);
	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), 0, "%s", err);
	assert_same_keks(ks, back);
	keys_free(back);
	keys_free(ks);
	keys_secret_free(s);
	close(dfd);
	rm_tree(d);
}

Test(keys, a_wrong_raw_key_is_rejected_as_a_wrong_key)
{
	struct keys_secret *s = raw_secret(3), *wrong = raw_secret(4);
	struct keys_store *ks, *back = NULL;
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	int dfd = open_dir(d);

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(keys_save(ks, dfd, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(keys_load(dfd, wrong, &back, err, sizeof(err)),
		     -EKEYREJECTED);
	cr_assert_null(back);
	cr_assert(strstr(err, "wrong key"), "err: %s", err);
	keys_free(ks);
	keys_secret_free(s);
	keys_secret_free(wrong);
	close(dfd);
	rm_tree(d);
}

Test(keys, a_wrong_passphrase_is_rejected_as_a_wrong_key)
{
	struct keys_secret *s = pass_secret("right"), *wrong = pass_secret(
		"wrong"), *raw = raw_secret(5);
	struct keys_store *ks, *back = NULL;
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	int dfd = open_dir(d);

	cr_assert_eq(keys_create(s, &fast, &ks), 0);
	cr_assert_eq(keys_save(ks, dfd, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(keys_load(dfd, wrong, &back, err, sizeof(err)),
		     -EKEYREJECTED);
	cr_assert(strstr(err, "wrong key"), "err: %s", err);
	/* A raw key meets no slot of its kind: the same answer. */
	err[0] = 0;
	cr_assert_eq(keys_load(dfd, raw, &back, err, sizeof(err)),
		     -EKEYREJECTED);
	cr_assert(strstr(err, "wrong key"), "err: %s", err);
	cr_assert_null(back);
	keys_free(ks);
	keys_secret_free(s);
	keys_secret_free(wrong);
	keys_secret_free(raw);
	close(dfd);
	rm_tree(d);
}

/* A store with every kind of field: two slot kinds, all three states. */
static struct keys_store *busy_store(const struct keys_secret *s)
{
	struct keys_secret *p = pass_secret("second way in");
	struct keys_store *ks;

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(keys_add_slot(ks, p, &fast, NULL), 0);
	cr_assert_eq(keys_rotate(ks, NULL), 0);
	cr_assert_eq(keys_rotate(ks, NULL), 0);
	cr_assert_eq(keys_retire(ks, 1), 0);
	keys_secret_free(p);
	return ks;
}

Test(keys, every_flipped_byte_reads_as_corruption_never_as_a_wrong_key)
{
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	struct keys_secret *s = raw_secret(6);
	struct keys_store *ks = busy_store(s), *back = NULL;
	uint8_t *buf;
	size_t len;

	encode(ks, &buf, &len);
	cr_assert_eq(len, 361 + 106 + 2 * 65);
	for (size_t m = 0; m < sizeof(masks); m++) {
		for (size_t i = 0; i < len; i++) {
			int rc;

			buf[i] ^= masks[m];
			rc = keys_decode(buf, len, s, &back);
			buf[i] ^= masks[m];
			cr_assert_eq(rc, -EUCLEAN,
				     "byte %zu ^ %#x gave %d", i, masks[m],
				     rc);
			cr_assert_null(back);
		}
	}
	cr_assert_eq(keys_decode(buf, len, s, &back), 0);
	keys_free(back);
	free(buf);
	keys_free(ks);
	keys_secret_free(s);
}

Test(keys, a_truncated_keystore_reads_as_corruption)
{
	struct keys_secret *s = raw_secret(7);
	struct keys_store *ks = busy_store(s), *back = NULL;
	uint8_t *buf;
	size_t len;

	encode(ks, &buf, &len);
	for (size_t n = 0; n < len; n++) {
		cr_assert_eq(keys_decode(buf, n, s, &back), -EUCLEAN,
			     "length %zu", n);
	}
	cr_assert_null(back);
	free(buf);
	keys_free(ks);
	keys_secret_free(s);
}

Test(keys, a_newer_format_version_is_refused_with_eproto)
{
	struct keys_secret *s = raw_secret(8);
	struct keys_store *ks, *back = NULL;
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	uint8_t *buf;
	size_t len;
	int dfd = open_dir(d);

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	encode(ks, &buf, &len);
	buf[8] = 3;	/* version, little-endian at offset 8; 2 is known */
	fix_checksum(buf, len);
	cr_assert_eq(keys_decode(buf, len, s, &back), -EPROTO);
	buf[8] = 0;
	buf[9] = 1;	/* 256 */
	fix_checksum(buf, len);
	cr_assert_eq(keys_decode(buf, len, s, &back), -EPROTO);
	cr_assert_null(back);
	/* Through keys_load, with the error line. */
	write_keystore(dfd, buf, len);
	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), -EPROTO);
	cr_assert(strstr(err, "newer"), "err: %s", err);
	free(buf);
	keys_free(ks);
	keys_secret_free(s);
	close(dfd);
	rm_tree(d);
}

Test(keys, a_change_behind_a_recomputed_checksum_fails_authentication)
{
	struct keys_secret *s = raw_secret(9);
	struct keys_store *ks = busy_store(s), *back = NULL;
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	uint8_t *buf;
	size_t len, n = 0;
	int dfd = open_dir(d);

	encode(ks, &buf, &len);
	/*
	 * Flip each byte with the checksum fixed up: whatever the answer, it
	 * must be a refusal.  Only what slot 0's wrap binds (the volume ID
	 * and the slot itself) may say "wrong key": that slot then cannot
	 * open, and the MAC is out of reach without the root key.
	 */
	for (size_t i = 0; i < len - CRYPTO_SHA256_LEN; i++) {
		int rc;

		buf[i] ^= 0x20;
		fix_checksum(buf, len);
		rc = keys_decode(buf, len, s, &back);
		buf[i] ^= 0x20;
		cr_assert_neq(rc, 0, "byte %zu accepted", i);
		cr_assert_null(back);
		if (rc == -EKEYREJECTED) {
			cr_assert((i >= 10 && i < 26) ||
				  (i >= 34 && i < 34 + 106), "byte %zu", i);
			n++;
		} else {
			cr_assert(rc == -EUCLEAN || rc == -EPROTO,
				  "byte %zu gave %d", i, rc);
		}
	}
	cr_assert_gt(n, 0);
	/* The audit public key is bound by the MAC alone. */
	buf[len - 64 - 92] ^= 1;
	fix_checksum(buf, len);
	write_keystore(dfd, buf, len);
	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), -EUCLEAN);
	cr_assert(strstr(err, "fails authentication"), "err: %s", err);
	free(buf);
	keys_free(ks);
	keys_secret_free(s);
	close(dfd);
	rm_tree(d);
}

Test(keys, rotate_and_retire_follow_the_version_rules_and_persist)
{
	struct keys_secret *s = raw_secret(10);
	struct keys_store *ks, *back;
	struct keys_version_info v[8];
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	uint8_t kek1[CRYPTO_KEY_LEN];
	uint32_t nv = 0;
	int dfd = open_dir(d);

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	memcpy(kek1, keys_kek(ks, 1)->bytes, sizeof(kek1));
	cr_assert_eq(keys_rotate(ks, &nv), 0);
	cr_assert_eq(nv, 2);
	cr_assert_eq(keys_active_version(ks), 2);
	cr_assert_eq(keys_active_kek(ks), keys_kek(ks, 2));
	cr_assert_arr_eq(keys_kek(ks, 1)->bytes, kek1, sizeof(kek1));
	cr_assert(memcmp(keys_kek(ks, 2)->bytes, kek1, sizeof(kek1)));
	cr_assert_eq(keys_kek_fn(ks, 2), keys_kek(ks, 2));
	cr_assert_eq(keys_versions(ks, v, 8), 2);
	cr_assert_eq(v[0].state, KEYS_DECRYPT_ONLY);
	cr_assert_eq(v[1].state, KEYS_ACTIVE);
	cr_assert_eq(keys_retire(ks, 2), -EBUSY);
	cr_assert_eq(keys_retire(ks, 7), -ENOENT);
	cr_assert_eq(keys_retire(ks, 1), 0);
	cr_assert_null(keys_kek(ks, 1));
	cr_assert_null(keys_kek(ks, 99));
	cr_assert_eq(keys_rotate(ks, &nv), 0);
	cr_assert_eq(nv, 3);
	cr_assert_eq(keys_save(ks, dfd, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(keys_versions(back, v, 8), 3);
	cr_assert_eq(v[0].version, 1);
	cr_assert_eq(v[0].state, KEYS_RETIRED);
	cr_assert_eq(v[1].version, 2);
	cr_assert_eq(v[1].state, KEYS_DECRYPT_ONLY);
	cr_assert_eq(v[2].version, 3);
	cr_assert_eq(v[2].state, KEYS_ACTIVE);
	cr_assert_null(keys_kek(back, 1));
	assert_same_keks(ks, back);
	/* A retired number is never handed out again. */
	cr_assert_eq(keys_retire(back, 2), 0);
	cr_assert_eq(keys_rotate(back, &nv), 0);
	cr_assert_eq(nv, 4);
	keys_free(back);
	keys_free(ks);
	keys_secret_free(s);
	close(dfd);
	rm_tree(d);
}

Test(keys, added_and_removed_slots_change_who_can_unlock_and_persist)
{
	struct keys_secret *s = raw_secret(11), *p = pass_secret("break glass");
	struct keys_secret *s2 = raw_secret(12);
	struct keys_store *ks, *back = NULL;
	struct keys_slot_info sl[8];
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	uint32_t id = 99;
	int dfd = open_dir(d);

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(keys_remove_slot(ks, 0), -EBUSY);
	cr_assert_eq(keys_add_slot(ks, p, &fast, &id), 0);
	cr_assert_eq(id, 1);
	cr_assert_eq(keys_add_slot(ks, s2, NULL, &id), 0);
	cr_assert_eq(id, 2);
	cr_assert_eq(keys_slots(ks, sl, 8), 3);
	cr_assert_eq(sl[1].kind, KEYS_SECRET_PASSPHRASE);
	cr_assert_eq(sl[2].kind, KEYS_SECRET_RAW);
	cr_assert_eq(keys_remove_slot(ks, 42), -ENOENT);
	cr_assert_eq(keys_save(ks, dfd, err, sizeof(err)), 0, "%s", err);
	/* All three open the same root, so the same KEKs. */
	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), 0, "%s", err);
	assert_same_keks(ks, back);
	keys_free(back);
	cr_assert_eq(keys_load(dfd, p, &back, err, sizeof(err)), 0, "%s", err);
	assert_same_keks(ks, back);
	keys_free(back);
	cr_assert_eq(keys_load(dfd, s2, &back, err, sizeof(err)), 0, "%s",
		     err);
	assert_same_keks(ks, back);
	/* Removing slot 0 locks the first key out; ids are not reused. */
	cr_assert_eq(keys_remove_slot(back, 0), 0);
	cr_assert_eq(keys_save(back, dfd, err, sizeof(err)), 0, "%s", err);
	keys_free(back);
	back = NULL;
	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)),
		     -EKEYREJECTED);
	cr_assert_eq(keys_load(dfd, p, &back, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(keys_slots(back, sl, 8), 2);
	cr_assert_eq(sl[0].id, 1);
	cr_assert_eq(sl[1].id, 2);
	cr_assert_eq(keys_remove_slot(back, 2), 0);
	cr_assert_eq(keys_remove_slot(back, 1), -EBUSY);
	cr_assert_eq(keys_add_slot(back, s, NULL, &id), 0);
	cr_assert_eq(id, 2);
	keys_free(back);
	keys_free(ks);
	keys_secret_free(s);
	keys_secret_free(s2);
	keys_secret_free(p);
	close(dfd);
	rm_tree(d);
}

Test(keys, keks_of_every_live_version_survive_save_and_load_unchanged)
{
	struct keys_secret *s = raw_secret(13);
	struct keys_store *ks, *back;
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	uint8_t keks[6][CRYPTO_KEY_LEN];
	int dfd = open_dir(d);

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(keys_rotate(ks, NULL), 0);
	cr_assert_eq(keys_retire(ks, 3), 0);
	for (uint32_t v = 1; v <= 6; v++)
		if (v != 3)
			memcpy(keks[v - 1], keys_kek(ks, v)->bytes,
			       CRYPTO_KEY_LEN);
	cr_assert_eq(keys_save(ks, dfd, err, sizeof(err)), 0, "%s", err);
	keys_free(ks);
	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(keys_active_version(back), 6);
	for (uint32_t v = 1; v <= 6; v++) {
		if (v == 3) {
			cr_assert_null(keys_kek(back, v));
			continue;
		}
		cr_assert_not_null(keys_kek(back, v));
		cr_assert_arr_eq(keys_kek(back, v)->bytes, keks[v - 1],
				 CRYPTO_KEY_LEN, "version %u", v);
	}
	keys_free(back);
	keys_secret_free(s);
	close(dfd);
	rm_tree(d);
}

Test(keys, a_save_killed_half_way_leaves_the_old_or_the_new_keystore)
{
	struct keys_secret *s = raw_secret(14);
	struct keys_store *a, *b, *back;
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int dfd = open_dir(d), seen_a = 0, seen_b = 0;

	cr_assert_eq(keys_create(s, NULL, &a), 0);
	cr_assert_eq(keys_create(s, NULL, &b), 0);
	cr_assert_eq(keys_rotate(b, NULL), 0);
	cr_assert_eq(keys_save(a, dfd, err, sizeof(err)), 0, "%s", err);
	for (int round = 0; round < 30; round++) {
		struct timespec delay = { 0, 0 };
		pid_t pid = fork();
		int status;

		cr_assert(pid >= 0);
		if (pid == 0) {
			for (;;) {
				if (keys_save(a, dfd, NULL, 0) < 0 ||
				    keys_save(b, dfd, NULL, 0) < 0)
					_exit(1);
			}
		}
		/* The scenario: a kill at a random moment of the saves. */
		delay.tv_nsec = (long)(tu_rand(&seed) % 20000000);
		nanosleep(&delay, NULL);
		cr_assert_eq(kill(pid, SIGKILL), 0);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status), "the saving child failed");
		back = NULL;
		cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), 0,
			     "round %d: %s", round, err);
		if (!memcmp(keys_volume_id(back), keys_volume_id(a),
			    FORMAT_ID_LEN)) {
			assert_same_keks(a, back);
			seen_a++;
		} else {
			assert_same_keks(b, back);
			seen_b++;
		}
		keys_free(back);
	}
	cr_log_info("killed saves: %d left A, %d left B", seen_a, seen_b);
	keys_free(a);
	keys_free(b);
	keys_secret_free(s);
	close(dfd);
	rm_tree(d);
}

Test(keys, a_leftover_partial_temp_file_is_ignored_and_overwritten)
{
	struct keys_secret *s = raw_secret(15);
	struct keys_store *ks, *back;
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	uint8_t *buf;
	size_t len;
	struct stat st;
	int dfd = open_dir(d), fd;

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(keys_save(ks, dfd, err, sizeof(err)), 0, "%s", err);
	encode(ks, &buf, &len);
	fd = openat(dfd, KEYS_FILE ".tmp", O_WRONLY | O_CREAT | O_CLOEXEC,
		    0600);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, buf, len / 2), (ssize_t)(len / 2));
	close(fd);
	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), 0, "%s", err);
	assert_same_keks(ks, back);
	keys_free(back);
	cr_assert_eq(keys_rotate(ks, NULL), 0);
	cr_assert_eq(keys_save(ks, dfd, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fstatat(dfd, KEYS_FILE ".tmp", &st, 0), -1);
	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(keys_active_version(back), 2);
	keys_free(back);
	free(buf);
	keys_free(ks);
	keys_secret_free(s);
	close(dfd);
	rm_tree(d);
}

static const char test_hex[] =
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void assert_test_key(const struct keys_secret *s)
{
	cr_assert_eq(s->kind, KEYS_SECRET_RAW);
	cr_assert_eq(s->len, CRYPTO_KEY_LEN);
	for (int i = 0; i < CRYPTO_KEY_LEN; i++)
		cr_assert_eq(s->bytes[i], i);
}

static struct keys_secret *load_spec(int *rc, char *err, const char *fmt,
				     ...) __attribute__((format(printf, 3, 4)));

/* keys_source_load() of a spec made with printf; err is KEYS_ERR_LEN. */
static struct keys_secret *load_spec(int *rc, char *err, const char *fmt,
				     ...)
{
	struct keys_secret *s = NULL;
	char *spec;
	va_list ap;

	va_start(ap, fmt);
	cr_assert(vasprintf(&spec, fmt, ap) > 0);
	va_end(ap);
	err[0] = 0;
	*rc = keys_source_load(spec, &s, err, KEYS_ERR_LEN);
	free(spec);
	cr_assert_eq(*rc < 0, s == NULL);
	return s;
}

Test(keysrc, a_key_file_holds_32_raw_bytes_or_64_hex_digits)
{
	char err[KEYS_ERR_LEN], *d = temp_dir(), *f;
	uint8_t raw[CRYPTO_KEY_LEN];
	struct keys_secret *s;
	char hexnl[65];
	int rc;

	cr_assert(asprintf(&f, "%s/key", d) > 0);
	for (int i = 0; i < CRYPTO_KEY_LEN; i++)
		raw[i] = (uint8_t)i;
	write_file(f, raw, sizeof(raw), 0400);
	s = load_spec(&rc, err, "file:%s", f);
	cr_assert_eq(rc, 0, "%s", err);
	assert_test_key(s);
	keys_secret_free(s);

	memcpy(hexnl, test_hex, 64);
	hexnl[64] = '\n';
	write_file(f, hexnl, 65, 0400);
	s = load_spec(&rc, err, "file:%s", f);
	cr_assert_eq(rc, 0, "%s", err);
	assert_test_key(s);
	keys_secret_free(s);

	write_file(f, test_hex, 64, 0600);
	s = load_spec(&rc, err, "file:%s", f);
	cr_assert_eq(rc, 0, "%s", err);
	assert_test_key(s);
	keys_secret_free(s);
	free(f);
	rm_tree(d);
}

Test(keysrc, a_key_file_of_any_other_shape_is_refused_with_einval)
{
	char err[KEYS_ERR_LEN], *d = temp_dir(), *f, big[5000];
	char hex[80];
	struct {
		const void *p;
		size_t n;
	} bad[] = {
		{ "", 0 }, { test_hex, 31 }, { test_hex, 33 },
		{ test_hex, 63 }, { hex, 65 }, { hex, 66 }, { hex, 64 },
		{ big, sizeof(big) },
	};
	int rc;

	memset(big, 'a', sizeof(big));
	memcpy(hex, test_hex, 64);
	hex[64] = ' ';		/* not a newline */
	hex[65] = '\n';
	cr_assert(asprintf(&f, "%s/key", d) > 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (i == 6)
			hex[10] = 'g';	/* 64 characters, not all hex */
		write_file(f, bad[i].p, bad[i].n, 0400);
		cr_assert_null(load_spec(&rc, err, "file:%s", f));
		cr_assert_eq(rc, -EINVAL, "case %zu gave %d", i, rc);
		cr_assert(strstr(err, "expected 32 raw bytes or 64 hex"),
			  "err: %s", err);
		cr_assert(strstr(err, f), "err does not name the file: %s",
			  err);
	}
	free(f);
	rm_tree(d);
}

Test(keysrc, a_key_file_open_to_group_or_others_is_refused)
{
	char err[KEYS_ERR_LEN], *d = temp_dir(), *f;
	static const mode_t modes[] = { 0644, 0640, 0604, 0601, 0610 };
	int rc;

	cr_assert(asprintf(&f, "%s/key", d) > 0);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		write_file(f, test_hex, 64, modes[i]);
		cr_assert_null(load_spec(&rc, err, "file:%s", f));
		cr_assert_lt(rc, 0);
		cr_assert(strstr(err, "group- or other-accessible"),
			  "err: %s", err);
		cr_assert(strstr(err, "chmod 0400"), "err: %s", err);
	}
	cr_assert_null(load_spec(&rc, err, "file:%s/missing", d));
	cr_assert_eq(rc, -ENOENT);
	cr_assert_null(load_spec(&rc, err, "%s", "nonsense:x"));
	cr_assert_eq(rc, -EINVAL);
	free(f);
	rm_tree(d);
}

Test(keysrc, a_key_command_gives_the_key_on_its_stdout)
{
	char err[KEYS_ERR_LEN], *d = temp_dir(), *f;
	struct keys_secret *s;
	int rc;

	cr_assert(asprintf(&f, "%s/key", d) > 0);
	write_file(f, test_hex, 64, 0400);
	s = load_spec(&rc, err, "cmd:cat %s", f);
	cr_assert_eq(rc, 0, "%s", err);
	assert_test_key(s);
	keys_secret_free(s);
	/* printf interprets the \n itself: no shell is involved. */
	s = load_spec(&rc, err, "cmd:  printf\t%%s\\n   %s ", test_hex);
	cr_assert_eq(rc, 0, "%s", err);
	assert_test_key(s);
	keys_secret_free(s);
	free(f);
	rm_tree(d);
}

Test(keysrc, a_failing_or_chatty_key_command_is_an_error_naming_it)
{
	char err[KEYS_ERR_LEN];
	int rc;

	cr_assert_null(load_spec(&rc, err, "%s", "cmd:false"));
	cr_assert_lt(rc, 0);
	cr_assert(strstr(err, "false"), "err: %s", err);
	cr_assert(strstr(err, "status 1"), "err: %s", err);
	cr_assert_null(load_spec(&rc, err, "%s",
				 "cmd:phifs-no-such-helper x"));
	cr_assert_lt(rc, 0);
	cr_assert(strstr(err, "phifs-no-such-helper"), "err: %s", err);
	/* A "key" with a shell metacharacter stays one literal argument. */
	cr_assert_null(load_spec(&rc, err, "%s", "cmd:echo $HOME"));
	cr_assert_eq(rc, -EINVAL);
	cr_assert(strstr(err, "expected 32 raw bytes"), "err: %s", err);
	cr_assert_null(load_spec(&rc, err, "%s",
				 "cmd:head -c 1000000 /dev/zero"));
	cr_assert_eq(rc, -EINVAL, "err: %s", err);
	cr_assert_null(load_spec(&rc, err, "%s", "cmd: "));
	cr_assert_eq(rc, -EINVAL);
}

static int64_t elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)(t.tv_sec - t0->tv_sec) * 1000 +
	       (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * These tests fail a hang with alarm(), a crash, rather than Criterion's
 * .timeout, whose bookkeeping in the runner now and then leaks under
 * LeakSanitizer (Criterion 2.4).
 */
Test(keysrc, a_key_command_that_never_ends_is_stopped_at_its_timeout)
{
	char err[KEYS_ERR_LEN];
	struct timespec t0;
	int rc;

	alarm(20);	/* a hang fails as a crash */
	keys_source_set_timeout(1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_null(load_spec(&rc, err, "%s", "cmd:sleep 60"));
	cr_assert_eq(rc, -ETIMEDOUT, "err: %s", err);
	cr_assert_geq(elapsed_ms(&t0), 900);
	cr_assert_lt(elapsed_ms(&t0), 10000, "stopped late");
	cr_assert(strstr(err, "key command sleep: no key after 1 s "
			 "(key_timeout)"), "err: %s", err);
}

Test(keysrc, a_helper_whose_child_keeps_its_output_open_is_stopped)
{
	char err[KEYS_ERR_LEN], *d = temp_dir(), *helper, *pidf, *text;
	char buf[32] = "";
	int rc, fd;

	alarm(20);	/* a hang fails as a crash */
	/* It exits at once; the sleep it leaves holds its stdout. */
	cr_assert(asprintf(&helper, "%s/helper", d) > 0);
	cr_assert(asprintf(&pidf, "%s/pid", d) > 0);
	cr_assert(asprintf(&text, "#!/bin/sh\nsleep 60 &\necho $! > '%s'\n"
			   "exit 0\n", pidf) > 0);
	write_file(helper, text, strlen(text), 0700);
	keys_source_set_timeout(1000);
	cr_assert_null(load_spec(&rc, err, "cmd:%s", helper));
	cr_assert_eq(rc, -ETIMEDOUT, "err: %s", err);
	cr_assert(strstr(err, "exited, but its output was still open after "
			 "1 s (key_timeout)"), "err: %s", err);
	fd = open(pidf, O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert_gt(read(fd, buf, sizeof(buf) - 1), 0);
	close(fd);
	kill((pid_t)atol(buf), SIGKILL);
	free(text);
	free(pidf);
	free(helper);
	rm_tree(d);
}

/* A FIFO's open waits for a writer that may never come. */
Test(keysrc, a_key_file_that_is_not_a_regular_file_is_refused_at_once)
{
	char err[KEYS_ERR_LEN], *d = temp_dir(), *f;
	int rc;

	alarm(10);	/* a hang fails as a crash */
	cr_assert(asprintf(&f, "%s/fifo", d) > 0);
	cr_assert_eq(mkfifo(f, 0600), 0);
	cr_assert_null(load_spec(&rc, err, "file:%s", f));
	cr_assert_eq(rc, -EINVAL, "err: %s", err);
	cr_assert(strstr(err, "fifo: not a regular file"), "err: %s", err);
	cr_assert_null(load_spec(&rc, err, "file:%s", d));
	cr_assert_eq(rc, -EINVAL, "err: %s", err);
	cr_assert(strstr(err, "not a regular file"), "err: %s", err);
	free(f);
	rm_tree(d);
}

/* Puts `text` on fd 0 through a pipe; Criterion runs each test alone. */
Test(keys, the_store_knows_which_slot_unlocked_it)
{
	struct keys_secret *s = raw_secret(21), *s2 = raw_secret(22);
	struct keys_store *ks, *back = NULL;
	char err[KEYS_ERR_LEN] = "", *d = temp_dir();
	uint32_t id;
	int dfd = open_dir(d);

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(keys_unlocking_slot(ks), 0);
	cr_assert_eq(keys_add_slot(ks, s2, NULL, &id), 0);
	cr_assert_eq(keys_save(ks, dfd, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(keys_load(dfd, s2, &back, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(keys_unlocking_slot(back), id);
	keys_free(back);
	cr_assert_eq(keys_load(dfd, s, &back, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(keys_unlocking_slot(back), 0);
	keys_free(back);
	keys_free(ks);
	keys_secret_free(s);
	keys_secret_free(s2);
	close(dfd);
	rm_tree(d);
}

static void stdin_from(const char *text)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
	close(p[1]);
	cr_assert_eq(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
	close(p[0]);
}

Test(keysrc, a_passphrase_is_one_line_of_a_stdin_that_is_no_terminal)
{
	char err[KEYS_ERR_LEN] = "";
	struct keys_secret *s = NULL;
	char rest[16];

	stdin_from("open sesame\nnext line\n");
	cr_assert_eq(keys_source_load("passphrase", &s, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(s->kind, KEYS_SECRET_PASSPHRASE);
	cr_assert_eq(s->len, strlen("open sesame"));
	cr_assert_arr_eq(s->bytes, "open sesame", s->len);
	/* Nothing past the newline was taken. */
	cr_assert_eq(read(STDIN_FILENO, rest, sizeof(rest)), 10);
	keys_secret_free(s);
	s = NULL;
	stdin_from("last line, no newline");
	cr_assert_eq(keys_source_load("passphrase", &s, err, sizeof(err)), 0);
	cr_assert_eq(s->len, strlen("last line, no newline"));
	keys_secret_free(s);
	s = NULL;
	stdin_from("\nsecond");
	cr_assert_eq(keys_source_load("passphrase", &s, err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "empty"), "err: %s", err);
	stdin_from("");
	cr_assert_eq(keys_source_load("passphrase", &s, err, sizeof(err)),
		     -EINVAL);
	cr_assert_null(s);
}


Test(keysrc, a_new_passphrase_that_is_short_or_common_is_refused)
{
	static const char *const weak[] = {
		"short pass", "Password1234", "zzzzzzzzzzzzzz",
		"correct horse battery staple",
	};
	char err[KEYS_ERR_LEN] = "";
	struct keys_secret *s = NULL;

	for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
		char line[64];

		snprintf(line, sizeof(line), "%s\n", weak[i]);
		stdin_from(line);
		cr_assert_eq(keys_source_load_new("passphrase", &s, err,
						  sizeof(err)), -EINVAL,
			     "%s", weak[i]);
		cr_assert(strstr(err, "new passphrase refused"), "%s", err);
		cr_assert_null(s);
	}
	stdin_from("a tolerable break-glass line\n");
	cr_assert_eq(keys_source_load_new("passphrase", &s, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_null(keys_passphrase_weak(s));
	keys_secret_free(s);
	s = raw_secret(1);
	cr_assert_null(keys_passphrase_weak(s), "raw keys are not judged");
	keys_secret_free(s);
}

struct pty_seen {
	int master;
	size_t n;
	char buf[256];
};

/*
 * Reads what the terminal shows, without blocking; true once a newline has
 * come.  The pty passes output on from a kernel worker, so it may come
 * after the program that wrote it has exited.
 */
static bool pty_shows_newline(void *arg)
{
	struct pty_seen *p = arg;
	ssize_t r;

	while (p->n < sizeof(p->buf) - 1 &&
	       (r = read(p->master, p->buf + p->n,
			 sizeof(p->buf) - 1 - p->n)) > 0)
		p->n += (size_t)r;
	p->buf[p->n] = 0;
	return strchr(p->buf, '\n') != NULL;
}

/*
 * The child gets a new session whose controlling terminal is a pty, so
 * /dev/tty is the pty; the parent plays the user.  Skipped without ptys.
 */
Test(keysrc, a_passphrase_typed_on_a_terminal_is_read_with_echo_off)
{
	char seen[256], *slave;
	struct pty_seen after = { .n = 0 };
	size_t n = 0;
	int master, status;
	pid_t pid;

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) || unlockpt(master) ||
	    !(slave = ptsname(master)))
		cr_skip_test("no pseudo-terminals here");
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct keys_secret *s = NULL;
		char err[KEYS_ERR_LEN];
		int fd;

		if (setsid() < 0)
			_exit(10);
		fd = open(slave, O_RDWR);	/* becomes the terminal */
		if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
			_exit(11);
		if (keys_source_load("passphrase", &s, err, sizeof(err)))
			_exit(12);
		if (s->len != 10 || memcmp(s->bytes, "pty secret", 10))
			_exit(13);
		_exit(0);
	}
	/* Wait for the prompt: it comes once echo is off. */
	while (n < sizeof(seen) - 1) {
		ssize_t r = read(master, seen + n, sizeof(seen) - 1 - n);

		cr_assert(r > 0, "no prompt on the terminal");
		n += (size_t)r;
		seen[n] = 0;
		if (strstr(seen, "Passphrase: "))
			break;
	}
	cr_assert_eq(write(master, "pty secret\n", 11), 11);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child status %#x", status);
	/* What the terminal showed after the prompt: a newline, no echo.
	 * An echo would have come before the newline. */
	after.master = master;
	fcntl(master, F_SETFL, O_NONBLOCK);
	cr_assert(tu_wait_until(pty_shows_newline, &after, 5000),
		  "no newline after the passphrase: %s", after.buf);
	cr_assert_null(strstr(after.buf, "pty secret"), "echoed: %s",
		       after.buf);
	close(master);
}

/* Types the two lines of a new passphrase on a terminal; the child's exit:
 * 0 accepted, 1 refused with "differ", other codes a failure. */
static int new_passphrase_on_pty(const char *first, const char *second)
{
	static const char *const prompts[] = { "New passphrase: ",
					       "New passphrase again: " };
	const char *lines[] = { first, second };
	char seen[512] = "", *slave;
	size_t n = 0;
	int master, status;
	pid_t pid;

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) || unlockpt(master) ||
	    !(slave = ptsname(master)))
		cr_skip_test("no pseudo-terminals here");
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct keys_secret *s = NULL;
		char err[KEYS_ERR_LEN];
		int fd;

		if (setsid() < 0)
			_exit(10);
		fd = open(slave, O_RDWR);	/* becomes the terminal */
		if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
			_exit(11);
		if (keys_source_load_new("passphrase", &s, err, sizeof(err)))
			_exit(strstr(err, "differ") ? 1 : 12);
		_exit(s->len == strlen(first) &&
		      !memcmp(s->bytes, first, s->len) ? 0 : 13);
	}
	for (int k = 0; k < 2; k++) {
		/* Each line only once its prompt shows: echo is off then. */
		while (!strstr(seen, prompts[k]) && n < sizeof(seen) - 1) {
			ssize_t r = read(master, seen + n,
					 sizeof(seen) - 1 - n);

			cr_assert(r > 0, "no prompt %d on the terminal", k);
			n += (size_t)r;
			seen[n] = 0;
		}
		cr_assert(write(master, lines[k], strlen(lines[k])) > 0);
		cr_assert_eq(write(master, "\n", 1), 1);
		n = 0;
		seen[0] = 0;
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	close(master);
	cr_assert(WIFEXITED(status), "child status %#x", status);
	return WEXITSTATUS(status);
}

Test(keysrc, a_new_passphrase_is_typed_twice_on_a_terminal_and_must_match)
{
	cr_assert_eq(new_passphrase_on_pty("a tolerable break-glass line",
					   "a tolerable break-glass line"), 0);
	cr_assert_eq(new_passphrase_on_pty("a tolerable break-glass line",
					   "a tolerable break-glass lime"), 1);
}

Test(keysrc, keygen_writes_a_0400_key_once_that_loads_through_file)
{
	char err[KEYS_ERR_LEN] = "", *d = temp_dir(), *f, *spec;
	struct keys_secret *s = NULL;
	uint8_t text[80];
	struct stat st;
	int fd;

	cr_assert(asprintf(&f, "%s/new.key", d) > 0);
	cr_assert_eq(keys_keygen(f, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stat(f, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0400);
	cr_assert_eq(st.st_size, 65);
	fd = open(f, O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert_eq(read(fd, text, sizeof(text)), 65);
	close(fd);
	cr_assert_eq(text[64], '\n');
	cr_assert_eq(keys_keygen(f, err, sizeof(err)), -EEXIST);
	cr_assert(strstr(err, f) && strstr(err, "exists"), "err: %s", err);
	cr_assert(asprintf(&spec, "file:%s", f) > 0);
	cr_assert_eq(keys_source_load(spec, &s, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(s->len, CRYPTO_KEY_LEN);
	for (int i = 0; i < CRYPTO_KEY_LEN; i++) {
		char two[3] = { (char)text[2 * i], (char)text[2 * i + 1], 0 };

		cr_assert_eq(strtoul(two, NULL, 16), s->bytes[i]);
	}
	secmem_wipe(text, sizeof(text));
	keys_secret_free(s);
	free(spec);
	free(f);
	rm_tree(d);
}

/*
 * Makes tests/data/golden_v1 once; run with PHIFS_REGEN_GOLDEN=1 and paste
 * what it prints over the GOLDEN_ values above.  Never run it casually:
 * the point of the files is that they do not change.
 */
Test(golden, regenerate_the_golden_v1_keystore_only_when_asked)
{
	struct keys_secret *s, *p;
	struct keys_store *ks;
	char err[KEYS_ERR_LEN] = "", hex[65], path[4096];
	uint8_t key[CRYPTO_KEY_LEN], pub[CRYPTO_ED25519_PUB_LEN];
	const char *env = getenv("PHIFS_REGEN_GOLDEN");
	uint8_t *buf;
	size_t len;
	int dfd;

	if (!env || strcmp(env, "1"))
		cr_skip_test("set PHIFS_REGEN_GOLDEN=1 to remake golden_v1");
	snprintf(path, sizeof(path), "%s/golden_v1", PHIFS_TEST_DATA);
	mkdir(path, 0755);
	dfd = open_dir(path);
	cr_assert_eq(crypto_random(key, sizeof(key)), 0);
	for (int i = 0; i < CRYPTO_KEY_LEN; i++)
		sprintf(hex + 2 * i, "%02x", key[i]);
	hex[64] = '\n';
	s = keys_secret_raw(key);
	p = pass_secret(GOLDEN_PASS);
	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(keys_add_slot(ks, p, &fast, NULL), 0);
	cr_assert_eq(keys_rotate(ks, NULL), 0);
	cr_assert_eq(keys_rotate(ks, NULL), 0);
	cr_assert_eq(keys_retire(ks, 1), 0);
	encode(ks, &buf, &len);
	snprintf(path, sizeof(path), "%s/golden_v1/key.hex", PHIFS_TEST_DATA);
	write_file(path, hex, 65, 0644);
	snprintf(path, sizeof(path), "%s/golden_v1/keystore",
		 PHIFS_TEST_DATA);
	write_file(path, buf, len, 0644);
	printf("#define GOLDEN_VOLUME_ID \"");
	for (int i = 0; i < FORMAT_ID_LEN; i++)
		printf("%02x", keys_volume_id(ks)[i]);
	keys_audit_pub(ks, pub);
	printf("\"\n#define GOLDEN_AUDIT_PUB \\\n\t\"");
	for (int i = 0; i < CRYPTO_ED25519_PUB_LEN; i++)
		printf("%02x", pub[i]);
	for (uint32_t v = 2; v <= 3; v++) {
		printf("\"\n#define GOLDEN_KEK%u \\\n\t\"", v);
		for (int i = 0; i < CRYPTO_KEY_LEN; i++)
			printf("%02x", keys_kek(ks, v)->bytes[i]);
	}
	printf("\"\n#define GOLDEN_SIZE %zu\n", len);
	(void)err;
	secmem_wipe(key, sizeof(key));
	secmem_wipe(hex, sizeof(hex));
	free(buf);
	keys_free(ks);
	keys_secret_free(s);
	keys_secret_free(p);
	close(dfd);
}

static void unhex_exact(const char *hex, uint8_t *out, size_t n)
{
	cr_assert_eq(tu_unhex(hex, out, n), (long)n);
}

Test(golden, the_golden_v1_keystore_still_opens_with_its_raw_key_and_passphrase)
{
	uint8_t want_id[FORMAT_ID_LEN], want_pub[CRYPTO_ED25519_PUB_LEN];
	uint8_t want_kek2[CRYPTO_KEY_LEN], want_kek3[CRYPTO_KEY_LEN];
	uint8_t pub[CRYPTO_ED25519_PUB_LEN], *hex, *ks_bytes;
	struct keys_secret *s = NULL, *p = pass_secret(GOLDEN_PASS);
	struct keys_store *ks, *kp;
	struct keys_version_info v[4];
	struct keys_slot_info sl[4];
	char err[KEYS_ERR_LEN] = "", *d = temp_dir(), *f, *spec;
	size_t hex_len, ks_len;
	uint8_t *again;
	size_t again_len;

	unhex_exact(GOLDEN_VOLUME_ID, want_id, sizeof(want_id));
	unhex_exact(GOLDEN_AUDIT_PUB, want_pub, sizeof(want_pub));
	unhex_exact(GOLDEN_KEK2, want_kek2, sizeof(want_kek2));
	unhex_exact(GOLDEN_KEK3, want_kek3, sizeof(want_kek3));
	/* git keeps no 0400, so the key goes through a private copy. */
	hex = tu_read_data("golden_v1/key.hex", &hex_len);
	cr_assert(asprintf(&f, "%s/key.hex", d) > 0);
	write_file(f, hex, hex_len, 0400);
	cr_assert(asprintf(&spec, "file:%s", f) > 0);
	cr_assert_eq(keys_source_load(spec, &s, err, sizeof(err)), 0, "%s",
		     err);
	ks_bytes = tu_read_data("golden_v1/keystore", &ks_len);
	cr_assert_eq(ks_len, GOLDEN_SIZE);
	cr_assert_eq(keys_decode(ks_bytes, ks_len, s, &ks), 0);
	cr_assert_arr_eq(keys_volume_id(ks), want_id, FORMAT_ID_LEN);
	keys_audit_pub(ks, pub);
	cr_assert_arr_eq(pub, want_pub, sizeof(pub));
	cr_assert_eq(crypto_ed25519_public(keys_audit_key(ks), pub), 0);
	cr_assert_arr_eq(pub, want_pub, sizeof(pub));
	cr_assert_eq(keys_active_version(ks), 3);
	cr_assert_eq(keys_versions(ks, v, 4), 3);
	cr_assert_eq(v[0].state, KEYS_RETIRED);
	cr_assert_eq(v[1].state, KEYS_DECRYPT_ONLY);
	cr_assert_eq(v[2].state, KEYS_ACTIVE);
	cr_assert_null(keys_kek(ks, 1));
	cr_assert_arr_eq(keys_kek(ks, 2)->bytes, want_kek2, CRYPTO_KEY_LEN);
	cr_assert_arr_eq(keys_kek(ks, 3)->bytes, want_kek3, CRYPTO_KEY_LEN);
	cr_assert_eq(keys_slots(ks, sl, 4), 2);
	cr_assert_eq(sl[0].kind, KEYS_SECRET_RAW);
	cr_assert_eq(sl[1].kind, KEYS_SECRET_PASSPHRASE);
	/* Re-encoding a v1 store gives the very same bytes. */
	encode(ks, &again, &again_len);
	cr_assert_eq(again_len, ks_len);
	cr_assert_arr_eq(again, ks_bytes, ks_len);
	cr_assert_eq(keys_decode(ks_bytes, ks_len, p, &kp), 0);
	assert_same_keks(ks, kp);
	keys_free(kp);
	keys_free(ks);
	free(again);
	free(ks_bytes);
	secmem_wipe(hex, hex_len);
	free(hex);
	free(spec);
	free(f);
	keys_secret_free(s);
	keys_secret_free(p);
	rm_tree(d);
}

/* --- the volume's flags --- */

Test(keys, flags_make_a_version_2_keystore_and_none_a_version_1)
{
	struct keys_secret *s = raw_secret(9);
	struct keys_store *ks, *back = NULL;
	uint8_t *buf;
	size_t len, len1;

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(keys_flags(ks), 0);
	encode(ks, &buf, &len1);
	cr_expect_eq(buf[8], 1, "no flags: version 1, as before flags");
	free(buf);
	cr_assert_eq(keys_set_flags(ks, 0x80), -EINVAL);
	cr_assert_eq(keys_set_flags(ks, KEYS_F_FOLDERS), 0);
	encode(ks, &buf, &len);
	cr_expect_eq(buf[8], 2);
	cr_expect_eq(len, len1 + 4);
	cr_assert_eq(keys_decode(buf, len, s, &back), 0);
	cr_expect_eq(keys_flags(back), KEYS_F_FOLDERS);
	keys_free(back);
	back = NULL;
	/* An unknown bit is a newer phifs's: refused before any key. */
	buf[len - 2 * CRYPTO_SHA256_LEN - 4] |= 0x80;
	fix_checksum(buf, len);
	cr_expect_eq(keys_decode(buf, len, s, &back), -EPROTO);
	free(buf);
	keys_free(ks);
	keys_secret_free(s);
}

Test(keys, the_folders_mark_cannot_be_cleared_without_the_key)
{
	struct keys_secret *s = raw_secret(10);
	struct keys_store *ks, *back = NULL;
	uint8_t *buf;
	size_t len, at;

	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(keys_set_flags(ks, KEYS_F_FOLDERS), 0);
	encode(ks, &buf, &len);
	at = len - 2 * CRYPTO_SHA256_LEN - 4;
	/* Cleared in place, checksum fixed: the MAC fails. */
	buf[at] = 0;
	fix_checksum(buf, len);
	cr_expect_eq(keys_decode(buf, len, s, &back), -EUCLEAN);
	/* Rewritten as a version 1 keystore without the field: the same. */
	buf[8] = 1;
	memmove(buf + at, buf + at + 4, len - at - 4);
	fix_checksum(buf, len - 4);
	cr_expect_eq(keys_decode(buf, len - 4, s, &back), -EUCLEAN);
	cr_expect_null(back);
	free(buf);
	keys_free(ks);
	keys_secret_free(s);
}
