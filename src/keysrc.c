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
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
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
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
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

/* Waits for the key command to end; a signal caught meanwhile is no end. */
static int reap_cmd(pid_t pid, int *status, const char *what, char *err,
		    size_t err_len)
{
	int rc;

	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR) {
			rc = -errno;
			errmsg(err, err_len, 0, "%s: waitpid: %s", what,
			       strerror(-rc));
			return rc;
		}
	}
	return 0;
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

static int load_cmd(const char *cmdline, struct keys_secret **out, char *err,
		    size_t err_len)
{
	char *argv[KEYSRC_MAX_ARGS];
	char what[KEYS_ERR_LEN];
	char *line = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rfd = -1, status, rc, rrc;
	pid_t pid = -1;

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
	buf = secmem_alloc(KEYSRC_MAX + 1);
	if (!buf) {
		rc = -ENOMEM;
		errmsg(err, err_len, 0, "%s: out of memory", what);
		goto out;
	}
	rc = spawn_cmd(argv, what, &pid, &rfd, err, err_len);
	if (rc < 0)
		goto out;
	rrc = read_all(rfd, buf, &len);
	/* Closing our end makes a chatty command fail with EPIPE, not hang. */
	close(rfd);
	rfd = -1;
	rc = reap_cmd(pid, &status, what, err, err_len);
	if (rc < 0)
		goto out;
	pid = -1;
	rc = check_cmd(status, rrc, what, err, err_len);
	if (rc < 0)
		goto out;
	rc = parse_key(buf, len, what, out, err, err_len);
out:
	if (rfd >= 0)
		close(rfd);
	if (pid > 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	secmem_free(buf);
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
static int read_tty(struct keys_secret *s, char *err, size_t err_len)
{
	static const char prompt[] = "Passphrase: ";
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
	if (write(fd, prompt, sizeof(prompt) - 1) < 0) {
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

static int load_passphrase(struct keys_secret **out, char *err,
			   size_t err_len)
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
		rc = read_tty(s, err, err_len);
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
		return load_passphrase(out, err, err_len);
	errmsg(err, err_len, 0,
	       "key source \"%s\": expected file:PATH, cmd:COMMAND or "
	       "passphrase", spec);
	return -EINVAL;
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
