/*
 * test_mount_rotate.c — master key rotation while mounted, driven as an
 * admin drives it: `phifsctl key rotate` against a mounted volume while
 * threads keep writing to open files and making new ones; afterwards every
 * file reads back as written (before and after a remount), `key list`
 * counts every file on the new version and shows the old one retired.  A
 * kill -9 of the daemon during an online rotation: remounted, every file
 * reads; unmounted, `key rotate` (offline) finishes the job.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountutil.h"
#include "phifs/ctl.h"
#include "testutil.h"

TestSuite(mount_rotate, .fini = mu_cleanup_all, .timeout = 240);

#define CHUNK 3000		/* not a block multiple: writes straddle */
#define WRITERS 3
#define SIZES 4

static const size_t sizes[SIZES] = { 0, 1, 4096, 70000 };

/* Runs a shell command line; its stdout into out (if given); exit code. */
static int run(const char *cmdline, char *out, size_t len)
{
	FILE *p = popen(cmdline, "r");
	size_t n = 0;
	int st;

	cr_assert_not_null(p, "%s", cmdline);
	if (out) {
		n = fread(out, 1, len - 1, p);
		out[n] = 0;
	} else {
		char sink[512];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int phifsctl(const struct mu_vol *v, const char *args, char *out,
		    size_t len)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s/phifsctl %s --key file:%s %s 2>&1",
		 PHIFS_BIN_DIR, args, v->key, v->backing);
	return run(cmd, out, len);
}

/* The file reads back as the bytes expected of it. */
static void expect_file(const char *path, const uint8_t *want, size_t len)
{
	uint8_t *got = NULL;
	size_t n = 0;
	int rc = mu_read_file(path, &got, &n);

	cr_assert_eq(rc, 0, "%s: %s", path, strerror(-rc));
	cr_assert_eq(n, len, "%s: %zu bytes, want %zu", path, n, len);
	cr_assert(!len || !memcmp(got, want, len), "%s differs", path);
	free(got);
}

/* Files f<i> of mixed sizes, contents from seed i: written, or checked. */
static void each_file(const struct mu_vol *v, int n, bool check)
{
	uint8_t *buf = malloc(sizes[SIZES - 1]);
	char name[32];

	cr_assert_not_null(buf);
	for (int i = 0; i < n; i++) {
		size_t len = sizes[i % SIZES];

		mu_fill(buf, len, (uint64_t)i);
		snprintf(name, sizeof(name), "f%d", i);
		if (check)
			expect_file(mu_m(v, name), buf, len);
		else
			mu_write_file(mu_m(v, name), buf, len);
	}
	free(buf);
}

static void make_files(const struct mu_vol *v, int n)
{
	each_file(v, n, false);
}

static void check_files(const struct mu_vol *v, int n)
{
	each_file(v, n, true);
}

/* --- writers: each appends to its open file and makes new ones --- */

struct writer {
	const struct mu_vol *v;
	int id;
	atomic_bool *stop;
	atomic_uint chunks;	/* appended to w<id> */
	unsigned made;		/* n<id>-<k> made whole */
	int err;
};

static uint64_t chunk_seed(int id, unsigned k)
{
	return 1000000u * (uint64_t)(id + 1) + k;
}

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[CHUNK];
	char name[32];
	int fd;

	snprintf(name, sizeof(name), "w%d", w->id);
	fd = open(mu_m(w->v, name), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		w->err = errno;
		return NULL;
	}
	while (!atomic_load(w->stop) && !w->err) {
		unsigned k = atomic_load(&w->chunks);

		mu_fill(buf, sizeof(buf), chunk_seed(w->id, k));
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
			w->err = errno ? errno : EIO;
			break;
		}
		atomic_store(&w->chunks, k + 1);
		if (k % 8 == 7) {	/* and a new file now and then */
			snprintf(name, sizeof(name), "n%d-%u", w->id, w->made);
			mu_write_file(mu_m(w->v, name), buf, sizeof(buf));
			w->made++;
		}
	}
	if (close(fd) && !w->err)
		w->err = errno;
	return NULL;
}

static void check_writer(const struct mu_vol *v, const struct writer *w)
{
	unsigned n = atomic_load(&w->chunks), m = 0;
	uint8_t *want = malloc((size_t)n * CHUNK + 1);
	char name[32];

	cr_assert_not_null(want);
	for (unsigned k = 0; k < n; k++) {
		mu_fill(want + (size_t)k * CHUNK, CHUNK, chunk_seed(w->id, k));
		if (k % 8 == 7) {
			snprintf(name, sizeof(name), "n%d-%u", w->id, m++);
			expect_file(mu_m(v, name), want + (size_t)k * CHUNK,
				    CHUNK);
		}
	}
	snprintf(name, sizeof(name), "w%d", w->id);
	expect_file(mu_m(v, name), want, (size_t)n * CHUNK);
	free(want);
}

static bool writers_moved(void *arg)
{
	struct writer *w = arg;

	for (int i = 0; i < WRITERS; i++)
		if (atomic_load(&w[i].chunks) < 40)
			return false;
	return true;
}

/* key list --json names version `ver` with `state` and `files` files. */
static void expect_listed(const char *json, unsigned ver, const char *state,
			  long files)
{
	char want[128];

	if (files >= 0)
		snprintf(want, sizeof(want), "{\"version\": %u, \"state\": "
			 "\"%s\", \"files\": %ld}", ver, state, files);
	else
		snprintf(want, sizeof(want), "{\"version\": %u, \"state\": "
			 "\"%s\", \"files\": ", ver, state);
	cr_assert(strstr(json, want), "no %s in %s", want, json);
}

Test(mount_rotate, writes_during_an_online_rotation_are_kept_on_the_new_key)
{
	struct mu_vol *v;
	struct writer w[WRITERS];
	pthread_t th[WRITERS];
	atomic_bool stop = false;
	char out[4096], want[64];
	unsigned at_rotation[WRITERS], made = 0;
	const int nfiles = 400;
	int rc;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	make_files(v, nfiles);
	cr_assert_eq(link(mu_m(v, "f3"), mu_m(v, "hard")), 0);
	cr_assert_eq(symlink("f3", mu_m(v, "sym")), 0);
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ .v = v, .id = i, .stop = &stop };
		cr_assert_eq(pthread_create(&th[i], NULL, write_loop, &w[i]), 0);
	}
	cr_assert(tu_wait_until(writers_moved, w, 30000), "writers stuck");
	rc = phifsctl(v, "key rotate", out, sizeof(out));
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "rotated to master key v2: ") &&
		  strstr(out, "retired v1"), "%s", out);
	/* Writes go on after it, on the same open files. */
	for (int i = 0; i < WRITERS; i++)
		at_rotation[i] = atomic_load(&w[i].chunks) + 10;
	for (int i = 0; i < WRITERS; i++)
		while (atomic_load(&w[i].chunks) < at_rotation[i] && !w[i].err)
			usleep(1000);
	atomic_store(&stop, true);
	for (int i = 0; i < WRITERS; i++) {
		cr_assert_eq(pthread_join(th[i], NULL), 0);
		cr_assert_eq(w[i].err, 0, "writer %d: %s", i,
			     strerror(w[i].err));
		made += w[i].made;
	}
	check_files(v, nfiles);
	for (int i = 0; i < WRITERS; i++)
		check_writer(v, &w[i]);
	mu_unmount(v);
	rc = phifsctl(v, "key list --json", out, sizeof(out));
	cr_assert_eq(rc, 0, "%s", out);
	/* f*, w*, n*; the hard link once, the symlink not at all. */
	expect_listed(out, 1, "retired", 0);
	expect_listed(out, 2, "active", nfiles + WRITERS + (long)made);
	cr_assert_null(strstr(out, "unreadable"), "%s", out);
	snprintf(want, sizeof(want), "\"state\": \"active\"");
	cr_assert_null(strstr(strstr(out, want) + 1, want), "%s", out);
	/* What the open files committed last is on v2 too: read afresh. */
	mu_mount(v);
	check_files(v, nfiles);
	for (int i = 0; i < WRITERS; i++)
		check_writer(v, &w[i]);
	{
		uint8_t *f3 = malloc(sizes[3]);

		cr_assert_not_null(f3);
		mu_fill(f3, sizes[3], 3);
		expect_file(mu_m(v, "hard"), f3, sizes[3]);
		free(f3);
	}
	mu_unmount(v);
}

/* The daemon's rotation figures, from its status. */
static bool rotation_under_way(void *arg)
{
	const struct mu_vol *v = arg;
	char *a = NULL, why[256];
	struct ctl_rotation r;
	bool yes;

	if (ctl_request(mu_b(v, ".phifs/control.sock"),
			"{\"cmd\":\"status\"}", 5000, &a))
		return false;
	yes = !ctl_msg_rotation(a, &r, why, sizeof(why)) &&
	      !strcmp(r.state, "running") && r.done >= 20;
	free(a);
	return yes;
}

Test(mount_rotate, a_kill_during_an_online_rotation_is_finished_offline)
{
	const int nfiles = 2000;
	struct mu_vol *v;
	char cmd[1024], out[4096];
	FILE *client;
	int rc;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	make_files(v, nfiles);
	snprintf(cmd, sizeof(cmd), "%s/phifsctl key rotate --key file:%s %s "
		 "2>&1", PHIFS_BIN_DIR, v->key, v->backing);
	client = popen(cmd, "r");
	cr_assert_not_null(client);
	cr_assert(tu_wait_until(rotation_under_way, v, 60000),
		  "no rotation seen running");
	mu_kill9(v);
	/* The client says its daemon went away, and fails (read to its
	 * end first: pclose closes the pipe it writes that to). */
	out[fread(out, 1, sizeof(out) - 1, client)] = 0;
	rc = pclose(client);
	cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "client: %d: %s",
		  rc, out);
	cr_assert(strstr(out, "no daemon answers"), "%s", out);
	mu_unmount_dead(v);
	/* Half the files on v2, half on v1, both keys still there. */
	rc = phifsctl(v, "key list --json", out, sizeof(out));
	cr_assert_eq(rc, 0, "%s", out);
	expect_listed(out, 1, "decrypt-only", -1);
	expect_listed(out, 2, "active", -1);
	cr_assert(access(mu_b(v, ".phifs/rotation"), F_OK) == 0,
		  "the marker stays");
	mu_mount(v);
	check_files(v, nfiles);
	mu_unmount(v);
	rc = phifsctl(v, "key rotate", out, sizeof(out));
	cr_assert_eq(rc, 0, "%s", out);
	cr_assert(strstr(out, "finished rotating to master key v2: ") &&
		  strstr(out, "retired v1"), "%s", out);
	rc = phifsctl(v, "key list --json", out, sizeof(out));
	cr_assert_eq(rc, 0, "%s", out);
	expect_listed(out, 1, "retired", 0);
	expect_listed(out, 2, "active", nfiles);
	mu_mount(v);
	check_files(v, nfiles);
	mu_unmount(v);
}
