/*
 * config.c — the daemon's settings: one table of names, kinds and fields,
 * and the one function that sets them, used alike by the INI file (parsed
 * by ini.c, strictly), -o options and the command line.  Knows nothing of
 * what the settings do, nor of getopt: main.c derives its options from the
 * table.
 */
#include "phifs/config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "phifs/ini.h"

#define FIELD(f) offsetof(struct config, f)

/* The first of each is the default (0 in a zeroed struct config). */
const char *const config_audit_syncs[] = { "batch", "always", "none", NULL };
const char *const config_audit_failures[] = { "deny", "allow", NULL };
const char *const config_audit_reads[] = { "normal", "strict", NULL };
const char *const config_audit_paths[] = { "plain", "pseudonymous", NULL };

const struct config_setting config_settings[] = {
	{ "key", CONFIG_STRING, FIELD(key), true, true, 0, "SRC",
	  "file:PATH, cmd:COMMAND or passphrase", NULL, NULL },
	{ "key_timeout", CONFIG_SECONDS, FIELD(key_timeout), true, true, 0,
	  "SECONDS", "how long a cmd: key source may take (default 30)", NULL, NULL },
	{ "foreground", CONFIG_BOOL, FIELD(foreground), false, false, 'f',
	  NULL, "stay in the foreground (default: daemonize once\n"
	  "the mount is ready)", NULL, NULL },
	{ "policy", CONFIG_STRING, FIELD(policy), true, true, 0, "FILE",
	  "access policy by role, uid and group\n"
	  "(docs/POLICY.md); re-read on reload", NULL, NULL },
	{ "policy_cache", CONFIG_BOOL, FIELD(policy_cache), true, true, 0,
	  NULL, "under --policy, let the kernel answer lookups and\n"
	  "stat for 60 s from what any user looked up: faster,\n"
	  "but shows names and attributes across users\n"
	  "(SECURITY.md); default: each one is judged", NULL, NULL },
	{ "audit_dir", CONFIG_STRING, FIELD(audit_dir), true, true, 0, "DIR",
	  "integrity log folder (default BACKING/.phifs/audit;\n"
	  "more in the config file's [audit] section)", NULL, NULL },
	{ "no_audit", CONFIG_BOOL, FIELD(no_audit), true, true, 0, NULL,
	  "keep no integrity log (default: one is kept)", NULL, NULL },
	{ "socket", CONFIG_STRING, FIELD(socket), true, true, 0, "PATH",
	  "control socket (default BACKING/.phifs/control.sock)", NULL, NULL },
	{ "options", CONFIG_OPTIONS, FIELD(options), false, false, 'o',
	  "OPT[,OPT...]", "FUSE mount options, e.g. allow_other; also\n"
	  "key=SRC, key_timeout=SECONDS, policy=FILE,\n"
	  "audit_dir=DIR, socket=PATH, no_poll, no_xattr,\n"
	  "nonempty and policy_cache,\n"
	  "as an fstab line gives them", NULL, NULL },
	{ "nonempty", CONFIG_BOOL, FIELD(nonempty), true, true, 0, NULL,
	  "mount over a folder that is not empty, hiding its\n"
	  "files (default: refused)", NULL, NULL },
	{ "poll", CONFIG_NOT_BOOL, FIELD(no_poll), false, false, 0, NULL,
	  NULL, NULL, NULL },
	{ "no_poll", CONFIG_BOOL, FIELD(no_poll), true, true, 0, NULL,
	  "idle workers sleep at once (default: poll for the\n"
	  "next request for up to 64 us: faster, more CPU);\n"
	  "config: poll = no; fstab: -o no_poll", NULL, NULL },
	{ "xattr", CONFIG_NOT_BOOL, FIELD(no_xattr), false, false, 0, NULL,
	  NULL, NULL, NULL },
	{ "no_xattr", CONFIG_BOOL, FIELD(no_xattr), true, true, 0, NULL,
	  "refuse extended attributes: the kernel then stops\n"
	  "asking for security.capability before every write,\n"
	  "which makes small writes faster; config: xattr = no", NULL, NULL },
	/* The [audit] section (docs/AUDIT.md, "Settings"). */
	{ .name = "dir", .kind = CONFIG_STRING, .offset = FIELD(audit_dir),
	  .section = "audit" },
	{ .name = "sync", .kind = CONFIG_CHOICE, .offset = FIELD(audit_sync),
	  .section = "audit", .choices = config_audit_syncs },
	{ .name = "on_failure", .kind = CONFIG_CHOICE,
	  .offset = FIELD(audit_on_failure), .section = "audit",
	  .choices = config_audit_failures },
	{ .name = "segment_size", .kind = CONFIG_COUNT,
	  .offset = FIELD(audit_segment_size), .section = "audit" },
	{ .name = "segment_age", .kind = CONFIG_SECONDS,
	  .offset = FIELD(audit_segment_age), .section = "audit" },
	{ .name = "checkpoint_records", .kind = CONFIG_COUNT,
	  .offset = FIELD(audit_checkpoint_records), .section = "audit" },
	{ .name = "checkpoint_ms", .kind = CONFIG_COUNT,
	  .offset = FIELD(audit_checkpoint_ms), .section = "audit" },
	{ .name = "reads", .kind = CONFIG_CHOICE, .offset = FIELD(audit_reads),
	  .section = "audit", .choices = config_audit_reads },
	{ .name = "paths", .kind = CONFIG_CHOICE, .offset = FIELD(audit_paths),
	  .section = "audit", .choices = config_audit_paths },
	{ NULL, 0, 0, false, false, 0, NULL, NULL, NULL, NULL },
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

/* The setting name in section (NULL: the top level and [phifs]). */
static const struct config_setting *find_in(const char *section,
					    const char *name, size_t n)
{
	const struct config_setting *s;

	for (s = config_settings; s->name; s++)
		if (same_name(name, n, s->name) &&
		    (section ? s->section && !strcmp(section, s->section) :
			       !s->section))
			return s;
	return NULL;
}

static const struct config_setting *find(const char *name, size_t n)
{
	return find_in(NULL, name, n);
}

const struct config_setting *config_find(const char *name)
{
	return find(name, strlen(name));
}

const struct config_setting *config_find_in(const char *section,
					    const char *name)
{
	return find_in(section, name, strlen(name));
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

/* A whole number from 1 up (a count, bytes, milliseconds). */
static int parse_count(const char *v, uint64_t *out)
{
	unsigned long long n;
	char *end;

	if (!v || *v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || n < 1)
		return -EINVAL;
	*out = n;
	return 0;
}

/* One of the names in choices: its index. */
static int parse_choice(const char *v, const char *const *choices,
			unsigned *out)
{
	for (unsigned i = 0; v && choices[i]; i++) {
		if (!strcmp(v, choices[i])) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* "a, b or c", for a refusal. */
static void say_choices(const char *const *choices, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = 0;
	for (unsigned i = 0; choices[i] && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%s",
				       i ? choices[i + 1] ? ", " : " or " : "",
				       choices[i]);
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
	return config_set_in(c, NULL, name, value, why, why_len);
}

int config_set_in(struct config *c, const char *section, const char *name,
		  const char *value, char *why, size_t why_len)
{
	const struct config_setting *s = find_in(section, name, strlen(name));
	char names[128];
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
	case CONFIG_COUNT:
		rc = parse_count(value, field);
		break;
	case CONFIG_CHOICE:
		rc = parse_choice(value, s->choices, field);
		if (rc == -EINVAL) {
			say_choices(s->choices, names, sizeof(names));
			snprintf(why, why_len, "bad value for '%s' (%s)",
				 s->name, names);
			return rc;
		}
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

/*
 * The file is read by ini.c, strictly (see ini.h for why not inih); what
 * its sections and keys mean is decided here.
 */

/* What the parse of one file knows. */
struct parse {
	struct config *c;
	int set_at[CONFIG_MAX_SETTINGS];	/* line of each setting, or 0 */
	int phifs_at;		/* line of [phifs], or 0 */
	int audit_at;		/* line of [audit], or 0 */
	const char *section;	/* NULL: top level or [phifs] */
};

static int on_section(void *ctx, char *name, int line, char *why,
		      size_t why_len)
{
	struct parse *p = ctx;
	int *at;

	if (!strcmp(name, "phifs")) {
		at = &p->phifs_at;
		p->section = NULL;
	} else if (!strcmp(name, "audit")) {
		at = &p->audit_at;
		p->section = "audit";
	} else {
		snprintf(why, why_len, "unknown section [%s]", name);
		return -EINVAL;
	}
	if (*at) {
		snprintf(why, why_len, "section [%s] given twice (first at "
			 "line %d)", name, *at);
		return -EINVAL;
	}
	*at = line;
	return 0;
}

static int on_setting(void *ctx, char *name, char *value, int line,
		      char *why, size_t why_len)
{
	struct parse *p = ctx;
	const struct config_setting *s, *t;

	s = find_in(p->section, name, strlen(name));
	if (!s) {
		snprintf(why, why_len, "unknown setting '%s'%s%s%s", name,
			 p->section ? " in [" : "",
			 p->section ? p->section : "", p->section ? "]" : "");
		return -EINVAL;
	}
	/*
	 * Twice in one file is a mistake, the top level and [phifs] alike,
	 * and so are two names of one field (poll, no_poll); only options
	 * lines add up.
	 */
	for (t = config_settings; t->name && s->kind != CONFIG_OPTIONS; t++) {
		if (t->offset == s->offset && p->set_at[t - config_settings]) {
			snprintf(why, why_len, "'%s' given twice (first at "
				 "line %d)", name,
				 p->set_at[t - config_settings]);
			return -EINVAL;
		}
	}
	p->set_at[s - config_settings] = line;
	return config_set_in(p->c, s->section, s->name, value, why, why_len);
}

static const struct ini_ops config_ini_ops = {
	.section = on_section,
	.key = on_setting,
};

int config_load(const char *path, struct config *c, char *err,
		size_t err_len)
{
	struct parse p = { .c = c };
	char *text = NULL;
	size_t len = 0, n = 0;
	int rc;

	while (config_settings[n].name)
		n++;
	if (n > CONFIG_MAX_SETTINGS)
		abort();	/* the table outgrew set_at: a bug */
	rc = ini_read_file(path, CONFIG_MAX_FILE, "config file", &text, &len,
			   err, err_len);
	if (!rc)
		rc = ini_parse(path, text, len, CONFIG_MAX_LINE, &config_ini_ops,
			       &p, err, err_len);
	free(text);
	return rc;
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
