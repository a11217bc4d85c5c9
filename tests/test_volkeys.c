/*
 * test_volkeys.c — key work over a whole unmounted volume, without FUSE:
 * files made with cfile in a temporary backing folder, counted per master
 * key version, rotated (and killed half-way in a child), retired, rekeyed
 * (killed at every step of every file, then finished).
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
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

#include "phifs/cfile.h"
#include "phifs/crypto.h"
#include "phifs/volkeys.h"
#include "phifs/volrekey.h"
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

/* --- rekey --- */

/* The DEK generation of a file, or 0 when it does not open. */
static uint32_t gen_of(const char *name)
{
	char path[PATH_MAX];
	struct cfile *f = NULL;
	uint32_t gen = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "%s", path);
	if (!cfile_open(fd, &vol->cv, &f))
		gen = cfile_dek_gen(f);
	cfile_release(f);
	close(fd);
	return gen;
}

static void read_header(const char *name, uint8_t region[FORMAT_HEADER_SIZE])
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	cr_assert_eq(pread(fd, region, FORMAT_HEADER_SIZE, 0),
		     FORMAT_HEADER_SIZE);
	close(fd);
}

/* Rekey temporaries and the marker left in the volume. */
static int leftovers(void)
{
	const char *dirs[] = { "", "/sub", "/sub/deep" };
	char path[PATH_MAX];
	struct dirent *de;
	int n = 0;

	for (size_t i = 0; i < 3; i++) {
		DIR *d;

		snprintf(path, sizeof(path), "%s%s", dir, dirs[i]);
		d = opendir(path);
		cr_assert_not_null(d);
		while ((de = readdir(d)))
			n += backing_is_rekey_temp(de->d_name);
		closedir(d);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", dir, KEYS_DIR,
		 VOLREKEY_MARKER);
	return n + !access(path, F_OK);
}

static void unlink_hard_link(void)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/sub/link", dir);
	cr_assert_eq(unlink(path), 0);
}

Test(volkeys, a_rekey_gives_every_file_a_fresh_dek_the_old_one_opens_nothing)
{
	uint8_t old[NFILES][FORMAT_HEADER_SIZE], buf[16384];
	struct volrekey_progress p;
	char err[512], path[PATH_MAX];
	struct cfile *f = NULL;
	int fd;

	unlink_hard_link();
	for (size_t i = 0; i < NFILES; i++) {
		cr_assert_eq(gen_of(names[i]), 1);
		read_header(names[i], old[i]);
	}
	cr_assert_eq(volrekey_run(vol, NULL, 0, NULL, NULL, &p, err,
				  sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.done, NFILES);
	cr_assert_eq(p.refused + p.failed + p.skipped, 0);
	cr_assert_eq(p.bytes, 1 + 4001 + 8001 + 12001);
	cr_assert_eq(leftovers(), 0);
	for (size_t i = 0; i < NFILES; i++) {
		cr_assert(reads_back(vol, names[i], len_of(i)), "%s", names[i]);
		cr_assert_eq(gen_of(names[i]), 2, "%s", names[i]);
		/* The old header (its DEK, by the keystore, which a rekey
		 * leaves alone) over the new blocks: no block opens. */
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		fd = open(path, O_RDWR);
		cr_assert_eq(pwrite(fd, old[i], FORMAT_HEADER_SIZE, 0),
			     FORMAT_HEADER_SIZE);
		cr_assert_eq(cfile_open(fd, &vol->cv, &f), 0, "%s", names[i]);
		cr_assert_eq(cfile_pread(f, buf, sizeof(buf), 0), -EBADMSG,
			     "%s", names[i]);
		cfile_release(f);
		f = NULL;
		close(fd);
	}
}

Test(volkeys, a_hard_linked_file_is_refused_and_the_others_rekeyed)
{
	struct volrekey_progress p;
	char err[512];

	cr_assert_eq(volrekey_run(vol, NULL, 0, NULL, NULL, &p, err,
				  sizeof(err)), -EMLINK);
	cr_assert(strstr(err, "1 hard-linked file(s) not rekeyed (first: "),
		  "%s", err);
	cr_assert_eq(p.done, NFILES - 1);
	cr_assert_eq(p.refused, 1);
	cr_assert_eq(gen_of("a"), 1);
	cr_assert_eq(gen_of("sub/link"), 1);
	cr_assert_eq(gen_of("b"), 2);
	cr_assert_eq(leftovers(), 0, "refusals leave no marker");
}

static enum volrekey_step kill_step;

static void rekey_kill_at(void *arg, const struct volrekey_progress *p)
{
	(void)arg;
	if ((long)(p->done + p->skipped) >= kill_after &&
	    (p->step == kill_step ||
	     (kill_step == VOLREKEY_FILE && p->step == VOLREKEY_START)))
		raise(SIGKILL);
}

/* Rekeys every file in a child that SIGKILLs itself at step of the file
 * after n. */
static void rekey_killed(long n, enum volrekey_step step)
{
	struct volrekey_progress p;
	char err[512];
	int st;
	pid_t pid;

	volume_close(vol);
	vol = NULL;
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		kill_after = n;
		kill_step = step;
		reopen();
		volrekey_run(vol, NULL, 0, rekey_kill_at, NULL, &p, err,
			     sizeof(err));
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		  "killed at %ld, step %d", n, step);
	reopen();
}

Test(volkeys, a_rekey_killed_at_any_step_keeps_files_and_the_rerun_finishes)
{
	static const enum volrekey_step steps[] = {
		VOLREKEY_COPIED, VOLREKEY_LOGGED, VOLREKEY_FILE,
	};
	struct volrekey_progress p;
	uint32_t gen[NFILES];
	char err[512];

	unlink_hard_link();
	for (size_t i = 0; i < NFILES; i++)
		gen[i] = 1;
	for (long n = 0; n < (long)NFILES; n++) {
		for (size_t s = 0; s < 3; s++) {
			rekey_killed(n, steps[s]);
			for (size_t i = 0; i < NFILES; i++)
				cr_assert(reads_back(vol, names[i], len_of(i)),
					  "killed at %ld/%zu: %s", n, s,
					  names[i]);
			cr_assert_eq(volrekey_run(vol, NULL, 0, NULL, NULL, &p,
						  err, sizeof(err)), 0, "%s",
				     err);
			cr_assert(p.resumed);
			cr_assert_eq(p.failed, 0);
			cr_assert_eq(p.done + p.skipped, NFILES);
			/* Killed after the copy, before the rename: its
			 * copy was found and removed. */
			cr_assert_eq(p.strays, s < 2, "at %ld/%zu", n, s);
			cr_assert_eq(leftovers(), 0);
			for (size_t i = 0; i < NFILES; i++) {
				cr_assert_eq(gen_of(names[i]), ++gen[i],
					     "killed at %ld/%zu: %s", n, s,
					     names[i]);
				cr_assert(reads_back(vol, names[i],
						     len_of(i)));
			}
		}
	}
}

Test(volkeys, a_rekey_keeps_holes_mode_owner_times_and_attributes)
{
	struct timespec ts[2] = { { 1000000000, 5 }, { 1200000000, 7 } };
	char path[PATH_MAX], bname[FORMAT_XATTR_BNAME_MAX], name[256];
	struct crypto_key *xkey, *nkey;
	uint8_t sealed[256], val[64], buf[8], tag[FORMAT_SIZE_TAG_LEN];
	struct volrekey_progress p;
	struct stat st, st2;
	struct cfile *f;
	uint64_t tsize;
	struct format_attrs ta;
	ssize_t n;
	char err[512];
	int fd;

	unlink_hard_link();
	cr_assert_eq(keys_volume_key(vol->keys, "phifs xattr v1", &xkey), 0);
	cr_assert_eq(keys_volume_key(vol->keys, "phifs xattr name v1", &nkey),
		     0);
	snprintf(path, sizeof(path), "%s/sparse", dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_eq(cfile_create(fd, &vol->cv, &f), 0);
	cr_assert_eq(cfile_pwrite(f, "head", 4, 0), 4);
	cr_assert_eq(cfile_truncate(f, 64 << 20), 0);
	cr_assert_eq(cfile_pwrite(f, "tail", 4, 64 << 20), 4);
	ta = (struct format_attrs){ .mode = 0640, .uid = geteuid(),
				    .gid = getegid() };
	cr_assert_eq(cfile_set_attrs(f, &ta), 0);	/* a chmod, as the mount's */
	cr_assert_eq(cfile_release(f), 0);
	fstat(fd, &st);
	cr_assert_eq(format_xattr_bname(nkey, st.st_ino, "user.note", bname),
		     0);
	n = format_xattr_seal(xkey, vol->cv.volume_id, st.st_ino, bname,
			      "user.note", "kept", 4, sealed);
	cr_assert_gt(n, 0);
	if (fsetxattr(fd, bname, sealed, (size_t)n, 0))
		cr_skip_test("%s has no user xattrs", dir);
	cr_assert_eq(fchmod(fd, 0640), 0);	/* the backing follows */
	cr_assert_eq(futimens(fd, ts), 0);
	fstat(fd, &st);
	close(fd);
	cr_assert_lt(st.st_blocks * 512, 1 << 20, "sparse to begin with");

	{
		char *one[] = { path };

		cr_assert_eq(volrekey_run(vol, one, 1, NULL, NULL, &p, err,
					  sizeof(err)), 0, "%s", err);
	}
	cr_assert_eq(p.done, 1);
	cr_assert_eq(stat(path, &st2), 0);	/* before a read moves atime */
	cr_assert_eq(gen_of("sparse"), 2);
	cr_assert_eq(gen_of("b"), 1, "not named");
	cr_assert_neq(st2.st_ino, st.st_ino, "a new inode");
	cr_assert_eq(st2.st_mode, st.st_mode);
	cr_assert_eq(st2.st_uid, st.st_uid);
	cr_assert_eq(st2.st_mtim.tv_sec, ts[1].tv_sec);
	cr_assert_eq(st2.st_mtim.tv_nsec, ts[1].tv_nsec);
	cr_assert_eq(st2.st_atim.tv_sec, ts[0].tv_sec);
	cr_assert_lt(st2.st_blocks * 512, 1 << 20, "holes kept");
	fd = open(path, O_RDONLY);
	cr_assert_eq(cfile_open(fd, &vol->cv, &f), 0);
	cr_assert_eq(cfile_size(f), (64 << 20) + 4);
	cr_assert_eq(cfile_pread(f, buf, 4, 0), 4);
	cr_assert_eq(memcmp(buf, "head", 4), 0);
	cr_assert_eq(cfile_pread(f, buf, 8, 32 << 20), 8);
	cr_assert_eq(memcmp(buf, "\0\0\0\0\0\0\0\0", 8), 0);
	cr_assert_eq(cfile_pread(f, buf, 8, 64 << 20), 4);
	cr_assert_eq(memcmp(buf, "tail", 4), 0);
	cr_assert_eq(cfile_attrs(f, &ta), 0);
	cr_assert_eq(ta.mode, 0640, "the header's mode went with the copy");
	cfile_release(f);
	/* The attribute, sealed again for the new inode; a fresh size tag. */
	cr_assert_eq(format_xattr_bname(nkey, st2.st_ino, "user.note", bname),
		     0);
	n = fgetxattr(fd, bname, sealed, sizeof(sealed));
	cr_assert_gt(n, 0);
	cr_assert_eq(format_xattr_open(xkey, vol->cv.volume_id, st2.st_ino,
				       bname, sealed, (size_t)n, name, val), 4);
	cr_assert_str_eq(name, "user.note");
	cr_assert_eq(memcmp(val, "kept", 4), 0);
	n = fgetxattr(fd, FORMAT_SIZE_XATTR, tag, sizeof(tag));
	cr_assert_eq(n, FORMAT_SIZE_TAG_LEN);
	ta = (struct format_attrs){ .mode = st2.st_mode & 07777,
				    .uid = st2.st_uid, .gid = st2.st_gid };
	cr_assert_eq(format_size_untag(vol->size_key, st2.st_ino, &ta, tag,
				       (size_t)n, &tsize), 0);
	cr_assert_eq(tsize, (64 << 20) + 4);
	close(fd);
	crypto_key_free(xkey);
	crypto_key_free(nkey);
}

Test(volkeys, rekey_paths_are_checked_before_any_file_changes)
{
	struct volrekey_progress p;
	char err[512], abs[PATH_MAX];
	struct {
		const char *path;
		int rc;
		const char *msg;
	} bad[] = {
		{ "../x", -EXDEV, "outside the volume" },
		{ "sub/../../x", -EXDEV, "outside the volume" },
		{ "/etc/passwd", -EXDEV, "outside the volume" },
		{ ".phifs/keystore", -EXDEV, "outside the volume" },
		{ "sym", -EINVAL, "not an encrypted file" },
		{ "record", -EINVAL, "not an encrypted file" },
		{ "nope", -ENOENT, "No such file" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *two[] = { (char *)"b", (char *)bad[i].path };

		cr_assert_eq(volrekey_run(vol, two, 2, NULL, NULL, &p, err,
					  sizeof(err)), bad[i].rc, "%s",
			     bad[i].path);
		cr_assert(strstr(err, bad[i].msg), "%s", err);
		cr_assert_eq(gen_of("b"), 1, "nothing changed");
	}
	snprintf(abs, sizeof(abs), "%s/sub/./deep/../deep/", dir);
	{
		char *three[] = { abs, (char *)"sub/deep/d", (char *)"sub/c" };

		cr_assert_eq(volrekey_run(vol, three, 3, NULL, NULL, &p, err,
					  sizeof(err)), 0, "%s", err);
	}
	cr_assert_eq(p.done, 2, "a file named twice is rekeyed once");
	cr_assert_eq(gen_of("sub/c"), 2);
	cr_assert_eq(gen_of("sub/deep/d"), 2);
	cr_assert_eq(gen_of("b"), 1);
	cr_assert_eq(gen_of("a"), 1);
}

Test(volkeys, a_marker_cut_in_its_first_line_starts_afresh_and_a_foreign_one_stops)
{
	static const char *const cut[] = { "", "phifs re" };
	struct volrekey_progress p;
	char err[512], path[PATH_MAX];
	FILE *fp;

	unlink_hard_link();
	snprintf(path, sizeof(path), "%s/%s/%s", dir, KEYS_DIR,
		 VOLREKEY_MARKER);
	for (size_t i = 0; i < 2; i++) {
		fp = fopen(path, "w");
		fputs(cut[i], fp);
		fclose(fp);
		cr_assert_eq(volrekey_run(vol, NULL, 0, NULL, NULL, &p, err,
					  sizeof(err)), 0, "%s", err);
		cr_assert_not(p.resumed);
		cr_assert_eq(p.done, NFILES);
		cr_assert_eq(leftovers(), 0);
	}
	cr_assert_eq(gen_of("b"), 3);
	fp = fopen(path, "w");
	fputs("something else\n", fp);
	fclose(fp);
	cr_assert_eq(volrekey_run(vol, NULL, 0, NULL, NULL, &p, err,
				  sizeof(err)), -EUCLEAN);
	cr_assert(strstr(err, "corrupt rekey marker"), "%s", err);
	cr_assert_eq(gen_of("b"), 3, "nothing changed");
}

Test(volkeys, a_sticky_encrypted_file_is_counted_rotated_and_rekeyed)
{
	struct volkeys_progress p;
	struct volrekey_progress rp;
	char err[512], path[PATH_MAX];
	struct stat st;

	/* chmod +t through the mount: still an encrypted file, which a
	 * retire after a rotation that skipped it would leave keyless. */
	make_file("t", 5000);
	snprintf(path, sizeof(path), "%s/t", dir);
	{
		struct format_attrs a = { .mode = 0600 | S_ISVTX,
					  .uid = geteuid(), .gid = getegid() };
		struct cfile *f;
		int fd = open(path, O_RDWR);

		cr_assert_eq(cfile_open(fd, &vol->cv, &f), 0);
		cr_assert_eq(cfile_set_attrs(f, &a), 0);	/* as the mount's chmod */
		cr_assert_eq(cfile_release(f), 0);
		close(fd);
	}
	cr_assert_eq(chmod(path, 0600 | S_ISVTX), 0);
	cr_assert_eq(files_of(1), NFILES + 1);
	cr_assert_eq(volkeys_rotate(vol, false, NULL, NULL, &p, err,
				    sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.done, NFILES + 1);
	reopen();
	cr_assert(reads_back(vol, "t", 5000));
	{
		char *one[] = { (char *)"t" };

		cr_assert_eq(volrekey_run(vol, one, 1, NULL, NULL, &rp, err,
					  sizeof(err)), 0, "%s", err);
	}
	cr_assert_eq(gen_of("t"), 2);
	cr_assert(reads_back(vol, "t", 5000));
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(st.st_mode & S_ISVTX, "the mark kept");
}

/* A mode changed in the backing behind phifs's back is not what a rekey
 * copies: the copy has the mode and owner the header authenticates. */
Test(volkeys, rekey_copies_the_authenticated_mode_not_the_backing_one)
{
	struct format_attrs ta;
	struct volrekey_progress p;
	struct cfile *f;
	char path[PATH_MAX], err[512];
	struct stat st;
	char *one[] = { path };
	int fd;

	unlink_hard_link();
	snprintf(path, sizeof(path), "%s/private", dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_eq(cfile_create(fd, &vol->cv, &f), 0);
	cr_assert_eq(cfile_pwrite(f, "chart", 5, 0), 5);
	cr_assert_eq(cfile_release(f), 0);
	cr_assert_eq(fchmod(fd, 0666), 0);	/* the attack */
	close(fd);
	cr_assert_eq(volrekey_run(vol, one, 1, NULL, NULL, &p, err,
				  sizeof(err)), 0, "%s", err);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	fd = open(path, O_RDONLY);
	cr_assert_eq(cfile_open(fd, &vol->cv, &f), 0);
	cr_assert_eq(cfile_attrs(f, &ta), 0);
	cr_assert_eq(ta.mode, 0600);
	cfile_release(f);
	close(fd);
}

/* --- a rotation while renames run --- */

static int plain_rewrap(void *arg, int fd, uint32_t version)
{
	uint32_t from;

	return cfile_rewrap(fd, arg, version, &from);
}

/* Tells a rename begun and ended between any two asks. */
static void busy_renames(void *arg, uint64_t out[2])
{
	static uint64_t n;

	(void)arg;
	n++;
	out[0] = out[1] = n;
}

/* Tells one rename under way, and then nothing more. */
static void stuck_rename(void *arg, uint64_t out[2])
{
	(void)arg;
	out[0] = 1;
	out[1] = 0;
}

/* A walk that a rename may have outrun proves nothing: no old key goes. */
Test(volkeys, renames_during_every_walk_retire_nothing)
{
	void (*kinds[])(void *, uint64_t[2]) = { busy_renames, stuck_rename };

	for (size_t k = 0; k < 2; k++) {
		struct volkeys_ops ops = { .rewrap = plain_rewrap,
					   .renames = kinds[k],
					   .arg = &vol->cv, .passes = 3 };
		struct volkeys_progress p;
		char err[512];
		uint32_t from = keys_active_version(vol->keys);

		cr_assert_eq(volkeys_rotate_with(vol, false, &ops, NULL, NULL,
						 &p, err, sizeof(err)),
			     -EAGAIN);
		cr_assert(strstr(err, "renamed"), "%s", err);
		cr_assert_eq(p.nretired, 0);
		cr_assert_not_null(keys_kek(vol->keys, from),
				   "v%u kept for a file a rename may have "
				   "hidden", from);
	}
}

/* With no rename under way, the same run retires the old version. */
Test(volkeys, a_walk_with_no_rename_retires)
{
	struct volkeys_ops ops = { .rewrap = plain_rewrap, .arg = &vol->cv,
				   .passes = 3 };
	struct volkeys_progress p;
	char err[512];

	cr_assert_eq(volkeys_rotate_with(vol, false, &ops, NULL, NULL, &p, err,
					 sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.nretired, 1);
	cr_assert_null(keys_kek(vol->keys, 1));
}
