/*
 * audit_record.c — one integrity-log record as one canonical JSON line and
 * back (docs/AUDIT.md, "Records").  Pure: no I/O, no threads; knows nothing
 * of segments, the writer or FUSE.  The canonical form is what jansson
 * writes with JSON_COMPACT | JSON_PRESERVE_ORDER for the fields in the one
 * fixed order below, so the parser checks a line by encoding what it read
 * and comparing bytes: one record has one line, and one line one record.
 */
#include "phifs/audit.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_impl.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)
#define HASH_KEY ",\"hash\":\""

static const char *const op_names[AUDIT_OP_COUNT] = {
	[AUDIT_MOUNT] = "mount", [AUDIT_UNMOUNT] = "unmount",
	[AUDIT_OPEN] = "open", [AUDIT_READ] = "read",
	[AUDIT_WRITE] = "write", [AUDIT_CREATE] = "create",
	[AUDIT_UNLINK] = "unlink", [AUDIT_RENAME] = "rename",
	[AUDIT_MKDIR] = "mkdir", [AUDIT_RMDIR] = "rmdir",
	[AUDIT_LINK] = "link", [AUDIT_SYMLINK] = "symlink",
	[AUDIT_TRUNCATE] = "truncate", [AUDIT_SETATTR] = "setattr",
	[AUDIT_DENY] = "deny", [AUDIT_INTEGRITY_ERROR] = "integrity-error",
	[AUDIT_POLICY_RELOAD] = "policy-reload",
	[AUDIT_KEY_ROTATE] = "key-rotate", [AUDIT_RECOVERY] = "recovery",
	[AUDIT_CHECKPOINT] = "checkpoint", [AUDIT_GAP] = "gap",
};

/* The optional fields each op carries, and no others. */
static unsigned op_fields(enum audit_op op)
{
	switch (op) {
	case AUDIT_RENAME: case AUDIT_LINK: case AUDIT_SYMLINK:
		return F_PATH2;
	case AUDIT_READ: case AUDIT_WRITE:
		return F_OFF | F_LEN | F_SHA;
	case AUDIT_TRUNCATE:
		return F_OFF;
	case AUDIT_GAP:
		return F_LEN;
	case AUDIT_DENY:
		return F_REQ | F_RULE;
	case AUDIT_INTEGRITY_ERROR:
		return F_BLOCK;
	case AUDIT_KEY_ROTATE:
		return F_VERSION;
	case AUDIT_CHECKPOINT:
		return F_SIG;
	default:
		return 0;
	}
}

unsigned audit_op_fields(enum audit_op op)
{
	return op_fields(op);
}

const char *audit_op_name(enum audit_op op)
{
	if ((unsigned)op >= AUDIT_OP_COUNT)
		return NULL;
	return op_names[op];
}

int audit_op_parse(const char *name, enum audit_op *op)
{
	for (unsigned i = 0; i < AUDIT_OP_COUNT; i++)
		if (!strcmp(name, op_names[i])) {
			*op = (enum audit_op)i;
			return 0;
		}
	return -EINVAL;
}

void audit_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Lower-case hex of exactly n bytes only. */
int audit_unhex(const char *s, size_t slen, uint8_t *p, size_t n)
{
	if (slen != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		p[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static const char b64_digits[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* RFC 4648 base64 with padding; out holds 4 * ((n + 2) / 3) + 1. */
static void b64_encode(const uint8_t *p, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = b64_digits[v >> 18 & 63];
		out[o++] = b64_digits[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64_digits[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64_digits[v & 63] : '=';
	}
	out[o] = '\0';
}

/* Decodes into a new buffer; a non-canonical form is caught by the
 * caller's re-encoding, so this only refuses what is no base64. */
static int b64_decode(const char *s, size_t n, char **out, size_t *out_len)
{
	size_t o = 0;
	char *p;

	if (n % 4)
		return -EINVAL;
	p = malloc(n / 4 * 3 + 1);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		int pad = 0;

		for (int j = 0; j < 4; j++) {
			const char *d = s[i + j] ? strchr(b64_digits, s[i + j])
						 : NULL;

			if (s[i + j] == '=' && i + 4 == n && j >= 2 &&
			    (j == 3 || s[i + 3] == '=')) {
				pad++;
				v <<= 6;
				continue;
			}
			if (!d || pad) {
				free(p);
				return -EINVAL;
			}
			v = v << 6 | (uint32_t)(d - b64_digits);
		}
		p[o++] = (char)(v >> 16);
		if (pad < 2)
			p[o++] = (char)(v >> 8);
		if (pad < 1)
			p[o++] = (char)v;
	}
	p[o] = '\0';
	*out = p;
	*out_len = o;
	return 0;
}

/*
 * A byte string as "key" when it is UTF-8 (jansson checks), else as
 * "key_b64", so that any bytes round-trip and the line stays one JSON
 * object.
 */
static int set_bytes(json_t *o, const char *key, const char *s, size_t n)
{
	char k[32];
	json_t *v;
	char *b;
	int rc;

	if (!s)
		s = "", n = 0;
	if (memchr(s, 0, n))
		return -EINVAL;
	v = json_stringn(s, n);
	if (v)
		return json_object_set_new(o, key, v) ? -ENOMEM : 0;
	b = malloc(4 * ((n + 2) / 3) + 1);
	if (!b)
		return -ENOMEM;
	b64_encode((const uint8_t *)s, n, b);
	snprintf(k, sizeof(k), "%s_b64", key);
	rc = json_object_set_new(o, k, json_string(b)) ? -ENOMEM : 0;
	free(b);
	return rc;
}

static int set_int(json_t *o, const char *key, int64_t v)
{
	return json_object_set_new(o, key, json_integer(v)) ? -ENOMEM : 0;
}

static int set_u64(json_t *o, const char *key, uint64_t v)
{
	if (v > INT64_MAX)
		return -EINVAL;
	return set_int(o, key, (int64_t)v);
}

static int set_hex(json_t *o, const char *key, const uint8_t *p, size_t n)
{
	char h[2 * CRYPTO_ED25519_SIG_LEN + 1];

	audit_hex(p, n, h);
	return json_object_set_new(o, key, json_string(h)) ? -ENOMEM : 0;
}

int audit_format_ts(int64_t sec, uint32_t nsec, char out[AUDIT_TS_LEN + 1])
{
	char tmp[80];
	struct tm tm;
	time_t t = (time_t)sec;

	if (nsec >= 1000000000u || !gmtime_r(&t, &tm) ||
	    tm.tm_year + 1900 < 1970 || tm.tm_year + 1900 > 9999)
		return -EINVAL;
	/* The compiler cannot see the fields' ranges: print wide, copy. */
	if (snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, nsec) != AUDIT_TS_LEN)
		return -EINVAL;
	memcpy(out, tmp, AUDIT_TS_LEN + 1);
	return 0;
}

/* The fields every record has, in their order, up to and with path2. */
static int build_head(json_t *o, const struct audit_record *r)
{
	char ts[AUDIT_TS_LEN + 1];
	int rc;

	if ((rc = set_u64(o, "seq", r->seq)) ||
	    (rc = audit_format_ts(r->ts_sec, r->ts_nsec, ts)))
		return rc;
	if (json_object_set_new(o, "ts", json_string(ts)) ||
	    json_object_set_new(o, "op", json_string(op_names[r->op])))
		return -ENOMEM;
	if ((rc = set_int(o, "uid", r->uid)) ||
	    (rc = set_int(o, "gid", r->gid)) ||
	    (rc = set_int(o, "pid", r->pid)) ||
	    (rc = set_bytes(o, "comm", r->comm,
			    strnlen(r->comm, AUDIT_COMM_LEN))) ||
	    (rc = set_bytes(o, "path", r->path, r->path_len)))
		return rc;
	if (op_fields(r->op) & F_PATH2)
		return set_bytes(o, "path2", r->path2, r->path2_len);
	return 0;
}

static int build_tail(json_t *o, const struct audit_record *r)
{
	unsigned f = op_fields(r->op);
	int rc = 0;

	if ((f & F_REQ) && (unsigned)r->req >= AUDIT_OP_COUNT)
		return -EINVAL;
	if ((f & F_REQ) &&
	    json_object_set_new(o, "req", json_string(op_names[r->req])))
		return -ENOMEM;
	if ((f & F_RULE) && (rc = set_bytes(o, "rule", r->rule,
					     r->rule ? strlen(r->rule) : 0)))
		return rc;
	if (((f & F_OFF) && (rc = set_u64(o, "off", r->off))) ||
	    ((f & F_LEN) && (rc = set_u64(o, "len", r->len))) ||
	    ((f & F_SHA) &&
	     (rc = set_hex(o, "sha256", r->sha256, AUDIT_HASH_LEN))) ||
	    ((f & F_BLOCK) && (rc = set_u64(o, "block", r->block))) ||
	    ((f & F_VERSION) && (rc = set_int(o, "version", r->version))) ||
	    (rc = set_int(o, "result", r->result)) ||
	    ((f & F_SIG) &&
	     (rc = set_hex(o, "sig", r->sig, CRYPTO_ED25519_SIG_LEN))))
		return rc;
	return set_hex(o, "prev", r->prev, AUDIT_HASH_LEN);
}

int audit_record_encode(struct audit_record *r, char *buf, size_t cap,
			size_t *len)
{
	char hex[2 * AUDIT_HASH_LEN + 1];
	json_t *o;
	size_t n;
	int rc;

	if ((unsigned)r->op >= AUDIT_OP_COUNT)
		return -EINVAL;
	o = json_object();
	if (!o)
		return -ENOMEM;
	if ((rc = build_head(o, r)) || (rc = build_tail(o, r)))
		goto out;
	n = json_dumpb(o, buf, cap, DUMP_FLAGS);
	/* Room for the hash field and the newline in place of the '}'. */
	rc = -ENOSPC;
	if (n == 0 || n > cap ||
	    n - 1 + strlen(HASH_KEY) + sizeof(hex) - 1 + 3 > cap)
		goto out;
	n--;
	rc = crypto_sha256(buf, n, r->hash);
	if (rc)
		goto out;
	audit_hex(r->hash, AUDIT_HASH_LEN, hex);
	memcpy(buf + n, HASH_KEY, strlen(HASH_KEY));
	n += strlen(HASH_KEY);
	memcpy(buf + n, hex, 2 * AUDIT_HASH_LEN);
	n += 2 * AUDIT_HASH_LEN;
	memcpy(buf + n, "\"}\n", 3);
	*len = n + 3;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

void audit_record_release(struct audit_record *r)
{
	if (!r || !r->owned)
		return;
	free((char *)r->path);
	free((char *)r->path2);
	free((char *)r->rule);
	r->path = r->path2 = r->rule = NULL;
	r->owned = false;
}

static int utf8_copy(const char *s, size_t n, char **out, size_t *out_len)
{
	char *p = malloc(n + 1);

	if (!p)
		return -ENOMEM;
	memcpy(p, s, n);
	p[n] = '\0';
	*out = p;
	*out_len = n;
	return 0;
}

/* A byte string field, plain or _b64, the one the op carries. */
int audit_take_bytes(json_t *v, bool b64, char **out, size_t *out_len)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);

	if (!s)
		return -EINVAL;
	if (!b64)
		return utf8_copy(s, n, out, out_len);
	if (b64_decode(s, n, out, out_len))
		return -EINVAL;
	if (memchr(*out, 0, *out_len)) {
		free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

void audit_checkpoint_msg(uint64_t seq, const uint8_t head[AUDIT_HASH_LEN],
			  uint8_t msg[AUDIT_SIG_MSG_LEN])
{
	static const char label[] = "phifs-audit-checkpoint-1";

	memcpy(msg, label, 24);	/* its 24 characters, no NUL */
	for (int i = 0; i < 8; i++)
		msg[24 + i] = (uint8_t)(seq >> (56 - 8 * i));
	memcpy(msg + 32, head, AUDIT_HASH_LEN);
}

void audit_chain_init(struct audit_chain *c)
{
	memset(c, 0, sizeof(*c));
}

int audit_chain_append(struct audit_chain *c, struct audit_record *r,
		       char *buf, size_t cap, size_t *len)
{
	int rc;

	r->seq = c->seq + 1;
	memcpy(r->prev, c->head, AUDIT_HASH_LEN);
	rc = audit_record_encode(r, buf, cap, len);
	if (rc)
		return rc;
	c->seq = r->seq;
	memcpy(c->head, r->hash, AUDIT_HASH_LEN);
	return 0;
}

int audit_chain_checkpoint(struct audit_chain *c, struct audit_record *r,
			   const struct crypto_key *key, char *buf,
			   size_t cap, size_t *len)
{
	uint8_t msg[AUDIT_SIG_MSG_LEN];
	struct audit_record ck = *r;
	int rc;

	/* A copy: r's strings may be its own, and stay so. */
	ck.owned = false;
	ck.op = AUDIT_CHECKPOINT;
	ck.path = NULL;
	ck.path_len = 0;
	ck.result = 0;
	audit_checkpoint_msg(c->seq + 1, c->head, msg);
	rc = crypto_ed25519_sign(key, msg, sizeof(msg), ck.sig);
	if (!rc)
		rc = audit_chain_append(c, &ck, buf, cap, len);
	if (rc)
		return rc;
	r->op = AUDIT_CHECKPOINT;
	r->seq = ck.seq;
	r->result = 0;
	memcpy(r->sig, ck.sig, sizeof(r->sig));
	memcpy(r->prev, ck.prev, sizeof(r->prev));
	memcpy(r->hash, ck.hash, sizeof(r->hash));
	return 0;
}

void audit_segment_name(uint64_t first_seq, char *name)
{
	snprintf(name, AUDIT_SEG_NAME_LEN + 1,
		 AUDIT_SEG_PREFIX "%020" PRIu64 AUDIT_SEG_SUFFIX, first_seq);
}

int audit_segment_parse_name(const char *name, uint64_t *first_seq)
{
	uint64_t v = 0;
	const char *d = name + strlen(AUDIT_SEG_PREFIX);

	if (strlen(name) != AUDIT_SEG_NAME_LEN ||
	    strncmp(name, AUDIT_SEG_PREFIX, strlen(AUDIT_SEG_PREFIX)) ||
	    strcmp(d + 20, AUDIT_SEG_SUFFIX))
		return -EINVAL;
	for (int i = 0; i < 20; i++) {
		if (d[i] < '0' || d[i] > '9' ||
		    v > (UINT64_MAX - (uint64_t)(d[i] - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(d[i] - '0');
	}
	*first_seq = v;
	return 0;
}

void audit_pub_format(const uint8_t pub[CRYPTO_ED25519_PUB_LEN],
		      char text[AUDIT_PUB_TEXT_LEN + 1])
{
	memcpy(text, "ed25519 ", 8);
	audit_hex(pub, CRYPTO_ED25519_PUB_LEN, text + 8);
	text[8 + 64] = '\n';
	text[8 + 64 + 1] = '\0';
}

int audit_pub_parse(const char *text, size_t len,
		    uint8_t pub[CRYPTO_ED25519_PUB_LEN])
{
	if (len == AUDIT_PUB_TEXT_LEN && text[len - 1] == '\n')
		len--;
	if (len != AUDIT_PUB_TEXT_LEN - 1 || memcmp(text, "ed25519 ", 8))
		return -EINVAL;
	return audit_unhex(text + 8, 64, pub, CRYPTO_ED25519_PUB_LEN);
}

int audit_pub_fingerprint(const uint8_t pub[CRYPTO_ED25519_PUB_LEN],
			  char fpr[AUDIT_FPR_LEN + 1])
{
	uint8_t h[CRYPTO_SHA256_LEN];
	int rc = crypto_sha256(pub, CRYPTO_ED25519_PUB_LEN, h);

	if (rc)
		return rc;
	audit_hex(h, AUDIT_FPR_LEN / 2, fpr);
	return 0;
}
