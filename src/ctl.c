/*
 * ctl.c — the daemon's control thread: a libuv loop that owns the stop,
 * reload and flush signals, the control socket (docs/CONTROL.md) and the
 * repeated stop.  Everything it does to the mount goes through the
 * daemon's ctl_ops; it knows nothing of FUSE.  The FUSE workers never wait
 * on it: it only reads their counters (vfs_stats) when asked.
 *
 * Clients cannot block the loop or each other: reads and writes never
 * block, a request line is at most CTL_MAX_LINE bytes, a connection is
 * closed after CTL_IDLE_MS without a whole request or once CTL_MAX_QUEUED
 * bytes of answers wait for it, and past CTL_MAX_CLIENTS connections new
 * ones are closed at once.
 */
#include "phifs/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "phifs/log.h"

static const int ctl_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
#define NSIGNALS (sizeof(ctl_signals) / sizeof(ctl_signals[0]))

struct ctl_client {
	uv_pipe_t pipe;		/* first: closing it gives back the client */
	uv_timer_t idle;
	struct ctl *c;
	int handles;		/* still open of pipe and idle */
	bool closing;
	size_t len;		/* bytes of an unfinished line in buf */
	char buf[CTL_MAX_LINE];
	struct ctl_client *next, **pprev;
};

struct ctl_job {
	void (*fn)(void *arg);
	void *arg;
	struct ctl_job *next;
};

struct ctl_write {
	uv_write_t req;
	struct ctl_client *cl;
	bool close_after;
	char *line;
};

/*
 * Everything below is the control thread's alone once ctl_new returns,
 * but for quit (uv_async_send is thread-safe).
 */
struct ctl {
	uv_loop_t loop;
	uv_pipe_t server;
	uv_signal_t sig[NSIGNALS];
	uv_timer_t stop_timer;
	uv_timer_t watchdog;	/* started only under a systemd watchdog */
	uv_async_t quit;
	uv_async_t posted;	/* jobs were queued */
	pthread_mutex_t jobs_lock;	/* protects jobs, jobs_tail */
	struct ctl_job *jobs, **jobs_tail;
	pthread_t thread;
	const struct ctl_ops *ops;
	void *arg;
	char *path;
	dev_t dev;		/* the socket we made, to remove only it */
	ino_t ino;
	uid_t uid;
	unsigned nclients;
	struct ctl_client *clients;
	bool stopping;
	int notify_fd;		/* -1 without NOTIFY_SOCKET */
	struct sockaddr_un notify_sa;
	unsigned notify_len;
	uint64_t watchdog_ms;	/* 0: none */
};

void ctl_block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < NSIGNALS; i++)
		sigaddset(&set, ctl_signals[i]);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* --- commands: the socket's and the signals' --- */

static void stop_again(uv_timer_t *t)
{
	struct ctl *c = t->data;

	c->ops->stop(c->arg);
}

static void begin_stop(struct ctl *c, const char *why)
{
	if (c->stopping)
		return;
	c->stopping = true;
	log_msg(LOG_KIND_LIFECYCLE, LOG_INFO, "%s: unmounting", why);
	(void)ctl_notify(c, "STOPPING=1\nSTATUS=Unmounting");
	c->ops->stop(c->arg);
	uv_timer_start(&c->stop_timer, stop_again, CTL_STOP_REPEAT_MS,
		       CTL_STOP_REPEAT_MS);
}

static int do_flush(struct ctl *c, const char *why)
{
	int rc = c->ops->flush(c->arg);

	log_msg(LOG_KIND_LIFECYCLE, rc ? LOG_ERR : LOG_INFO,
		"%s: sizes of open files committed%s%s", why,
		rc ? ", but not all: " : "", rc ? strerror(-rc) : "");
	return rc;
}

static int do_reload(struct ctl *c, const char *why, char *changed,
		     size_t len, bool *policy)
{
	int rc;

	*policy = false;
	rc = c->ops->reload(c->arg, changed, len, policy);
	if (rc)
		log_msg(LOG_KIND_LIFECYCLE, LOG_ERR, "%s: reload failed: %s",
			why, changed);
	else
		log_msg(LOG_KIND_LIFECYCLE, LOG_INFO,
			"%s: settings re-read; changed: %s (none applies "
			"while mounted)%s", why, *changed ? changed : "none",
			*policy ? "; access policy re-read and in force" : "");
	return rc;
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct ctl *c = s->data;
	char changed[512];
	bool policy;

	switch (signum) {
	case SIGTERM:
	case SIGINT:
		begin_stop(c, signum == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	case SIGHUP:
		(void)do_reload(c, "SIGHUP", changed, sizeof(changed),
				&policy);
		break;
	case SIGUSR1:
		(void)do_flush(c, "SIGUSR1");
		break;
	}
}

/* The answer to one request line; NULL on ENOMEM. */
static char *audit_anchor(struct ctl *c)
{
	char *line = c->ops->audit_anchor ? malloc(CTL_MAX_ANCHOR) : NULL;
	char why[128], *a;
	int rc;

	if (!c->ops->audit_anchor)
		return ctl_msg_error("audit-anchor: not served here");
	if (!line)
		return NULL;
	rc = c->ops->audit_anchor(c->arg, line, CTL_MAX_ANCHOR);
	if (rc == -ENOENT)
		snprintf(why, sizeof(why), "audit-anchor: this mount keeps "
			 "no integrity log");
	else if (rc)
		snprintf(why, sizeof(why), "audit-anchor: %s", strerror(-rc));
	a = rc ? ctl_msg_error(why) : ctl_msg_anchor(line);
	free(line);
	return a;
}

static char *answer(struct ctl *c, const char *line, size_t len)
{
	struct ctl_status *st;
	struct ctl_req req;
	char why[512];
	bool policy;
	unsigned id;
	char *a;
	int rc;

	if (ctl_msg_parse_req(line, len, &req, why, sizeof(why)))
		return ctl_msg_error(why);
	switch (req.cmd) {
	case CTL_STATUS:
		st = calloc(1, sizeof(*st));
		if (!st)
			return NULL;
		c->ops->status(c->arg, st);
		a = ctl_msg_status(st);
		free(st);
		return a;
	case CTL_FLUSH:
		rc = do_flush(c, "control socket");
		if (rc) {
			snprintf(why, sizeof(why), "not every size or log "
				 "record could be made durable: %s",
				 strerror(-rc));
			return ctl_msg_error(why);
		}
		return ctl_msg_ok();
	case CTL_RELOAD:
		rc = do_reload(c, "control socket", why, sizeof(why), &policy);
		return rc ? ctl_msg_error(why) : ctl_msg_reload(why, policy);
	case CTL_UNMOUNT:
		begin_stop(c, "control socket");
		return ctl_msg_ok();
	case CTL_KEY_ROTATE:
		if (!c->ops->key_rotate)
			return ctl_msg_error("key-rotate: not served here");
		if (c->stopping)
			return ctl_msg_error("key-rotate: unmounting");
		*why = 0;
		rc = c->ops->key_rotate(c->arg, req.keep_old, &id, why,
					sizeof(why));
		if (rc && !*why)
			snprintf(why, sizeof(why), "%s", strerror(-rc));
		return rc ? ctl_msg_error(why) : ctl_msg_rotate_started(id);
	case CTL_AUDIT_ANCHOR:
		return audit_anchor(c);
	}
	return ctl_msg_error("unknown command");
}

/* --- connections --- */

static void client_closed(uv_handle_t *h)
{
	struct ctl_client *cl = h->data;

	if (--cl->handles == 0)
		free(cl);
}

static void client_close(struct ctl_client *cl)
{
	if (cl->closing)
		return;
	cl->closing = true;
	*cl->pprev = cl->next;
	if (cl->next)
		cl->next->pprev = cl->pprev;
	cl->c->nclients--;
	uv_close((uv_handle_t *)&cl->pipe, client_closed);
	uv_close((uv_handle_t *)&cl->idle, client_closed);
}

static void written(uv_write_t *req, int status)
{
	struct ctl_write *w = (struct ctl_write *)req;

	if (status < 0 || w->close_after)
		client_close(w->cl);
	free(w->line);
	free(w);
}

/* Queues line (taken over; NULL: out of memory) for cl. */
static void send_line(struct ctl_client *cl, char *line, bool close_after)
{
	struct ctl_write *w = line ? calloc(1, sizeof(*w)) : NULL;
	uv_buf_t b;

	if (!w) {
		free(line);
		client_close(cl);
		return;
	}
	w->cl = cl;
	w->line = line;
	w->close_after = close_after;
	b = uv_buf_init(line, (unsigned)strlen(line));
	if (uv_write(&w->req, (uv_stream_t *)&cl->pipe, &b, 1, written)) {
		free(line);
		free(w);
		client_close(cl);
		return;
	}
	/* A client that asks and never reads is let go. */
	if (uv_stream_get_write_queue_size((uv_stream_t *)&cl->pipe) >
	    CTL_MAX_QUEUED)
		client_close(cl);
}

static void idle_out(uv_timer_t *t)
{
	client_close(t->data);
}

static void alloc_in(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct ctl_client *cl = h->data;

	(void)hint;
	*b = uv_buf_init(cl->buf + cl->len,
			 (unsigned)(sizeof(cl->buf) - cl->len));
}

static void read_in(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct ctl_client *cl = s->data;
	char *nl;

	(void)b;
	if (n < 0) {
		client_close(cl);	/* UV_EOF too: a half-close ends it */
		return;
	}
	cl->len += (size_t)n;
	while (!cl->closing && (nl = memchr(cl->buf, '\n', cl->len))) {
		size_t l = (size_t)(nl - cl->buf);

		send_line(cl, answer(cl->c, cl->buf, l), false);
		cl->len -= l + 1;
		memmove(cl->buf, nl + 1, cl->len);
		uv_timer_again(&cl->idle);
	}
	if (!cl->closing && cl->len == sizeof(cl->buf)) {
		uv_read_stop(s);
		send_line(cl, ctl_msg_error("request line too long"), true);
	}
}

/* Only the daemon's own uid and root; one line for each refused. */
static bool peer_allowed(struct ctl *c, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len)) {
		log_msg(LOG_KIND_AUTH, LOG_WARNING, "control socket: cannot "
			"tell who connected (%s): refused", strerror(errno));
		return false;
	}
	if (cr.uid == c->uid || cr.uid == 0)
		return true;
	log_msg(LOG_KIND_AUTH, LOG_WARNING, "control socket: uid %ld "
		"(pid %ld) refused: only uid %ld and root may connect",
		(long)cr.uid, (long)cr.pid, (long)c->uid);
	return false;
}

static void closed_free(uv_handle_t *h)
{
	free(h);
}

static void accept_one(uv_stream_t *server, int status)
{
	struct ctl *c = server->data;
	struct ctl_client *cl;
	uv_os_fd_t fd;

	if (status < 0)
		return;
	cl = calloc(1, sizeof(*cl));
	if (!cl || uv_pipe_init(&c->loop, &cl->pipe, 0)) {
		free(cl);
		return;
	}
	cl->pipe.data = cl;
	if (uv_accept(server, (uv_stream_t *)&cl->pipe) ||
	    uv_fileno((uv_handle_t *)&cl->pipe, &fd) ||
	    c->nclients >= CTL_MAX_CLIENTS || !peer_allowed(c, fd)) {
		/* Only the pipe is open: close it alone. */
		uv_close((uv_handle_t *)&cl->pipe, closed_free);
		return;
	}
	uv_timer_init(&c->loop, &cl->idle);
	cl->idle.data = cl;
	cl->handles = 2;
	cl->c = c;
	cl->next = c->clients;
	if (cl->next)
		cl->next->pprev = &cl->next;
	cl->pprev = &c->clients;
	c->clients = cl;
	c->nclients++;
	uv_timer_start(&cl->idle, idle_out, CTL_IDLE_MS, CTL_IDLE_MS);
	if (uv_read_start((uv_stream_t *)&cl->pipe, alloc_in, read_in))
		client_close(cl);
}

/* --- systemd --- */

int ctl_notify_addr(const char *env, struct sockaddr_un *sa, unsigned *len)
{
	size_t n = env ? strlen(env) : 0;

	if (n < 2 || n >= sizeof(sa->sun_path) || (env[0] != '/' &&
						   env[0] != '@'))
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, env, n);
	if (env[0] == '@')
		sa->sun_path[0] = 0;	/* the abstract namespace */
	*len = (unsigned)(offsetof(struct sockaddr_un, sun_path) + n +
			  (env[0] == '/'));
	return 0;
}

int ctl_notify(struct ctl *c, const char *state)
{
	if (!c || c->notify_fd < 0)
		return 0;
	if (sendto(c->notify_fd, state, strlen(state), MSG_NOSIGNAL,
		   (struct sockaddr *)&c->notify_sa, c->notify_len) < 0)
		return -errno;
	return 0;
}

static void watchdog_tick(uv_timer_t *t)
{
	struct ctl *c = t->data;

	/* A wedged request loop goes unpinged: systemd then steps in. */
	if (c->ops->serving && c->ops->serving(c->arg))
		(void)ctl_notify(c, "WATCHDOG=1");
}

/* NOTIFY_SOCKET and WATCHDOG_USEC, as sd_notify and sd_watchdog_enabled
 * read them; a watchdog meant for another pid is not ours. */
static void notify_init(struct ctl *c)
{
	const char *env = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	const char *wpid = getenv("WATCHDOG_PID");

	c->notify_fd = -1;
	if (!env || ctl_notify_addr(env, &c->notify_sa, &c->notify_len))
		return;
	c->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c->notify_fd < 0)
		return;
	if (wd && (!wpid || strtol(wpid, NULL, 10) == (long)getpid()))
		c->watchdog_ms = strtoull(wd, NULL, 10) / 1000;
}

/* --- jobs from other threads --- */

/* Takes the whole queue under the lock and runs it unlocked, in order. */
static void run_jobs(struct ctl *c)
{
	struct ctl_job *j, *next;

	pthread_mutex_lock(&c->jobs_lock);
	j = c->jobs;
	c->jobs = NULL;
	c->jobs_tail = &c->jobs;
	pthread_mutex_unlock(&c->jobs_lock);
	for (; j; j = next) {
		next = j->next;
		j->fn(j->arg);
		free(j);
	}
}

static void on_posted(uv_async_t *a)
{
	run_jobs(a->data);
}

int ctl_post(struct ctl *c, void (*fn)(void *arg), void *arg)
{
	struct ctl_job *j = malloc(sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	j->next = NULL;
	pthread_mutex_lock(&c->jobs_lock);
	*c->jobs_tail = j;
	c->jobs_tail = &j->next;
	pthread_mutex_unlock(&c->jobs_lock);
	/* Coalesces: one wake-up may run many jobs. */
	return uv_async_send(&c->posted);
}

/* --- the thread --- */

/* For a failed start, when no client exists yet. */
static void close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void on_quit(uv_async_t *a)
{
	struct ctl *c = a->data;

	while (c->clients)
		client_close(c->clients);
	uv_close((uv_handle_t *)&c->server, NULL);
	for (size_t i = 0; i < NSIGNALS; i++)
		uv_close((uv_handle_t *)&c->sig[i], NULL);
	uv_close((uv_handle_t *)&c->stop_timer, NULL);
	uv_close((uv_handle_t *)&c->watchdog, NULL);
	uv_close((uv_handle_t *)&c->quit, NULL);
	uv_close((uv_handle_t *)&c->posted, NULL);
}

static void *ctl_main(void *arg)
{
	struct ctl *c = arg;
	sigset_t set;

	/* The watchers are set: now the signals may come, to this thread. */
	sigemptyset(&set);
	for (size_t i = 0; i < NSIGNALS; i++)
		sigaddset(&set, ctl_signals[i]);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* --- the socket --- */

/* Is something answering on the socket at path? */
static bool answers(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			0);
	bool yes;

	if (fd < 0)
		return true;	/* cannot tell: do not replace it */
	strcpy(sa.sun_path, path);	/* the caller checked the length */
	yes = !connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	      errno != ECONNREFUSED;
	close(fd);
	return yes;
}

/*
 * Binds a listening socket at path, mode 0600 from its first moment: it
 * is made in a fresh 0700 folder beside path, then renamed over path
 * (rename never follows a symlink at its target).  What is at path is
 * replaced only when it is a socket nothing answers on.
 */
static int bind_socket(struct ctl *c, const char *path, int *out, char *err,
		       size_t err_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char tmpdir[sizeof(sa.sun_path)], tmp[sizeof(sa.sun_path) + 8];
	struct stat st;
	int fd = -1, rc;

	/* The socket is made as PATH.XXXXXX/s: 9 bytes more than path. */
	if (strlen(path) + 9 >= sizeof(sa.sun_path)) {
		snprintf(err, err_len, "control socket %s: path too long "
			 "(at most %zu bytes)", path,
			 sizeof(sa.sun_path) - 10);
		return -ENAMETOOLONG;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s.XXXXXX", path);
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, err_len, "control socket %s: something "
				 "else is there (not replaced)", path);
			return -EEXIST;
		}
		if (answers(path)) {
			snprintf(err, err_len, "control socket %s: another "
				 "daemon answers on it", path);
			return -EADDRINUSE;
		}
	} else if (errno != ENOENT) {
		rc = -errno;
		snprintf(err, err_len, "control socket %s: %s", path,
			 strerror(-rc));
		return rc;
	}
	if (!mkdtemp(tmpdir)) {
		rc = -errno;
		snprintf(err, err_len, "control socket %s: %s", path,
			 strerror(-rc));
		return rc;
	}
	snprintf(tmp, sizeof(tmp), "%s/s", tmpdir);
	strcpy(sa.sun_path, tmp);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(tmp, 0600) || listen(fd, SOMAXCONN) || lstat(tmp, &st) ||
	    rename(tmp, path)) {
		rc = -errno;
		goto fail;
	}
	(void)rmdir(tmpdir);
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	*out = fd;
	return 0;
fail:
	snprintf(err, err_len, "control socket %s: %s", path, strerror(-rc));
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	(void)rmdir(tmpdir);
	return rc;
}

/* The loop's other handles: signals, the stop and watchdog timers, and
 * the two wake-ups other threads send.  0 or a libuv error. */
static int start_handles(struct ctl *c)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < NSIGNALS; i++) {
		uv_signal_init(&c->loop, &c->sig[i]);
		c->sig[i].data = c;
		rc = uv_signal_start(&c->sig[i], on_signal, ctl_signals[i]);
	}
	if (rc)
		return rc;
	uv_timer_init(&c->loop, &c->stop_timer);
	c->stop_timer.data = c;
	uv_timer_init(&c->loop, &c->watchdog);
	c->watchdog.data = c;
	if (c->watchdog_ms)	/* every half period, as systemd asks */
		uv_timer_start(&c->watchdog, watchdog_tick,
			       c->watchdog_ms / 2 + 1, c->watchdog_ms / 2 + 1);
	rc = uv_async_init(&c->loop, &c->quit, on_quit);
	c->quit.data = c;
	if (!rc) {
		rc = uv_async_init(&c->loop, &c->posted, on_posted);
		c->posted.data = c;
	}
	return rc;
}

int ctl_new(const char *path, const struct ctl_ops *ops, void *arg,
	    struct ctl **out, char *err, size_t err_len)
{
	struct ctl *c = calloc(1, sizeof(*c));
	bool piped = false;
	int fd = -1, rc;

	if (!c || !(c->path = strdup(path))) {
		free(c);
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	c->ops = ops;
	c->arg = arg;
	c->uid = geteuid();
	c->notify_fd = -1;
	c->jobs_tail = &c->jobs;
	pthread_mutex_init(&c->jobs_lock, NULL);
	/* A client gone before its answer must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	rc = uv_loop_init(&c->loop);
	if (rc) {
		snprintf(err, err_len, "control loop: %s", uv_strerror(rc));
		free(c->path);
		free(c);
		return rc;
	}
	notify_init(c);
	rc = bind_socket(c, path, &fd, err, err_len);
	if (rc)
		goto fail;
	uv_pipe_init(&c->loop, &c->server, 0);
	c->server.data = c;
	rc = uv_pipe_open(&c->server, fd);
	piped = !rc;
	if (!rc)
		rc = uv_listen((uv_stream_t *)&c->server, SOMAXCONN,
			       accept_one);
	if (!rc)
		rc = start_handles(c);
	if (!rc)
		rc = -pthread_create(&c->thread, NULL, ctl_main, c);
	if (rc) {
		snprintf(err, err_len, "control socket %s: %s", path,
			 uv_strerror(rc));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	/* Nothing ran yet: close what was opened and let the loop finish. */
	uv_walk(&c->loop, close_any, NULL);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&c->loop);
	if (fd >= 0 && !piped)
		close(fd);
	if (c->ino)
		(void)unlink(path);
	if (c->notify_fd >= 0)
		close(c->notify_fd);
	free(c->path);
	free(c);
	return rc;
}

void ctl_free(struct ctl *c)
{
	struct stat st;

	if (!c)
		return;
	uv_async_send(&c->quit);
	pthread_join(c->thread, NULL);
	run_jobs(c);	/* posted too late for the loop: none is lost */
	pthread_mutex_destroy(&c->jobs_lock);
	(void)uv_loop_close(&c->loop);
	/* Only our socket: another may have replaced it, if ours was dead. */
	if (!lstat(c->path, &st) && st.st_dev == c->dev && st.st_ino == c->ino)
		(void)unlink(c->path);
	if (c->notify_fd >= 0)
		close(c->notify_fd);
	free(c->path);
	free(c);
}
