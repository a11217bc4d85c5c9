/*
 * test_mount_audit.c — the integrity log of a mounted volume, read back
 * with the audit core's own parser after the unmount: a scripted session
 * gives exactly its records (reads = strict, so that every read(2) is
 * one), each read's and write's sha256 is that of the bytes moved; a
 * refused access is a deny record with user, path and rule; a flipped
 * ciphertext byte is an integrity-error with path and block; hostile
 * names give one line per record, verify, and `audit show --path` finds
 * them; every way of unmounting leaves a log that verifies, sealed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mountutil.h"
#include "phifs/audit.h"
#include "phifs/crypto.h"

TestSuite(mount_audit, .fini = mu_cleanup_all, .timeout = 120);

#define MAX_RECS 4096

static struct audit_record recs[MAX_RECS];
static size_t nrecs;

static const char *log_dir(const struct mu_vol *v)
{
	return mu_b(v, ".phifs/audit");
}

static void release_records(void)
{
	for (size_t i = 0; i < nrecs; i++)
		audit_record_release(&recs[i]);
	nrecs = 0;
}

/* Every record of the log, parsed strictly: one per line, in order. */
static void load_records(const struct mu_vol *v)
{
	struct audit_segset set;
	char err[256];

	release_records();
	cr_assert_eq(audit_dir_load(log_dir(v), &set, err, sizeof(err)), 0,
		     "%s", err);
	for (size_t s = 0; s < set.n; s++) {
		const char *p = set.segs[s].buf, *end = p + set.segs[s].len;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));

			cr_assert_not_null(nl, "a line without its newline");
			cr_assert_lt(nrecs, MAX_RECS);
			cr_assert_eq(audit_record_parse(p, (size_t)(nl - p),
							&recs[nrecs], err,
							sizeof(err)), 0,
				     "line %zu: %s", nrecs + 1, err);
			nrecs++;
			p = nl + 1;
		}
	}
	audit_dir_release(&set);
}

/* phifsctl audit verify on the log: its exit status (0 intact, sealed). */
static int verify(const struct mu_vol *v)
{
	char cmd[1024];
	int st;

	snprintf(cmd, sizeof(cmd), "%s/phifsctl audit verify %s >/dev/null",
		 PHIFS_BIN_DIR, log_dir(v));
	st = system(cmd);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static size_t count(enum audit_op op)
{
	size_t n = 0;

	for (size_t i = 0; i < nrecs; i++)
		n += recs[i].op == op;
	return n;
}

/* The n-th (from 0) record of op. */
static const struct audit_record *nth(enum audit_op op, size_t n)
{
	for (size_t i = 0; i < nrecs; i++)
		if (recs[i].op == op && !n--)
			return &recs[i];
	cr_assert_fail("no such %s record", audit_op_name(op));
	return NULL;
}

static bool path_is(const struct audit_record *r, const char *p)
{
	return r->path_len == strlen(p) && !memcmp(r->path, p, r->path_len);
}

static void expect_sha(const struct audit_record *r, const void *b,
		       size_t n)
{
	uint8_t want[AUDIT_HASH_LEN];

	cr_assert_eq(crypto_sha256(b, n, want), 0);
	cr_expect_eq(r->len, n, "%s len", audit_op_name(r->op));
	cr_expect_arr_eq(r->sha256, want, AUDIT_HASH_LEN, "%s at %llu",
			 audit_op_name(r->op), (unsigned long long)r->off);
}

/* Mounts v with the config text (an [audit] section, say) and extra. */
static void mount_with(struct mu_vol *v, const char *conf, const char *o1,
		       const char *o2)
{
	char path[256];
	const char *extra[] = { "--config", path, o1, o2, NULL };
	FILE *f;

	snprintf(path, sizeof(path), "%s/phifs.conf", v->dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert(fputs(conf, f) >= 0);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 0, "%s",
		     v->err);
}

Test(mount_audit, a_session_gives_exactly_its_records_and_their_bytes)
{
	struct mu_vol *v = mu_vol_new(0);
	static uint8_t data[10000], buf[4096];
	int fd;

	mu_require_fuse();
	mount_with(v, "[audit]\nreads = strict\n", NULL, NULL);
	mu_fill(data, sizeof(data), mu_seed());
	cr_assert_eq(mkdir(mu_m(v, "d"), 0755), 0);
	fd = open(mu_m(v, "d/f"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	cr_assert_eq(close(fd), 0);
	fd = open(mu_m(v, "d/f"), O_RDONLY);
	cr_assert(fd >= 0);
	/* Direct I/O: each read(2) reaches the daemon, twice the same. */
	cr_assert_eq(pread(fd, buf, 4096, 4096), 4096);
	cr_assert_eq(pread(fd, buf, 4096, 4096), 4096);
	cr_assert_eq(pread(fd, buf, 4096, 8192), 10000 - 8192);
	cr_assert_eq(close(fd), 0);
	cr_assert_eq(rename(mu_m(v, "d/f"), mu_m(v, "d/g")), 0);
	cr_assert_eq(truncate(mu_m(v, "d/g"), 100), 0);
	cr_assert_eq(chmod(mu_m(v, "d/g"), 0600), 0);
	cr_assert_eq(symlink("g", mu_m(v, "d/s")), 0);
	cr_assert_eq(unlink(mu_m(v, "d/s")), 0);
	cr_assert_eq(unlink(mu_m(v, "d/g")), 0);
	cr_assert_eq(rmdir(mu_m(v, "d")), 0);
	mu_unmount(v);

	cr_expect_eq(verify(v), 0, "the log verifies, sealed");
	load_records(v);
	cr_expect_eq(count(AUDIT_MOUNT), 1);
	cr_expect_eq(count(AUDIT_MKDIR), 1);
	cr_expect_eq(count(AUDIT_CREATE), 1);
	cr_expect_eq(count(AUDIT_WRITE), 1);
	cr_expect_eq(count(AUDIT_OPEN), 1);
	cr_expect_eq(count(AUDIT_READ), 3);
	cr_expect_eq(count(AUDIT_RENAME), 1);
	cr_expect_eq(count(AUDIT_TRUNCATE), 1);
	cr_expect_eq(count(AUDIT_SETATTR), 1);
	cr_expect_eq(count(AUDIT_SYMLINK), 1);
	cr_expect_eq(count(AUDIT_UNLINK), 2);
	cr_expect_eq(count(AUDIT_RMDIR), 1);
	cr_expect_eq(count(AUDIT_UNMOUNT), 1);
	cr_expect_eq(nrecs - count(AUDIT_CHECKPOINT), 16,
		     "no record beyond the session's: %zu",
		     nrecs - count(AUDIT_CHECKPOINT));
	cr_expect_eq(recs[0].op, AUDIT_MOUNT);
	cr_expect_eq(recs[nrecs - 1].op, AUDIT_CHECKPOINT, "sealed last");

	cr_expect(path_is(nth(AUDIT_WRITE, 0), "/d/f"));
	expect_sha(nth(AUDIT_WRITE, 0), data, sizeof(data));
	cr_expect_eq(nth(AUDIT_READ, 0)->off, 4096);
	expect_sha(nth(AUDIT_READ, 0), data + 4096, 4096);
	expect_sha(nth(AUDIT_READ, 1), data + 4096, 4096);
	cr_expect_eq(nth(AUDIT_READ, 2)->off, 8192);
	expect_sha(nth(AUDIT_READ, 2), data + 8192, 10000 - 8192);
	cr_expect_eq(nth(AUDIT_READ, 0)->uid, getuid());
	cr_expect_eq(nth(AUDIT_READ, 0)->pid, getpid());
	cr_expect(path_is(nth(AUDIT_TRUNCATE, 0), "/d/g"));
	cr_expect_eq(nth(AUDIT_TRUNCATE, 0)->off, 100);
	cr_expect_eq(nth(AUDIT_RENAME, 0)->path2_len, 4);
	cr_expect_eq(memcmp(nth(AUDIT_RENAME, 0)->path2, "/d/g", 4), 0);
	release_records();
}

#define STRANGER 5999

/* A child as STRANGER opens rel for reading: its errno, or 0. */
static int open_as_stranger(const struct mu_vol *v, const char *rel)
{
	pid_t pid = fork();
	int st;

	cr_assert(pid >= 0);
	if (pid == 0) {
		int fd;

		if (setgroups(0, NULL) || setresgid(STRANGER, STRANGER,
						    STRANGER) ||
		    setresuid(STRANGER, STRANGER, STRANGER))
			_exit(250);
		fd = open(mu_m(v, rel), O_RDONLY);
		_exit(fd < 0 ? errno : 0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_neq(WEXITSTATUS(st), 250, "cannot become uid %d", STRANGER);
	return WEXITSTATUS(st);
}

/*
 * Mounts v with the [audit] text conf, allow_other and a policy that
 * grants the stranger (uid 5999) reads under /open only, the root folder
 * open to all (its mode set through a mount: the folder record's).
 */
static void mount_for_stranger(struct mu_vol *v, const char *conf)
{
	char policy[256], opt[300];
	FILE *f;

	mu_require_fuse();
	if (geteuid() != 0)
		mu_skip("needs root: a child switches uid");
	snprintf(policy, sizeof(policy), "%s/policy.ini", v->dir);
	f = fopen(policy, "w");
	cr_assert_not_null(f);
	fputs("[defaults]\nunmatched = deny\nroot = allow\n"
	      "[role:r]\nread = /open/**\n[user:5999]\nroles = r\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(v->dir, 0755), 0);
	mu_mount(v);
	cr_assert_eq(chmod(v->mnt, 0777), 0);
	mu_unmount(v);
	snprintf(opt, sizeof(opt), "allow_other,policy=%s", policy);
	mount_with(v, conf, "-o", opt);
}

Test(mount_audit, a_refused_access_is_recorded_with_user_path_and_rule)
{
	struct mu_vol *v = mu_vol_new(0);
	const struct audit_record *d = NULL;

	mount_for_stranger(v, "[audit]\nsync = always\n");
	cr_assert_eq(mkdir(mu_m(v, "secret"), 0777), 0);
	mu_write_file(mu_m(v, "secret/chart"), "phi", 3);
	cr_expect_eq(open_as_stranger(v, "secret/chart"), EACCES);
	mu_unmount(v);

	cr_expect_eq(verify(v), 0);
	load_records(v);
	for (size_t i = 0; i < nrecs && !d; i++)
		if (recs[i].op == AUDIT_DENY)
			d = &recs[i];
	cr_assert_not_null(d, "no deny record");
	cr_expect_eq(d->uid, STRANGER);
	cr_expect_eq(d->gid, STRANGER);
	cr_expect_eq(d->result, -EACCES);
	/* The kernel asks the name first: refused there, below the root. */
	cr_expect(path_is(d, "/secret") || path_is(d, "/secret/chart"),
		  "path %.*s", (int)d->path_len, d->path);
	cr_expect(strstr(d->rule, "unmatched = deny"), "rule: %s", d->rule);
	cr_expect(strstr(d->rule, "/secret"), "rule: %s", d->rule);
	release_records();
}

Test(mount_audit, a_flipped_ciphertext_byte_is_an_integrity_error)
{
	struct mu_vol *v = mu_vol_new(0);
	static uint8_t data[3 * MU_BS], buf[MU_BS];
	const struct audit_record *e;
	int fd;

	mu_require_fuse();
	mount_with(v, "[audit]\nreads = strict\n", NULL, NULL);
	mu_fill(data, sizeof(data), mu_seed());
	mu_write_file(mu_m(v, "f"), data, sizeof(data));
	mu_unmount(v);
	fd = open(mu_b(v, "f"), O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, buf, 1, MU_BLOCK_OFF(1) + 40), 1);
	buf[0] ^= 0x01;
	cr_assert_eq(pwrite(fd, buf, 1, MU_BLOCK_OFF(1) + 40), 1);
	close(fd);

	mount_with(v, "[audit]\nreads = strict\n", NULL, NULL);
	fd = open(mu_m(v, "f"), O_RDONLY);
	cr_assert(fd >= 0);
	cr_expect_eq(pread(fd, buf, MU_BS, MU_BS), -1);
	cr_expect_eq(errno, EIO);
	close(fd);
	mu_unmount(v);

	cr_expect_eq(verify(v), 0);
	load_records(v);
	cr_assert_eq(count(AUDIT_INTEGRITY_ERROR), 1);
	e = nth(AUDIT_INTEGRITY_ERROR, 0);
	cr_expect(path_is(e, "/f"), "path %.*s", (int)e->path_len, e->path);
	cr_expect_eq(e->block, 1);
	cr_expect_eq(e->uid, getuid());
	cr_expect_eq(count(AUDIT_MOUNT), 2, "two mounts, one chain");
	release_records();
}

/* Whether `phifsctl audit show --json --path GLOB` lists a record. */
static int shown(const struct mu_vol *v, const char *glob)
{
	char cmd[1024];
	FILE *p;
	int lines = 0, c;

	snprintf(cmd, sizeof(cmd), "%s/phifsctl audit show --json --path "
		 "'%s' %s", PHIFS_BIN_DIR, glob, log_dir(v));
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while ((c = fgetc(p)) != EOF)
		lines += c == '\n';
	cr_assert_eq(pclose(p), 0);
	return lines;
}

/* Whether a record names s anywhere: path, path2 or rule. */
static bool names(const struct audit_record *r, const char *s)
{
	size_t n = strlen(s);

	return memmem(r->path ? r->path : "", r->path_len, s, n) ||
	       memmem(r->path2 ? r->path2 : "", r->path2_len, s, n) ||
	       (r->rule && strstr(r->rule, s));
}

/* Lines `phifsctl audit show --json --key --path GLOB` lists. */
static int shown_by_key(const struct mu_vol *v, const char *glob)
{
	char cmd[1536];
	FILE *p;
	int lines = 0, c;

	snprintf(cmd, sizeof(cmd), "%s/phifsctl audit show --json --key "
		 "file:%s --path '%s' %s %s", PHIFS_BIN_DIR, v->key, glob,
		 log_dir(v), v->backing);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while ((c = fgetc(p)) != EOF)
		lines += c == '\n';
	cr_assert_eq(pclose(p), 0);
	return lines;
}

Test(mount_audit, pseudonymous_paths_name_no_one_and_are_found_with_the_key)
{
	struct mu_vol *v = mu_vol_new(0);
	size_t deny = 0;

	mount_for_stranger(v, "[audit]\npaths = pseudonymous\n");
	cr_assert_eq(mkdir(mu_m(v, "secret"), 0777), 0);
	mu_write_file(mu_m(v, "secret/Jane Doe chart"), "phi", 3);
	cr_assert_eq(rename(mu_m(v, "secret/Jane Doe chart"),
			    mu_m(v, "secret/Jane Roe chart")), 0);
	cr_assert_eq(symlink("Jane Roe chart", mu_m(v, "secret/link")), 0);
	cr_expect_eq(open_as_stranger(v, "secret/Jane Roe chart"), EACCES);
	mu_unmount(v);

	cr_expect_eq(verify(v), 0, "verify needs no key");
	load_records(v);
	for (size_t i = 0; i < nrecs; i++) {
		cr_expect(!names(&recs[i], "secret") && !names(&recs[i], "Jane"),
			  "record %zu (%s) names a file", i,
			  audit_op_name(recs[i].op));
		deny += recs[i].op == AUDIT_DENY;
	}
	cr_expect_gt(deny, 0, "no deny record");
	cr_expect_gt(count(AUDIT_RENAME), 0);
	cr_expect_eq(shown(v, "/secret/*"), 0, "plain names are not there");
	cr_expect_gt(shown_by_key(v, "/secret/Jane Doe chart"), 0);
	cr_expect_gt(shown_by_key(v, "/secret/*"), 2);
	release_records();
}

Test(mount_audit, hostile_names_give_one_line_each_verify_and_are_found)
{
	static const char *const names[] = {
		"new\nline", "quo\"te", "back\\slash", "bad\xff\xfe",
		"ctl\x01\x1f\t",
	};
	struct mu_vol *v = mu_vol_new(0);
	char long_name[256], deep[16];
	size_t depth = 0;
	int dfd, fd;

	mu_require_fuse();
	mount_with(v, "[audit]\nsync = none\n", NULL, NULL);
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		mu_write_file(mu_m(v, names[i]), "x", 1);
	memset(long_name, 'n', 255);
	long_name[255] = 0;
	mu_write_file(mu_m(v, long_name), "x", 1);
	memset(long_name, 'm', 255);
	/* Folders 255 bytes a name, nested past 4,096 bytes of path, each
	 * made from the one above by descriptor. */
	dfd = open(v->mnt, O_RDONLY | O_DIRECTORY);
	cr_assert(dfd >= 0);
	while (depth * 256 < 4096) {
		int next;

		cr_assert_eq(mkdirat(dfd, long_name, 0755), 0, "depth %zu: "
			     "%s", depth, strerror(errno));
		next = openat(dfd, long_name, O_RDONLY | O_DIRECTORY);
		cr_assert(next >= 0);
		close(dfd);
		dfd = next;
		depth++;
	}
	snprintf(deep, sizeof(deep), "deepest");
	fd = openat(dfd, deep, O_WRONLY | O_CREAT, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "x", 1), 1);
	close(fd);
	close(dfd);
	mu_unmount(v);

	cr_expect_eq(verify(v), 0);
	load_records(v);	/* one line each, each parsed strictly */
	cr_expect_eq(count(AUDIT_CREATE), 6 + 1);
	cr_expect_eq(count(AUDIT_MKDIR), depth);
	cr_expect_geq(shown(v, "/new?line"), 2, "create and write");
	cr_expect_geq(shown(v, "/quo\"te"), 2);
	cr_expect_geq(shown(v, "/back\\\\slash"), 2);
	cr_expect_geq(shown(v, "/bad*"), 2);
	cr_expect_eq(shown(v, "*/deepest"), 2);
	release_records();
}

Test(mount_audit, sigterm_and_the_unmount_command_seal_the_log)
{
	struct mu_vol *v = mu_vol_new(0);
	char cmd[512];

	mu_require_fuse();
	mount_with(v, "", NULL, NULL);
	mu_write_file(mu_m(v, "a"), "x", 1);
	mu_terminate(v);
	cr_expect_eq(verify(v), 0, "sealed after SIGTERM");
	mount_with(v, "", NULL, NULL);
	mu_write_file(mu_m(v, "b"), "x", 1);
	snprintf(cmd, sizeof(cmd), "%s/phifsctl audit-anchor %s > %s/anchor",
		 PHIFS_BIN_DIR, v->backing, v->dir);
	cr_expect_eq(system(cmd), 0, "audit-anchor");
	snprintf(cmd, sizeof(cmd), "%s/phifsctl unmount %s >/dev/null",
		 PHIFS_BIN_DIR, v->backing);
	cr_expect_eq(system(cmd), 0);
	mu_wait_exit(v, "the unmount command");
	cr_expect_eq(verify(v), 0, "sealed after the unmount command");
	snprintf(cmd, sizeof(cmd), "%s/phifsctl audit verify --anchor "
		 "%s/anchor %s >/dev/null", PHIFS_BIN_DIR, v->dir, log_dir(v));
	cr_expect_eq(system(cmd), 0, "the anchor is in the log");
	load_records(v);
	cr_expect_eq(count(AUDIT_MOUNT), 2);
	cr_expect_eq(count(AUDIT_UNMOUNT), 2);
	release_records();
}

/* phifsctl with args and BACKING; its exit status. */
static int phifsctl(const struct mu_vol *v, const char *args)
{
	char cmd[1024];
	int st;

	snprintf(cmd, sizeof(cmd), "%s/phifsctl %s %s >/dev/null 2>&1",
		 PHIFS_BIN_DIR, args, v->backing);
	st = system(cmd);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

Test(mount_audit, reloads_rotations_and_flushes_reach_the_log)
{
	struct mu_vol *v = mu_vol_new(0);
	char policy[256], opt[300], args[300];
	static char out[65536];
	const struct audit_record *r;
	FILE *f, *p;
	size_t n;

	mu_require_fuse();
	snprintf(policy, sizeof(policy), "%s/policy.ini", v->dir);
	f = fopen(policy, "w");
	cr_assert_not_null(f);
	fputs("[defaults]\nroot = allow\n", f);
	cr_assert_eq(fclose(f), 0);
	snprintf(opt, sizeof(opt), "policy=%s", policy);
	mount_with(v, "", "-o", opt);
	mu_write_file(mu_m(v, "a"), "x", 1);
	cr_expect_eq(phifsctl(v, "reload"), 0);
	/* A policy that does not parse is refused, and recorded so. */
	f = fopen(policy, "w");
	cr_assert_not_null(f);
	fputs("[defaults]\nroot = sometimes\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_expect_neq(phifsctl(v, "reload"), 0);
	snprintf(args, sizeof(args), "key rotate --key file:%s", v->key);
	cr_expect_eq(phifsctl(v, args), 0, "online key rotation");
	/* flush: every record so far durable, as the status says */
	cr_expect_eq(phifsctl(v, "flush"), 0);
	snprintf(args, sizeof(args), "%s/phifsctl status --json %s",
		 PHIFS_BIN_DIR, v->backing);
	p = popen(args, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	cr_assert_eq(pclose(p), 0);
	{
		const char *a = strstr(out, "\"audit\":");
		const char *w = a ? strstr(a, "\"written\":") : NULL;
		const char *s = a ? strstr(a, "\"synced\":") : NULL;

		cr_assert(w && s, "%s", out);
		cr_expect_eq(strtoull(w + 10, NULL, 10),
			     strtoull(s + 9, NULL, 10), "%s", out);
		cr_expect_gt(strtoull(w + 10, NULL, 10), 2, "%s", out);
	}
	mu_unmount(v);

	cr_expect_eq(verify(v), 0);
	load_records(v);
	cr_assert_eq(count(AUDIT_POLICY_RELOAD), 2);
	cr_expect_eq(nth(AUDIT_POLICY_RELOAD, 0)->result, 0);
	cr_expect_eq(nth(AUDIT_POLICY_RELOAD, 1)->result, -EINVAL);
	cr_assert_eq(count(AUDIT_KEY_ROTATE), 1);
	r = nth(AUDIT_KEY_ROTATE, 0);
	cr_expect_eq(r->result, 0);
	cr_expect_eq(r->version, 2);
	release_records();
}

/*
 * The log's own store fills (a small tmpfs, the volume's elsewhere):
 * under on_failure = deny, reads and writes then fail with EIO, and no
 * plaintext comes back.  Once space is freed they work again with no
 * remount, and the log verifies.
 */
Test(mount_audit, a_full_log_store_refuses_reads_and_writes_with_eio)
{
	struct mu_vol *v = mu_vol_new(0), *small = mu_vol_new(256 << 10);
	static uint8_t data[64 << 10], buf[sizeof(data)];
	char dir[256], ballast[256], chunk[4096], cmd[512];
	const char *extra[] = { "--audit-dir", dir, NULL };
	struct timespec t0, t;
	int fd, i, rc = 0;
	ssize_t n = -1;

	mu_require_fuse();
	snprintf(dir, sizeof(dir), "%s/log", small->backing);
	/* Room to give back later. */
	snprintf(ballast, sizeof(ballast), "%s/ballast", small->backing);
	mu_write_file(ballast, data, 96 << 10 > sizeof(data) ? sizeof(data) :
		      96 << 10);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 0, "%s",
		     v->err);
	mu_fill(data, sizeof(data), mu_seed());
	mu_write_file(mu_m(v, "chart"), data, sizeof(data));
	/* Names as long as they come, until the log has no room. */
	memset(chunk, 'c', 200);
	for (i = 0; i < 100000 && !rc; i++) {
		snprintf(chunk + 200, sizeof(chunk) - 200, "%d", i);
		fd = open(mu_m(v, chunk), O_WRONLY | O_CREAT | O_EXCL, 0600);
		rc = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
	}
	cr_assert_eq(rc, EIO, "the log never filled: %d (%s)", i,
		     strerror(rc));
	fd = open(mu_m(v, "chart"), O_RDONLY);
	if (fd >= 0) {	/* an open that was let in: its read is not */
		memset(buf, 0, sizeof(buf));
		n = read(fd, buf, sizeof(buf));
		cr_expect_eq(n, -1, "read %zd bytes with no record", n);
		cr_expect_eq(errno, EIO);
		close(fd);
	} else {
		cr_expect_eq(errno, EIO);
	}
	for (size_t k = 0; k < sizeof(buf); k++)
		cr_assert_eq(buf[k], 0, "plaintext at %zu", k);
	fd = open(mu_m(v, "chart"), O_WRONLY);
	cr_expect(fd < 0 || write(fd, "x", 1) < 0, "a write went unrecorded");
	if (fd >= 0)
		close(fd);
	cr_expect_eq(unlink(mu_m(v, "chart")), -1);
	cr_expect_eq(errno, EIO);

	/* Space back: the writer retries on its own, no remount. */
	cr_assert_eq(unlink(ballast), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		fd = open(mu_m(v, "chart"), O_RDONLY);
		n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
		if (fd >= 0)
			close(fd);
		if (n == (ssize_t)sizeof(data))
			break;
		usleep(20000);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 15);
	cr_assert_eq(n, (ssize_t)sizeof(data), "reads did not come back");
	cr_expect_arr_eq(buf, data, sizeof(data));
	cr_expect_eq(unlink(mu_m(v, "chart")), 0, "%s", strerror(errno));
	mu_unmount(v);
	snprintf(cmd, sizeof(cmd), "%s/phifsctl audit verify %s >/dev/null",
		 PHIFS_BIN_DIR, dir);
	rc = system(cmd);
	cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 0,
		  "the log does not verify after the full store: %d", rc);
}

/* Writes 4 KiB blocks of byte i to the file, counting those that returned. */
struct acker {
	char path[256];
	_Atomic long acked;
};

static void *write_until_killed(void *arg)
{
	struct acker *a = arg;
	uint8_t b[4096];
	int fd = open(a->path, O_WRONLY | O_CREAT, 0600);

	for (long i = 0; fd >= 0; i++) {
		memset(b, (int)(i & 0xff), sizeof(b));
		if (pwrite(fd, b, sizeof(b), (i % 64) * 4096) != sizeof(b))
			break;
		atomic_store(&a->acked, i + 1);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* Whether the log has the record of write i of file path (write_until_killed). */
static bool has_write(const char *path, long i)
{
	uint8_t b[4096], want[AUDIT_HASH_LEN];

	memset(b, (int)(i & 0xff), sizeof(b));
	cr_assert_eq(crypto_sha256(b, sizeof(b), want), 0);
	for (size_t k = 0; k < nrecs; k++)
		if (recs[k].op == AUDIT_WRITE && path_is(&recs[k], path) &&
		    recs[k].off == (uint64_t)(i % 64) * 4096 &&
		    recs[k].len == sizeof(b) &&
		    !memcmp(recs[k].sha256, want, sizeof(want)))
			return true;
	return false;
}

#define KILLS 20

/*
 * kill -9 of the daemon during writes, 20 times, under sync = always: each
 * remount mends the log's torn tail with a recovery record, the log then
 * verifies, and every write(2) that returned has its record.
 */
Test(mount_audit, kill_9_during_writes_loses_no_acknowledged_record)
{
	struct mu_vol *v = mu_vol_new(0);
	static struct acker a[KILLS];
	uint64_t seed = mu_seed();
	struct timespec t0, t;
	pthread_t th;
	char name[32];
	long acked = 0;

	mu_require_fuse();
	for (int r = 0; r < KILLS; r++) {
		long target = 1 + (long)((seed >> (r % 48)) % 97 + (unsigned)r * 7) % 150;

		mount_with(v, "[audit]\nsync = always\n", NULL, NULL);
		snprintf(name, sizeof(name), "f%d", r);
		snprintf(a[r].path, sizeof(a[r].path), "%s", mu_m(v, name));
		cr_assert_eq(pthread_create(&th, NULL, write_until_killed,
					    &a[r]), 0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		do {	/* a different moment each round */
			usleep(1000);
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while (atomic_load(&a[r].acked) < target &&
			 t.tv_sec - t0.tv_sec < 20);
		mu_kill9(v);
		pthread_join(th, NULL);
		mu_unmount_dead(v);
		cr_assert_gt(atomic_load(&a[r].acked), 0, "round %d wrote "
			     "nothing", r);
	}
	mount_with(v, "[audit]\nsync = always\n", NULL, NULL);
	mu_unmount(v);
	cr_expect_eq(verify(v), 0, "the log does not verify after the kills");
	load_records(v);
	cr_expect_eq(count(AUDIT_RECOVERY), KILLS, "one recovery a kill");
	for (int r = 0; r < KILLS; r++)
		acked += atomic_load(&a[r].acked);
	cr_expect_geq(count(AUDIT_WRITE), (size_t)acked, "%zu write records "
		      "for %ld writes that returned", count(AUDIT_WRITE),
		      acked);
	for (int r = 0; r < KILLS; r++) {
		long n = atomic_load(&a[r].acked);

		snprintf(name, sizeof(name), "/f%d", r);
		/* The last acknowledged write of each of the 64 blocks. */
		for (long i = n - 1; i >= 0 && i >= n - 64; i--)
			cr_expect(has_write(name, i), "round %d: write %ld of "
				  "%ld returned, but has no record", r, i, n);
	}
	release_records();
}

/*
 * Under on_failure = allow a full log store stops no one: reads go on and
 * return the file's bytes; what was lost is a gap record once space is
 * back, and the log still verifies.
 */
Test(mount_audit, a_full_log_store_under_allow_lets_reads_go_on)
{
	struct mu_vol *v = mu_vol_new(0), *small = mu_vol_new(256 << 10);
	static uint8_t data[16 << 10], chunk[4096];
	char dir[256], ballast[256], conf[512], cmd[512];
	const char *extra[] = { "--config", conf, NULL };
	struct timespec t0, t = { 0 };
	int fd, rc;
	FILE *f;

	mu_require_fuse();
	snprintf(dir, sizeof(dir), "%s/log", small->backing);
	snprintf(ballast, sizeof(ballast), "%s/ballast", small->backing);
	snprintf(conf, sizeof(conf), "%s/phifs.conf", v->dir);
	f = fopen(conf, "w");
	cr_assert_not_null(f);
	fprintf(f, "[audit]\ndir = %s\non_failure = allow\n", dir);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(mu_phifs(v, false, NULL, NULL, NULL, extra), 0, "%s",
		     v->err);
	mu_fill(data, sizeof(data), mu_seed());
	mu_write_file(mu_m(v, "chart"), data, sizeof(data));
	/* The log's store full to the last block. */
	fd = open(ballast, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	while (write(fd, chunk, sizeof(chunk)) > 0)
		;
	close(fd);
	/* For a second: long past the writer's first failed batch. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; t.tv_sec - t0.tv_sec < 1 ||
			(t.tv_sec - t0.tv_sec == 1 && t.tv_nsec < t0.tv_nsec);
	     i++) {
		uint8_t *got = NULL;
		size_t n = 0;

		/* Each open and read is a record the log cannot keep. */
		cr_assert_eq(mu_read_file(mu_m(v, "chart"), &got, &n), 0,
			     "read %d refused under on_failure = allow", i);
		cr_assert_eq(n, sizeof(data));
		cr_assert_arr_eq(got, data, sizeof(data));
		free(got);
		usleep(10000);
		clock_gettime(CLOCK_MONOTONIC, &t);
	}
	cr_assert_eq(unlink(ballast), 0);
	mu_unmount(v);
	snprintf(cmd, sizeof(cmd), "%s/phifsctl audit verify %s >/dev/null",
		 PHIFS_BIN_DIR, dir);
	rc = system(cmd);
	cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 0,
		  "the log does not verify: %d", rc);
}
