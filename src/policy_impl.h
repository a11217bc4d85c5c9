/*
 * policy_impl.h — the compiled policy, shared by its two files
 * (policy_parse.c: INI text to this; policy_match.c: the decision).
 * Private to them.  Read-only once policy_parse returned it.
 */
#ifndef PHIFS_POLICY_IMPL_H
#define PHIFS_POLICY_IMPL_H

#include "phifs/policy.h"

enum pol_perm { PERM_READ, PERM_WRITE, PERM_LIST, PERM_N };

enum pol_tok {
	TOK_NAME,		/* a component as written, maybe with ${...} */
	TOK_STAR,		/* '*': one component */
	TOK_DSTAR,		/* '**': any number, none too */
};

/* One component of a pattern; text points into its pattern's src. */
struct pol_comp {
	enum pol_tok kind;
	bool has_var;		/* text holds ${uid}, ${gid} or ${user} */
	const char *text;
	size_t len;
};

struct pol_pattern {
	char *src;		/* as written, NUL-terminated */
	struct pol_comp *comps;
	size_t ncomps;		/* 0 for "/" */
	enum pol_perm perm;
	bool uses_user;		/* matches nothing for a caller without name */
	int line;
};

struct pol_role {
	char *name;
	int line;
	int perm_line[PERM_N];	/* each key once; 0 not given */
	struct pol_pattern *pats;
	size_t npats;
};

/* A [user:X] or [group:X] section: who holds which roles. */
struct pol_grant {
	char *section;		/* "user:1001", as written */
	bool group;
	uint32_t id;
	int line;
	int roles_line;		/* 0 until roles = is read */
	size_t *roles;		/* indices into policy->roles */
	size_t nroles;
	char *role_names;	/* roles = as written, until resolved */
};

struct policy {
	char *file;
	struct pol_role *roles;
	size_t nroles;
	struct pol_grant *grants;
	size_t ngrants;
	bool unmatched_allow;
	bool root_allow;
	int unmatched_line;	/* of the key; 0 the built-in deny */
	int root_line;
};

extern const char *const pol_perm_names[PERM_N];

#endif
