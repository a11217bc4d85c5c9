/*
 * test_ctl.c — the control socket's pure parts: requests parsed or refused
 * with a reason, answers that are one JSON line each, the status encoded
 * and turned into a table and Prometheus text; and the control loop on a
 * socket of its own, with no mount: commands reach the daemon's ops,
 * hostile clients are answered or closed while others still get answers,
 * stale sockets are replaced and live ones or symlinks are not.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "phifs/ctl.h"
#include "testutil.h"

static enum ctl_cmd parse_ok(const char *line)
{
	enum ctl_cmd cmd;
	char err[256] = "";

	cr_assert_eq(ctl_msg_parse(line, strlen(line), &cmd, err,
				   sizeof(err)), 0, "%s: %s", line, err);
	return cmd;
}

static void parse_bad(const char *line, size_t len, const char *why)
{
	enum ctl_cmd cmd;
	char err[256] = "";

	cr_assert_eq(ctl_msg_parse(line, len, &cmd, err, sizeof(err)),
		     -EINVAL, "accepted: %.*s", (int)len, line);
	cr_assert(strstr(err, why), "'%s' does not say '%s'", err, why);
	cr_assert(!strchr(err, '\n'));
}

Test(ctl_msg, every_command_is_parsed)
{
	cr_assert_eq(parse_ok("{\"cmd\":\"status\"}"), CTL_STATUS);
	cr_assert_eq(parse_ok(" { \"cmd\" : \"flush\" } "), CTL_FLUSH);
	cr_assert_eq(parse_ok("{\"cmd\":\"reload\",\"version\":1}"),
		     CTL_RELOAD);
	cr_assert_eq(parse_ok("{\"version\":1,\"cmd\":\"unmount\"}"),
		     CTL_UNMOUNT);
}

#define PARSE_BAD(lit, why) parse_bad(lit, sizeof(lit) - 1, why)

Test(ctl_msg, key_rotate_and_its_keep_old)
{
	struct ctl_req req;
	char err[256] = "";
	const char *l = "{\"cmd\":\"key-rotate\",\"keep_old\":true}";

	cr_assert_eq(parse_ok("{\"cmd\":\"key-rotate\"}"), CTL_KEY_ROTATE);
	cr_assert_eq(ctl_msg_parse_req(l, strlen(l), &req, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(req.cmd, CTL_KEY_ROTATE);
	cr_assert(req.keep_old);
	l = "{\"cmd\":\"key-rotate\"}";
	cr_assert_eq(ctl_msg_parse_req(l, strlen(l), &req, err, sizeof(err)),
		     0);
	cr_assert_not(req.keep_old);
	PARSE_BAD("{\"cmd\":\"key-rotate\",\"keep_old\":1}", "keep_old");
}

Test(ctl_msg, the_rotation_travels_in_the_status)
{
	struct ctl_status *st = calloc(1, sizeof(*st));
	struct ctl_rotation r;
	char why[256], *a;

	cr_assert_not_null(st);
	a = ctl_msg_status(st);
	cr_assert_not_null(a);
	cr_assert_null(strstr(a, "rotation"), "%s", a);
	cr_assert_eq(ctl_msg_rotation(a, &r, why, sizeof(why)), -ENOENT);
	free(a);
	strcpy(st->rotation.state, "failed");
	strcpy(st->rotation.phase, "rewrap");
	strcpy(st->rotation.first_failed, "d/x");
	strcpy(st->rotation.first_error, "Input/output error");
	strcpy(st->rotation.error, "1 file(s) not re-wrapped");
	st->rotation.id = 3;
	st->rotation.keep_old = true;
	st->rotation.target = 9;
	st->rotation.total = 100;
	st->rotation.done = 98;
	st->rotation.skipped = 1;
	st->rotation.failed = 1;
	st->rotation.nretired = 2;
	st->rotation.retired[0] = 7;
	st->rotation.retired[1] = 8;
	st->rotation.seconds = 1.5;
	a = ctl_msg_status(st);
	cr_assert_not_null(a);
	cr_assert_eq(ctl_msg_rotation(a, &r, why, sizeof(why)), 0, "%s", why);
	free(a);
	cr_assert_str_eq(r.state, "failed");
	cr_assert_str_eq(r.first_failed, "d/x");
	cr_assert_str_eq(r.error, "1 file(s) not re-wrapped");
	cr_assert(r.keep_old && !r.resumed);
	cr_assert_eq(r.id, 3);
	cr_assert_eq(r.target, 9);
	cr_assert_eq(r.total + r.done + r.skipped + r.failed, 200);
	cr_assert_eq(r.nretired, 2);
	cr_assert_eq(r.retired[1], 8);
	cr_assert_float_eq(r.seconds, 1.5, 1e-9);
	cr_assert_eq(ctl_msg_rotation("{\"ok\":false,\"error\":\"busy\"}",
				      &r, why, sizeof(why)), -EINVAL);
	cr_assert_str_eq(why, "busy");
	free(st);
}

Test(ctl_msg, bad_requests_are_refused_with_a_reason)
{
	static const char nul[] = "{\"cmd\":\"sta\0tus\"}";

	PARSE_BAD("hello", "not JSON");
	PARSE_BAD("", "not JSON");
	PARSE_BAD("[1,2]", "object");
	PARSE_BAD("{}", "cmd");
	PARSE_BAD("{\"cmd\":7}", "cmd");
	PARSE_BAD("{\"cmd\":\"format-disk\"}", "unknown command");
	PARSE_BAD("{\"cmd\":\"status\",\"version\":99}", "version");
	PARSE_BAD("{\"cmd\":\"status\",\"cmd\":\"flush\"}",
		  "not JSON");
	parse_bad(nul, sizeof(nul) - 1, "NUL");
}

Test(ctl_msg, random_bytes_never_crash_the_parser)
{
	unsigned char buf[512];
	enum ctl_cmd cmd;
	char err[256];

	srand(1);
	for (int i = 0; i < 2000; i++) {
		size_t n = (size_t)rand() % sizeof(buf);

		for (size_t k = 0; k < n; k++)
			buf[k] = (unsigned char)rand();
		(void)ctl_msg_parse((char *)buf, n, &cmd, err, sizeof(err));
	}
}

Test(ctl_msg, answers_are_one_line_of_json)
{
	char *e = ctl_msg_error("bad \"thing\"\nsecond line");
	char *ok = ctl_msg_ok();
	char *r = ctl_msg_reload("key,socket", false);

	cr_assert(e && ok && r);
	cr_assert_str_eq(ok, "{\"ok\":true,\"version\":1}\n");
	cr_assert_eq(strchr(e, '\n'), e + strlen(e) - 1, "%s", e);
	cr_assert(strstr(e, "\"ok\":false"));
	cr_assert(strstr(e, "\\\"thing\\\"\\nsecond"), "%s", e);
	cr_assert(strstr(r, "\"changed\":[\"key\",\"socket\"]"), "%s", r);
	cr_assert(strstr(r, "\"applied\":false"), "%s", r);
	cr_assert(strstr(r, "\"policy\":false"), "%s", r);
	free(e);
	free(ok);
	free(r);
	r = ctl_msg_reload("", true);
	cr_assert(strstr(r, "\"changed\":[]"), "%s", r);
	cr_assert(strstr(r, "\"policy\":true"), "%s", r);
	free(r);
}

static void sample_status(struct ctl_status *st)
{
	memset(st, 0, sizeof(*st));
	st->pid = 4242;
	st->uptime_s = 77;
	strcpy(st->volume, "00112233445566778899aabbccddeeff");
	strcpy(st->backing, "/srv/phi\"backing");
	strcpy(st->mountpoint, "/mnt/phi");
	st->nversions = 2;
	st->versions[0].version = 1;
	st->versions[0].state = "decrypt-only";
	st->versions[1].version = 2;
	st->versions[1].state = "active";
	st->vfs.ops[VFS_READ] = 5;
	st->vfs.ops[VFS_WRITE] = 3;
	st->vfs.read_bytes = 20480;
	st->vfs.write_bytes = 12288;
	st->vfs.errors[VFS_ERR_EIO] = 2;
	st->vfs.errors[VFS_ERR_EACCES] = 1;
	st->vfs.auth_failures = 9;
	st->vfs.auth_kept = 2;
	strcpy(st->vfs.auth[0].path, "/a/b.dcm");
	st->vfs.auth[0].block = 3;
	st->vfs.auth[0].time = 1700000000;
	strcpy(st->vfs.auth[1].path, "/c");
	st->vfs.auth[1].block = -1;
	st->vfs.header_fallbacks = 6;
	st->vfs.size_tag_mismatches = 7;
	st->vfs.attr_mismatches = 8;
	st->vfs.open_files = 4;
	st->vfs.inodes = 10;
	st->loop = "poll";
	st->loop_threads = 3;
	st->loop_max_threads = 16;
	st->loop_requests = 123;
}

Test(ctl_msg, the_status_carries_every_figure)
{
	struct ctl_status st;
	char *s;

	sample_status(&st);
	s = ctl_msg_status(&st);
	cr_assert(s);
	cr_assert_eq(strchr(s, '\n'), s + strlen(s) - 1);
	for (const char *want[] = {
		     "\"ok\":true", "\"version\":1", "\"pid\":4242",
		     "\"uptime_s\":77",
		     "\"volume\":\"00112233445566778899aabbccddeeff\"",
		     "\"backing\":\"/srv/phi\\\"backing\"",
		     "\"mountpoint\":\"/mnt/phi\"",
		     "{\"version\":2,\"state\":\"active\"}",
		     "\"open_files\":4", "\"inodes\":10",
		     "\"bytes\":{\"read\":20480,\"written\":12288}",
		     "\"read\":5", "\"write\":3", "\"lookup\":0",
		     "\"EIO\":2", "\"ENOSPC\":0", "\"EACCES\":1",
		     "\"total\":9",
		     "{\"path\":\"/a/b.dcm\",\"block\":3,\"time\":1700000000}",
		     "\"block\":-1", "\"kind\":\"poll\"", "\"requests\":123",
		     "\"header_fallbacks\":6", "\"size_tag_mismatches\":7",
		     "\"attr_mismatches\":8",
		     NULL }, **w = want; *w; w++)
		cr_assert(strstr(s, *w), "no %s in %s", *w, s);
	free(s);
}

static char *format(const char *answer, enum ctl_format fmt, int *rc,
		    char *why, size_t why_len)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cr_assert(f);
	*rc = ctl_msg_format(answer, fmt, f, why, why_len);
	fclose(f);
	return text;
}

Test(ctl_msg, the_status_becomes_a_table_and_prometheus_text)
{
	struct ctl_status st;
	char *s, *t, why[256];
	int rc;

	sample_status(&st);
	s = ctl_msg_status(&st);
	t = format(s, CTL_FORMAT_TABLE, &rc, why, sizeof(why));
	cr_assert_eq(rc, 0, "%s", why);
	for (const char *want[] = { "4242", "77 s", "/mnt/phi",
				    "v1 (decrypt-only) v2 (active)",
				    "20480 read, 12288 written",
				    "/a/b.dcm block 3 at 1700000000",
				    "/c header", "EIO 2", "poll, 3/16",
				    "6 header slots refused, 7 size tags",
				    NULL },
	     **w = want; *w; w++)
		cr_assert(strstr(t, *w), "no '%s' in\n%s", *w, t);
	free(t);
	t = format(s, CTL_FORMAT_PROMETHEUS, &rc, why, sizeof(why));
	cr_assert_eq(rc, 0, "%s", why);
	for (const char *want[] = {
		     "# TYPE phifs_read_bytes_total counter\n",
		     "phifs_read_bytes_total{volume=\"00112233445566778899"
		     "aabbccddeeff\"} 20480\n",
		     "phifs_operations_total{volume=\"00112233445566778899"
		     "aabbccddeeff\",op=\"write\"} 3\n",
		     "phifs_errors_total{volume=\"00112233445566778899aabb"
		     "ccddeeff\",error=\"EIO\"} 2\n",
		     "phifs_auth_failures_total{volume=\"00112233445566778899"
		     "aabbccddeeff\"} 9\n",
		     "phifs_header_fallbacks_total{volume=\"0011223344556677"
		     "8899aabbccddeeff\"} 6\n",
		     "phifs_size_tag_mismatches_total{volume=\"001122334455"
		     "66778899aabbccddeeff\"} 7\n",
		     "phifs_attr_mismatches_total{volume=\"00112233445566"
		     "778899aabbccddeeff\"} 8\n",
		     "version=\"2\",state=\"active\"} 1\n", NULL },
	     **w = want; *w; w++)
		cr_assert(strstr(t, *w), "no '%s' in\n%s", *w, t);
	free(t);
	free(s);
}

Test(ctl_msg, the_integrity_log_travels_in_the_status_and_the_anchor_alone)
{
	struct ctl_status st;
	char *s, *t, why[256], line[CTL_MAX_ANCHOR];
	int rc;

	sample_status(&st);
	s = ctl_msg_status(&st);
	cr_assert_null(strstr(s, "\"audit\""), "no log, no figures: %s", s);
	free(s);
	st.audit = (struct ctl_audit){ .on = true, .dir = "/var/log/ward",
				       .queued = 3, .written = 120,
				       .synced = 117, .lag_ms = 4,
				       .checkpoint_seq = 100,
				       .checkpoint_ts = 1700000000,
				       .failures = 1, .refused = 2,
				       .dropped = 0, .failing = true };
	s = ctl_msg_status(&st);
	cr_assert(strstr(s, "\"audit\":{\"dir\":\"/var/log/ward\","
			 "\"queued\":3,\"written\":120,\"synced\":117,"
			 "\"lag_ms\":4,\"checkpoint_seq\":100,"
			 "\"checkpoint_ts\":1700000000,\"failures\":1,"
			 "\"refused\":2,\"dropped\":0,\"failing\":true}"),
		  "%s", s);
	t = format(s, CTL_FORMAT_TABLE, &rc, why, sizeof(why));
	cr_assert_eq(rc, 0, "%s", why);
	cr_expect(strstr(t, "/var/log/ward (FAILING)"), "%s", t);
	cr_expect(strstr(t, "3 queued, lag 4 ms, 120 written, 117 durable"),
		  "%s", t);
	free(t);
	t = format(s, CTL_FORMAT_PROMETHEUS, &rc, why, sizeof(why));
	cr_assert_eq(rc, 0, "%s", why);
	cr_expect(strstr(t, "phifs_audit_refused_total{volume=\"0011223344"
			 "5566778899aabbccddeeff\"} 2\n"), "%s", t);
	cr_expect(strstr(t, "phifs_audit_failing{volume=\"00112233445566"
			 "778899aabbccddeeff\"} 1\n"), "%s", t);
	free(t);
	free(s);

	cr_assert_eq(parse_ok("{\"cmd\":\"audit-anchor\"}"),
		     CTL_AUDIT_ANCHOR);
	s = ctl_msg_anchor("{\"seq\":7,\"op\":\"checkpoint\"}");
	cr_assert_eq(ctl_msg_anchor_of(s, line, sizeof(line), why,
				       sizeof(why)), 0, "%s", why);
	cr_expect_str_eq(line, "{\"seq\":7,\"op\":\"checkpoint\"}");
	free(s);
	s = ctl_msg_error("audit-anchor: this mount keeps no integrity log");
	cr_expect_eq(ctl_msg_anchor_of(s, line, sizeof(line), why,
				       sizeof(why)), -EINVAL);
	cr_expect_str_eq(why, "audit-anchor: this mount keeps no integrity "
			 "log");
	free(s);
}

Test(ctl_msg, error_and_foreign_answers_are_not_formatted)
{
	char why[256], *t;
	int rc;

	t = format("{\"ok\":false,\"error\":\"no such thing\"}",
		   CTL_FORMAT_TABLE, &rc, why, sizeof(why));
	cr_assert_eq(rc, -EINVAL);
	cr_assert_str_eq(why, "no such thing");
	free(t);
	t = format("garbage", CTL_FORMAT_TABLE, &rc, why, sizeof(why));
	cr_assert_eq(rc, -EPROTO);
	free(t);
	t = format("{\"ok\":true}", CTL_FORMAT_PROMETHEUS, &rc, why,
		   sizeof(why));
	cr_assert_eq(rc, -EPROTO);
	free(t);
}

/* ---- the control loop on a socket of its own ---- */

struct fake {
	atomic_int flushes, reloads, stops, rotations;
	atomic_bool keep_old;
};

static void fake_status(void *arg, struct ctl_status *st)
{
	(void)arg;
	sample_status(st);
}

static int fake_flush(void *arg)
{
	atomic_fetch_add(&((struct fake *)arg)->flushes, 1);
	return 0;
}

static int fake_reload(void *arg, char *changed, size_t len, bool *policy)
{
	atomic_fetch_add(&((struct fake *)arg)->reloads, 1);
	snprintf(changed, len, "policy");
	*policy = true;
	return 0;
}

static void fake_stop(void *arg)
{
	atomic_fetch_add(&((struct fake *)arg)->stops, 1);
}

static bool fake_serving(void *arg)
{
	(void)arg;
	return true;
}

/* The first starts (as rotation 7); the ones after find it running. */
static int fake_rotate(void *arg, bool keep_old, unsigned *id, char *why,
		       size_t len)
{
	struct fake *f = arg;

	if (atomic_fetch_add(&f->rotations, 1)) {
		snprintf(why, len, "a key rotation is running already");
		return -EBUSY;
	}
	f->keep_old = keep_old;
	*id = 7;
	return 0;
}

static const struct ctl_ops fake_ops = {
	.key_rotate = fake_rotate,
	.status = fake_status,
	.serving = fake_serving,
	.flush = fake_flush,
	.reload = fake_reload,
	.stop = fake_stop,
};

static char dir[64], sock[128];
static struct fake fake;
static struct ctl *ctl;

static void start(void)
{
	char err[512] = "";

	ctl_block_signals();
	memset(&fake, 0, sizeof(fake));
	strcpy(dir, "/tmp/phifs-ctl-XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/control.sock", dir);
	cr_assert_eq(ctl_new(sock, &fake_ops, &fake, &ctl, err, sizeof(err)),
		     0, "%s", err);
}

static void stop(void)
{
	ctl_free(ctl);
	ctl = NULL;
	rmdir(dir);
}

TestSuite(ctl_loop, .init = start, .fini = stop, .timeout = 60);

static char *ask(const char *req)
{
	char *a = NULL;
	int rc = ctl_request(sock, req, 5000, &a);

	cr_assert_eq(rc, 0, "%s: %s", req, strerror(-rc));
	return a;
}

static bool wait_until(atomic_int *v, int want, int ms)
{
	for (int i = 0; i < ms && atomic_load(v) < want; i++)
		usleep(1000);
	return atomic_load(v) >= want;
}

Test(ctl_loop, commands_reach_the_daemon)
{
	struct stat st;
	char *a;

	cr_assert_eq(lstat(sock, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0600);
	a = ask("{\"cmd\":\"status\"}");
	cr_assert(strstr(a, "\"pid\":4242"), "%s", a);
	free(a);
	a = ask("{\"cmd\":\"flush\"}");
	cr_assert(strstr(a, "\"ok\":true"));
	cr_assert_eq(atomic_load(&fake.flushes), 1);
	free(a);
	a = ask("{\"cmd\":\"reload\"}");
	cr_assert(strstr(a, "\"changed\":[\"policy\"]"), "%s", a);
	cr_assert(strstr(a, "\"policy\":true"), "%s", a);
	free(a);
	a = ask("{\"cmd\":\"nope\"}");
	cr_assert(strstr(a, "\"ok\":false") && strstr(a, "unknown command"));
	free(a);
	a = ask("{\"cmd\":\"key-rotate\",\"keep_old\":true}");
	cr_assert(strstr(a, "\"ok\":true") && strstr(a, "\"rotation\":7"),
		  "%s", a);
	cr_assert(fake.keep_old);
	free(a);
	a = ask("{\"cmd\":\"key-rotate\"}");
	cr_assert(strstr(a, "\"ok\":false") && strstr(a, "running already"),
		  "%s", a);
	free(a);
	a = ask("{\"cmd\":\"unmount\"}");
	cr_assert(strstr(a, "\"ok\":true"));
	free(a);
	a = ask("{\"cmd\":\"key-rotate\"}");
	cr_assert(strstr(a, "\"ok\":false") && strstr(a, "unmounting"),
		  "%s", a);
	free(a);
	/* The stop is asked again until the daemon is gone. */
	cr_assert(wait_until(&fake.stops, 3, 5000));
}

Test(ctl_loop, signals_reload_flush_and_stop)
{
	kill(getpid(), SIGHUP);
	cr_assert(wait_until(&fake.reloads, 1, 5000));
	kill(getpid(), SIGUSR1);
	cr_assert(wait_until(&fake.flushes, 1, 5000));
	cr_assert_eq(atomic_load(&fake.stops), 0);
	kill(getpid(), SIGTERM);
	cr_assert(wait_until(&fake.stops, 1, 5000));
}

Test(ctl_loop, hostile_clients_are_answered_or_closed_and_others_served)
{
	static char big[1 << 20];
	char buf[4096], *a;
	int fd, quiet;

	/* One that connects and says nothing stays out of the others' way. */
	quiet = tu_unix_connect(sock);
	fd = tu_unix_connect(sock);
	cr_assert_eq(send(fd, "this is not json\n", 17, MSG_NOSIGNAL), 17);
	cr_assert(tu_read_line(fd, buf, sizeof(buf), 5000) > 0);
	cr_assert(strstr(buf, "\"ok\":false") && strstr(buf, "not JSON"),
		  "%s", buf);
	/* The same connection still answers. */
	cr_assert_eq(send(fd, "{\"cmd\":\"status\"}\n", 17, MSG_NOSIGNAL),
		     17);
	cr_assert(tu_read_line(fd, buf, sizeof(buf), 5000) > 0);
	cr_assert(strstr(buf, "\"ok\":true"), "%s", buf);
	close(fd);

	/* A 1 MiB line: an error answer, then the close. */
	memset(big, 'x', sizeof(big));
	fd = tu_unix_connect(sock);
	(void)send(fd, big, sizeof(big), MSG_NOSIGNAL);
	if (tu_read_line(fd, buf, sizeof(buf), 5000))
		cr_assert(strstr(buf, "too long"), "%s", buf);
	close(fd);

	/* Random bytes, NULs and newlines among them. */
	fd = tu_unix_connect(sock);
	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)rand();
	(void)send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
	(void)tu_read_line(fd, buf, sizeof(buf), 5000);
	close(fd);

	a = ask("{\"cmd\":\"status\"}");
	cr_assert(strstr(a, "\"ok\":true"));
	free(a);
	close(quiet);
}

struct many {
	pthread_t t;
	int rc;
	char *a;
};

static void *one_client(void *arg)
{
	struct many *m = arg;

	m->rc = ctl_request(sock, "{\"cmd\":\"status\"}", 20000, &m->a);
	return NULL;
}

Test(ctl_loop, a_hundred_clients_at_once_all_get_answers)
{
	static struct many m[100];

	for (int i = 0; i < 100; i++)
		cr_assert_eq(pthread_create(&m[i].t, NULL, one_client, &m[i]),
			     0);
	for (int i = 0; i < 100; i++) {
		pthread_join(m[i].t, NULL);
		cr_assert_eq(m[i].rc, 0, "client %d: %s", i,
			     strerror(-m[i].rc));
		cr_assert(strstr(m[i].a, "\"pid\":4242"));
		free(m[i].a);
	}
}

Test(ctl_loop, a_live_socket_is_not_taken_over)
{
	struct ctl *second = NULL;
	char err[512] = "";
	char *a;

	cr_assert_eq(ctl_new(sock, &fake_ops, &fake, &second, err,
			     sizeof(err)), -EADDRINUSE);
	cr_assert(strstr(err, "another daemon"), "%s", err);
	a = ask("{\"cmd\":\"status\"}");
	cr_assert(strstr(a, "\"ok\":true"));
	free(a);
}

Test(ctl_loop, a_stale_socket_is_replaced_and_a_symlink_is_not_followed)
{
	char stale[160], link[160], target[160], err[512] = "";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ctl *other = NULL;
	struct stat st;
	int fd;

	/* A socket nobody listens on, as kill -9 leaves one. */
	snprintf(stale, sizeof(stale), "%s/stale.sock", dir);
	strcpy(sa.sun_path, stale);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	cr_assert_eq(ctl_new(stale, &fake_ops, &fake, &other, err,
			     sizeof(err)), 0, "%s", err);
	ctl_free(other);
	cr_assert_eq(lstat(stale, &st), -1, "the socket was left behind");

	snprintf(link, sizeof(link), "%s/link.sock", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	cr_assert_eq(symlink(target, link), 0);
	cr_assert_neq(ctl_new(link, &fake_ops, &fake, &other, err,
			      sizeof(err)), 0);
	cr_assert(strstr(err, "not replaced"), "%s", err);
	cr_assert_eq(lstat(target, &st), -1, "the symlink was followed");
	cr_assert_eq(lstat(link, &st), 0);
	cr_assert(S_ISLNK(st.st_mode));
	unlink(link);
}

/* ---- systemd's notification socket ---- */

Test(ctl_notify, notify_socket_addresses_are_paths_or_abstract)
{
	struct sockaddr_un sa;
	unsigned len;

	cr_assert_eq(ctl_notify_addr("/run/systemd/notify", &sa, &len), 0);
	cr_assert_str_eq(sa.sun_path, "/run/systemd/notify");
	cr_assert_eq(len, offsetof(struct sockaddr_un, sun_path) + 20);
	cr_assert_eq(ctl_notify_addr("@abstract", &sa, &len), 0);
	cr_assert_eq(sa.sun_path[0], 0);
	cr_assert(!memcmp(sa.sun_path + 1, "abstract", 8));
	cr_assert_eq(len, offsetof(struct sockaddr_un, sun_path) + 9);
	cr_assert_eq(ctl_notify_addr("", &sa, &len), -EINVAL);
	cr_assert_eq(ctl_notify_addr("relative", &sa, &len), -EINVAL);
	cr_assert_eq(ctl_notify_addr(NULL, &sa, &len), -EINVAL);
}

Test(ctl_notify, the_control_loop_pings_the_watchdog_and_tells_the_state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char tmp[64] = "/tmp/phifs-notify-XXXXXX", path[128], err[512];
	char buf[512];
	struct ctl *c = NULL;
	int fd;

	ctl_block_signals();
	cr_assert(mkdtemp(tmp));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", tmp);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	setenv("WATCHDOG_USEC", "100000", 1);
	snprintf(path, sizeof(path), "%s/control.sock", tmp);
	cr_assert_eq(ctl_new(path, &fake_ops, &fake, &c, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(ctl_notify(c, "READY=1\nSTATUS=testing"), 0);
	cr_assert(tu_recv_until(fd, "READY=1\nSTATUS=testing", buf,
				sizeof(buf), 5000));
	cr_assert(tu_recv_until(fd, "WATCHDOG=1", buf, sizeof(buf), 5000));
	cr_assert(tu_recv_until(fd, "WATCHDOG=1", buf, sizeof(buf), 5000));
	ctl_free(c);
	close(fd);
	unlink(sa.sun_path);
	rmdir(tmp);
}

/* Whether the daemon closed fd's connection (not merely went quiet). */
static bool closed(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);

	return n == 0 || (n < 0 && errno == ECONNRESET);
}

Test(ctl_loop, connections_past_the_limit_are_closed_and_others_served)
{
	int fds[CTL_MAX_CLIENTS + 1];
	char buf[256], *a;

	for (int i = 0; i <= CTL_MAX_CLIENTS; i++)
		fds[i] = tu_unix_connect(sock);
	/* Accepted in order: the one past the limit is closed at once. */
	cr_assert_eq(tu_read_line(fds[CTL_MAX_CLIENTS], buf, sizeof(buf),
				  5000), 0, "answered: %s", buf);
	cr_assert(closed(fds[CTL_MAX_CLIENTS]), "not closed");
	/* The others still are. */
	cr_assert_eq(send(fds[0], "{\"cmd\":\"status\"}\n", 17, MSG_NOSIGNAL),
		     17);
	cr_assert(tu_read_line(fds[0], buf, sizeof(buf), 5000) > 0);
	for (int i = 0; i <= CTL_MAX_CLIENTS; i++)
		close(fds[i]);
	a = ask("{\"cmd\":\"status\"}");
	cr_assert(strstr(a, "\"ok\":true"));
	free(a);
}

Test(ctl_loop, a_silent_connection_is_closed_after_the_idle_time,
     .timeout = 60)
{
	char buf[64];
	int fd = tu_unix_connect(sock);

	/* Half a request, then nothing. */
	cr_assert_eq(send(fd, "{\"cmd\":", 7, MSG_NOSIGNAL), 7);
	cr_assert_eq(tu_read_line(fd, buf, sizeof(buf), CTL_IDLE_MS + 10000),
		     0, "answered: %s", buf);
	cr_assert(closed(fd), "still open after %d ms", CTL_IDLE_MS + 10000);
	close(fd);
}

/* ---- work handed to the control thread ---- */

struct posted {
	atomic_int ran;
	atomic_int elsewhere;	/* ran on the posting thread */
	pthread_t poster[4];
	int last[4];		/* the control thread's: order per poster */
	atomic_int out_of_order;
};

static struct posted posted;

static void job(void *arg)
{
	intptr_t v = (intptr_t)arg;
	int who = (int)(v >> 16), n = (int)(v & 0xffff);

	for (int i = 0; i < 4; i++)
		if (pthread_equal(pthread_self(), posted.poster[i]))
			atomic_fetch_add(&posted.elsewhere, 1);
	if (n != posted.last[who] + 1)
		atomic_fetch_add(&posted.out_of_order, 1);
	posted.last[who] = n;
	atomic_fetch_add(&posted.ran, 1);
}

static void *post_many(void *arg)
{
	intptr_t who = (intptr_t)arg;

	for (intptr_t n = 1; n <= 1000; n++)
		cr_assert_eq(ctl_post(ctl, job, (void *)(who << 16 | n)), 0);
	return NULL;
}

Test(ctl_loop, posted_jobs_run_on_the_control_thread_in_order)
{
	for (intptr_t i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&posted.poster[i], NULL, post_many,
					    (void *)i), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(posted.poster[i], NULL);
	cr_assert(wait_until(&posted.ran, 4000, 10000), "ran %d of 4000",
		  atomic_load(&posted.ran));
	cr_assert_eq(atomic_load(&posted.elsewhere), 0);
	cr_assert_eq(atomic_load(&posted.out_of_order), 0);
}
