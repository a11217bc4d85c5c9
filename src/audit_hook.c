/*
 * audit_hook.c — operations into audit records: the mapping of vfs
 * operations onto the log's ops, the record's fields from the caller and
 * the inode table's paths, the deny record from the access policy's
 * judgement, and fail-closed refusals.  Records are built on the request
 * thread's stack; the sink copies what it keeps.
 */
#include "phifs/audit_hook.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "phifs/crypto.h"

/* Room for a folder's path twice PATH_MAX long (nested folders reach
 * past PATH_MAX, though no one call names them), a '/' and a name. */
#define DIR_MAX (2 * PATH_MAX)
#define PATH_BUF (DIR_MAX + NAME_MAX + 2)
/* A refusal's reason: the permission, the path judged and the rule. */
#define RULE_MAX 1024
/* How long a process's name read from /proc is taken as still its own. */
#define COMM_TTL_NS 1000000000LL
#define COMM_KEPT 8

/* Room for one pseudonymous path: two of them and a rule fit a line. */
#define PSEUDO_MAX (AUDIT_HOOK_PATH_MAX + 1)

struct audit_hook {
	struct vfs *v;
	struct access *a;	/* NULL: everything allowed */
	struct audit_sink sink;
	const struct crypto_key *pkey;	/* pseudonymous paths, or NULL */
};

int audit_hook_new(struct vfs *v, struct access *a,
		   const struct audit_sink *sink, struct audit_hook **out)
{
	struct audit_hook *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->v = v;
	h->a = a;
	h->sink = *sink;
	*out = h;
	return 0;
}

void audit_hook_free(struct audit_hook *h)
{
	free(h);
}

/* Changes to the tree, and reads and writes, are recorded as these. */
static const enum audit_op recorded[VFS_OP_COUNT] = {
	[VFS_MKNOD] = AUDIT_CREATE,
	[VFS_MKDIR] = AUDIT_MKDIR,
	[VFS_SYMLINK] = AUDIT_SYMLINK,
	[VFS_LINK] = AUDIT_LINK,
	[VFS_UNLINK] = AUDIT_UNLINK,
	[VFS_RMDIR] = AUDIT_RMDIR,
	[VFS_RENAME] = AUDIT_RENAME,
	[VFS_OPEN] = AUDIT_OPEN,
	[VFS_CREATE] = AUDIT_CREATE,
	[VFS_READ] = AUDIT_READ,
	[VFS_WRITE] = AUDIT_WRITE,
	[VFS_SETATTR] = AUDIT_SETATTR,
	[VFS_SETXATTR] = AUDIT_SETATTR,
	[VFS_REMOVEXATTR] = AUDIT_SETATTR,
	[VFS_FALLOCATE] = AUDIT_SETATTR,
};

int audit_hook_op(const struct vfs_req *r, enum audit_op *op)
{
	if ((unsigned)r->op >= VFS_OP_COUNT || !recorded[r->op])
		return -ENOENT;	/* AUDIT_MOUNT (0) is no operation's */
	*op = recorded[r->op];
	if (r->op == VFS_SETATTR && (r->flags & VFS_SET_SIZE))
		*op = AUDIT_TRUNCATE;
	return 0;
}

/*
 * What a refusal is recorded as refusing: the operation's own op, or for
 * those not recorded when allowed, the nearest the log's ops have: reading
 * a link's target or an attribute is a read; a lookup, a stat or a
 * listing an open (of the name looked at), since a refused lookup is all
 * the daemon sees of a refused open(2) of a path below.  The rule names
 * the permission refused (traverse, list) exactly.
 */
static int denied_op(const struct vfs_req *r, enum audit_op *op)
{
	switch (r->op) {
	case VFS_READLINK:
	case VFS_GETXATTR:
		*op = AUDIT_READ;
		return 0;
	case VFS_LOOKUP:
	case VFS_GETATTR:
	case VFS_OPENDIR:
	case VFS_LISTXATTR:
		*op = AUDIT_OPEN;
		return 0;
	default:
		return audit_hook_op(r, op);
	}
}

/* --- who --- */

struct comm_entry {
	pid_t pid;
	int64_t at;		/* CLOCK_MONOTONIC, ns */
	char comm[AUDIT_COMM_LEN];
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void read_comm(pid_t pid, char comm[AUDIT_COMM_LEN])
{
	char path[32];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, comm, AUDIT_COMM_LEN - 1);
		close(fd);
	}
	if (n < 0)
		n = 0;	/* gone already: no name rather than a guess */
	comm[n] = 0;
	comm[strcspn(comm, "\n")] = 0;
}

/*
 * The caller's command name, as /proc said within the last second: a
 * stream of reads by one process costs one /proc read a second per
 * worker, not one per record.  (The name is the process's own claim, not
 * an identity: uid and pid are the kernel's word.)
 */
static void comm_of(pid_t pid, char comm[AUDIT_COMM_LEN])
{
	static _Thread_local struct comm_entry kept[COMM_KEPT];
	static _Thread_local unsigned next;
	int64_t now = mono_ns();
	struct comm_entry *e;

	for (int i = 0; i < COMM_KEPT; i++) {
		e = &kept[i];
		if (e->at && e->pid == pid && now - e->at < COMM_TTL_NS) {
			memcpy(comm, e->comm, AUDIT_COMM_LEN);
			return;
		}
	}
	read_comm(pid, comm);
	e = &kept[next++ % COMM_KEPT];
	e->pid = pid;
	e->at = now;
	memcpy(e->comm, comm, AUDIT_COMM_LEN);
}

/* The daemon itself, for what no caller asked. */
static void as_daemon(struct audit_record *rec)
{
	rec->uid = (uint32_t)getuid();
	rec->gid = (uint32_t)getgid();
	rec->pid = (int32_t)getpid();
	snprintf(rec->comm, sizeof(rec->comm), "phifs");
}

/* c, and for an open file's reads and writes the user who opened it. */
static void as_caller(struct audit_record *rec, const struct vfs_caller *c,
		      const struct vfs_req *r)
{
	const struct vfs_caller *who = r && r->opener ? r->opener : c;

	if (!c) {
		as_daemon(rec);
		return;
	}
	rec->uid = (uint32_t)who->uid;
	rec->gid = (uint32_t)who->gid;
	rec->pid = (int32_t)c->pid;
	comm_of(c->pid, rec->comm);
}

/* --- where --- */

/*
 * A path too long for a record keeps its end, where the names that tell
 * most are, after "...".
 */
static size_t fit(char *buf, size_t n)
{
	size_t keep = AUDIT_HOOK_PATH_MAX - 3;

	if (n <= AUDIT_HOOK_PATH_MAX)
		return n;
	memmove(buf + 3, buf + n - keep, keep);
	memcpy(buf, "...", 3);
	buf[AUDIT_HOOK_PATH_MAX] = 0;
	return AUDIT_HOOK_PATH_MAX;
}

/*
 * The path of ino, and of name in it when given, into buf (PATH_BUF):
 * its length.  An object no name reaches any more (removed while open)
 * has the empty path; one deeper than DIR_MAX, "...".
 */
static size_t path_of(struct audit_hook *h, uint64_t ino, const char *name,
		      char *buf)
{
	int rc = vfs_path(h->v, ino, buf, DIR_MAX);
	size_t n, nl;

	if (rc) {
		strcpy(buf, rc == -ENAMETOOLONG ? "..." : "");
		return strlen(buf);
	}
	n = strlen(buf);
	if (name) {
		if (n == 1)	/* the root: "/" + name, not "//" */
			n = 0;
		nl = strnlen(name, NAME_MAX);	/* the kernel's bound */
		buf[n++] = '/';
		memcpy(buf + n, name, nl);
		n += nl;
		buf[n] = 0;
	}
	return fit(buf, n);
}

/* The paths an operation names: path (and path2) into the record. */
static void paths_of(struct audit_hook *h, const struct vfs_req *r,
		     struct audit_record *rec, char *p1, char *p2)
{
	switch (r->op) {
	case VFS_LINK:		/* the file, and its new name */
		rec->path_len = path_of(h, r->ino, NULL, p1);
		rec->path2_len = path_of(h, r->ino2, r->name2, p2);
		rec->path2 = p2;
		break;
	case VFS_RENAME:
		rec->path_len = path_of(h, r->ino, r->name, p1);
		rec->path2_len = path_of(h, r->ino2, r->name2, p2);
		rec->path2 = p2;
		break;
	case VFS_SYMLINK:	/* the target is not a path of the volume */
		rec->path_len = path_of(h, r->ino, r->name, p1);
		rec->path2 = r->name2;
		rec->path2_len = strlen(r->name2);
		break;
	case VFS_MKNOD: case VFS_MKDIR: case VFS_UNLINK: case VFS_RMDIR:
	case VFS_CREATE: case VFS_LOOKUP:
		rec->path_len = path_of(h, r->ino, r->name, p1);
		break;
	default:		/* the object itself */
		rec->path_len = path_of(h, r->ino, NULL, p1);
		break;
	}
	rec->path = p1;
}

/*
 * The pseudonym of path (len bytes) into out (PSEUDO_MAX: what the writer
 * takes); one too long keeps its last components, after "...", as fit()
 * keeps a plain path's end.  0 and its length in *out_len, or the error.
 */
static int pseudo(const struct crypto_key *k, const char *path, size_t len,
		  char *out, size_t *out_len)
{
	const char *p = path, *end = path + len, *slash;
	size_t n = 0, at = 0;
	int rc;

	while ((rc = audit_path_pseudonym(k, p, (size_t)(end - p), out + at,
					  PSEUDO_MAX - at, &n)) == -ENOSPC) {
		slash = memchr(p + 1, '/', (size_t)(end - p - 1));
		if (!slash)
			break;	/* one component: cannot be too long */
		p = slash;
		at = 3;
	}
	if (rc)
		return rc;
	if (at)
		memcpy(out, "...", 3);
	*out_len = at + n;
	return 0;
}

static void show_path(void *arg, const char *path, char *out, size_t cap)
{
	static _Thread_local char q[PSEUDO_MAX];
	struct audit_hook *h = arg;
	size_t n;

	/* A path it cannot hash is not shown: never the plain one. */
	if (pseudo(h->pkey, path, strlen(path), q, &n))
		snprintf(out, cap, "...");
	else
		snprintf(out, cap, "%.*s", (int)n, q);
}

void audit_hook_pseudonymous(struct audit_hook *h, const struct crypto_key *k)
{
	h->pkey = k;
	if (h->a)
		access_set_path_shown(h->a, show_path, h);
}

/* The record's paths as pseudonyms (q1, q2): 0, or -EIO when one could
 * not be made, which fails the record as the sink's refusal would. */
static int pseudonymize(struct audit_hook *h, struct audit_record *r)
{
	static _Thread_local char q1[PSEUDO_MAX], q2[PSEUDO_MAX];

	if (r->path && r->path_len) {
		if (pseudo(h->pkey, r->path, r->path_len, q1, &r->path_len))
			return -EIO;
		r->path = q1;
	}
	if (r->path2 && r->path2_len) {
		if (pseudo(h->pkey, r->path2, r->path2_len, q2, &r->path2_len))
			return -EIO;
		r->path2 = q2;
	}
	return 0;
}

static int put(struct audit_hook *h, const struct audit_record *rec)
{
	struct audit_record r = *rec;

	if (h->pkey && pseudonymize(h, &r))
		return -EIO;
	return h->sink.put(h->sink.arg, &r) ? -EIO : 0;
}

/* --- the hooks --- */

/* A refusal, with the rule that decided. */
static void put_deny(struct audit_hook *h, const struct vfs_caller *c,
		     const struct vfs_req *r, const char *rule)
{
	static _Thread_local char p1[PATH_BUF], p2[PATH_BUF];
	struct audit_record rec = { .op = AUDIT_DENY, .result = -EACCES,
				    .rule = rule };

	if (denied_op(r, &rec.req))
		return;
	as_caller(&rec, c, NULL);	/* who asked, not who opened */
	paths_of(h, r, &rec, p1, p2);
	/* A deny has one path; the rule names the one that was refused. */
	rec.path2 = NULL;
	rec.path2_len = 0;
	(void)put(h, &rec);	/* refused whatever becomes of it */
}

static int allow(void *arg, const struct vfs_caller *c,
		 const struct vfs_req *r)
{
	struct audit_hook *h = arg;
	char rule[RULE_MAX];
	enum audit_op op;
	int rc;

	/* Nothing that would be recorded starts while the log fails. */
	if (!audit_hook_op(r, &op) && h->sink.ready(h->sink.arg))
		return -EIO;
	if (!h->a)
		return 0;
	rule[0] = 0;
	rc = access_check(h->a, c, r, rule, sizeof(rule));
	if (rc == -EACCES)
		put_deny(h, c, r, rule);
	return rc;
}

static int record(void *arg, const struct vfs_caller *c,
		  const struct vfs_req *r, long result, const void *bytes,
		  size_t len)
{
	static _Thread_local char p1[PATH_BUF], p2[PATH_BUF];
	struct audit_hook *h = arg;
	struct audit_record rec = { .result = result };

	/* A refusal was recorded as a deny, or the log could not keep it. */
	if (r->refused || audit_hook_op(r, &rec.op))
		return 0;
	as_caller(&rec, c, r);
	paths_of(h, r, &rec, p1, p2);
	if (rec.op == AUDIT_READ || rec.op == AUDIT_WRITE) {
		rec.off = r->off;
		rec.len = len;
		if (crypto_sha256(bytes ? bytes : "", len, rec.sha256))
			return -EIO;
	} else if (rec.op == AUDIT_TRUNCATE) {
		rec.off = r->off;
	}
	return put(h, &rec);
}

static void integrity(void *arg, const struct vfs_caller *c,
		      const char *path, int64_t block)
{
	struct audit_hook *h = arg;
	struct audit_record rec = { .op = AUDIT_INTEGRITY_ERROR,
				    .path = path, .path_len = strlen(path),
				    .result = -EBADMSG };

	/* The header, which no data block can be numbered as. */
	rec.block = block < 0 ? (uint64_t)INT64_MAX : (uint64_t)block;
	as_caller(&rec, c, NULL);
	(void)put(h, &rec);	/* the operation fails anyway */
}

const struct vfs_hooks audit_hook_hooks = {
	.allow = allow,
	.record = record,
	.integrity = integrity,
};

int audit_hook_event(struct audit_hook *h, enum audit_op op,
		     const char *path, int64_t result, uint32_t version)
{
	struct audit_record rec = { .op = op, .result = result,
				    .path = path,
				    .path_len = path ? strlen(path) : 0 };

	if (op == AUDIT_KEY_ROTATE)
		rec.version = version;
	as_daemon(&rec);
	return put(h, &rec);
}
