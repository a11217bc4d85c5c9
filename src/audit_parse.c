/*
 * audit_parse.c — one log line back into a record, strictly: the op's
 * fields and no others, every value in range, and the line exactly as
 * audit_record_encode() would write it (docs/AUDIT.md, "Records").  Pure;
 * knows nothing of segments or of the chain around the line.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_impl.h"

enum field {
	K_SEQ, K_TS, K_OP, K_UID, K_GID, K_PID, K_COMM, K_COMM64, K_PATH,
	K_PATH64, K_PATH2, K_PATH264, K_REQ, K_RULE, K_RULE64, K_OFF, K_LEN,
	K_SHA, K_BLOCK, K_VERSION, K_RESULT, K_SIG, K_PREV, K_HASH,
};

#define F_COMMON (1u << 16)

static const struct {
	const char *name;
	unsigned flag;		/* F_* of the op, or F_COMMON */
	unsigned slot;		/* plain and _b64 share one */
} fields[] = {
	[K_SEQ] = { "seq", F_COMMON, 0 }, [K_TS] = { "ts", F_COMMON, 1 },
	[K_OP] = { "op", F_COMMON, 2 }, [K_UID] = { "uid", F_COMMON, 3 },
	[K_GID] = { "gid", F_COMMON, 4 }, [K_PID] = { "pid", F_COMMON, 5 },
	[K_COMM] = { "comm", F_COMMON, 6 },
	[K_COMM64] = { "comm_b64", F_COMMON, 6 },
	[K_PATH] = { "path", F_COMMON, 7 },
	[K_PATH64] = { "path_b64", F_COMMON, 7 },
	[K_PATH2] = { "path2", F_PATH2, 8 },
	[K_PATH264] = { "path2_b64", F_PATH2, 8 },
	[K_REQ] = { "req", F_REQ, 9 }, [K_RULE] = { "rule", F_RULE, 10 },
	[K_RULE64] = { "rule_b64", F_RULE, 10 },
	[K_OFF] = { "off", F_OFF, 11 }, [K_LEN] = { "len", F_LEN, 12 },
	[K_SHA] = { "sha256", F_SHA, 13 },
	[K_BLOCK] = { "block", F_BLOCK, 14 },
	[K_VERSION] = { "version", F_VERSION, 15 },
	[K_RESULT] = { "result", F_COMMON, 16 },
	[K_SIG] = { "sig", F_SIG, 17 }, [K_PREV] = { "prev", F_COMMON, 18 },
	[K_HASH] = { "hash", F_COMMON, 19 },
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static int field_of(const char *name)
{
	for (unsigned i = 0; i < NFIELDS; i++)
		if (!strcmp(fields[i].name, name))
			return (int)i;
	return -1;
}

static int get_int(json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
	json_int_t i;

	if (!json_is_integer(v))
		return -EINVAL;
	i = json_integer_value(v);
	if (i < lo || i > hi)
		return -EINVAL;
	*out = i;
	return 0;
}

static int get_ts(json_t *v, struct audit_record *r)
{
	const char *s = json_string_value(v);
	struct tm tm = { 0 };
	unsigned nsec;
	time_t t;

	if (!s || json_string_length(v) != AUDIT_TS_LEN ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%9u", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
		   &nsec) != 7 || nsec >= 1000000000u)
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	/* A 13th month normalises here; the re-encoding catches it. */
	r->ts_sec = t;
	r->ts_nsec = nsec;
	return 0;
}

static int get_op(json_t *v, enum audit_op *op)
{
	const char *s = json_string_value(v);

	return s ? audit_op_parse(s, op) : -EINVAL;
}

static int get_hex(json_t *v, uint8_t *p, size_t n)
{
	const char *s = json_string_value(v);

	return s ? audit_unhex(s, json_string_length(v), p, n) : -EINVAL;
}

static int get_comm(json_t *v, bool b64, struct audit_record *r)
{
	char *s;
	size_t n;
	int rc = audit_take_bytes(v, b64, &s, &n);

	if (rc)
		return rc;
	if (n >= AUDIT_COMM_LEN) {
		free(s);
		return -EINVAL;
	}
	memcpy(r->comm, s, n + 1);
	free(s);
	return 0;
}

static int get_str(json_t *v, bool b64, const char **out, size_t *len)
{
	char *s;
	size_t n;
	int rc = audit_take_bytes(v, b64, &s, &n);

	if (rc)
		return rc;
	*out = s;
	if (len)
		*len = n;
	return 0;
}

/* One field's value into r; -EINVAL if it has the wrong type or range. */
static int take(enum field k, json_t *v, struct audit_record *r)
{
	int64_t i = 0;
	int rc = 0;

	switch (k) {
	case K_SEQ: rc = get_int(v, 1, INT64_MAX, &i); r->seq = (uint64_t)i; break;
	case K_TS: return get_ts(v, r);
	case K_OP: return 0;	/* read first */
	case K_UID: rc = get_int(v, 0, UINT32_MAX, &i); r->uid = (uint32_t)i; break;
	case K_GID: rc = get_int(v, 0, UINT32_MAX, &i); r->gid = (uint32_t)i; break;
	case K_PID: rc = get_int(v, INT32_MIN, INT32_MAX, &i); r->pid = (int32_t)i; break;
	case K_COMM: case K_COMM64: return get_comm(v, k == K_COMM64, r);
	case K_PATH: case K_PATH64:
		return get_str(v, k == K_PATH64, &r->path, &r->path_len);
	case K_PATH2: case K_PATH264:
		return get_str(v, k == K_PATH264, &r->path2, &r->path2_len);
	case K_REQ: return get_op(v, &r->req);
	case K_RULE: case K_RULE64: return get_str(v, k == K_RULE64, &r->rule, NULL);
	case K_OFF: rc = get_int(v, 0, INT64_MAX, &i); r->off = (uint64_t)i; break;
	case K_LEN: rc = get_int(v, 0, INT64_MAX, &i); r->len = (uint64_t)i; break;
	case K_SHA: return get_hex(v, r->sha256, AUDIT_HASH_LEN);
	case K_BLOCK: rc = get_int(v, 0, INT64_MAX, &i); r->block = (uint64_t)i; break;
	case K_VERSION: rc = get_int(v, 0, UINT32_MAX, &i); r->version = (uint32_t)i; break;
	case K_RESULT: rc = get_int(v, INT64_MIN, INT64_MAX, &r->result); break;
	case K_SIG: return get_hex(v, r->sig, CRYPTO_ED25519_SIG_LEN);
	case K_PREV: return get_hex(v, r->prev, AUDIT_HASH_LEN);
	case K_HASH: return get_hex(v, r->hash, AUDIT_HASH_LEN);
	}
	return rc;
}

/* A field name for a message: one line of printable ASCII, short. */
static void printable(const char *key, char out[41])
{
	size_t i;

	for (i = 0; key[i] && i < 40; i++)
		out[i] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
	out[i] = '\0';
}

static int take_fields(json_t *o, struct audit_record *r, char *err,
		       size_t err_len)
{
	char name[41];
	unsigned allowed, seen = 0, want = 0;
	const char *key;
	json_t *v;

	if (get_op(json_object_get(o, "op"), &r->op)) {
		snprintf(err, err_len, "no known op");
		return -EBADMSG;
	}
	allowed = F_COMMON | audit_op_fields(r->op);
	json_object_foreach(o, key, v) {
		int k = field_of(key);

		if (k < 0 || !(fields[k].flag & allowed)) {
			printable(key, name);
			snprintf(err, err_len, "unknown field '%s' for op %s",
				 name, audit_op_name(r->op));
			return -EBADMSG;
		}
		if (seen & 1u << fields[k].slot) {
			snprintf(err, err_len, "field '%s' twice", key);
			return -EBADMSG;
		}
		seen |= 1u << fields[k].slot;
		if (take((enum field)k, v, r)) {
			snprintf(err, err_len, "bad value of field '%s'", key);
			return -EBADMSG;
		}
	}
	for (unsigned i = 0; i < NFIELDS; i++)
		if (fields[i].flag & allowed)
			want |= 1u << fields[i].slot;
	if (seen != want) {
		snprintf(err, err_len, "a field of op %s is missing",
			 audit_op_name(r->op));
		return -EBADMSG;
	}
	return 0;
}

/* The line must be the one encoding of what it says, then its hash. */
static int check_canonical(const char *line, size_t len,
			   struct audit_record *r, char *err, size_t err_len)
{
	uint8_t claimed[AUDIT_HASH_LEN];
	size_t n;
	/* Room for this line and its newline only: a longer encoding is
	 * not this line anyway (-ENOSPC), and a small buffer is cheap. */
	char *buf = malloc(len + 2);
	int rc = -ENOMEM;

	if (!buf)
		goto out;
	memcpy(claimed, r->hash, AUDIT_HASH_LEN);
	rc = audit_record_encode(r, buf, len + 2, &n);
	if (rc == 0 && (n != len + 1 || memcmp(buf, line, len - 66) ||
			memcmp(buf + len - 2, line + len - 2, 2)))
		rc = -EBADMSG;
	if (rc) {
		snprintf(err, err_len, "not in canonical form");
		rc = -EBADMSG;
		goto out;
	}
	if (memcmp(claimed, r->hash, AUDIT_HASH_LEN)) {
		snprintf(err, err_len, "bad hash");
		rc = -EBADMSG;
	}
out:
	free(buf);
	return rc;
}

int audit_record_parse(const char *line, size_t len, struct audit_record *r,
		       char *err, size_t err_len)
{
	struct audit_record t;
	json_error_t je;
	json_t *o = NULL;
	int rc = -EBADMSG;

	memset(&t, 0, sizeof(t));
	t.owned = true;
	if (len > AUDIT_MAX_LINE) {
		snprintf(err, err_len, "line longer than %d bytes",
			 AUDIT_MAX_LINE);
		goto out;
	}
	/* jansson would stop at a NUL; a line must not hold one at all. */
	if (memchr(line, 0, len) ||
	    !(o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je)) ||
	    !json_is_object(o)) {
		snprintf(err, err_len, "not a JSON object");
		goto out;
	}
	if ((rc = take_fields(o, &t, err, err_len)) ||
	    (rc = check_canonical(line, len, &t, err, err_len)))
		goto out;
	*r = t;
	t.owned = false;	/* transferred */
out:
	json_decref(o);
	audit_record_release(&t);
	return rc;
}
