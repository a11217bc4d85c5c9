/*
 * test_audit.c — tests for the integrity log's pure core (src/audit_*.c):
 * the canonical line byte for byte, round trips of hostile names, the
 * strict parser, and the verifier on logs made by the real chain code,
 * intact and after each kind of tampering, with and without an anchor.
 */
#include "phifs/audit.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fnmatch.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_testlog.h"

static char line[AUDIT_MAX_LINE];
static char path[4096], path2[4096];
static struct crypto_key *key, *other;
static uint8_t pub[CRYPTO_ED25519_PUB_LEN], other_pub[CRYPTO_ED25519_PUB_LEN];
static struct testlog tl;

static void setup(void)
{
	cr_assert_eq(crypto_ed25519_keygen(&key, pub), 0);
	cr_assert_eq(crypto_ed25519_keygen(&other, other_pub), 0);
}

static void teardown(void)
{
	testlog_free(&tl);
	crypto_key_free(key);
	crypto_key_free(other);
}

TestSuite(audit, .init = setup, .fini = teardown);

static void simple(struct audit_record *r, enum audit_op op)
{
	memset(r, 0, sizeof(*r));
	r->seq = 1;
	r->ts_sec = 1796601600;	/* 2026-12-07T00:00:00Z */
	r->ts_nsec = 1;
	r->uid = 1000;
	r->gid = 100;
	r->pid = 42;
	strcpy(r->comm, "cat");
	r->op = op;
	r->path = "/a";
	r->path_len = 2;
}

Test(audit, writes_the_canonical_line_byte_for_byte)
{
	static const char want[] =
		"{\"seq\":1,\"ts\":\"2026-12-07T00:00:00.000000001Z\","
		"\"op\":\"read\",\"uid\":1000,\"gid\":100,\"pid\":42,"
		"\"comm\":\"cat\",\"path\":\"/a\",\"off\":4096,\"len\":3,"
		"\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb"
		"410ff61f20015ad\",\"result\":3,\"prev\":\"000000000000000000"
		"0000000000000000000000000000000000000000000000\"";
	uint8_t h[CRYPTO_SHA256_LEN];
	char hex[65];
	struct audit_record r;
	size_t n;

	simple(&r, AUDIT_READ);
	r.off = 4096;
	r.len = 3;
	r.result = 3;
	crypto_sha256("abc", 3, r.sha256);
	cr_assert_eq(audit_record_encode(&r, line, sizeof(line), &n), 0);
	cr_assert_eq(n, strlen(want) + strlen(",\"hash\":\"\"}\n") + 64);
	cr_assert_eq(memcmp(line, want, strlen(want)), 0, "%.*s", (int)n, line);
	/* hash = SHA-256 of the bytes before ,"hash": */
	crypto_sha256(want, strlen(want), h);
	cr_assert_eq(memcmp(h, r.hash, 32), 0);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", h[i]);
	cr_assert_eq(memcmp(line + strlen(want), ",\"hash\":\"", 9), 0);
	cr_assert_eq(memcmp(line + strlen(want) + 9, hex, 64), 0);
	cr_assert_eq(memcmp(line + n - 3, "\"}\n", 3), 0);
}

Test(audit, escapes_strings_as_documented)
{
	struct audit_record r;
	size_t n;

	simple(&r, AUDIT_OPEN);
	r.path = "\x01\x1f\b\f\n\r\t\"\\/\x7f\xc3\xa9\xf0\x9f\x98\x80";
	r.path_len = strlen(r.path);
	cr_assert_eq(audit_record_encode(&r, line, sizeof(line), &n), 0);
	cr_assert_not_null(strstr(line, "\"path\":\"\\u0001\\u001F\\b\\f"
				  "\\n\\r\\t\\\"\\\\/\x7f\xc3\xa9"
				  "\xf0\x9f\x98\x80\","), "%s", line);
}

static void round_trip(const char *p, size_t plen, const char *p2,
		       size_t p2len)
{
	struct audit_record r, back;
	char err[200];
	json_t *o;
	size_t n;

	simple(&r, AUDIT_RENAME);
	r.path = p;
	r.path_len = plen;
	r.path2 = p2;
	r.path2_len = p2len;
	memcpy(r.comm, "\xff\"\n\\", 5);
	cr_assert_eq(audit_record_encode(&r, line, sizeof(line), &n), 0);
	cr_assert_eq(line[n - 1], '\n');
	cr_assert_null(memchr(line, '\n', n - 1), "one line per record");
	o = json_loadb(line, n - 1, 0, NULL);
	cr_assert(json_is_object(o), "one valid JSON object");
	json_decref(o);
	cr_assert_eq(audit_record_parse(line, n - 1, &back, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(back.path_len, plen);
	cr_assert_eq(memcmp(back.path, p, plen), 0);
	cr_assert_eq(back.path2_len, p2len);
	cr_assert_eq(memcmp(back.path2, p2, p2len), 0);
	cr_assert_str_eq(back.comm, "\xff\"\n\\");
	cr_assert_eq(memcmp(back.hash, r.hash, 32), 0);
	audit_record_release(&back);
}

Test(audit, any_name_round_trips_as_one_json_object_per_line)
{
	for (unsigned i = 0; i < TESTLOG_NAMES; i++)
		for (unsigned j = 0; j < TESTLOG_NAMES; j++) {
			size_t a = testlog_name(i, path, sizeof(path));
			size_t b = testlog_name(j, path2, sizeof(path2));

			round_trip(path, a, path2, b);
		}
}

Test(audit, every_byte_but_nul_round_trips)
{
	for (int i = 0; i < 255; i++)
		path[i] = (char)(i + 1);
	round_trip(path, 255, "", 0);
	round_trip("", 0, path + 127, 128);	/* the high half alone */
}

Test(audit, a_name_that_is_not_utf8_goes_as_base64)
{
	struct audit_record r;
	size_t n;

	simple(&r, AUDIT_OPEN);
	r.path = "/\xff";
	r.path_len = 2;
	cr_assert_eq(audit_record_encode(&r, line, sizeof(line), &n), 0);
	cr_assert_not_null(strstr(line, "\"path_b64\":\"L/8=\""));
	r.path = "/a\0b";
	r.path_len = 4;
	cr_assert_eq(audit_record_encode(&r, line, sizeof(line), &n), -EINVAL);
}

/* Encodes r, applies a textual edit, and expects the parser to refuse. */
static void refused(struct audit_record *r, const char *from, const char *to,
		    const char *why)
{
	char edited[AUDIT_MAX_LINE], err[200];
	struct audit_record back;
	size_t n;
	char *at;

	cr_assert_eq(audit_record_encode(r, line, sizeof(line), &n), 0);
	line[--n] = '\0';
	at = strstr(line, from);
	cr_assert_not_null(at, "%s in %s", from, line);
	snprintf(edited, sizeof(edited), "%.*s%s%s", (int)(at - line), line, to,
		 at + strlen(from));
	cr_assert_eq(audit_record_parse(edited, strlen(edited), &back, err,
					sizeof(err)), -EBADMSG, "%s", edited);
	cr_assert_not_null(strstr(err, why), "%s: %s", edited, err);
}

Test(audit, the_parser_is_strict)
{
	struct audit_record r;

	simple(&r, AUDIT_OPEN);
	refused(&r, "\"uid\"", "\"who\"", "unknown field 'who'");
	refused(&r, "\"uid\"", "\"w\\nho\\u001b[2J\"", "unknown field 'w?ho?[2J'");
	refused(&r, "\"uid\":1000,", "", "missing");
	refused(&r, "\"result\"", "\"off\":1,\"result\"", "unknown field 'off' for op open");
	refused(&r, "\"op\":\"open\"", "\"op\":\"peek\"", "no known op");
	refused(&r, "\"uid\":1000,", "\"uid\":1000, ", "canonical");
	refused(&r, "\"path\":\"/a\"", "\"path_b64\":\"L2E=\"", "canonical");
	refused(&r, "\"path\":\"/a\"", "\"path\":\"\\/a\"", "canonical");
	refused(&r, "\"uid\":1000", "\"uid\":1000.0", "bad value of field 'uid'");
	refused(&r, "\"uid\":1000", "\"uid\":-1", "bad value of field 'uid'");
	refused(&r, "\"seq\":1,", "\"seq\":1,\"seq\":1,", "field 'seq' twice");
	refused(&r, "\"prev\":\"0", "\"prev\":\"A", "bad value of field 'prev'");
	refused(&r, "T00:", "T24:", "canonical");
	refused(&r, "\"/a\"", "\"/b\"", "bad hash");
	refused(&r, "\"hash\":", "\"hash\" :", "canonical");
}

Test(audit, the_scanner_takes_one_spelling_only)
{
	struct audit_record r;

	simple(&r, AUDIT_OPEN);
	/* Numbers: one decimal spelling, in range. */
	refused(&r, "\"uid\":1000", "\"uid\":01000", "bad value of field 'uid'");
	refused(&r, "\"uid\":1000", "\"uid\":+1000", "bad value of field 'uid'");
	refused(&r, "\"uid\":1000", "\"uid\":1e3", "bad value of field 'uid'");
	refused(&r, "\"uid\":1000", "\"uid\":4294967296", "bad value of field 'uid'");
	refused(&r, "\"result\":0", "\"result\":-0", "bad value of field 'result'");
	refused(&r, "\"result\":0", "\"result\":9223372036854775808", "bad value");
	refused(&r, "\"seq\":1", "\"seq\":0", "bad value of field 'seq'");
	refused(&r, "\"pid\":42", "\"pid\":2147483648", "bad value of field 'pid'");
	/* Escapes: only those the encoder writes. */
	r.path = "/a\x01";
	r.path_len = 3;
	refused(&r, "\\u0001", "\\u0001\\u0041", "canonical");
	refused(&r, "\\u0001", "\\u0001\\u000A", "canonical");
	refused(&r, "\\u0001", "\\u0001\\u0000", "canonical");
	refused(&r, "\\u0001", "\\u0001\\u007F", "canonical");
	refused(&r, "\\u0001", "\\u0001\\'", "canonical");
	refused(&r, "\\u0001", "\\u0001\\x41", "canonical");
	refused(&r, "\\u0001", "\\u001", "canonical");
	refused(&r, "\\u0001\"", "\\u\"", "canonical");
	refused(&r, "/a\\u0001", "/a\x01", "canonical");	/* raw control */
	/* Bytes that are not UTF-8 in a plain string: base64 was due. */
	refused(&r, "/a\\u0001", "/a\xff", "canonical");
	refused(&r, "/a\\u0001", "/a\xc0\xaf", "canonical");	/* overlong */
	refused(&r, "/a\\u0001", "/a\xed\xa0\x80", "canonical");	/* surrogate */
	refused(&r, "/a\\u0001", "/a\xf4\x90\x80\x80", "canonical");	/* > U+10FFFF */
	refused(&r, "/a\\u0001", "/a\xe2\x82", "canonical");	/* cut short */
	/* base64: padding where due, spare bits zero, no NUL, not UTF-8. */
	r.path = "/\xff";
	r.path_len = 2;
	refused(&r, "\"L/8=\"", "\"L/8\"", "canonical");
	refused(&r, "\"L/8=\"", "\"L/9=\"", "canonical");
	refused(&r, "\"L/8=\"", "\"L/8==\"", "canonical");
	refused(&r, "\"L/8=\"", "\"L/8=L/8=\"", "canonical");
	refused(&r, "\"L/8=\"", "\"AP8=\"", "canonical");	/* a NUL */
	refused(&r, "\"L/8=\"", "\"\"", "canonical");
	refused(&r, "\"L/8=\"", "\"L_8=\"", "canonical");
	/* Keys: their order, once each, the op's only, nothing around. */
	simple(&r, AUDIT_OPEN);
	refused(&r, "\"uid\":1000,\"gid\":100", "\"gid\":100,\"uid\":1000",
		"field 'uid' missing or out of order");
	refused(&r, "\"path\":\"/a\"", "\"path\":\"/a\",\"path\":\"/a\"",
		"field 'path' twice");
	refused(&r, "\"path\":\"/a\"", "\"path\":\"/a\",\"path_b64\":\"L2E=\"",
		"field 'path_b64' twice");
	refused(&r, "\"prev\"", "\"rule\":\"x\",\"prev\"",
		"unknown field 'rule' for op open");
	refused(&r, "\"path\":", "\"path\" :", "canonical");
	refused(&r, "{", "{ ", "canonical");
	refused(&r, "\"}", "\"} ", "not a JSON object");
	refused(&r, "{\"seq\":1,", "{\"seq\":1,\"x\":1,", "unknown field 'x'");
	refused(&r, "\"op\":\"open\"", "\"op\":\"Open\"", "no known op");
	/* A field after prev, the hash where it should not be. */
	refused(&r, ",\"hash\":\"", ",\"off\":1,\"hash\":\"",
		"unknown field 'off' for op open");
	refused(&r, "\"}", "\",\"x\":1}", "bad value of field 'hash'");
	refused(&r, "\"}", "0\"}", "bad value of field 'hash'");
	/* The time: its one spelling, a real date. */
	refused(&r, "00.000000001Z", "00.000000001z", "bad value of field 'ts'");
	refused(&r, "2026-12-07", "2026-02-29", "canonical");
	refused(&r, "2026-12-07", "2026-13-07", "canonical");
	refused(&r, "2026-12-07", "1969-12-07", "canonical");
	refused(&r, "T00:00:00", "T00:00:60", "canonical");
	refused(&r, "T00:00:00", "T0:00:00", "bad value of field 'ts'");
	/* comm: under 16 bytes. */
	refused(&r, "\"comm\":\"cat\"", "\"comm\":\"0123456789abcdef\"",
		"bad value of field 'comm'");
}

/* Encode, parse, and expect the same values and, encoded again, bytes. */
static void same_after_parse(struct audit_record *r)
{
	char again[AUDIT_MAX_LINE], err[200];
	struct audit_record back;
	size_t n, m;

	cr_assert_eq(audit_record_encode(r, line, sizeof(line), &n), 0);
	cr_assert_eq(audit_record_parse(line, n - 1, &back, err, sizeof(err)),
		     0, "%s: %.*s", err, (int)n, line);
	cr_assert_eq(back.seq, r->seq);
	cr_assert_eq(back.ts_sec, r->ts_sec);
	cr_assert_eq(back.ts_nsec, r->ts_nsec);
	cr_assert_eq(back.pid, r->pid);
	cr_assert_eq(back.result, r->result);
	cr_assert_eq(audit_record_encode(&back, again, sizeof(again), &m), 0);
	cr_assert_eq(m, n);
	cr_assert_eq(memcmp(again, line, n), 0);
	audit_record_release(&back);
}

Test(audit, extreme_values_round_trip)
{
	struct audit_record r;
	size_t n;

	simple(&r, AUDIT_READ);
	r.seq = INT64_MAX;
	r.ts_sec = 253402300799;	/* 9999-12-31T23:59:59Z */
	r.ts_nsec = 999999999;
	r.uid = r.gid = UINT32_MAX;
	r.pid = INT32_MIN;
	r.result = INT64_MIN;
	r.off = r.len = INT64_MAX;
	same_after_parse(&r);
	cr_assert_not_null(strstr(line, "\"ts\":\"9999-12-31T23:59:59.999999999Z\""));
	r.ts_sec = 0;
	r.ts_nsec = 0;
	r.result = INT64_MAX;
	r.pid = INT32_MAX;
	same_after_parse(&r);
	cr_assert_not_null(strstr(line, "\"ts\":\"1970-01-01T00:00:00.000000000Z\""));
	r.ts_sec = 1835395200;	/* 2028-02-29, a leap day */
	same_after_parse(&r);
	cr_assert_not_null(strstr(line, "\"ts\":\"2028-02-29T00:00:00.000000000Z\""));
	r.ts_sec = 253402300800;
	cr_assert_eq(audit_record_encode(&r, line, sizeof(line), &n), -EINVAL);
	r.ts_sec = -1;
	cr_assert_eq(audit_record_encode(&r, line, sizeof(line), &n), -EINVAL);
	r.ts_sec = 0;
	r.off = (uint64_t)INT64_MAX + 1;
	cr_assert_eq(audit_record_encode(&r, line, sizeof(line), &n), -EINVAL);
}

/* Bytes that try the edges of escaping and UTF-8. */
static size_t hostile_bytes(unsigned *seed, bool utf8, char *out,
			    size_t max)
{
	static const char *const bits[] = {
		"a", "/", "\"", "\\", "\x01", "\x1f", "\b", "\f", "\n", "\r",
		"\t", "\x7f", "\xc3\xa9", "\xe2\x80\xa8", "\xef\xbf\xbf",
		"\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\x80", "\xc0\xaf",
		"\xc2", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff", "~",
	};
	/* The first 17 are UTF-8, the rest not. */
	size_t n = 0, k = (size_t)(rand_r(seed) % 12);
	unsigned nbits = utf8 ? 17 : sizeof(bits) / sizeof(bits[0]);

	for (size_t i = 0; i < k; i++) {
		const char *b = bits[(unsigned)rand_r(seed) % nbits];

		if (n + strlen(b) > max)
			break;
		memcpy(out + n, b, strlen(b));
		n += strlen(b);
	}
	return n;
}

/* The old encoder's way, kept as the oracle: jansson's own dump. */
static void jansson_set_bytes(json_t *o, const char *name, const char *s,
			      size_t n)
{
	json_t *v = json_stringn(s, n);
	char k[32];

	if (v) {
		json_object_set_new(o, name, v);
		return;
	}
	/* Not UTF-8: the line's own base64 is checked by the round trip. */
	snprintf(k, sizeof(k), "%s_b64", name);
	json_object_set_new(o, k, json_string("?"));
}

static json_t *jansson_record(const struct audit_record *r, const char *ts)
{
	json_t *o = json_object();
	char hex[2 * CRYPTO_ED25519_SIG_LEN + 1];

	json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "op", json_string(audit_op_name(r->op)));
	json_object_set_new(o, "uid", json_integer(r->uid));
	json_object_set_new(o, "gid", json_integer(r->gid));
	json_object_set_new(o, "pid", json_integer(r->pid));
	jansson_set_bytes(o, "comm", r->comm, strlen(r->comm));
	jansson_set_bytes(o, "path", r->path, r->path_len);
	jansson_set_bytes(o, "path2", r->path2, r->path2_len);
	json_object_set_new(o, "result", json_integer(r->result));
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", r->prev[i]);
	json_object_set_new(o, "prev", json_string(hex));
	return o;
}

/*
 * The hand-written encoder writes what jansson wrote (JSON_COMPACT |
 * JSON_PRESERVE_ORDER) for the same values, and the scanner takes each
 * line back to the same line: thousands of records of hostile bytes.
 */
Test(audit, the_encoder_writes_what_jansson_wrote_and_the_scanner_reads_it)
{
	unsigned seed = 15, compared = 0;

	for (int i = 0; i < 3000; i++) {
		struct audit_record r;
		size_t n, m;
		char *dump, ts[31] = "";
		json_t *o;

		simple(&r, AUDIT_RENAME);
		r.seq = (uint64_t)rand_r(&seed) << 31 | (uint64_t)rand_r(&seed);
		r.ts_sec = rand_r(&seed);
		r.ts_nsec = (uint32_t)rand_r(&seed) % 1000000000u;
		r.uid = (uint32_t)rand_r(&seed) * 3u;
		r.pid = rand_r(&seed) - RAND_MAX / 2;
		r.result = (int64_t)rand_r(&seed) - RAND_MAX / 2;
		memset(r.comm, 0, sizeof(r.comm));
		hostile_bytes(&seed, i % 2, r.comm, AUDIT_COMM_LEN - 1);
		r.path = path;
		r.path_len = hostile_bytes(&seed, i % 2, path, 64);
		r.path2 = path2;
		r.path2_len = hostile_bytes(&seed, i % 2, path2, 64);
		memset(r.prev, rand_r(&seed), sizeof(r.prev));
		same_after_parse(&r);
		memcpy(ts, strstr(line, "\"ts\":\"") + 6, 30);
		o = jansson_record(&r, ts);
		dump = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		n = strlen(dump) - 1;	/* its '}' */
		m = (size_t)(strstr(line, ",\"hash\":\"") - line);
		compared += !strstr(dump, "_b64\":\"?\"");
		if (!strstr(dump, "_b64\":\"?\""))
			cr_assert(n == m && !memcmp(dump, line, n),
				  "jansson: %s\nours:    %.*s", dump, (int)m,
				  line);
		free(dump);
		json_decref(o);
	}
	cr_assert_gt(compared, 1500);
}

static void expect_fault(const struct audit_segment *s, size_t n,
			 const uint8_t *k, const char *anchor, size_t alen,
			 size_t seg, size_t ln, const char *why)
{
	struct audit_verdict v;

	cr_assert_eq(audit_verify(s, n, k, anchor, alen, &v), -EBADMSG,
		     "verified though %s was expected", why);
	cr_assert_not(v.ok);
	cr_assert_eq(v.seg, seg, "segment %zu, not %zu: %s", v.seg, seg,
		     v.reason);
	cr_assert_eq(v.line, ln, "line %zu, not %zu: %s", v.line, ln, v.reason);
	cr_assert_not_null(strstr(v.reason, why), "%s", v.reason);
}

static void expect_intact(const struct audit_segment *s, size_t n,
			  const char *anchor, size_t alen,
			  struct audit_verdict *v)
{
	cr_assert_eq(audit_verify(s, n, pub, anchor, alen, v), 0, "%zu:%zu %s",
		     v->seg, v->line, v->reason);
	cr_assert(v->ok);
}

Test(audit, a_log_made_by_the_chain_verifies_and_is_sealed)
{
	struct audit_verdict v;

	cr_assert_eq(testlog_make(&tl, key, 4, 7, false), 0);
	expect_intact(tl.segs, tl.n, tl.anchor, tl.anchor_len, &v);
	cr_assert_eq(v.records, 4 * 8);
	cr_assert_eq(v.checkpoints, 4);
	cr_assert_eq(v.sealed_seq, 32);
	cr_assert_eq(v.unsealed, 0);
	cr_assert(v.anchored);
}

Test(audit, records_after_the_last_checkpoint_are_reported_unsealed)
{
	struct audit_verdict v;

	cr_assert_eq(testlog_make(&tl, key, 2, 5, true), 0);
	expect_intact(tl.segs, tl.n, NULL, 0, &v);
	cr_assert_eq(v.sealed_seq, 6);
	cr_assert_eq(v.unsealed, 5);
}

Test(audit, a_gap_record_says_how_many_records_were_lost)
{
	static char buf[3 * AUDIT_MAX_LINE];
	struct audit_segment g = { .name = "seg-00000000000000000001.jsonl",
				   .buf = buf };
	struct audit_chain c;
	struct audit_verdict v;
	struct audit_record r, back;
	char why[200];
	size_t n;

	audit_chain_init(&c);
	simple(&r, AUDIT_GAP);
	r.path_len = 0;
	r.len = 7;
	r.result = -28;	/* ENOSPC */
	cr_assert_eq(audit_chain_append(&c, &r, buf, sizeof(buf), &n), 0);
	cr_assert_not_null(memmem(buf, n, "\"op\":\"gap\"", 10));
	cr_assert_not_null(memmem(buf, n, "\"len\":7,\"result\":-28,", 21));
	cr_assert_eq(audit_record_parse(buf, n - 1, &back, why, sizeof(why)),
		     0, "%s", why);
	cr_assert_eq(back.op, AUDIT_GAP);
	cr_assert_eq(back.len, 7);
	audit_record_release(&back);
	g.len = n;
	simple(&r, AUDIT_GAP);
	r.len = 5;
	cr_assert_eq(audit_chain_append(&c, &r, buf + g.len,
					sizeof(buf) - g.len, &n), 0);
	g.len += n;
	expect_intact(&g, 1, NULL, 0, &v);
	cr_assert_eq(v.gaps, 2);
	cr_assert_eq(v.lost, 12);
}

/* Where each line of g starts, and after the last its end. */
static char *lines_of(struct audit_segment *g, size_t *count,
		      size_t starts[64])
{
	size_t c = 0;

	for (size_t p = 0; p < g->len; p++)
		if (p == 0 || g->buf[p - 1] == '\n')
			starts[c++] = p;
	starts[c] = g->len;
	*count = c;
	return (char *)g->buf;
}

Test(audit, every_byte_changed_is_caught_on_its_line)
{
	struct audit_segment *g;

	/* Short names only, or this takes seconds under ASan. */
	cr_assert_eq(testlog_make(&tl, key, 2, 2, false), 0);
	g = &tl.segs[1];
	for (size_t i = 0; i < g->len; i++) {
		char *b = (char *)g->buf;
		size_t starts[64], c, ln = 0;

		lines_of(g, &c, starts);
		while (starts[ln + 1] <= i)
			ln++;
		b[i] ^= 0x01;
		/* A newline turned into \v runs two lines into one. */
		expect_fault(tl.segs, tl.n, pub, NULL, 0, 1, ln + 1,
			     i + 1 == g->len ? "truncated" : "");
		b[i] ^= 0x01;
	}
}

Test(audit, a_deleted_record_is_a_gap)
{
	size_t starts[64], c;
	struct audit_segment *g = &tl.segs[1];
	char *b;

	cr_assert_eq(testlog_make(&tl, key, 3, 5, false), 0);
	b = lines_of(g, &c, starts);
	memmove(b + starts[2], b + starts[3], g->len - starts[3]);
	g->len -= starts[3] - starts[2];
	expect_fault(tl.segs, tl.n, pub, NULL, 0, 1, 3, "gap in sequence");
}

Test(audit, two_swapped_records_are_a_gap)
{
	size_t starts[64], c, a, b;
	struct audit_segment *g = &tl.segs[2];
	char *buf, tmp[2 * AUDIT_MAX_LINE];

	cr_assert_eq(testlog_make(&tl, key, 3, 5, false), 0);
	buf = lines_of(g, &c, starts);
	a = starts[2] - starts[1];
	b = starts[3] - starts[2];
	memcpy(tmp, buf + starts[2], b);
	memcpy(tmp + b, buf + starts[1], a);
	memcpy(buf + starts[1], tmp, a + b);
	expect_fault(tl.segs, tl.n, pub, NULL, 0, 2, 2, "gap in sequence");
}

Test(audit, a_forged_record_with_its_own_good_hash_is_a_bad_link)
{
	size_t starts[64], c, n, old;
	struct audit_segment *g = &tl.segs[1];
	struct audit_record r;
	char err[200], *b;

	cr_assert_eq(testlog_make(&tl, key, 2, 4, false), 0);
	b = lines_of(g, &c, starts);
	old = starts[2] - starts[1];
	cr_assert_eq(audit_record_parse(b + starts[1], old - 1, &r, err,
					sizeof(err)), 0, "%s", err);
	r.uid = 0;	/* the forger's edit, then a fresh, true hash */
	memset(r.prev, 0xab, sizeof(r.prev));
	cr_assert_eq(audit_record_encode(&r, line, sizeof(line), &n), 0);
	audit_record_release(&r);
	b = realloc(b, g->len + n);
	memmove(b + starts[1] + n, b + starts[2], g->len - starts[2]);
	memcpy(b + starts[1], line, n);
	g->buf = b;
	g->len = g->len - old + n;
	expect_fault(tl.segs, tl.n, pub, NULL, 0, 1, 2, "bad link");
}

Test(audit, a_tail_cut_mid_record_is_a_truncated_segment)
{
	size_t starts[64], c;
	struct audit_segment *g = &tl.segs[1];

	cr_assert_eq(testlog_make(&tl, key, 2, 4, true), 0);
	lines_of(g, &c, starts);
	g->len = starts[c - 1] + 20;
	expect_fault(tl.segs, tl.n, pub, NULL, 0, 1, c, "truncated");
}

Test(audit, a_removed_middle_segment_is_a_gap)
{
	cr_assert_eq(testlog_make(&tl, key, 4, 3, false), 0);
	struct audit_segment keep = tl.segs[1];

	memmove(&tl.segs[1], &tl.segs[2], 2 * sizeof(tl.segs[0]));
	tl.segs[3] = keep;	/* freed with the rest, not verified */
	expect_fault(tl.segs, 3, pub, NULL, 0, 1, 0, "gap in sequence");
}

Test(audit, a_renamed_segment_is_a_gap)
{
	cr_assert_eq(testlog_make(&tl, key, 2, 3, false), 0);
	audit_segment_name(99, (char *)tl.segs[1].name);
	expect_fault(tl.segs, tl.n, pub, NULL, 0, 1, 0, "gap in sequence");
}

Test(audit, removed_newest_segments_pass_alone_but_not_with_the_anchor)
{
	struct audit_verdict v;

	cr_assert_eq(testlog_make(&tl, key, 4, 3, false), 0);
	expect_intact(tl.segs, 2, NULL, 0, &v);
	cr_assert_eq(v.unsealed, 0, "a cut at a segment end looks sealed");
	expect_fault(tl.segs, 2, pub, tl.anchor, tl.anchor_len, 1, 0,
		     "tail was cut");
}

/* The attack an audit key holder can make: rewrite, re-chain, re-sign. */
static void rewrite(struct testlog *t, uint64_t victim,
		    const struct crypto_key *k)
{
	struct audit_chain c;
	char err[200];

	audit_chain_init(&c);
	for (size_t s = 0; s < t->n; s++) {
		struct audit_segment *g = &t->segs[s];
		char *out = malloc(g->len * 2 + AUDIT_MAX_LINE), *p;
		size_t o = 0, n;

		cr_assert_not_null(out);
		for (const char *q = g->buf; q < g->buf + g->len; q = p + 1) {
			struct audit_record r;

			p = memchr(q, '\n', (size_t)(g->buf + g->len - q));
			cr_assert_eq(audit_record_parse(q, (size_t)(p - q), &r,
							err, sizeof(err)), 0);
			if (r.seq == victim)
				r.uid = 0;
			cr_assert_eq(r.op == AUDIT_CHECKPOINT ?
				     audit_chain_checkpoint(&c, &r, k, out + o,
							    AUDIT_MAX_LINE, &n) :
				     audit_chain_append(&c, &r, out + o,
							AUDIT_MAX_LINE, &n), 0);
			o += n;
			audit_record_release(&r);
		}
		free((char *)g->buf);
		g->buf = out;
		g->len = o;
	}
}

Test(audit, history_resigned_with_the_real_key_fails_the_anchor)
{
	struct audit_verdict v;
	char anchor[AUDIT_MAX_LINE];
	size_t alen;

	cr_assert_eq(testlog_make(&tl, key, 3, 4, false), 0);
	memcpy(anchor, tl.anchor, tl.anchor_len);
	alen = tl.anchor_len;
	rewrite(&tl, 2, key);
	expect_intact(tl.segs, tl.n, NULL, 0, &v);
	expect_fault(tl.segs, tl.n, pub, anchor, alen, 2, 5,
		     "history rewritten");
}

Test(audit, a_log_signed_by_another_key_fails_the_pinned_one)
{
	size_t starts[64], c;
	struct audit_segment *last = &tl.segs[1];

	cr_assert_eq(testlog_make(&tl, key, 2, 3, false), 0);
	rewrite(&tl, 2, other);
	expect_fault(tl.segs, tl.n, pub, NULL, 0, 0, 4, "bad signature");
	/* Its own newest checkpoint as the anchor: signed by the other. */
	lines_of(last, &c, starts);
	expect_fault(tl.segs, tl.n, pub, last->buf + starts[c - 1],
		     starts[c] - starts[c - 1], 2, 0, "anchor: bad signature");
}

Test(audit, an_anchor_must_be_a_checkpoint)
{
	cr_assert_eq(testlog_make(&tl, key, 1, 3, false), 0);
	expect_fault(tl.segs, tl.n, pub, tl.segs[0].buf, 10, 1, 0,
		     "anchor: not a JSON object");
	expect_fault(tl.segs, tl.n, pub, "", 0, 1, 0, "anchor");
}

Test(audit, no_segments_is_no_log)
{
	expect_fault(NULL, 0, pub, NULL, 0, 0, 0, "no segments");
}

Test(audit, segment_names_sort_by_first_seq)
{
	char a[AUDIT_SEG_NAME_LEN + 1], b[AUDIT_SEG_NAME_LEN + 1];
	uint64_t s;

	audit_segment_name(9, a);
	audit_segment_name(10, b);
	cr_assert_str_eq(a, "seg-00000000000000000009.jsonl");
	cr_assert_lt(strcmp(a, b), 0);
	cr_assert_eq(audit_segment_parse_name(b, &s), 0);
	cr_assert_eq(s, 10);
	cr_assert_eq(audit_segment_parse_name("seg-1.jsonl", &s), -EINVAL);
	cr_assert_eq(audit_segment_parse_name(
			     "seg-99999999999999999999.jsonl", &s), -EINVAL);
}

Test(audit, audit_pub_round_trips_and_has_a_fingerprint)
{
	char text[AUDIT_PUB_TEXT_LEN + 1], fpr[AUDIT_FPR_LEN + 1];
	uint8_t back[CRYPTO_ED25519_PUB_LEN];

	audit_pub_format(pub, text);
	cr_assert_eq(strncmp(text, "ed25519 ", 8), 0);
	cr_assert_eq(audit_pub_parse(text, strlen(text), back), 0);
	cr_assert_eq(memcmp(back, pub, sizeof(back)), 0);
	cr_assert_eq(audit_pub_parse(text, strlen(text) - 2, back), -EINVAL);
	cr_assert_eq(audit_pub_fingerprint(pub, fpr), 0);
	cr_assert_eq(strlen(fpr), AUDIT_FPR_LEN);
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

Test(audit, a_log_folder_is_read_in_order)
{
	const char *base = getenv("TMPDIR");
	struct audit_segset set;
	struct audit_verdict v;
	char err[256], *dir;

	cr_assert(asprintf(&dir, "%s/phifs-audit-XXXXXX",
			   base && *base ? base : "/tmp") > 0);
	cr_assert_eq(testlog_make(&tl, key, 12, 2, false), 0);
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(testlog_write_dir(&tl, key, dir), 0);
	cr_assert_eq(audit_dir_load(dir, &set, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(set.n, 12, "audit.pub is no segment");
	expect_intact(set.segs, set.n, NULL, 0, &v);
	cr_assert_eq(v.records, 36);
	audit_dir_release(&set);
	cr_assert_eq(nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS), 0);
	free(dir);
}

/* The test key: bytes 0, 1, .. 31. */
static struct crypto_key *path_key(uint8_t first)
{
	uint8_t b[CRYPTO_KEY_LEN];

	for (int i = 0; i < CRYPTO_KEY_LEN; i++)
		b[i] = (uint8_t)(first + i);
	return crypto_key_from(b);
}

static const char *pseudo(const struct crypto_key *k, const char *p,
			  size_t n, char *out)
{
	size_t len;

	cr_assert_eq(audit_path_pseudonym(k, p, n, out, 8192, &len), 0);
	cr_assert_eq(strlen(out), len);
	return out;
}

Test(audit, a_pseudonym_is_an_hmac_per_component_with_the_slashes_kept)
{
	struct crypto_key *k = path_key(0), *k2 = path_key(1);
	static char a[8192], b[8192];
	size_t len;

	/* docs/AUDIT.md's example, checked with Python's hmac module. */
	cr_assert_str_eq(pseudo(k, "/ward 3/Jane Doe", 16, a),
			 "/~3d181033462cf353afe98011963d8e2b"
			 "/~2c9a24dcb58af60485b462a336d11cc1");
	cr_assert_str_eq(pseudo(k, "/a\nb", 4, a),
			 "/~203016a4ddf61e48573e46dd19df038b");
	/* Deterministic; another key, other pseudonyms. */
	pseudo(k, "/ward 3/Jane Doe", 16, a);
	cr_assert_str_eq(pseudo(k, "/ward 3/Jane Doe", 16, b), a);
	pseudo(k, "/ward 3", 7, a);
	cr_assert_str_neq(pseudo(k2, "/ward 3", 7, b), a);
	/* Components independent: one name, one pseudonym at any depth. */
	pseudo(k, "/x/ward 3", 9, a);
	pseudo(k, "/ward 3", 7, b);
	cr_assert_str_eq(a + 1 + AUDIT_PSEUDONYM_LEN, b);
	/* Slashes where they were: leading, doubled, trailing, none. */
	cr_assert_str_eq(pseudo(k, "", 0, a), "");
	cr_assert_str_eq(pseudo(k, "/", 1, a), "/");
	pseudo(k, "a//b/", 5, a);
	cr_assert_eq(strlen(a), 2 * AUDIT_PSEUDONYM_LEN + 3);
	cr_assert_eq(a[0], '~');
	cr_assert_eq(memcmp(a + AUDIT_PSEUDONYM_LEN, "//~", 3), 0);
	cr_assert_eq(a[strlen(a) - 1], '/');
	/* -ENOSPC with the size needed; a NUL is no path. */
	cr_assert_eq(audit_path_pseudonym(k, "/ab", 3, a, 34, &len), -ENOSPC);
	cr_assert_eq(len, 34);
	cr_assert_eq(audit_path_pseudonym(k, "/ab", 3, a, 35, &len), 0);
	cr_assert_eq(audit_path_pseudonym(k, "/a\0b", 4, a, sizeof(a), &len),
		     -EINVAL);
	crypto_key_free(k);
	crypto_key_free(k2);
}

Test(audit, hostile_names_become_plain_pseudonyms_that_encode_as_utf8)
{
	struct crypto_key *k = path_key(0);
	static char out[65536];
	struct audit_record r;
	size_t n, len;

	for (unsigned i = 0; i < TESTLOG_NAMES; i++) {
		n = testlog_name(i, path, sizeof(path));
		cr_assert_eq(audit_path_pseudonym(k, path, n, out, sizeof(out),
						  &len), 0);
		cr_assert_eq(strspn(out, "/~0123456789abcdef"), len,
			     "name %u: %s", i, out);
		simple(&r, AUDIT_OPEN);
		r.path = out;
		r.path_len = len;
		cr_assert_eq(audit_record_encode(&r, line, sizeof(line), &n), 0);
		cr_assert_not_null(strstr(line, "\"path\":\"/~"),
				   "plain, not base64");
	}
	crypto_key_free(k);
}

static bool glob_finds(const struct crypto_key *k, const char *glob,
		       const char *name)
{
	static char g[8192], p[8192];

	cr_assert_eq(audit_glob_pseudonym(k, glob, g, sizeof(g)), 0);
	pseudo(k, name, strlen(name), p);
	return fnmatch(g, p, 0) == 0;
}

Test(audit, a_glob_finds_pseudonyms_by_its_literal_components)
{
	struct crypto_key *k = path_key(0);
	char g[40];

	cr_assert(glob_finds(k, "/ward 3/Jane Doe", "/ward 3/Jane Doe"));
	cr_assert_not(glob_finds(k, "/ward 3/Jane Doe", "/ward 3/John Doe"));
	cr_assert(glob_finds(k, "/ward 3/*", "/ward 3/Jane Doe"));
	cr_assert(glob_finds(k, "/ward 3/*", "/ward 3/a/b"), "* spans, as plain");
	cr_assert(glob_finds(k, "/ward ?/Jane Doe", "/ward 7/Jane Doe"));
	cr_assert(glob_finds(k, "/w*/Jane Doe", "/anything/Jane Doe"),
		  "a wildcard component matches any one name");
	cr_assert_not(glob_finds(k, "/w*/Jane Doe", "/a/b/Jane Doe"));
	cr_assert(glob_finds(k, "/a\\*b", "/a*b"), "an escaped star is a name");
	cr_assert_not(glob_finds(k, "/a\\*b", "/axb"));
	cr_assert(glob_finds(k, "*/Jane Doe", "/x/y/Jane Doe"));
	cr_assert_eq(audit_glob_pseudonym(k, "/a/b", g, 2 * 34), -ENOSPC);
	crypto_key_free(k);
}
