/*
 * policy_parse.c — a policy's INI text compiled into roles, patterns and
 * grants, strictly: whatever the language (docs/POLICY.md) does not allow
 * is an error naming file and line.  The text comes from the caller and
 * names from its resolver; reads no file, knows nothing of FUSE.
 */
#include "policy_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/ini.h"

const char *const pol_perm_names[PERM_N] = { "read", "write", "list" };

enum pol_section { SEC_NONE, SEC_DEFAULTS, SEC_ROLE, SEC_GRANT };

/* What the parse of one text knows. */
struct pstate {
	struct policy *p;
	const struct policy_resolver *r;
	enum pol_section cur;
	int defaults_line;	/* of [defaults], or 0 */
};

static int why_says(char *why, size_t why_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Says the reason in why; -EINVAL. */
static int why_says(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Grows *arr (of *n elements of size sz) by one zeroed element. */
static void *grow(void *arr_p, size_t *n, size_t sz)
{
	void **arr = arr_p;
	char *a = realloc(*arr, (*n + 1) * sz);

	if (!a)
		return NULL;
	memset(a + *n * sz, 0, sz);
	*arr = a;
	return a + (*n)++ * sz;
}

/* Role names and user and group names: portable, and never empty. */
static bool name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._-", *s))
			return false;
	return true;
}

/* A decimal id below 2^32 - 1 (that one is the kernel's "no id"). */
static bool parse_id(const char *s, uint32_t *id)
{
	unsigned long long v = 0;

	if (!*s || strlen(s) > 10)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned)(*s - '0');
	}
	if (v >= UINT32_MAX)
		return false;
	*id = (uint32_t)v;
	return true;
}

/* A user or group name or number to its id. */
static int resolve(struct pstate *s, bool group, const char *name,
		   uint32_t *id, char *why, size_t why_len)
{
	int (*fn)(void *, const char *, uint32_t *) =
		group ? s->r->group : s->r->user;
	const char *kind = group ? "group" : "user";
	int rc;

	if (parse_id(name, id))
		return 0;
	if (!name_ok(name))
		return why_says(why, why_len, "bad %s name '%s'", kind, name);
	rc = fn ? fn(s->r->ctx, name, id) : -ENOENT;
	if (rc == -ENOENT)
		return why_says(why, why_len, "no %s named '%s'", kind, name);
	if (rc)
		snprintf(why, why_len, "cannot look up %s '%s': %s", kind,
			 name, strerror(-rc));
	return rc;
}

static int role_section(struct pstate *s, char *name, int line, char *why,
			size_t why_len)
{
	struct policy *p = s->p;
	struct pol_role *r;

	if (!name_ok(name))
		return why_says(why, why_len, "bad role name '%s'", name);
	for (size_t i = 0; i < p->nroles; i++)
		if (!strcmp(p->roles[i].name, name))
			return why_says(why, why_len, "section [role:%s] "
					"given twice (first at line %d)",
					name, p->roles[i].line);
	r = grow(&p->roles, &p->nroles, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->line = line;
	r->name = strdup(name);
	return r->name ? 0 : -ENOMEM;
}

static int grant_section(struct pstate *s, bool group, char *name, int line,
			 char *why, size_t why_len)
{
	struct policy *p = s->p;
	struct pol_grant *g;
	uint32_t id;
	int rc;

	rc = resolve(s, group, name, &id, why, why_len);
	if (rc)
		return rc;
	for (size_t i = 0; i < p->ngrants; i++)
		if (p->grants[i].group == group && p->grants[i].id == id)
			return why_says(why, why_len, "%s %u given twice "
					"(first as [%s] at line %d)",
					group ? "group" : "user", id,
					p->grants[i].section,
					p->grants[i].line);
	g = grow(&p->grants, &p->ngrants, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->group = group;
	g->id = id;
	g->line = line;
	if (asprintf(&g->section, "%s:%s", group ? "group" : "user",
		     name) < 0) {
		g->section = NULL;	/* asprintf leaves it undefined */
		return -ENOMEM;
	}
	return 0;
}

static int on_section(void *ctx, char *name, int line, char *why,
		      size_t why_len)
{
	struct pstate *s = ctx;
	char *colon = strchr(name, ':');
	char *arg = colon ? colon + 1 : NULL;

	if (!strcmp(name, "defaults")) {
		if (s->defaults_line)
			return why_says(why, why_len, "section [defaults] "
					"given twice (first at line %d)",
					s->defaults_line);
		s->defaults_line = line;
		s->cur = SEC_DEFAULTS;
		return 0;
	}
	if (colon)
		*colon = 0;
	if (colon && !strcmp(name, "role")) {
		s->cur = SEC_ROLE;
		return role_section(s, arg, line, why, why_len);
	}
	if (colon && (!strcmp(name, "user") || !strcmp(name, "group"))) {
		s->cur = SEC_GRANT;
		return grant_section(s, name[0] == 'g', arg, line, why,
				     why_len);
	}
	if (colon)
		*colon = ':';
	return why_says(why, why_len, "unknown section [%s]", name);
}

static int defaults_key(struct pstate *s, const char *key, const char *value,
			int line, char *why, size_t why_len)
{
	struct policy *p = s->p;
	bool *field;
	int *at;

	if (!strcmp(key, "unmatched")) {
		field = &p->unmatched_allow;
		at = &p->unmatched_line;
	} else if (!strcmp(key, "root")) {
		field = &p->root_allow;
		at = &p->root_line;
	} else {
		return why_says(why, why_len, "unknown key '%s' in [defaults]",
				key);
	}
	if (*at)
		return why_says(why, why_len, "'%s' given twice (first at "
				"line %d)", key, *at);
	if (strcmp(value, "deny") && strcmp(value, "allow"))
		return why_says(why, why_len, "bad value for '%s': '%s' "
				"(deny or allow)", key, value);
	*field = !strcmp(value, "allow");
	*at = line;
	return 0;
}

/* One component of a pattern, checked and classified. */
static int compile_comp(const char *pat, struct pol_comp *c, bool *uses_user,
			char *why, size_t why_len)
{
	const char *t = c->text, *end = t + c->len;

	if (c->len == 0)
		return why_says(why, why_len, "empty component in '%s'", pat);
	if ((c->len == 1 && t[0] == '.') ||
	    (c->len == 2 && t[0] == '.' && t[1] == '.'))
		return why_says(why, why_len, "'%.*s' in '%s': a pattern may "
				"not step out of its path", (int)c->len, t,
				pat);
	if (memchr(t, '*', c->len)) {
		if (strspn(t, "*") != c->len || c->len > 2)
			return why_says(why, why_len, "'%.*s' in '%s': '*' and "
					"'**' stand alone", (int)c->len, t,
					pat);
		c->kind = c->len == 1 ? TOK_STAR : TOK_DSTAR;
		return 0;
	}
	for (const char *q = t; q < end; q++) {
		const char *close;
		size_t n;

		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			return why_says(why, why_len, "control character in "
					"'%s'", pat);
		if (*q != '$' || q + 1 == end || q[1] != '{')
			continue;
		close = memchr(q, '}', (size_t)(end - q));
		if (!close)
			return why_says(why, why_len, "'${' without '}' in "
					"'%s'", pat);
		n = (size_t)(close - q - 2);
		if (!((n == 3 && !memcmp(q + 2, "uid", 3)) ||
		      (n == 3 && !memcmp(q + 2, "gid", 3)) ||
		      (n == 4 && !memcmp(q + 2, "user", 4))))
			return why_says(why, why_len, "unknown variable "
					"'%.*s' in '%s' (${uid}, ${gid} or "
					"${user})", (int)(n + 3), q, pat);
		*uses_user |= n == 4;
		c->has_var = true;
		q = close;
	}
	c->kind = TOK_NAME;
	return 0;
}

/* Compiles pattern text (n bytes) into *pt. */
static int compile_pattern(const char *text, size_t n, struct pol_pattern *pt,
			   char *why, size_t why_len)
{
	size_t cap;
	int rc;

	pt->src = strndup(text, n);
	if (!pt->src)
		return -ENOMEM;
	if (pt->src[0] != '/')
		return why_says(why, why_len, "pattern '%s' is relative: it "
				"starts with '/'", pt->src);
	if (n == 1)
		return 0;	/* "/": the root alone */
	cap = 1;
	for (size_t i = 1; i < n; i++)
		cap += pt->src[i] == '/';
	pt->comps = calloc(cap, sizeof(*pt->comps));
	if (!pt->comps)
		return -ENOMEM;
	for (const char *c = pt->src + 1;; ) {
		size_t len = strcspn(c, "/");
		struct pol_comp *k = &pt->comps[pt->ncomps++];

		k->text = c;
		k->len = len;
		rc = compile_comp(pt->src, k, &pt->uses_user, why, why_len);
		if (rc)
			return rc;
		if (!c[len])
			break;
		c += len + 1;
	}
	return 0;
}

/* A pattern list: patterns apart by commas or blanks, none empty. */
static int role_key(struct pstate *s, const char *key, const char *value,
		    int line, char *why, size_t why_len)
{
	struct pol_role *r = &s->p->roles[s->p->nroles - 1];
	bool need = true;
	int perm, rc;

	for (perm = 0; perm < PERM_N; perm++)
		if (!strcmp(key, pol_perm_names[perm]))
			break;
	if (perm == PERM_N)
		return why_says(why, why_len, "unknown permission '%s' in "
				"[role:%s] (read, write or list)", key,
				r->name);
	if (r->perm_line[perm])
		return why_says(why, why_len, "'%s' given twice in [role:%s] "
				"(first at line %d); list its patterns in one "
				"line", key, r->name, r->perm_line[perm]);
	r->perm_line[perm] = line;
	for (const char *v = value;; ) {
		struct pol_pattern *pt;
		size_t n;

		v += strspn(v, " \t");
		if (!*v || *v == ',') {
			if (need)
				return why_says(why, why_len, "empty pattern "
						"in '%s'", key);
			if (!*v)
				return 0;
			need = true;
			v++;
			continue;
		}
		n = strcspn(v, ", \t");
		pt = grow(&r->pats, &r->npats, sizeof(*pt));
		if (!pt)
			return -ENOMEM;
		pt->perm = (enum pol_perm)perm;
		pt->line = line;
		rc = compile_pattern(v, n, pt, why, why_len);
		if (rc)
			return rc;
		need = false;
		v += n;
	}
}

static int grant_key(struct pstate *s, const char *key, const char *value,
		     int line, char *why, size_t why_len)
{
	struct pol_grant *g = &s->p->grants[s->p->ngrants - 1];

	if (strcmp(key, "roles"))
		return why_says(why, why_len, "unknown key '%s' in [%s] "
				"(roles)", key, g->section);
	if (g->roles_line)
		return why_says(why, why_len, "'roles' given twice (first at "
				"line %d)", g->roles_line);
	g->roles_line = line;
	g->role_names = strdup(value);
	return g->role_names ? 0 : -ENOMEM;
}

static int on_key(void *ctx, char *key, char *value, int line, char *why,
		  size_t why_len)
{
	struct pstate *s = ctx;

	switch (s->cur) {
	case SEC_DEFAULTS:
		return defaults_key(s, key, value, line, why, why_len);
	case SEC_ROLE:
		return role_key(s, key, value, line, why, why_len);
	case SEC_GRANT:
		return grant_key(s, key, value, line, why, why_len);
	default:
		return why_says(why, why_len, "'%s' outside a section", key);
	}
}

static const struct ini_ops policy_ini_ops = {
	.section = on_section,
	.key = on_key,
};

static int role_index(const struct policy *p, const char *name, size_t n)
{
	for (size_t i = 0; i < p->nroles; i++)
		if (strlen(p->roles[i].name) == n &&
		    !memcmp(p->roles[i].name, name, n))
			return (int)i;
	return -1;
}

/* roles = a, b: names of roles the file defines, each once. */
static int resolve_roles(struct policy *p, struct pol_grant *g, char *err,
			 size_t err_len)
{
	const char *v = g->role_names;
	size_t cap = 1;

	if (!g->roles_line) {
		snprintf(err, err_len, "%s:%d: [%s] grants no role: 'roles =' "
			 "missing", p->file, g->line, g->section);
		return -EINVAL;
	}
	for (const char *q = v; *q; q++)
		cap += *q == ',' || *q == ' ' || *q == '\t';
	g->roles = calloc(cap, sizeof(*g->roles));
	if (!g->roles)
		return -ENOMEM;
	for (bool need = true;; ) {
		size_t n;
		int i;

		v += strspn(v, " \t");
		if (!*v || *v == ',') {
			if (need)
				goto empty;
			if (!*v)
				break;
			need = true;
			v++;
			continue;
		}
		n = strcspn(v, ", \t");
		i = role_index(p, v, n);
		if (i < 0) {
			snprintf(err, err_len, "%s:%d: unknown role '%.*s'",
				 p->file, g->roles_line, (int)n, v);
			return -EINVAL;
		}
		for (size_t k = 0; k < g->nroles; k++) {
			if (g->roles[k] == (size_t)i) {
				snprintf(err, err_len, "%s:%d: role '%.*s' "
					 "named twice", p->file,
					 g->roles_line, (int)n, v);
				return -EINVAL;
			}
		}
		g->roles[g->nroles++] = (size_t)i;
		need = false;
		v += n;
	}
	free(g->role_names);
	g->role_names = NULL;
	return 0;
empty:
	snprintf(err, err_len, "%s:%d: empty role name in 'roles'", p->file,
		 g->roles_line);
	return -EINVAL;
}

int policy_parse(const char *file, const char *text, size_t len,
		 const struct policy_resolver *r, struct policy **out,
		 char *err, size_t err_len)
{
	static const struct policy_resolver none = { 0 };
	struct pstate s = { .r = r ? r : &none };
	/* ini_parse cuts the text in place; the caller's stays whole. */
	char *copy = malloc(len + 1);
	int rc = -ENOMEM;

	s.p = calloc(1, sizeof(*s.p));
	if (!copy || !s.p || !(s.p->file = strdup(file)))
		goto out;
	memcpy(copy, text, len);
	copy[len] = 0;
	rc = ini_parse(file, copy, len, POLICY_MAX_LINE, &policy_ini_ops, &s,
		       err, err_len);
	/* Roles may be named before their section: resolved at the end. */
	for (size_t i = 0; !rc && i < s.p->ngrants; i++)
		rc = resolve_roles(s.p, &s.p->grants[i], err, err_len);
	if (!rc) {
		*out = s.p;
		s.p = NULL;	/* transferred */
	}
out:
	if (rc == -ENOMEM)
		snprintf(err, err_len, "%s: out of memory", file);
	policy_free(s.p);
	free(copy);
	return rc;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nroles; i++) {
		for (size_t k = 0; k < p->roles[i].npats; k++) {
			free(p->roles[i].pats[k].src);
			free(p->roles[i].pats[k].comps);
		}
		free(p->roles[i].pats);
		free(p->roles[i].name);
	}
	for (size_t i = 0; i < p->ngrants; i++) {
		free(p->grants[i].section);
		free(p->grants[i].roles);
		free(p->grants[i].role_names);
	}
	free(p->roles);
	free(p->grants);
	free(p->file);
	free(p);
}
