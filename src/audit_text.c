/*
 * audit_text.c — the canonical form's small pieces, shared by the encoder
 * and the scanner so that the two cannot disagree: UTF-8 validity, string
 * escapes, base64, decimal integers and the timestamp (docs/AUDIT.md, "The
 * canonical line").  Pure byte work: no records, no I/O, no allocation.
 */
#include <errno.h>
#include <string.h>

#include "audit_impl.h"

static const char b64_digits[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

/* Length of the UTF-8 sequence at s (RFC 3629), or 0 if it is none. */
size_t audit_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t need;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4, cp = c & 0x07;
	else
		return 0;
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Shortest form, no surrogates, at most U+10FFFF. */
	if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return need;
}

bool audit_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t k;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		k = audit_utf8_seq(p + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

void audit_out_bytes(struct audit_out *o, const void *s, size_t n)
{
	if (o->full || (size_t)(o->end - o->p) < n) {
		o->full = true;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

/* The escape of a byte below 0x20, '"' or '\\' into e; its length. */
static size_t escape(unsigned char c, char e[6])
{
	static const char short_form[32] = {
		['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
		['\t'] = 't',
	};

	e[0] = '\\';
	if (c == '"' || c == '\\') {
		e[1] = (char)c;
		return 2;
	}
	if (short_form[c]) {
		e[1] = short_form[c];
		return 2;
	}
	memcpy(e + 1, "u00", 3);
	e[4] = hex_upper[c >> 4];
	e[5] = hex_upper[c & 15];
	return 6;
}

void audit_out_escaped(struct audit_out *o, const char *s, size_t n)
{
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[6];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		audit_out_bytes(o, s + run, i - run);
		audit_out_bytes(o, e, escape(c, e));
		run = i + 1;
	}
	audit_out_bytes(o, s + run, n - run);
}

void audit_out_b64(struct audit_out *o, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		char q[4];

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = b64_digits[v >> 18 & 63];
		q[1] = b64_digits[v >> 12 & 63];
		q[2] = i + 1 < n ? b64_digits[v >> 6 & 63] : '=';
		q[3] = i + 2 < n ? b64_digits[v & 63] : '=';
		audit_out_bytes(o, q, 4);
	}
}

void audit_out_u64(struct audit_out *o, uint64_t v)
{
	char d[20];
	size_t i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	audit_out_bytes(o, d + i, sizeof(d) - i);
}

void audit_out_i64(struct audit_out *o, int64_t v)
{
	if (v >= 0) {
		audit_out_u64(o, (uint64_t)v);
		return;
	}
	audit_out_bytes(o, "-", 1);
	/* -(v + 1) + 1: no overflow for INT64_MIN. */
	audit_out_u64(o, (uint64_t)(-(v + 1)) + 1);
}

void audit_out_hex(struct audit_out *o, const uint8_t *p, size_t n)
{
	char h[2 * CRYPTO_ED25519_SIG_LEN + 1];

	audit_hex(p, n, h);
	audit_out_bytes(o, h, 2 * n);
}

void audit_hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex_lower[p[i] >> 4];
		out[2 * i + 1] = hex_lower[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* 16 + a lower-case hex digit's value; 0 for every other byte. */
static const uint8_t hex_value[256] = {
	['0'] = 16, ['1'] = 17, ['2'] = 18, ['3'] = 19, ['4'] = 20,
	['5'] = 21, ['6'] = 22, ['7'] = 23, ['8'] = 24, ['9'] = 25,
	['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29, ['e'] = 30,
	['f'] = 31,
};

/* Lower-case hex of exactly n bytes only. */
int audit_unhex(const char *s, size_t slen, uint8_t *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned all = 16;

	if (slen != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned hi = hex_value[u[2 * i]], lo = hex_value[u[2 * i + 1]];

		all &= hi & lo;
		p[i] = (uint8_t)((hi & 15) << 4 | (lo & 15));
	}
	/* Bit 4 stays set only if every byte was a digit. */
	return all ? 0 : -EINVAL;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Canonical base64 only: '=' padding exactly where due and the unused bits
 * of the last digit zero, so that one byte string has one spelling.
 */
int audit_unb64(const char *s, size_t n, char *out, size_t *out_len)
{
	size_t o = 0;

	if (n % 4)
		return -EINVAL;
	for (size_t i = 0; i < n; i += 4) {
		int pad = i + 4 == n ? (s[i + 3] == '=') + (s[i + 2] == '=') : 0;
		int d[4] = { 0 };
		uint32_t v;

		if (pad == 1 && s[i + 2] == '=')
			return -EINVAL;	/* "x=y=" */
		for (int j = 0; j < 4 - pad; j++)
			if ((d[j] = b64_value(s[i + j])) < 0)
				return -EINVAL;
		v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 |
		    (uint32_t)d[2] << 6 | (uint32_t)d[3];
		if ((pad == 2 && (v & 0xffff)) || (pad == 1 && (v & 0xff)))
			return -EINVAL;
		out[o++] = (char)(v >> 16);
		if (pad < 2)
			out[o++] = (char)(v >> 8);
		if (pad < 1)
			out[o++] = (char)v;
	}
	*out_len = o;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (y >= 1). */
static int64_t days_of(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = y / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* The date of a day number, the inverse of days_of(). */
static void date_of(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = z / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* The highest second that still prints as year 9999. */
#define TS_MAX 253402300799

static void put_digits(char *p, uint64_t v, int n)
{
	while (n--) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

int audit_format_ts(int64_t sec, uint32_t nsec, char out[AUDIT_TS_LEN + 1])
{
	int64_t y, day, rem;
	unsigned m, d;

	if (nsec >= 1000000000u || sec < 0 || sec > TS_MAX)
		return -EINVAL;
	day = sec / 86400;
	rem = sec % 86400;
	date_of(day, &y, &m, &d);
	memcpy(out, "0000-00-00T00:00:00.000000000Z", AUDIT_TS_LEN + 1);
	put_digits(out, (uint64_t)y, 4);
	put_digits(out + 5, m, 2);
	put_digits(out + 8, d, 2);
	put_digits(out + 11, (uint64_t)(rem / 3600), 2);
	put_digits(out + 14, (uint64_t)(rem / 60 % 60), 2);
	put_digits(out + 17, (uint64_t)(rem % 60), 2);
	put_digits(out + 20, nsec, 9);
	return 0;
}

/* n decimal digits at s, or -1 if one is not a digit. */
static int64_t digits(const char *s, int n)
{
	int64_t v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * -EINVAL for text that is no timestamp of the form; -ERANGE for one
 * whose fields are out of range (a 13th month, hour 24, second 60): it
 * names a time, but another one's canonical spelling would.
 */
int audit_parse_ts(const char *s, int64_t *sec, uint32_t *nsec)
{
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
					  31, 30, 31 };
	int64_t y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2),
		h = digits(s + 11, 2), mi = digits(s + 14, 2),
		se = digits(s + 17, 2), ns = digits(s + 20, 9);
	int64_t day;

	if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0 || ns < 0 ||
	    s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != '.' || s[29] != 'Z')
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    h > 23 || mi > 59 || se > 59)
		return -ERANGE;
	day = days_of(y, (unsigned)mo, (unsigned)d);
	if (mo == 2 && d == 29 && days_of(y, 3, 1) - day != 1)
		return -ERANGE;	/* not a leap year */
	*sec = day * 86400 + h * 3600 + mi * 60 + se;
	*nsec = (uint32_t)ns;
	return 0;
}
