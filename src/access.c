/*
 * access.c — the policy put to every operation, as the core's allow hook:
 * which permissions an operation needs on which paths (access_needs), the
 * paths from the inode table (vfs_paths: a hard-linked file's every known
 * path must grant), and the caller as the kernel named it.  Knows nothing
 * of FUSE; the policy itself decides without locks or allocation.
 */
#include "phifs/access.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phifs/sysnames.h"

/* The policy takes groups as uint32_t; the kernel's gid_t is that type. */
_Static_assert(_Generic((gid_t)0, uint32_t: 1, default: 0),
	       "gid_t is not uint32_t");

/* One policy in force, and what it makes the hook learn of a caller. */
struct rules {
	struct policy *p;	/* read-only while in force */
	bool wants_groups;	/* the policy has a [group:] section */
	bool wants_name;	/* a pattern holds ${user} */
};

/* Apart, so that the requests' counting does not slow the pointer's load. */
struct readers {
	_Alignas(64) atomic_ulong n;
};

struct access {
	struct vfs *v;
	_Atomic(struct rules *) cur;	/* swapped whole, never changed */
	atomic_uint epoch;		/* its low bit: the counter to use */
	struct readers readers[2];	/* requests inside allow, by epoch */
	pthread_mutex_t swap_lock;	/* one access_swap at a time */
	void (*show)(void *arg, const char *path, char *out, size_t cap);
	void *show_arg;
};

static int rules_new(struct policy *p, struct rules **out)
{
	struct rules *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->p = p;	/* transferred */
	r->wants_groups = policy_uses_groups(p);
	r->wants_name = policy_uses_user(p);
	*out = r;
	return 0;
}

static void rules_free(struct rules *r)
{
	if (!r)
		return;
	policy_free(r->p);
	free(r);
}

int access_new(struct vfs *v, struct policy *p, struct access **out)
{
	struct access *a = calloc(1, sizeof(*a));
	struct rules *r;

	if (!a || rules_new(p, &r)) {
		free(a);
		return -ENOMEM;
	}
	a->v = v;
	atomic_init(&a->cur, r);	/* p transferred */
	pthread_mutex_init(&a->swap_lock, NULL);
	*out = a;
	return 0;
}

void access_set_path_shown(struct access *a,
			   void (*show)(void *arg, const char *path,
					char *out, size_t cap),
			   void *arg)
{
	a->show = show;
	a->show_arg = arg;
}

void access_free(struct access *a)
{
	if (!a)
		return;
	rules_free(atomic_load(&a->cur));
	pthread_mutex_destroy(&a->swap_lock);
	free(a);
}

/*
 * The request's side: counted in before the pointer is loaded (both
 * sequentially consistent), so a swapper that sees the counter at zero
 * after its store knows this request loads the new pointer.
 */
static const struct rules *enter(struct access *a, unsigned *slot)
{
	*slot = atomic_load(&a->epoch) & 1;
	atomic_fetch_add(&a->readers[*slot].n, 1);
	return atomic_load(&a->cur);
}

static void leave(struct access *a, unsigned slot)
{
	atomic_fetch_sub_explicit(&a->readers[slot].n, 1,
				  memory_order_release);
}

/*
 * Waits until every request that may hold the pointer swapped out has
 * left: each counter seen at zero once after the swap.  Flipping the
 * epoch first sends new requests to the other counter, so the one waited
 * on only drains; a request takes microseconds, so yielding suffices.
 */
static void wait_readers(struct access *a)
{
	for (int i = 0; i < 2; i++) {
		unsigned slot = atomic_fetch_add(&a->epoch, 1) & 1;

		while (atomic_load(&a->readers[slot].n))
			sched_yield();
	}
}

int access_swap(struct access *a, struct policy *p)
{
	struct rules *r, *old;

	if (rules_new(p, &r))
		return -ENOMEM;
	pthread_mutex_lock(&a->swap_lock);
	old = atomic_exchange(&a->cur, r);	/* p transferred */
	wait_readers(a);
	pthread_mutex_unlock(&a->swap_lock);
	rules_free(old);
	return 0;
}

static void need(struct access_need *n, bool second, bool whole,
		 enum policy_op op)
{
	n->check[n->n].second = second;
	n->check[n->n].whole = whole;
	n->check[n->n].op = op;
	n->n++;
}

/* An open's permissions by its access mode; O_TRUNC writes too. */
static void open_needs(int flags, bool whole, struct access_need *n)
{
	int mode = flags & O_ACCMODE;

	if (mode != O_WRONLY)
		need(n, false, whole, POLICY_READ);
	if (mode != O_RDONLY || (flags & O_TRUNC))
		need(n, false, whole, POLICY_WRITE);
}

void access_needs(const struct vfs_req *r, struct access_need *n)
{
	memset(n, 0, sizeof(*n));
	switch (r->op) {
	case VFS_LOOKUP:
		need(n, false, false, POLICY_TRAVERSE);
		break;
	case VFS_GETATTR:
		need(n, false, true, POLICY_TRAVERSE);
		break;
	case VFS_OPENDIR:
	case VFS_LISTXATTR:
		need(n, false, true, POLICY_LIST);
		break;
	case VFS_READLINK:
	case VFS_GETXATTR:
		need(n, false, true, POLICY_READ);
		break;
	case VFS_SETATTR:	/* truncate, chmod, chown, utimens */
	case VFS_SETXATTR:
	case VFS_REMOVEXATTR:
		need(n, false, true, POLICY_WRITE);
		break;
	case VFS_MKNOD:
	case VFS_MKDIR:
	case VFS_SYMLINK:
	case VFS_UNLINK:
	case VFS_RMDIR:
		need(n, false, false, POLICY_WRITE);
		break;
	case VFS_RENAME:	/* both ends: nothing leaves or lands unseen */
		need(n, false, false, POLICY_WRITE);
		need(n, true, false, POLICY_WRITE);
		break;
	case VFS_LINK:		/* a new name must not widen who reads it */
		need(n, false, true, POLICY_READ);
		need(n, false, true, POLICY_WRITE);
		need(n, true, false, POLICY_WRITE);
		break;
	case VFS_OPEN:
		open_needs(r->flags, true, n);
		break;
	case VFS_CREATE:
		open_needs(r->flags | O_TRUNC, false, n);
		break;
	default:
		/*
		 * Reads, writes, fsync and release of an open file were
		 * judged at its open, folders' reads at opendir; statfs
		 * names nothing.
		 */
		break;
	}
}

/* One judgement: the caller, the op, and the name below each path. */
struct judge {
	const struct access *a;
	const struct policy *p;
	const struct policy_caller *pc;
	enum policy_op op;
	const char *name;	/* NULL: the path itself */
	int paths;		/* judged so far */
	char *why;		/* a refusal's rule goes here, or NULL */
	size_t why_len;
};

/* What refused, for the audit log: "op path: the rule (file:line)". */
static void say_why(const struct judge *j, const char *path,
		    const struct policy_decision *d)
{
	char rule[512], shown[1024];
	const char *r = rule;

	if (!j->why)
		return;
	policy_decision_format(d, rule, sizeof(rule));
	if (!strncmp(r, "deny: ", 6))
		r += 6;
	if (j->a->show) {
		j->a->show(j->a->show_arg, path, shown, sizeof(shown));
		path = shown;
	}
	snprintf(j->why, j->why_len, "%s %s: %s", policy_op_name(j->op),
		 path, r);
}

static int judge_path(void *arg, const char *path)
{
	struct judge *j = arg;
	struct policy_decision d;
	char full[PATH_MAX + NAME_MAX + 2];

	if (j->name) {
		int n = snprintf(full, sizeof(full), "%s/%s",
				 strcmp(path, "/") ? path : "", j->name);

		if (n < 0 || (size_t)n >= sizeof(full)) {
			if (j->why)
				snprintf(j->why, j->why_len, "%s: path too "
					 "long to judge",
					 policy_op_name(j->op));
			return -EACCES;	/* no policy path: never granted */
		}
		path = full;
	}
	j->paths++;
	policy_decide(j->p, j->pc, j->op, path, &d);
	if (!d.allow)
		say_why(j, path, &d);
	return d.allow ? 0 : -EACCES;
}

/*
 * op on every path of ino (below each, name when given).  An object no
 * path reaches (unlinked, or under a removed folder) cannot be judged:
 * refused, unless unnamed_ok.
 */
static int judge(struct judge *j, uint64_t ino, bool unnamed_ok)
{
	int rc = vfs_paths(j->a->v, ino, judge_path, j);

	if ((rc == -ENOENT || !rc) && !j->paths) {	/* no path */
		if (!unnamed_ok && j->why)
			snprintf(j->why, j->why_len, "%s: no path reaches "
				 "it", policy_op_name(j->op));
		return unnamed_ok ? 0 : -EACCES;
	}
	if (rc == -ENAMETOOLONG && j->why)
		snprintf(j->why, j->why_len, "%s: path too long to judge",
			 policy_op_name(j->op));
	if (rc)
		return rc == -ENOMEM ? rc : -EACCES;
	return 0;
}

/*
 * A uid's name for ${user}, as last looked up by this worker thread: a
 * lookup goes through NSS (/etc/passwd), a few percent of the daemon's CPU
 * when every request asks.  Kept 5 s: a user renamed (usermod -l) is judged
 * by the old name that long.
 */
#define NAME_TTL_NS 5000000000LL
#define NAMES_KEPT 4

struct name_memo {
	uint32_t uid;
	int64_t at;		/* 0: empty */
	char name[64];
};

static _Thread_local struct name_memo names[NAMES_KEPT];
static _Thread_local unsigned names_next;

static int user_name(uint32_t uid, char *name, size_t len)
{
	struct timespec t;
	struct name_memo *m;
	int64_t now;
	uint32_t gid;
	int rc;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
	now = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec + 1;
	for (unsigned i = 0; i < NAMES_KEPT; i++)
		if (names[i].at && names[i].uid == uid &&
		    now - names[i].at < NAME_TTL_NS &&
		    strlen(names[i].name) < len) {
			strcpy(name, names[i].name);
			return 0;
		}
	rc = sysnames_user_of(uid, name, len, &gid);
	if (!rc && strlen(name) < sizeof(names[0].name)) {
		m = &names[names_next++ % NAMES_KEPT];
		m->uid = uid;
		m->at = now;
		strcpy(m->name, name);
	}
	return rc;
}

/*
 * A file no name reaches any more is held by whoever has it open (a
 * temporary file opened and then unlinked): its attributes, and changes
 * to them through the open file, are theirs; nothing else reaches it.
 */
static bool unnamed_ok(const struct vfs_req *r)
{
	return r->op == VFS_GETATTR || (r->op == VFS_SETATTR && r->opener);
}

int access_check(struct access *a, const struct vfs_caller *c,
		 const struct vfs_req *r, char *why, size_t why_len)
{
	struct policy_caller pc = { .uid = c->uid, .gid = c->gid };
	struct access_need n;
	const struct rules *rs;
	const gid_t *groups;
	char name[256];
	unsigned slot;
	int rc = 0;

	access_needs(r, &n);
	if (!n.n)
		return 0;
	/* One policy for all of this request's checks, however many. */
	rs = enter(a, &slot);
	/* Each costs a read of the system's files: only when used. */
	if (rs->wants_groups)
		pc.ngroups = vfs_caller_groups(c, &groups);
	if (pc.ngroups)
		pc.groups = groups;
	if (rs->wants_name && !user_name(c->uid, name, sizeof(name)))
		pc.user = name;
	for (int i = 0; !rc && i < n.n; i++) {
		bool second = n.check[i].second;
		struct judge j = {
			.a = a, .p = rs->p, .pc = &pc, .op = n.check[i].op,
			.name = n.check[i].whole ? NULL :
				second ? r->name2 : r->name,
			.why = why, .why_len = why_len,
		};

		rc = judge(&j, second ? r->ino2 : r->ino, unnamed_ok(r));
	}
	leave(a, slot);
	return rc;
}

static int allow(void *arg, const struct vfs_caller *c,
		 const struct vfs_req *r)
{
	return access_check(arg, c, r, NULL, 0);
}

const struct vfs_hooks access_hooks = { .allow = allow };
