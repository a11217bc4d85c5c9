/*
 * access.h — the access policy as the operations core's `allow` hook: each
 * operation (vfs_req) becomes the permissions it needs (docs/POLICY.md,
 * "At the mount") on the paths the inode table knows for its objects, and
 * each is put to the policy for the caller the kernel named.  Knows
 * nothing of FUSE, nor of how a policy is written or read from disk.
 */
#ifndef PHIFS_ACCESS_H
#define PHIFS_ACCESS_H

#include "phifs/policy.h"
#include "phifs/vfs.h"

struct access;

/*
 * An access hook over v judging by p.  p is transferred (freed by
 * access_free); v is borrowed and must outlive the access.  0 or -ENOMEM.
 */
int access_new(struct vfs *v, struct policy *p, struct access **out);

/*
 * Puts p in force in place of the policy a judged by, for every request
 * that starts its checks from now on; requests already judging finish on
 * the old policy, whole.  Returns once none can still use the old one,
 * which it frees: 0, p transferred; or -ENOMEM, p still the caller's and
 * the old policy in force.  Waits for requests, so never call it from a
 * request; thread-safe against requests and other swaps.
 */
int access_swap(struct access *a, struct policy *p);

/* Frees a and its policy; NULL is fine.  Only once no request runs. */
void access_free(struct access *a);

/*
 * The allow hook's judgement, for hooks built on it (the audit log's): 0,
 * -EACCES with what refused in why (when why is not NULL: the permission,
 * the path judged and the rule that decided, as "read /a/b: unmatched =
 * deny (policy.ini:4)"), or -ENOMEM.  Thread-safe.
 */
int access_check(struct access *a, const struct vfs_caller *c,
		 const struct vfs_req *r, char *why, size_t why_len);

/*
 * How a refusal's reason (access_check's why) shows the path it judged:
 * show writes what to print for path into out (cap bytes, NUL-ended).
 * For a log that must not name files (pseudonymous paths).  Set before
 * serving; NULL shows paths as they are.
 */
void access_set_path_shown(struct access *a,
			   void (*show)(void *arg, const char *path,
					char *out, size_t cap),
			   void *arg);

/*
 * The hooks to give vfs_set_hooks with the access as their arg.  allow is
 * thread-safe; a refusal is -EACCES.
 */
extern const struct vfs_hooks access_hooks;

/* What an operation needs, as the hook judges it; for tests and docs. */
struct access_need {
	int n;			/* checks, up to 3 */
	struct {
		bool second;	/* on (ino2, name2) rather than (ino, name) */
		bool whole;	/* every path of ino, not ino/name */
		enum policy_op op;
	} check[3];
};

/* Fills *need for r; need->n is 0 for operations never refused. */
void access_needs(const struct vfs_req *r, struct access_need *need);

#endif
