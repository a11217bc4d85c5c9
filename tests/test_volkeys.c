/*
 * test_volkeys.c — key work over a whole unmounted volume, without FUSE:
 * files made with cfile in a temporary backing folder, counted per master
 * key version, rotated (and killed half-way in a child), retired.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "phifs/cfile.h"
#include "phifs/crypto.h"
#include "phifs/volkeys.h"
#include "phifs/volume.h"
#include "testutil.h"

static char dir[64], spec[PATH_MAX + 8];
static struct volume *vol;
static const char *const names[] = { "a", "b", "sub/c", "sub/deep/d" };
#define NFILES (sizeof(names) / sizeof(names[0]))

static void reopen(void)
{
	char err[512];

	volume_close(vol);
	vol = NULL;
	cr_assert_eq(volume_open(dir, spec, true, &vol, err, sizeof(err)), 0,
		     "%s", err);
}

/* A file of the volume with `len` bytes of (name, i) in it. */
static void make_file(const char *name, size_t len)
{
	char path[PATH_MAX];
	struct cfile *f;
	uint8_t buf[16384];
	int fd;

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(name[0] + i);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(cfile_create(fd, &vol->cv, &f), 0);
	cr_assert_eq(cfile_pwrite(f, buf, len, 0), (ssize_t)len);
	cr_assert_eq(cfile_release(f), 0);
	close(fd);
}

/* Whether a file reads back whole under v's keys. */
static bool reads_back(const struct volume *v, const char *name, size_t len)
{
	char path[PATH_MAX];
	struct cfile *f = NULL;
	uint8_t buf[16384];
	bool ok;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	ok = !cfile_open(fd, &v->cv, &f) &&
	     cfile_pread(f, buf, sizeof(buf), 0) == (ssize_t)len;
	for (size_t i = 0; ok && i < len; i++)
		ok = buf[i] == (uint8_t)(name[0] + i);
	cfile_release(f);
	close(fd);
	return ok;
}

static size_t len_of(size_t i)
{
	return i * 4000 + 1;
}

static void setup(void)
{
	char key[PATH_MAX], err[512], path[PATH_MAX];
	int fd;

	strcpy(dir, "/tmp/phifs-volkeys-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(key, sizeof(key), "%s.key", dir);
	unlink(key);
	cr_assert_eq(keys_keygen(key, err, sizeof(err)), 0, "%s", err);
	snprintf(spec, sizeof(spec), "file:%s", key);
	{
		struct keys_secret *sec;
		struct keys_store *ks;
		int dfd = open(dir, O_RDONLY | O_DIRECTORY), mfd;

		cr_assert_eq(keys_source_load(spec, &sec, err, sizeof(err)), 0);
		cr_assert_eq(keys_create(sec, NULL, &ks), 0);
		cr_assert_eq(mkdirat(dfd, KEYS_DIR, 0700), 0);
		mfd = openat(dfd, KEYS_DIR, O_RDONLY | O_DIRECTORY);
		cr_assert_eq(keys_save(ks, mfd, err, sizeof(err)), 0);
		close(mfd);
		close(dfd);
		keys_free(ks);
		keys_secret_free(sec);
	}
	reopen();
	snprintf(path, sizeof(path), "%s/sub", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/sub/deep", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	for (size_t i = 0; i < NFILES; i++)
		make_file(names[i], len_of(i));
	/* A hard link, a symlink and a node record: none counts again. */
	snprintf(path, sizeof(path), "%s/sub/link", dir);
	snprintf(key, sizeof(key), "%s/a", dir);
	cr_assert_eq(link(key, path), 0);
	snprintf(path, sizeof(path), "%s/sym", dir);
	cr_assert_eq(symlink("phifs1:whatever", path), 0);
	snprintf(path, sizeof(path), "%s/record", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_eq(write(fd, "PHIFSREC", 8), 8);
	cr_assert_eq(fchmod(fd, 0600 | S_ISVTX), 0);
	close(fd);
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void teardown(void)
{
	char key[PATH_MAX];

	volume_close(vol);
	vol = NULL;
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(key, sizeof(key), "%s.key", dir);
	chmod(key, 0600);
	unlink(key);
}

TestSuite(volkeys, .init = setup, .fini = teardown);

/* Files per version, or unreadable with version 0. */
static uint64_t files_of(uint32_t version)
{
	struct volkeys_count c;
	char err[512];
	uint64_t n = 0;

	cr_assert_eq(volkeys_count(vol, &c, err, sizeof(err)), 0, "%s", err);
	for (size_t i = 0; i < c.n; i++)
		if (c.versions[i].version == version)
			n = c.files[i];
	if (!version)
		n = c.unreadable;
	volkeys_count_release(&c);
	return n;
}

Test(volkeys, every_file_is_counted_once_and_skipped_kinds_not_at_all)
{
	cr_assert_eq(files_of(1), NFILES);
	cr_assert_eq(files_of(0), 0);
}

Test(volkeys, a_rotation_moves_every_file_and_the_old_keystore_opens_none)
{
	struct volkeys_progress p;
	struct volume *old = NULL;
	char err[512], path[PATH_MAX];
	uint8_t *ks;
	size_t len;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, KEYS_DIR, KEYS_FILE);
	fp = fopen(path, "rb");
	ks = malloc(4096);
	len = fread(ks, 1, 4096, fp);
	fclose(fp);
	cr_assert_eq(volkeys_rotate(vol, false, NULL, NULL, &p, err,
				    sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.target, 2);
	cr_assert_eq(p.done, NFILES);
	cr_assert_eq(p.skipped, 0, "a hard link visited once");
	cr_assert_eq(p.nretired, 1);
	cr_assert_eq(p.retired[0], 1);
	reopen();
	cr_assert_eq(files_of(2), NFILES);
	cr_assert_null(keys_kek(vol->keys, 1));
	for (size_t i = 0; i < NFILES; i++)
		cr_assert(reads_back(vol, names[i], len_of(i)), "%s", names[i]);
	/* The keystore as it was before: it opens none of them. */
	fp = fopen(path, "wb");
	cr_assert_eq(fwrite(ks, 1, len, fp), len);
	fclose(fp);
	free(ks);
	cr_assert_eq(volume_open(dir, spec, false, &old, err, sizeof(err)), 0);
	for (size_t i = 0; i < NFILES; i++)
		cr_assert_not(reads_back(old, names[i], len_of(i)), "%s",
			      names[i]);
	volume_close(old);
}

static long kill_after;

static void kill_at(void *arg, const struct volkeys_progress *p)
{
	(void)arg;
	if ((long)(p->done + p->skipped) >= kill_after ||
	    p->phase == VOLKEYS_RETIRING)
		raise(SIGKILL);
}

/* Rotates in a child that SIGKILLs itself after n files. */
static void rotate_killed(long n)
{
	struct volkeys_progress p;
	char err[512];
	int st;
	pid_t pid;

	volume_close(vol);	/* the child takes the lock */
	vol = NULL;
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		kill_after = n;
		reopen();
		volkeys_rotate(vol, false, kill_at, NULL, &p, err, sizeof(err));
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	reopen();
}

Test(volkeys, a_rotation_killed_anywhere_leaves_files_readable_and_resumes)
{
	struct volkeys_progress p;
	char err[512];

	for (long n = 0; n <= (long)NFILES + 1; n++) {
		rotate_killed(n);
		for (size_t i = 0; i < NFILES; i++)
			cr_assert(reads_back(vol, names[i], len_of(i)),
				  "killed at %ld: %s", n, names[i]);
		cr_assert_eq(volkeys_rotate(vol, false, NULL, NULL, &p, err,
					    sizeof(err)), 0, "%s", err);
		cr_assert(p.resumed, "killed at %ld", n);
		cr_assert_eq(p.failed, 0);
		reopen();
		cr_assert_eq(files_of(p.target), NFILES);
		cr_assert_eq(keys_versions(vol->keys, NULL, 0), p.target);
		for (uint32_t v = 1; v < p.target; v++)
			cr_assert_null(keys_kek(vol->keys, v), "v%u", v);
	}
}

Test(volkeys, retire_waits_until_no_file_uses_the_version)
{
	struct volkeys_progress p;
	char err[512];

	rotate_killed(1);
	cr_assert_eq(volkeys_retire(vol, 1, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "version 1 still wraps"), "%s", err);
	cr_assert_eq(volkeys_retire(vol, 2, err, sizeof(err)), -EBUSY);
	cr_assert_eq(volkeys_retire(vol, 9, err, sizeof(err)), -ENOENT);
	cr_assert_eq(volkeys_rotate(vol, true, NULL, NULL, &p, err,
				    sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.nretired, 0, "--keep-old");
	cr_assert_eq(files_of(1), 0);
	cr_assert_eq(volkeys_retire(vol, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(volkeys_retire(vol, 1, err, sizeof(err)), -EALREADY);
	reopen();
	cr_assert_null(keys_kek(vol->keys, 1));
	for (size_t i = 0; i < NFILES; i++)
		cr_assert(reads_back(vol, names[i], len_of(i)), "%s", names[i]);
}
