/*
 * test_mount_ctl.c — the control socket of a mounted daemon, driven by a
 * real client (ctl_request, phifsctl): counters move by exactly what the
 * test read and wrote, a planted authentication failure shows with its
 * path and block, other uids are refused, bad clients do not stop the
 * daemon from answering, a hundred clients at once are all answered; the
 * signals (SIGHUP keeps serving, SIGTERM during fsync'd writes loses
 * nothing), the unmount command under both request loops, and the socket's
 * path: a kill -9's leftover is replaced, a symlink is not followed, a
 * second daemon cannot take the first one's socket.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountutil.h"
#include "phifs/ctl.h"
#include "testutil.h"

TestSuite(mount_ctl, .fini = mu_cleanup_all, .timeout = 180);

static const char *sock_of(const struct mu_vol *v)
{
	return mu_b(v, ".phifs/control.sock");
}

/* The answer to cmd (malloc'd), asserting one came. */
static char *ask(const char *sock, const char *cmd)
{
	char req[128], *a = NULL;
	int rc;

	snprintf(req, sizeof(req), "{\"cmd\":\"%s\",\"version\":1}", cmd);
	rc = ctl_request(sock, req, 10000, &a);
	cr_assert_eq(rc, 0, "%s to %s: %s", cmd, sock, strerror(-rc));
	return a;
}

/*
 * The number after "key": inside the object "obj": (or at the top when
 * obj is NULL).  Enough JSON for the figures a status holds.
 */
static uint64_t figure(const char *json, const char *obj, const char *key)
{
	char pat[64];
	const char *p = json;

	if (obj) {
		snprintf(pat, sizeof(pat), "\"%s\":{", obj);
		p = strstr(json, pat);
		cr_assert(p, "no %s in %s", pat, json);
	}
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(p, pat);
	cr_assert(p, "no %s in %s", pat, json);
	return strtoull(p + strlen(pat), NULL, 10);
}

struct releases {
	const char *sock;
	uint64_t want, seen;
};

static bool released(void *arg)
{
	struct releases *r = arg;
	char *a = ask(r->sock, "status");

	r->seen = figure(a, "ops", "release");
	free(a);
	return r->seen >= r->want;
}

Test(mount_ctl, counters_move_by_exactly_what_was_read_and_written)
{
	struct releases rel;
	struct mu_vol *v;
	static uint8_t buf[100000], back[sizeof(buf)];
	char *before, *after;
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_fill(buf, sizeof(buf), 5);
	before = ask(sock_of(v), "status");
	fd = open(mu_m(v, "f"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	cr_assert_eq(close(fd), 0);
	/* A new open drops the kernel's cache: the read comes to us. */
	fd = open(mu_m(v, "f"), O_RDONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(read(fd, back, sizeof(back)), (ssize_t)sizeof(back));
	cr_assert_eq(close(fd), 0);
	cr_assert(!memcmp(buf, back, sizeof(buf)));
	after = ask(sock_of(v), "status");
	cr_assert_eq(figure(after, "bytes", "written") -
		     figure(before, "bytes", "written"), sizeof(buf));
	cr_assert_eq(figure(after, "bytes", "read") -
		     figure(before, "bytes", "read"), sizeof(buf));
	cr_assert_eq(figure(after, "ops", "create") -
		     figure(before, "ops", "create"), 1);
	cr_assert_eq(figure(after, "ops", "open") -
		     figure(before, "ops", "open"), 1);
	/* The kernel sends RELEASE after close(2) returns: wait for both. */
	rel.sock = sock_of(v);
	rel.want = figure(before, "ops", "release") + 2;
	cr_assert(tu_wait_until(released, &rel, 10000),
		  "the releases were not counted");
	cr_assert_eq(rel.seen, rel.want, "more releases than closes");
	cr_assert_geq(figure(after, "ops", "write") -
		      figure(before, "ops", "write"), 1);
	cr_assert_geq(figure(after, "ops", "read") -
		      figure(before, "ops", "read"), 1);
	cr_assert_eq(figure(after, NULL, "pid"), (uint64_t)v->daemon);
	cr_assert_eq(figure(after, "errors", "EIO"), 0);
	free(before);
	free(after);
	mu_unmount(v);
}

Test(mount_ctl, a_planted_authentication_failure_shows_with_path_and_block)
{
	struct mu_vol *v;
	static uint8_t buf[3 * MU_BS];
	char *st, out[4096];
	uint8_t byte;
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	cr_assert_eq(mkdir(mu_m(v, "d"), 0700), 0);
	mu_fill(buf, sizeof(buf), 9);
	mu_write_file(mu_m(v, "d/scan.dcm"), buf, sizeof(buf));
	/* Flip a byte of block 1 in the backing file, under the daemon. */
	fd = open(mu_b(v, "d/scan.dcm"), O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, &byte, 1, MU_BLOCK_OFF(1) + 100), 1);
	byte ^= 0x40;
	cr_assert_eq(pwrite(fd, &byte, 1, MU_BLOCK_OFF(1) + 100), 1);
	close(fd);
	fd = open(mu_m(v, "d/scan.dcm"), O_RDONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, buf, MU_BS, MU_BS), -1);
	cr_assert_eq(errno, EIO);
	close(fd);
	st = ask(sock_of(v), "status");
	cr_assert_geq(figure(st, "auth_failures", "total"), 1, "%s", st);
	cr_assert(strstr(st, "{\"path\":\"/d/scan.dcm\",\"block\":1,"),
		  "%s", st);
	cr_assert_geq(figure(st, "errors", "EIO"), 1, "%s", st);
	free(st);
	/* phifsctl's table says so too. */
	{
		char cmd[512];
		FILE *p;
		size_t n;

		snprintf(cmd, sizeof(cmd), "%s/phifsctl status %s",
			 PHIFS_BIN_DIR, v->backing);
		p = popen(cmd, "r");
		cr_assert(p);
		n = fread(out, 1, sizeof(out) - 1, p);
		out[n] = 0;
		cr_assert_eq(pclose(p), 0);
		cr_assert(strstr(out, "/d/scan.dcm block 1 at"), "%s", out);
	}
	mu_unmount(v);
}

/* In a child of another uid: 0 if refused (no answer), 1 if answered. */
static int ask_as_nobody(const char *sock)
{
	pid_t pid = fork();
	int st;

	cr_assert(pid >= 0);
	if (pid == 0) {
		char *a = NULL;

		if (setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(3);
		_exit(ctl_request(sock, "{\"cmd\":\"status\"}", 5000, &a) ?
			      0 : 1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

Test(mount_ctl, another_uid_is_refused)
{
	struct mu_vol *v;
	char *a;

	mu_require_fuse();
	if (geteuid() != 0)
		cr_skip_test("needs root to become another uid");
	v = mu_vol_new(0);
	mu_mount(v);
	/* The socket's mode keeps it out; with the mode opened, SO_PEERCRED. */
	cr_assert_eq(chmod(mu_b(v, ".phifs"), 0755), 0);
	cr_assert_eq(ask_as_nobody(sock_of(v)), 0);
	cr_assert_eq(chmod(sock_of(v), 0666), 0);
	cr_assert_eq(ask_as_nobody(sock_of(v)), 0);
	a = ask(sock_of(v), "status");
	cr_assert(strstr(a, "\"ok\":true"));
	free(a);
	mu_unmount(v);
}

Test(mount_ctl, bad_clients_get_an_error_or_a_close_and_others_answers)
{
	static char big[1 << 20];
	static const char *const lines[] = {
		"not json at all\n", "{\"cmd\":\"self-destruct\"}\n",
	};
	struct mu_vol *v;
	char buf[4096], *a;
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	for (size_t i = 0; i < 2; i++) {
		fd = tu_unix_connect(sock_of(v));
		cr_assert_eq(send(fd, lines[i], strlen(lines[i]),
				  MSG_NOSIGNAL), (ssize_t)strlen(lines[i]));
		cr_assert(tu_read_line(fd, buf, sizeof(buf), 5000) > 0);
		cr_assert(strstr(buf, "\"ok\":false"), "%s", buf);
		close(fd);
	}
	memset(big, '{', sizeof(big));
	fd = tu_unix_connect(sock_of(v));
	(void)send(fd, big, sizeof(big), MSG_NOSIGNAL);
	if (tu_read_line(fd, buf, sizeof(buf), 5000))
		cr_assert(strstr(buf, "too long"), "%s", buf);
	close(fd);
	mu_fill((uint8_t *)big, 65536, 3);
	fd = tu_unix_connect(sock_of(v));
	(void)send(fd, big, 65536, MSG_NOSIGNAL);
	(void)tu_read_line(fd, buf, sizeof(buf), 5000);
	close(fd);
	a = ask(sock_of(v), "status");
	cr_assert(strstr(a, "\"ok\":true"));
	free(a);
	mu_unmount(v);
}

struct client {
	pthread_t t;
	const char *sock;
	int rc;
	char *a;
};

static void *one_client(void *arg)
{
	struct client *c = arg;

	c->rc = ctl_request(c->sock, "{\"cmd\":\"status\"}", 30000, &c->a);
	return NULL;
}

Test(mount_ctl, a_hundred_clients_at_once_all_get_answers)
{
	static struct client c[100];
	struct mu_vol *v;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	for (int i = 0; i < 100; i++) {
		c[i].sock = sock_of(v);
		cr_assert_eq(pthread_create(&c[i].t, NULL, one_client, &c[i]),
			     0);
	}
	for (int i = 0; i < 100; i++) {
		pthread_join(c[i].t, NULL);
		cr_assert_eq(c[i].rc, 0, "client %d: %s", i,
			     strerror(-c[i].rc));
		cr_assert(strstr(c[i].a, "\"ok\":true"));
		free(c[i].a);
	}
	mu_unmount(v);
}

Test(mount_ctl, sighup_leaves_the_mount_up_and_serving)
{
	static const char msg[] = "still here";
	struct mu_vol *v;
	uint8_t *back;
	size_t len;
	char *a;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	cr_assert_eq(kill(v->daemon, SIGHUP), 0);
	cr_assert_eq(kill(v->daemon, SIGUSR1), 0);
	mu_write_file(mu_m(v, "after-hup"), msg, sizeof(msg));
	cr_assert_eq(mu_read_file(mu_m(v, "after-hup"), &back, &len), 0);
	cr_assert_eq(len, sizeof(msg));
	free(back);
	cr_assert(mu_is_mounted(v->mnt));
	a = ask(sock_of(v), "reload");
	cr_assert(strstr(a, "\"ok\":true") && strstr(a, "\"applied\":false"),
		  "%s", a);
	free(a);
	a = ask(sock_of(v), "flush");
	cr_assert(strstr(a, "\"ok\":true"), "%s", a);
	free(a);
	mu_unmount(v);
}

/* ---- SIGTERM under fsync'd writes ---- */

#define CHUNK 65536
#define WRITERS 4

struct writer {
	pthread_t t;
	const struct mu_vol *v;
	int id;
	atomic_int synced;	/* chunks acknowledged by fsync */
};

static void *write_hard(void *arg)
{
	struct writer *w = arg;
	static __thread uint8_t buf[CHUNK];
	char name[32];
	int fd;

	snprintf(name, sizeof(name), "w%d", w->id);
	fd = open(mu_m(w->v, name), O_CREAT | O_WRONLY | O_TRUNC, 0600);
	if (fd < 0)
		return NULL;
	for (int k = 0; k < 100000; k++) {
		mu_fill(buf, CHUNK, (uint64_t)w->id * 1000003 + (uint64_t)k);
		if (write(fd, buf, CHUNK) != CHUNK || fsync(fd))
			break;
		atomic_store(&w->synced, k + 1);
	}
	close(fd);
	return NULL;
}

static bool some_synced(void *arg)
{
	struct writer *w = arg;

	for (int i = 0; i < WRITERS; i++)
		if (atomic_load(&w[i].synced) < 4)
			return false;
	return true;
}

static void sigterm_under_writes(bool no_poll)
{
	static const char *const libfuse[] = { "--no-poll", NULL };
	static struct writer w[WRITERS];
	static uint8_t want[CHUNK];
	struct mu_vol *v;

	mu_require_fuse();
	v = mu_vol_new(0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL,
			      no_poll ? libfuse : NULL), 0, "%s", v->err);
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ .v = v, .id = i };
		cr_assert_eq(pthread_create(&w[i].t, NULL, write_hard, &w[i]),
			     0);
	}
	cr_assert(tu_wait_until(some_synced, w, 60000),
		  "the writers made no progress");
	mu_terminate(v);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i].t, NULL);
	mu_mount(v);
	for (int i = 0; i < WRITERS; i++) {
		char name[32];
		uint8_t *back;
		size_t len;
		int n = atomic_load(&w[i].synced);

		snprintf(name, sizeof(name), "w%d", i);
		cr_assert_eq(mu_read_file(mu_m(v, name), &back, &len), 0);
		cr_assert_geq(len, (size_t)n * CHUNK, "%s lost fsync'd data",
			      name);
		for (int k = 0; k < n; k++) {
			mu_fill(want, CHUNK, (uint64_t)i * 1000003 +
				(uint64_t)k);
			cr_assert(!memcmp(back + (size_t)k * CHUNK, want,
					  CHUNK), "%s chunk %d differs",
				  name, k);
		}
		free(back);
	}
	mu_unmount(v);
	cr_assert_eq(mu_procs_with(v->backing), 0, "a daemon is left");
}

Test(mount_ctl, sigterm_during_heavy_writes_loses_nothing_fsynced)
{
	sigterm_under_writes(false);
}

Test(mount_ctl, sigterm_under_libfuse_loop_loses_nothing_fsynced)
{
	sigterm_under_writes(true);
}

static void unmount_command(bool no_poll)
{
	static const char *const libfuse[] = { "--no-poll", NULL };
	struct mu_vol *v;
	char *a;

	mu_require_fuse();
	v = mu_vol_new(0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL,
			      no_poll ? libfuse : NULL), 0, "%s", v->err);
	mu_write_file(mu_m(v, "x"), "x", 1);
	a = ask(sock_of(v), "unmount");
	cr_assert(strstr(a, "\"ok\":true"), "%s", a);
	free(a);
	mu_wait_exit(v, "the unmount command");
	cr_assert_eq(access(sock_of(v), F_OK), -1, "the socket is left");
}

Test(mount_ctl, the_unmount_command_stops_cleanly)
{
	unmount_command(false);
}

Test(mount_ctl, the_unmount_command_stops_the_libfuse_loop_cleanly)
{
	unmount_command(true);
}

/* ---- the socket's path ---- */

Test(mount_ctl, a_socket_left_by_kill_9_does_not_stop_the_next_mount)
{
	struct mu_vol *v;
	struct stat st;
	char *a;

	mu_require_fuse();
	v = mu_vol_new(0);
	mu_mount(v);
	mu_kill9(v);
	mu_unmount_dead(v);
	cr_assert_eq(lstat(sock_of(v), &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	mu_mount(v);
	a = ask(sock_of(v), "status");
	cr_assert_eq(figure(a, NULL, "pid"), (uint64_t)v->daemon);
	free(a);
	mu_unmount(v);
}

Test(mount_ctl, a_symlink_at_the_socket_path_is_not_followed)
{
	struct mu_vol *v;
	struct stat st;
	const char *target;

	mu_require_fuse();
	v = mu_vol_new(0);
	target = mu_b(v, "planted-target");
	cr_assert_eq(symlink(target, sock_of(v)), 0);
	cr_assert_neq(mu_phifs(v, false, NULL, NULL, NULL, NULL), 0);
	cr_assert(strstr(v->err, "control.sock") &&
		  strstr(v->err, "not replaced"), "%s", v->err);
	cr_assert(!mu_is_mounted(v->mnt));
	cr_assert_eq(lstat(target, &st), -1, "the symlink was followed");
	cr_assert_eq(lstat(sock_of(v), &st), 0);
	cr_assert(S_ISLNK(st.st_mode));
}

Test(mount_ctl, a_second_daemon_cannot_take_over_the_first_ones_socket)
{
	struct mu_vol *v, *w;
	const char *extra[3];
	char *a, *b, vol[48];

	mu_require_fuse();
	v = mu_vol_new(0);
	w = mu_vol_new(0);
	mu_mount(v);
	a = ask(sock_of(v), "status");
	extra[0] = "--socket";
	extra[1] = sock_of(v);
	extra[2] = NULL;
	cr_assert_neq(mu_phifs(w, false, NULL, NULL, NULL, extra), 0);
	cr_assert(strstr(w->err, "another daemon"), "%s", w->err);
	/* The first daemon still answers there, for its own volume. */
	b = ask(sock_of(v), "status");
	cr_assert_eq(figure(b, NULL, "pid"), (uint64_t)v->daemon);
	snprintf(vol, sizeof(vol), "%.43s", strstr(a, "\"volume\":\""));
	cr_assert(strstr(b, vol), "%s not in %s", vol, b);
	free(a);
	free(b);
	mu_unmount(v);
}

/* ---- systemd ---- */

Test(mount_ctl, under_systemd_it_says_ready_and_pings_the_watchdog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct mu_vol *v;
	char buf[1024];
	int fd;

	mu_require_fuse();
	v = mu_vol_new(0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", v->dir);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	setenv("WATCHDOG_USEC", "200000", 1);
	mu_mount_fg(v);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	cr_assert(tu_recv_until(fd, "READY=1", buf, sizeof(buf), 10000));
	cr_assert(strstr(buf, "STATUS=Serving ") && strstr(buf, v->mnt),
		  "%s", buf);
	/* Ready means usable. */
	mu_write_file(mu_m(v, "f"), "x", 1);
	cr_assert(tu_recv_until(fd, "WATCHDOG=1", buf, sizeof(buf), 10000));
	cr_assert(tu_recv_until(fd, "WATCHDOG=1", buf, sizeof(buf), 10000));
	mu_terminate(v);
	cr_assert(tu_recv_until(fd, "STOPPING=1", buf, sizeof(buf), 10000));
	close(fd);
}

/* ---- signals during start-up ---- */

/*
 * A key command that sends sig to the daemon (its parent) while it starts,
 * then gives the key: a signal that comes before the control loop runs.
 */
static const char *const *signalling_key(struct mu_vol *v, const char *sig)
{
	static char spec[300];
	static const char *extra[] = { "--key", spec, NULL };
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/key-%s.sh", v->dir, sig);
	f = fopen(path, "w");
	cr_assert(f);
	fprintf(f, "#!/bin/sh\nkill -%s $PPID\nexec cat %s\n", sig, v->key);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, 0700), 0);
	snprintf(spec, sizeof(spec), "cmd:%s", path);
	return extra;	/* after mu_phifs's own --key: it wins */
}

static bool daemon_gone(void *arg)
{
	const struct mu_vol *v = arg;

	return mu_procs_with(v->backing) == 0 && !mu_is_mounted(v->mnt);
}

Test(mount_ctl, a_sigterm_during_start_up_is_not_lost)
{
	struct mu_vol *v;
	int rc;

	mu_require_fuse();
	v = mu_vol_new(0);
	/* It mounts, tells its parent, and only then sees the stop. */
	rc = mu_phifs(v, false, NULL, NULL, NULL, signalling_key(v, "TERM"));
	cr_assert_eq(rc, 0, "exit %d: %s", rc, v->err);
	cr_assert(tu_wait_until(daemon_gone, v, 30000),
		  "the daemon kept running after a SIGTERM at start-up");
	v->mounted = false;
	v->daemon = 0;
}

Test(mount_ctl, a_sighup_during_start_up_does_not_unmount)
{
	struct mu_vol *v;
	char *a;

	mu_require_fuse();
	v = mu_vol_new(0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL,
			      signalling_key(v, "HUP")), 0, "%s", v->err);
	mu_write_file(mu_m(v, "f"), "x", 1);
	a = ask(sock_of(v), "status");
	cr_assert(strstr(a, "\"ok\":true"));
	free(a);
	cr_assert(mu_is_mounted(v->mnt));
	mu_unmount(v);
}

/* The daemon's command line still names its socket (the key it hides). */
static bool unmounted_and_gone(void *arg)
{
	const struct mu_vol *v = arg;

	return !mu_is_mounted(v->mnt) && mu_procs_with("rel.sock") == 0;
}

Test(mount_ctl, relative_paths_still_stop_cleanly_after_the_daemon_detached)
{
	static const char *const sock[] = { "--socket", "rel.sock", NULL };
	struct mu_vol *v;
	char *a;

	mu_require_fuse();
	v = mu_vol_new(0);
	cr_assert_eq(chdir(v->dir), 0);
	cr_assert_eq(mu_phifs(v, false, NULL, "backing", "mnt", sock), 0,
		     "%s", v->err);
	cr_assert(mu_is_mounted(v->mnt));
	a = ask(mu_b(v, "../rel.sock"), "status");
	cr_assert(strstr(a, v->mnt), "the status names %s: %s", v->mnt, a);
	free(a);
	a = ask(mu_b(v, "../rel.sock"), "unmount");
	free(a);
	cr_assert(tu_wait_until(unmounted_and_gone, v, 30000),
		  "the mount or the daemon is left");
	cr_assert_eq(access(mu_b(v, "../rel.sock"), F_OK), -1,
		     "the socket is left");
}
