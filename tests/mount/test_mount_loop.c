/*
 * test_mount_loop.c — the daemon's request loop (src/loop.c).  One worker
 * keeps the FUSE device while it serves a request; a slow request must not
 * hold up the requests behind it, and a mount with nothing to do must not
 * keep a CPU busy looking for work.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mountutil.h"
#include "testutil.h"

TestSuite(mount_loop, .fini = mu_cleanup_all, .timeout = 120);

/* user + system clock ticks the process has used so far */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	cr_assert(f, "%s: %s", path, strerror(errno));
	cr_assert(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')');	/* the name may hold spaces */
	cr_assert(p);
	cr_assert(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%lu %lu", &ut, &st) == 2);
	return (long)(ut + st);
}

struct slow_write {
	int fd;
	atomic_int tid;		/* the writer thread's, once it runs */
	atomic_bool done;
	int err;
};

static void *write_to_full_store(void *arg)
{
	struct slow_write *w = arg;
	static const char block[4096];

	atomic_store(&w->tid, gettid());
	w->err = write(w->fd, block, sizeof(block)) < 0 ? errno : 0;
	atomic_store(&w->done, true);
	return NULL;
}

/*
 * Whether the writer thread sits in write(2), waiting for the daemon's
 * answer: /proc names the system call a blocked thread is in.
 */
static bool writer_waits(void *arg)
{
	struct slow_write *w = arg;
	char path[64], buf[256];
	int tid = atomic_load(&w->tid);
	FILE *f;
	bool in_write;

	if (!tid)
		return false;
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	in_write = fgets(buf, sizeof(buf), f) &&
		   strtol(buf, NULL, 10) == SYS_write && buf[0] != '-';
	fclose(f);
	return in_write;
}

/*
 * A write to a full store keeps its worker for about half a second (it
 * retries while deleted space comes back).  Opening and reading another
 * file meanwhile must not wait for it.
 */
Test(mount_loop, a_slow_request_does_not_hold_up_the_others)
{
	static char big[1 << 20];
	struct slow_write w = { .fd = -1 };
	struct mu_vol *v;
	pthread_t t;
	char c;
	int fd, n = 0;

	mu_require_fuse();
	v = mu_vol_new(4 << 20);
	/* Without the log: on a store this small the log fills it too, and
	 * then fails closed (EIO) where this test wants ENOSPC. */
	mu_mount_no_audit(v);
	mu_write_file(mu_m(v, "small"), "x", 1);
	w.fd = open(mu_m(v, "fill"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(w.fd >= 0);
	while (write(w.fd, big, sizeof(big)) > 0 && n++ < 64)
		;
	cr_assert(errno == ENOSPC, "filling the store: %s, want ENOSPC",
		  strerror(errno));

	cr_assert(pthread_create(&t, NULL, write_to_full_store, &w) == 0);
	cr_assert(tu_wait_until(writer_waits, &w, 10000) ||
		  atomic_load(&w.done), "the writer thread never waited in "
		  "write(2) (or /proc/self/task/TID/syscall cannot tell)");
	/*
	 * Its WRITE is with the daemon.  That the daemon keeps it is a
	 * matter of time, so this sleep is the scenario: an answer that
	 * comes within 0.1 s does not retry.
	 */
	usleep(100 * 1000);
	cr_assert(!atomic_load(&w.done), "the write to a full store came back "
		  "within 0.1 s; it no longer retries, and this test tests "
		  "nothing");
	fd = open(mu_m(v, "small"), O_RDONLY);
	cr_assert(fd >= 0, "open: %s", strerror(errno));
	cr_assert(read(fd, &c, 1) == 1 && c == 'x');
	close(fd);
	cr_assert(!atomic_load(&w.done), "an open and a read waited for the "
		  "slow write to finish");
	pthread_join(t, NULL);
	cr_assert(w.err == ENOSPC, "the write to a full store: %s, want ENOSPC",
		  w.err ? strerror(w.err) : "it succeeded");
	close(w.fd);
	mu_unmount(v);
}

/*
 * After a burst of requests (which teaches the loop to poll the device
 * between them), two idle seconds cost the daemon next to no CPU.
 */
Test(mount_loop, an_idle_mount_uses_no_cpu)
{
	struct mu_vol *v;
	struct stat st;
	long before, used, hz = sysconf(_SC_CLK_TCK);

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_write_file(mu_m(v, "f"), "x", 1);
	for (int i = 0; i < 20000; i++) {
		int fd = open(mu_m(v, "f"), O_RDONLY);

		cr_assert(fd >= 0, "open: %s", strerror(errno));
		close(fd);
	}
	cr_assert(stat(mu_m(v, "f"), &st) == 0);
	/*
	 * Both sleeps are the scenario, not waits for an event: 0.2 s for
	 * the burst's last requests to end, then two idle seconds whose CPU
	 * time is measured.
	 */
	usleep(200 * 1000);
	before = cpu_ticks(v->daemon);
	sleep(2);
	used = cpu_ticks(v->daemon) - before;
	/* A spinning worker would use 2 s; the ticker a few ms. */
	cr_assert(used * 1000 / hz <= 60, "the idle daemon used %ld ms of CPU "
		  "in 2 s", used * 1000 / hz);
	mu_unmount(v);
}

/*
 * Polling off (--no-poll, poll = no, or -o no_poll from an fstab line): the
 * daemon serves with libfuse's loop, no_poll is taken as phifs's own option
 * rather than handed to FUSE (which would refuse to mount), and SIGTERM is
 * still a clean stop with exit 0 (the second daemon runs in the
 * foreground, so that its exit status is ours to check).
 */
Test(mount_loop, polling_can_be_turned_off)
{
	static const char *const cli[] = { "--no-poll", NULL };
	static const char *const fstab[] = { "-o", "no_poll", NULL };
	const char *const *ways[] = { cli, fstab };
	struct mu_vol *v;
	uint8_t *got;
	size_t n;

	mu_require_fuse();
	v = mu_vol_new(0);
	for (int w = 0; w < 2; w++) {
		int rc = mu_phifs(v, w == 1, NULL, NULL, NULL, ways[w]);

		cr_assert(rc == 0, "phifs %s: exit %d: %s", ways[w][0], rc,
			  v->err);
		mu_write_file(mu_m(v, "f"), "polled", 6);
		cr_assert(mu_read_file(mu_m(v, "f"), &got, &n) == 0);
		cr_assert(n == 6 && !memcmp(got, "polled", 6));
		free(got);
		if (w == 0)
			mu_unmount(v);
		else
			mu_terminate(v);
	}
}
