/*
 * policy_match.c — the decision: which roles a caller holds, whether one
 * of their patterns covers the path for the operation, else the defaults.
 * Runs on every request, so it allocates nothing and takes no lock: the
 * compiled policy is read-only.  Knows nothing of how the path was found.
 */
#include "policy_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The caller's values for ${uid}, ${gid} and ${user}. */
struct expand {
	char uid[12];
	char gid[12];
	const char *user;	/* NULL: no name, or one no path could hold */
};

static const char *var_value(const struct expand *x, const char *name,
			     size_t n)
{
	if (n == 3 && !memcmp(name, "uid", 3))
		return x->uid;
	if (n == 3 && !memcmp(name, "gid", 3))
		return x->gid;
	return x->user;
}

/* Whether component c (n bytes) is what t names for this caller. */
static bool name_matches(const struct pol_comp *t, const char *c, size_t n,
			 const struct expand *x)
{
	const char *q = t->text, *end = t->text + t->len;
	size_t j = 0;

	if (!t->has_var)
		return n == t->len && !memcmp(c, t->text, n);
	while (q < end) {
		if (q[0] == '$' && q + 1 < end && q[1] == '{') {
			/* Checked at load: a known name, then '}'. */
			const char *close = memchr(q, '}', (size_t)(end - q));
			const char *v = var_value(x, q + 2,
						  (size_t)(close - q - 2));
			size_t vl = strlen(v);

			if (vl > n - j || memcmp(c + j, v, vl))
				return false;
			j += vl;
			q = close + 1;
		} else {
			if (j == n || c[j] != *q)
				return false;
			j++;
			q++;
		}
	}
	return j == n;
}

/* The '/' that starts the component after the one s starts, or the end. */
static const char *next_comp(const char *s)
{
	return s + 1 + strcspn(s + 1, "/");
}

/*
 * Whether pt matches path (below false) or some path under it (below
 * true).  The wildcard matcher of old with one star to go back to: '**'
 * takes as few components as it can, and one more each time what follows
 * it fails, so it is linear in practice and never recursive.
 */
static bool pattern_matches(const struct pol_pattern *pt, const char *path,
			    const struct expand *x, bool below)
{
	const char *s = path, *star_s = NULL;
	size_t pi = 0, star_pi = 0;

	if (pt->uses_user && !x->user)
		return false;
	if (s[0] == '/' && s[1] == 0)
		s++;	/* the root: no component */
	while (*s) {
		const char *c = s + 1;
		size_t n = strcspn(c, "/");
		const struct pol_comp *t = pi < pt->ncomps ? &pt->comps[pi]
							   : NULL;

		if (t && t->kind == TOK_DSTAR) {
			star_pi = pi++;
			star_s = s;
		} else if (t && (t->kind == TOK_STAR ||
				 name_matches(t, c, n, x))) {
			pi++;
			s = c + n;
		} else if (star_s) {
			pi = star_pi + 1;
			star_s = next_comp(star_s);
			s = star_s;
		} else {
			return false;
		}
	}
	/*
	 * Under the path: what is left of the pattern can name a component
	 * more (each of its components can be written for this caller), or
	 * a '**' can take one more.
	 */
	if (below)
		return pi < pt->ncomps || star_s;
	while (pi < pt->ncomps && pt->comps[pi].kind == TOK_DSTAR)
		pi++;
	return pi == pt->ncomps;
}

bool policy_path_ok(const char *path)
{
	const char *s = path;

	if (s[0] != '/')
		return false;
	if (s[1] == 0)
		return true;
	while (*s) {
		const char *c = s + 1;
		size_t n = strcspn(c, "/");

		if (n == 0 || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		s = c + n;
	}
	return true;
}

static bool holds(const struct pol_grant *g, const struct policy_caller *c)
{
	if (!g->group)
		return g->id == c->uid;
	if (g->id == c->gid)
		return true;
	for (size_t i = 0; i < c->ngroups; i++)
		if (c->groups[i] == g->id)
			return true;
	return false;
}

/* Whether a pattern of permission perm may grant op. */
static bool perm_serves(enum pol_perm perm, enum policy_op op)
{
	switch (op) {
	case POLICY_READ:
		return perm == PERM_READ;
	case POLICY_WRITE:
		return perm == PERM_WRITE;
	default:
		return true;	/* a grant of any kind shows the name */
	}
}

/* The first grant of the caller's roles, in the file's order, or false. */
static bool find_grant(const struct policy *p, const struct policy_caller *c,
		       enum policy_op op, const char *path,
		       const struct expand *x, bool below,
		       struct policy_decision *d)
{
	for (size_t i = 0; i < p->ngrants; i++) {
		const struct pol_grant *g = &p->grants[i];

		if (!holds(g, c))
			continue;
		for (size_t k = 0; k < g->nroles; k++) {
			const struct pol_role *r = &p->roles[g->roles[k]];

			for (size_t j = 0; j < r->npats; j++) {
				const struct pol_pattern *pt = &r->pats[j];

				if (!perm_serves(pt->perm, op) ||
				    !pattern_matches(pt, path, x, below))
					continue;
				d->allow = true;
				d->role = r->name;
				d->grantee = g->section;
				d->grantee_line = g->line;
				d->perm = pol_perm_names[pt->perm];
				d->pattern = pt->src;
				d->pattern_line = pt->line;
				d->below = below;
				return true;
			}
		}
	}
	return false;
}

/* A user name only expands into a component it could be. */
static const char *safe_user(const char *u)
{
	if (!u || !*u || strchr(u, '/') || !strcmp(u, ".") ||
	    !strcmp(u, ".."))
		return NULL;
	return u;
}

void policy_decide(const struct policy *p, const struct policy_caller *c,
		   enum policy_op op, const char *path,
		   struct policy_decision *d)
{
	struct expand x;

	memset(d, 0, sizeof(*d));
	d->file = p->file;
	if (!policy_path_ok(path)) {
		d->rule = "not a path the policy judges";
		return;
	}
	if (c->uid == 0 && p->root_allow) {
		d->allow = true;
		d->rule = "defaults: root = allow";
		d->rule_line = p->root_line;
		return;
	}
	snprintf(x.uid, sizeof(x.uid), "%" PRIu32, c->uid);
	snprintf(x.gid, sizeof(x.gid), "%" PRIu32, c->gid);
	x.user = safe_user(c->user);
	if (find_grant(p, c, op, path, &x, false, d))
		return;
	/* Ancestors of what one may reach may be looked up. */
	if (op == POLICY_TRAVERSE && find_grant(p, c, op, path, &x, true, d))
		return;
	if (c->uid == 0) {
		/* root = deny: not even unmatched = allow reaches uid 0. */
		d->rule = "no role grants it; defaults: root = deny";
		d->rule_line = p->root_line;
		return;
	}
	d->allow = p->unmatched_allow;
	d->rule = p->unmatched_allow ?
		  "no role grants it; defaults: unmatched = allow" :
		  "no role grants it; defaults: unmatched = deny";
	d->rule_line = p->unmatched_line;
}

int policy_decision_format(const struct policy_decision *d, char *buf,
			   size_t len)
{
	const char *verdict = d->allow ? "allow" : "deny";

	if (d->role)
		return snprintf(buf, len, "%s: role '%s' of [%s] (%s:%d), "
				"%s%s = %s (%s:%d)", verdict, d->role,
				d->grantee, d->file, d->grantee_line,
				d->below ? "under " : "", d->perm, d->pattern,
				d->file, d->pattern_line);
	if (!d->rule_line)
		return snprintf(buf, len, "%s: %s (built in)", verdict,
				d->rule);
	return snprintf(buf, len, "%s: %s (%s:%d)", verdict, d->rule, d->file,
			d->rule_line);
}

bool policy_uses_groups(const struct policy *p)
{
	for (size_t i = 0; i < p->ngrants; i++)
		if (p->grants[i].group)
			return true;
	return false;
}

bool policy_uses_user(const struct policy *p)
{
	for (size_t i = 0; i < p->nroles; i++)
		for (size_t k = 0; k < p->roles[i].npats; k++)
			if (p->roles[i].pats[k].uses_user)
				return true;
	return false;
}

static const char *const op_names[] = {
	[POLICY_READ] = "read",
	[POLICY_WRITE] = "write",
	[POLICY_LIST] = "list",
	[POLICY_TRAVERSE] = "traverse",
};

const char *policy_op_name(enum policy_op op)
{
	return (size_t)op < sizeof(op_names) / sizeof(op_names[0]) ?
	       op_names[op] : "?";
}

int policy_op_parse(const char *name, enum policy_op *op)
{
	for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++) {
		if (!strcmp(name, op_names[i])) {
			*op = (enum policy_op)i;
			return 0;
		}
	}
	return -EINVAL;
}
