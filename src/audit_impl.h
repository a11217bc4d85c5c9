/*
 * audit_impl.h — what the audit module's files share and nothing outside
 * it uses: the optional-field bits, the canonical form's pieces
 * (audit_text.c) and the scanner the verifier calls per line.
 */
#ifndef PHIFS_AUDIT_IMPL_H
#define PHIFS_AUDIT_IMPL_H

#include "phifs/audit.h"

#define AUDIT_TS_LEN 30		/* 2026-12-07T21:54:21.123456789Z */

enum {
	F_PATH2 = 1 << 0, F_REQ = 1 << 1, F_RULE = 1 << 2, F_OFF = 1 << 3,
	F_LEN = 1 << 4, F_SHA = 1 << 5, F_BLOCK = 1 << 6,
	F_VERSION = 1 << 7, F_SIG = 1 << 8,
};

/* The F_* bits the op carries besides the fields every record has. */
unsigned audit_op_fields(enum audit_op op);
/* Lower-case hex; out holds 2 * n + 1. */
void audit_hex(const uint8_t *p, size_t n, char *out);
/* Exactly 2 * n lower-case hex digits; -EINVAL otherwise. */
int audit_unhex(const char *s, size_t slen, uint8_t *p, size_t n);
int audit_format_ts(int64_t sec, uint32_t nsec, char out[AUDIT_TS_LEN + 1]);
/* AUDIT_TS_LEN bytes at s: -EINVAL not the form, -ERANGE a field out of
 * range (a spelling that is not canonical). */
int audit_parse_ts(const char *s, int64_t *sec, uint32_t *nsec);

/* RFC 3629 UTF-8: shortest form, no surrogates, at most U+10FFFF. */
bool audit_utf8_valid(const char *s, size_t n);
/* The length of the one sequence at s (s[0] >= 0x80 too), 0 if invalid. */
size_t audit_utf8_seq(const unsigned char *s, size_t n);
/* Canonical base64 (padding, zero spare bits) into out (3 * n / 4). */
int audit_unb64(const char *s, size_t n, char *out, size_t *out_len);

/* Where the encoder writes: bytes stop at end, and `full` says so. */
struct audit_out {
	char *p, *end;
	bool full;
};
void audit_out_bytes(struct audit_out *o, const void *s, size_t n);
/* A string's inside as docs/AUDIT.md escapes it (no quotes). */
void audit_out_escaped(struct audit_out *o, const char *s, size_t n);
void audit_out_b64(struct audit_out *o, const char *s, size_t n);
void audit_out_u64(struct audit_out *o, uint64_t v);
void audit_out_i64(struct audit_out *o, int64_t v);
void audit_out_hex(struct audit_out *o, const uint8_t *p, size_t n);

/*
 * audit_record_parse() without allocating: the strings of r point into
 * scratch (at least len + 1 bytes), valid until it is reused; r is not
 * owned.  sha, when not NULL, is a context reused from line to line.
 */
int audit_record_scan(const char *line, size_t len, struct audit_record *r,
		      char *scratch, struct crypto_sha256_ctx *sha,
		      char *err, size_t err_len);

#endif
