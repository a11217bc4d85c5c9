/*
 * config.c — the daemon's settings: one table of names, kinds and fields,
 * and the one function that sets them, used alike by the INI file (parsed
 * here with inih, whose "non-zero is success" and line numbers stop here),
 * -o options and the command line.  Knows nothing of what the settings do,
 * nor of getopt: main.c derives its options from the table.
 */
#include "phifs/config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FIELD(f) offsetof(struct config, f)

const struct config_setting config_settings[] = {
	{ "key", CONFIG_STRING, FIELD(key), true, true, 0, "SRC",
	  "file:PATH, cmd:COMMAND or passphrase" },
	{ "key_timeout", CONFIG_SECONDS, FIELD(key_timeout), true, true, 0,
	  "SECONDS", "how long a cmd: key source may take (default 30)" },
	{ "foreground", CONFIG_BOOL, FIELD(foreground), false, false, 'f',
	  NULL, "stay in the foreground (default: daemonize once\n"
	  "the mount is ready)" },
	{ "policy", CONFIG_STRING, FIELD(policy), true, true, 0, "FILE",
	  "access policy (not in this build yet)" },
	{ "audit_dir", CONFIG_STRING, FIELD(audit_dir), true, true, 0, "DIR",
	  "integrity log folder (not in this build yet)" },
	{ "socket", CONFIG_STRING, FIELD(socket), true, true, 0, "PATH",
	  "control socket (accepted; not served yet)" },
	{ "options", CONFIG_OPTIONS, FIELD(options), false, false, 'o',
	  "OPT[,OPT...]", "FUSE mount options, e.g. allow_other; also\n"
	  "key=SRC, key_timeout=SECONDS, policy=FILE,\n"
	  "audit_dir=DIR, socket=PATH, no_poll and nonempty,\n"
	  "as an fstab line gives them" },
	{ "nonempty", CONFIG_BOOL, FIELD(nonempty), true, true, 0, NULL,
	  "mount over a folder that is not empty, hiding its\n"
	  "files (default: refused)" },
	{ "poll", CONFIG_NOT_BOOL, FIELD(no_poll), false, false, 0, NULL,
	  NULL },
	{ "no_poll", CONFIG_BOOL, FIELD(no_poll), true, true, 0, NULL,
	  "idle workers sleep at once (default: poll for the\n"
	  "next request for up to 64 us: faster, more CPU);\n"
	  "config: poll = no; fstab: -o no_poll" },
	{ NULL, 0, 0, false, false, 0, NULL, NULL },
};

/* Compares the first n bytes of a with all of b, '-' and '_' alike. */
static bool same_name(const char *a, size_t n, const char *b)
{
	size_t i;

	for (i = 0; i < n && b[i]; i++) {
		char x = a[i] == '-' ? '_' : a[i];
		char y = b[i] == '-' ? '_' : b[i];

		if (x != y)
			return false;
	}
	return i == n && !b[i];
}

static const struct config_setting *find(const char *name, size_t n)
{
	const struct config_setting *s;

	for (s = config_settings; s->name; s++)
		if (same_name(name, n, s->name))
			return s;
	return NULL;
}

const struct config_setting *config_find(const char *name)
{
	return find(name, strlen(name));
}

static int parse_bool(const char *v, bool *out)
{
	if (!v || !strcasecmp(v, "yes") || !strcasecmp(v, "true") ||
	    !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") ||
		 !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* A whole number of seconds, 1 to a day: a longer wait is a hang. */
static int parse_seconds(const char *v, unsigned *out)
{
	unsigned long n;
	char *end;

	if (!v || *v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n < 1 || n > CONFIG_SECONDS_MAX)
		return -EINVAL;
	*out = (unsigned)n;
	return 0;
}

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int append(char **dst, const char *v, size_t n)
{
	size_t a = *dst ? strlen(*dst) : 0;
	char *s = realloc(*dst, a + n + 2);

	if (!s)
		return -ENOMEM;
	if (a)
		s[a++] = ',';
	memcpy(s + a, v, n);
	s[a + n] = 0;
	*dst = s;
	return 0;
}

/* Sets one element of an options list, or hands it on to FUSE. */
static int set_option(struct config *c, const char *o, size_t len,
		      char *why, size_t why_len)
{
	size_t n = strcspn(o, "=");
	const struct config_setting *s;
	char *v;
	int rc;

	if (n > len)
		n = len;
	s = find(o, n);
	/* Not ours: FUSE says whether it knows it. */
	if (!s || !s->by_o)
		return append(&c->options, o, len);
	if (n == len)
		return config_set(c, s->name, NULL, why, why_len);
	v = strndup(o + n + 1, len - n - 1);
	if (!v) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	rc = config_set(c, s->name, v, why, why_len);
	free(v);
	return rc;
}

static int set_options(struct config *c, const char *list, char *why,
		       size_t why_len)
{
	int rc = 0;

	while (!rc && *list) {
		size_t len = strcspn(list, ",");

		if (len)
			rc = set_option(c, list, len, why, why_len);
		list += len + (list[len] == ',');
	}
	return rc;
}

int config_set(struct config *c, const char *name, const char *value,
	       char *why, size_t why_len)
{
	const struct config_setting *s = config_find(name);
	void *field;
	bool b;
	int rc;

	if (!s) {
		snprintf(why, why_len, "unknown setting '%s'", name);
		return -EINVAL;
	}
	field = (char *)c + s->offset;
	switch (s->kind) {
	case CONFIG_STRING:
		rc = value ? set_str(field, value) : -EINVAL;
		break;
	case CONFIG_BOOL:
	case CONFIG_NOT_BOOL:
		rc = parse_bool(value, &b);
		if (!rc)
			*(bool *)field = s->kind == CONFIG_BOOL ? b : !b;
		break;
	case CONFIG_SECONDS:
		rc = parse_seconds(value, field);
		break;
	case CONFIG_OPTIONS:
		/* set_options says why itself: the element may be at fault. */
		return value ? set_options(c, value, why, why_len) : -EINVAL;
	default:
		abort();	/* a table entry of no kind is a bug */
	}
	if (rc == -ENOMEM)
		snprintf(why, why_len, "out of memory");
	else if (rc)
		snprintf(why, why_len, "bad value for '%s'", s->name);
	return rc;
}

/* inih gives the handler no line number; it returns the first bad one. */
struct parse {
	struct config *c;
	int rc;			/* of the first bad line */
	char why[128];		/* what is wrong with it */
};

static int on_setting(void *arg, const char *section, const char *name,
		      const char *value)
{
	struct parse *p = arg;
	char why[sizeof(p->why)];
	int rc;

	if (*section && strcmp(section, "phifs")) {
		snprintf(why, sizeof(why), "unknown section [%s]", section);
		rc = -EINVAL;
	} else {
		rc = config_set(p->c, name, value, why, sizeof(why));
	}
	/* inih goes on after a bad line: keep the first one's reason. */
	if (rc && !p->rc) {
		p->rc = rc;
		memcpy(p->why, why, sizeof(why));
	}
	return rc == 0;
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
	if (r < 0) {
		/* inih's own allocation failed (it says -2). */
		snprintf(err, err_len, "%s: out of memory", path);
		return -ENOMEM;
	}
	snprintf(err, err_len, "%s:%d: %s", path, r,
		 p.rc ? p.why : "syntax error");
	return p.rc ? p.rc : -EINVAL;
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
