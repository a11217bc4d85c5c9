/*
 * config.c — INI settings for the daemon, parsed with inih; inih's
 * "non-zero is success" and line numbers stop here.  Knows nothing of what
 * the settings do.
 */
#include "phifs/config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* inih gives the handler no line number; it returns the first bad one. */
struct parse {
	struct config *c;
	char why[128];		/* what is wrong with the first bad line */
};

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return 0;
	free(*dst);
	*dst = s;
	return 1;
}

static int add_options(char **dst, const char *v)
{
	size_t a = *dst ? strlen(*dst) : 0, b = strlen(v);
	char *s = realloc(*dst, a + b + 2);

	if (!s)
		return 0;
	if (a)
		s[a++] = ',';
	memcpy(s + a, v, b + 1);
	*dst = s;
	return 1;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") ||
		 !strcmp(v, "0"))
		*out = false;
	else
		return 0;
	return 1;
}

static int on_setting(void *arg, const char *section, const char *name,
		      const char *value)
{
	struct parse *p = arg;
	struct config *c = p->c;
	bool poll;
	int ok;

	if (*section && strcmp(section, "phifs")) {
		snprintf(p->why, sizeof(p->why), "unknown section [%s]",
			 section);
		return 0;
	}
	if (!strcmp(name, "key"))
		ok = set_str(&c->key, value);
	else if (!strcmp(name, "options"))
		ok = add_options(&c->options, value);
	else if (!strcmp(name, "policy"))
		ok = set_str(&c->policy, value);
	else if (!strcmp(name, "audit_dir") || !strcmp(name, "audit-dir"))
		ok = set_str(&c->audit_dir, value);
	else if (!strcmp(name, "socket"))
		ok = set_str(&c->socket, value);
	else if (!strcmp(name, "foreground"))
		ok = parse_bool(value, &c->foreground);
	else if (!strcmp(name, "poll")) {
		ok = parse_bool(value, &poll);
		if (ok)
			c->no_poll = !poll;
	}
	else {
		snprintf(p->why, sizeof(p->why), "unknown setting '%s'",
			 name);
		return 0;
	}
	if (!ok)
		snprintf(p->why, sizeof(p->why), "bad value for '%s'", name);
	return ok;
}

int config_load(const char *path, struct config *c, char *err,
		size_t err_len)
{
	struct parse p = { .c = c };
	FILE *f = fopen(path, "re");
	int r;

	if (!f) {
		r = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(-r));
		return r;
	}
	r = ini_parse_file(f, on_setting, &p);
	fclose(f);
	if (r == 0)
		return 0;
	snprintf(err, err_len, "%s:%d: %s", path, r,
		 *p.why ? p.why : "syntax error");
	return -EINVAL;
}

void config_release(struct config *c)
{
	free(c->key);
	free(c->options);
	free(c->policy);
	free(c->audit_dir);
	free(c->socket);
	memset(c, 0, sizeof(*c));
}
