/*
 * test_folders.c — folders' mode and owner through the operations core:
 * their sealed records win over the backing folder's (a chmod or chown in
 * the backing is undone, told once, counted), a record copied from another
 * folder or removed fails safe on a marked volume, renames keep records,
 * and a volume made before records is given them and marked.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "phifs/folders.h"
#include "phifs/keys.h"
#include "phifs/log.h"
#include "phifs/vfs.h"
#include "volfixture.h"

static char dir[64], keyfile[96];
static struct volume *vol;
static struct vfs *v;
static char logged[4096];

static struct vfs_groups groups = { .n = -1 };
static const struct vfs_caller caller = {
	.uid = 1234, .gid = 5678, .pid = 42, .groups = &groups,
};

static void sink(int priority, const char *line)
{
	(void)priority;
	strncat(logged, line, sizeof(logged) - strlen(logged) - 2);
	strcat(logged, "\n");
}

static void setup(void)
{
	strcpy(dir, "/tmp/phifs-folders-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	umask(0);	/* as the daemon: the kernel applied the caller's */
	vol = vf_make(dir, keyfile, sizeof(keyfile));
	logged[0] = 0;
	log_set_sink(sink);
	log_open(false);
}

static void teardown(void)
{
	char cmd[256];

	vfs_free(v);
	v = NULL;
	volume_close(vol);
	log_close();
	log_set_sink(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, keyfile);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(folders, .init = setup, .fini = teardown, .timeout = 30);

static const char *bpath(const char *rel)
{
	static char buf[4][256];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, rel);
	return buf[k];
}

static struct stat bstat(const char *rel)
{
	struct stat st;

	cr_assert_eq(lstat(bpath(rel), &st), 0, "%s", rel);
	return st;
}

/* A fresh core: nothing told, nothing remembered. */
static void restart(void)
{
	vfs_free(v);
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	logged[0] = 0;
}

/* The first core of a test: what its start tells is not the test's. */
static void start(void)
{
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	logged[0] = 0;
}

static uint64_t mkdir_in(uint64_t parent, const char *name, mode_t mode)
{
	struct vfs_entry e;

	cr_assert_eq(vfs_mkdir(v, &caller, parent, name, mode, &e), 0, "%s",
		     name);
	cr_assert_eq(e.attr.st_mode, S_IFDIR | mode);
	return e.ino;
}

static struct stat look(uint64_t parent, const char *name)
{
	struct vfs_entry e;

	cr_assert_eq(vfs_lookup(v, &caller, parent, name, &e), 0, "%s", name);
	vfs_forget(v, e.ino, 1);
	return e.attr;
}

static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(folders, a_chmod_or_chown_in_the_backing_is_undone_told_once_and_counted)
{
	struct vfs_stats vs;
	struct stat st;

	start();
	mkdir_in(VFS_ROOT, "ward", 0700);
	cr_assert_eq(chmod(bpath("ward"), 0777), 0);	/* the attack */
	if (geteuid() == 0)
		cr_assert_eq(chown(bpath("ward"), 4712, 4712), 0);
	restart();
	for (int k = 0; k < 3; k++) {
		st = look(VFS_ROOT, "ward");
		cr_expect_eq(st.st_mode, S_IFDIR | 0700, "mode %o", st.st_mode);
		if (geteuid() == 0)
			cr_expect_eq(st.st_uid, 1234, "owner %u", st.st_uid);
	}
	st = bstat("ward");
	cr_expect_eq(st.st_mode & 07777, 0700, "put back in the backing");
	if (geteuid() == 0)
		cr_expect_eq(st.st_uid, 1234);
	vfs_stats(v, &vs);
	cr_expect_eq(vs.attr_mismatches, 1, "one folder, one finding");
	cr_expect(strstr(logged, "backing folder has mode 0777"), "%s",
		  logged);
	cr_expect_eq(lines(logged), 1, "%s", logged);
}

Test(folders, a_record_copied_from_another_folder_fails_safe)
{
	char rec[FORMAT_FOLDER_LEN + 8];
	struct vfs_stats vs;
	struct stat st;
	ssize_t n;

	start();
	mkdir_in(VFS_ROOT, "open", 0777);
	mkdir_in(VFS_ROOT, "closed", 0700);
	n = getxattr(bpath("open"), FORMAT_FOLDER_XATTR, rec, sizeof(rec));
	cr_assert_eq(n, FORMAT_FOLDER_LEN);
	cr_assert_eq(setxattr(bpath("closed"), FORMAT_FOLDER_XATTR, rec,
			      (size_t)n, 0), 0);
	cr_assert_eq(chmod(bpath("closed"), 0777), 0);
	restart();
	st = look(VFS_ROOT, "closed");
	cr_expect_eq(st.st_mode, S_IFDIR, "nobody's: mode %o", st.st_mode);
	cr_expect_eq(st.st_uid, geteuid());
	cr_expect_eq(look(VFS_ROOT, "open").st_mode, S_IFDIR | 0777);
	vfs_stats(v, &vs);
	cr_expect_eq(vs.auth_failures, 1);
	cr_expect(strstr(logged, ": folder record fails authentication"),
		  "%s", logged);
	cr_expect_eq(lines(logged), 1, "%s", logged);
}

Test(folders, a_removed_record_fails_safe_until_a_chmod_through_the_core)
{
	struct stat st, set = { .st_mode = 0750 };
	struct vfs_entry e;
	uint64_t ino;

	start();
	mkdir_in(VFS_ROOT, "ward", 0700);
	cr_assert_eq(removexattr(bpath("ward"), FORMAT_FOLDER_XATTR), 0);
	cr_assert_eq(chmod(bpath("ward"), 0777), 0);
	restart();
	st = look(VFS_ROOT, "ward");
	cr_expect_eq(st.st_mode, S_IFDIR, "mode %o", st.st_mode);
	cr_expect(strstr(logged, ": folder record is missing"), "%s",
		  logged);
	/* The daemon's user seals a new record. */
	cr_assert_eq(vfs_lookup(v, &caller, VFS_ROOT, "ward", &e), 0);
	ino = e.ino;
	cr_assert_eq(vfs_setattr(v, &caller, ino, &set, VFS_SET_MODE, NULL),
		     0);
	cr_expect_eq(set.st_mode, S_IFDIR | 0750);
	vfs_forget(v, ino, 1);
	restart();
	cr_expect_eq(look(VFS_ROOT, "ward").st_mode, S_IFDIR | 0750);
	cr_expect_eq(bstat("ward").st_mode & 07777, 0750);
}

Test(folders, chmod_and_chown_through_the_core_hold_against_the_backing)
{
	struct stat set = { .st_mode = 0705, .st_uid = 99, .st_gid = 98 };
	uint64_t ino;

	start();
	ino = mkdir_in(VFS_ROOT, "ward", 0700);
	cr_assert_eq(vfs_setattr(v, &caller, ino, &set, VFS_SET_MODE, NULL),
		     0);
	set.st_uid = 99;
	set.st_gid = 98;
	if (geteuid() == 0)
		cr_assert_eq(vfs_setattr(v, &caller, ino, &set,
					 VFS_SET_UID | VFS_SET_GID, NULL), 0);
	cr_assert_eq(chmod(bpath("ward"), 0777), 0);
	restart();
	cr_expect_eq(look(VFS_ROOT, "ward").st_mode, S_IFDIR | 0705);
	if (geteuid() == 0)
		cr_expect_eq(look(VFS_ROOT, "ward").st_uid, 99);
}

Test(folders, renames_keep_records_through_the_core_and_in_the_backing)
{
	uint64_t a, b;

	start();
	a = mkdir_in(VFS_ROOT, "a", 0755);
	b = mkdir_in(VFS_ROOT, "b", 0755);
	mkdir_in(a, "x", 0700);
	cr_assert_eq(vfs_rename(v, &caller, a, "x", b, "y", 0), 0);
	cr_assert_eq(rename(bpath("b/y"), bpath("z")), 0);	/* behind us */
	cr_assert_eq(chmod(bpath("z"), 0777), 0);
	restart();
	cr_expect_eq(look(VFS_ROOT, "z").st_mode, S_IFDIR | 0700);
	cr_expect(strstr(logged, "backing folder has mode 0777"), "%s",
		  logged);
	cr_expect(!strstr(logged, "folder record fails"), "%s", logged);
}

Test(folders, a_volume_made_before_records_is_given_them_and_marked)
{
	char rec[FORMAT_FOLDER_LEN];
	uint8_t *buf;
	size_t len;

	/* Folders as an older phifs left them: no records, not marked. */
	cr_assert_eq(mkdir(bpath("old"), 0750), 0);
	cr_assert_eq(mkdir(bpath("old/deep"), 0700), 0);
	cr_assert_eq(keys_flags(vol->keys) & KEYS_F_FOLDERS, 0);
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	cr_expect(keys_flags(vol->keys) & KEYS_F_FOLDERS, "marked");
	cr_assert_eq(keys_encode(vol->keys, &buf, &len), 0);
	cr_expect_eq(buf[8], 2, "saved as keystore version 2");
	free(buf);
	cr_expect_eq(getxattr(bpath("."), FORMAT_FOLDER_XATTR, rec,
			      sizeof(rec)), FORMAT_FOLDER_LEN, "the root's");
	cr_expect_eq(getxattr(bpath("old/deep"), FORMAT_FOLDER_XATTR, rec,
			      sizeof(rec)), FORMAT_FOLDER_LEN);
	cr_expect_eq(getxattr(bpath(".phifs"), FORMAT_FOLDER_XATTR, rec,
			      sizeof(rec)), -1, "not the meta folder");
	cr_expect(strstr(logged, "3 given the backing's mode and owner"), "%s",
		  logged);
	/* Trust on first use: from now on the records win. */
	cr_assert_eq(chmod(bpath("old"), 0777), 0);
	restart();
	cr_expect_eq(look(VFS_ROOT, "old").st_mode, S_IFDIR | 0750);
}

Test(folders, the_root_folder_has_its_record_too)
{
	struct stat st;

	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	st = bstat(".");
	cr_assert_eq(chmod(bpath("."), 0777), 0);
	restart();
	cr_assert_eq(vfs_getattr(v, &caller, VFS_ROOT, &st), 0);
	cr_expect_eq(st.st_mode & 07777, bstat(".").st_mode & 07777);
	cr_expect_neq(st.st_mode & 07777, 0777, "put back: %o", st.st_mode);
}

Test(folders, phifsctl_init_marks_a_new_volume_at_once)
{
	struct keys_store *ks;
	struct keys_secret *s;
	uint8_t k[CRYPTO_KEY_LEN] = { 7 };
	char rec[FORMAT_FOLDER_LEN];
	int fd = open(dir, O_RDONLY | O_DIRECTORY);

	s = keys_secret_raw(k);
	cr_assert_eq(keys_create(s, NULL, &ks), 0);
	cr_assert_eq(folders_init(ks, fd, geteuid() == 0), 0);
	cr_expect_eq(keys_flags(ks), KEYS_F_FOLDERS);
	cr_expect_eq(getxattr(dir, FORMAT_FOLDER_XATTR, rec, sizeof(rec)),
		     FORMAT_FOLDER_LEN);
	close(fd);
	keys_free(ks);
	keys_secret_free(s);
}

/* In a child of uid 4711: seals the record of its own 0500 folder path,
 * which a user xattr would refuse it, and checks it and the mode after. */
static int seal_as_user(const char *path)
{
	struct crypto_key *k;
	struct format_folder f, g;
	uint8_t vid[FORMAT_ID_LEN] = { 1 };
	struct folders_key fk;
	struct stat st;
	int fd;

	if (setgroups(0, NULL) || setgid(4711) || setuid(4711))
		return 100;
	if (mkdir(path, 0500) || !(k = crypto_key_random()))
		return 101;
	fk = (struct folders_key){ k, vid, false };
	fd = open(path, O_PATH | O_DIRECTORY);
	if (fd < 0 || fstat(fd, &st) || folders_fresh(&st, &f))
		return 102;
	if (folders_write(&fk, fd, (uint64_t)st.st_ino, &f))
		return 103;
	if (folders_read(&fk, fd, -1, NULL, (uint64_t)st.st_ino, &g) ||
	    g.attrs.mode != 0500)
		return 104;
	return fstat(fd, &st) || (st.st_mode & 07777) != 0500 ? 105 : 0;
}

Test(folders, a_daemon_not_root_seals_its_own_folder_it_may_not_write)
{
	char sub[128];
	pid_t pid;
	int st;

	if (geteuid() != 0)
		cr_skip_test("needs root to become another user");
	snprintf(sub, sizeof(sub), "%s/nr", dir);
	cr_assert_eq(mkdir(sub, 0755), 0);
	cr_assert_eq(chown(sub, 4711, 4711), 0);
	cr_assert_eq(chmod(dir, 0711), 0);
	snprintf(sub, sizeof(sub), "%s/nr/f", dir);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0)
		_exit(seal_as_user(sub));
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %d",
		  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}
