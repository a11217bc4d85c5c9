/*
 * test_inodes.c — the inode table without FUSE: names and parents through
 * renames, hard links, unlinks and the reaper; lifetimes; parking.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/backing.h"
#include "phifs/inodes.h"

static char dir[64];
static int rootfd = -1;
static struct inodes *t;
static bool busy;		/* in_use answers this */
static struct { uint64_t parent; char name[64]; } dropped[512];
static size_t ndropped, wakes;

static ino_t busy_ino;		/* in_use says yes to this one too */

static bool in_use(void *arg, dev_t dev, ino_t ino)
{
	(void)arg, (void)dev;
	return busy || (busy_ino && ino == busy_ino);
}

static void drop_entry(void *arg, uint64_t parent, const char *name)
{
	(void)arg;
	if (ndropped < 512) {
		dropped[ndropped].parent = parent;
		snprintf(dropped[ndropped++].name, 64, "%s", name);
	}
}

static void wake_reaper(void *arg)
{
	(void)arg;
	wakes++;
}

static const struct inodes_ops ops = { in_use, drop_entry, wake_reaper };

static void make_table(size_t fd_high, size_t inode_high, bool can_park)
{
	struct inodes_limits lim = { fd_high, inode_high, can_park };

	cr_assert_eq(inodes_new(rootfd, &lim, &ops, NULL, &t), 0);
}

static void setup(void)
{
	strcpy(dir, "/tmp/phifs-inodes-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(rootfd, 0);
	busy = false;
	busy_ino = 0;
	ndropped = wakes = 0;
	make_table(1000, 100000, false);
}

static void teardown(void)
{
	char cmd[128];

	inodes_free(t);
	t = NULL;
	close(rootfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(inodes, .init = setup, .fini = teardown);

/* Makes path (relative to the root) as a file, or a folder with a '/'. */
static void make(const char *path)
{
	size_t n = strlen(path);
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%.*s", (int)(n - (path[n - 1] == '/')), path);
	if (path[n - 1] == '/')
		cr_assert_eq(mkdirat(rootfd, p, 0755), 0, "mkdir %s", p);
	else
		cr_assert_eq(close(openat(rootfd, p, O_CREAT | O_WRONLY, 0644)),
			     0, "create %s", p);
}

/* Looks name up in folder p as the core does: one lookup counted. */
static struct inode *look(struct inode *p, const char *name)
{
	struct inode *i;
	struct stat st;
	int pfd = inodes_pin(t, p), fd;

	cr_assert_geq(pfd, 0);
	cr_assert_eq(backing_lookup(pfd, name, &fd), 0, "lookup %s", name);
	inodes_unpin(t, p);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(inodes_get(t, fd, &st, p, name, &i), 0);
	return i;
}

static struct inode *root(void)
{
	return inodes_at(t, INODES_ROOT);
}

static void expect_path(struct inode *i, const char *want)
{
	char buf[PATH_MAX];

	cr_assert_eq(inodes_path(t, i, buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, want);
}

/* Every path of an inode, sorted, joined by spaces. */
struct collected {
	char s[1024];
};

static int collect(void *arg, const char *path)
{
	struct collected *c = arg;

	if (c->s[0])
		strcat(c->s, " ");
	strcat(c->s, path);
	return 0;
}

static const char *paths(struct inode *i)
{
	static struct collected c;

	c.s[0] = '\0';
	cr_assert_eq(inodes_paths(t, i, collect, &c), 0);
	return c.s;
}

Test(inodes, the_root_is_slash_and_names_chain_up_to_it)
{
	struct inode *a, *b;

	make("a/");
	make("a/b");
	a = look(root(), "a");
	b = look(a, "b");
	expect_path(root(), "/");
	expect_path(a, "/a");
	expect_path(b, "/a/b");
	cr_expect_eq(inodes_at(t, inodes_id(b)), b);
	cr_expect_eq(inodes_id(root()), INODES_ROOT);
	cr_expect_eq(inodes_count(t), 2);
}

Test(inodes, a_rename_moves_the_name_and_everything_below_it)
{
	struct inode *a, *b, *c, *f;

	make("a/");
	make("b/");
	make("a/f");
	a = look(root(), "a");
	b = look(root(), "b");
	f = look(a, "f");
	cr_assert_eq(renameat(rootfd, "a/f", rootfd, "b/g"), 0);
	inodes_renamed(t, a, "f", b, "g", 0);
	expect_path(f, "/b/g");
	cr_assert_eq(renameat(rootfd, "b", rootfd, "c"), 0);
	inodes_renamed(t, root(), "b", root(), "c", 0);
	expect_path(f, "/c/g");
	c = look(root(), "c");
	cr_expect_eq(c, b, "the folder is the same inode");
}

Test(inodes, a_rename_over_a_name_takes_it_from_its_inode)
{
	struct inode *x, *y;

	make("x");
	make("y");
	x = look(root(), "x");
	y = look(root(), "y");
	cr_assert_eq(renameat(rootfd, "x", rootfd, "y"), 0);
	inodes_renamed(t, root(), "x", root(), "y", 0);
	expect_path(x, "/y");
	cr_expect_eq(inodes_path(t, y, (char[64]){ 0 }, 64), -ENOENT);
}

Test(inodes, an_exchange_swaps_the_two_names)
{
	struct inode *d, *x, *y;

	make("d/");
	make("x");
	make("d/y");
	d = look(root(), "d");
	x = look(root(), "x");
	y = look(d, "y");
	inodes_renamed(t, root(), "x", d, "y", RENAME_EXCHANGE);
	expect_path(x, "/d/y");
	expect_path(y, "/x");
}

Test(inodes, renaming_one_link_over_another_of_the_same_file_does_nothing)
{
	struct inode *f, *g;

	make("f");
	cr_assert_eq(linkat(rootfd, "f", rootfd, "g", 0), 0);
	f = look(root(), "f");
	g = look(root(), "g");
	cr_assert_eq(f, g);
	inodes_renamed(t, root(), "f", root(), "g", 0);
	cr_expect_str_eq(paths(f), "/f /g");
}

Test(inodes, a_hard_linked_file_has_every_name_it_was_found_by)
{
	struct inode *d, *f, *g;

	make("d/");
	make("f");
	cr_assert_eq(linkat(rootfd, "f", rootfd, "d/g", 0), 0);
	d = look(root(), "d");
	f = look(root(), "f");
	g = look(d, "g");
	cr_assert_eq(f, g, "one inode for both links");
	cr_expect_str_eq(paths(f), "/f /d/g");
	expect_path(f, "/f");	/* the first name */
	cr_assert_eq(unlinkat(rootfd, "f", 0), 0);
	inodes_unlinked(t, root(), "f");
	cr_expect_str_eq(paths(f), "/d/g");
	expect_path(f, "/d/g");
	cr_assert_eq(unlinkat(rootfd, "d/g", 0), 0);
	inodes_unlinked(t, d, "g");
	cr_expect_eq(inodes_paths(t, f, collect, &(struct collected){ "" }),
		     -ENOENT);
}

Test(inodes, a_name_found_for_another_inode_leaves_the_old_one)
{
	struct inode *a, *b;

	make("n");
	a = look(root(), "n");
	/* Replaced behind the table's back. */
	cr_assert_eq(unlinkat(rootfd, "n", 0), 0);
	make("n");
	b = look(root(), "n");
	cr_assert_neq(a, b);
	expect_path(b, "/n");
	cr_expect_eq(inodes_path(t, a, (char[64]){ 0 }, 64), -ENOENT);
}

Test(inodes, a_folder_stays_while_a_name_below_it_does)
{
	struct inode *a, *f;

	make("a/");
	make("a/f");
	a = look(root(), "a");
	f = look(a, "f");
	inodes_forget(t, a, 1);		/* the kernel let go of the folder */
	cr_expect_eq(inodes_count(t), 2);
	expect_path(f, "/a/f");
	cr_expect_eq(look(root(), "a"), a, "found again: the same inode");
	inodes_forget(t, a, 1);
	inodes_forget(t, f, 1);		/* the last name below it goes */
	cr_expect_eq(inodes_count(t), 0);
}

Test(inodes, lookups_count_and_the_last_forget_frees)
{
	struct inode *f;

	make("f");
	f = look(root(), "f");
	cr_assert_eq(look(root(), "f"), f);
	inodes_forget(t, f, 1);
	cr_expect_eq(inodes_count(t), 1);
	inodes_forget(t, f, 1);
	cr_expect_eq(inodes_count(t), 0);
}

Test(inodes, a_pinned_inode_outlives_its_forget_until_unpinned)
{
	struct inode *f;
	int fd;

	make("f");
	f = look(root(), "f");
	fd = inodes_pin(t, f);
	cr_assert_geq(fd, 0);
	inodes_forget(t, f, 1);
	cr_expect_eq(inodes_count(t), 1);
	cr_expect_eq(fcntl(fd, F_GETFD) >= 0, true, "the handle is open");
	inodes_unpin(t, f);
	cr_expect_eq(inodes_count(t), 0);
}

Test(inodes, a_removed_inode_hands_over_its_handle_and_keeps_its_attrs)
{
	struct inode *f;
	struct stat st, last;
	int fd;

	make("f");
	f = look(root(), "f");
	cr_assert_eq(fstatat(rootfd, "f", &st, 0), 0);
	cr_assert_eq(unlinkat(rootfd, "f", 0), 0);
	inodes_unlinked(t, root(), "f");
	st.st_nlink = 0;
	busy = true;		/* open files are let go at their close */
	cr_expect_eq(inodes_gone(t, st.st_dev, st.st_ino, &st), -1);
	busy = false;
	fd = inodes_gone(t, st.st_dev, st.st_ino, &st);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_expect_eq(inodes_pin(t, f), -ESTALE);
	cr_assert_eq(inodes_last(t, f, &last), 0);
	cr_expect_eq(last.st_ino, st.st_ino);
	cr_expect_eq(last.st_nlink, 0);
	cr_expect_eq(inodes_count(t), 0, "out of the table");
	inodes_forget(t, f, 1);
}

Test(inodes, the_last_close_of_a_removed_file_lets_it_go)
{
	struct inode *f;
	int fd;

	make("f");
	f = look(root(), "f");
	cr_expect_eq(inodes_closed(t, f), -1, "still named");
	cr_assert_eq(unlinkat(rootfd, "f", 0), 0);
	fd = inodes_closed(t, f);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_expect_eq(inodes_pin(t, f), -ESTALE);
	inodes_forget(t, f, 1);
}

static size_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

Test(inodes, above_the_budget_idle_handles_are_parked_and_reopen)
{
	struct inode *files[64];
	size_t before;
	char name[16];

	inodes_free(t);
	make_table(16, 100000, true);
	before = open_fds();
	for (int k = 0; k < 64; k++) {
		snprintf(name, sizeof(name), "f%d", k);
		make(name);
		files[k] = look(root(), name);
	}
	cr_expect_leq(open_fds() - before, 16, "handles kept to the budget");
	for (int k = 0; k < 64; k++) {
		struct stat st;
		int fd = inodes_pin(t, files[k]);

		cr_assert_geq(fd, 0, "file %d reopens", k);
		cr_assert_eq(fstat(fd, &st), 0);
		cr_expect_eq(st.st_ino, inodes_ino(files[k]));
		inodes_unpin(t, files[k]);
	}
	cr_expect_leq(open_fds() - before, 16);
}

Test(inodes, open_files_are_never_parked)
{
	struct inode *f;
	size_t before;
	char name[16];

	inodes_free(t);
	make_table(4, 100000, true);
	busy = true;
	before = open_fds();
	for (int k = 0; k < 8; k++) {
		snprintf(name, sizeof(name), "f%d", k);
		make(name);
		f = look(root(), name);
	}
	(void)f;
	cr_expect_eq(open_fds() - before, 8);
}

Test(inodes, above_inode_high_the_reaper_asks_the_kernel_to_forget_idle_ones)
{
	struct inode *d;
	char name[16];

	inodes_free(t);
	make_table(1000, 8, false);
	make("d/");
	d = look(root(), "d");
	for (int k = 0; k < 12; k++) {
		snprintf(name, sizeof(name), "d/f%d", k);
		make(name);
		(void)look(d, name + 2);
	}
	cr_expect_gt(wakes, 0, "the reaper was woken");
	cr_expect(inodes_reap_due(t));
	inodes_reap(t);
	cr_assert_gt(ndropped, 0);
	for (size_t k = 0; k < ndropped; k++) {
		struct inode *p = inodes_at(t, dropped[k].parent);

		cr_expect(p == d || p == root(), "dropped %s", dropped[k].name);
	}
	busy = true;		/* open files are not asked for, folders are */
	ndropped = 0;
	inodes_reap(t);
	cr_expect_eq(ndropped, 1);
	cr_expect_str_eq(dropped[0].name, "d");
}

/* The kernel's answer to the reaper: it forgets what it was asked to. */
static void forget_dropped(void)
{
	for (size_t k = 0; k < ndropped; k++) {
		struct inode *p = inodes_at(t, dropped[k].parent);
		struct inode *i = look(p, dropped[k].name);

		inodes_forget(t, i, 2);	/* the kernel's lookup and ours */
	}
	ndropped = 0;
}

Test(inodes, names_stay_right_for_what_the_reaper_leaves)
{
	struct inode *d, *e, *keep;
	char name[16];

	inodes_free(t);
	make_table(1000, 6, false);
	make("d/");
	make("d/e/");
	d = look(root(), "d");
	e = look(d, "e");
	for (int k = 0; k < 10; k++) {
		snprintf(name, sizeof(name), "d/e/f%d", k);
		make(name);
		(void)look(e, name + 4);
	}
	make("d/e/keep");
	keep = look(e, "keep");
	busy_ino = inodes_ino(keep);	/* open: never asked for */
	for (int rounds = 0; inodes_reap_due(t); rounds++) {
		cr_assert_lt(rounds, 20, "the reaper makes progress");
		inodes_reap(t);
		for (size_t k = 0; k < ndropped; k++)
			cr_assert_str_neq(dropped[k].name, "keep");
		forget_dropped();
	}
	/* Folders are forgotten too, and stay for the names below. */
	cr_expect_leq(inodes_count(t), 6);
	expect_path(d, "/d");
	expect_path(e, "/d/e");
	expect_path(keep, "/d/e/keep");
	cr_assert_eq(renameat(rootfd, "d/e", rootfd, "d/e2"), 0);
	inodes_renamed(t, d, "e", d, "e2", 0);
	expect_path(keep, "/d/e2/keep");
}

Test(inodes, a_path_past_the_buffer_is_too_long)
{
	struct inode *a;
	char buf[4];

	make("abcdef/");
	a = look(root(), "abcdef");
	cr_expect_eq(inodes_path(t, a, buf, sizeof(buf)), -ENAMETOOLONG);
}

Test(inodes, a_deep_tree_gives_whole_paths)
{
	struct inode *p = root();
	char rel[PATH_MAX] = "", want[PATH_MAX] = "";

	for (int k = 0; k < 200; k++) {
		strcat(rel, "dd/");
		make(rel);
		p = look(p, "dd");
		strcat(want, "/dd");
	}
	expect_path(p, want);
}

Test(inodes, many_names_grow_the_tables_and_stay_findable)
{
	struct inode *files[800];
	char name[16], want[32];

	for (int k = 0; k < 800; k++) {
		snprintf(name, sizeof(name), "n%d", k);
		make(name);
		files[k] = look(root(), name);
	}
	for (int k = 0; k < 800; k += 37) {
		snprintf(want, sizeof(want), "/n%d", k);
		expect_path(files[k], want);
		snprintf(name, sizeof(name), "n%d", k);
		cr_expect_eq(look(root(), name), files[k]);
	}
}
