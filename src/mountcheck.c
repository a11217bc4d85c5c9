/*
 * mountcheck.c — whether a folder may take a phifs mount: checks made
 * before any key is read, so that a mistake costs nothing.  Knows nothing
 * of FUSE sessions or keys.
 */
#include "phifs/mountcheck.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "phifs/errmsg.h"
#include "phifs/mountinfo.h"

/* Whether the absolute, resolved path in is at or below dir. */
static bool is_under(const char *in, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1)	/* "/" */
		return true;
	return !strncmp(in, dir, n) && (in[n] == '/' || !in[n]);
}

/* The first entry of folder path other than . and .., or "" if none. */
static int first_entry(const char *path, char *name, size_t len)
{
	struct dirent *e;
	DIR *d = opendir(path);

	if (!d)
		return -errno;
	*name = 0;
	errno = 0;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(name, len, "%s", e->d_name);
			break;
		}
	}
	closedir(d);
	return 0;
}

/* The type of the file system mounted right on path, or "". */
static void mounted_type(const char *path, char *type, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");

	*type = 0;
	if (f) {
		if (mountinfo_type(f, path, type, len))
			*type = 0;
		fclose(f);
	}
}

int mountcheck(const char *mp, const char *b, bool nonempty, char *err,
	       size_t err_len)
{
	char *rmp = NULL, *rb = NULL;
	char name[256], type[64];
	struct stat st, bst;
	int e, rc;

	if (stat(mp, &st))
		return errmsg(err, err_len, -errno, "mountpoint %s: %s", mp,
			      strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return errmsg(err, err_len, -ENOTDIR,
			      "mountpoint %s: not a directory", mp);
	rmp = realpath(mp, NULL);
	if (!rmp)
		return errmsg(err, err_len, -errno, "mountpoint %s: %s", mp,
			      strerror(errno));
	/* A missing backing folder is the volume's to name. */
	rb = realpath(b, NULL);
	if (rb && !stat(rb, &bst)) {
		if (bst.st_dev == st.st_dev && bst.st_ino == st.st_ino) {
			rc = errmsg(err, err_len, -EINVAL, "mountpoint %s: is "
				    "the backing folder itself", mp);
			goto out;
		}
		if (is_under(rmp, rb)) {
			rc = errmsg(err, err_len, -EINVAL, "mountpoint %s: "
				    "inside the backing folder %s", mp, b);
			goto out;
		}
		if (is_under(rb, rmp)) {
			rc = errmsg(err, err_len, -EINVAL, "backing folder %s: "
				    "inside the mountpoint %s", b, mp);
			goto out;
		}
	}
	/* Another FUSE mount there would be hidden, still running. */
	mounted_type(rmp, type, sizeof(type));
	if (!strcmp(type, "fuse") || !strncmp(type, "fuse.", 5)) {
		rc = errmsg(err, err_len, -EBUSY, "mountpoint %s: already in "
			    "use (a %s mount)", mp, type);
		goto out;
	}
	e = first_entry(mp, name, sizeof(name));
	if (e) {
		rc = errmsg(err, err_len, e, "mountpoint %s: %s", mp,
			    strerror(-e));
		goto out;
	}
	if (*name && !nonempty) {
		rc = errmsg(err, err_len, -ENOTEMPTY, "mountpoint %s: not "
			    "empty (holds '%s'); -o nonempty mounts over it, "
			    "hiding its files", mp, name);
		goto out;
	}
	rc = 0;
out:
	free(rmp);
	free(rb);
	return rc;
}

