/*
 * mountinfo.c — reads /proc/self/mountinfo and sets a mount's readahead in
 * sysfs.  Knows nothing of FUSE or the volume.
 */
#include "phifs/mountinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++, o++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				    (s[3] - '0'));
			s += 3;
		} else {
			*o = *s;
		}
	}
	*o = 0;
}

/*
 * The last line of f whose mount point is path (the newest mount there),
 * malloc'd, or NULL.
 */
static char *last_mount(FILE *f, const char *path)
{
	char *line = NULL, *mp = NULL, *found = NULL;
	size_t cap = 0;

	while (getline(&line, &cap, f) > 0) {
		free(mp);
		mp = NULL;
		if (sscanf(line, "%*u %*u %*u:%*u %*s %ms", &mp) != 1)
			continue;
		unescape(mp);
		if (!strcmp(mp, path)) {	/* the last one wins */
			free(found);
			found = line;
			line = NULL;	/* transferred */
			cap = 0;
		}
	}
	free(mp);
	free(line);
	return found;
}

int mountinfo_dev(FILE *f, const char *path, unsigned *maj, unsigned *min)
{
	char *line = last_mount(f, path);
	unsigned a, b;
	int rc = -ENOENT;

	if (line && sscanf(line, "%*u %*u %u:%u", &a, &b) == 2) {
		*maj = a;
		*min = b;
		rc = 0;
	}
	free(line);
	return rc;
}

int mountinfo_type(FILE *f, const char *path, char *type, size_t len)
{
	char *line = last_mount(f, path), *sep;
	size_t n;
	int rc = -ENOENT;

	/* The optional fields end at " - "; the type comes next. */
	sep = line ? strstr(line, " - ") : NULL;
	if (sep && len) {
		sep += 3;
		n = strcspn(sep, " \n");
		if (n >= len)
			n = len - 1;
		memcpy(type, sep, n);
		type[n] = 0;
		unescape(type);
		rc = 0;
	}
	free(line);
	return rc;
}

int mountinfo_set_readahead(const char *path, unsigned kb)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	unsigned maj, min;
	char sys[64], val[16];
	int rc, fd, len;
	ssize_t n;

	if (!f)
		return -errno;
	rc = mountinfo_dev(f, path, &maj, &min);
	fclose(f);
	if (rc)
		return rc;
	snprintf(sys, sizeof(sys), "/sys/class/bdi/%u:%u/read_ahead_kb", maj,
		 min);
	fd = open(sys, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(val, sizeof(val), "%u", kb);
	n = write(fd, val, (size_t)len);
	rc = n == len ? 0 : n < 0 ? -errno : -EIO;
	close(fd);
	return rc;
}
