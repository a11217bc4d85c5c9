/*
 * audit.h — the integrity log's pure core: one record as one canonical
 * JSON line, the hash chain that links the lines, checkpoints signed with
 * the volume's Ed25519 audit key, and the verifier that checks a log
 * without any decryption key.  docs/AUDIT.md gives every byte.
 *
 * Pure: no threads, no FUSE, no policy; the only file I/O is in
 * audit_dir_* (reading a log folder for phifsctl).  The writer (queue,
 * logger thread, segments on disk) lives above this and is not here.
 * No JSON library: the one canonical form is written and scanned by hand.
 *
 * Functions return 0 or -errno.  Not thread-safe for one record or chain;
 * distinct objects may be used from distinct threads.
 */
#ifndef PHIFS_AUDIT_H
#define PHIFS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "phifs/crypto.h"

#define AUDIT_HASH_LEN CRYPTO_SHA256_LEN
#define AUDIT_COMM_LEN 16		/* TASK_COMM_LEN, its NUL too */
#define AUDIT_MAX_LINE (64 * 1024)	/* a line, its newline not counted */
#define AUDIT_PUB_FILE "audit.pub"
#define AUDIT_SEG_PREFIX "seg-"
#define AUDIT_SEG_SUFFIX ".jsonl"
#define AUDIT_SEG_NAME_LEN (4 + 20 + 6)	/* seg-<20 digits>.jsonl */
#define AUDIT_FPR_LEN 32		/* hex digits of a key fingerprint */

enum audit_op {
	AUDIT_MOUNT, AUDIT_UNMOUNT, AUDIT_OPEN, AUDIT_READ, AUDIT_WRITE,
	AUDIT_CREATE, AUDIT_UNLINK, AUDIT_RENAME, AUDIT_MKDIR, AUDIT_RMDIR,
	AUDIT_LINK, AUDIT_SYMLINK, AUDIT_TRUNCATE, AUDIT_SETATTR, AUDIT_DENY,
	AUDIT_INTEGRITY_ERROR, AUDIT_POLICY_RELOAD, AUDIT_KEY_ROTATE,
	AUDIT_RECOVERY, AUDIT_CHECKPOINT,
	AUDIT_GAP,			/* records lost under on_failure = allow */
	AUDIT_OP_COUNT
};

/*
 * One record.  Strings are borrowed (path, path2, rule: the caller keeps
 * them alive until encoded), so a request thread can fill one on its stack
 * without allocating; a record from audit_record_parse() owns them instead
 * and is released with audit_record_release().  path and path2 are byte
 * strings (any byte but NUL); NULL means "".  Which of the optional fields
 * an op carries is fixed by the op (docs/AUDIT.md, "Fields").
 */
struct audit_record {
	uint64_t seq;
	int64_t ts_sec;			/* UTC, since the epoch */
	uint32_t ts_nsec;
	uint32_t uid, gid;
	int32_t pid;
	char comm[AUDIT_COMM_LEN];
	enum audit_op op;
	const char *path;
	size_t path_len;
	const char *path2;		/* rename, link: new name; symlink:
					 * the target */
	size_t path2_len;
	int64_t result;			/* 0, a byte count, or -errno */
	uint64_t off;			/* read, write; truncate: new size */
	uint64_t len;			/* read, write; gap: records lost */
	uint8_t sha256[AUDIT_HASH_LEN];	/* read, write: the plaintext */
	enum audit_op req;		/* deny: the operation refused */
	const char *rule;		/* deny: the rule that decided */
	uint64_t block;			/* integrity-error */
	uint32_t version;		/* key-rotate: the new version */
	uint8_t sig[CRYPTO_ED25519_SIG_LEN];	/* checkpoint */
	uint8_t prev[AUDIT_HASH_LEN];
	uint8_t hash[AUDIT_HASH_LEN];	/* set by encode, read by parse */
	bool owned;			/* strings are the record's */
};

/* "read", "integrity-error", ...; NULL for a value out of range. */
const char *audit_op_name(enum audit_op op);
/* -EINVAL for a name that is no op. */
int audit_op_parse(const char *name, enum audit_op *op);

/*
 * Encodes r (its prev set, its hash ignored) as one canonical line ending
 * in '\n' into buf, sets r->hash, and stores the line's length in *len.
 * -ENOSPC if cap is too small (AUDIT_MAX_LINE suffices for paths up to
 * 4,096 bytes and a rule up to 1,024, however escaped), -EINVAL
 * for an op out of range, a value out of its range or a NUL in a path.
 * Allocates nothing.
 */
int audit_record_encode(struct audit_record *r, char *buf, size_t cap,
			size_t *len);

/*
 * Parses one line (without its '\n') strictly: a known op with exactly its
 * fields, every value in range, the hash matching, and the line byte for
 * byte as audit_record_encode() writes it (no other spelling is taken).
 * On failure -EBADMSG and why in err (-ENOMEM if it could not check).  On
 * success r owns its strings: audit_record_release() them.
 */
int audit_record_parse(const char *line, size_t len, struct audit_record *r,
		       char *err, size_t err_len);
void audit_record_release(struct audit_record *r);

/* What a checkpoint signs, for a record of seq `seq` whose prev is head. */
#define AUDIT_SIG_MSG_LEN (24 + 8 + AUDIT_HASH_LEN)
void audit_checkpoint_msg(uint64_t seq, const uint8_t head[AUDIT_HASH_LEN],
			  uint8_t msg[AUDIT_SIG_MSG_LEN]);

/*
 * The chain as a writer keeps it: the seq and hash of the last record.
 * audit_chain_append() sets r->seq and r->prev, encodes r into buf and
 * advances the chain; audit_chain_checkpoint() does the same for a
 * checkpoint record (its uid, gid, pid, comm and ts from r, its path
 * empty whatever r's), signing the head with key.  A new chain starts at seq 1 after a zero hash.
 */
struct audit_chain {
	uint64_t seq;			/* of the last record; 0: none */
	uint8_t head[AUDIT_HASH_LEN];
};
void audit_chain_init(struct audit_chain *c);
int audit_chain_append(struct audit_chain *c, struct audit_record *r,
		       char *buf, size_t cap, size_t *len);
int audit_chain_checkpoint(struct audit_chain *c, struct audit_record *r,
			   const struct crypto_key *key, char *buf,
			   size_t cap, size_t *len);

/* "seg-<first seq, 20 digits>.jsonl" into name (AUDIT_SEG_NAME_LEN + 1). */
void audit_segment_name(uint64_t first_seq, char *name);
/* The first seq a segment name says, or -EINVAL if it is no segment name. */
int audit_segment_parse_name(const char *name, uint64_t *first_seq);

/* audit.pub: "ed25519 <64 hex digits>\n". */
#define AUDIT_PUB_TEXT_LEN (8 + 64 + 1)
void audit_pub_format(const uint8_t pub[CRYPTO_ED25519_PUB_LEN],
		      char text[AUDIT_PUB_TEXT_LEN + 1]);
/* Accepts the text above, the newline optional; -EINVAL otherwise. */
int audit_pub_parse(const char *text, size_t len,
		    uint8_t pub[CRYPTO_ED25519_PUB_LEN]);
/* First AUDIT_FPR_LEN hex digits of SHA-256(pub), NUL-terminated. */
int audit_pub_fingerprint(const uint8_t pub[CRYPTO_ED25519_PUB_LEN],
			  char fpr[AUDIT_FPR_LEN + 1]);

/*
 * Pseudonymous paths (`paths = pseudonymous`; docs/AUDIT.md, "Pseudonymous
 * paths"): the log is PHI too.  Each component of a path (a maximal run of
 * bytes other than '/') becomes '~' and the first 16 bytes of
 * HMAC-SHA256(key, component) as 32 lower-case hex digits; every '/' stays
 * where it was, so depth shows, and one name has one pseudonym anywhere in
 * the volume.  The key is keys_volume_key(ks, AUDIT_PATH_KEY_PURPOSE): the
 * same for the volume's life, whatever the master key version.
 */
#define AUDIT_PATH_KEY_PURPOSE "phifs audit path v1"
#define AUDIT_PSEUDONYM_MARK '~'
#define AUDIT_PSEUDONYM_LEN 33		/* '~' and 32 hex digits */

/*
 * The pseudonym of path into out, NUL-ended; its length (the NUL not
 * counted) in *out_len, set also when the answer is -ENOSPC (cap must
 * exceed it).  -EINVAL for a NUL in path.  An empty path stays empty.
 */
int audit_path_pseudonym(const struct crypto_key *k, const char *path,
			 size_t len, char *out, size_t cap, size_t *out_len);

/*
 * A glob for `audit show --path` (fnmatch(3), no flags) turned to match
 * pseudonyms: a literal component becomes its pseudonym (backslash
 * escapes undone first), a component of '*' alone stays '*' (any run, as
 * in a plain glob), and any other component with a wildcard becomes '~'
 * and 32 '?', which matches exactly one component whatever its name.
 * -ENOSPC if out (cap bytes) is too small; 33 bytes per component and one
 * per '/', plus the NUL, always suffice.
 */
int audit_glob_pseudonym(const struct crypto_key *k, const char *glob,
			 char *out, size_t cap);

/* One segment as the verifier is handed it. */
struct audit_segment {
	const char *name;		/* its file name */
	const char *buf;
	size_t len;
};

/* The verdict: where the first fault is, or how far the log is sound. */
struct audit_verdict {
	bool ok;			/* no fault */
	size_t seg;			/* fault: index of the segment; n
					 * for the anchor */
	size_t line;			/* fault: line in it, from 1; 0 for
					 * the segment as a whole */
	char reason[256];		/* fault: why */
	uint64_t records;		/* verified records */
	uint64_t last_seq;
	uint64_t checkpoints;
	uint64_t sealed_seq;		/* seq of the last checkpoint; 0 none */
	size_t sealed_seg, sealed_off, sealed_len;	/* its line */
	uint64_t unsealed;		/* records after it */
	uint64_t recoveries;		/* recovery records seen */
	uint64_t gaps, lost;		/* gap records, the records they
					 * say were lost */
	bool anchored;			/* the anchor was found and matches */
};

/*
 * Verifies segments in order (the caller sorts them by name): names,
 * lines, hashes, links, sequence numbers, and every checkpoint's signature
 * under pub.  With anchor (a checkpoint line kept elsewhere, its newline
 * optional) also that the log holds that very record and reaches it.
 * Returns 0 when the log is intact (v->unsealed may still be > 0: the
 * caller must say so), -EBADMSG with the place and reason in v on the
 * first fault, another -errno (ENOMEM) if it could not check.
 */
int audit_verify(const struct audit_segment *segs, size_t n,
		 const uint8_t pub[CRYPTO_ED25519_PUB_LEN], const char *anchor,
		 size_t anchor_len, struct audit_verdict *v);

/*
 * The file layer: the segments of the log folder at path, sorted, read
 * whole into memory (names and buffers owned by the set).  Files that are
 * no segment name are left out; AUDIT_PUB_FILE is read by the caller.
 */
struct audit_segset {
	struct audit_segment *segs;
	size_t n;
};
int audit_dir_load(const char *path, struct audit_segset *set, char *err,
		   size_t err_len);
void audit_dir_release(struct audit_segset *set);
/* A small whole file (audit.pub, an anchor) into a malloc'd buffer. */
int audit_read_file(const char *path, char **buf, size_t *len,
		    size_t max);

#endif
