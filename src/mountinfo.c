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

int mountinfo_dev(FILE *f, const char *path, unsigned *maj, unsigned *min)
{
	char *line = NULL, *mp = NULL;
	size_t cap = 0;
	int rc = -ENOENT;
	unsigned a, b;

	while (getline(&line, &cap, f) > 0) {
		free(mp);
		mp = NULL;
		if (sscanf(line, "%*u %*u %u:%u %*s %ms", &a, &b, &mp) != 3)
			continue;
		unescape(mp);
		if (!strcmp(mp, path)) {	/* the last one wins */
			*maj = a;
			*min = b;
			rc = 0;
		}
	}
	free(mp);
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
