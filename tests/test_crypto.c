/*
 * test_crypto.c — known answers and tamper tests for src/crypto.c: AES-256-GCM
 * against the GCM spec and NIST CAVP vectors in tests/data/gcm_vectors.txt,
 * the per-thread context cache under key changes and threads, key wrapping,
 * and RFC vectors for HKDF, HMAC, SHA-256, scrypt and Ed25519.
 */
#include "phifs/crypto.h"
#include "phifs/secmem.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Decodes a hex literal the test itself wrote; a typo fails loudly. */
static size_t unhex(const char *hex, uint8_t *out, size_t max)
{
	long n = tu_unhex(hex, out, max);

	cr_assert(n >= 0, "bad hex literal %s", hex);
	return (size_t)n;
}

static struct crypto_key *key_hex(const char *hex)
{
	uint8_t b[CRYPTO_KEY_LEN];
	struct crypto_key *k;

	cr_assert_eq(unhex(hex, b, sizeof(b)), CRYPTO_KEY_LEN);
	k = crypto_key_from(b);
	cr_assert(k);
	return k;
}

static int all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* ---- GCM known answers ---- */

#define VEC_MAX 256

struct gcm_vec {
	char name[128];
	uint8_t key[32], iv[12], aad[VEC_MAX], pt[VEC_MAX], ct[VEC_MAX];
	uint8_t tag[16];
	size_t key_len, iv_len, aad_len, pt_len, ct_len, tag_len;
	int fail, has_result;
};

static void vec_field(struct gcm_vec *v, const char *k, const char *val)
{
	long n = 0;

	if (strcmp(k, "name") == 0) {
		snprintf(v->name, sizeof(v->name), "%s", val);
		return;
	}
	if (strcmp(k, "result") == 0) {
		cr_assert(strcmp(val, "pass") == 0 || strcmp(val, "fail") == 0,
			  "bad result %s", val);
		v->fail = strcmp(val, "fail") == 0;
		v->has_result = 1;
		return;
	}
#define F(f)	if (strcmp(k, #f) == 0) { \
			n = tu_unhex(val, v->f, sizeof(v->f)); \
			v->f##_len = (size_t)n; \
		} else
	F(key) F(iv) F(aad) F(pt) F(ct) F(tag)
		cr_assert_fail("unknown field %s", k);
#undef F
	cr_assert(n >= 0, "bad hex in %s of %s", k, v->name);
}

/* Parses gcm_vectors.txt; returns the number of vectors, *out malloc'ed. */
static size_t load_vectors(struct gcm_vec **out)
{
	size_t len, nv = 0, cap = 64;
	uint8_t *data = tu_read_data("gcm_vectors.txt", &len);
	struct gcm_vec *vs = calloc(cap, sizeof(*vs)), *cur = NULL;
	char *text, *line, *save = NULL;

	cr_assert(vs);
	text = malloc(len + 1);
	cr_assert(text);
	memcpy(text, data, len);
	text[len] = '\0';
	free(data);

	/* strtok_r skips empty lines, so a block ends at the next "name". */
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq, *k, *val, *e;

		if (line[0] == '#' || line[strspn(line, " \t\r")] == '\0')
			continue;
		eq = strchr(line, '=');
		cr_assert(eq, "line without '=': %s", line);
		*eq = '\0';
		k = line + strspn(line, " \t");
		for (e = eq; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		val = eq + 1 + strspn(eq + 1, " \t");
		for (e = val + strlen(val);
		     e > val && strchr(" \t\r", e[-1]); e--)
			;
		*e = '\0';
		if (strcmp(k, "name") == 0) {
			cr_assert(nv < cap, "too many vectors");
			cur = &vs[nv++];
		}
		cr_assert(cur, "field before the first name");
		vec_field(cur, k, val);
	}
	free(text);
	*out = vs;
	return nv;
}

Test(gcm, vector_file_is_well_formed)
{
	struct gcm_vec *vs;
	size_t n = load_vectors(&vs), i, fails = 0;

	cr_assert_geq(n, 17);
	for (i = 0; i < n; i++) {
		struct gcm_vec *v = &vs[i];

		cr_assert(v->has_result, "%s: no result", v->name);
		cr_assert_eq(v->key_len, 32, "%s: key", v->name);
		cr_assert_eq(v->iv_len, 12, "%s: iv", v->name);
		cr_assert_eq(v->tag_len, 16, "%s: tag", v->name);
		if (!v->fail)
			cr_assert_eq(v->pt_len, v->ct_len, "%s: pt/ct",
				     v->name);
		fails += (size_t)v->fail;
	}
	cr_assert_geq(fails, 1);
	free(vs);
}

Test(gcm, seal_gives_the_published_ciphertext_and_tag)
{
	struct gcm_vec *vs;
	size_t n = load_vectors(&vs), i;

	for (i = 0; i < n; i++) {
		struct gcm_vec *v = &vs[i];
		uint8_t ct[VEC_MAX], tag[16];
		struct crypto_key *k;

		if (v->fail)
			continue;
		k = crypto_key_from(v->key);
		cr_assert(k);
		cr_assert_eq(crypto_gcm_seal(k, v->iv, v->aad, v->aad_len,
					     v->pt, v->pt_len, ct, tag), 0,
			     "%s", v->name);
		cr_assert(memcmp(ct, v->ct, v->ct_len) == 0, "%s: ct",
			  v->name);
		cr_assert(memcmp(tag, v->tag, 16) == 0, "%s: tag", v->name);
		crypto_key_free(k);
	}
	free(vs);
}

Test(gcm, open_gives_the_published_plaintext_or_rejects_fail_vectors)
{
	struct gcm_vec *vs;
	size_t n = load_vectors(&vs), i;

	for (i = 0; i < n; i++) {
		struct gcm_vec *v = &vs[i];
		uint8_t pt[VEC_MAX];
		struct crypto_key *k;
		int rc;

		k = crypto_key_from(v->key);
		cr_assert(k);
		memset(pt, 0xa5, sizeof(pt));
		rc = crypto_gcm_open(k, v->iv, v->aad, v->aad_len, v->ct,
				     v->ct_len, pt, v->tag);
		if (v->fail) {
			cr_assert_eq(rc, -EBADMSG, "%s: rc %d", v->name, rc);
			cr_assert(all_zero(pt, v->ct_len), "%s: not wiped",
				  v->name);
		} else {
			cr_assert_eq(rc, 0, "%s: rc %d", v->name, rc);
			cr_assert(memcmp(pt, v->pt, v->pt_len) == 0, "%s",
				  v->name);
		}
		crypto_key_free(k);
	}
	free(vs);
}

/* ---- GCM behaviour ---- */

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)tu_rand(&seed);
}

Test(gcm, round_trips_many_blocks_under_one_key)
{
	struct crypto_key *k = crypto_key_random();
	uint8_t nonce[12] = { 0 }, pt[4096], ct[4096], out[4096], tag[16];
	uint64_t i;

	cr_assert(k);
	for (i = 0; i < 200; i++) {
		size_t len = (size_t)(i * 37 % sizeof(pt));

		memcpy(nonce, &i, sizeof(i));
		fill(pt, len, i + 1);
		cr_assert_eq(crypto_gcm_seal(k, nonce, &i, sizeof(i), pt, len,
					     ct, tag), 0);
		cr_assert_eq(crypto_gcm_open(k, nonce, &i, sizeof(i), ct, len,
					     out, tag), 0, "block %lu",
			     (unsigned long)i);
		cr_assert(memcmp(pt, out, len) == 0);
	}
	crypto_key_free(k);
}

Test(gcm, alternating_two_keys_gives_the_same_result_as_fresh_contexts)
{
	struct crypto_key *a = crypto_key_random(), *b = crypto_key_random();
	uint8_t nonce[12] = { 7 }, pt[100], ct_a[100], ct_b[100], tag_a[16];
	uint8_t tag_b[16], ct[100], tag[16], out[100];
	int i;

	cr_assert(a && b);
	fill(pt, sizeof(pt), 42);
	cr_assert_eq(crypto_gcm_seal(a, nonce, NULL, 0, pt, sizeof(pt), ct_a,
				     tag_a), 0);
	cr_assert_eq(crypto_gcm_seal(b, nonce, NULL, 0, pt, sizeof(pt), ct_b,
				     tag_b), 0);
	cr_assert(memcmp(ct_a, ct_b, sizeof(ct_a)) != 0);
	for (i = 0; i < 50; i++) {
		struct crypto_key *k = i % 2 ? a : b;
		const uint8_t *want_ct = i % 2 ? ct_a : ct_b;
		const uint8_t *want_tag = i % 2 ? tag_a : tag_b;

		/* Mix directions too: one context serves seal and open. */
		if (i % 3 == 0) {
			cr_assert_eq(crypto_gcm_open(k, nonce, NULL, 0,
						     want_ct, sizeof(pt), out,
						     want_tag), 0, "i=%d", i);
			cr_assert(memcmp(out, pt, sizeof(pt)) == 0);
			continue;
		}
		cr_assert_eq(crypto_gcm_seal(k, nonce, NULL, 0, pt, sizeof(pt),
					     ct, tag), 0);
		cr_assert(memcmp(ct, want_ct, sizeof(ct)) == 0, "i=%d", i);
		cr_assert(memcmp(tag, want_tag, 16) == 0, "i=%d", i);
	}
	crypto_key_free(a);
	crypto_key_free(b);
}

Test(gcm, a_new_key_at_a_freed_keys_address_is_not_mistaken_for_it)
{
	struct crypto_key *a = crypto_key_random(), *b;
	uint8_t nonce[12] = { 1 }, pt[32] = { 3 }, ct1[32], ct2[32], tag[16];
	uint64_t id_a;

	cr_assert(a);
	id_a = a->id;
	cr_assert_eq(crypto_gcm_seal(a, nonce, NULL, 0, pt, 32, ct1, tag), 0);
	crypto_key_free(a);
	b = crypto_key_random();
	cr_assert(b);
	/* secmem hands the last freed chunk out first. */
	cr_assert_eq((void *)b, (void *)a);
	cr_assert_neq(b->id, id_a);
	cr_assert_eq(crypto_gcm_seal(b, nonce, NULL, 0, pt, 32, ct2, tag), 0);
	cr_assert(memcmp(ct1, ct2, 32) != 0);
	crypto_key_free(b);
}

Test(gcm, bytes_changed_behind_the_api_are_still_noticed)
{
	struct crypto_key *k = key_hex(
		"00000000000000000000000000000000"
		"00000000000000000000000000000000");
	uint8_t nonce[12] = { 0 }, pt[16] = { 0 }, ct[16], tag[16], want[16];

	cr_assert_eq(crypto_gcm_seal(k, nonce, NULL, 0, pt, 16, ct, tag), 0);
	/* gcm-spec test case 15's key, written directly. */
	unhex("feffe9928665731c6d6a8f9467308308"
	      "feffe9928665731c6d6a8f9467308308",
	      k->bytes, 32);
	unhex("cafebabefacedbaddecaf888", nonce, 12);
	unhex("d9313225f88406e5a55909c5aff5269a", pt, 16);
	unhex("522dc1f099567d07f47f37a32a84427d", want, 16);
	cr_assert_eq(crypto_gcm_seal(k, nonce, NULL, 0, pt, 16, ct, tag), 0);
	cr_assert(memcmp(ct, want, 16) == 0);
	crypto_key_free(k);
}

Test(gcm, seals_and_opens_in_place)
{
	struct crypto_key *k = crypto_key_random();
	uint8_t nonce[12] = { 9 }, pt[1000], buf[1000], ref[1000], tag[16];
	uint8_t tag2[16];

	cr_assert(k);
	fill(pt, sizeof(pt), 5);
	memcpy(buf, pt, sizeof(pt));
	cr_assert_eq(crypto_gcm_seal(k, nonce, "hdr", 3, pt, sizeof(pt), ref,
				     tag), 0);
	cr_assert_eq(crypto_gcm_seal(k, nonce, "hdr", 3, buf, sizeof(buf),
				     buf, tag2), 0);
	cr_assert(memcmp(buf, ref, sizeof(buf)) == 0);
	cr_assert(memcmp(tag, tag2, 16) == 0);
	cr_assert_eq(crypto_gcm_open(k, nonce, "hdr", 3, buf, sizeof(buf),
				     buf, tag), 0);
	cr_assert(memcmp(buf, pt, sizeof(pt)) == 0);
	crypto_key_free(k);
}

Test(gcm, empty_plaintext_authenticates_the_aad_alone)
{
	struct crypto_key *k = crypto_key_random();
	uint8_t nonce[12] = { 0 }, tag[16], aad[24];
	size_t i;

	cr_assert(k);
	fill(aad, sizeof(aad), 77);
	cr_assert_eq(crypto_gcm_seal(k, nonce, aad, sizeof(aad), NULL, 0,
				     NULL, tag), 0);
	cr_assert_eq(crypto_gcm_open(k, nonce, aad, sizeof(aad), NULL, 0,
				     NULL, tag), 0);
	for (i = 0; i < sizeof(aad); i++) {
		aad[i] ^= 0x01;
		cr_assert_eq(crypto_gcm_open(k, nonce, aad, sizeof(aad), NULL,
					     0, NULL, tag), -EBADMSG);
		aad[i] ^= 0x01;
	}
	crypto_key_free(k);
}

/* Opens after flipping one bit of *p; expects rejection and a wiped out. */
static void expect_rejected(const struct crypto_key *k, const uint8_t *nonce,
			    const uint8_t *aad, size_t aad_len,
			    const uint8_t *ct, size_t len, const uint8_t *tag,
			    const char *what, size_t i)
{
	uint8_t out[64];

	memset(out, 0xa5, sizeof(out));
	cr_assert_eq(crypto_gcm_open(k, nonce, aad, aad_len, ct, len, out,
				     tag), -EBADMSG, "%s byte %zu", what, i);
	cr_assert(all_zero(out, len), "%s byte %zu: output not wiped", what,
		  i);
}

Test(gcm, every_single_byte_flip_is_rejected_and_output_wiped)
{
	struct crypto_key *k = crypto_key_random();
	uint8_t nonce[12], aad[20], pt[64], ct[64], tag[16];
	size_t i;
	int bit;

	cr_assert(k);
	fill(nonce, sizeof(nonce), 1);
	fill(aad, sizeof(aad), 2);
	fill(pt, sizeof(pt), 3);
	cr_assert_eq(crypto_gcm_seal(k, nonce, aad, sizeof(aad), pt,
				     sizeof(pt), ct, tag), 0);
	for (bit = 0; bit < 8; bit += 7) {
		uint8_t m = (uint8_t)(1u << bit);

		for (i = 0; i < sizeof(ct); i++) {
			ct[i] ^= m;
			expect_rejected(k, nonce, aad, sizeof(aad), ct,
					sizeof(ct), tag, "ct", i);
			ct[i] ^= m;
		}
		for (i = 0; i < sizeof(tag); i++) {
			tag[i] ^= m;
			expect_rejected(k, nonce, aad, sizeof(aad), ct,
					sizeof(ct), tag, "tag", i);
			tag[i] ^= m;
		}
		for (i = 0; i < sizeof(nonce); i++) {
			nonce[i] ^= m;
			expect_rejected(k, nonce, aad, sizeof(aad), ct,
					sizeof(ct), tag, "nonce", i);
			nonce[i] ^= m;
		}
		for (i = 0; i < sizeof(aad); i++) {
			aad[i] ^= m;
			expect_rejected(k, nonce, aad, sizeof(aad), ct,
					sizeof(ct), tag, "aad", i);
			aad[i] ^= m;
		}
	}
	/* Truncated AAD and a different key are rejected too. */
	expect_rejected(k, nonce, aad, sizeof(aad) - 1, ct, sizeof(ct), tag,
			"aad length", 0);
	crypto_key_free(k);
	k = crypto_key_random();
	cr_assert(k);
	expect_rejected(k, nonce, aad, sizeof(aad), ct, sizeof(ct), tag,
			"key", 0);
	/* And after all those failures the context still works. */
	cr_assert_eq(crypto_gcm_seal(k, nonce, aad, sizeof(aad), pt,
				     sizeof(pt), ct, tag), 0);
	cr_assert_eq(crypto_gcm_open(k, nonce, aad, sizeof(aad), ct,
				     sizeof(ct), pt, tag), 0);
	crypto_key_free(k);
}

/* ---- concurrency ---- */

#define THREADS 8

struct thread_job {
	int idx, ok;
};

static void *seal_thread(void *arg)
{
	struct thread_job *j = arg;
	struct crypto_key *k = crypto_key_random();
	struct crypto_key *shared = key_hex(
		"feffe9928665731c6d6a8f9467308308"
		"feffe9928665731c6d6a8f9467308308");
	uint8_t nonce[12] = { 0 }, pt[512], ct[512], out[512], tag[16];
	uint8_t want[16];
	int i;

	if (k == NULL)
		return NULL;
	unhex("b094dac5d93471bdec1a502270e3cc6c", want, 16);
	j->ok = 1;
	for (i = 0; i < 2000 && j->ok; i++) {
		size_t len = (size_t)(i * 13 + j->idx) % sizeof(pt);

		nonce[0] = (uint8_t)j->idx;
		memcpy(nonce + 4, &i, sizeof(i));
		fill(pt, len, (uint64_t)(j->idx * 100000 + i + 1));
		if (crypto_gcm_seal(k, nonce, &i, sizeof(i), pt, len, ct,
				    tag) != 0 ||
		    crypto_gcm_open(k, nonce, &i, sizeof(i), ct, len, out,
				    tag) != 0 ||
		    memcmp(pt, out, len) != 0)
			j->ok = 0;
		/* Every so often a known answer under a shared key. */
		if (i % 100 == 0) {
			uint8_t kn[12], kp[64], kc[64];

			unhex("cafebabefacedbaddecaf888", kn, 12);
			unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da"
			      "2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
			      "b16aedf5aa0de657ba637b391aafd255", kp, 64);
			if (crypto_gcm_seal(shared, kn, NULL, 0, kp, 64, kc,
					    tag) != 0 ||
			    memcmp(tag, want, 16) != 0)
				j->ok = 0;
		}
	}
	crypto_key_free(shared);
	crypto_key_free(k);
	return NULL;
}

/* Runs fn in THREADS threads at once, each on its own job, and checks
 * that every one of them reports ok. */
static void all_threads_ok(void *(*fn)(void *))
{
	pthread_t t[THREADS];
	struct thread_job j[THREADS];
	int i;

	for (i = 0; i < THREADS; i++) {
		j[i].idx = i;
		j[i].ok = 0;
		cr_assert_eq(pthread_create(&t[i], NULL, fn, &j[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		cr_assert(j[i].ok, "thread %d failed", i);
	}
}

Test(gcm, threads_sealing_with_different_keys_all_verify)
{
	all_threads_ok(seal_thread);
}

/* ---- key wrapping ---- */

Test(wrap, unwrap_returns_the_wrapped_key_with_a_fresh_id)
{
	struct crypto_key *kek = crypto_key_random();
	struct crypto_key *key = crypto_key_random();
	struct crypto_key *out = crypto_key_new();
	uint8_t w1[CRYPTO_WRAPPED_LEN], w2[CRYPTO_WRAPPED_LEN];
	uint64_t id0;

	cr_assert(kek && key && out);
	id0 = out->id;
	cr_assert_eq(crypto_wrap_key(kek, "slot1", 5, key, w1), 0);
	cr_assert_eq(crypto_wrap_key(kek, "slot1", 5, key, w2), 0);
	/* Fresh nonces: the same key never wraps to the same bytes. */
	cr_assert(memcmp(w1, w2, sizeof(w1)) != 0);
	cr_assert_eq(crypto_unwrap_key(kek, "slot1", 5, w1, out), 0);
	cr_assert(memcmp(out->bytes, key->bytes, CRYPTO_KEY_LEN) == 0);
	cr_assert_neq(out->id, id0);
	cr_assert_neq(out->id, key->id);
	crypto_key_free(kek);
	crypto_key_free(key);
	crypto_key_free(out);
}

static void expect_key_rejected(const struct crypto_key *kek, const char *aad,
				const uint8_t *w, const char *what, size_t i)
{
	struct crypto_key *out = crypto_key_new();
	uint8_t before[CRYPTO_KEY_LEN];
	uint64_t id;

	cr_assert(out);
	memset(out->bytes, 0x5a, CRYPTO_KEY_LEN);
	memcpy(before, out->bytes, CRYPTO_KEY_LEN);
	id = out->id;
	cr_assert_eq(crypto_unwrap_key(kek, aad, strlen(aad), w, out),
		     -EKEYREJECTED, "%s %zu", what, i);
	cr_assert(memcmp(out->bytes, before, CRYPTO_KEY_LEN) == 0,
		  "%s %zu: key touched", what, i);
	cr_assert_eq(out->id, id);
	crypto_key_free(out);
}

Test(wrap, wrong_kek_wrong_aad_or_any_flipped_byte_is_rejected)
{
	struct crypto_key *kek = crypto_key_random();
	struct crypto_key *key = crypto_key_random();
	struct crypto_key *other = crypto_key_random();
	uint8_t w[CRYPTO_WRAPPED_LEN];
	size_t i;

	cr_assert(kek && key && other);
	cr_assert_eq(crypto_wrap_key(kek, "slot1", 5, key, w), 0);
	expect_key_rejected(other, "slot1", w, "kek", 0);
	expect_key_rejected(kek, "slot2", w, "aad", 0);
	expect_key_rejected(kek, "", w, "empty aad", 0);
	for (i = 0; i < sizeof(w); i++) {
		w[i] ^= 0x80;
		expect_key_rejected(kek, "slot1", w, "byte", i);
		w[i] ^= 0x80;
	}
	crypto_key_free(kek);
	crypto_key_free(key);
	crypto_key_free(other);
}

/* ---- HKDF, HMAC, SHA-256 ---- */

static bool hkdf_case_1_ok(void)
{
	uint8_t ikm[22], salt[13], info[10], okm[42], want[42];

	memset(ikm, 0x0b, sizeof(ikm));
	unhex("000102030405060708090a0b0c", salt, sizeof(salt));
	unhex("f0f1f2f3f4f5f6f7f8f9", info, sizeof(info));
	unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	      "34007208d5b887185865", want, sizeof(want));
	return crypto_hkdf(ikm, sizeof(ikm), salt, sizeof(salt), info,
			   sizeof(info), okm, sizeof(okm)) == 0 &&
	       memcmp(okm, want, sizeof(want)) == 0;
}

Test(hkdf, matches_rfc5869_test_case_1)
{
	cr_assert(hkdf_case_1_ok());
}

Test(hkdf, matches_rfc5869_test_case_3_without_salt_or_info)
{
	uint8_t ikm[22], okm[42], want[42];

	memset(ikm, 0x0b, sizeof(ikm));
	unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
	      "9d201395faa4b61a96c8", want, sizeof(want));
	cr_assert_eq(crypto_hkdf(ikm, sizeof(ikm), NULL, 0, NULL, 0, okm,
				 sizeof(okm)), 0);
	cr_assert(memcmp(okm, want, sizeof(want)) == 0);
}

Test(hkdf, key_variant_equals_the_byte_variant_and_separates_by_info)
{
	struct crypto_key *ikm = crypto_key_random(), *a = NULL, *b = NULL;
	uint8_t want[32];

	cr_assert(ikm);
	cr_assert_eq(crypto_hkdf(ikm->bytes, 32, "s", 1, "phifs block", 11,
				 want, 32), 0);
	cr_assert_eq(crypto_hkdf_key(ikm, "s", 1, "phifs block", &a), 0);
	cr_assert_eq(crypto_hkdf_key(ikm, "s", 1, "phifs mac", &b), 0);
	cr_assert(memcmp(a->bytes, want, 32) == 0);
	cr_assert(memcmp(a->bytes, b->bytes, 32) != 0);
	cr_assert_neq(a->id, b->id);
	crypto_key_free(ikm);
	crypto_key_free(a);
	crypto_key_free(b);
}

/*
 * HMAC zero-pads keys shorter than the hash block, so RFC 4231's 20-byte
 * and 4-byte keys padded with zeros to 32 bytes give the RFC's results.
 * Cross-checked with `openssl dgst -sha256 -mac HMAC -macopt hexkey:...`.
 */
Test(hmac, matches_rfc4231_test_cases_1_and_2_with_zero_padded_keys)
{
	uint8_t kb[32] = { 0 }, mac[32], want[32];
	struct crypto_key *k;

	memset(kb, 0x0b, 20);
	k = crypto_key_from(kb);
	cr_assert(k);
	unhex("b0344c61d8db38535ca8afceaf0bf12b"
	      "881dc200c9833da726e9376c2e32cff7",
	      want, 32);
	cr_assert_eq(crypto_hmac_sha256(k, "Hi There", 8, mac), 0);
	cr_assert(memcmp(mac, want, 32) == 0);
	crypto_key_free(k);

	memset(kb, 0, sizeof(kb));
	memcpy(kb, "Jefe", 4);
	k = crypto_key_from(kb);
	cr_assert(k);
	unhex("5bdcc146bf60754e6a042426089575c7"
	      "5a003f089d2739839dec58b964ec3843",
	      want, 32);
	cr_assert_eq(crypto_hmac_sha256(k, "what do ya want for nothing?", 28,
					mac), 0);
	cr_assert(memcmp(mac, want, 32) == 0);
	crypto_key_free(k);
}

Test(hmac, matches_openssl_dgst_for_a_full_32_byte_key)
{
	struct crypto_key *k = key_hex(
		"000102030405060708090a0b0c0d0e0f"
		"101112131415161718191a1b1c1d1e1f");
	uint8_t mac[32], want[32];

	/*
	 * printf 'phifs audit record' | openssl dgst -sha256 -mac HMAC
	 *   -macopt hexkey:000102...1e1f
	 */
	unhex("8ca1e620f6d781de8fe89177cffd9b35"
	      "3d3040976737eebe31a26352a4c20dec",
	      want, 32);
	cr_assert_eq(crypto_hmac_sha256(k, "phifs audit record", 18, mac), 0);
	cr_assert(memcmp(mac, want, 32) == 0);
	crypto_key_free(k);
}

/*
 * Each thread keeps one HMAC context keyed with the last key it was given,
 * and one for HKDF's raw keys.  Two keys taking turns (each twice, so the
 * cached key is used too) with an HKDF between, in several threads at
 * once, must each still give their own published MAC (RFC 4231 case 2,
 * and the openssl dgst one above) and RFC 5869's output, never another's.
 */
static bool mac_is(const struct crypto_key *k, const char *msg,
		   const uint8_t want[32])
{
	uint8_t mac[32];

	return crypto_hmac_sha256(k, msg, strlen(msg), mac) == 0 &&
	       memcmp(mac, want, 32) == 0;
}

static void *hmac_thread(void *arg)
{
	static const char ma[] = "what do ya want for nothing?";
	static const char mb[] = "phifs audit record";
	struct thread_job *j = arg;
	uint8_t kb[32] = { 0 }, want_a[32], want_b[32];
	struct crypto_key *a, *b;

	memcpy(kb, "Jefe", 4);
	a = crypto_key_from(kb);
	b = key_hex("000102030405060708090a0b0c0d0e0f"
		    "101112131415161718191a1b1c1d1e1f");
	unhex("5bdcc146bf60754e6a042426089575c7"
	      "5a003f089d2739839dec58b964ec3843", want_a, 32);
	unhex("8ca1e620f6d781de8fe89177cffd9b35"
	      "3d3040976737eebe31a26352a4c20dec", want_b, 32);
	j->ok = a && b;
	for (int i = 0; j->ok && i < 200; i++)
		j->ok = mac_is(a, ma, want_a) && mac_is(a, ma, want_a) &&
			hkdf_case_1_ok() && mac_is(b, mb, want_b) &&
			mac_is(b, mb, want_b);
	crypto_key_free(a);
	crypto_key_free(b);
	return NULL;
}

Test(hmac, keys_taking_turns_in_several_threads_give_their_own_macs)
{
	struct thread_job mine = { 0, 0 };

	all_threads_ok(hmac_thread);
	hmac_thread(&mine);	/* and the test's own thread */
	cr_assert(mine.ok);
}

Test(hmac, bytes_changed_behind_the_api_are_still_noticed)
{
	struct crypto_key *k = key_hex(
		"000102030405060708090a0b0c0d0e0f"
		"101112131415161718191a1b1c1d1e1f");
	uint8_t want[32];

	unhex("8ca1e620f6d781de8fe89177cffd9b35"
	      "3d3040976737eebe31a26352a4c20dec", want, 32);
	cr_assert(mac_is(k, "phifs audit record", want));
	/* RFC 4231 case 2's key, zero-padded, written directly. */
	memset(k->bytes, 0, 32);
	memcpy(k->bytes, "Jefe", 4);
	unhex("5bdcc146bf60754e6a042426089575c7"
	      "5a003f089d2739839dec58b964ec3843", want, 32);
	cr_assert(mac_is(k, "what do ya want for nothing?", want));
	crypto_key_free(k);
}

Test(sha256, matches_fips180_abc_and_the_empty_string)
{
	uint8_t md[32], want[32];

	unhex("ba7816bf8f01cfea414140de5dae2223"
	      "b00361a396177a9cb410ff61f20015ad",
	      want, 32);
	cr_assert_eq(crypto_sha256("abc", 3, md), 0);
	cr_assert(memcmp(md, want, 32) == 0);
	unhex("e3b0c44298fc1c149afbf4c8996fb924"
	      "27ae41e4649b934ca495991b7852b855",
	      want, 32);
	cr_assert_eq(crypto_sha256(NULL, 0, md), 0);
	cr_assert(memcmp(md, want, 32) == 0);
}

Test(sha256, streaming_in_odd_pieces_equals_one_shot_and_final_resets)
{
	static uint8_t msg[10007];
	struct crypto_sha256_ctx *c = crypto_sha256_new();
	uint8_t one[32], st[32], want[32];
	size_t off = 0, piece = 1;
	int round;

	cr_assert(c);
	fill(msg, sizeof(msg), 99);
	cr_assert_eq(crypto_sha256(msg, sizeof(msg), one), 0);
	for (round = 0; round < 2; round++) {
		for (off = 0, piece = 1; off < sizeof(msg); piece += 7) {
			size_t n = sizeof(msg) - off < piece ?
				sizeof(msg) - off : piece;

			cr_assert_eq(crypto_sha256_update(c, msg + off, n), 0);
			cr_assert_eq(crypto_sha256_update(c, msg, 0), 0);
			off += n;
		}
		cr_assert_eq(crypto_sha256_final(c, st), 0);
		cr_assert(memcmp(st, one, 32) == 0, "round %d", round);
	}
	/* Right after final, the context is empty again. */
	unhex("ba7816bf8f01cfea414140de5dae2223"
	      "b00361a396177a9cb410ff61f20015ad",
	      want, 32);
	cr_assert_eq(crypto_sha256_update(c, "ab", 2), 0);
	cr_assert_eq(crypto_sha256_update(c, "c", 1), 0);
	cr_assert_eq(crypto_sha256_final(c, st), 0);
	cr_assert(memcmp(st, want, 32) == 0);
	crypto_sha256_free(c);
	crypto_sha256_free(NULL);
}

/* ---- scrypt ---- */

Test(scrypt, matches_rfc7914_empty_password_vector)
{
	uint8_t out[64], want[64];

	unhex("77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
	      "fcd0069ded0948f8326a753a0fc81f17"
	      "e8d3e0fb2e0d3628cf35e20c38d18906",
	      want, 64);
	cr_assert_eq(crypto_scrypt("", 0, "", 0, 4, 1, 1, out, 64), 0);
	cr_assert(memcmp(out, want, 64) == 0);
}

Test(scrypt, matches_rfc7914_password_nacl_vector)
{
	uint8_t out[64], want[64];

	unhex("fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
	      "2eaf30d92e22a3886ff109279d9830da"
	      "c727afb94a83ee6d8360cbdfa2cc0640",
	      want, 64);
	cr_assert_eq(crypto_scrypt("password", 8, "NaCl", 4, 10, 8, 16, out,
				   64), 0);
	cr_assert(memcmp(out, want, 64) == 0);
}

Test(scrypt, allows_the_128_mib_of_n_2_17_r_8)
{
	uint8_t a[32], b[32];

	cr_assert_eq(crypto_scrypt("pw", 2, "salt", 4, 17, 8, 1, a, 32), 0);
	cr_assert_eq(crypto_scrypt("pw", 2, "salt", 4, 17, 8, 1, b, 32), 0);
	cr_assert(memcmp(a, b, 32) == 0);
}

Test(scrypt, refuses_impossible_parameters_with_einval)
{
	uint8_t out[32];

	cr_assert_eq(crypto_scrypt("p", 1, "s", 1, 0, 8, 1, out, 32), -EINVAL);
	cr_assert_eq(crypto_scrypt("p", 1, "s", 1, 10, 0, 1, out, 32),
		     -EINVAL);
	cr_assert_eq(crypto_scrypt("p", 1, "s", 1, 10, 8, 0, out, 32),
		     -EINVAL);
	cr_assert_eq(crypto_scrypt("p", 1, "s", 1, 64, 8, 1, out, 32),
		     -EINVAL);
	/* N must stay below 2^(16 r). */
	cr_assert_eq(crypto_scrypt("p", 1, "s", 1, 16, 1, 1, out, 32),
		     -EINVAL);
	cr_assert_eq(crypto_scrypt("p", 1, "s", 1, 10, 1 << 20, 1 << 20, out,
				   32), -EINVAL);
}

/* ---- Ed25519 ---- */

Test(ed25519, matches_rfc8032_test_1)
{
	struct crypto_key *priv = key_hex(
		"9d61b19deffd5a60ba844af492ec2cc4"
		"4449c5697b326919703bac031cae7f60");
	uint8_t pub[32], want_pub[32], sig[64], want_sig[64];

	unhex("d75a980182b10ab7d54bfed3c964073a"
	      "0ee172f3daa62325af021a68f707511a",
	      want_pub, 32);
	unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	      "5fb8821590a33bacc61e39701cf9b46b"
	      "d25bf5f0595bbe24655141438e7a100b",
	      want_sig, 64);
	cr_assert_eq(crypto_ed25519_public(priv, pub), 0);
	cr_assert(memcmp(pub, want_pub, 32) == 0);
	cr_assert_eq(crypto_ed25519_sign(priv, NULL, 0, sig), 0);
	cr_assert(memcmp(sig, want_sig, 64) == 0);
	cr_assert_eq(crypto_ed25519_verify(pub, NULL, 0, sig), 0);
	sig[0] ^= 1;
	cr_assert_eq(crypto_ed25519_verify(pub, NULL, 0, sig), -EBADMSG);
	crypto_key_free(priv);
}

Test(ed25519, matches_rfc8032_test_2_and_rejects_any_flipped_byte)
{
	struct crypto_key *priv = key_hex(
		"4ccd089b28ff96da9db6c346ec114e0f"
		"5b8a319f35aba624da8cf6ed4fb8a6fb");
	uint8_t pub[32], want_pub[32], sig[64], want_sig[64], msg[1] = { 0x72 };
	size_t i;

	unhex("3d4017c3e843895a92b70aa74d1b7ebc"
	      "9c982ccf2ec4968cc0cd55f12af4660c",
	      want_pub, 32);
	unhex("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
	      "085ac1e43e15996e458f3613d0f11d8c"
	      "387b2eaeb4302aeeb00d291612bb0c00",
	      want_sig, 64);
	cr_assert_eq(crypto_ed25519_public(priv, pub), 0);
	cr_assert(memcmp(pub, want_pub, 32) == 0);
	cr_assert_eq(crypto_ed25519_sign(priv, msg, 1, sig), 0);
	cr_assert(memcmp(sig, want_sig, 64) == 0);
	cr_assert_eq(crypto_ed25519_verify(pub, msg, 1, sig), 0);
	msg[0] ^= 0x01;
	cr_assert_eq(crypto_ed25519_verify(pub, msg, 1, sig), -EBADMSG);
	msg[0] ^= 0x01;
	cr_assert_eq(crypto_ed25519_verify(pub, msg, 0, sig), -EBADMSG);
	for (i = 0; i < sizeof(sig); i++) {
		sig[i] ^= 0x04;
		cr_assert_eq(crypto_ed25519_verify(pub, msg, 1, sig), -EBADMSG,
			     "sig byte %zu", i);
		sig[i] ^= 0x04;
	}
	for (i = 0; i < sizeof(pub); i++) {
		pub[i] ^= 0x04;
		cr_assert_eq(crypto_ed25519_verify(pub, msg, 1, sig), -EBADMSG,
			     "pub byte %zu", i);
		pub[i] ^= 0x04;
	}
	crypto_key_free(priv);
}

Test(ed25519, generated_keys_sign_and_verify)
{
	struct crypto_key *priv = NULL;
	uint8_t pub[32], pub2[32], sig[64];
	static const char msg[] = "checkpoint 42";

	cr_assert_eq(crypto_ed25519_keygen(&priv, pub), 0);
	cr_assert(priv);
	cr_assert_eq(crypto_ed25519_public(priv, pub2), 0);
	cr_assert(memcmp(pub, pub2, 32) == 0);
	cr_assert_eq(crypto_ed25519_sign(priv, msg, sizeof(msg), sig), 0);
	cr_assert_eq(crypto_ed25519_verify(pub, msg, sizeof(msg), sig), 0);
	crypto_key_free(priv);
}

/* ---- random, keys, compare ---- */

Test(random, two_draws_differ_and_keys_get_distinct_ids)
{
	uint8_t a[32], b[32], z[32] = { 0 };
	struct crypto_key *k1 = crypto_key_random(), *k2 = crypto_key_random();
	struct crypto_key *k0 = crypto_key_new();

	cr_assert_eq(crypto_random(a, sizeof(a)), 0);
	cr_assert_eq(crypto_random(b, sizeof(b)), 0);
	cr_assert(memcmp(a, b, 32) != 0);
	cr_assert_eq(crypto_random(a, 0), 0);
	cr_assert(k0 && k1 && k2);
	cr_assert(memcmp(k1->bytes, k2->bytes, 32) != 0);
	cr_assert(memcmp(k0->bytes, z, 32) == 0);
	cr_assert_neq(k1->id, 0);
	cr_assert_neq(k1->id, k2->id);
	cr_assert_neq(k0->id, k2->id);
	crypto_key_free(k0);
	crypto_key_free(k1);
	crypto_key_free(k2);
	crypto_key_free(NULL);
}

static int nonce_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CRYPTO_GCM_NONCE_LEN);
}

/* 3,000 nonces span several pool refills; none may repeat. */
Test(nonce, many_draws_across_pool_refills_never_repeat)
{
	enum { N = 3000 };
	static uint8_t n[N][CRYPTO_GCM_NONCE_LEN];

	for (int i = 0; i < N; i++)
		cr_assert_eq(crypto_nonce(n[i], sizeof(n[i])), 0);
	qsort(n, N, sizeof(n[0]), nonce_cmp);
	for (int i = 1; i < N; i++)
		cr_assert_neq(memcmp(n[i - 1], n[i], sizeof(n[0])), 0,
			      "a nonce came twice");
}

/* A forked child must not hand out the bytes the parent's pool holds. */
Test(nonce, a_forked_child_does_not_reuse_the_parents_pool)
{
	uint8_t mine[CRYPTO_GCM_NONCE_LEN], theirs[CRYPTO_GCM_NONCE_LEN];
	int p[2], st;
	pid_t pid;

	cr_assert_eq(crypto_nonce(mine, sizeof(mine)), 0);	/* fills */
	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		_exit(crypto_nonce(theirs, sizeof(theirs)) ||
		      write(p[1], theirs, sizeof(theirs)) != sizeof(theirs));
	}
	cr_assert_eq(read(p[0], theirs, sizeof(theirs)), sizeof(theirs));
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert_eq(crypto_nonce(mine, sizeof(mine)), 0);
	cr_assert_neq(memcmp(mine, theirs, sizeof(mine)), 0,
		      "parent and child drew the same nonce");
	close(p[0]);
	close(p[1]);
}

Test(memeq, tells_equal_from_unequal)
{
	cr_assert_eq(crypto_memeq("abcd", "abcd", 4), 1);
	cr_assert_eq(crypto_memeq("abcd", "abce", 4), 0);
	cr_assert_eq(crypto_memeq("x", "y", 0), 1);
}
