/*
 * audit_gen.c — writes a test log for tests/test_cli_audit.sh with the real
 * record and chain code: audit_gen DIR KEYFILE NSEGS PER_SEG [open]
 * [pseudo BACKING SRC], the key a phifsctl keygen file (64 hex digits)
 * used as the Ed25519 seed; with pseudo, the paths pseudonymous under the
 * path key of the volume at BACKING, opened with key source SRC.
 * `audit_gen DIR KEYFILE writer` has the real writer make the log, with a
 * crash recovery and a gap in it; `audit_gen unseal DIR` clears the
 * immutable flags of its segments so that the test can remove them.
 */
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit_testlog.h"
#include "phifs/audit_writer.h"
#include "phifs/keys.h"
#include "phifs/volume.h"

/* The volume's audit path key, or NULL. */
static struct crypto_key *path_key(const char *backing, const char *src)
{
	struct crypto_key *k = NULL;
	struct volume *vol;
	char err[512];

	if (volume_open(backing, src, false, &vol, err, sizeof(err))) {
		fprintf(stderr, "audit_gen: %s\n", err);
		return NULL;
	}
	if (keys_volume_key(vol->keys, AUDIT_PATH_KEY_PURPOSE, &k))
		k = NULL;
	volume_close(vol);
	return k;
}

static int put_some(struct audit_writer *w, unsigned n)
{
	struct audit_record r;
	char path[4096];

	for (unsigned i = 0; i < n; i++) {
		memset(&r, 0, sizeof(r));
		r.op = i % 2 ? AUDIT_READ : AUDIT_OPEN;
		r.uid = 1000;
		r.pid = 7;
		strcpy(r.comm, "gen");
		r.path = path;
		r.path_len = testlog_name(i, path, sizeof(path));
		r.len = r.result = 5;
		if (audit_writer_put(w, &r))
			return -1;
	}
	return 0;
}

/*
 * A writer killed before it sealed (a child that exits without close),
 * the next one recovering, then losing records to a queue of one under
 * on_failure = allow.
 */
static int by_writer(const char *dir, const struct crypto_key *key)
{
	struct audit_writer_conf c = { .dir = dir, .key = key,
				       .deny_on_failure = true };
	struct audit_writer_stats s = { 0 };
	struct audit_writer *w;
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(audit_writer_open(&c, &w, NULL) || put_some(w, 30) ||
		      audit_writer_flush(w, 10000));
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status)
		return -1;
	c.deny_on_failure = false;
	c.queue_max = 1;
	if (audit_writer_open(&c, &w, NULL))
		return -1;
	for (int i = 0; i < 100000 && !s.dropped; i++) {
		if (put_some(w, 1))
			break;
		audit_writer_stats(w, &s);
	}
	return audit_writer_close(w) || !s.dropped ? -1 : 0;
}

static int unseal(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int fd, f;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW);
		if (fd >= 0 && !ioctl(fd, FS_IOC_GETFLAGS, &f)) {
			f &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
			ioctl(fd, FS_IOC_SETFLAGS, &f);
		}
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
	return 0;
}

/* 64 hex digits, then a newline or nothing. */
static int seed_of(const char *hex, uint8_t seed[CRYPTO_KEY_LEN])
{
	for (int i = 0; i < CRYPTO_KEY_LEN; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		seed[i] = (uint8_t)v;
	}
	return hex[64] == '\n' || hex[64] == '\0' ? 0 : -1;
}

int main(int argc, char **argv)
{
	static struct testlog t;
	uint8_t seed[CRYPTO_KEY_LEN];
	struct crypto_key *key, *pkey = NULL;
	bool open_tail = argc > 5 && !strcmp(argv[5], "open");
	int rest = 5 + open_tail;
	char hex[80] = "";
	FILE *f;
	int rc;

	if (argc == 3 && !strcmp(argv[1], "unseal"))
		return unseal(argv[2]) ? 1 : 0;
	if (!(argc == 4 && !strcmp(argv[3], "writer")) &&
	    (argc < 5 || (argc != rest && (argc != rest + 3 ||
					   strcmp(argv[rest], "pseudo"))))) {
		fprintf(stderr, "usage: audit_gen DIR KEYFILE NSEGS PER_SEG "
			"[open] [pseudo BACKING SRC] | DIR KEYFILE writer | "
			"unseal DIR\n");
		return 2;
	}
	if (argc == rest + 3 &&
	    !(pkey = path_key(argv[rest + 1], argv[rest + 2])))
		return 1;
	f = fopen(argv[2], "r");
	if (!f || !fgets(hex, sizeof(hex), f) ||
	    strlen(hex) < 64 || seed_of(hex, seed)) {
		fprintf(stderr, "audit_gen: %s: not a key file\n", argv[2]);
		return 1;
	}
	fclose(f);
	key = crypto_key_from(seed);
	if (argc == 4) {
		rc = !key || by_writer(argv[1], key);
		crypto_key_free(key);
		if (rc)
			fprintf(stderr, "audit_gen: the writer failed in %s\n",
				argv[1]);
		return rc;
	}
	rc = !key || testlog_make_with(&t, key, (unsigned)atoi(argv[3]),
				       (unsigned)atoi(argv[4]), open_tail,
				       pkey) ||
	     testlog_write_dir(&t, key, argv[1]);
	testlog_free(&t);
	crypto_key_free(key);
	crypto_key_free(pkey);
	if (rc)
		fprintf(stderr, "audit_gen: could not write %s\n", argv[1]);
	return rc;
}
