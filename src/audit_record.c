/*
 * audit_record.c — one integrity-log record as one canonical JSON line and
 * back (docs/AUDIT.md, "Records").  Pure: no I/O, no threads; knows nothing
 * of segments, the writer or FUSE.  The canonical form is written by hand
 * (it is what jansson writes with JSON_COMPACT | JSON_PRESERVE_ORDER for
 * the fields in the one fixed order below, and tests/test_audit.c holds
 * jansson to it), so a line costs no allocation, and audit_parse.c scans
 * exactly these bytes: one record has one line, and one line one record.
 */
#include "phifs/audit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_impl.h"

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

/* "key":"escaped" when the bytes are UTF-8, else "key_b64":"base64". */
static void put_bytes(struct audit_out *o, const char *key, const char *s,
		      size_t n)
{
	if (!s)
		s = "", n = 0;
	audit_out_bytes(o, ",\"", 2);
	audit_out_bytes(o, key, strlen(key));
	if (audit_utf8_valid(s, n)) {
		audit_out_bytes(o, "\":\"", 3);
		audit_out_escaped(o, s, n);
	} else {
		audit_out_bytes(o, "_b64\":\"", 7);
		audit_out_b64(o, s, n);
	}
	audit_out_bytes(o, "\"", 1);
}

/* ,"key": then the value's first byte is the caller's. */
static void put_key(struct audit_out *o, const char *key)
{
	audit_out_bytes(o, ",\"", 2);
	audit_out_bytes(o, key, strlen(key));
	audit_out_bytes(o, "\":", 2);
}

static void put_i64(struct audit_out *o, const char *key, int64_t v)
{
	put_key(o, key);
	audit_out_i64(o, v);
}

static void put_hex(struct audit_out *o, const char *key, const uint8_t *p,
		    size_t n)
{
	put_key(o, key);
	audit_out_bytes(o, "\"", 1);
	audit_out_hex(o, p, n);
	audit_out_bytes(o, "\"", 1);
}

static void put_op(struct audit_out *o, const char *key, enum audit_op op)
{
	put_key(o, key);
	audit_out_bytes(o, "\"", 1);
	audit_out_bytes(o, op_names[op], strlen(op_names[op]));
	audit_out_bytes(o, "\"", 1);
}

/* What the encoder refuses rather than write a line no parser takes. */
static int check_values(const struct audit_record *r)
{
	unsigned f;

	if ((unsigned)r->op >= AUDIT_OP_COUNT)
		return -EINVAL;
	f = op_fields(r->op);
	if (r->seq > INT64_MAX || ((f & F_OFF) && r->off > INT64_MAX) ||
	    ((f & F_LEN) && r->len > INT64_MAX) ||
	    ((f & F_BLOCK) && r->block > INT64_MAX) ||
	    ((f & F_REQ) && (unsigned)r->req >= AUDIT_OP_COUNT))
		return -EINVAL;
	if ((r->path && memchr(r->path, 0, r->path_len)) ||
	    ((f & F_PATH2) && r->path2 && memchr(r->path2, 0, r->path2_len)))
		return -EINVAL;
	return 0;
}

/* The fields every record has, in their order, up to and with path. */
static void put_head(struct audit_out *o, const struct audit_record *r,
		     const char ts[AUDIT_TS_LEN + 1])
{
	audit_out_bytes(o, "{\"seq\":", 7);
	audit_out_u64(o, r->seq);
	audit_out_bytes(o, ",\"ts\":\"", 7);
	audit_out_bytes(o, ts, AUDIT_TS_LEN);
	audit_out_bytes(o, "\"", 1);
	put_op(o, "op", r->op);
	put_i64(o, "uid", r->uid);
	put_i64(o, "gid", r->gid);
	put_i64(o, "pid", r->pid);
	put_bytes(o, "comm", r->comm, strnlen(r->comm, AUDIT_COMM_LEN));
	put_bytes(o, "path", r->path, r->path_len);
}

/* The rest, up to and with prev: the body the hash covers ends there. */
static void put_tail(struct audit_out *o, const struct audit_record *r)
{
	unsigned f = op_fields(r->op);

	if (f & F_PATH2)
		put_bytes(o, "path2", r->path2, r->path2_len);
	if (f & F_REQ)
		put_op(o, "req", r->req);
	if (f & F_RULE)
		put_bytes(o, "rule", r->rule, r->rule ? strlen(r->rule) : 0);
	if (f & F_OFF)
		put_i64(o, "off", (int64_t)r->off);
	if (f & F_LEN)
		put_i64(o, "len", (int64_t)r->len);
	if (f & F_SHA)
		put_hex(o, "sha256", r->sha256, AUDIT_HASH_LEN);
	if (f & F_BLOCK)
		put_i64(o, "block", (int64_t)r->block);
	if (f & F_VERSION)
		put_i64(o, "version", r->version);
	put_i64(o, "result", r->result);
	if (f & F_SIG)
		put_hex(o, "sig", r->sig, CRYPTO_ED25519_SIG_LEN);
	put_hex(o, "prev", r->prev, AUDIT_HASH_LEN);
}

int audit_record_encode(struct audit_record *r, char *buf, size_t cap,
			size_t *len)
{
	struct audit_out o = { buf, buf + cap, false };
	char ts[AUDIT_TS_LEN + 1];
	size_t body;
	int rc;

	if ((rc = check_values(r)) ||
	    (rc = audit_format_ts(r->ts_sec, r->ts_nsec, ts)))
		return rc;
	put_head(&o, r, ts);
	put_tail(&o, r);
	body = (size_t)(o.p - buf);
	audit_out_bytes(&o, HASH_KEY, strlen(HASH_KEY));
	if (o.full || (size_t)(o.end - o.p) < 2 * AUDIT_HASH_LEN + 3)
		return -ENOSPC;
	if ((rc = crypto_sha256(buf, body, r->hash)))
		return rc;
	audit_out_hex(&o, r->hash, AUDIT_HASH_LEN);
	audit_out_bytes(&o, "\"}\n", 3);
	*len = (size_t)(o.p - buf);
	return 0;
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
