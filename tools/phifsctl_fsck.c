/*
 * phifsctl_fsck.c — `phifsctl fsck`: argv in, volfsck's findings out, one
 * line each, then a summary.  Holds no logic a test would want to reach.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "phifs/folders.h"
#include "phifs/volfsck.h"
#include "phifs/volume.h"
#include "phifsctl.h"

static void finding(void *arg, bool problem, const char *path,
		    const char *what)
{
	(void)arg;
	printf("%s%s: %s\n", problem ? "" : "note: ", path, what);
}

static void summary(const struct volfsck_report *r)
{
	printf("checked %" PRIu64 " file(s) (%.1f MiB), %" PRIu64
	       " folder(s), %" PRIu64 " symlink(s), %" PRIu64
	       " node record(s), %" PRIu64 " other(s), %" PRIu64
	       " extended attribute(s): %" PRIu64 " problem(s), %" PRIu64
	       " note(s)\n", r->files, (double)r->bytes / (1 << 20),
	       r->folders, r->symlinks, r->records, r->others, r->xattrs,
	       r->problems, r->notes);
}

static int fsck_args(int argc, char **argv, const char **key,
		     const char **backing, bool *adopt)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "key-timeout", required_argument, NULL, 't' },
		{ "adopt-folders", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;

	*key = NULL;
	*adopt = false;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (c == ':')
			return usage("fsck: %s needs a value", argv[optind - 1]);
		if (c == '?')
			return usage("fsck: unknown option '%s'",
				     argv[optind - 1]);
		if (c == 'k')
			*key = optarg;
		else if (c == 'a')
			*adopt = true;
		else if ((rc = set_timeout("fsck", optarg)))
			return rc;
	}
	if (!*key)
		return usage("fsck: --key SRC is required");
	if (argc - optind != 1)
		return usage("fsck: expected BACKING");
	*backing = argv[optind];
	return 0;
}

/* --adopt-folders: records for the folders a restore left without. */
static int adopt_folders(const struct volume *vol, const char *backing)
{
	struct folders_tally t;
	char err[512];

	if (volfsck_adopt_folders(vol, &t, err, sizeof(err)))
		return fail("fsck %s: %s", backing, err);
	printf("adopted folders: %" PRIu64 " walked, %" PRIu64 " given a "
	       "record of the backing's mode and owner (%" PRIu64 " had one "
	       "that did not open), %" PRIu64 " put back to their record's, "
	       "%" PRIu64 " failed\n", t.folders, t.sealed + t.replaced,
	       t.replaced, t.restored, t.failed);
	return t.failed ? fail("fsck %s: %" PRIu64 " folder(s) could not be "
			       "given a record", backing, t.failed) : 0;
}

int cmd_fsck(int argc, char **argv)
{
	struct volfsck_report rep;
	struct volume *vol = NULL;
	const char *key = NULL, *backing = NULL;
	char err[PATH_MAX + 256];
	bool adopt;
	int rc = fsck_args(argc, argv, &key, &backing, &adopt);

	if (rc)
		return rc;
	/* Locked as a daemon locks it: a mount would change files under us. */
	rc = volume_open(backing, key, true, &vol, err, sizeof(err));
	if (rc == -EBUSY)
		return fail("%s; fsck works on an unmounted volume only, "
			    "unmount it first", err);
	if (rc)
		return fail("%s", err);
	if (adopt && (rc = adopt_folders(vol, backing))) {
		volume_close(vol);
		return rc;
	}
	rc = volfsck_run(vol, finding, NULL, &rep, err, sizeof(err));
	volume_close(vol);
	if (rc)
		return fail("fsck %s: %s", backing, err);
	summary(&rep);
	return rep.problems ? 1 : 0;
}
