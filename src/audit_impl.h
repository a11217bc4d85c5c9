/*
 * audit_impl.h — what the audit module's files share and nothing outside
 * it uses: the optional-field bits, hex and the timestamp form.
 */
#ifndef PHIFS_AUDIT_IMPL_H
#define PHIFS_AUDIT_IMPL_H

#include <jansson.h>

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
/* A string value, base64-decoded when b64, into a new NUL-ended buffer. */
int audit_take_bytes(json_t *v, bool b64, char **out, size_t *out_len);

#endif
