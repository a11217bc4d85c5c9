/*
 * test_atomicfile.c — tests for src/atomicfile.c and src/ioutil.c: a target
 * replaced whole, failures (a write cut by RLIMIT_FSIZE, a folder removed
 * under us, a rename that cannot be done) that leave the old content and no
 * temp file, symlinks planted at either name not followed, exact modes.
 */
#include "phifs/atomicfile.h"
#include "phifs/ioutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir;
static int dfd = -1;

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void setup(void)
{
	const char *base = getenv("TMPDIR");

	cr_assert(asprintf(&dir, "%s/phifs-af-XXXXXX",
			   base && *base ? base : "/tmp") > 0);
	cr_assert(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(dfd >= 0);
}

static void teardown(void)
{
	close(dfd);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

TestSuite(atomicfile, .init = setup, .fini = teardown);
TestSuite(ioutil, .init = setup, .fini = teardown);

static void put_file(const char *name, const char *text)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			0600);

	cr_assert(fd >= 0, "%s", name);
	cr_assert_eq(ioutil_write_all(fd, text, strlen(text)), 0);
	close(fd);
}

/* The whole content of name, NUL-terminated; the caller frees. */
static char *slurp(const char *name)
{
	static char buf[1 << 16];
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n;

	cr_assert(fd >= 0, "%s: %s", name, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert(n >= 0);
	buf[n] = 0;
	return strdup(buf);
}

static void assert_content(const char *name, const char *want)
{
	char *got = slurp(name);

	cr_assert_str_eq(got, want, "%s", name);
	free(got);
}

static void assert_absent(const char *name)
{
	struct stat st;

	cr_assert_eq(fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW), -1,
		     "%s is there", name);
	cr_assert_eq(errno, ENOENT);
}

static int count_entries(void)
{
	int n = 0;
	FILE *p;
	char cmd[512], line[512];

	snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
	p = popen(cmd, "r");
	cr_assert(p);
	while (fgets(line, sizeof(line), p))
		n++;
	pclose(p);
	return n;
}

Test(atomicfile, creates_a_new_file_whole_and_leaves_no_temp)
{
	cr_assert_eq(atomicfile_write(dfd, "f", "hello\n", 6, 0600), 0);
	assert_content("f", "hello\n");
	assert_absent("f" ATOMICFILE_SUFFIX);
	cr_assert_eq(count_entries(), 1);
}

Test(atomicfile, replaces_a_longer_target_whole)
{
	put_file("f", "an old and much longer content\n");
	cr_assert_eq(atomicfile_write(dfd, "f", "new", 3, 0600), 0);
	assert_content("f", "new");
	cr_assert_eq(atomicfile_write(dfd, "f", "", 0, 0600), 0);
	assert_content("f", "");
	assert_absent("f" ATOMICFILE_SUFFIX);
}

Test(atomicfile, gives_exactly_the_mode_asked_whatever_the_umask)
{
	static const mode_t modes[] = { 0400, 0600, 0640, 0644, 0755 };
	struct stat st;

	umask(0077);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		cr_assert_eq(atomicfile_write(dfd, "f", "x", 1, modes[i]), 0);
		cr_assert_eq(fstatat(dfd, "f", &st, 0), 0);
		cr_assert_eq(st.st_mode & 07777, modes[i], "%o", modes[i]);
	}
}

Test(atomicfile, a_write_cut_short_leaves_the_old_content_and_no_temp)
{
	static char big[64 * 1024];
	struct rlimit lim = { 4096, 4096 };

	put_file("f", "old");
	/* Past the limit write fails with EFBIG, not a signal. */
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	memset(big, 'n', sizeof(big));
	cr_assert_eq(atomicfile_write(dfd, "f", big, sizeof(big), 0600),
		     -EFBIG);
	assert_content("f", "old");
	assert_absent("f" ATOMICFILE_SUFFIX);
	cr_assert_eq(count_entries(), 1);
}

Test(atomicfile, a_removed_folder_fails_cleanly)
{
	char *sub;
	int sfd;

	cr_assert(asprintf(&sub, "%s/gone", dir) > 0);
	cr_assert_eq(mkdir(sub, 0700), 0);
	sfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(sfd >= 0);
	cr_assert_eq(rmdir(sub), 0);
	cr_assert_eq(atomicfile_write(sfd, "f", "x", 1, 0600), -ENOENT);
	close(sfd);
	free(sub);
	cr_assert_eq(count_entries(), 0);
}

Test(atomicfile, a_rename_that_fails_removes_the_temp_and_keeps_the_target)
{
	struct stat st;

	/* A non-empty folder at the target's name cannot be renamed over. */
	cr_assert_eq(mkdirat(dfd, "f", 0700), 0);
	cr_assert_eq(mkdirat(dfd, "f/inner", 0700), 0);
	cr_assert_lt(atomicfile_write(dfd, "f", "x", 1, 0600), 0);
	cr_assert_eq(fstatat(dfd, "f/inner", &st, 0), 0);
	assert_absent("f" ATOMICFILE_SUFFIX);
}

Test(atomicfile, a_symlink_at_the_temp_name_is_removed_not_followed)
{
	put_file("victim", "victim");
	cr_assert_eq(symlinkat("victim", dfd, "f" ATOMICFILE_SUFFIX), 0);
	cr_assert_eq(atomicfile_write(dfd, "f", "new", 3, 0600), 0);
	assert_content("victim", "victim");
	assert_content("f", "new");
	assert_absent("f" ATOMICFILE_SUFFIX);
}

Test(atomicfile, a_symlink_at_the_target_is_replaced_not_followed)
{
	struct stat st;

	put_file("victim", "victim");
	cr_assert_eq(symlinkat("victim", dfd, "f"), 0);
	cr_assert_eq(atomicfile_write(dfd, "f", "new", 3, 0600), 0);
	assert_content("victim", "victim");
	cr_assert_eq(fstatat(dfd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
	cr_assert(S_ISREG(st.st_mode));
	assert_content("f", "new");
}

Test(atomicfile, a_leftover_temp_file_is_replaced)
{
	put_file("f" ATOMICFILE_SUFFIX, "half of a cra");
	cr_assert_eq(atomicfile_write(dfd, "f", "whole", 5, 0600), 0);
	assert_content("f", "whole");
	assert_absent("f" ATOMICFILE_SUFFIX);
}

Test(atomicfile, create_refuses_any_existing_name_and_leaves_no_temp)
{
	put_file("f", "old");
	cr_assert_eq(atomicfile_create(dfd, "f", "new", 3, 0400), -EEXIST);
	assert_content("f", "old");
	/* A dangling symlink counts: creating through it would follow it. */
	cr_assert_eq(symlinkat("nowhere", dfd, "g"), 0);
	cr_assert_eq(atomicfile_create(dfd, "g", "new", 3, 0400), -EEXIST);
	assert_absent("nowhere");
	assert_absent("f" ATOMICFILE_SUFFIX);
	assert_absent("g" ATOMICFILE_SUFFIX);
}

Test(atomicfile, create_makes_a_new_file)
{
	struct stat st;

	cr_assert_eq(atomicfile_create(dfd, "k", "key\n", 4, 0400), 0);
	assert_content("k", "key\n");
	cr_assert_eq(fstatat(dfd, "k", &st, 0), 0);
	cr_assert_eq(st.st_mode & 07777, 0400);
	assert_absent("k" ATOMICFILE_SUFFIX);
}

Test(atomicfile, refuses_names_that_are_not_one_component)
{
	cr_assert_eq(atomicfile_write(dfd, "", "x", 1, 0600), -EINVAL);
	cr_assert_eq(atomicfile_write(dfd, "a/b", "x", 1, 0600), -EINVAL);
	cr_assert_eq(atomicfile_create(dfd, "../b", "x", 1, 0600), -EINVAL);
	cr_assert_eq(count_entries(), 0);
}

Test(ioutil, pwrite_all_writes_at_the_offset_and_leaves_the_fd_offset)
{
	int fd = openat(dfd, "p", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	char buf[16] = "";

	cr_assert(fd >= 0);
	cr_assert_eq(ioutil_write_all(fd, "abcdef", 6), 0);
	cr_assert_eq(ioutil_pwrite_all(fd, "XY", 2, 2), 0);
	cr_assert_eq(lseek(fd, 0, SEEK_CUR), 6);
	cr_assert_eq(pread(fd, buf, sizeof(buf), 0), 6);
	cr_assert_str_eq(buf, "abXYef");
	cr_assert_eq(ioutil_write_all(-1, "x", 1), -EBADF);
	cr_assert_eq(ioutil_pwrite_all(-1, "x", 1, 0), -EBADF);
	close(fd);
}
