/*
 * test_mount_reload.c — the access policy reloaded under a mount served
 * by a root daemon with allow_other: over the control socket and by
 * SIGHUP, a file that is not valid is refused with its file:line and the
 * old policy stays in force, a valid one changes the decision, and eight
 * processes of other uids opening files while the policy is swapped again
 * and again each get the old policy's answer or the new one's, never
 * another.  Every decision is checked by a live request from a forked
 * child that took another uid.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mountutil.h"
#include "phifs/ctl.h"

TestSuite(mount_reload, .fini = mu_cleanup_all, .timeout = 240);

/*
 * Users 5001 to 5008 and the roles each holds under policy 0 and under
 * policy 1 (- none, r read, w write, b both), on the folder /w.
 */
#define NUSERS 8
static const char roles[2][NUSERS + 1] = { "b-r-rwrb", "b--rwrrr" };

static const char *role_names(char c)
{
	switch (c) {
	case 'r':
		return "r";
	case 'w':
		return "w";
	case 'b':
		return "r, w";
	}
	return NULL;
}

/* Policy k (0 or 1) as text: root may do anything, to set things up. */
static void policy_text(int k, char *buf, size_t len)
{
	size_t at = (size_t)snprintf(buf, len, "[defaults]\nroot = allow\n"
				     "[role:r]\nread = /w/**\n"
				     "[role:w]\nwrite = /w/**\n");

	for (int u = 0; u < NUSERS; u++) {
		const char *r = role_names(roles[k][u]);

		if (r)
			at += (size_t)snprintf(buf + at, len - at,
					       "[user:%d]\nroles = %s\n",
					       5001 + u, r);
	}
	cr_assert_lt(at, len);
}

static char policy_path[256];

/* Replaces the policy file whole (rename), as an administrator would. */
static void put_policy(const char *text)
{
	char tmp[300];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", policy_path);
	f = fopen(tmp, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rename(tmp, policy_path), 0);
}

static void put_policy_k(int k)
{
	char text[1024];

	policy_text(k, text, sizeof(text));
	put_policy(text);
}

/* The daemon's answer to a reload over its control socket (malloc'd). */
static char *reload(const struct mu_vol *v)
{
	char *a = NULL;
	int rc = ctl_request(mu_b(v, ".phifs/control.sock"),
			     "{\"cmd\":\"reload\",\"version\":1}", 30000, &a);

	cr_assert_eq(rc, 0, "reload: %s", strerror(-rc));
	return a;
}

static void reload_ok(const struct mu_vol *v)
{
	char *a = reload(v);

	cr_assert(strstr(a, "\"ok\":true") && strstr(a, "\"policy\":true"),
		  "%s", a);
	free(a);
}

/*
 * Mounts v with policy 0 and allow_other; root lays out /w/f.  relative:
 * the policy named from v's folder, which the daemon leaves once mounted.
 */
static struct mu_vol *mount_policy_as(bool relative)
{
	const char *extra[] = { "-o", "allow_other", "--policy",
				relative ? "policy.ini" : policy_path, NULL };
	char cwd[256];
	struct mu_vol *v;
	int fd;

	mu_require_fuse();
	if (geteuid() != 0)
		mu_skip("needs root: the children switch uid");
	v = mu_vol_new(0);
	snprintf(policy_path, sizeof(policy_path), "%s/policy.ini", v->dir);
	put_policy_k(0);
	cr_assert_eq(chmod(v->dir, 0755), 0);
	/* The root's mode is its folder record's: set through a mount. */
	mu_mount(v);
	cr_assert_eq(chmod(v->mnt, 0777), 0);
	mu_unmount(v);
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	cr_assert_eq(chdir(relative ? v->dir : cwd), 0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 0, "%s",
		     v->err);
	cr_assert_eq(chdir(cwd), 0);
	umask(0);
	cr_assert_eq(mkdir(mu_m(v, "w"), 0777), 0);
	fd = open(mu_m(v, "w/f"), O_WRONLY | O_CREAT | O_EXCL, 0666);
	cr_assert(fd >= 0, "%s", strerror(errno));
	cr_assert_eq(write(fd, "chart", 5), 5);
	cr_assert_eq(close(fd), 0);
	return v;
}

static struct mu_vol *mount_policy(void)
{
	return mount_policy_as(false);
}

/* open(path, flags) and one read or write: 0 or the errno. */
static int use(const char *path, int flags)
{
	char c = 'x';
	int fd = open(path, flags), rc = 0;

	if (fd < 0)
		return errno;
	if ((flags & O_ACCMODE) == O_WRONLY ? write(fd, &c, 1) != 1 :
	    read(fd, &c, 1) != 1)
		rc = errno ? errno : EIO;
	close(fd);
	return rc;
}

static void become(uid_t uid)
{
	if (setgroups(0, NULL) || setresgid(uid, uid, uid) ||
	    setresuid(uid, uid, uid))
		_exit(250);
}

/* use() as uid in a forked child. */
static int as(uid_t uid, const char *path, int flags)
{
	pid_t pid = fork();
	int st;

	cr_assert(pid >= 0);
	if (pid == 0) {
		become(uid);
		_exit(use(path, flags));
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_neq(WEXITSTATUS(st), 250, "cannot become uid %u", uid);
	return WEXITSTATUS(st);
}

Test(mount_reload, a_bad_file_is_refused_and_the_old_policy_stays)
{
	char bad[256], *text, *a;
	struct mu_vol *v = mount_policy();
	const char *f = mu_m(v, "w/f");
	size_t len;

	/* Under policy 0, 5003 reads and 5004 does not. */
	cr_assert_eq(as(5003, f, O_RDONLY), 0);
	cr_assert_eq(as(5004, f, O_RDONLY), EACCES);
	snprintf(bad, sizeof(bad), "%s/policy/bad/dotdot.ini",
		 PHIFS_TEST_DATA);
	cr_assert_eq(mu_read_file(bad, (uint8_t **)&text, &len), 0);
	text = realloc(text, len + 1);
	cr_assert_not_null(text);
	text[len] = 0;
	put_policy(text);
	free(text);
	a = reload(v);
	cr_expect(strstr(a, "\"ok\":false"), "%s", a);
	cr_expect(strstr(a, "policy.ini:2: '..' in"), "%s", a);
	cr_expect(strstr(a, "policy in force is unchanged"), "%s", a);
	free(a);
	cr_expect_eq(as(5003, f, O_RDONLY), 0);
	cr_expect_eq(as(5004, f, O_RDONLY), EACCES);
	/*
	 * The same by SIGHUP.  The control thread takes one thing at a
	 * time, so once a reload sent after the signal is answered, the
	 * signal's reload has most likely been refused too.
	 */
	cr_assert_eq(kill(v->daemon, SIGHUP), 0);
	free(reload(v));
	cr_expect_eq(as(5003, f, O_RDONLY), 0);
	cr_expect_eq(as(5004, f, O_RDONLY), EACCES);
	mu_unmount(v);
}

Test(mount_reload, a_good_file_changes_the_decision)
{
	struct mu_vol *v = mount_policy_as(true);
	const char *f = mu_m(v, "w/f");
	struct timespec t = { 0, 20 * 1000 * 1000 };
	int tries;

	cr_assert_eq(as(5003, f, O_RDONLY), 0);
	cr_assert_eq(as(5004, f, O_RDONLY), EACCES);
	put_policy_k(1);
	reload_ok(v);
	cr_expect_eq(as(5003, f, O_RDONLY), EACCES);
	cr_expect_eq(as(5004, f, O_RDONLY), 0);
	/* And back, by SIGHUP this time: waited for, with a deadline. */
	put_policy_k(0);
	cr_assert_eq(kill(v->daemon, SIGHUP), 0);
	for (tries = 0; tries < 500 && as(5004, f, O_RDONLY) == 0; tries++)
		nanosleep(&t, NULL);
	cr_expect_lt(tries, 500, "SIGHUP did not reload the policy");
	cr_expect_eq(as(5003, f, O_RDONLY), 0);
	mu_unmount(v);
}

/* ---- reloads under load ---- */

/* What each worker saw, in memory shared with the test. */
struct seen {
	atomic_long uses;
	atomic_long as[2];	/* answers policy 0's, policy 1's */
	atomic_long wrong;
	atomic_int last_wrong;	/* the last answer neither gives */
};

/* One worker's access and its answer under each policy. */
static int worker_flags(int u)
{
	/* Users 5005 and 5006 hold read under one policy, write under
	 * the other: O_RDWR is refused by both, let in only by a half. */
	static const int flags[NUSERS] = { O_RDWR, O_RDONLY, O_RDONLY,
					   O_RDONLY, O_RDWR, O_RDWR,
					   O_RDONLY, O_WRONLY };
	return flags[u];
}

static int expected(int k, int u)
{
	char r = roles[k][u];
	int fl = worker_flags(u) & O_ACCMODE;
	bool rd = r == 'r' || r == 'b', wr = r == 'w' || r == 'b';

	if ((fl != O_WRONLY && !rd) || (fl != O_RDONLY && !wr))
		return EACCES;
	return 0;
}

static void worker(const char *path, int u, struct seen *s, int stop_fd)
{
	struct pollfd p = { .fd = stop_fd, .events = POLLIN };

	become((uid_t)(5001 + u));
	while (poll(&p, 1, 0) == 0) {
		int rc = use(path, worker_flags(u));
		bool old = rc == expected(0, u), new = rc == expected(1, u);

		if (old)
			atomic_fetch_add(&s->as[0], 1);
		if (new)
			atomic_fetch_add(&s->as[1], 1);
		if (!old && !new) {
			atomic_store(&s->last_wrong, rc);
			atomic_fetch_add(&s->wrong, 1);
		}
		atomic_fetch_add(&s->uses, 1);
	}
	_exit(0);
}

/*
 * Waits until every worker finished two more uses than at start: the
 * second began after the last reload was answered.
 */
static void wait_uses(struct seen *s, const long *start)
{
	struct timespec t = { 0, 1000 * 1000 };

	for (int u = 0; u < NUSERS; u++)
		for (int i = 0; atomic_load(&s[u].uses) < start[u] + 2; i++) {
			cr_assert_lt(i, 30000, "worker %d stalled", u);
			nanosleep(&t, NULL);
		}
}

Test(mount_reload, under_eight_workers_every_answer_is_the_old_or_the_new)
{
	struct mu_vol *v = mount_policy();
	const char *f = mu_m(v, "w/f");
	struct seen *s;
	pid_t pid[NUSERS];
	long start[NUSERS];
	int stop[2], st;

	s = mmap(NULL, sizeof(*s) * NUSERS, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(s, MAP_FAILED);
	cr_assert_eq(pipe(stop), 0);
	for (int u = 0; u < NUSERS; u++) {
		pid[u] = fork();
		cr_assert_geq(pid[u], 0);
		if (pid[u] == 0) {
			close(stop[1]);
			worker(f, u, &s[u], stop[0]);
		}
	}
	close(stop[0]);
	for (int i = 1; i <= 40; i++) {
		for (int u = 0; u < NUSERS; u++)
			start[u] = atomic_load(&s[u].uses);
		put_policy_k(i % 2);
		reload_ok(v);
		wait_uses(s, start);
	}
	close(stop[1]);		/* the workers see POLLHUP and stop */
	for (int u = 0; u < NUSERS; u++) {
		cr_assert_eq(waitpid(pid[u], &st, 0), pid[u]);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "worker %d: status %#x", u, st);
		cr_expect_eq(atomic_load(&s[u].wrong), 0, "uid %d: %ld "
			     "answers neither policy gives, the last %s", 5001 +
			     u, atomic_load(&s[u].wrong),
			     strerror(atomic_load(&s[u].last_wrong)));
		/* A worker whose answer changes saw both. */
		if (expected(0, u) != expected(1, u))
			cr_expect(atomic_load(&s[u].as[0]) &&
				  atomic_load(&s[u].as[1]), "uid %d", 5001 + u);
	}
	munmap(s, sizeof(*s) * NUSERS);
	mu_unmount(v);
}
