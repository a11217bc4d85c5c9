/*
 * test_audit_hook.c — the record hook on a real operations core over a
 * fresh volume, its records caught by a fake sink: which operations give
 * which records with which fields, deny records with the rule, integrity
 * errors with path and block, fail-closed refusals, and hostile names
 * that still chain and verify.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/audit.h"
#include "phifs/audit_hook.h"
#include "phifs/crypto.h"
#include "phifs/format.h"
#include "phifs/policy.h"
#include "phifs/vfs.h"
#include "volfixture.h"

static char dir[64], keyfile[96];
static struct volume *vol;
static struct vfs *v;
static struct access *acc;
static struct audit_hook *hook;

/* What the fake sink kept of each record. */
struct kept {
	enum audit_op op, req;
	uint32_t uid, gid;
	int32_t pid;
	char path[8192], path2[8192], rule[1024];
	int64_t result;
	uint64_t off, len, block;
	uint32_t version;
	uint8_t sha256[AUDIT_HASH_LEN];
};

#define KEPT_MAX 256
static struct kept kept[KEPT_MAX];
static size_t nkept;
static bool failing;		/* put and ready say -EIO */
static bool put_only;		/* with failing: ready still says yes */
static size_t puts_refused;

/* Every record also chained into one segment, for the verifier. */
static struct audit_chain chain;
static char *seg;
static size_t seg_len;

static void copy(char *dst, size_t cap, const char *s, size_t n)
{
	cr_assert_lt(n, cap);
	memcpy(dst, s ? s : "", n);
	dst[n] = 0;
}

static int fake_put(void *arg, const struct audit_record *r)
{
	struct audit_record c = *r;
	struct kept *k;
	size_t len;

	(void)arg;
	if (failing) {
		puts_refused++;
		return -EIO;
	}
	cr_assert_lt(nkept, KEPT_MAX);
	k = &kept[nkept++];
	k->op = r->op;
	k->req = r->req;
	k->uid = r->uid;
	k->gid = r->gid;
	k->pid = r->pid;
	copy(k->path, sizeof(k->path), r->path, r->path_len);
	copy(k->path2, sizeof(k->path2), r->path2, r->path2_len);
	copy(k->rule, sizeof(k->rule), r->rule, r->rule ? strlen(r->rule) : 0);
	k->result = r->result;
	k->off = r->off;
	k->len = r->len;
	k->block = r->block;
	k->version = r->version;
	memcpy(k->sha256, r->sha256, AUDIT_HASH_LEN);
	c.ts_sec = 1;
	seg = realloc(seg, seg_len + AUDIT_MAX_LINE + 1);
	cr_assert_not_null(seg);
	cr_assert_eq(audit_chain_append(&chain, &c, seg + seg_len,
					AUDIT_MAX_LINE + 1, &len), 0,
		     "record %zu does not encode", nkept);
	seg_len += len;
	return 0;
}

static int fake_ready(void *arg)
{
	(void)arg;
	return failing && !put_only ? -EIO : 0;
}

static const struct audit_sink sink = { fake_put, fake_ready, NULL };

static const char policy_text[] =
	"[defaults]\nroot = allow\n"
	"[role:clinic]\nread = /p/**\nwrite = /p/**\n"
	"[user:100]\nroles = clinic\n";

static struct vfs_groups groups;
static const struct vfs_caller root_ = { .uid = 0, .gid = 0, .pid = 1,
					 .groups = &groups };
static const struct vfs_caller clinic = { .uid = 100, .gid = 100,
					  .pid = 2, .groups = &groups };
static const struct vfs_caller other = { .uid = 400, .gid = 400,
					 .pid = 3, .groups = &groups };

/* A hook with a policy (judge) or without. */
static void start(bool judge)
{
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN];

	if (judge) {
		cr_assert_eq(policy_parse("t.ini", policy_text,
					  strlen(policy_text), NULL, &p, err,
					  sizeof(err)), 0, "%s", err);
		cr_assert_eq(access_new(v, p, &acc), 0);
	}
	cr_assert_eq(audit_hook_new(v, acc, &sink, &hook), 0);
	vfs_set_hooks(v, &audit_hook_hooks, hook);
}

static void setup(void)
{
	strcpy(dir, "/tmp/phifs-audithook-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	vol = vf_make(dir, keyfile, sizeof(keyfile));
	cr_assert_eq(vfs_new(vol, NULL, NULL, &v), 0);
	groups.n = 0;
	nkept = 0;
	failing = false;
	put_only = false;
	puts_refused = 0;
	audit_chain_init(&chain);
	seg_len = 0;
}

static void teardown(void)
{
	char cmd[200];

	vfs_free(v);
	audit_hook_free(hook);
	access_free(acc);
	acc = NULL;
	hook = NULL;
	volume_close(vol);
	free(seg);
	seg = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %.60s %.90s", dir, keyfile);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(audit_hook, .init = setup, .fini = teardown);

static size_t count(enum audit_op op)
{
	size_t n = 0;

	for (size_t i = 0; i < nkept; i++)
		n += kept[i].op == op;
	return n;
}

static const struct kept *last(enum audit_op op)
{
	for (size_t i = nkept; i-- > 0;)
		if (kept[i].op == op)
			return &kept[i];
	cr_assert_fail("no %s record", audit_op_name(op));
	return NULL;
}

static void expect_sha(const struct kept *k, const void *bytes, size_t n)
{
	uint8_t want[AUDIT_HASH_LEN];

	cr_assert_eq(crypto_sha256(bytes, n, want), 0);
	cr_expect_eq(k->len, n);
	cr_expect_arr_eq(k->sha256, want, AUDIT_HASH_LEN);
}

Test(audit_hook, a_session_gives_exactly_its_records_with_their_fields)
{
	struct vfs_entry e;
	struct vfs_file *f, *g;
	struct vfs_hint hint;
	struct stat st = { .st_size = 2, .st_mode = 0600 };
	char buf[16];
	uint64_t d, fino;

	start(false);
	cr_assert_eq(vfs_mkdir(v, &clinic, VFS_ROOT, "p", 0755, &e), 0);
	d = e.ino;
	cr_assert_eq(vfs_create(v, &clinic, d, "chart", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	fino = e.ino;
	cr_assert_eq(vfs_write(v, &clinic, f, "hello", 5, 3), 5);
	/* Another process reads through the same open file: the record
	 * names the user who opened it, and the process that read. */
	cr_assert_eq(vfs_read(v, &other, f, buf, sizeof(buf), 3), 5);
	cr_assert_eq(vfs_setattr(v, &clinic, fino, &st, VFS_SET_SIZE, f), 0);
	cr_assert_eq(vfs_setattr(v, &clinic, fino, &st, VFS_SET_MODE, NULL),
		     0);
	cr_assert_eq(vfs_release(v, &clinic, f), 0);
	cr_assert_eq(vfs_open(v, &clinic, fino, O_RDONLY, &g, &hint), 0);
	vfs_opened(v, &hint);
	cr_assert_eq(vfs_release(v, &clinic, g), 0);
	cr_assert_eq(vfs_symlink(v, &clinic, "chart", d, "s", &e), 0);
	cr_assert_eq(vfs_link(v, &clinic, fino, VFS_ROOT, "l", &e), 0);
	cr_assert_eq(vfs_rename(v, &clinic, d, "chart", d, "c2", 0), 0);
	cr_assert_eq(vfs_unlink(v, &clinic, VFS_ROOT, "l"), 0);
	cr_assert_eq(vfs_unlink(v, &clinic, d, "c2"), 0);
	cr_assert_eq(vfs_unlink(v, &clinic, d, "s"), 0);
	cr_assert_eq(vfs_rmdir(v, &clinic, VFS_ROOT, "p"), 0);
	cr_expect_eq(vfs_rmdir(v, &clinic, VFS_ROOT, "p"), -ENOENT);
	/* stat and lookups are not recorded */
	cr_assert_eq(vfs_getattr(v, &clinic, VFS_ROOT, &st), 0);

	cr_expect_eq(nkept, 15, "%zu records", nkept);
	cr_expect_eq(count(AUDIT_MKDIR), 1);
	cr_expect_eq(count(AUDIT_CREATE), 1);
	cr_expect_eq(count(AUDIT_WRITE), 1);
	cr_expect_eq(count(AUDIT_READ), 1);
	cr_expect_eq(count(AUDIT_TRUNCATE), 1);
	cr_expect_eq(count(AUDIT_SETATTR), 1);
	cr_expect_eq(count(AUDIT_OPEN), 1);
	cr_expect_eq(count(AUDIT_SYMLINK), 1);
	cr_expect_eq(count(AUDIT_LINK), 1);
	cr_expect_eq(count(AUDIT_RENAME), 1);
	cr_expect_eq(count(AUDIT_UNLINK), 3);
	cr_expect_eq(count(AUDIT_RMDIR), 2);

	cr_expect_str_eq(last(AUDIT_CREATE)->path, "/p/chart");
	cr_expect_eq(last(AUDIT_WRITE)->off, 3);
	expect_sha(last(AUDIT_WRITE), "hello", 5);
	cr_expect_eq(last(AUDIT_READ)->uid, clinic.uid, "the opener");
	cr_expect_eq(last(AUDIT_READ)->pid, other.pid, "the reader");
	cr_expect_str_eq(last(AUDIT_READ)->path, "/p/chart");
	cr_expect_eq(last(AUDIT_READ)->result, 5);
	expect_sha(last(AUDIT_READ), "hello", 5);
	cr_expect_eq(last(AUDIT_TRUNCATE)->off, 2);
	cr_expect_str_eq(last(AUDIT_SYMLINK)->path, "/p/s");
	cr_expect_str_eq(last(AUDIT_SYMLINK)->path2, "chart");
	cr_expect_str_eq(last(AUDIT_LINK)->path, "/p/chart");
	cr_expect_str_eq(last(AUDIT_LINK)->path2, "/l");
	cr_expect_str_eq(last(AUDIT_RENAME)->path, "/p/chart");
	cr_expect_str_eq(last(AUDIT_RENAME)->path2, "/p/c2");
	cr_expect_eq(last(AUDIT_RMDIR)->result, -ENOENT);
}

Test(audit_hook, a_refusal_is_a_deny_record_with_user_path_and_rule)
{
	struct vfs_entry e;
	struct vfs_file *f;
	struct vfs_hint hint;
	uint64_t fino;

	start(true);
	cr_assert_eq(vfs_mkdir(v, &root_, VFS_ROOT, "p", 0755, &e), 0);
	cr_assert_eq(vfs_create(v, &clinic, e.ino, "chart", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	fino = e.ino;
	cr_assert_eq(vfs_release(v, &clinic, f), 0);
	nkept = 0;
	cr_expect_eq(vfs_open(v, &other, fino, O_RDONLY, &f, &hint), -EACCES);
	vfs_opened(v, &hint);
	cr_assert_eq(nkept, 1, "one deny, no open record");
	cr_expect_eq(kept[0].op, AUDIT_DENY);
	cr_expect_eq(kept[0].req, AUDIT_OPEN);
	cr_expect_eq(kept[0].uid, other.uid);
	cr_expect_str_eq(kept[0].path, "/p/chart");
	cr_expect_eq(kept[0].result, -EACCES);
	cr_expect_str_eq(kept[0].rule, "read /p/chart: no role grants it; "
			 "defaults: unmatched = deny (built in)");
}

Test(audit_hook, a_block_failing_authentication_is_an_integrity_error)
{
	struct vfs_entry e;
	struct vfs_file *f;
	struct vfs_hint hint;
	static char data[3 * 4096];
	char path[160];
	int fd;

	start(false);
	cr_assert_eq(vfs_mkdir(v, &clinic, VFS_ROOT, "ward", 0755, &e), 0);
	cr_assert_eq(vfs_create(v, &clinic, e.ino, "chart", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_write(v, &clinic, f, data, sizeof(data), 0),
		     (ssize_t)sizeof(data));
	cr_assert_eq(vfs_release(v, &clinic, f), 0);
	snprintf(path, sizeof(path), "%s/ward/chart", dir);
	fd = open(path, O_WRONLY);
	cr_assert_eq(pwrite(fd, "\x55", 1, (off_t)format_block_offset(1) + 9),
		     1);
	close(fd);
	cr_assert_eq(vfs_open(v, &other, e.ino, O_RDONLY, &f, &hint), 0);
	vfs_opened(v, &hint);
	nkept = 0;
	cr_expect_eq(vfs_read(v, &other, f, data, 4096, 4096), -EBADMSG);
	cr_assert_eq(vfs_release(v, &other, f), 0);
	cr_expect_eq(count(AUDIT_INTEGRITY_ERROR), 1);
	cr_expect_str_eq(last(AUDIT_INTEGRITY_ERROR)->path, "/ward/chart");
	cr_expect_eq(last(AUDIT_INTEGRITY_ERROR)->block, 1);
	cr_expect_eq(last(AUDIT_INTEGRITY_ERROR)->uid, other.uid);
	cr_expect_eq(last(AUDIT_READ)->result, -EBADMSG);
	cr_expect_eq(last(AUDIT_READ)->len, 0);
}

/* The plaintext file's bytes, through a fresh open. */
static size_t read_back(uint64_t ino, char *buf, size_t cap)
{
	struct vfs_file *f;
	struct vfs_hint hint;
	ssize_t n;

	cr_assert_eq(vfs_open(v, &clinic, ino, O_RDONLY, &f, &hint), 0);
	vfs_opened(v, &hint);
	n = vfs_read(v, &clinic, f, buf, cap, 0);
	cr_assert_geq(n, 0);
	cr_assert_eq(vfs_release(v, &clinic, f), 0);
	return (size_t)n;
}

Test(audit_hook, fail_closed_no_plaintext_without_its_record)
{
	struct vfs_entry e;
	struct vfs_file *f;
	struct vfs_hint hint;
	char buf[32];
	uint64_t fino;

	start(false);
	cr_assert_eq(vfs_create(v, &clinic, VFS_ROOT, "chart", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	fino = e.ino;
	cr_assert_eq(vfs_write(v, &clinic, f, "secret", 6, 0), 6);
	failing = true;
	memset(buf, 0, sizeof(buf));
	cr_expect_eq(vfs_read(v, &clinic, f, buf, sizeof(buf), 0), -EIO);
	for (size_t k = 0; k < sizeof(buf); k++)
		cr_expect_eq(buf[k], 0, "plaintext in byte %zu", k);
	/* Refused before anything is touched: the file keeps its bytes. */
	cr_expect_eq(vfs_write(v, &clinic, f, "XXXXXX", 6, 0), -EIO);
	cr_expect_eq(vfs_unlink(v, &clinic, VFS_ROOT, "chart"), -EIO);
	cr_expect_eq(vfs_mkdir(v, &clinic, VFS_ROOT, "d", 0755, &e), -EIO);
	cr_expect_eq(vfs_open(v, &clinic, fino, O_RDONLY, &f, &hint), -EIO);
	vfs_opened(v, &hint);
	cr_expect_eq(puts_refused, 0, "refused before a record was tried");
	failing = false;
	cr_assert_eq(vfs_release(v, &clinic, f), 0);
	cr_expect_eq(read_back(fino, buf, sizeof(buf)), 6);
	cr_expect_eq(memcmp(buf, "secret", 6), 0);
}

Test(audit_hook, a_read_whose_record_fails_after_the_check_returns_nothing)
{
	struct vfs_entry e;
	struct vfs_file *f;
	char buf[32];

	start(false);
	cr_assert_eq(vfs_create(v, &clinic, VFS_ROOT, "chart", 0644,
				O_CREAT | O_RDWR, &e, &f), 0);
	cr_assert_eq(vfs_write(v, &clinic, f, "secret", 6, 0), 6);
	/* ready says yes, then put fails (a disk filling between the two) */
	failing = put_only = true;
	memset(buf, 0, sizeof(buf));
	cr_expect_eq(vfs_read(v, &clinic, f, buf, sizeof(buf), 0), -EIO);
	for (size_t k = 0; k < sizeof(buf); k++)
		cr_expect_eq(buf[k], 0, "plaintext in byte %zu", k);
	cr_expect_eq(vfs_write(v, &clinic, f, "more", 4, 6), -EIO);
	failing = false;
	cr_assert_eq(vfs_release(v, &clinic, f), 0);
}

/* --- hostile names --- */

/* Makes name in parent, a folder; its inode. */
static uint64_t folder(uint64_t parent, const char *name)
{
	struct vfs_entry e;

	cr_assert_eq(vfs_mkdir(v, &clinic, parent, name, 0755, &e), 0,
		     "mkdir %s", name);
	return e.ino;
}

Test(audit_hook, hostile_names_chain_into_lines_that_verify)
{
	static const char *const names[] = {
		"new\nline", "quo\"te", "back\\slash", "bad\xff\xfeutf8",
		"tab\tcr\r\x01\x1f", "caf\xc3\xa9",
	};
	char long_name[256], path[160];
	struct crypto_key *priv;
	uint8_t pub[CRYPTO_ED25519_PUB_LEN];
	struct audit_segment sg = { .name = "seg-00000000000000000001.jsonl" };
	struct audit_verdict vd;
	uint64_t at = VFS_ROOT;
	size_t depth = 0, lines = 0;

	start(false);
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		(void)folder(VFS_ROOT, names[i]);
	memset(long_name, 'n', 255);
	long_name[255] = 0;
	/* Nested 255-byte folders, past 4,096 bytes of path. */
	while (depth * 256 < 4096 + 512) {
		at = folder(at, long_name);
		depth++;
	}
	cr_expect_eq(nkept, 6 + depth);
	cr_expect_str_eq(kept[0].path, "/new\nline");
	cr_expect_str_eq(kept[3].path, "/bad\xff\xfeutf8");
	/* The deepest path is cut to its last bytes, after "...". */
	cr_expect_eq(strlen(kept[nkept - 1].path), AUDIT_HOOK_PATH_MAX);
	cr_expect_eq(strncmp(kept[nkept - 1].path, "...", 3), 0);
	/* A record at 4,096 bytes or just under is whole. */
	for (size_t i = 6; i < nkept - 1; i++)
		if (strncmp(kept[i].path, "...", 3))
			cr_expect_eq(strlen(kept[i].path), (i - 5) * 256);
	for (size_t k = 0; k < seg_len; k++)
		lines += seg[k] == '\n';
	cr_expect_eq(lines, nkept, "one line per record");
	cr_assert_eq(crypto_ed25519_keygen(&priv, pub), 0);
	crypto_key_free(priv);
	sg.buf = seg;
	sg.len = seg_len;
	cr_expect_eq(audit_verify(&sg, 1, pub, NULL, 0, &vd), 0, "%s line "
		     "%zu", vd.reason, vd.line);
	cr_expect_eq(vd.records, nkept);
	(void)path;
}

/*
 * Pseudonymous paths stay within what the writer takes (4,096 bytes), a
 * deep one keeping its last components after "...": a path of one-byte
 * names grows 17 times as a pseudonym, and must not fail its operation.
 */
Test(audit_hook, a_deep_pseudonymous_path_keeps_its_end)
{
	uint8_t seed[CRYPTO_KEY_LEN] = { 7 };
	struct crypto_key *k = crypto_key_from(seed);
	uint64_t at = VFS_ROOT;

	cr_assert_not_null(k);
	start(false);
	audit_hook_pseudonymous(hook, k);
	for (int depth = 0; depth < 200; depth++)
		at = folder(at, "a");
	cr_expect_eq(nkept, 200);
	for (size_t i = 0; i < nkept; i++) {
		cr_expect_leq(strlen(kept[i].path), AUDIT_HOOK_PATH_MAX,
			      "record %zu: %zu bytes", i,
			      strlen(kept[i].path));
		cr_expect_eq(kept[i].path[0] == '.', i >= 120,
			     "record %zu: %.8s", i, kept[i].path);
		cr_expect(!strstr(kept[i].path, "/a/"), "a plain name");
	}
	crypto_key_free(k);
}
