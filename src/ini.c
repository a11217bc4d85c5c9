/*
 * ini.c — the strict INI reader: lines, sections, keys and their line
 * numbers, handed to the caller's callbacks (see ini.h for the grammar and
 * why not inih).  Knows nothing of what a section or key means.
 */
#include "phifs/ini.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/ioutil.h"

/* What the parse of one text knows. */
struct parse {
	const char *path;
	const struct ini_ops *ops;
	void *ctx;
	int line;		/* the current line, from 1 */
	char *err;
	size_t err_len;
};

static int parse_error(struct parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Says "path:line: reason" in p->err; -EINVAL. */
static int parse_error(struct parse *p, const char *fmt, ...)
{
	char why[INI_WHY_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->err_len, "%s:%d: %s", p->path, p->line, why);
	return -EINVAL;
}

/* A callback's answer: its reason placed at the line, or out of memory. */
static int callback_error(struct parse *p, int rc, const char *why)
{
	if (rc == -ENOMEM) {
		snprintf(p->err, p->err_len, "%s: out of memory", p->path);
		return rc;
	}
	if (rc == -EINVAL || *why) {
		parse_error(p, "%s", why);
		return rc;
	}
	snprintf(p->err, p->err_len, "%s:%d: %s", p->path, p->line,
		 strerror(-rc));
	return rc;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

/* Cuts s at a ';' that follows a blank: an inline comment. */
static void cut_comment(char *s)
{
	for (char *q = s; *q; q++) {
		if (*q == ';' && q > s && (q[-1] == ' ' || q[-1] == '\t')) {
			*q = 0;
			return;
		}
	}
}

static int on_section(struct parse *p, char *l)
{
	char *end = strchr(l, ']'), why[INI_WHY_LEN] = "";
	int rc;

	if (!end)
		return parse_error(p, "syntax error: no ']'");
	*end = 0;
	cut_comment(end + 1);
	if (*trim(end + 1))
		return parse_error(p, "syntax error after ']'");
	rc = p->ops->section(p->ctx, trim(l + 1), p->line, why, sizeof(why));
	return rc ? callback_error(p, rc, why) : 0;
}

static int on_key(struct parse *p, char *l)
{
	size_t n = strcspn(l, "=:");
	char *value, why[INI_WHY_LEN] = "";
	int rc;

	if (!l[n])
		return parse_error(p, "syntax error");
	l[n] = 0;
	value = l + n + 1;
	cut_comment(value);
	rc = p->ops->key(p->ctx, trim(l), trim(value), p->line, why,
			 sizeof(why));
	return rc ? callback_error(p, rc, why) : 0;
}

int ini_parse(const char *path, char *text, size_t len, size_t max_line,
	      const struct ini_ops *ops, void *ctx, char *err, size_t err_len)
{
	struct parse p = { .path = path, .ops = ops, .ctx = ctx, .err = err,
			   .err_len = err_len };
	char *l = text, *end = text + len;

	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		l += 3;
	for (p.line = 1; l < end; p.line++) {
		char *nl = memchr(l, '\n', (size_t)(end - l));
		size_t n = nl ? (size_t)(nl - l) : (size_t)(end - l);
		int rc = 0;

		if (memchr(l, 0, n))
			return parse_error(&p, "NUL byte in the line");
		if (n > max_line)
			return parse_error(&p, "line longer than %zu bytes",
					   max_line);
		l[n] = 0;
		l = trim(l);
		if (*l == '[')
			rc = on_section(&p, l);
		else if (*l && *l != ';' && *l != '#')
			rc = on_key(&p, l);
		if (rc)
			return rc;
		if (!nl)
			break;
		l = nl + 1;
	}
	return 0;
}

int ini_read_file(const char *path, size_t max, const char *what,
		  char **text, size_t *len, char *err, size_t err_len)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int fd, rc;

	/* O_NONBLOCK: a FIFO's open would wait for a writer. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st)) {
		rc = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		if (rc == -EISDIR)
			snprintf(err, err_len, "%s: is a folder, not a %s",
				 path, what);
		else
			snprintf(err, err_len, "%s: not a regular file", path);
		goto out;
	}
	if ((unsigned long long)st.st_size > max) {
		rc = -EFBIG;
		snprintf(err, err_len, "%s: larger than %zu bytes", path, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		snprintf(err, err_len, "%s: out of memory", path);
		goto out;
	}
	/* Up to the size fstat saw: a file that grows meanwhile is cut. */
	rc = ioutil_read_all(fd, buf, (size_t)st.st_size, &n);
	if (rc < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(-rc));
		goto out;
	}
	buf[n] = 0;
	*text = buf;
	buf = NULL;	/* transferred */
	*len = n;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}
