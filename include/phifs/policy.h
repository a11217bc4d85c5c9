/*
 * policy.h — the access policy: roles, the path patterns they grant and
 * the users and groups that hold them, compiled from INI text (the
 * language is in docs/POLICY.md), and the decision for one caller, one
 * operation and one path.  Pure: it is handed the text and a resolver for
 * user and group names, reads no file and takes no lock; it knows nothing
 * of FUSE, inodes or how a path was found.
 */
#ifndef PHIFS_POLICY_H
#define PHIFS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A policy file's longest line and size, as for the config file. */
#define POLICY_MAX_LINE 8192
#define POLICY_MAX_FILE (1 << 20)
/* Room for any error message policy_parse gives. */
#define POLICY_ERR_LEN 512

struct policy;

enum policy_op {
	POLICY_READ,		/* a file's content */
	POLICY_WRITE,		/* a file's content, or a change to the tree */
	POLICY_LIST,		/* names and attributes: readdir of a folder */
	POLICY_TRAVERSE,	/* lookup, getattr: list, or a grant below */
};

/*
 * Names to ids for [user:NAME] and [group:NAME]: 0 and *id, or -ENOENT
 * for a name that does not resolve (another -errno stops the parse).  ctx
 * is handed back.  A NULL function resolves no name.
 */
struct policy_resolver {
	int (*user)(void *ctx, const char *name, uint32_t *id);
	int (*group)(void *ctx, const char *name, uint32_t *id);
	void *ctx;
};

/* Who asks, as the kernel tells it.  Not kept by the policy. */
struct policy_caller {
	uint32_t uid;
	uint32_t gid;
	const uint32_t *groups;	/* supplementary groups */
	size_t ngroups;
	const char *user;	/* uid's name for ${user}, or NULL */
};

/*
 * What decided, for the audit log and `phifsctl policy explain`.  The
 * strings point into the policy and live as long as it does; NULL when
 * they do not apply.
 */
struct policy_decision {
	bool allow;
	const char *role;	/* the role that granted */
	const char *grantee;	/* its section, "user:1001" or "group:2000" */
	int grantee_line;
	const char *perm;	/* "read", "write" or "list" */
	const char *pattern;	/* the pattern as written */
	int pattern_line;
	bool below;		/* traverse: the pattern reaches under path */
	const char *rule;	/* else what did, as "... unmatched = deny" */
	int rule_line;		/* its key's line; 0: the built-in default */
	const char *file;	/* the policy file's name */
};

/*
 * Compiles the policy in text (len bytes; need not be NUL-terminated);
 * file only names it in messages.  Returns 0 and *out (policy_free it);
 * -EINVAL with err "file:line: reason" for anything the language does not
 * allow (docs/POLICY.md lists it); -ENOMEM; or the resolver's -errno.
 * Thread-safe: shares nothing.
 */
int policy_parse(const char *file, const char *text, size_t len,
		 const struct policy_resolver *r, struct policy **out,
		 char *err, size_t err_len);

/*
 * Whether p has a [group:] section (the caller's groups matter) and a
 * pattern with ${user} (the caller's name does): callers that must pay to
 * learn them learn them only then.
 */
bool policy_uses_groups(const struct policy *p);
bool policy_uses_user(const struct policy *p);

/* Frees p; NULL is fine. */
void policy_free(struct policy *p);

/*
 * Decides whether c may do op on path, an absolute path from the mount's
 * root without "." or ".." components, empty components or a trailing
 * '/' ("/" for the root).  A path not so written is denied.  Fills *d.
 * Allocates nothing and takes no lock: any number of threads may decide
 * on one policy at once.
 */
void policy_decide(const struct policy *p, const struct policy_caller *c,
		   enum policy_op op, const char *path,
		   struct policy_decision *d);

/*
 * Whether path is written as policy_decide judges paths: absolute, no
 * empty, "." or ".." component, no trailing '/'.
 */
bool policy_path_ok(const char *path);

/*
 * Says *d in one line in buf: "allow: ..." or "deny: ...".  Returns what
 * snprintf returns.
 */
int policy_decision_format(const struct policy_decision *d, char *buf,
			   size_t len);

/* "read", "write", "list", "traverse". */
const char *policy_op_name(enum policy_op op);

/* The op called name: 0 and *op, or -EINVAL. */
int policy_op_parse(const char *name, enum policy_op *op);

#endif
