/*
 * keysrc.c — key sources: turns a "file:PATH", "cmd:COMMAND" or
 * "passphrase" spec into a struct keys_secret in secmem, and writes new key
 * files for keygen.  Every buffer that ever holds key bytes is a secmem
 * buffer or is wiped before it goes.  Knows nothing of keystores, slots or
 * volumes: what the secret unlocks is keys.c's business.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* pipe2; the build defines it too */
#endif

#include "phifs/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "phifs/atomicfile.h"
#include "phifs/errmsg.h"
#include "phifs/secmem.h"

extern char **environ;

/*
 * The most a key file or key command may give.  A key is 65 bytes at most;
 * the slack lets us say "wrong format" rather than silently cut a long file.
 */
#define KEYSRC_MAX 4096
#define KEYSRC_HEX_LEN (2 * CRYPTO_KEY_LEN)
/* A key command line has a handful of words; this is far beyond that. */
#define KEYSRC_MAX_ARGS 64

/*
 * How long a key command may take, in ms; keys_source_set_timeout().  Set
 * once before threads start, read-only after.
 */
static int source_timeout_ms = KEYS_SOURCE_TIMEOUT_MS;

void keys_source_set_timeout(int ms)
{
	source_timeout_ms = ms > 0 ? ms : KEYS_SOURCE_TIMEOUT_MS;
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

struct keys_secret *keys_secret_raw(const uint8_t key[CRYPTO_KEY_LEN])
{
	struct keys_secret *s = secmem_alloc(sizeof(*s));

	if (!s)
		return NULL;
	s->kind = KEYS_SECRET_RAW;
	s->len = CRYPTO_KEY_LEN;
	memcpy(s->bytes, key, CRYPTO_KEY_LEN);
	return s;
}

struct keys_secret *keys_secret_passphrase(const char *pass)
{
	struct keys_secret *s;
	size_t n = pass ? strlen(pass) : 0;

	/* An empty passphrase would be a lock without a key. */
	if (n == 0 || n > KEYS_PASSPHRASE_MAX) {
		errno = EINVAL;
		return NULL;
	}
	s = secmem_alloc(sizeof(*s));
	if (!s)
		return NULL;
	s->kind = KEYS_SECRET_PASSPHRASE;
	s->len = n;
	memcpy(s->bytes, pass, n);
	return s;
}

void keys_secret_free(struct keys_secret *s)
{
	secmem_free(s);	/* wipes; NULL is fine */
}

/*
 * The bytes of a key file or a key command's output: exactly 32 raw bytes,
 * or 64 hex digits with one optional newline.  `what` names the source in
 * the error line.
 */
static int parse_key(const uint8_t *buf, size_t len, const char *what,
		     struct keys_secret **out, char *err, size_t err_len)
{
	struct keys_secret *s = NULL;
	int rc = -EINVAL;

	if (len == KEYSRC_HEX_LEN + 1 && buf[KEYSRC_HEX_LEN] == '\n')
		len = KEYSRC_HEX_LEN;
	if (len != CRYPTO_KEY_LEN && len != KEYSRC_HEX_LEN)
		goto out;
	s = secmem_alloc(sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto out;
	}
	s->kind = KEYS_SECRET_RAW;
	s->len = CRYPTO_KEY_LEN;
	if (len == CRYPTO_KEY_LEN)
		memcpy(s->bytes, buf, CRYPTO_KEY_LEN);
	for (size_t i = 0; len == KEYSRC_HEX_LEN && i < CRYPTO_KEY_LEN; i++) {
		int hi = hexval(buf[2 * i]);
		int lo = hexval(buf[2 * i + 1]);

		if (hi < 0 || lo < 0)
			goto out;
		s->bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	*out = s;
	s = NULL;	/* transferred */
	rc = 0;
out:
	if (rc == -EINVAL)
		errmsg(err, err_len, 0,
		       "%s: expected 32 raw bytes or 64 hex digits", what);
	else if (rc < 0)
		errmsg(err, err_len, 0, "%s: %s", what, strerror(-rc));
	keys_secret_free(s);	/* wipes */
	return rc;
}

/*
 * Reads fd to its end into buf (KEYSRC_MAX + 1 bytes at least), stopping
 * once more than KEYSRC_MAX bytes came: -EFBIG then.
 */
static int read_all(int fd, uint8_t *buf, size_t *len)
{
	size_t n = 0;

	while (n <= KEYSRC_MAX) {
		ssize_t r = read(fd, buf + n, KEYSRC_MAX + 1 - n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*len = n;
	return n > KEYSRC_MAX ? -EFBIG : 0;
}

static int load_file(const char *path, struct keys_secret **out, char *err,
		     size_t err_len)
{
	char what[KEYS_ERR_LEN];
	uint8_t *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd, rc;

	snprintf(what, sizeof(what), "key file %s", path);
	/*
	 * O_NONBLOCK so that a FIFO, whose open waits for a writer, is
	 * refused below instead of hanging here; a regular file ignores it.
	 */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		errmsg(err, err_len, 0, "%s: %s", what, strerror(-rc));
		goto out;
	}
	/* fstat on the open fd, so the mode checked is the file's we read. */
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		errmsg(err, err_len, 0, "%s: %s", what, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		errmsg(err, err_len, 0, "%s: not a regular file", what);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = -EPERM;
		errmsg(err, err_len, 0,
		       "%s: group- or other-accessible; chmod 0400 it", what);
		goto out;
	}
	buf = secmem_alloc(KEYSRC_MAX + 1);
	if (!buf) {
		rc = -ENOMEM;
		errmsg(err, err_len, 0, "%s: out of memory", what);
		goto out;
	}
	rc = read_all(fd, buf, &len);
	if (rc == -EFBIG) {
		rc = -EINVAL;
		errmsg(err, err_len, 0,
		       "%s: expected 32 raw bytes or 64 hex digits", what);
		goto out;
	}
	if (rc < 0) {
		errmsg(err, err_len, 0, "%s: %s", what, strerror(-rc));
		goto out;
	}
	rc = parse_key(buf, len, what, out, err, err_len);
out:
	if (fd >= 0)
		close(fd);
	secmem_free(buf);
	return rc;
}

/*
 * Splits a command line on blanks into argv, in place in `line` (a copy the
 * caller owns).  No quoting: a key helper that needs more gets a wrapper
 * script, which keeps a shell out of this path.
 */
static int split_argv(char *line, char **argv, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *w = strtok_r(line, " \t", &save); w;
	     w = strtok_r(NULL, " \t", &save)) {
		if (n + 1 >= max)
			return -E2BIG;
		argv[n++] = w;
	}
	argv[n] = NULL;
	return n ? 0 : -EINVAL;
}

/*
 * Starts the key command argv with its stdout on a new pipe.  *pid and *rfd,
 * the pipe's read end, are set on success only; the write end is closed
 * here either way, so that the reader sees the end of the output.
 */
static int spawn_cmd(char **argv, const char *what, pid_t *pid, int *rfd,
		     char *err, size_t err_len)
{
	posix_spawn_file_actions_t fa;
	int fa_ok = 0, pfd[2] = { -1, -1 }, rc;
	pid_t child;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		rc = -errno;
		errmsg(err, err_len, 0, "%s: pipe: %s", what, strerror(-rc));
		goto out;
	}
	rc = -posix_spawn_file_actions_init(&fa);
	if (rc < 0) {
		errmsg(err, err_len, 0, "%s: %s", what, strerror(-rc));
		goto out;
	}
	fa_ok = 1;
	/* dup2 clears close-on-exec on the copy, so only stdout survives. */
	rc = -posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	if (rc < 0) {
		errmsg(err, err_len, 0, "%s: %s", what, strerror(-rc));
		goto out;
	}
	rc = -posix_spawnp(&child, argv[0], &fa, NULL, argv, environ);
	if (rc < 0) {
		errmsg(err, err_len, 0, "%s: cannot run: %s", what,
		       strerror(-rc));
		goto out;
	}
	*pid = child;
	*rfd = pfd[0];
	pfd[0] = -1;	/* transferred */
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/* What collect_cmd() saw of a key command. */
struct cmd_run {
	uint8_t *buf;		/* KEYSRC_MAX + 1 bytes */
	size_t len;		/* of its output read */
	int rrc;		/* 0, -EFBIG past KEYSRC_MAX, or read's -errno */
	int status;		/* its wait status, once exited */
	bool exited;		/* reaped */
};

/* Reaps pid if it has ended; a caught signal is no end. */
static void try_reap(pid_t pid, struct cmd_run *r)
{
	if (!r->exited && waitpid(pid, &r->status, WNOHANG) == pid)
		r->exited = true;
}

/*
 * Reads the key command's output to its end and waits for the command to
 * end, both within source_timeout_ms: a helper that sleeps, or that exits
 * while a process it started keeps its stdout open, must not hang the
 * mount.  *rfd is closed once reading stops (that makes a chatty command
 * fail with EPIPE, not hang).  A pidfd tells when pid ends; without one
 * (before Linux 5.3), pid is looked at every 10 ms.  0, or -ETIMEDOUT.
 */
static int collect_cmd(pid_t pid, int *rfd, struct cmd_run *r)
{
	int64_t deadline = now_ms() + source_timeout_ms;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int rc = 0;

	while (*rfd >= 0 || !r->exited) {
		struct pollfd p[2] = {
			{ .fd = *rfd, .events = POLLIN },
			{ .fd = r->exited ? -1 : pidfd, .events = POLLIN },
		};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		if (pidfd < 0 && left > 10)
			left = 10;
		if (poll(p, 2, (int)left) < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (*rfd >= 0 && p[0].revents) {
			n = read(*rfd, r->buf + r->len,
				 KEYSRC_MAX + 1 - r->len);
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				r->rrc = -errno;
			if (n > 0)
				r->len += (size_t)n;
			if (r->len > KEYSRC_MAX)
				r->rrc = -EFBIG;
			if (n == 0 || r->rrc) {
				close(*rfd);
				*rfd = -1;
			}
		}
		if (pidfd < 0 || p[1].revents)
			try_reap(pid, r);
	}
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}

/*
 * The verdict on an ended key command, from its wait status and rrc, what
 * read_all() said of its output.
 */
static int check_cmd(int status, int rrc, const char *what, char *err,
		     size_t err_len)
{
	/* Before the status: a command cut off by EPIPE died of SIGPIPE. */
	if (rrc == -EFBIG) {
		errmsg(err, err_len, 0,
		       "%s: expected 32 raw bytes or 64 hex digits", what);
		return -EINVAL;
	}
	if (WIFSIGNALED(status)) {
		errmsg(err, err_len, 0, "%s: killed by signal %d", what,
		       WTERMSIG(status));
		return -EIO;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		errmsg(err, err_len, 0, "%s: exited with status %d", what,
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -EIO;
	}
	if (rrc < 0) {
		errmsg(err, err_len, 0, "%s: read: %s", what, strerror(-rrc));
		return rrc;
	}
	return 0;
}

/*
 * Runs the helper and collects its output into run, within the key
 * timeout; one line in err otherwise.  The helper is gone on return.
 */
static int run_cmd(char **argv, const char *what, struct cmd_run *run,
		   char *err, size_t err_len)
{
	int rfd = -1, rc;
	pid_t pid = -1;

	rc = spawn_cmd(argv, what, &pid, &rfd, err, err_len);
	if (rc < 0)
		return rc;
	rc = collect_cmd(pid, &rfd, run);
	if (rc == -ETIMEDOUT && run->exited)
		errmsg(err, err_len, 0, "%s: exited, but its output was still "
		       "open after %.3g s (key_timeout): a process it started "
		       "holds it", what, source_timeout_ms / 1000.0);
	else if (rc == -ETIMEDOUT)
		errmsg(err, err_len, 0, "%s: no key after %.3g s (key_timeout); "
		       "stopped it", what, source_timeout_ms / 1000.0);
	else if (rc < 0)
		errmsg(err, err_len, 0, "%s: %s", what, strerror(-rc));
	if (rfd >= 0)
		close(rfd);
	/* Stopped for good: a helper past its time gets no second chance. */
	if (!run->exited) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &run->status, 0) < 0 && errno == EINTR)
			;
	}
	return rc;
}

static int load_cmd(const char *cmdline, struct keys_secret **out, char *err,
		    size_t err_len)
{
	char *argv[KEYSRC_MAX_ARGS];
	char what[KEYS_ERR_LEN];
	char *line = NULL;
	struct cmd_run run = { 0 };
	int rc;

	line = strdup(cmdline);
	if (!line) {
		rc = -ENOMEM;
		errmsg(err, err_len, 0, "key command: out of memory");
		goto out;
	}
	rc = split_argv(line, argv, KEYSRC_MAX_ARGS);
	if (rc < 0) {
		errmsg(err, err_len, 0, "key command \"%s\": %s", cmdline,
		       rc == -E2BIG ? "too many words" : "empty command");
		goto out;
	}
	/*
	 * Errors name the program only: the rest of a command line may carry
	 * a token for the key service.
	 */
	snprintf(what, sizeof(what), "key command %s", argv[0]);
	run.buf = secmem_alloc(KEYSRC_MAX + 1);
	if (!run.buf) {
		rc = -ENOMEM;
		errmsg(err, err_len, 0, "%s: out of memory", what);
		goto out;
	}
	rc = run_cmd(argv, what, &run, err, err_len);
	if (rc < 0)
		goto out;
	rc = check_cmd(run.status, run.rrc, what, err, err_len);
	if (rc < 0)
		goto out;
	rc = parse_key(run.buf, run.len, what, out, err, err_len);
out:
	secmem_free(run.buf);
	free(line);
	return rc;
}

/*
 * Reads one line from fd a byte at a time, so nothing past the newline is
 * consumed (stdin may carry more for the caller) and no stdio buffer ever
 * holds the passphrase.  The newline is not stored.  -EMSGSIZE if the line
 * does not fit.
 */
static int read_line(int fd, uint8_t *buf, size_t max, size_t *len)
{
	size_t n = 0;

	for (;;) {
		uint8_t c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0 || c == '\n')
			break;
		if (n == max)
			return -EMSGSIZE;
		buf[n++] = c;
	}
	*len = n;
	return 0;
}

/*
 * Prompts on the controlling terminal with echo off.  The terminal is
 * restored before returning, on every path.
 */
static int read_tty(struct keys_secret *s, const char *prompt, char *err,
		    size_t err_len)
{
	struct termios old, quiet;
	int fd, rc, restore = 0;

	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		errmsg(err, err_len, 0, "passphrase: /dev/tty: %s", strerror(-rc));
		goto out;
	}
	if (tcgetattr(fd, &old) < 0) {
		rc = -errno;
		errmsg(err, err_len, 0, "passphrase: terminal: %s",
		       strerror(-rc));
		goto out;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
		rc = -errno;
		errmsg(err, err_len, 0, "passphrase: terminal: %s",
		       strerror(-rc));
		goto out;
	}
	restore = 1;
	if (write(fd, prompt, strlen(prompt)) < 0) {
		rc = -errno;
		errmsg(err, err_len, 0, "passphrase: terminal: %s",
		       strerror(-rc));
		goto out;
	}
	rc = read_line(fd, s->bytes, KEYS_PASSPHRASE_MAX, &s->len);
	if (rc < 0)
		errmsg(err, err_len, 0, "passphrase: %s",
		       rc == -EMSGSIZE ? "longer than 1024 bytes"
				       : strerror(-rc));
out:
	if (restore) {
		tcsetattr(fd, TCSAFLUSH, &old);
		/* Echo was off, so the user's Enter left no newline. */
		if (write(fd, "\n", 1) < 0) {
			/* Only cosmetic. */
		}
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static int load_passphrase(const char *prompt, struct keys_secret **out,
			   char *err, size_t err_len)
{
	struct keys_secret *s;
	int rc;

	s = secmem_alloc(sizeof(*s));
	if (!s) {
		errmsg(err, err_len, 0, "passphrase: out of memory");
		return -ENOMEM;
	}
	s->kind = KEYS_SECRET_PASSPHRASE;
	if (isatty(STDIN_FILENO)) {
		rc = read_tty(s, prompt, err, err_len);
	} else {
		rc = read_line(STDIN_FILENO, s->bytes, KEYS_PASSPHRASE_MAX,
			       &s->len);
		if (rc < 0)
			errmsg(err, err_len, 0, "passphrase from stdin: %s",
			       rc == -EMSGSIZE ? "longer than 1024 bytes"
					       : strerror(-rc));
	}
	if (rc < 0)
		goto out;
	if (s->len == 0) {
		rc = -EINVAL;
		errmsg(err, err_len, 0, "passphrase: empty");
		goto out;
	}
	*out = s;
	s = NULL;	/* transferred */
	rc = 0;
out:
	keys_secret_free(s);
	return rc;
}

int keys_source_load(const char *spec, struct keys_secret **out, char *err,
		     size_t err_len)
{
	if (!spec) {
		errmsg(err, err_len, 0, "no key source given");
		return -EINVAL;
	}
	if (!strncmp(spec, "file:", 5) && spec[5])
		return load_file(spec + 5, out, err, err_len);
	if (!strncmp(spec, "cmd:", 4))
		return load_cmd(spec + 4, out, err, err_len);
	if (!strcmp(spec, "passphrase"))
		return load_passphrase("Passphrase: ", out, err, err_len);
	errmsg(err, err_len, 0,
	       "key source \"%s\": expected file:PATH, cmd:COMMAND or "
	       "passphrase", spec);
	return -EINVAL;
}

/*
 * Passphrases of 12 characters or more that are still among the first an
 * attacker tries; shorter ones are refused anyway.
 */
static const char *const common[] = {
	"password1234", "password12345", "password123456", "passwordpassword",
	"123456789012", "1234567890123", "12345678901234", "qwerty123456",
	"qwertyuiop123", "qwertyuiopasdf", "1q2w3e4r5t6y", "iloveyou1234",
	"abcdefghijkl", "abc123abc123", "letmein12345", "welcome12345",
	"changeme1234", "trustno1trustno1", "correct horse battery staple",
	"administrator", "administrator1",
};

const char *keys_passphrase_weak(const struct keys_secret *s)
{
	size_t same = 1;

	if (s->kind != KEYS_SECRET_PASSPHRASE)
		return NULL;
	if (s->len < KEYS_PASSPHRASE_MIN)
		return "shorter than 12 characters";
	for (size_t i = 1; i < s->len; i++)
		same += s->bytes[i] == s->bytes[0];
	if (same == s->len)
		return "one character repeated";
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		if (strlen(common[i]) == s->len &&
		    !strncasecmp(common[i], (const char *)s->bytes, s->len))
			return "one of the most common passphrases";
	return NULL;
}

/* A new passphrase, typed twice on a terminal; once from stdin. */
static int load_new_passphrase(struct keys_secret **out, char *err,
			       size_t err_len)
{
	struct keys_secret *a = NULL, *b = NULL;
	const char *weak;
	int rc;

	rc = load_passphrase("New passphrase: ", &a, err, err_len);
	if (!rc && isatty(STDIN_FILENO))
		rc = load_passphrase("New passphrase again: ", &b, err,
				     err_len);
	if (!rc && b && (a->len != b->len ||
			 !crypto_memeq(a->bytes, b->bytes, a->len)))
		rc = errmsg(err, err_len, -EINVAL, "new passphrase: the two "
			    "entries differ");
	weak = rc ? NULL : keys_passphrase_weak(a);
	if (weak)
		rc = errmsg(err, err_len, -EINVAL, "new passphrase refused: "
			    "%s", weak);
	if (!rc) {
		*out = a;
		a = NULL;	/* transferred */
	}
	keys_secret_free(a);
	keys_secret_free(b);
	return rc;
}

int keys_source_load_new(const char *spec, struct keys_secret **out,
			 char *err, size_t err_len)
{
	if (spec && !strcmp(spec, "passphrase"))
		return load_new_passphrase(out, err, err_len);
	return keys_source_load(spec, out, err, err_len);
}

/* The folder holding path, opened for atomicfile; *base points into *copy. */
static int open_parent(const char *path, char **copy, const char **base)
{
	char *c = strdup(path), *d = strdup(path);
	int fd;

	if (!c || !d) {
		free(c);
		free(d);
		return -ENOMEM;
	}
	fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(d);
	if (fd < 0) {
		fd = -errno;
		free(c);
		return fd;
	}
	*copy = c;
	*base = basename(c);
	return fd;
}

int keys_keygen(const char *path, char *err, size_t err_len)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t *key = NULL;
	char *hex = NULL, *copy = NULL;
	const char *base = NULL;
	int dirfd = -1, rc;

	key = secmem_alloc(CRYPTO_KEY_LEN);
	hex = secmem_alloc(KEYSRC_HEX_LEN + 1);
	if (!key || !hex) {
		rc = -ENOMEM;
		errmsg(err, err_len, 0, "key file %s: out of memory", path);
		goto out;
	}
	rc = crypto_random(key, CRYPTO_KEY_LEN);
	if (rc < 0) {
		errmsg(err, err_len, 0, "key file %s: no random bytes: %s", path,
		       strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < CRYPTO_KEY_LEN; i++) {
		hex[2 * i] = digits[key[i] >> 4];
		hex[2 * i + 1] = digits[key[i] & 15];
	}
	hex[KEYSRC_HEX_LEN] = '\n';
	dirfd = open_parent(path, &copy, &base);
	if (dirfd < 0) {
		rc = dirfd;
		errmsg(err, err_len, 0, "key file %s: folder: %s", path,
		       strerror(-rc));
		goto out;
	}
	/*
	 * Never over an existing file: it may be the only key of a volume.
	 * Exactly 0400 whatever the umask: the owner must be able to read.
	 * A half-written key file is worse than none, and the usual next step
	 * is init with this key: a volume that outlives its key file in a
	 * crash could never be opened again.  atomicfile sees to both.
	 */
	rc = atomicfile_create(dirfd, base, hex, KEYSRC_HEX_LEN + 1, 0400);
	if (rc < 0) {
		errmsg(err, err_len, 0, "key file %s: %s", path,
		       rc == -EEXIST ? "already exists; not overwriting it"
				     : strerror(-rc));
		goto out;
	}
	rc = 0;
out:
	if (dirfd >= 0)
		close(dirfd);
	free(copy);
	secmem_free(hex);
	secmem_free(key);
	return rc;
}
