/*
 * audit_hook.h — the integrity log's side of the operations core: each
 * operation the vfs serves becomes one audit record (audit.h; which ones,
 * and with what, in docs/AUDIT.md, "What a mount records"), each refusal
 * by the access policy a deny record naming the rule that decided, each
 * failed authentication an integrity-error record.  It composes the access
 * policy (access.h, optional) and the log into the one hooks table the vfs
 * takes, and fails closed: an operation whose record the log cannot keep
 * is refused, and a read's plaintext is never returned without its record.
 *
 * Knows nothing of FUSE, nor of how records are written: it hands them to
 * a sink (the writer of audit_writer.h in the daemon; a fake in tests).
 */
#ifndef PHIFS_AUDIT_HOOK_H
#define PHIFS_AUDIT_HOOK_H

#include "phifs/access.h"
#include "phifs/audit.h"
#include "phifs/vfs.h"

/* Paths longer than this are recorded as "..." and their last bytes. */
#define AUDIT_HOOK_PATH_MAX 4096

/* Where records go; put's record is the caller's, valid during the call. */
struct audit_sink {
	/* 0 once kept (queued), or -EIO when the operation must fail. */
	int (*put)(void *arg, const struct audit_record *r);
	/* 0 if a record put now would be kept, else -EIO. */
	int (*ready)(void *arg);
	void *arg;
};

struct audit_hook;

/*
 * A hook over v recording to sink (copied), judging by a when a is not
 * NULL.  v and a are borrowed and must outlive the hook.  0 or -ENOMEM.
 */
int audit_hook_new(struct vfs *v, struct access *a,
		   const struct audit_sink *sink, struct audit_hook **out);
/* NULL is fine.  Only once no request runs. */
void audit_hook_free(struct audit_hook *h);

/*
 * `paths = pseudonymous`: every path the hook records (path, path2, a
 * symlink's target, the path in a deny's rule) becomes its pseudonym under
 * k (audit_path_pseudonym), and a path whose pseudonym is too long for a
 * record keeps its last components after "...".  k is borrowed and must
 * outlive h.  Set before serving.
 */
void audit_hook_pseudonymous(struct audit_hook *h,
			     const struct crypto_key *k);

/* The hooks to give vfs_set_hooks with the audit_hook as their arg. */
extern const struct vfs_hooks audit_hook_hooks;

/*
 * What an operation is recorded as: 0 and *op, or -ENOENT for operations
 * not recorded (lookups, stat, listings, reads of attributes, fsync,
 * release).
 */
int audit_hook_op(const struct vfs_req *r, enum audit_op *op);

/*
 * A record of the daemon's own (mount, unmount, policy-reload,
 * key-rotate): in the daemon's name, path as given (NULL: none), result,
 * and for key-rotate the new version.  put's answer.
 */
int audit_hook_event(struct audit_hook *h, enum audit_op op,
		     const char *path, int64_t result, uint32_t version);

#endif
