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
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "phifs/config.h"
#include "phifs/fs.h"
#include "phifs/loop.h"
#include "phifs/secmem.h"
#include "phifs/volume.h"

#define EXIT_USAGE 2

static const char usage_text[] =
	"usage: phifs --key SRC [options] BACKING MOUNTPOINT\n"
	"\n"
	"Mounts the phifs volume in BACKING (made by phifsctl init) at MOUNTPOINT.\n"
	"\n"
	"  --key SRC           file:PATH, cmd:COMMAND or passphrase\n"
	"  -f                  stay in the foreground (default: daemonize once\n"
	"                      the mount is ready)\n"
	"  --config FILE       INI file holding any of these settings\n"
	"                      (key, foreground, options, policy, audit_dir, socket,\n"
	"                      poll)\n"
	"  --policy FILE       access policy (not in this build yet)\n"
	"  --audit-dir DIR     integrity log folder (not in this build yet)\n"
	"  --socket PATH       control socket (accepted; not served yet)\n"
	"  -o OPT[,OPT...]     FUSE mount options, e.g. allow_other\n"
	"  --no-poll           idle workers sleep at once (default: poll for the\n"
	"                      next request for up to 64 us: faster, more CPU);\n"
	"                      config: poll = no; fstab: -o no_poll\n"
	"  -h, --help          this text\n"
	"  --version           the version\n"
	"\n"
	"Unmount with: fusermount3 -u MOUNTPOINT (or SIGTERM to the daemon).\n";

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
};

static int set_arg(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

static int append_opt(struct config *c, const char *o, size_t len)
{
	size_t a = c->options ? strlen(c->options) : 0;
	char *s = realloc(c->options, a + len + 2);

	if (!s)
		return -ENOMEM;
	if (a)
		s[a++] = ',';
	memcpy(s + a, o, len);
	s[a + len] = 0;
	c->options = s;
	return 0;
}

/*
 * -o OPT[,OPT]: phifs's own settings may come this way too, as mount(8)
 * passes an fstab line's options (key=file:...); the rest go to FUSE.
 */
static int add_opts(struct config *c, const char *list)
{
	static const struct {
		const char *name;
		size_t off;
	} own[] = {
		{ "key=", offsetof(struct config, key) },
		{ "policy=", offsetof(struct config, policy) },
		{ "audit_dir=", offsetof(struct config, audit_dir) },
		{ "socket=", offsetof(struct config, socket) },
	};
	int rc = 0;

	while (!rc && *list) {
		size_t len = strcspn(list, ",");
		size_t i = 0;

		while (i < sizeof(own) / sizeof(own[0]) &&
		       strncmp(list, own[i].name, strlen(own[i].name)))
			i++;
		if (i < sizeof(own) / sizeof(own[0])) {
			char v[4096];
			size_t n = len - strlen(own[i].name);

			if (n >= sizeof(v))
				return -ENAMETOOLONG;
			memcpy(v, list + strlen(own[i].name), n);
			v[n] = 0;
			rc = set_arg((char **)((char *)c + own[i].off), v);
		} else if (len == 7 && !strncmp(list, "no_poll", 7)) {
			c->no_poll = true;
		} else if (len) {
			rc = append_opt(c, list, len);
		}
		list += len + (list[len] == ',');
	}
	return rc;
}

/* Command line over config file: the file is read first, then argv. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "config", required_argument, NULL, 'c' },
		{ "policy", required_argument, NULL, 'p' },
		{ "audit-dir", required_argument, NULL, 'a' },
		{ "socket", required_argument, NULL, 's' },
		{ "no-poll", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char err[512];
	int c, rc = 0;

	/* The config file first, so that options given here win. */
	for (int i = 1; i < argc - 1; i++) {
		if (!strcmp(argv[i], "--config") &&
		    config_load(argv[i + 1], &a->cfg, err, sizeof(err)))
			return say(EXIT_USAGE, "%s", err);
		if (!strncmp(argv[i], "--config=", 9) &&
		    config_load(argv[i] + 9, &a->cfg, err, sizeof(err)))
			return say(EXIT_USAGE, "%s", err);
	}
	while (!rc && (c = getopt_long(argc, argv, "fo:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': rc = set_arg(&a->cfg.key, optarg); break;
		case 'c': break;
		case 'p': rc = set_arg(&a->cfg.policy, optarg); break;
		case 'a': rc = set_arg(&a->cfg.audit_dir, optarg); break;
		case 's': rc = set_arg(&a->cfg.socket, optarg); break;
		case 'f': a->cfg.foreground = true; break;
		case 'n': a->cfg.no_poll = true; break;
		case 'o': rc = add_opts(&a->cfg, optarg); break;
		case 'h': fputs(usage_text, stdout); return -1;
		case 'V': puts("phifs " PHIFS_VERSION); return -1;
		default: return say(EXIT_USAGE, "bad option (see phifs --help)");
		}
	}
	if (rc)
		return say(EXIT_FAILURE, "%s", strerror(-rc));
	if (argc - optind != 2)
		return say(EXIT_USAGE, "expected BACKING and MOUNTPOINT "
			   "(see phifs --help)");
	a->backing = argv[optind];
	a->mountpoint = argv[optind + 1];
	if (!a->cfg.key)
		return say(EXIT_USAGE, "--key SRC is required (see phifs --help)");
	/* Refuse, never ignore, a security setting this build cannot honour. */
	if (a->cfg.policy)
		return say(EXIT_USAGE, "policy %s: access policies are not in "
			   "this build yet", a->cfg.policy);
	if (a->cfg.audit_dir)
		return say(EXIT_USAGE, "audit-dir %s: the integrity log is not "
			   "in this build yet", a->cfg.audit_dir);
	return 0;
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

static int check_mountpoint(const char *mp)
{
	struct stat st;

	if (stat(mp, &st))
		return say(EXIT_FAILURE, "mountpoint %s: %s", mp,
			   strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return say(EXIT_FAILURE, "mountpoint %s: not a directory", mp);
	return 0;
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

static int serve(struct args *a, int ready_fd)
{
	char err[512], *fargv[4];
	struct fuse_args fa;
	struct volume *vol = NULL;
	struct fs *fs = NULL;
	struct fuse_session *se = NULL;
	size_t olen;
	char *opts = NULL;
	int rc = EXIT_FAILURE, mounted = 0, fargs = 0;

	if (check_mountpoint(a->mountpoint))
		return EXIT_FAILURE;
	raise_fd_limit();
	if (volume_open(a->backing, a->cfg.key, true, &vol, err, sizeof(err)))
		return say(EXIT_FAILURE, "%s", err);
	if (fs_new(vol, &fs)) {
		say(EXIT_FAILURE, "out of memory");
		goto out;
	}
	olen = strlen(a->backing) + 128 + (a->cfg.options ?
					   strlen(a->cfg.options) : 0);
	opts = malloc(olen);
	if (!opts)
		goto out;
	/* The kernel checks Unix permissions on the attributes we report. */
	snprintf(opts, olen, "default_permissions,fsname=%s,subtype=phifs%s%s",
		 a->backing, a->cfg.options ? "," : "",
		 a->cfg.options ? a->cfg.options : "");
	fargv[0] = "phifs";
	fargv[1] = "-o";
	fargv[2] = opts;
	fargv[3] = NULL;
	fa = (struct fuse_args)FUSE_ARGS_INIT(3, fargv);
	fargs = 1;
	se = fuse_session_new(&fa, fs_operations(),
			      sizeof(struct fuse_lowlevel_ops), fs);
	if (!se) {
		say(EXIT_FAILURE, "mount options '%s' refused", opts);
		goto out;
	}
	fs_set_session(fs, se);
	(void)fs_set_mountpoint(fs, a->mountpoint);	/* only for tuning */
	if (fuse_session_mount(se, a->mountpoint)) {
		say(EXIT_FAILURE, "cannot mount %s on %s", a->backing,
		    a->mountpoint);
		goto out;
	}
	mounted = 1;
	if (fuse_set_signal_handlers(se)) {
		say(EXIT_FAILURE, "cannot set signal handlers");
		goto out;
	}
	if (ready_fd >= 0)
		detach(ready_fd);
	/* SIGTERM, SIGINT and SIGHUP are a clean stop. */
	if (a->cfg.no_poll)
		rc = libfuse_loop(se);
	else
		rc = loop_run(se, MAX_WORKERS);
	rc = rc < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	fuse_remove_signal_handlers(se);
out:
	if (mounted)
		fuse_session_unmount(se);
	if (se)
		fuse_session_destroy(se);	/* runs fs destroy: commits */
	if (fargs)
		fuse_opt_free_args(&fa);
	fs_free(fs);
	volume_close(vol);
	free(opts);
	return rc;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	int rc, ready_fd = -1;

	rc = parse_args(argc, argv, &a);
	if (rc) {
		config_release(&a.cfg);
		return rc < 0 ? 0 : rc;
	}
	if (!a.cfg.foreground)
		ready_fd = fork_and_wait();
	umask(0);	/* the kernel already applied the caller's umask */
	rc = secmem_harden_process();
	if (rc) {
		say(EXIT_FAILURE, "cannot disable core dumps: %s",
		    strerror(-rc));
		return EXIT_FAILURE;
	}
	rc = serve(&a, ready_fd);
	config_release(&a.cfg);
	return rc;
}
