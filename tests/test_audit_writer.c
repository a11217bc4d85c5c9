/*
 * test_audit_writer.c — tests for the integrity log's writer
 * (src/audit_writer.c, src/audit_seg.c): records from many threads in
 * seq order, the sync modes, segment roll and sealing, checkpoints,
 * kill -9 and torn tails mended on reopen, a full disk (a small tmpfs)
 * failing closed and recovering, the audit key pinned by audit.pub, and
 * anchors.  Every log is checked with the real verifier, audit_verify().
 */
#include "phifs/audit_writer.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "phifs/log.h"
#include "testutil.h"

static struct crypto_key *key, *other;
static uint8_t pub[CRYPTO_ED25519_PUB_LEN], other_pub[CRYPTO_ED25519_PUB_LEN];
static char tmp[64], dir[160], mnt[128];
static bool mounted;

static unsigned flag_warnings;

/* What the writer tells the operator, shown with the test's output. */
static void sink(int priority, const char *line)
{
	(void)priority;
	if (strstr(line, "refuse the append-only"))
		flag_warnings++;
	cr_log_info("log: %s", line);
}

static void setup(void)
{
	log_set_sink(sink);
	log_open(false);
	cr_assert_eq(crypto_ed25519_keygen(&key, pub), 0);
	cr_assert_eq(crypto_ed25519_keygen(&other, other_pub), 0);
	strcpy(tmp, "/tmp/phifs-awXXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(dir, sizeof(dir), "%s/log", tmp);
}

/* Sealed segments are immutable where the flags work: unset them first. */
static int rm_one(const char *p, const struct stat *st, int type,
		  struct FTW *f)
{
	int fd, flags;

	(void)st;
	(void)f;
	fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
	    (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL))) {
		flags &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
		ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	if (fd >= 0)
		close(fd);
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

static void teardown(void)
{
	if (mounted)
		umount2(mnt, MNT_DETACH);
	mounted = false;
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	crypto_key_free(key);
	crypto_key_free(other);
	log_close();
	log_set_sink(NULL);
}

TestSuite(audit_writer, .init = setup, .fini = teardown, .timeout = 120);

static struct audit_writer_conf conf_for(const char *d)
{
	struct audit_writer_conf c = {
		.dir = d, .sync = AUDIT_SYNC_BATCH, .deny_on_failure = true,
		.key = key,
	};

	return c;
}

static void rec(struct audit_record *r, uint64_t off)
{
	memset(r, 0, sizeof(*r));
	r->uid = 1000;
	r->gid = 100;
	r->pid = 42;
	strcpy(r->comm, "cat");
	r->op = AUDIT_WRITE;
	r->path = "/patients/a\nb";
	r->path_len = strlen(r->path);
	r->off = off;
	r->len = 3;
	r->result = 3;
	crypto_sha256("abc", 3, r->sha256);
}

static struct audit_writer *open_ok(struct audit_writer_conf *c,
				    struct audit_writer_opened *o)
{
	struct audit_writer *w = NULL;
	int rc = audit_writer_open(c, &w, o);

	cr_assert_eq(rc, 0, "open: %s", strerror(-rc));
	return w;
}

static void put_ok(struct audit_writer *w, uint64_t off)
{
	struct audit_record r;

	rec(&r, off);
	cr_assert_eq(audit_writer_put(w, &r), 0);
}

/* The verifier's word on the folder d; rc returned, verdict in v. */
static int verify(const char *d, const char *anchor, struct audit_verdict *v)
{
	struct audit_segset set = { 0 };
	char err[512];
	int rc = audit_dir_load(d, &set, err, sizeof(err));

	cr_assert_eq(rc, 0, "%s", err);
	rc = audit_verify(set.segs, set.n, pub, anchor,
			  anchor ? strlen(anchor) : 0, v);
	if (rc)
		cr_log_info("verify: segment %zu line %zu: %s", v->seg,
			     v->line, v->reason);
	audit_dir_release(&set);
	return rc;
}

static void verify_ok(const char *d, struct audit_verdict *v)
{
	cr_assert_eq(verify(d, NULL, v), 0, "%s", v->reason);
}

/* Calls fn on every record of the log in d. */
static void each_record(const char *d,
			void (*fn)(const struct audit_record *, void *),
			void *arg)
{
	struct audit_segset set = { 0 };
	char err[512];

	cr_assert_eq(audit_dir_load(d, &set, err, sizeof(err)), 0, "%s", err);
	for (size_t i = 0; i < set.n; i++) {
		const char *p = set.segs[i].buf, *end = p + set.segs[i].len;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			struct audit_record r;

			cr_assert_not_null(nl);
			cr_assert_eq(audit_record_parse(p, (size_t)(nl - p), &r,
							err, sizeof(err)), 0,
				     "%s", err);
			fn(&r, arg);
			audit_record_release(&r);
			p = nl + 1;
		}
	}
	audit_dir_release(&set);
}

struct opcount {
	enum audit_op op;
	uint64_t n;
};

static void count_op(const struct audit_record *r, void *arg)
{
	struct opcount *c = arg;

	c->n += r->op == c->op;
}

static uint64_t count(const char *d, enum audit_op op)
{
	struct opcount c = { .op = op };

	each_record(d, count_op, &c);
	return c.n;
}

/* The segment names in d, sorted; returns how many. */
static size_t segments(const char *d, char names[][AUDIT_SEG_NAME_LEN + 1],
		       size_t max)
{
	struct audit_segset set = { 0 };
	char err[512];
	size_t n;

	cr_assert_eq(audit_dir_load(d, &set, err, sizeof(err)), 0, "%s", err);
	n = set.n;
	for (size_t i = 0; i < n && i < max; i++)
		strcpy(names[i], set.segs[i].name);
	audit_dir_release(&set);
	return n;
}

static mode_t mode_of(const char *d, const char *name)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", d, name);
	cr_assert_eq(stat(p, &st), 0, "%s", p);
	return st.st_mode & 07777;
}

/* ---- order, threads, counts ---- */

#define THREADS 4
#define PER_THREAD 2000

struct putter {
	struct audit_writer *w;
	unsigned id;
};

static void *put_many(void *arg)
{
	struct putter *p = arg;
	struct audit_record r;

	for (uint64_t i = 0; i < PER_THREAD; i++) {
		rec(&r, (uint64_t)p->id << 32 | i);
		r.pid = (int32_t)p->id;
		if (audit_writer_put(p->w, &r))
			return (void *)1;
	}
	return NULL;
}

struct order {
	uint64_t next[THREADS];
	uint64_t seq;
	bool ok;
};

static void check_order(const struct audit_record *r, void *arg)
{
	struct order *o = arg;

	if (r->seq != o->seq + 1)
		o->ok = false;
	o->seq = r->seq;
	if (r->op != AUDIT_WRITE)
		return;
	/* Each thread's records in the order it put them. */
	if ((r->off & 0xffffffffu) != o->next[r->pid]++)
		o->ok = false;
}

Test(audit_writer, records_from_many_threads_all_appear_in_seq_order)
{
	struct audit_writer_conf c = conf_for(dir);
	struct audit_writer_stats s;
	struct audit_verdict v;
	struct putter p[THREADS];
	pthread_t t[THREADS];
	struct order o = { .ok = true };
	struct audit_writer *w = open_ok(&c, NULL);
	void *res;

	for (unsigned i = 0; i < THREADS; i++) {
		p[i] = (struct putter){ .w = w, .id = i };
		cr_assert_eq(pthread_create(&t[i], NULL, put_many, &p[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(t[i], &res);
		cr_assert_null(res);
	}
	cr_assert_eq(audit_writer_flush(w, 10000), 0);
	audit_writer_stats(w, &s);
	cr_assert_eq(s.queued, 0);
	cr_assert_eq(s.synced, s.written);
	cr_assert_eq(s.refused + s.dropped + s.failures, 0);
	cr_assert_eq(audit_writer_close(w), 0);

	verify_ok(dir, &v);
	cr_assert_eq(count(dir, AUDIT_WRITE), THREADS * PER_THREAD);
	cr_assert_eq(v.records, THREADS * PER_THREAD + v.checkpoints);
	cr_assert_eq(v.unsealed, 0, "close seals the log");
	cr_assert_geq(v.checkpoints, 1);
	cr_assert_eq(v.recoveries, 0);
	each_record(dir, check_order, &o);
	cr_assert(o.ok, "records out of order");
}

Test(audit_writer, writes_audit_pub_and_refuses_another_key)
{
	struct audit_writer_conf c = conf_for(dir);
	struct audit_writer *w = open_ok(&c, NULL);
	char p[512], text[AUDIT_PUB_TEXT_LEN + 1], *buf;
	size_t len;

	cr_assert_eq(audit_writer_close(w), 0);
	snprintf(p, sizeof(p), "%s/%s", dir, AUDIT_PUB_FILE);
	cr_assert_eq(audit_read_file(p, &buf, &len, 4096), 0);
	audit_pub_format(pub, text);
	cr_assert_eq(len, AUDIT_PUB_TEXT_LEN);
	cr_assert_eq(memcmp(buf, text, len), 0);
	free(buf);
	cr_assert_eq(mode_of(dir, "."), 0700);

	c.key = other;
	w = NULL;
	cr_assert_eq(audit_writer_open(&c, &w, NULL), -EKEYREJECTED);
	cr_assert_null(w);
	c.key = key;
	w = open_ok(&c, NULL);
	put_ok(w, 1);
	cr_assert_eq(audit_writer_close(w), 0);

	/* audit.pub removed: the last checkpoint still names the key. */
	cr_assert_eq(unlink(p), 0);
	c.key = other;
	cr_assert_eq(audit_writer_open(&c, &w, NULL), -EKEYREJECTED);
	c.key = key;
	w = open_ok(&c, NULL);
	cr_assert_eq(audit_writer_close(w), 0);
}

Test(audit_writer, refuses_records_it_cannot_encode_and_its_own_ops)
{
	struct audit_writer_conf c = conf_for(dir);
	struct audit_writer *w = open_ok(&c, NULL);
	struct audit_record r;

	rec(&r, 0);
	r.op = AUDIT_CHECKPOINT;
	cr_assert_eq(audit_writer_put(w, &r), -EINVAL);
	r.op = AUDIT_RECOVERY;
	cr_assert_eq(audit_writer_put(w, &r), -EINVAL);
	r.op = AUDIT_OP_COUNT;
	cr_assert_eq(audit_writer_put(w, &r), -EINVAL);
	rec(&r, 0);
	r.path = "a\0b";
	r.path_len = 3;
	cr_assert_eq(audit_writer_put(w, &r), -EINVAL);
	{
		static char longest[4097];

		memset(longest, 'x', sizeof(longest));
		r.path = longest;
		r.path_len = 4096;
		cr_assert_eq(audit_writer_put(w, &r), 0);
		r.path_len = 4097;
		cr_assert_eq(audit_writer_put(w, &r), -ENAMETOOLONG);
	}
	cr_assert_eq(audit_writer_close(w), 0);
	cr_assert_eq(count(dir, AUDIT_WRITE), 1);
}

/* ---- sync modes ---- */

/* Whether the newest segment in d holds a write record at off. */
static bool on_disk(const char *d, uint64_t off)
{
	char names[64][AUDIT_SEG_NAME_LEN + 1], p[512], want[64], *buf;
	size_t n = segments(d, names, 64), len;
	bool found;

	if (!n)
		return false;
	snprintf(p, sizeof(p), "%s/%s", d, names[n - 1]);
	cr_assert_eq(audit_read_file(p, &buf, &len, 1 << 26), 0);
	snprintf(want, sizeof(want), "\"off\":%llu,", (unsigned long long)off);
	found = memmem(buf, len, want, strlen(want)) != NULL;
	free(buf);
	return found;
}

Test(audit_writer, under_always_a_record_is_on_disk_when_put_returns)
{
	struct audit_writer_conf c = conf_for(dir);
	struct audit_writer_stats s;
	struct audit_writer *w;

	c.sync = AUDIT_SYNC_ALWAYS;
	w = open_ok(&c, NULL);
	for (uint64_t i = 1; i <= 20; i++) {
		put_ok(w, 1000 + i);
		cr_assert(on_disk(dir, 1000 + i), "record %llu not on disk",
			  (unsigned long long)i);
		audit_writer_stats(w, &s);
		cr_assert_geq(s.synced, i, "put returned before it was synced");
	}
	cr_assert_eq(audit_writer_close(w), 0);
}

Test(audit_writer, flush_makes_batch_and_none_durable)
{
	enum audit_sync modes[] = { AUDIT_SYNC_BATCH, AUDIT_SYNC_NONE };
	struct audit_verdict v;

	for (int m = 0; m < 2; m++) {
		struct audit_writer_conf c = conf_for(dir);
		struct audit_writer_stats s;
		struct audit_writer *w;

		c.sync = modes[m];
		w = open_ok(&c, NULL);
		put_ok(w, 5000 + (uint64_t)m);
		cr_assert_eq(audit_writer_flush(w, 10000), 0);
		cr_assert(on_disk(dir, 5000 + (uint64_t)m));
		audit_writer_stats(w, &s);
		cr_assert_eq(s.synced, s.written);
		cr_assert_eq(audit_writer_close(w), 0);
	}
	verify_ok(dir, &v);
	cr_assert_eq(v.unsealed, 0);
}

/* ---- segments ---- */

Test(audit_writer, segments_roll_by_size_and_are_sealed)
{
	struct audit_writer_conf c = conf_for(dir);
	char names[64][AUDIT_SEG_NAME_LEN + 1];
	struct audit_verdict v;
	struct audit_writer *w;
	size_t n;

	c.segment_bytes = 4096;
	w = open_ok(&c, NULL);
	for (uint64_t i = 0; i < 200; i++)
		put_ok(w, i);
	cr_assert_eq(audit_writer_close(w), 0);
	n = segments(dir, names, 64);
	cr_assert_geq(n, 3, "%zu segments", n);
	verify_ok(dir, &v);	/* the chain crosses them */
	cr_assert_eq(count(dir, AUDIT_WRITE), 200);
	/* Each closed by a checkpoint, as the verifier counts them. */
	cr_assert_geq(v.checkpoints, n);
	cr_assert_eq(v.unsealed, 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(mode_of(dir, names[i]), 0444, "%s", names[i]);
}

struct sealed_arg {
	const char *dir;
	size_t nsegs;
};

/* The newest segment is sealed (0444), and there are nsegs. */
static bool newest_sealed(void *arg)
{
	struct sealed_arg *a = arg;
	char names[64][AUDIT_SEG_NAME_LEN + 1];
	size_t n = segments(a->dir, names, 64);

	return n == a->nsegs && mode_of(a->dir, names[n - 1]) == 0444;
}

Test(audit_writer, segments_roll_by_age_while_idle)
{
	struct audit_writer_conf c = conf_for(dir);
	struct sealed_arg a = { .dir = dir, .nsegs = 1 };
	struct audit_verdict v;
	struct audit_writer *w;

	c.segment_ms = 50;
	w = open_ok(&c, NULL);
	put_ok(w, 1);
	cr_assert(tu_wait_until(newest_sealed, &a, 5000),
		  "the segment was not sealed after its age");
	put_ok(w, 2);
	a.nsegs = 2;
	cr_assert(tu_wait_until(newest_sealed, &a, 5000));
	/* Live, between segments: the log verifies and is all sealed. */
	verify_ok(dir, &v);
	cr_assert_eq(v.unsealed, 0);
	cr_assert_eq(count(dir, AUDIT_WRITE), 2);
	cr_assert_eq(audit_writer_close(w), 0);
}

static int flags_of(const char *d, const char *name)
{
	char p[512];
	int fd, flags = 0;

	snprintf(p, sizeof(p), "%s/%s", d, name);
	fd = open(p, O_RDONLY);
	cr_assert_geq(fd, 0, "%s", p);
	cr_assert_eq(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
	close(fd);
	return flags;
}

static int open_errno(const char *d, const char *name, int how)
{
	char p[512];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", d, name);
	fd = open(p, how);
	if (fd >= 0)
		close(fd);
	return fd >= 0 ? 0 : errno;
}

Test(audit_writer, segments_are_append_only_then_immutable_where_allowed)
{
	struct audit_writer_conf c = conf_for(dir);
	char names[4][AUDIT_SEG_NAME_LEN + 1];
	struct audit_writer_stats s;
	struct audit_writer *w = open_ok(&c, NULL);

	put_ok(w, 1);
	cr_assert_eq(audit_writer_flush(w, 10000), 0);
	audit_writer_stats(w, &s);
	if (s.unflagged) {
		cr_assert_eq(audit_writer_close(w), 0);
		cr_skip_test("this file system or user cannot set inode flags");
	}
	cr_assert_eq(segments(dir, names, 4), 1);
	cr_assert(flags_of(dir, names[0]) & FS_APPEND_FL);
	cr_assert_eq(mode_of(dir, names[0]), 0600);
	/* Not even root may write it but at its end. */
	cr_assert_eq(open_errno(dir, names[0], O_WRONLY), EPERM);
	cr_assert_eq(open_errno(dir, names[0], O_WRONLY | O_APPEND), 0);
	cr_assert_eq(audit_writer_close(w), 0);
	cr_assert(flags_of(dir, names[0]) & FS_IMMUTABLE_FL);
	cr_assert_not(flags_of(dir, names[0]) & FS_APPEND_FL);
	cr_assert_eq(mode_of(dir, names[0]), 0444);
	cr_assert_eq(open_errno(dir, names[0], O_WRONLY | O_APPEND), EPERM);
}

/* This test's process (Criterion runs each in its own) loses the right
 * to set the inode flags, as a daemon not run as root has not got it. */
static void drop_cap_linux_immutable(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];

	cr_assert_eq(syscall(SYS_capget, &h, d), 0);
	d[CAP_LINUX_IMMUTABLE / 32].effective &=
		~(1u << (CAP_LINUX_IMMUTABLE % 32));
	cr_assert_eq(syscall(SYS_capset, &h, d), 0);
}

Test(audit_writer, without_the_inode_flags_it_goes_on_and_says_so_once)
{
	struct audit_writer_conf c = conf_for(dir);
	char names[8][AUDIT_SEG_NAME_LEN + 1];
	struct audit_writer_stats s;
	struct audit_verdict v;
	struct audit_writer *w;
	size_t n;

	drop_cap_linux_immutable();
	c.segment_bytes = 2048;
	w = open_ok(&c, NULL);
	for (uint64_t i = 0; i < 20; i++)
		put_ok(w, i);
	cr_assert_eq(audit_writer_flush(w, 10000), 0);
	audit_writer_stats(w, &s);
	cr_assert_gt(s.unflagged, 1);
	cr_assert_eq(flag_warnings, 1, "%u warnings", flag_warnings);
	cr_assert_eq(audit_writer_close(w), 0);
	n = segments(dir, names, 8);
	cr_assert_gt(n, 1);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(mode_of(dir, names[i]), 0444);
		cr_assert_not(flags_of(dir, names[i]) &
			      (FS_IMMUTABLE_FL | FS_APPEND_FL));
	}
	verify_ok(dir, &v);
	cr_assert_eq(count(dir, AUDIT_WRITE), 20);
}

static bool checkpointed(void *arg)
{
	struct audit_writer_stats s;

	audit_writer_stats(arg, &s);
	return s.checkpoint_seq > 0;
}

Test(audit_writer, checkpoints_every_n_records_and_every_t_ms)
{
	struct audit_writer_conf c = conf_for(dir);
	struct audit_writer_stats s;
	struct audit_verdict v;
	struct audit_writer *w;

	c.checkpoint_records = 10;
	c.checkpoint_ms = 3600000;
	w = open_ok(&c, NULL);
	for (uint64_t i = 0; i < 35; i++)
		put_ok(w, i);
	cr_assert_eq(audit_writer_flush(w, 10000), 0);
	verify_ok(dir, &v);
	cr_assert_eq(v.checkpoints, 3, "%llu",
		     (unsigned long long)v.checkpoints);
	cr_assert_eq(v.unsealed, 5);
	cr_assert_eq(audit_writer_close(w), 0);

	c.checkpoint_records = 1000000;
	c.checkpoint_ms = 50;
	w = open_ok(&c, NULL);
	put_ok(w, 99);
	cr_assert(tu_wait_until(checkpointed, w, 5000));
	audit_writer_stats(w, &s);
	cr_assert_geq(s.checkpoint_ts, 1796601600);	/* 2026-12-07 */
	cr_assert_eq(audit_writer_close(w), 0);
}

Test(audit_writer, anchor_is_a_checkpoint_the_verifier_accepts)
{
	struct audit_writer_conf c = conf_for(dir);
	char line[AUDIT_MAX_LINE];
	struct audit_verdict v;
	struct audit_writer *w = open_ok(&c, NULL);
	size_t len;

	for (uint64_t i = 0; i < 3; i++)
		put_ok(w, i);
	cr_assert_eq(audit_writer_anchor(w, line, sizeof(line), &len), 0);
	cr_assert_eq(strlen(line), len);
	cr_assert_not_null(strstr(line, "\"op\":\"checkpoint\""));
	cr_assert_eq(verify(dir, line, &v), 0, "%s", v.reason);
	cr_assert(v.anchored);
	cr_assert_eq(v.last_seq, 4);
	cr_assert_eq(audit_writer_anchor(w, line, 10, &len), -ENOSPC);
	put_ok(w, 4);
	cr_assert_eq(audit_writer_close(w), 0);
	cr_assert_eq(verify(dir, line, &v), 0, "%s", v.reason);
	cr_assert(v.anchored);
}

/* ---- crashes ---- */

static uint64_t log_bytes(const char *d)
{
	struct audit_segset set = { 0 };
	char err[512];
	uint64_t n = 0;

	if (audit_dir_load(d, &set, err, sizeof(err)))
		return 0;
	for (size_t i = 0; i < set.n; i++)
		n += set.segs[i].len;
	audit_dir_release(&set);
	return n;
}

struct grown {
	const char *dir;
	uint64_t want;
	pid_t child;
	int status;
	bool gone;
};

static bool grown_or_gone(void *arg)
{
	struct grown *g = arg;

	if (waitpid(g->child, &g->status, WNOHANG) != 0)
		return g->gone = true;
	return log_bytes(g->dir) >= g->want;
}

/* The child: puts records until it is killed. */
_Noreturn static void put_forever(struct audit_writer_conf *c,
				  volatile uint64_t *acked)
{
	struct audit_writer *w;
	struct audit_record r;

	if (audit_writer_open(c, &w, NULL))
		_exit(3);
	for (uint64_t k = 1;; k++) {
		rec(&r, k);
		r.pid = getpid();
		/* Faster than any disk: the queue fills and put() refuses
		 * (fail closed); as a caller would, wait for room. */
		while (audit_writer_put(w, &r)) {
			struct audit_writer_stats s;

			audit_writer_stats(w, &s);
			if (s.failing)
				_exit(4);
			usleep(1000);
		}
		__atomic_store_n(acked, k, __ATOMIC_SEQ_CST);
	}
}

struct acked {
	int32_t pid;
	uint64_t n, max;
};

static void count_child(const struct audit_record *r, void *arg)
{
	struct acked *a = arg;

	if (r->op != AUDIT_WRITE || r->pid != a->pid)
		return;
	a->n++;
	if (r->off > a->max)
		a->max = r->off;
}

/* One kill -9 of a writer; returns whether reopening recovered. */
static bool crash_once(unsigned i, volatile uint64_t *acked, uint64_t *seed)
{
	struct audit_writer_conf c = conf_for(dir);
	struct audit_writer_opened o;
	struct grown g = { .dir = dir };
	struct acked a;
	int status;

	c.sync = i % 2 ? AUDIT_SYNC_ALWAYS : AUDIT_SYNC_BATCH;
	/* Every third child's segments roll, so kills land near seals. */
	c.segment_bytes = i % 3 == 0 ? 8192 : 0;
	*acked = 0;
	g.want = log_bytes(dir) + 4096 + tu_rand(seed) % 32768;
	g.child = fork();
	cr_assert_geq(g.child, 0);
	if (g.child == 0)
		put_forever(&c, acked);
	cr_assert(tu_wait_until(grown_or_gone, &g, 30000));
	cr_assert_not(g.gone, "kill %u: the child exited early, status %#x",
		      i, g.status);
	cr_assert_eq(kill(g.child, SIGKILL), 0);
	cr_assert_eq(waitpid(g.child, &status, 0), g.child);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	c.segment_bytes = 0;
	cr_assert_eq(audit_writer_close(open_ok(&c, &o)), 0);
	if (c.sync == AUDIT_SYNC_ALWAYS) {
		/* No put() that returned lacks its record. */
		a = (struct acked){ .pid = g.child };
		each_record(dir, count_child, &a);
		cr_assert_geq(a.max, *acked, "acked %llu, logged up to %llu",
			      (unsigned long long)*acked,
			      (unsigned long long)a.max);
		cr_assert_eq(a.n, a.max, "a hole in the child's records");
	}
	return o.recovered;
}

Test(audit_writer, kill_9_twenty_times_each_reopen_recovers_and_verifies)
{
	volatile uint64_t *acked = mmap(NULL, sizeof(uint64_t),
					PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct audit_verdict v;
	uint64_t seed = 0x5eed0000u + (uint64_t)getpid(), recovered = 0;

	cr_assert_neq(acked, MAP_FAILED);
	for (unsigned i = 0; i < 20; i++) {
		bool r = crash_once(i, acked, &seed);

		/* Without rolls the killed segment is never sealed. */
		cr_assert(r || i % 3 == 0, "kill %u: no recovery", i);
		recovered += r;
		verify_ok(dir, &v);
		cr_assert_eq(v.recoveries, recovered);
		cr_assert_eq(v.unsealed, 0);
	}
	munmap((void *)acked, sizeof(uint64_t));
}

/* Appends bytes to the newest segment, as a torn write would leave. */
static void append_newest(const char *d, const char *bytes, size_t n)
{
	char names[64][AUDIT_SEG_NAME_LEN + 1], p[512];
	size_t k = segments(d, names, 64);
	int fd, flags = 0;

	cr_assert_gt(k, 0);
	snprintf(p, sizeof(p), "%s/%s", d, names[k - 1]);
	fd = open(p, O_RDONLY);
	cr_assert_geq(fd, 0);
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		flags &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
		ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	cr_assert_eq(fchmod(fd, 0600), 0);
	close(fd);
	fd = open(p, O_WRONLY | O_APPEND);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, bytes, n), (ssize_t)n);
	close(fd);
}

Test(audit_writer, a_torn_tail_is_cut_and_a_recovery_written)
{
	static const char half[] = "{\"seq\":9,\"ts\":\"2026-12-07T00:0";
	static const char bad[] = "{\"seq\":9,\"not\":\"a record\"}\n";
	struct audit_writer_conf c = conf_for(dir);
	struct audit_writer_opened o;
	struct audit_verdict v;
	struct audit_writer *w = open_ok(&c, &o);

	cr_assert_not(o.recovered);
	cr_assert_eq(o.last_seq, 0);
	for (uint64_t i = 0; i < 5; i++)
		put_ok(w, i);
	cr_assert_eq(audit_writer_close(w), 0);	/* 5 + a checkpoint */

	append_newest(dir, half, strlen(half));
	cr_assert_neq(verify(dir, NULL, &v), 0, "the torn line is a fault");
	w = open_ok(&c, &o);
	cr_assert(o.recovered);
	cr_assert_eq(o.cut_bytes, strlen(half));
	cr_assert_eq(o.last_seq, 6);
	cr_assert_eq(audit_writer_close(w), 0);
	verify_ok(dir, &v);
	cr_assert_eq(v.recoveries, 1);

	/* A whole line that is no record, then a torn one: both cut. */
	append_newest(dir, bad, strlen(bad));
	append_newest(dir, half, 7);
	w = open_ok(&c, &o);
	cr_assert(o.recovered);
	cr_assert_eq(o.cut_bytes, strlen(bad) + 7);
	cr_assert_eq(audit_writer_close(w), 0);
	verify_ok(dir, &v);
	cr_assert_eq(v.recoveries, 2);
	cr_assert_eq(count(dir, AUDIT_WRITE), 5);
}

Test(audit_writer, an_empty_newest_segment_is_removed)
{
	struct audit_writer_conf c = conf_for(dir);
	struct audit_writer_opened o;
	struct audit_verdict v;
	struct audit_writer *w = open_ok(&c, &o);
	char p[512], name[AUDIT_SEG_NAME_LEN + 1];
	int fd;

	put_ok(w, 1);
	cr_assert_eq(audit_writer_close(w), 0);
	/* A crash right after creating the next segment. */
	audit_segment_name(3, name);
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	w = open_ok(&c, &o);
	cr_assert_eq(o.last_seq, 2);
	put_ok(w, 2);
	cr_assert_eq(audit_writer_close(w), 0);
	verify_ok(dir, &v);
	cr_assert_eq(count(dir, AUDIT_WRITE), 2);
}

Test(audit_writer, a_new_segment_holding_only_a_torn_line_is_removed)
{
	struct audit_writer_conf c = conf_for(dir);
	struct audit_writer_opened o;
	struct audit_verdict v;
	struct audit_writer *w = open_ok(&c, &o);
	char p[512], name[AUDIT_SEG_NAME_LEN + 1];
	int fd;

	put_ok(w, 1);
	cr_assert_eq(audit_writer_close(w), 0);	/* sealed: 1, 2 */
	/* Killed in the first write to the next segment. */
	audit_segment_name(3, name);
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "{\"se", 5), 5);
	close(fd);
	w = open_ok(&c, &o);
	cr_assert(o.recovered);
	cr_assert_eq(o.cut_bytes, 5);
	cr_assert_eq(o.last_seq, 2);
	cr_assert_eq(audit_writer_close(w), 0);
	verify_ok(dir, &v);
	cr_assert_eq(v.recoveries, 1);
	cr_assert_eq(v.last_seq, 4);	/* recovery, checkpoint */
}

Test(audit_writer, a_damaged_tail_beyond_one_record_is_refused)
{
	static const char bad[] = "not a record\n";
	struct audit_writer_conf c = conf_for(dir);
	struct audit_writer *w = open_ok(&c, NULL);

	put_ok(w, 1);
	cr_assert_eq(audit_writer_close(w), 0);
	append_newest(dir, bad, strlen(bad));
	append_newest(dir, bad, strlen(bad));
	w = NULL;
	cr_assert_eq(audit_writer_open(&c, &w, NULL), -EBADMSG);
	cr_assert_null(w);
}

/* ---- a full disk ---- */

static void small_tmpfs(void)
{
	snprintf(mnt, sizeof(mnt), "%.60s/mnt", tmp);
	snprintf(dir, sizeof(dir), "%.128s/log", mnt);
	cr_assert_eq(mkdir(mnt, 0700), 0);
	if (mount("phifs-test", mnt, "tmpfs", 0, "size=256k,mode=0700")) {
		cr_skip_test("cannot mount a tmpfs here: %s", strerror(errno));
	}
	mounted = true;
}

/* Fills the file system with one file; returns its path. */
static void fill(char *p, size_t cap)
{
	static char block[4096];
	int fd;

	snprintf(p, cap, "%s/filler", mnt);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	while (write(fd, block, sizeof(block)) > 0)
		;
	cr_assert_eq(errno, ENOSPC);
	close(fd);
}

static bool is_ready(void *arg)
{
	return audit_writer_ready(arg) == 0;
}

static bool is_failing(void *arg)
{
	struct audit_writer_stats s;

	audit_writer_stats(arg, &s);
	return s.failing;
}

/*
 * Fills the disk under the log until put() refuses, frees it, and checks
 * the writer comes back by itself and lost no record put() accepted.
 */
static void deny_then_recover(enum audit_sync mode)
{
	struct audit_writer_conf c;
	struct audit_writer_stats s;
	struct audit_verdict v;
	struct audit_writer *w;
	struct audit_record r;
	char filler[512];
	uint64_t ok = 0, i;
	int rc = 0;

	small_tmpfs();
	c = conf_for(dir);
	c.sync = mode;
	w = open_ok(&c, NULL);
	fill(filler, sizeof(filler));
	/* Puts succeed until the logger meets the full disk. */
	for (i = 0; i < 1000000 && rc == 0; i++) {
		rec(&r, i);
		rc = audit_writer_put(w, &r);
		ok += rc == 0;
		if (rc == 0 && i % 64 == 63)
			tu_wait_until(is_failing, w, 50);
	}
	cr_assert_eq(rc, -EIO);
	cr_assert_eq(audit_writer_ready(w), -EIO);
	audit_writer_stats(w, &s);
	cr_assert(s.failing);
	cr_assert_geq(s.failures, 1);
	cr_assert_geq(s.refused, 1);
	/* The refused record's ticket at least is not durable. */
	cr_assert_eq(audit_writer_flush(w, 300), -EIO);
	audit_writer_stats(w, &s);
	cr_assert_geq(s.queued, 1);
	cr_assert_geq(s.lag_ms, 300, "lag %llu ms",
		      (unsigned long long)s.lag_ms);

	cr_assert_eq(unlink(filler), 0);
	cr_assert(tu_wait_until(is_ready, w, 5000),
		  "not ready again after space came back");
	put_ok(w, 1000000);
	ok++;
	cr_assert_eq(audit_writer_flush(w, 5000), 0);
	cr_assert_eq(audit_writer_close(w), 0, "every failure was reported");
	verify_ok(dir, &v);
	/* Every record whose put() returned 0 is in the log; under always
	 * one refused while its batch was being written may be too. */
	if (mode == AUDIT_SYNC_ALWAYS)
		cr_assert_geq(count(dir, AUDIT_WRITE), ok);
	else
		cr_assert_eq(count(dir, AUDIT_WRITE), ok);
	cr_assert_eq(v.gaps, 0);
}

Test(audit_writer, full_disk_denies_then_recovers_without_reopening)
{
	deny_then_recover(AUDIT_SYNC_BATCH);
}

Test(audit_writer, full_disk_under_always_denies_and_keeps_every_acked_record)
{
	deny_then_recover(AUDIT_SYNC_ALWAYS);
}

Test(audit_writer, full_disk_under_allow_counts_the_loss_and_records_a_gap)
{
	struct audit_writer_conf c;
	struct audit_writer_stats s;
	struct audit_verdict v;
	struct audit_writer *w;
	char filler[512];
	uint64_t i, puts = 0;

	small_tmpfs();
	c = conf_for(dir);
	c.deny_on_failure = false;
	w = open_ok(&c, NULL);
	fill(filler, sizeof(filler));
	for (i = 0; i < 1000000; i++) {
		put_ok(w, i);	/* never refused */
		puts++;
		audit_writer_stats(w, &s);
		if (s.dropped)
			break;
		if (i % 64 == 63)
			tu_wait_until(is_failing, w, 50);
	}
	cr_assert_gt(s.dropped, 0);
	for (uint64_t k = 0; k < 10; k++, puts++)
		put_ok(w, 1000000 + k);
	cr_assert_eq(audit_writer_ready(w), -EIO);

	cr_assert_eq(unlink(filler), 0);
	cr_assert(tu_wait_until(is_ready, w, 5000));
	put_ok(w, 2000000);
	puts++;
	cr_assert_eq(audit_writer_flush(w, 5000), 0);
	audit_writer_stats(w, &s);
	cr_assert_not(s.failing);
	cr_assert_eq(audit_writer_close(w), 0);
	verify_ok(dir, &v);
	cr_assert_geq(v.gaps, 1);
	cr_assert_eq(v.lost, s.dropped);
	cr_assert_eq(count(dir, AUDIT_WRITE) + v.lost, puts);
}
