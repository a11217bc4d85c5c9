/*
 * test_nodes.c — the table of open files: one cfile per inode however many
 * opens, commits that fail are handed back, and a last close never races
 * the next open of the same file.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "phifs/crypto.h"
#include "phifs/format.h"
#include "phifs/nodes.h"
#include "oldkernel_filter.h"

#define BS FORMAT_BLOCK_SIZE

static struct crypto_key *kek;
static uint8_t volid[FORMAT_ID_LEN] = { 0xab };
static struct cfile_volume vol;
static struct nodes *t;
static char dir[64], file[96];
static int jdir = -1;

static const struct crypto_key *kek_of(void *arg, uint32_t v)
{
	(void)arg;
	return v == 1 ? kek : NULL;
}

static void setup(void)
{
	int fd;

	strcpy(dir, "/tmp/phifs-nodes-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	jdir = open(dir, O_RDONLY | O_DIRECTORY);
	kek = crypto_key_random();
	cr_assert(kek && jdir >= 0);
	/* Journals on: a rewrite of committed blocks makes one. */
	vol = (struct cfile_volume){ .volume_id = volid, .kek = kek_of,
				     .active_version = 1,
				     .journal_dirfd = jdir };
	cr_assert_eq(nodes_new(&vol, &t), 0);
	snprintf(file, sizeof(file), "%s/f", dir);
	fd = open(file, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	{
		struct node *n;

		cr_assert_eq(nodes_get(t, fd, true, &n), 0);
		cr_assert_eq(nodes_put(t, n), 0);
	}
}

static void teardown(void)
{
	char cmd[128];

	nodes_free(t);
	crypto_key_free(kek);
	close(jdir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(nodes, .init = setup, .fini = teardown, .timeout = 120);

static struct node *get(void)
{
	struct node *n;
	int fd = open(file, O_RDWR);

	cr_assert_geq(fd, 0);
	cr_assert_eq(nodes_get(t, fd, false, &n), 0);
	return n;
}

Test(nodes, every_open_of_one_inode_shares_one_node)
{
	struct node *a = get(), *b = get();
	dev_t dev = a->dev;
	ino_t ino = a->ino;
	uint64_t size;

	cr_assert_eq(a, b);
	cr_assert_eq(cfile_pwrite(a->cf, "abc", 3, 0), 3);
	cr_assert_eq(nodes_size(t, a->dev, a->ino, &size), 0);
	cr_expect_eq(size, 3);
	cr_assert_eq(nodes_put(t, a), 0);
	cr_assert_eq(nodes_size(t, dev, ino, &size), 0, "still open");
	cr_assert_eq(nodes_put(t, b), 0);
	cr_expect_eq(nodes_size(t, dev, ino, &size), -ENOENT);
}

static dev_t bad_dev;
static ino_t bad_ino;
static int bad_rc, nbad;

static void failed(void *arg, dev_t dev, ino_t ino, int rc)
{
	(void)arg;
	bad_dev = dev;
	bad_ino = ino;
	bad_rc = rc;
	nbad++;
}

Test(nodes, a_commit_that_fails_is_handed_back_with_its_inode)
{
	struct node *n = get();

	cr_assert_eq(cfile_pwrite(n->cf, "abc", 3, 70000), 3);
	cr_assert_eq(oldkernel_filter_fail(SYS_pwrite64, EIO), 0);
	cr_expect_eq(nodes_commit_all(t, failed, NULL), -EIO);
	cr_expect_eq(nbad, 1);
	cr_expect_eq(bad_rc, -EIO);
	cr_expect(bad_dev == n->dev && bad_ino == n->ino);
	(void)nodes_put(t, n);
}

/*
 * One thread rewrites the file's first blocks (journaled: they are
 * committed) and closes it, over and over; another opens, reads and closes.
 * Each open may meet the other's last close.  What is read is always one
 * whole version, and no journal is left behind.
 */
static _Atomic bool stop;

static void *rewriter(void *arg)
{
	uint8_t buf[2 * BS];

	(void)arg;
	for (unsigned k = 1; k <= 400; k++) {
		struct node *n = get();

		memset(buf, (int)(k & 0xff), sizeof(buf));
		cr_assert_eq(cfile_pwrite(n->cf, buf, sizeof(buf), 0),
			     (ssize_t)sizeof(buf));
		cr_assert_eq(nodes_put(t, n), 0);
	}
	stop = true;
	return NULL;
}

Test(nodes, a_last_close_never_races_the_next_open)
{
	uint8_t buf[2 * BS];
	pthread_t w;
	unsigned reads = 0;
	char cmd[160];
	FILE *p;
	int left = -1;

	{
		struct node *n = get();

		memset(buf, 0, sizeof(buf));
		cr_assert_eq(cfile_pwrite(n->cf, buf, sizeof(buf), 0),
			     (ssize_t)sizeof(buf));
		cr_assert_eq(nodes_put(t, n), 0);
	}
	stop = false;
	cr_assert_eq(pthread_create(&w, NULL, rewriter, NULL), 0);
	while (!stop) {
		struct node *n = get();
		ssize_t got = cfile_pread(n->cf, buf, sizeof(buf), 0);

		cr_assert_eq(got, (ssize_t)sizeof(buf));
		for (size_t i = 1; i < sizeof(buf); i++)
			cr_assert_eq(buf[i], buf[0], "torn read at %zu", i);
		cr_assert_eq(nodes_put(t, n), 0);
		reads++;
	}
	pthread_join(w, NULL);
	cr_assert_gt(reads, 0);
	/* Every journal was removed by the handle that made it. */
	snprintf(cmd, sizeof(cmd), "ls -A %s | grep -vx f | wc -l", dir);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fscanf(p, "%d", &left), 1);
	pclose(p);
	cr_expect_eq(left, 0, "journals left behind");
}
