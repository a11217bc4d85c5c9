/*
 * audit_parse.c — one log line back into a record, strictly: a scanner
 * that accepts exactly the bytes audit_record_encode() writes (the op's
 * fields and no others, in their order, every value in range and in its
 * one spelling), then one SHA-256 of the body against the line's hash
 * (docs/AUDIT.md, "Records").  No JSON library and no allocation per
 * line: being strict is what makes it fast.  Pure; knows nothing of
 * segments or of the chain around the line.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_impl.h"

#define HASH_KEY ",\"hash\":\""
/* ,"hash":" 64 hex "} */
#define HASH_TAIL (9 + 2 * AUDIT_HASH_LEN + 2)

enum field {
	K_SEQ, K_TS, K_OP, K_UID, K_GID, K_PID, K_COMM, K_PATH, K_PATH2,
	K_REQ, K_RULE, K_OFF, K_LEN, K_SHA, K_BLOCK, K_VERSION, K_RESULT,
	K_SIG, K_PREV, K_HASH, K_COUNT
};

#define F_COMMON (1u << 16)

/* In the line's order; a byte string may be spelled name_b64 instead. */
static const struct {
	const char *name;
	unsigned flag;		/* F_* of the op, or F_COMMON */
	bool bytes;
} fields[K_COUNT] = {
	[K_SEQ] = { "seq", F_COMMON, false },
	[K_TS] = { "ts", F_COMMON, false },
	[K_OP] = { "op", F_COMMON, false },
	[K_UID] = { "uid", F_COMMON, false },
	[K_GID] = { "gid", F_COMMON, false },
	[K_PID] = { "pid", F_COMMON, false },
	[K_COMM] = { "comm", F_COMMON, true },
	[K_PATH] = { "path", F_COMMON, true },
	[K_PATH2] = { "path2", F_PATH2, true },
	[K_REQ] = { "req", F_REQ, false },
	[K_RULE] = { "rule", F_RULE, true },
	[K_OFF] = { "off", F_OFF, false },
	[K_LEN] = { "len", F_LEN, false },
	[K_SHA] = { "sha256", F_SHA, false },
	[K_BLOCK] = { "block", F_BLOCK, false },
	[K_VERSION] = { "version", F_VERSION, false },
	[K_RESULT] = { "result", F_COMMON, false },
	[K_SIG] = { "sig", F_SIG, false },
	[K_PREV] = { "prev", F_COMMON, false },
	[K_HASH] = { "hash", F_COMMON, false },
};

struct scan {
	const char *p, *end;	/* end: where ,"hash":" must start */
	const char *line_end;
	struct audit_record *r;
	char *scratch;		/* where decoded strings go */
	unsigned allowed;	/* F_* of the op; all before op is read */
	bool op_known;
	char *err;
	size_t err_len;
};

static int bad(struct scan *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(struct scan *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, s->err_len, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static int not_canonical(struct scan *s)
{
	return bad(s, "not in canonical form");
}

static bool take(struct scan *s, const char *lit, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n))
		return false;
	s->p += n;
	return true;
}

/*
 * A key as a message shows it: its JSON escapes undone loosely, and what
 * is not printable ASCII as '?', so the message stays one short line.
 */
static void key_text(const char *p, const char *end, char out[41])
{
	size_t o = 0;

	while (p < end && *p != '"' && o < 40) {
		char c = *p++;

		if (c == '\\' && p < end) {
			c = *p++;
			if (c == 'u') {
				p += end - p < 4 ? end - p : 4;
				c = '?';
			} else if (c != '"' && c != '\\' && c != '/') {
				c = '?';
			}
		}
		out[o++] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	out[o] = '\0';
}

/* The field a key names, -1 for none; *b64 when spelled name_b64. */
static int field_named(const char *k, bool *b64)
{
	size_t n = strlen(k);

	*b64 = n > 4 && !strcmp(k + n - 4, "_b64");
	for (int i = 0; i < K_COUNT; i++) {
		size_t m = strlen(fields[i].name);

		if (m == (*b64 ? n - 4 : n) && !memcmp(k, fields[i].name, m) &&
		    (!*b64 || fields[i].bytes))
			return i;
	}
	return -1;
}

/* Why the key at s->p is not field `want`: the clearest of the faults. */
static int wrong_key(struct scan *s, enum field want)
{
	const char *at = s->p + 1;
	char name[41];
	bool b64;
	int k;

	if (at >= s->line_end || *at != '"' ||
	    *s->p != (want == K_SEQ ? '{' : ','))
		return not_canonical(s);
	key_text(at + 1, s->line_end, name);
	k = field_named(name, &b64);
	if (k < 0 || !(fields[k].flag & s->allowed))
		return s->op_known ?
		       bad(s, "unknown field '%s' for op %s", name,
			   audit_op_name(s->r->op)) :
		       bad(s, "unknown field '%s'", name);
	if (k < (int)want)
		return bad(s, "field '%s' twice", name);
	if (k == (int)want)
		return not_canonical(s);
	return bad(s, "field '%s' missing or out of order", fields[want].name);
}

/* ,"name": (or {"seq":); false, the fault said, if not there. */
static int key(struct scan *s, enum field k)
{
	const char *name = fields[k].name;
	size_t n = strlen(name);

	if (s->end - s->p > (ptrdiff_t)n + 4 && s->p[0] == (k ? ',' : '{') &&
	    s->p[1] == '"' && !memcmp(s->p + 2, name, n) &&
	    s->p[n + 2] == '"' && s->p[n + 3] == ':') {
		s->p += n + 4;
		return 0;
	}
	return wrong_key(s, k);
}

/* A decimal integer in its one spelling, within lo..hi. */
static int integer(struct scan *s, enum field k, int64_t lo, int64_t hi,
		   int64_t *out)
{
	const char *p = s->p;
	bool neg = p < s->end && *p == '-';
	uint64_t v = 0, lim;
	const char *d0;

	p += neg;
	d0 = p;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	while (p < s->end && *p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p++ - '0');

		if (v > (lim - d) / 10)
			return bad(s, "bad value of field '%s'",
				   fields[k].name);
		v = v * 10 + d;
	}
	/* No digits, a leading zero, -0, a fraction or an exponent. */
	if (p == d0 || (*d0 == '0' && (p - d0 > 1 || neg)) ||
	    (p < s->end && strchr(".eE+-", *p)))
		return bad(s, "bad value of field '%s'", fields[k].name);
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	if (*out < lo || *out > hi)
		return bad(s, "bad value of field '%s'", fields[k].name);
	s->p = p;
	return 0;
}

static int uint_field(struct scan *s, enum field k, int64_t lo, int64_t hi,
		      uint64_t *out)
{
	int64_t v;
	int rc = key(s, k);

	if (!rc && !(rc = integer(s, k, lo, hi, &v)))
		*out = (uint64_t)v;
	return rc;
}

/* "...": exactly n lower-case hex digits. */
static int hex_value(struct scan *s, enum field k, uint8_t *out, size_t n)
{
	if (s->end - s->p < (ptrdiff_t)(2 * n + 2) || s->p[0] != '"' ||
	    s->p[2 * n + 1] != '"' || audit_unhex(s->p + 1, 2 * n, out, n))
		return bad(s, "bad value of field '%s'", fields[k].name);
	s->p += 2 * n + 2;
	return 0;
}

static int hex_field(struct scan *s, enum field k, uint8_t *out, size_t n)
{
	int rc = key(s, k);

	return rc ? rc : hex_value(s, k, out, n);
}

/* "name": one of the ops. */
static int op_field(struct scan *s, enum field k, enum audit_op *op)
{
	const char *q;
	int rc = key(s, k);

	if (rc)
		return rc;
	q = s->p < s->end && *s->p == '"' ?
	    memchr(s->p + 1, '"', (size_t)(s->end - s->p - 1)) : NULL;
	for (unsigned i = 0; q && i < AUDIT_OP_COUNT; i++) {
		const char *name = audit_op_name((enum audit_op)i);

		if ((size_t)(q - s->p - 1) == strlen(name) &&
		    !memcmp(s->p + 1, name, strlen(name))) {
			*op = (enum audit_op)i;
			s->p = q + 1;
			return 0;
		}
	}
	return k == K_OP ? bad(s, "no known op") :
	       bad(s, "bad value of field '%s'", fields[k].name);
}

static int ts_field(struct scan *s)
{
	int rc = key(s, K_TS);

	if (rc)
		return rc;
	if (s->end - s->p < AUDIT_TS_LEN + 2 || s->p[0] != '"' ||
	    s->p[AUDIT_TS_LEN + 1] != '"')
		return bad(s, "bad value of field 'ts'");
	rc = audit_parse_ts(s->p + 1, &s->r->ts_sec, &s->r->ts_nsec);
	if (rc == -ERANGE)
		return not_canonical(s);
	if (rc)
		return bad(s, "bad value of field 'ts'");
	s->p += AUDIT_TS_LEN + 2;
	return 0;
}

/* The escape at p (after its '\\') as the one byte it stands for. */
static int unescape(const char *p, const char *end, char *c, size_t *used)
{
	static const char from[] = "\"\\bfnrt", to[] = "\"\\\b\f\n\r\t";
	const char *at = p < end ? strchr(from, *p) : NULL;
	int v;

	if (at && *at) {
		*c = to[at - from];
		*used = 1;
		return 0;
	}
	/* \u00XX, upper-case, for a byte below 0x20 with no short form. */
	if (end - p < 5 || memcmp(p, "u00", 3) || (p[3] != '0' && p[3] != '1'))
		return -EINVAL;
	v = p[4] >= '0' && p[4] <= '9' ? p[4] - '0' :
	    p[4] >= 'A' && p[4] <= 'F' ? p[4] - 'A' + 10 : -1;
	if (v < 0)
		return -EINVAL;
	*c = (char)((p[3] - '0') << 4 | v);
	if (*c == 0 || strchr("\b\f\n\r\t", *c))
		return -EINVAL;
	*used = 5;
	return 0;
}

/* The inside of a plain string into out: escapes undone, UTF-8 checked. */
static int plain_string(struct scan *s, char *out, size_t *n)
{
	const char *p = s->p, *end = s->end;
	size_t o = 0;

	while (p < end) {
		unsigned char c = (unsigned char)*p;
		size_t k;

		if (c == '"') {
			s->p = p + 1;
			*n = o;
			return 0;
		}
		if (c >= 0x20 && c < 0x80 && c != '\\') {
			out[o++] = *p++;
			continue;
		}
		if (c < 0x20)
			return -EINVAL;
		if (c == '\\') {
			if (unescape(p + 1, end, &out[o++], &k))
				return -EINVAL;
			p += 1 + k;
			continue;
		}
		k = audit_utf8_seq((const unsigned char *)p, (size_t)(end - p));
		if (k == 0)
			return -EINVAL;
		memcpy(out + o, p, k);
		o += k;
		p += k;
	}
	return -EINVAL;
}

/* base64 of bytes that are not UTF-8 (else the plain spelling is due). */
static int b64_string(struct scan *s, char *out, size_t *n)
{
	const char *q = memchr(s->p, '"', (size_t)(s->end - s->p));

	if (!q || audit_unb64(s->p, (size_t)(q - s->p), out, n) ||
	    memchr(out, 0, *n) || audit_utf8_valid(out, *n))
		return -EINVAL;
	s->p = q + 1;
	return 0;
}

/*
 * "name":"..." or "name_b64":"...", decoded into scratch and NUL-ended;
 * the scratch moves on when `keep`.
 */
static int bytes_field(struct scan *s, enum field k, bool keep,
		       const char **out, size_t *n)
{
	const char *name = fields[k].name;
	size_t m = strlen(name);
	bool b64 = false;
	int rc;

	if (s->end - s->p > (ptrdiff_t)m + 9 && s->p[0] == ',' &&
	    s->p[1] == '"' && !memcmp(s->p + 2, name, m) &&
	    !memcmp(s->p + 2 + m, "_b64\":\"", 7)) {
		s->p += m + 9;
		b64 = true;
	} else if ((rc = key(s, k))) {
		return rc;
	} else if (!take(s, "\"", 1)) {
		return bad(s, "bad value of field '%s'", name);
	}
	if (b64 ? b64_string(s, s->scratch, n) :
		  plain_string(s, s->scratch, n))
		return not_canonical(s);
	s->scratch[*n] = '\0';
	*out = s->scratch;
	if (keep)
		s->scratch += *n + 1;
	return 0;
}

static int comm_field(struct scan *s)
{
	const char *c;
	size_t n;
	int rc = bytes_field(s, K_COMM, false, &c, &n);

	if (rc)
		return rc;
	if (n >= AUDIT_COMM_LEN)
		return bad(s, "bad value of field 'comm'");
	memcpy(s->r->comm, c, n + 1);
	return 0;
}

/* Fields 1..8: every record has them, and the op says what follows. */
static int scan_head(struct scan *s)
{
	struct audit_record *r = s->r;
	int64_t v;
	int rc;

	if ((rc = uint_field(s, K_SEQ, 1, INT64_MAX, &r->seq)) ||
	    (rc = ts_field(s)) || (rc = op_field(s, K_OP, &r->op)))
		return rc;
	s->op_known = true;
	s->allowed = F_COMMON | audit_op_fields(r->op);
	if ((rc = key(s, K_UID)) ||
	    (rc = integer(s, K_UID, 0, UINT32_MAX, &v)))
		return rc;
	r->uid = (uint32_t)v;
	if ((rc = key(s, K_GID)) ||
	    (rc = integer(s, K_GID, 0, UINT32_MAX, &v)))
		return rc;
	r->gid = (uint32_t)v;
	if ((rc = key(s, K_PID)) ||
	    (rc = integer(s, K_PID, INT32_MIN, INT32_MAX, &v)))
		return rc;
	r->pid = (int32_t)v;
	if ((rc = comm_field(s)))
		return rc;
	return bytes_field(s, K_PATH, true, &r->path, &r->path_len);
}

/* Fields 9..19, those of the op only. */
static int scan_tail(struct scan *s)
{
	struct audit_record *r = s->r;
	unsigned f = audit_op_fields(r->op);
	uint64_t u;
	int64_t v;
	size_t n;
	int rc = 0;

	if ((f & F_PATH2) &&
	    (rc = bytes_field(s, K_PATH2, true, &r->path2, &r->path2_len)))
		return rc;
	if ((f & F_REQ) && (rc = op_field(s, K_REQ, &r->req)))
		return rc;
	if ((f & F_RULE) && (rc = bytes_field(s, K_RULE, true, &r->rule, &n)))
		return rc;
	if (((f & F_OFF) &&
	     (rc = uint_field(s, K_OFF, 0, INT64_MAX, &r->off))) ||
	    ((f & F_LEN) &&
	     (rc = uint_field(s, K_LEN, 0, INT64_MAX, &r->len))) ||
	    ((f & F_SHA) &&
	     (rc = hex_field(s, K_SHA, r->sha256, AUDIT_HASH_LEN))) ||
	    ((f & F_BLOCK) &&
	     (rc = uint_field(s, K_BLOCK, 0, INT64_MAX, &r->block))))
		return rc;
	if ((f & F_VERSION) &&
	    !(rc = uint_field(s, K_VERSION, 0, UINT32_MAX, &u)))
		r->version = (uint32_t)u;
	if (rc || (rc = key(s, K_RESULT)) ||
	    (rc = integer(s, K_RESULT, INT64_MIN, INT64_MAX, &v)))
		return rc;
	r->result = v;
	if ((f & F_SIG) &&
	    (rc = hex_field(s, K_SIG, r->sig, CRYPTO_ED25519_SIG_LEN)))
		return rc;
	return hex_field(s, K_PREV, r->prev, AUDIT_HASH_LEN);
}

static int body_hash(const char *p, size_t n, struct crypto_sha256_ctx *sha,
		     uint8_t out[AUDIT_HASH_LEN])
{
	int rc;

	if (!sha)
		return crypto_sha256(p, n, out);
	rc = crypto_sha256_update(sha, p, n);
	return rc ? rc : crypto_sha256_final(sha, out);
}

/* Where the line must end: ,"hash":" 64 hex digits "}. */
static int scan_end(struct scan *s, const char *line,
		    struct crypto_sha256_ctx *sha)
{
	uint8_t h[AUDIT_HASH_LEN];
	int rc;

	if (s->p != s->end)
		return s->p < s->end ? wrong_key(s, K_HASH) :
		       not_canonical(s);
	if (audit_unhex(s->end + 9, 2 * AUDIT_HASH_LEN, s->r->hash,
			AUDIT_HASH_LEN))
		return bad(s, "bad value of field 'hash'");
	rc = body_hash(line, (size_t)(s->end - line), sha, h);
	if (rc)
		return rc;
	if (memcmp(h, s->r->hash, AUDIT_HASH_LEN))
		return bad(s, "bad hash");
	return 0;
}

int audit_record_scan(const char *line, size_t len, struct audit_record *r,
		      char *scratch, struct crypto_sha256_ctx *sha,
		      char *err, size_t err_len)
{
	struct scan s = { .p = line, .line_end = line + len, .r = r,
			  .scratch = scratch, .allowed = ~0u, .err = err,
			  .err_len = err_len };
	int rc;

	memset(r, 0, sizeof(*r));
	if (len > AUDIT_MAX_LINE)
		return bad(&s, "line longer than %d bytes", AUDIT_MAX_LINE);
	if (len < HASH_TAIL + 2 || line[0] != '{' || line[len - 1] != '}' ||
	    memchr(line, 0, len))
		return bad(&s, "not a JSON object");
	s.end = line + len - HASH_TAIL;
	if (memcmp(s.end, HASH_KEY, 9) || line[len - 2] != '"') {
		/* Tell "no hash where due" from a field out of place. */
		const char *h = memmem(line, len, HASH_KEY, 9);

		s.end = h ? h : line + len;
		if ((rc = scan_head(&s)) || (rc = scan_tail(&s)))
			return rc;
		if (s.p < s.end)
			return wrong_key(&s, K_HASH);
		return h ? bad(&s, "bad value of field 'hash'") :
		       not_canonical(&s);
	}
	if ((rc = scan_head(&s)) || (rc = scan_tail(&s)))
		return rc;
	return scan_end(&s, line, sha);
}

/* A copy of n bytes and their NUL, or NULL for NULL. */
static int dup_string(const char *p, size_t n, const char **out)
{
	char *c;

	*out = NULL;
	if (!p)
		return 0;
	c = malloc(n + 1);
	if (!c)
		return -ENOMEM;
	memcpy(c, p, n + 1);
	*out = c;
	return 0;
}

int audit_record_parse(const char *line, size_t len, struct audit_record *r,
		       char *err, size_t err_len)
{
	struct audit_record t;
	const char *path, *path2, *rule;
	char *scratch = malloc(len + 1);
	int rc;

	if (!scratch)
		return -ENOMEM;
	rc = audit_record_scan(line, len, &t, scratch, NULL, err, err_len);
	if (rc)
		goto out;
	/* Each string its own copy: release frees them one by one. */
	path = t.path, path2 = t.path2, rule = t.rule;
	t.owned = true;
	t.path2 = t.rule = NULL;
	if ((rc = dup_string(path, t.path_len, &t.path)) ||
	    (rc = dup_string(path2, t.path2_len, &t.path2)) ||
	    (rc = dup_string(rule, rule ? strlen(rule) : 0, &t.rule))) {
		audit_record_release(&t);
		goto out;
	}
	*r = t;
out:
	free(scratch);
	return rc;
}
