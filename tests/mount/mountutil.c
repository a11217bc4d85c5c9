/*
 * mountutil.c — volumes, mounts and clean-up for the mount tests; see
 * mountutil.h.  Programs are found in the build folder named by the
 * PHIFS_BIN_DIR compile definition (the environment variable of the same
 * name overrides it, to run the tests against another build).
 */
#include "mountutil.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_VOLS 8
#define PHIFS_WAIT_MS 30000	/* a mount or an exit should take far less */

static struct mu_vol *vols[MAX_VOLS];
static int nvols;

static const char *bindir(void)
{
	const char *e = getenv("PHIFS_BIN_DIR");

	return e && *e ? e : PHIFS_BIN_DIR;
}

/*
 * With PHIFS_TEST_OLD_KERNEL=1 the phifs programs run under the oldkernel
 * wrapper (tests/oldkernel.c, built beside them), which hides the system
 * calls that Linux 6.1 lacks: their fallbacks are tested on any kernel.
 */
static bool old_kernel(void)
{
	const char *e = getenv("PHIFS_TEST_OLD_KERNEL");

	return e && !strcmp(e, "1");
}

/* argv copied into out (max entries), behind the wrapper in that mode. */
static char **prog_argv(char *const argv[], char *out[], size_t max)
{
	static char wrapper[4096];
	size_t n = 0;

	if (old_kernel()) {
		snprintf(wrapper, sizeof(wrapper), "%s/oldkernel", bindir());
		out[n++] = wrapper;
	}
	for (size_t i = 0; argv[i] && n + 1 < max; i++)
		out[n++] = argv[i];
	out[n] = NULL;
	return out;
}

/* A pause between retries; waits for an event use tu_wait_until. */
static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Reads a small text file whole, NUL-terminated; -1 if it cannot. */
static ssize_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		return -1;
	while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

/* ---- environment for the programs under test ---- */

/*
 * Sanitizer reports of the programs go to files in the volume folder: a
 * daemonized phifs has its stderr on /dev/null, so its reports would be lost.
 */
static char **child_env(const struct mu_vol *v)
{
	static char asan[1024], ubsan[1024];
	static char *env[512];
	const char *a = getenv("ASAN_OPTIONS"), *u = getenv("UBSAN_OPTIONS");
	size_t n = 0;

	snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%slog_path=%s/san",
		 a ? a : "", a && *a ? ":" : "", v->dir);
	snprintf(ubsan, sizeof(ubsan), "UBSAN_OPTIONS=%s%slog_path=%s/san",
		 u ? u : "", u && *u ? ":" : "", v->dir);
	for (char **e = environ; *e && n < 508; e++)
		if (strncmp(*e, "ASAN_OPTIONS=", 13) &&
		    strncmp(*e, "UBSAN_OPTIONS=", 14))
			env[n++] = *e;
	env[n++] = asan;
	env[n++] = ubsan;
	env[n] = NULL;
	return env;
}

/* Fails the test with the first sanitizer report found for the volume. */
static void check_sanitizers(const struct mu_vol *v)
{
	DIR *d = opendir(v->dir);
	struct dirent *de;
	char path[512], text[4096];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "san.", 4))
			continue;
		snprintf(path, sizeof(path), "%s/%s", v->dir, de->d_name);
		if (slurp(path, text, sizeof(text)) <= 0)
			continue;
		closedir(d);
		cr_assert_fail("a phifs program reported a sanitizer error "
			       "(%s):\n%s", path, text);
	}
	closedir(d);
}

/* ---- spawning ---- */

static pid_t spawn(char *const argv[], char **envp, const char *out,
		   const char *err)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out ? out : "/dev/null",
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err ? err : "/dev/null",
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc ? -1 : pid;
}

struct exit_wait {
	pid_t pid;
	int st;		/* as wait_status returns it; -1 while running */
};

static bool exited(void *arg)
{
	struct exit_wait *w = arg;
	pid_t r;
	int st;

	r = waitpid(w->pid, &st, WNOHANG);
	if (r == w->pid)
		w->st = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	else if (r < 0 && errno != EINTR)
		w->st = -2;
	return w->st != -1;
}

/*
 * Exit status as a shell shows it; -1 when it outlived timeout_ms, -2 when
 * it is not ours to wait for.
 */
static int wait_status(pid_t pid, int timeout_ms)
{
	struct exit_wait w = { pid, -1 };

	tu_wait_until(exited, &w, timeout_ms);
	return w.st;
}

/* Runs argv to completion (killing it after timeout_ms); the exit status. */
static int run(char *const argv[], char **envp, const char *out,
	       const char *err, int timeout_ms)
{
	pid_t pid = spawn(argv, envp, out, err);
	int st;

	if (pid < 0)
		return -3;
	st = wait_status(pid, timeout_ms);
	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return st;
}

/* ---- mounts and processes, by folder ---- */

bool mu_is_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], mp[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		/* id parent major:minor root MOUNTPOINT ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		found = !strcmp(mp, path);
	}
	fclose(f);
	return found;
}

/* Mount points at or below dir, deepest (longest) first. */
static int mounts_under(const char *dir, char out[][256], int max)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], mp[4096];
	size_t dl = strlen(dir);
	int n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		if (strncmp(mp, dir, dl) || (mp[dl] && mp[dl] != '/'))
			continue;
		snprintf(out[n++], 256, "%.255s", mp);
	}
	fclose(f);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (strlen(out[j]) > strlen(out[i])) {
				char t[256];

				memcpy(t, out[i], 256);
				memcpy(out[i], out[j], 256);
				memcpy(out[j], t, 256);
			}
	return n;
}

static void lazy_unmount(const char *mp)
{
	char *fu[] = { "fusermount3", "-u", "-z", (char *)mp, NULL };

	if (umount2(mp, MNT_DETACH) == 0)
		return;
	run(fu, NULL, NULL, NULL, 10000);
}

/* The command line of pid with NULs as spaces; false if it is gone. */
static bool cmdline_of(pid_t pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	n = slurp(path, buf, size);
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	return true;
}

/* 'R', 'S', 'Z', ...; 0 when the process is gone. */
static char proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[1024], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (slurp(path, buf, sizeof(buf)) <= 0)
		return 0;
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return 0;
	if (ppid)
		*ppid = (pid_t)strtol(p + 4, NULL, 10);
	return p[2];
}

/* Up to max live processes (not us) whose command line mentions s. */
static int procs_mentioning(const char *s, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	char cmd[8192];
	int n = 0;

	if (!d)
		return 0;
	while (n < max && (de = readdir(d))) {
		pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);
		char st;

		if (pid <= 0 || pid == getpid())
			continue;
		st = proc_state(pid, NULL);
		if (!st || st == 'Z')
			continue;
		if (cmdline_of(pid, cmd, sizeof(cmd)) && strstr(cmd, s))
			out[n++] = pid;
	}
	closedir(d);
	return n;
}

/* The log's sealed segments are immutable (and open ones append-only)
 * where the daemon may set the flags: cleared first, or unlink fails. */
static void unflag(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int f;

	if (fd < 0)
		return;
	if (!ioctl(fd, FS_IOC_GETFLAGS, &f) &&
	    (f & (FS_IMMUTABLE_FL | FS_APPEND_FL))) {
		f &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
		(void)ioctl(fd, FS_IOC_SETFLAGS, &f);
	}
	close(fd);
}

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_DP || type == FTW_D || type == FTW_DNR) {
		chmod(path, 0700);
		rmdir(path);
	} else {
		if (type == FTW_F && S_ISREG(st->st_mode) && unlink(path))
			unflag(path);
		unlink(path);
	}
	return 0;
}

void mu_rm_rf(const char *path)
{
	/* Two passes: the first makes unreadable folders readable. */
	nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/*
 * Leaves nothing of dir behind: lazy-unmounts every mount below it, kills
 * every process whose command line names it, removes it.  Used by the
 * guardian and as the last step of mu_cleanup_all().
 */
static void reap_dir(const char *dir)
{
	char mps[16][256];
	pid_t pids[64];
	int n;

	for (int round = 0; round < 3; round++) {
		n = mounts_under(dir, mps, 16);
		for (int i = 0; i < n; i++)
			lazy_unmount(mps[i]);
		n = procs_mentioning(dir, pids, 64);
		for (int i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		if (n == 0 && mounts_under(dir, mps, 16) == 0)
			break;
		msleep(100);	/* a killed process takes a moment */
	}
	/* Reap any that were ours (we are their subreaper). */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	mu_rm_rf(dir);
}

/*
 * The guardian: a process that outlives the test process and cleans up the
 * volume unless told (by a 'D' on its pipe) that the test process did.
 */
static pid_t start_guardian(const char *dir, int *wfd)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		char c = 0;
		ssize_t r;
		int nul = open("/dev/null", O_RDWR);

		setsid();
		signal(SIGPIPE, SIG_IGN);
		/* Hold nothing of the test's open: files on a mount keep it busy. */
		if (p[0] != 3) {
			dup2(p[0], 3);
			close(p[0]);
		}
		dup2(nul, 0);
		dup2(nul, 1);
		close_range(4, ~0U, 0);
		close(p[1]);	/* the test's copy stays open */
		do
			r = read(3, &c, 1);
		while (r < 0 && errno == EINTR);
		if (r == 1 && c == 'D')
			_exit(0);
		reap_dir(dir);
		_exit(0);
	}
	close(p[0]);
	*wfd = p[1];
	return pid;
}

/* ---- FUSE availability ---- */

static bool have_program(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4096], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
	for (tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
		char p[4400];

		snprintf(p, sizeof(p), "%s/%s", tok, name);
		if (access(p, X_OK) == 0)
			return true;
	}
	return false;
}

void mu_skip(const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	mu_cleanup_all();	/* Criterion runs no .fini for a skipped test */
	cr_skip_test("%s", why);
	abort();		/* not reached */
}

void mu_require_fuse(void)
{
	static int checked;
	char dir[] = "/tmp/phifs-probe-XXXXXX", opts[128], help[2048], out[64];
	char phifs[4096];
	int fd;

	if (checked)
		return;
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		mu_skip("FUSE is unavailable: cannot open /dev/fuse: %s",
			strerror(errno));
	if (!have_program("fusermount3")) {
		close(fd);
		mu_skip("FUSE is unavailable: no fusermount3 on PATH");
	}
	if (geteuid() == 0) {
		/* A bare FUSE mount, answered by nobody, then dropped at once. */
		if (!mkdtemp(dir)) {
			close(fd);
			cr_assert_fail("mkdtemp: %s", strerror(errno));
		}
		snprintf(opts, sizeof(opts),
			 "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
		if (mount("phifs-probe", dir, "fuse", MS_NOSUID | MS_NODEV,
			  opts)) {
			int e = errno;

			close(fd);
			rmdir(dir);
			mu_skip("FUSE is unavailable: a FUSE mount fails: %s",
				strerror(e));
		}
		umount2(dir, MNT_DETACH);
		rmdir(dir);
	}
	close(fd);

	/* A phifs that says it cannot mount yet: nothing here can be tested. */
	snprintf(phifs, sizeof(phifs), "%s/phifs", bindir());
	cr_assert(access(phifs, X_OK) == 0, "no phifs program at %s", phifs);
	if (old_kernel()) {
		char wrapper[4096];

		snprintf(wrapper, sizeof(wrapper), "%s/oldkernel", bindir());
		cr_assert(access(wrapper, X_OK) == 0, "PHIFS_TEST_OLD_KERNEL=1 "
			  "but no oldkernel program at %s", wrapper);
	}
	{
		char *argv[] = { phifs, "--help", NULL }, *wargv[4];
		char tmpl[] = "/tmp/phifs-help-XXXXXX";
		int tfd = mkstemp(tmpl);

		cr_assert(tfd >= 0);
		close(tfd);
		snprintf(out, sizeof(out), "%s", tmpl);
		run(prog_argv(argv, wargv, 4), NULL, out, out, 10000);
		slurp(out, help, sizeof(help));
		unlink(out);
		if (strstr(help, "not built yet"))
			mu_skip("this phifs build cannot mount yet (its --help "
				"says mounting is not built)");
	}
	checked = 1;
}

/* ---- volumes ---- */

const char *mu_m(const struct mu_vol *v, const char *rel)
{
	static char ring[8][512];
	static int i;
	char *p = ring[i++ % 8];

	snprintf(p, 512, "%s/%s", v->mnt, rel);
	return p;
}

const char *mu_b(const struct mu_vol *v, const char *rel)
{
	static char ring[8][512];
	static int i;
	char *p = ring[i++ % 8];

	snprintf(p, 512, "%s/%s", v->backing, rel);
	return p;
}

static int ctl(struct mu_vol *v, char *const argv[])
{
	char err[256], *wargv[16];
	int st;

	snprintf(err, sizeof(err), "%s/phifsctl.err", v->dir);
	st = run(prog_argv(argv, wargv, 16), child_env(v), NULL, err,
		 PHIFS_WAIT_MS);
	slurp(err, v->err, sizeof(v->err));
	return st;
}

struct mu_vol *mu_vol_new(size_t tmpfs_bytes)
{
	struct mu_vol *v = calloc(1, sizeof(*v));
	char ctlpath[4096], keyarg[256];
	int st;

	cr_assert(v);
	cr_assert(nvols < MAX_VOLS, "too many volumes in one test");
	/* Daemonized phifs processes become our children: we can reap them. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	snprintf(v->dir, sizeof(v->dir), "/tmp/phifs-mount-XXXXXX");
	cr_assert(mkdtemp(v->dir), "mkdtemp: %s", strerror(errno));
	v->guard_fd = -1;
	vols[nvols++] = v;
	v->guard = start_guardian(v->dir, &v->guard_fd);
	cr_assert(v->guard > 0, "cannot start the guardian process");

	snprintf(v->key, sizeof(v->key), "%s/key", v->dir);
	snprintf(v->mnt, sizeof(v->mnt), "%s/mnt", v->dir);
	cr_assert(mkdir(v->mnt, 0700) == 0);
	if (tmpfs_bytes) {
		char small[128], opts[64];

		snprintf(small, sizeof(small), "%s/small", v->dir);
		snprintf(opts, sizeof(opts), "size=%zu,mode=0700", tmpfs_bytes);
		cr_assert(mkdir(small, 0700) == 0);
		if (mount("tmpfs", small, "tmpfs", MS_NOSUID | MS_NODEV, opts))
			mu_skip("cannot mount a tmpfs for a small backing store: %s",
				strerror(errno));
		snprintf(v->backing, sizeof(v->backing), "%.100s/backing", small);
	} else {
		snprintf(v->backing, sizeof(v->backing), "%s/backing", v->dir);
	}
	cr_assert(mkdir(v->backing, 0700) == 0);

	snprintf(ctlpath, sizeof(ctlpath), "%s/phifsctl", bindir());
	snprintf(keyarg, sizeof(keyarg), "file:%s", v->key);
	{
		char *kg[] = { ctlpath, "keygen", v->key, NULL };
		char *in[] = { ctlpath, "init", "--key", keyarg, v->backing, NULL };

		st = ctl(v, kg);
		cr_assert(st == 0, "phifsctl keygen exited %d: %s", st, v->err);
		st = ctl(v, in);
		cr_assert(st == 0, "phifsctl init exited %d: %s", st, v->err);
	}
	check_sanitizers(v);
	return v;
}

void mu_keygen(struct mu_vol *v, const char *path)
{
	char ctlpath[4096];
	char *kg[] = { ctlpath, "keygen", (char *)path, NULL };
	int st;

	snprintf(ctlpath, sizeof(ctlpath), "%s/phifsctl", bindir());
	st = ctl(v, kg);
	cr_assert(st == 0, "phifsctl keygen exited %d: %s", st, v->err);
}

int mu_procs_with(const char *s)
{
	pid_t pids[64];

	return procs_mentioning(s, pids, 64);
}

/* The daemon serving v->mnt after a daemonizing phifs returned. */
static pid_t find_daemon(struct mu_vol *v)
{
	static int warned;
	char path[256], buf[256], cmd[8192];
	pid_t pid = 0, ppid = 0, cand[8];
	int n;

	snprintf(path, sizeof(path), "%s/.phifs/lock", v->backing);
	if (slurp(path, buf, sizeof(buf)) > 0)
		pid = (pid_t)strtol(buf, NULL, 10);
	if (pid > 0 && cmdline_of(pid, cmd, sizeof(cmd)) &&
	    strstr(cmd, v->backing)) {
		proc_state(pid, &ppid);
		v->daemon_is_child = ppid == getpid();
		return pid;
	}
	if (!warned++)
		fprintf(stderr, "mountutil: note: BACKING/.phifs/lock does not "
			"hold the daemon's pid; finding it in /proc\n");
	n = procs_mentioning(v->backing, cand, 8);
	for (int i = 0; i < n; i++) {
		if (!cmdline_of(cand[i], cmd, sizeof(cmd)) || !strstr(cmd, v->mnt))
			continue;
		proc_state(cand[i], &ppid);
		v->daemon_is_child = ppid == getpid();
		return cand[i];
	}
	return 0;
}

struct fg_wait {
	const char *mnt;
	struct exit_wait exit;
};

/* A foreground phifs either mounts or exits. */
static bool mounted_or_exited(void *arg)
{
	struct fg_wait *w = arg;

	return mu_is_mounted(w->mnt) || exited(&w->exit);
}

int mu_phifs(struct mu_vol *v, bool foreground, const char *key,
	     const char *backing, const char *mnt, const char *const *extra)
{
	char prog[4096], keyarg[256], errf[256];
	char *argv[32], *wargv[33];
	int n = 0, st;
	pid_t pid;
	bool own = !mnt || !strcmp(mnt, v->mnt);

	key = key ? key : v->key;
	backing = backing ? backing : v->backing;
	mnt = mnt ? mnt : v->mnt;
	snprintf(prog, sizeof(prog), "%s/phifs", bindir());
	snprintf(keyarg, sizeof(keyarg), "file:%s", key);
	snprintf(errf, sizeof(errf), "%s/phifs.err", v->dir);
	argv[n++] = prog;
	argv[n++] = "--key";
	argv[n++] = keyarg;
	if (foreground)
		argv[n++] = "-f";
	for (; extra && *extra && n < 28; extra++)
		argv[n++] = (char *)*extra;
	argv[n++] = (char *)backing;
	argv[n++] = (char *)mnt;
	argv[n] = NULL;
	v->err[0] = '\0';

	pid = spawn(prog_argv(argv, wargv, 33), child_env(v), NULL, errf);
	cr_assert(pid > 0, "cannot run %s", prog);
	if (foreground) {
		struct fg_wait w = { mnt, { pid, -1 } };

		if (!tu_wait_until(mounted_or_exited, &w, PHIFS_WAIT_MS)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			st = -1;
		} else if (w.exit.st == -1) {	/* mounted, and running */
			if (own) {
				v->daemon = pid;
				v->daemon_is_child = true;
				v->mounted = true;
			}
			return 0;
		} else {
			st = w.exit.st;
		}
	} else {
		st = wait_status(pid, PHIFS_WAIT_MS);
		if (st == -1) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
	}
	slurp(errf, v->err, sizeof(v->err));
	if (st != 0) {
		check_sanitizers(v);
		return st;
	}
	if (own && mu_is_mounted(mnt)) {
		v->mounted = true;
		v->daemon = find_daemon(v);
		cr_assert(v->daemon > 0, "phifs mounted %s but its daemon "
			  "process cannot be found", mnt);
	}
	return 0;
}

static void mount_checked(struct mu_vol *v, bool fg,
			  const char *const *extra)
{
	int st = mu_phifs(v, fg, NULL, NULL, NULL, extra);

	cr_assert(st == 0, "phifs%s exited %d (want 0); stderr: %s",
		  fg ? " -f" : "", st, v->err);
	cr_assert(mu_is_mounted(v->mnt), "phifs exited 0 but %s is not "
		  "mounted", v->mnt);
}

void mu_mount(struct mu_vol *v)
{
	mount_checked(v, false, NULL);
}

void mu_mount_fg(struct mu_vol *v)
{
	mount_checked(v, true, NULL);
}

void mu_mount_no_audit(struct mu_vol *v)
{
	static const char *const no_audit[] = { "--no-audit", NULL };

	mount_checked(v, false, no_audit);
}

/* Whether a process that is not our child is gone (or a zombie). */
static bool gone(void *arg)
{
	char st = proc_state(*(pid_t *)arg, NULL);

	return !st || st == 'Z';
}

/* Waits for the daemon to go; its exit status, or -1 if it would not. */
static int wait_daemon(struct mu_vol *v, int timeout_ms)
{
	int st = 0;

	if (v->daemon <= 0)
		return 0;
	if (v->daemon_is_child) {
		st = wait_status(v->daemon, timeout_ms);
		if (st == -2)	/* reaped elsewhere */
			st = 0;
	} else if (!tu_wait_until(gone, &v->daemon, timeout_ms)) {
		st = -1;
	}
	if (st != -1)
		v->daemon = 0;
	return st;
}

/* fusermount3 -u, retried while busy; umount -l at last.  0 if clean. */
static int unmount_path(const char *mnt, char *why, size_t size)
{
	char *fu[] = { "fusermount3", "-u", (char *)mnt, NULL };
	char *ul[] = { "umount", "-l", (char *)mnt, NULL };
	char errf[] = "/tmp/phifs-umount-XXXXXX";
	int fd = mkstemp(errf), st = -1;

	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 20; i++) {
		st = run(fu, NULL, NULL, fd >= 0 ? errf : NULL, 10000);
		if (st == 0 || !mu_is_mounted(mnt))
			break;
		msleep(50 + 10 * i);	/* busy: a closing file's RELEASE */
	}
	if (why) {
		why[0] = '\0';
		if (fd >= 0)
			slurp(errf, why, size);
	}
	if (fd >= 0)
		unlink(errf);
	if (!mu_is_mounted(mnt))
		return 0;	/* also when it was gone already (auto_unmount) */
	if (mu_is_mounted(mnt))
		run(ul, NULL, NULL, NULL, 10000);
	if (mu_is_mounted(mnt))
		lazy_unmount(mnt);
	return -1;
}

/* Waits for the daemon to exit, killing it when it will not; its status. */
static int wait_or_kill(struct mu_vol *v)
{
	int st = wait_daemon(v, PHIFS_WAIT_MS);

	if (st == -1) {
		kill(v->daemon, SIGKILL);
		wait_daemon(v, 5000);
		v->daemon = 0;
	}
	return st;
}

/* Asserts that the daemon exited 0, in time and without sanitizer reports. */
static void assert_clean_exit(const struct mu_vol *v, int st, const char *after)
{
	cr_assert(st != -1, "the daemon did not exit within %d s of %s",
		  PHIFS_WAIT_MS / 1000, after);
	check_sanitizers(v);
	cr_assert(st == 0, "the daemon exited %d after %s", st, after);
}

void mu_unmount(struct mu_vol *v)
{
	char why[512];
	int rc, st;

	rc = unmount_path(v->mnt, why, sizeof(why));
	v->mounted = false;
	st = wait_or_kill(v);
	cr_assert(rc == 0, "fusermount3 -u %s failed (had to unmount lazily): "
		  "%s", v->mnt, why);
	assert_clean_exit(v, st, "a clean unmount");
}

void mu_kill9(struct mu_vol *v)
{
	cr_assert(v->daemon > 0, "no daemon to kill");
	kill(v->daemon, SIGKILL);
	wait_daemon(v, 10000);
	v->daemon = 0;
}

void mu_wait_exit(struct mu_vol *v, const char *after)
{
	int st = wait_or_kill(v);

	v->daemon = 0;
	v->mounted = mu_is_mounted(v->mnt);
	assert_clean_exit(v, st, after);
	cr_assert(!v->mounted, "%s is still mounted after %s", v->mnt, after);
}

void mu_terminate(struct mu_vol *v)
{
	cr_assert(v->daemon > 0 && kill(v->daemon, SIGTERM) == 0,
		  "SIGTERM to the daemon: %s", strerror(errno));
	mu_wait_exit(v, "SIGTERM");
}

void mu_unmount_dead(struct mu_vol *v)
{
	char why[512];
	int rc = unmount_path(v->mnt, why, sizeof(why));

	v->mounted = false;
	cr_assert(rc == 0, "fusermount3 -u of the dead mount %s failed: %s",
		  v->mnt, why);
	cr_assert(!mu_is_mounted(v->mnt));
}

void mu_cleanup_all(void)
{
	for (int i = 0; i < nvols; i++) {
		struct mu_vol *v = vols[i];

		/* One clean try (it flushes), then no more waiting: a failed
		 * test may still hold files open on the mount. */
		if (v->mounted && v->daemon > 0) {
			char *fu[] = { "fusermount3", "-u", v->mnt, NULL };

			if (run(fu, NULL, NULL, NULL, 10000) == 0 &&
			    wait_daemon(v, 5000) == -1)
				kill(v->daemon, SIGKILL);
		}
		reap_dir(v->dir);
		if (v->guard_fd >= 0) {
			ssize_t r = write(v->guard_fd, "D", 1);

			(void)r;
			close(v->guard_fd);
		}
		if (v->guard > 0)
			waitpid(v->guard, NULL, 0);
		free(v);
		vols[i] = NULL;
	}
	nvols = 0;
}

/* ---- data ---- */

int mu_lines(const char *s)
{
	int n = 0;

	for (const char *p = s; *p; p++)
		if (*p == '\n')
			n++;
	if (*s && s[strlen(s) - 1] != '\n')
		n++;
	return n;
}

void mu_fill(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;

	for (size_t i = 0; i < len; i++) {
		if (i % 8 == 0) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
		}
		buf[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> (8 * (i % 8)));
	}
}

void mu_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t done = 0;

	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	while (done < len) {
		ssize_t r = write(fd, (const uint8_t *)buf + done, len - done);

		cr_assert(r > 0, "write %s at %zu: %s", path, done,
			  r < 0 ? strerror(errno) : "returned 0");
		done += (size_t)r;
	}
	cr_assert(close(fd) == 0, "close %s: %s", path, strerror(errno));
}

int mu_read_file(const char *path, uint8_t **bufp, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 65536, n = 0;
	uint8_t *buf;
	int rc = 0;

	*bufp = NULL;
	*len = 0;
	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	cr_assert(buf);
	for (;;) {
		ssize_t r;

		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			cr_assert(buf);
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*bufp = buf;
	*len = n;
	return rc;
}

int mu_pread_exact(int fd, void *buf, size_t len, off_t off)
{
	ssize_t r;

	do
		r = pread(fd, buf, len, off);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return (size_t)r == len ? 0 : -EPIPE;
}

uint64_t mu_seed(void)
{
	const char *e = getenv("PHIFS_TEST_SEED");
	struct timespec ts;

	if (e && *e)
		return strtoull(e, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
	       ((uint64_t)getpid() << 32);
}
