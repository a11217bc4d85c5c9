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
#include "phifs/nodes.h"
#include "phifs/rotate.h"
#include "phifs/volume.h"
#include "testutil.h"
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

/* --- re-wrapping while files are open (nodes_rewrap, rotate) --- */

/* A new file `name` of the volume on fd (O_RDWR), as the mount makes one. */
static int new_backing(const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	cr_assert_geq(fd, 0, "%s", path);
	return fd;
}

static uint32_t version_of(const char *name)
{
	uint32_t ver = 0;
	int fd = new_backing(name);

	cr_assert_eq(cfile_header_version(fd, &vol->cv, &ver), 0);
	close(fd);
	return ver;
}

static uint32_t new_version(void)
{
	char err[256];

	cr_assert_eq(volume_keys_change(vol, rotate_change, NULL, err,
					sizeof(err)), 0, "%s", err);
	return vol->cv.active_version;
}

Test(rotate, an_open_file_is_rewrapped_through_its_cfile)
{
	struct nodes *t;
	struct node *n;
	uint8_t buf[10000], back[10000];
	struct cfile *f;
	uint32_t v2;
	int fd, fd2;

	memset(buf, 'x', sizeof(buf));
	cr_assert_eq(nodes_new(&vol->cv, &t), 0);
	cr_assert_eq(nodes_get(t, new_backing("open"), true, &n), 0);
	cr_assert_eq(cfile_pwrite(n->cf, buf, 5000, 0), 5000);
	v2 = new_version();
	/* The walk's own fd, as volkeys opens it. */
	fd2 = new_backing("open");
	cr_assert_eq(nodes_rewrap(t, fd2, v2), 0);
	cr_assert_eq(version_of("open"), v2);
	/* Its size, pending at the re-wrap, went with it; later writes and
	 * commits stay on v2 (a re-wrap behind the cfile's back would be
	 * undone by this commit, which starts from the cfile's header). */
	cr_assert_eq(cfile_pwrite(n->cf, buf + 5000, 5000, 5000), 5000);
	cr_assert_eq(cfile_commit(n->cf), 0);
	cr_assert_eq(version_of("open"), v2);
	cr_assert_eq(nodes_rewrap(t, fd2, v2), -EALREADY);
	cr_assert_eq(nodes_put(t, n), 0);
	close(fd2);
	nodes_free(t);
	fd = new_backing("open");
	cr_assert_eq(cfile_open(fd, &vol->cv, &f), 0);
	cr_assert_eq(cfile_size(f), sizeof(buf));
	cr_assert_eq(cfile_pread(f, back, sizeof(back), 0), sizeof(back));
	cr_assert_arr_eq(back, buf, sizeof(buf));
	cr_assert_eq(cfile_release(f), 0);
	/* Both slots on v2: the old version opens nothing here. */
	cr_assert_eq(cfile_rewrap(fd, &vol->cv, v2, NULL), -EALREADY);
	close(fd);
}

Test(rotate, closed_and_being_made_files)
{
	struct nodes *t;
	struct cfile *f;
	uint32_t v2;
	int fd = new_backing("closed"), empty = new_backing("empty");

	cr_assert_eq(cfile_create(fd, &vol->cv, &f), 0);
	cr_assert_eq(cfile_pwrite(f, "abc", 3, 0), 3);
	cr_assert_eq(cfile_release(f), 0);
	cr_assert_eq(nodes_new(&vol->cv, &t), 0);
	v2 = new_version();
	cr_assert_eq(nodes_rewrap(t, fd, v2), 0);
	cr_assert_eq(version_of("closed"), v2);
	/* No header yet: a create under way, which takes the active one. */
	cr_assert_eq(nodes_rewrap(t, empty, v2), -EALREADY);
	nodes_free(t);
	close(fd);
	close(empty);
}

static struct rotate *rot;

static bool rotation_ended(void *arg)
{
	struct rotate_status *st = arg;

	rotate_get(rot, st);
	return st->state != ROTATE_RUNNING;
}

Test(rotate, the_daemons_rotation_runs_on_its_own_thread)
{
	struct rotate_status *st = calloc(1, sizeof(*st));
	struct vfs *v;
	unsigned id;

	cr_assert_not_null(st);
	for (int i = 0; i < 20; i++) {
		char name[16];
		struct cfile *f;
		int fd;

		snprintf(name, sizeof(name), "f%d", i);
		fd = new_backing(name);
		cr_assert_eq(cfile_create(fd, &vol->cv, &f), 0);
		cr_assert_eq(cfile_release(f), 0);
		close(fd);
	}
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	cr_assert_eq(rotate_new(vol, v, &rot), 0);
	rotate_get(rot, st);
	cr_assert_eq(st->state, ROTATE_NONE);
	cr_assert_eq(rotate_start(rot, false, &id), 0);
	cr_assert_eq(id, 1);
	cr_assert(tu_wait_until(rotation_ended, st, 20000));
	cr_assert_eq(st->state, ROTATE_DONE, "%s", st->error);
	cr_assert_eq(st->p.target, 2);
	cr_assert_eq(st->p.done, 20);
	cr_assert_eq(st->p.estimate, 20);
	cr_assert_eq(st->p.nretired, 1);
	cr_assert_eq(st->p.retired[0], 1);
	cr_assert_null(keys_kek(vol->keys, 1), "v1 retired in the keystore");
	cr_assert_eq(version_of("f7"), 2);
	/* Again, keeping the old one. */
	cr_assert_eq(rotate_start(rot, true, &id), 0);
	cr_assert_eq(id, 2);
	cr_assert(tu_wait_until(rotation_ended, st, 20000));
	cr_assert_eq(st->state, ROTATE_DONE, "%s", st->error);
	cr_assert_eq(st->p.nretired, 0);
	cr_assert_not_null(keys_kek(vol->keys, 2), "v2 kept decrypt-only");
	rotate_stop(rot);
	cr_assert_eq(rotate_start(rot, false, &id), -ESHUTDOWN);
	rotate_free(rot);
	vfs_free(v);
	free(st);
}
