/*
 * test_rotate.c — the keystore changed under running workers, without
 * FUSE: snapshots published while threads create and open files.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "phifs/cfile.h"
#include "phifs/keys.h"
#include "phifs/volume.h"
#include "volfixture.h"

static char dir[64], keyfile[128];
static struct volume *vol;

static void setup(void)
{
	strcpy(dir, "/tmp/phifs-rotate-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	vol = vf_make(dir, keyfile, sizeof(keyfile));
}

static void teardown(void)
{
	char cmd[200];

	volume_close(vol);
	snprintf(cmd, sizeof(cmd), "rm -rf %.60s %.90s", dir, keyfile);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(rotate, .init = setup, .fini = teardown);

#define WORKERS 3
#define ROTATIONS 40

static atomic_bool rotating;

struct worker {
	int id;
	unsigned files;
	int rc;			/* the first failure */
	char what[64];
};

/* Creates one file, writes it, opens it again and reads it back. */
static int one_file(struct worker *w, unsigned k)
{
	char name[128], buf[100], back[100];
	struct cfile *f;
	int fd, rc;

	snprintf(name, sizeof(name), "%s/w%d-%u", dir, w->id, k);
	memset(buf, 'a' + (k % 26), sizeof(buf));
	fd = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -errno;
	rc = cfile_create(fd, &vol->cv, &f);
	if (!rc) {
		rc = cfile_pwrite(f, buf, sizeof(buf), 0) == sizeof(buf) ?
			0 : -EIO;
		if (!rc)
			rc = cfile_release(f);
		else
			(void)cfile_release(f);
	}
	if (!rc)
		rc = cfile_open(fd, &vol->cv, &f);
	if (!rc) {
		rc = cfile_pread(f, back, sizeof(back), 0) == sizeof(back) &&
		     !memcmp(buf, back, sizeof(buf)) ? 0 : -EBADMSG;
		(void)cfile_release(f);
	}
	close(fd);
	return rc;
}

static void *work(void *arg)
{
	struct worker *w = arg;

	for (unsigned k = 0; !w->rc && (rotating || k < 20); k++) {
		int rc = one_file(w, k);

		if (rc) {
			w->rc = rc;
			snprintf(w->what, sizeof(w->what), "file %u", k);
		}
		w->files++;
	}
	return NULL;
}

static int rotate_change(struct keys_store *ks, void *arg, char *err,
			 size_t len)
{
	(void)arg;
	(void)err;
	(void)len;
	return keys_rotate(ks, NULL);
}

Test(rotate, snapshots_published_under_workers)
{
	pthread_t th[WORKERS];
	struct worker w[WORKERS] = { 0 };
	char err[256];
	uint32_t first = vol->cv.active_version;

	rotating = true;
	for (int i = 0; i < WORKERS; i++) {
		w[i].id = i;
		cr_assert_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (int r = 0; r < ROTATIONS; r++)
		cr_assert_eq(volume_keys_change(vol, rotate_change, NULL, err,
						sizeof(err)), 0, "%s", err);
	rotating = false;
	for (int i = 0; i < WORKERS; i++) {
		cr_assert_eq(pthread_join(th[i], NULL), 0);
		cr_expect_eq(w[i].rc, 0, "worker %d, %s: %s", i, w[i].what,
			     strerror(-w[i].rc));
		cr_expect_gt(w[i].files, 0);
	}
	/* Published in order: the keystore in force and the version new
	 * files get agree, and the saved keystore is the same one. */
	cr_assert_eq(vol->cv.active_version, first + ROTATIONS);
	cr_assert_eq(keys_active_version(vol->keys), first + ROTATIONS);
	cr_assert_not_null(keys_kek(vol->keys, first));
	{
		char spec[160];
		struct volume *again;

		snprintf(spec, sizeof(spec), "file:%s", keyfile);
		cr_assert_eq(volume_open(dir, spec, false, &again, err,
					 sizeof(err)), 0, "%s", err);
		cr_assert_eq(again->cv.active_version, first + ROTATIONS);
		volume_close(again);
	}
}

static int fail_change(struct keys_store *ks, void *arg, char *err,
		       size_t len)
{
	(void)arg;
	cr_assert_eq(keys_rotate(ks, NULL), 0);
	snprintf(err, len, "no");
	return -EPERM;
}

Test(rotate, a_failed_change_publishes_nothing)
{
	const struct keys_store *before = vol->keys;
	uint32_t active = vol->cv.active_version;
	char err[64] = "";

	cr_assert_eq(volume_keys_change(vol, fail_change, NULL, err,
					sizeof(err)), -EPERM);
	cr_assert_str_eq(err, "no");
	cr_assert_eq(vol->keys, before);
	cr_assert_eq(vol->cv.active_version, active);
	cr_assert_eq(keys_versions(vol->keys, NULL, 0), 1);
}
