/*
 * audit_verify.c — the auditor's check of a whole log handed in as
 * buffers: segment names, lines, hashes, links, sequence numbers,
 * checkpoint signatures, and an anchor kept elsewhere (docs/AUDIT.md,
 * "Verifying").  Pure: needs the public audit key only, reads no files,
 * and stops at the first fault, naming its place.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_impl.h"

struct vstate {
	const uint8_t *pub;
	struct audit_chain chain;
	struct audit_verdict *v;
	bool has_anchor;
	struct audit_record anchor;
	/* Reused line after line: no allocation per record. */
	char *scratch;		/* AUDIT_MAX_LINE + 1 */
	struct crypto_sha256_ctx *sha;
};

static int fault(struct audit_verdict *v, size_t seg, size_t line,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fault(struct audit_verdict *v, size_t seg, size_t line,
		 const char *fmt, ...)
{
	va_list ap;

	v->ok = false;
	v->seg = seg;
	v->line = line;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static int check_sig(const uint8_t *pub, const struct audit_record *r)
{
	uint8_t msg[AUDIT_SIG_MSG_LEN];

	audit_checkpoint_msg(r->seq, r->prev, msg);
	return crypto_ed25519_verify(pub, msg, sizeof(msg), r->sig);
}

/* A record parsed from a sound line, against the chain so far. */
static int check_record(struct vstate *s, const struct audit_record *r,
			size_t seg, size_t line)
{
	struct audit_verdict *v = s->v;

	if (r->seq != s->chain.seq + 1)
		return fault(v, seg, line, "gap in sequence: seq %" PRIu64
			     " where %" PRIu64 " was due", r->seq,
			     s->chain.seq + 1);
	if (memcmp(r->prev, s->chain.head, AUDIT_HASH_LEN))
		return fault(v, seg, line, "bad link: prev is not the hash "
			     "of seq %" PRIu64, s->chain.seq);
	if (r->op == AUDIT_CHECKPOINT) {
		if (check_sig(s->pub, r))
			return fault(v, seg, line, "bad signature on "
				     "checkpoint seq %" PRIu64, r->seq);
		v->checkpoints++;
		v->sealed_seq = r->seq;
	}
	if (r->op == AUDIT_RECOVERY)
		v->recoveries++;
	if (r->op == AUDIT_GAP) {
		v->gaps++;
		v->lost += r->len;
	}
	if (s->has_anchor && r->seq == s->anchor.seq) {
		if (memcmp(r->hash, s->anchor.hash, AUDIT_HASH_LEN))
			return fault(v, seg, line, "seq %" PRIu64 " is not the "
				     "anchored checkpoint: history rewritten",
				     r->seq);
		v->anchored = true;
	}
	s->chain.seq = r->seq;
	memcpy(s->chain.head, r->hash, AUDIT_HASH_LEN);
	v->records++;
	v->last_seq = r->seq;
	return 0;
}

static int check_segment(struct vstate *s, const struct audit_segment *g,
			 size_t seg)
{
	struct audit_verdict *v = s->v;
	char why[200];
	uint64_t first;
	size_t pos = 0, line = 0;

	if (audit_segment_parse_name(g->name, &first))
		return fault(v, seg, 0, "not a segment name");
	if (first != s->chain.seq + 1)
		return fault(v, seg, 0, "gap in sequence: segment starts at "
			     "seq %" PRIu64 " where %" PRIu64 " was due",
			     first, s->chain.seq + 1);
	if (g->len == 0)
		return fault(v, seg, 0, "empty segment");
	while (pos < g->len) {
		const char *nl = memchr(g->buf + pos, '\n', g->len - pos);
		struct audit_record r;
		int rc;

		line++;
		if (!nl)
			return fault(v, seg, line, "truncated segment: last "
				     "line has no newline");
		rc = audit_record_scan(g->buf + pos, (size_t)(nl - g->buf) -
				       pos, &r, s->scratch, s->sha, why,
				       sizeof(why));
		if (rc == -EBADMSG)
			return fault(v, seg, line, "%s", why);
		if (rc)
			return rc;
		rc = check_record(s, &r, seg, line);
		if (!rc && r.op == AUDIT_CHECKPOINT) {
			v->sealed_seg = seg;
			v->sealed_off = pos;
			v->sealed_len = (size_t)(nl - g->buf) + 1 - pos;
		}
		if (rc)
			return rc;
		pos = (size_t)(nl - g->buf) + 1;
	}
	return 0;
}

static int load_anchor(struct vstate *s, const char *a, size_t len,
		       size_t nsegs)
{
	char why[200];
	int rc;

	if (len && a[len - 1] == '\n')
		len--;
	rc = audit_record_parse(a, len, &s->anchor, why, sizeof(why));
	if (rc == -EBADMSG)
		return fault(s->v, nsegs, 0, "anchor: %s", why);
	if (rc)
		return rc;
	s->has_anchor = true;
	if (s->anchor.op != AUDIT_CHECKPOINT)
		return fault(s->v, nsegs, 0, "anchor: not a checkpoint");
	if (check_sig(s->pub, &s->anchor))
		return fault(s->v, nsegs, 0, "anchor: bad signature (another "
			     "key?)");
	return 0;
}

int audit_verify(const struct audit_segment *segs, size_t n,
		 const uint8_t pub[CRYPTO_ED25519_PUB_LEN], const char *anchor,
		 size_t anchor_len, struct audit_verdict *v)
{
	struct vstate s = { .pub = pub, .v = v };
	int rc = 0;

	memset(v, 0, sizeof(*v));
	audit_chain_init(&s.chain);
	s.scratch = malloc(AUDIT_MAX_LINE + 1);
	s.sha = crypto_sha256_new();
	if (!s.scratch || !s.sha) {
		rc = -ENOMEM;
		goto out;
	}
	if (anchor && (rc = load_anchor(&s, anchor, anchor_len, n)))
		goto out;
	if (n == 0) {
		rc = fault(v, 0, 0, "no segments");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if ((rc = check_segment(&s, &segs[i], i)))
			goto out;
	if (s.has_anchor && !v->anchored) {
		rc = fault(v, n - 1, 0, "the log ends at seq %" PRIu64 ", "
			   "before the anchored seq %" PRIu64 ": its tail "
			   "was cut", v->last_seq, s.anchor.seq);
		goto out;
	}
	v->unsealed = v->last_seq - v->sealed_seq;
	v->ok = true;
out:
	audit_record_release(&s.anchor);
	crypto_sha256_free(s.sha);
	free(s.scratch);
	return rc;
}
