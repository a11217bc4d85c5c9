/*
 * audit_path.c — pseudonymous paths for the integrity log (`paths =
 * pseudonymous`, docs/AUDIT.md "Pseudonymous paths"): each component of a
 * path becomes a keyed hash, and a search glob is turned the same way so
 * that `audit show --path` finds records when given the key.  Pure: the
 * key is handed in; knows nothing of keystores, records or files.
 */
#include <errno.h>
#include <string.h>

#include "audit_impl.h"

#define DIGEST_BYTES ((AUDIT_PSEUDONYM_LEN - 1) / 2)

/* The bytes the path becomes: each component 33, each '/' one. */
static size_t pseudonym_len(const char *path, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (path[i] == '/')
			n++;
		else if (i == 0 || path[i - 1] == '/')
			n += AUDIT_PSEUDONYM_LEN;
	return n;
}

/* '~' and the first 16 bytes of HMAC-SHA256(k, name) in hex, at out. */
static int one_pseudonym(const struct crypto_key *k, const char *name,
			 size_t n, char *out)
{
	uint8_t mac[CRYPTO_SHA256_LEN];
	char hex[2 * DIGEST_BYTES + 1];
	int rc = crypto_hmac_sha256(k, name, n, mac);

	if (rc)
		return rc;
	audit_hex(mac, DIGEST_BYTES, hex);
	out[0] = AUDIT_PSEUDONYM_MARK;
	memcpy(out + 1, hex, 2 * DIGEST_BYTES);
	return 0;
}

int audit_path_pseudonym(const struct crypto_key *k, const char *path,
			 size_t len, char *out, size_t cap, size_t *out_len)
{
	size_t o = 0, i = 0;
	int rc;

	if (memchr(path, 0, len))
		return -EINVAL;
	*out_len = pseudonym_len(path, len);
	if (cap <= *out_len)
		return -ENOSPC;
	while (i < len) {
		const char *slash = memchr(path + i, '/', len - i);
		size_t end = slash ? (size_t)(slash - path) : len;

		if (end == i) {
			out[o++] = '/';
			i++;
			continue;
		}
		if ((rc = one_pseudonym(k, path + i, end - i, out + o)))
			return rc;
		o += AUDIT_PSEUDONYM_LEN;
		i = end;
	}
	out[o] = '\0';
	return 0;
}

/* A glob component fnmatch(3) would treat as a pattern, not a name. */
static bool has_wildcard(const char *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (c[i] == '\\') {
			i++;
			continue;
		}
		if (c[i] == '*' || c[i] == '?' || c[i] == '[')
			return true;
	}
	return false;
}

static bool only_stars(const char *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (c[i] != '*')
			return false;
	return true;
}

/* A literal component's name: fnmatch's backslash escapes undone. */
static size_t unescape_glob(const char *c, size_t n, char *name)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (c[i] == '\\' && i + 1 < n)
			i++;
		name[o++] = c[i];
	}
	return o;
}

/* One glob component's replacement at out; its length in *w. */
static int glob_component(const struct crypto_key *k, const char *c,
			  size_t n, char *out, size_t *w)
{
	char name[4096];

	if (only_stars(c, n)) {
		out[0] = '*';
		*w = 1;
		return 0;
	}
	*w = AUDIT_PSEUDONYM_LEN;
	if (has_wildcard(c, n)) {
		out[0] = AUDIT_PSEUDONYM_MARK;
		memset(out + 1, '?', AUDIT_PSEUDONYM_LEN - 1);
		return 0;
	}
	if (n > sizeof(name))
		return -ENAMETOOLONG;
	return one_pseudonym(k, name, unescape_glob(c, n, name), out);
}

int audit_glob_pseudonym(const struct crypto_key *k, const char *glob,
			 char *out, size_t cap)
{
	size_t len = strlen(glob), o = 0, i = 0, w;
	int rc;

	/* A component never grows beyond 33 bytes: this bounds the whole. */
	if (cap <= pseudonym_len(glob, len))
		return -ENOSPC;
	while (i < len) {
		const char *slash = strchr(glob + i, '/');
		size_t end = slash ? (size_t)(slash - glob) : len;

		if (end == i) {
			out[o++] = '/';
			i++;
			continue;
		}
		if ((rc = glob_component(k, glob + i, end - i, out + o, &w)))
			return rc;
		o += w;
		i = end;
	}
	out[o] = '\0';
	return 0;
}
