/*
 * main.c — the phifs daemon: argv and config, process hardening, the
 * volume, the FUSE session.  Unless -f, it forks first and the parent waits
 * on a pipe: it exits 0 only once the mount is ready, or with the child's
 * failure, so a script can use the mount as soon as phifs returns.  (Forking
 * first, not after loading keys, keeps the key pages mlocked: locks are not
 * inherited across fork.)  Holds no logic of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "phifs/access.h"
#include "phifs/audit.h"
#include "phifs/audit_hook.h"
#include "phifs/audit_writer.h"
#include "phifs/config.h"
#include "phifs/ctl.h"
#include "phifs/fs.h"
#include "phifs/ini.h"
#include "phifs/keys.h"
#include "phifs/log.h"
#include "phifs/loop.h"
#include "phifs/mountcheck.h"
#include "phifs/policy.h"
#include "phifs/rotate.h"
#include "phifs/secmem.h"
#include "phifs/sysnames.h"
#include "phifs/volume.h"

#define EXIT_USAGE 2

#define HELP_COL 21	/* where the help texts start, less one */

static void usage(void)
{
	const struct config_setting *s;
	int col;

	fputs("usage: phifs --key SRC [options] BACKING MOUNTPOINT\n"
	      "\n"
	      "Mounts the phifs volume in BACKING (made by phifsctl init) at "
	      "MOUNTPOINT.\n\n", stdout);
	for (s = config_settings; s->name && !s->section; s++) {
		char flag[64];
		const char *h;
		int n;

		if (s->short_opt)
			n = snprintf(flag, sizeof(flag), "-%c", s->short_opt);
		else if (s->long_opt)
			n = snprintf(flag, sizeof(flag), "--%s", s->name);
		else
			continue;
		for (int i = 2; i < n; i++)
			if (flag[i] == '_')
				flag[i] = '-';
		if (s->arg)
			snprintf(flag + n, sizeof(flag) - n, " %s", s->arg);
		printf("  %-*s", HELP_COL - 1, flag);
		/* A flag too long for its column gets a line of its own. */
		if (strlen(flag) >= HELP_COL - 1)
			printf("\n%*s", HELP_COL + 1, "");
		for (h = s->help; *h;) {
			int len = (int)strcspn(h, "\n");

			printf("%*s%.*s\n", h == s->help ? 0 : HELP_COL + 1, "",
			       len, h);
			h += len + (h[len] == '\n');
		}
	}
	fputs("  --config FILE       INI file holding any of these settings:",
	      stdout);
	col = 80;
	for (s = config_settings; s->name && !s->section; s++) {
		if (col + (int)strlen(s->name) + 2 > 78)
			col = printf("\n%*s", HELP_COL, "") - 1;
		col += printf(" %s%s", s->name,
			      s[1].name && !s[1].section ? "," : "\n");
	}
	fputs("                      and in its [audit] section:", stdout);
	col = 80;
	for (; s->name; s++) {
		if (col + (int)strlen(s->name) + 2 > 78)
			col = printf("\n%*s", HELP_COL, "") - 1;
		col += printf(" %s%s", s->name, s[1].name ? "," : "\n");
	}
	fputs("  -h, --help          this text\n"
	      "  --version           the version\n"
	      "\n"
	      "Unmount with: fusermount3 -u MOUNTPOINT (or SIGTERM to the "
	      "daemon).\n", stdout);
}

static int say(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int say(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("phifs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

struct args {
	struct config cfg;
	const char *backing;
	const char *mountpoint;
	const char *config_path;	/* the last --config, or NULL */
	struct config file_cfg;		/* what it said at start */
	struct policy *policy;		/* --policy, compiled; or NULL */
	char *policy_path;		/* its absolute path, for reloads */
};

/* getopt's values: main's own options, then one per setting. */
enum { OPT_CONFIG = 256, OPT_HELP, OPT_VERSION, OPT_SETTING };
#define MAX_OPTS 32

/*
 * getopt's long options and short option string, derived from the settings
 * table, so that a setting is named in one place only.
 */
static void derive_options(struct option *lo, char *so)
{
	static char names[MAX_OPTS][32];
	const struct config_setting *s;
	size_t n = 0;

	*so++ = ':';	/* ':' for a missing value, not '?' */
	*so++ = 'h';
	for (s = config_settings; s->name; s++) {
		bool arg = s->kind == CONFIG_STRING ||
			   s->kind == CONFIG_OPTIONS ||
			   s->kind == CONFIG_SECONDS;

		if (s->short_opt) {
			*so++ = s->short_opt;
			if (arg)
				*so++ = ':';
		}
		if (!s->long_opt)
			continue;
		/* The table is ours: an overflow is a bug, not bad input. */
		if (n >= MAX_OPTS - 4 || strlen(s->name) >= sizeof(names[n]))
			abort();
		for (size_t i = 0; s->name[i]; i++)
			names[n][i] = s->name[i] == '_' ? '-' : s->name[i];
		lo[n].name = names[n];
		lo[n].has_arg = arg ? required_argument : no_argument;
		lo[n].flag = NULL;
		lo[n].val = OPT_SETTING + (int)(s - config_settings);
		n++;
	}
	*so = 0;
	lo[n++] = (struct option){ "config", required_argument, NULL,
				   OPT_CONFIG };
	lo[n++] = (struct option){ "help", no_argument, NULL, OPT_HELP };
	lo[n++] = (struct option){ "version", no_argument, NULL, OPT_VERSION };
	lo[n] = (struct option){ NULL, 0, NULL, 0 };
}

/* The setting getopt's answer c stands for, or NULL. */
static const struct config_setting *setting_of(int c)
{
	const struct config_setting *s;

	if (c >= OPT_SETTING)
		return &config_settings[c - OPT_SETTING];
	for (s = config_settings; s->name; s++)
		if (s->short_opt && s->short_opt == c)
			return s;
	return NULL;
}

/* libfuse's log while options are tried: their errors are ours to say. */
static void quiet_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
}

/*
 * Tries each FUSE option in a->cfg.options on a throw-away session, so that
 * one FUSE does not know is bad usage, said before any key is loaded, and
 * named by itself.  Never mounts.
 */
static int check_fuse_options(const struct args *a)
{
	static const struct fuse_lowlevel_ops none;
	const char *o = a->cfg.options;
	int rc = 0;

	while (!rc && o && *o) {
		size_t len = strcspn(o, ",");
		char *one = strndup(o, len);
		char *argv[] = { "phifs", "-o", one, NULL };
		struct fuse_args fa = FUSE_ARGS_INIT(3, argv);
		struct fuse_session *se;

		if (!one)
			return say(EXIT_FAILURE, "out of memory");
		fuse_set_log_func(quiet_log);
		se = fuse_session_new(&fa, &none, sizeof(none), NULL);
		fuse_set_log_func(NULL);
		if (se)
			fuse_session_destroy(se);
		else
			rc = say(EXIT_USAGE, "mount option '%s': unknown to "
				 "FUSE or refused", one);
		fuse_opt_free_args(&fa);
		free(one);
		o += len + (o[len] == ',');
	}
	return rc;
}

/*
 * Overwrites, in place in argv, the key source that arg (getopt's optarg
 * for setting s) carries, once config_set has copied it: /proc/PID/cmdline
 * shows argv's own memory to every user for as long as the daemon runs, and
 * a cmd: helper's arguments may hold a token.  Keeps the length (stars),
 * which tells little, so that the other arguments stay where they were.
 */
static void hide_key(const struct config_setting *s, char *arg)
{
	if (!arg)
		return;
	if (!strcmp(s->name, "key")) {
		memset(arg, '*', strlen(arg));
		return;
	}
	if (s->kind != CONFIG_OPTIONS)
		return;
	/* The -o words named key (config.c's set_option splits the same). */
	while (*arg) {
		size_t len = strcspn(arg, ",");

		if (len > 4 && !strncmp(arg, "key=", 4))
			memset(arg + 4, '*', len - 4);
		arg += len + (arg[len] == ',');
	}
}

/*
 * Reads and compiles --policy before the fork: a mistake in it is bad
 * usage, said on the terminal, and nothing is mounted.
 */
static int load_policy(struct args *a)
{
	char err[POLICY_ERR_LEN], *text = NULL;
	size_t len = 0;
	int rc;

	rc = ini_read_file(a->cfg.policy, POLICY_MAX_FILE, "policy file",
			   &text, &len, err, sizeof(err));
	if (!rc)
		rc = policy_parse(a->cfg.policy, text, len, &sysnames_resolver,
				  &a->policy, err, sizeof(err));
	free(text);
	if (rc)
		return say(rc == -ENOMEM ? EXIT_FAILURE : EXIT_USAGE, "%s",
			   err);
	/* Reloads read it again after the daemon left its working folder. */
	a->policy_path = realpath(a->cfg.policy, NULL);
	if (!a->policy_path)
		return say(EXIT_FAILURE, "%s: %s", a->cfg.policy,
			   strerror(errno));
	return 0;
}

/* Command line over config file: the file is read first, then argv. */
/* Loads every --config FILE first, so that options given beside it win. */
static int load_configs(int argc, char **argv, struct args *a)
{
	char err[512];
	int rc;

	for (int i = 1; i < argc - 1; i++) {
		const char *path = NULL;

		if (!strcmp(argv[i], "--config"))
			path = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			path = argv[i] + 9;
		rc = path ? config_load(path, &a->cfg, err, sizeof(err)) : 0;
		if (!rc && path) {
			/* Kept to tell what a reload would change. */
			config_release(&a->file_cfg);
			a->config_path = path;
			rc = config_load(path, &a->file_cfg, err,
					 sizeof(err));
		}
		if (rc)
			return say(rc == -ENOMEM ? EXIT_FAILURE : EXIT_USAGE,
				   "%s", err);
	}
	return 0;
}

/* One getopt result that is not a setting; 0 if c is a setting's. */
static int other_option(int c, char **argv)
{
	switch (c) {
	case 'h':
	case OPT_HELP:
		usage();
		return -1;
	case OPT_VERSION:
		puts("phifs " PHIFS_VERSION);
		return -1;
	case ':':
		return say(EXIT_USAGE, "option %s needs a value (see "
			   "phifs --help)", argv[optind - 1]);
	case '?':
		if (optopt)
			return say(EXIT_USAGE, "unknown option '-%c' "
				   "(see phifs --help)", optopt);
		return say(EXIT_USAGE, "unknown option '%s' (see "
			   "phifs --help)", argv[optind - 1]);
	}
	return 0;
}

/* The options given on the command line, over the config files'. */
static int parse_options(int argc, char **argv, struct args *a)
{
	struct option opts[MAX_OPTS];
	char shortopts[2 * MAX_OPTS + 1];
	char err[512];
	const struct config_setting *s;
	int c, rc;

	derive_options(opts, shortopts);
	opterr = 0;	/* one line, ours, rather than getopt's and ours */
	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if (c == OPT_CONFIG)
			continue;
		rc = other_option(c, argv);
		if (rc)
			return rc;
		s = setting_of(c);
		if (!s)
			return say(EXIT_USAGE, "bad option (see phifs --help)");
		rc = config_set(&a->cfg, s->name, optarg, err, sizeof(err));
		hide_key(s, optarg);
		if (rc)
			return say(rc == -ENOMEM ? EXIT_FAILURE : EXIT_USAGE,
				   "%s", err);
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	int rc = load_configs(argc, argv, a);

	if (!rc)
		rc = parse_options(argc, argv, a);
	if (rc)
		return rc;
	if (argc - optind != 2)
		return say(EXIT_USAGE, "expected BACKING and MOUNTPOINT "
			   "(see phifs --help)");
	a->backing = argv[optind];
	a->mountpoint = argv[optind + 1];
	if (!a->cfg.key)
		return say(EXIT_USAGE, "--key SRC is required (see phifs --help)");
	if (a->cfg.no_audit && a->cfg.audit_dir)
		return say(EXIT_USAGE, "audit-dir %s and no-audit: give one or "
			   "the other", a->cfg.audit_dir);
	rc = check_fuse_options(a);
	if (!rc && a->cfg.policy)
		rc = load_policy(a);
	return rc;
}

/*
 * Forks; the parent waits for the child's word that the mount is ready and
 * exits with it.  Returns in the child only, with the pipe's write end.
 */
static int fork_and_wait(void)
{
	int p[2], status;
	char ok;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		exit(say(EXIT_FAILURE, "pipe: %s", strerror(errno)));
	pid = fork();
	if (pid < 0)
		exit(say(EXIT_FAILURE, "fork: %s", strerror(errno)));
	if (pid == 0) {
		close(p[0]);
		return p[1];
	}
	close(p[1]);
	if (read(p[0], &ok, 1) == 1)
		exit(EXIT_SUCCESS);
	/* The child failed and said why on our shared stderr. */
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		exit(EXIT_FAILURE);
	exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : EXIT_FAILURE);
}

/* Tells the parent the mount is up and leaves the terminal. */
static void detach(int ready_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	(void)!write(ready_fd, "1", 1);
	close(ready_fd);
	setsid();
	if (chdir("/")) {
		/* "/" always exists; nothing to do if it does not. */
	}
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
}

/*
 * The daemon holds an O_PATH handle for every inode the kernel remembers,
 * and the kernel remembers a whole untarred source tree: raise the open-file
 * limit as far as allowed (as root, to the system's nr_open).
 */
static void raise_fd_limit(void)
{
	struct rlimit lim;
	FILE *f;
	unsigned long max = 0;

	if (getrlimit(RLIMIT_NOFILE, &lim))
		return;
	f = fopen("/proc/sys/fs/nr_open", "re");
	if (f) {
		if (fscanf(f, "%lu", &max) != 1)
			max = 0;
		fclose(f);
	}
	if (max > lim.rlim_max) {
		struct rlimit up = { max, max };

		if (!setrlimit(RLIMIT_NOFILE, &up))
			return;
	}
	lim.rlim_cur = lim.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &lim);
}

#define MAX_WORKERS 16

/*
 * --no-poll: libfuse's own loop, where every idle worker sleeps in read()
 * on the device.  A signal's number (what it returns after SIGTERM) is a
 * clean stop; only a negative errno is a failure.
 */
static int libfuse_loop(struct fuse_session *se)
{
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	int rc;

	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(lc, MAX_WORKERS);
	rc = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return rc;
}

/*
 * What serve() holds, from the volume to the mount; serve_end() lets go of
 * it in the reverse order.  fargv stays beside fa, which points into it.
 */
struct serving {
	struct volume *vol;
	struct fs *fs;
	struct access *access;		/* the policy's hook, or NULL */
	struct audit_writer *aw;	/* the integrity log, or NULL */
	struct audit_hook *ah;		/* its hook, with the policy's */
	struct crypto_key *path_key;	/* paths = pseudonymous */
	char audit_dir[PATH_MAX];	/* absolute */
	char *opts;
	char *fargv[4];
	struct fuse_args fa;
	int fargs;		/* fa is set up */
	struct fuse_session *se;
	int mounted;
	struct ctl *ctl;
	struct rotate *rot;		/* key-rotate's */
	const struct args *a;
	struct loop_stats loop;
	struct timespec started;	/* CLOCK_MONOTONIC */
	pthread_t main_thread;		/* runs the request loop */
	char backing[PATH_MAX];		/* absolute, for the status: */
	char mountpoint[PATH_MAX];	/* the daemon leaves its cwd */
	pthread_mutex_t wake_lock;	/* protects looping */
	/*
	 * The request loop: LOOP_BEFORE it starts, LOOP_RUNNING, LOOP_DONE.
	 * A stop signals the main thread only while RUNNING: before, the
	 * loop sees the session's exit flag as it starts; after, a signal
	 * could only interrupt the unmount.
	 */
	enum { LOOP_BEFORE, LOOP_RUNNING, LOOP_DONE } looping;
	uint64_t wd_replies;	/* the control thread's: at the last ping */
};

/*
 * Sets up the file system over s->vol and a FUSE session for it, with the
 * mount options phifs always gives.  An exit status, with its line said.
 */
static int serve_session(const struct args *a, struct serving *s)
{
	size_t olen;
	int rc;

	rc = fs_new(s->vol, &s->fs);
	if (rc < 0)
		return say(EXIT_FAILURE,
			   "%s: cannot set up the file system: %s",
			   a->backing, strerror(-rc));
	olen = strlen(a->backing) + 128 + (a->cfg.options ?
					   strlen(a->cfg.options) : 0);
	s->opts = malloc(olen);
	if (!s->opts)
		return EXIT_FAILURE;
	/* The kernel checks Unix permissions on the attributes we report. */
	snprintf(s->opts, olen,
		 "default_permissions,fsname=%s,subtype=phifs%s%s",
		 a->backing, a->cfg.options ? "," : "",
		 a->cfg.options ? a->cfg.options : "");
	s->fargv[0] = "phifs";
	s->fargv[1] = "-o";
	s->fargv[2] = s->opts;
	s->fargv[3] = NULL;
	s->fa = (struct fuse_args)FUSE_ARGS_INIT(3, s->fargv);
	s->fargs = 1;
	s->se = fuse_session_new(&s->fa, fs_operations(!a->cfg.no_xattr),
				 sizeof(struct fuse_lowlevel_ops), s->fs);
	if (!s->se)
		return say(EXIT_FAILURE, "mount options '%s' refused",
			   s->opts);
	fs_set_session(s->fs, s->se);
	(void)fs_set_mountpoint(s->fs, s->mountpoint);	/* only for tuning */
	return EXIT_SUCCESS;
}

/* --- the control plane's side (ctl_ops) --- */

/* The last key rotation, for the status; nothing when none ran. */
static void status_rotation(struct serving *s, struct ctl_rotation *out)
{
	struct rotate_status *rs = malloc(sizeof(*rs));
	const struct volkeys_progress *p;

	if (!rs || !s->rot) {
		free(rs);
		return;
	}
	rotate_get(s->rot, rs);
	p = &rs->p;
	if (rs->state != ROTATE_NONE) {
		snprintf(out->state, sizeof(out->state), "%s",
			 rotate_state_name(rs->state));
		snprintf(out->phase, sizeof(out->phase), "%s",
			 p->phase == VOLKEYS_RETIRING ? "retire" : "rewrap");
		out->id = rs->id;
		out->keep_old = rs->keep_old;
		out->resumed = p->resumed;
		out->target = p->target;
		out->total = p->estimate;
		out->done = p->done;
		out->skipped = p->skipped;
		out->failed = p->failed;
		out->seconds = rs->seconds;
		snprintf(out->first_failed, sizeof(out->first_failed), "%s",
			 p->failed ? p->first_bad : "");
		snprintf(out->first_error, sizeof(out->first_error), "%s",
			 p->failed ? strerror(-p->first_err) : "");
		out->nretired = (unsigned)p->nretired;
		memcpy(out->retired, p->retired, sizeof(out->retired));
		snprintf(out->error, sizeof(out->error), "%s", rs->error);
	}
	free(rs);
}

static void status_audit(struct serving *s, struct ctl_audit *out)
{
	struct audit_writer_stats ws;

	if (!s->aw)
		return;
	audit_writer_stats(s->aw, &ws);
	out->on = true;
	snprintf(out->dir, sizeof(out->dir), "%s", s->audit_dir);
	out->queued = ws.queued;
	out->written = ws.written;
	out->synced = ws.synced;
	out->lag_ms = ws.lag_ms;
	out->checkpoint_seq = ws.checkpoint_seq;
	out->checkpoint_ts = ws.checkpoint_ts;
	out->failures = ws.failures;
	out->refused = ws.refused;
	out->dropped = ws.dropped;
	out->failing = ws.failing;
}

static void ctl_status(void *arg, struct ctl_status *st)
{
	struct serving *s = arg;
	struct keys_version_info vi[CTL_MAX_VERSIONS];
	const uint8_t *id = keys_volume_id(s->vol->keys);
	struct timespec now;
	size_t n;

	st->pid = (long)getpid();
	clock_gettime(CLOCK_MONOTONIC, &now);
	st->uptime_s = (uint64_t)(now.tv_sec - s->started.tv_sec);
	for (int i = 0; i < 16; i++)
		snprintf(st->volume + 2 * i, 3, "%02x", id[i]);
	snprintf(st->backing, sizeof(st->backing), "%s", s->backing);
	snprintf(st->mountpoint, sizeof(st->mountpoint), "%s",
		 s->mountpoint);
	n = keys_versions(s->vol->keys, vi, CTL_MAX_VERSIONS);
	for (size_t i = 0; i < n && i < CTL_MAX_VERSIONS; i++) {
		if (vi[i].state == KEYS_RETIRED)
			continue;	/* not in use: destroyed */
		st->versions[st->nversions].version = vi[i].version;
		st->versions[st->nversions++].state =
			keys_state_name(vi[i].state);
	}
	vfs_stats(fs_vfs(s->fs), &st->vfs);
	st->loop = s->a->cfg.no_poll ? "libfuse" : "poll";
	st->loop_max_threads = MAX_WORKERS;
	st->loop_threads = atomic_load_explicit(&s->loop.threads,
						memory_order_relaxed);
	st->loop_requests = atomic_load_explicit(&s->loop.requests,
						 memory_order_relaxed);
	status_rotation(s, &st->rotation);
	status_audit(s, &st->audit);
}

/*
 * For systemd's watchdog: the request loop still runs and, if a request is
 * in flight, some request finished since the last ask (half a watchdog
 * period ago).  libfuse's loop counts nothing: there, only that it runs.
 */
static bool ctl_serving(void *arg)
{
	struct serving *s = arg;
	uint64_t taken, done;
	bool done_loop;

	pthread_mutex_lock(&s->wake_lock);
	done_loop = s->looping == LOOP_DONE;
	pthread_mutex_unlock(&s->wake_lock);
	if (done_loop)
		return false;
	if (s->a->cfg.no_poll)
		return true;
	taken = atomic_load_explicit(&s->loop.requests, memory_order_relaxed);
	done = atomic_load_explicit(&s->loop.replies, memory_order_relaxed);
	if (taken > done && done == s->wd_replies)
		return false;	/* wedged: not one reply in half a period */
	s->wd_replies = done;
	return true;
}

/* How long a flush waits for the log's records to be durable. */
#define AUDIT_FLUSH_MS 5000

static int ctl_flush(void *arg)
{
	struct serving *s = arg;
	int rc = vfs_flush(fs_vfs(s->fs)), e;

	if (s->aw && (e = audit_writer_flush(s->aw, AUDIT_FLUSH_MS))) {
		log_msg(LOG_KIND_IO, LOG_ERR, "integrity log: flush: %s",
			strerror(-e));
		rc = rc ? rc : e;
	}
	return rc;
}

static int ctl_audit_anchor(void *arg, char *buf, size_t cap)
{
	struct serving *s = arg;
	size_t len;

	return s->aw ? audit_writer_anchor(s->aw, buf, cap, &len) : -ENOENT;
}

/* A record of the daemon's own; a failure is told, not fatal. */
static void audit_event(struct serving *s, enum audit_op op, int64_t result,
			uint32_t version)
{
	int rc;

	if (!s->ah)
		return;
	rc = audit_hook_event(s->ah, op, NULL, result, version);
	if (rc)
		log_msg(LOG_KIND_IO, LOG_ERR, "integrity log: %s record not "
			"kept: %s", audit_op_name(op), strerror(-rc));
}

static void rotated(void *arg, int rc, uint32_t version)
{
	audit_event(arg, AUDIT_KEY_ROTATE, rc, version);
}

/* Does setting t differ between x and y? */
static bool differs(const struct config_setting *t, const struct config *x,
		    const struct config *y)
{
	const char *px = (const char *)x + t->offset;
	const char *py = (const char *)y + t->offset;

	if (t->kind == CONFIG_STRING || t->kind == CONFIG_OPTIONS) {
		const char *sx = *(char *const *)px, *sy = *(char *const *)py;

		return (sx == NULL) != (sy == NULL) ||
		       (sx && strcmp(sx, sy));
	}
	if (t->kind == CONFIG_COUNT)
		return *(const uint64_t *)px != *(const uint64_t *)py;
	if (t->kind == CONFIG_SECONDS || t->kind == CONFIG_CHOICE)
		return *(const unsigned *)px != *(const unsigned *)py;
	return *(const bool *)px != *(const bool *)py;
}

/*
 * Reads, compiles and checks the policy file given at start, on the
 * control thread, and only then puts it in force; one that is not valid
 * leaves the policy in force as it was, and why (FILE:LINE: reason) is in
 * err.
 */
static int reload_policy(struct serving *s, char *err, size_t len)
{
	char why[POLICY_ERR_LEN], *text = NULL;
	struct policy *p = NULL;
	size_t n = 0;
	int rc;

	rc = ini_read_file(s->a->policy_path, POLICY_MAX_FILE, "policy file",
			   &text, &n, why, sizeof(why));
	if (!rc)
		rc = policy_parse(s->a->policy_path, text, n,
				  &sysnames_resolver, &p, why, sizeof(why));
	free(text);
	if (!rc)
		rc = access_swap(s->access, p);
	if (rc == -ENOMEM)
		snprintf(why, sizeof(why), "%s: %s", s->a->policy_path,
			 strerror(ENOMEM));
	if (rc) {
		policy_free(p);	/* NULL unless the swap failed */
		snprintf(err, len, "%s (the policy in force is unchanged)",
			 why);
	}
	return rc;
}

/* What ctl_reload says of the config file. */
static int reload_settings(struct serving *s, char *changed, size_t len)
{
	struct config now = { 0 };
	size_t at = 0;
	int rc;

	*changed = 0;
	if (!s->a->config_path)
		return 0;
	rc = config_load(s->a->config_path, &now, changed, len);
	if (rc)
		goto out;
	for (const struct config_setting *t = config_settings; t->name; t++)
		if (differs(t, &now, &s->a->file_cfg) && at < len)
			at += (size_t)snprintf(changed + at, len - at, "%s%s",
					       at ? "," : "", t->name);
out:
	config_release(&now);
	return rc;
}

/*
 * Re-reads the config file and names the settings it changed since the
 * mount; none of them is applied, for none can change under a mounted
 * volume.  Then re-reads the access policy, if the mount has one, and
 * puts it in force (not when the config file no longer parses).
 */
static int ctl_reload(void *arg, char *changed, size_t len, bool *policy)
{
	struct serving *s = arg;
	int rc;

	rc = reload_settings(s, changed, len);
	if (!rc && s->access) {
		rc = reload_policy(s, changed, len);
		*policy = !rc;
		audit_event(s, AUDIT_POLICY_RELOAD, rc, 0);
	}
	return rc;
}

/* SIGUSR2 only interrupts the request loop's wait (loop_run, libfuse). */
static void wake(int sig)
{
	(void)sig;
}

static void ctl_stop(void *arg)
{
	struct serving *s = arg;

	fuse_session_exit(s->se);
	pthread_mutex_lock(&s->wake_lock);
	if (s->looping == LOOP_RUNNING)
		pthread_kill(s->main_thread, SIGUSR2);
	pthread_mutex_unlock(&s->wake_lock);
}

static int ctl_key_rotate(void *arg, bool keep_old, unsigned *id, char *why,
			  size_t len)
{
	struct serving *s = arg;
	int rc = rotate_start(s->rot, keep_old, id);

	if (rc == -EBUSY)
		snprintf(why, len, "a key rotation is running already");
	else if (rc)
		snprintf(why, len, "key rotation: %s", strerror(-rc));
	else
		log_msg(LOG_KIND_LIFECYCLE, LOG_INFO, "key rotation %u "
			"started%s", *id, keep_old ? " (keep old)" : "");
	return rc;
}

static const struct ctl_ops control = {
	.audit_anchor = ctl_audit_anchor,
	.key_rotate = ctl_key_rotate,
	.status = ctl_status,
	.serving = ctl_serving,
	.flush = ctl_flush,
	.reload = ctl_reload,
	.stop = ctl_stop,
};

static void set_looping(struct serving *s, int state)
{
	pthread_mutex_lock(&s->wake_lock);
	s->looping = state;
	pthread_mutex_unlock(&s->wake_lock);
}

/* The control socket and thread, which from now on take the signals. */
static int serve_control(const struct args *a, struct serving *s)
{
	struct sigaction sa = { .sa_handler = wake };	/* no SA_RESTART */
	char path[PATH_MAX], cwd[PATH_MAX], err[512];
	int rc, n;

	/* Absolute: the socket is removed after the daemon left its cwd. */
	if (a->cfg.socket && a->cfg.socket[0] != '/' &&
	    !getcwd(cwd, sizeof(cwd)))
		return say(EXIT_FAILURE, "getcwd: %s", strerror(errno));
	if (a->cfg.socket && a->cfg.socket[0] == '/')
		n = snprintf(path, sizeof(path), "%s", a->cfg.socket);
	else if (a->cfg.socket)
		n = snprintf(path, sizeof(path), "%s/%s", cwd, a->cfg.socket);
	else
		n = snprintf(path, sizeof(path), "%s/.phifs/%s", s->backing,
			     CTL_SOCKET_NAME);
	if (n >= (int)sizeof(path))
		return say(EXIT_FAILURE, "control socket: path too long");
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL))
		return say(EXIT_FAILURE, "sigaction: %s", strerror(errno));
	s->main_thread = pthread_self();
	rc = rotate_new(s->vol, fs_vfs(s->fs), &s->rot);
	if (rc)
		return say(EXIT_FAILURE, "%s", strerror(-rc));
	rotate_on_done(s->rot, rotated, s);
	rc = ctl_new(path, &control, s, &s->ctl, err, sizeof(err));
	if (rc)
		return say(EXIT_FAILURE, "%s", err);
	return EXIT_SUCCESS;
}

/*
 * Mounts s->se, tells the waiting parent (ready_fd) that the mount is
 * ready, and serves requests until the control thread stops them (a
 * signal, the unmount command) or the mount goes away.  An exit status.
 */
static int serve_mounted(const struct args *a, struct serving *s,
			 int ready_fd)
{
	int rc;

	/*
	 * The absolute path: libfuse unmounts by the name it mounted, and the
	 * daemon has left its working folder by then (detach).
	 */
	if (fuse_session_mount(s->se, s->mountpoint))
		return say(EXIT_FAILURE, "cannot mount %s on %s", a->backing,
			   a->mountpoint);
	s->mounted = 1;
	/* No operation is served unrecorded: a log that cannot say so much
	 * ends the mount. */
	if (s->ah && audit_hook_event(s->ah, AUDIT_MOUNT, NULL, 0, 0))
		return say(EXIT_FAILURE, "%s: the integrity log cannot keep "
			   "records", s->audit_dir);
	if (ready_fd >= 0) {
		detach(ready_fd);
		log_detached();
	}
	log_msg(LOG_KIND_LIFECYCLE, LOG_INFO,
		"mounted %s on %s, pid %ld, loop: %s", a->backing,
		a->mountpoint, (long)getpid(),
		a->cfg.no_poll ? "libfuse" : "poll");
	/* Under systemd (Type=notify): usable from here, as for the parent. */
	{
		char state[2 * PATH_MAX + 64];

		snprintf(state, sizeof(state),
			 "READY=1\nMAINPID=%ld\nSTATUS=Serving %s on %s",
			 (long)getpid(), s->backing, s->mountpoint);
		(void)ctl_notify(s->ctl, state);
	}
	set_looping(s, LOOP_RUNNING);
	if (a->cfg.no_poll)
		rc = libfuse_loop(s->se);
	else
		rc = loop_run(s->se, MAX_WORKERS, &s->loop);
	set_looping(s, LOOP_DONE);
	if (rc < 0)
		log_msg(LOG_KIND_LIFECYCLE, LOG_ERR, "request loop failed: %s",
			strerror(-rc));
	return rc < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* The unmount's record, then the log sealed; no request runs now. */
static void serve_audit_end(struct serving *s, int rc)
{
	if (!s->aw)
		return;
	if (s->mounted)
		audit_event(s, AUDIT_UNMOUNT, rc ? -EIO : 0, 0);
	rc = audit_writer_close(s->aw);
	s->aw = NULL;
	if (rc)
		log_msg(LOG_KIND_IO, LOG_ERR, "integrity log %s: not sealed: "
			"%s", s->audit_dir, strerror(-rc));
}

/* Unmounts and lets go of all s holds; rc is serve()'s exit status. */
static void serve_end(const struct args *a, struct serving *s, int rc)
{
	/* A rotation stops at its next file; its marker lets the next one
	 * finish the job. */
	if (s->rot)
		rotate_stop(s->rot);
	if (s->mounted)
		fuse_session_unmount(s->se);
	if (s->se)
		fuse_session_destroy(s->se);	/* runs fs destroy: commits */
	/* After the commits, so that the line means the data is home. */
	if (s->mounted)
		log_msg(LOG_KIND_LIFECYCLE, rc ? LOG_ERR : LOG_INFO,
			"unmounted %s from %s, exit status %d", a->backing,
			a->mountpoint, rc);
	/* Before the core goes: the status reads it until here. */
	ctl_free(s->ctl);
	rotate_free(s->rot);	/* the status read it until here */
	serve_audit_end(s, rc);
	if (s->fargs)
		fuse_opt_free_args(&s->fa);
	fs_free(s->fs);
	access_free(s->access);		/* no request runs after fs_free */
	audit_hook_free(s->ah);
	crypto_key_free(s->path_key);
	volume_close(s->vol);
	free(s->opts);
}

/* The policy becomes the core's allow hook, before any request. */
static int serve_policy(struct args *a, struct serving *s)
{
	int rc = access_new(fs_vfs(s->fs), a->policy, &s->access);

	if (rc)
		return say(EXIT_FAILURE, "%s: %s", a->cfg.policy,
			   strerror(-rc));
	a->policy = NULL;	/* transferred */
	vfs_set_hooks(fs_vfs(s->fs), &access_hooks, s->access);
	/*
	 * The kernel answers a lookup or stat from its caches without asking,
	 * whoever asks: only with no caching is each one judged.
	 */
	fs_set_cache(s->fs, a->cfg.policy_cache);
	return EXIT_SUCCESS;
}

static int audit_put(void *arg, const struct audit_record *r)
{
	return audit_writer_put(((struct serving *)arg)->aw, r);
}

/* Whether operations must wait for the log: only under on_failure =
 * deny; under allow they go on, and what is lost is counted. */
static int audit_ready(void *arg)
{
	const struct serving *s = arg;

	return s->a->cfg.audit_on_failure == 0 ? audit_writer_ready(s->aw) : 0;
}

/* Where the log goes: --audit-dir, absolute, or BACKING/.phifs/audit. */
static int audit_dir_of(const struct args *a, struct serving *s)
{
	char cwd[PATH_MAX];
	const char *d = a->cfg.audit_dir;
	int n;

	if (!d)
		n = snprintf(s->audit_dir, sizeof(s->audit_dir),
			     "%s/.phifs/audit", s->backing);
	else if (d[0] == '/')
		n = snprintf(s->audit_dir, sizeof(s->audit_dir), "%s", d);
	else if (getcwd(cwd, sizeof(cwd)))
		n = snprintf(s->audit_dir, sizeof(s->audit_dir), "%s/%s",
			     cwd, d);
	else
		return say(EXIT_FAILURE, "getcwd: %s", strerror(errno));
	if (n >= (int)sizeof(s->audit_dir))
		return say(EXIT_FAILURE, "audit-dir: path too long");
	return EXIT_SUCCESS;
}

static const enum audit_sync syncs[] = {
	AUDIT_SYNC_BATCH, AUDIT_SYNC_ALWAYS, AUDIT_SYNC_NONE,
};

/*
 * Opens the integrity log and makes it, with the policy if there is one,
 * the core's hooks, before any request.  Every read goes through the
 * daemon under reads = strict.
 */
static int serve_audit(const struct args *a, struct serving *s)
{
	const struct config *c = &a->cfg;
	struct audit_writer_conf wc = {
		.dir = s->audit_dir,
		.sync = syncs[c->audit_sync],
		.deny_on_failure = c->audit_on_failure == 0,
		.segment_bytes = c->audit_segment_size,
		.segment_ms = (uint64_t)c->audit_segment_age * 1000,
		.checkpoint_records = c->audit_checkpoint_records,
		.checkpoint_ms = c->audit_checkpoint_ms,
		.key = keys_audit_key(s->vol->keys),
	};
	struct audit_writer_opened op;
	struct audit_sink sink = { audit_put, audit_ready, NULL };
	int rc;

	if (c->no_audit)
		return EXIT_SUCCESS;
	rc = audit_dir_of(a, s);
	if (rc)
		return rc;
	rc = audit_writer_open(&wc, &s->aw, &op);
	if (rc == -EKEYREJECTED)
		return say(EXIT_FAILURE, "%s: its audit.pub is another "
			   "volume's key", s->audit_dir);
	if (rc)
		return say(EXIT_FAILURE, "integrity log %s: %s", s->audit_dir,
			   strerror(-rc));
	if (op.recovered)
		log_msg(LOG_KIND_LIFECYCLE, LOG_WARNING, "integrity log %s: "
			"the last mount did not end sealed; recovered after "
			"record %llu (%llu torn bytes cut)", s->audit_dir,
			(unsigned long long)op.last_seq,
			(unsigned long long)op.cut_bytes);
	sink.arg = s;
	if (audit_hook_new(fs_vfs(s->fs), s->access, &sink, &s->ah))
		return say(EXIT_FAILURE, "%s", strerror(ENOMEM));
	if (c->audit_paths) {
		rc = keys_volume_key(s->vol->keys, AUDIT_PATH_KEY_PURPOSE,
				     &s->path_key);
		if (rc)
			return say(EXIT_FAILURE, "integrity log: the key of "
				   "pseudonymous paths: %s", strerror(-rc));
		audit_hook_pseudonymous(s->ah, s->path_key);
	}
	vfs_set_hooks(fs_vfs(s->fs), &audit_hook_hooks, s->ah);
	fs_set_direct_io(s->fs, c->audit_reads == 1);
	return EXIT_SUCCESS;
}

static int serve(struct args *a, int ready_fd)
{
	struct serving s = { .a = a };
	char err[512];
	int rc;

	pthread_mutex_init(&s.wake_lock, NULL);
	clock_gettime(CLOCK_MONOTONIC, &s.started);
	if (!realpath(a->backing, s.backing))
		snprintf(s.backing, sizeof(s.backing), "%s", a->backing);
	if (!realpath(a->mountpoint, s.mountpoint))
		snprintf(s.mountpoint, sizeof(s.mountpoint), "%s",
			 a->mountpoint);

	if (mountcheck(a->mountpoint, a->backing, a->cfg.nonempty, err,
		       sizeof(err)))
		return say(EXIT_FAILURE, "%s", err);
	raise_fd_limit();
	keys_source_set_timeout((int)a->cfg.key_timeout * 1000);
	if (volume_open(a->backing, a->cfg.key, true, &s.vol, err,
			sizeof(err)))
		return say(EXIT_FAILURE, "%s", err);
	if (volume_check_files(s.vol, err, sizeof(err))) {
		volume_close(s.vol);
		return say(EXIT_FAILURE, "%s: %s", a->backing, err);
	}
	rc = serve_session(a, &s);
	if (rc == EXIT_SUCCESS && a->policy)
		rc = serve_policy(a, &s);
	if (rc == EXIT_SUCCESS)
		rc = serve_audit(a, &s);
	if (rc == EXIT_SUCCESS)
		rc = serve_control(a, &s);
	if (rc == EXIT_SUCCESS)
		rc = serve_mounted(a, &s, ready_fd);
	serve_end(a, &s, rc);
	return rc;
}

/* secmem's hook: once, whichever thread met the limit first. */
static void warn_unlocked(void)
{
	log_msg(LOG_KIND_KEY, LOG_WARNING,
		"a key could not be locked in memory (RLIMIT_MEMLOCK too low "
		"and no CAP_IPC_LOCK): it may be swapped out, though never "
		"dumped");
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	int rc, ready_fd = -1;

	rc = parse_args(argc, argv, &a);
	if (rc) {
		policy_free(a.policy);
		free(a.policy_path);
		config_release(&a.cfg);
		config_release(&a.file_cfg);
		return rc < 0 ? 0 : rc;
	}
	if (!a.cfg.foreground)
		ready_fd = fork_and_wait();
	/* Before any thread: the control thread alone takes them, later. */
	ctl_block_signals();
	/* In the child: the parent exits without a word to the log. */
	log_open(true);
	secmem_on_lock_failure(warn_unlocked);
	umask(0);	/* the kernel already applied the caller's umask */
	rc = secmem_harden_process();
	if (rc) {
		say(EXIT_FAILURE, "cannot disable core dumps: %s",
		    strerror(-rc));
		log_close();
		return EXIT_FAILURE;
	}
	rc = serve(&a, ready_fd);
	policy_free(a.policy);
	free(a.policy_path);
	config_release(&a.cfg);
	config_release(&a.file_cfg);
	log_close();
	return rc;
}
