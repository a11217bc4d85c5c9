/*
 * audit_testlog.c — see audit_testlog.h.  Test code: aborts on ENOMEM.
 */
#include "audit_testlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "phifs/ioutil.h"

size_t testlog_name(unsigned i, char *buf, size_t cap)
{
	static const char *const fixed[] = {
		"/ward 3/Jane \"JD\" Doe\\notes.txt",
		"/a\nb/line\r\tbreak",
		"/bad\xff\xfe utf8/\xc3(",
		"/caf\xc3\xa9/\xe6\x82\xa3\xe8\x80\x85 \xf0\x9f\x98\x80",
	};
	size_t n;

	if (i % TESTLOG_NAMES < 4) {
		n = strlen(fixed[i % TESTLOG_NAMES]);
		memcpy(buf, fixed[i % TESTLOG_NAMES], n);
		return n;
	}
	if (i % TESTLOG_NAMES == 4) {	/* one 255-byte component */
		buf[0] = '/';
		memset(buf + 1, 'x', 255);
		return 256;
	}
	/* A 4096-byte path of control bytes, quotes and slashes. */
	n = cap < 4096 ? cap : 4096;
	for (size_t k = 0; k < n; k++)
		buf[k] = (char)("/\x01\"\\\x7f" "a")[k % 6];
	return n;
}

static void seg_add(struct audit_segment *g, const char *line, size_t n)
{
	char *b = realloc((char *)g->buf, g->len + n);

	if (!b)
		abort();
	memcpy(b + g->len, line, n);
	g->buf = b;
	g->len += n;
}

static void fill(struct audit_record *r, uint64_t k, char *path,
		 char *path2)
{
	static const enum audit_op ops[] = {
		AUDIT_OPEN, AUDIT_READ, AUDIT_WRITE, AUDIT_RENAME,
		AUDIT_DENY, AUDIT_INTEGRITY_ERROR, AUDIT_TRUNCATE,
		AUDIT_SYMLINK, AUDIT_KEY_ROTATE, AUDIT_MOUNT,
	};

	memset(r, 0, sizeof(*r));
	r->op = ops[k % (sizeof(ops) / sizeof(ops[0]))];
	r->ts_sec = 1796000000 + (int64_t)k;
	r->ts_nsec = (uint32_t)(k * 7919 % 1000000000);
	r->uid = 1000 + (uint32_t)(k % 3);
	r->gid = 100;
	r->pid = 4000 + (int32_t)k;
	snprintf(r->comm, sizeof(r->comm), "cat%u", (unsigned)(k % 10));
	r->path = path;
	r->path_len = testlog_name((unsigned)k, path, 4096);
	r->path2 = path2;
	r->path2_len = testlog_name((unsigned)k + 1, path2, 4096);
	r->result = r->op == AUDIT_DENY ? -13 : 0;
	r->off = k * 4096;
	r->len = 4096;
	memset(r->sha256, (int)k, sizeof(r->sha256));
	r->req = AUDIT_READ;
	r->rule = "deny-night-shift";
	r->block = k;
	r->version = 2;
}

/* r's paths as the daemon writes them under `paths = pseudonymous`. */
static void pseudonymize(struct audit_record *r, const struct crypto_key *k)
{
	static char p[AUDIT_MAX_LINE / 2], p2[AUDIT_MAX_LINE / 2];

	if (audit_path_pseudonym(k, r->path, r->path_len, p, sizeof(p),
				 &r->path_len) ||
	    audit_path_pseudonym(k, r->path2, r->path2_len, p2, sizeof(p2),
				 &r->path2_len))
		abort();
	r->path = p;
	r->path2 = p2;
}

int testlog_make(struct testlog *t, const struct crypto_key *key,
		 unsigned nsegs, unsigned per_seg, bool open_tail)
{
	return testlog_make_with(t, key, nsegs, per_seg, open_tail, NULL);
}

int testlog_make_with(struct testlog *t, const struct crypto_key *key,
		      unsigned nsegs, unsigned per_seg, bool open_tail,
		      const struct crypto_key *path_key)
{
	static char line[AUDIT_MAX_LINE], path[4096], path2[4096];
	struct audit_chain c;
	struct audit_record r;
	uint64_t k = 0;
	size_t n;
	int rc;

	memset(t, 0, sizeof(*t));
	audit_chain_init(&c);
	for (unsigned s = 0; s < nsegs && s < TESTLOG_MAX_SEGS; s++) {
		char *name = malloc(AUDIT_SEG_NAME_LEN + 1);

		if (!name)
			abort();
		audit_segment_name(c.seq + 1, name);
		t->segs[s].name = name;
		t->n++;
		for (unsigned i = 0; i < per_seg; i++, k++) {
			fill(&r, k, path, path2);
			if (path_key)
				pseudonymize(&r, path_key);
			if ((rc = audit_chain_append(&c, &r, line, sizeof(line),
						     &n)))
				return rc;
			seg_add(&t->segs[s], line, n);
		}
		if (open_tail && s + 1 == nsegs)
			break;
		fill(&r, k, path, path2);
		if ((rc = audit_chain_checkpoint(&c, &r, key, line,
						 sizeof(line), &n)))
			return rc;
		seg_add(&t->segs[s], line, n);
		memcpy(t->anchor, line, n);
		t->anchor_len = n;
	}
	return 0;
}

void testlog_free(struct testlog *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free((char *)t->segs[i].name);
		free((char *)t->segs[i].buf);
	}
	memset(t, 0, sizeof(*t));
}

static int write_file(const char *dir, const char *name, const void *buf,
		      size_t len)
{
	char path[4096];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	rc = ioutil_write_all(fd, buf, len);
	if (close(fd) && !rc)
		rc = -errno;
	return rc;
}

int testlog_write_dir(const struct testlog *t, const struct crypto_key *key,
		      const char *dir)
{
	uint8_t pub[CRYPTO_ED25519_PUB_LEN];
	char text[AUDIT_PUB_TEXT_LEN + 1];
	int rc = crypto_ed25519_public(key, pub);

	if (rc)
		return rc;
	audit_pub_format(pub, text);
	rc = write_file(dir, AUDIT_PUB_FILE, text, strlen(text));
	for (size_t i = 0; !rc && i < t->n; i++)
		rc = write_file(dir, t->segs[i].name, t->segs[i].buf,
				t->segs[i].len);
	return rc;
}
