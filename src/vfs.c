/*
 * vfs.c — the operations core: its state, the hooks, attributes (sizes,
 * and files' and folders' modes and owners, are always the authenticated
 * ones), lookups and the operations on one inode,
 * and the ticker that commits sizes and keeps the inode table in bounds
 * (what it tells, and its figures, are in vfs_report.c).  Knows nothing
 * of FUSE; the backing directory is reached through
 * backing.c, files through nodes.c and cfile.c, inodes through inodes.c.
 */
#include "vfs_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "phifs/backing.h"
#include "phifs/mountinfo.h"

/* How often the sizes of open files reach their headers. */
#define COMMIT_INTERVAL_MS 1000
/* Sizes remembered: a folder's worth, listed then removed (320 KiB). */
#define SIZE_MEMO_SLOTS 8192u
#define READAHEAD_KB 1024

static const char *const op_names[VFS_OP_COUNT] = {
	"lookup", "getattr", "setattr", "readlink",
	"mknod", "mkdir", "symlink", "link",
	"unlink", "rmdir", "rename",
	"open", "create", "read", "write", "fsync", "release",
	"opendir", "readdir", "fsyncdir", "releasedir",
	"statfs",
	"setxattr", "getxattr", "listxattr", "removexattr",
	"fallocate",
};

const char *vfs_op_name(enum vfs_op op)
{
	return (unsigned)op < VFS_OP_COUNT ? op_names[op] : NULL;
}

/* --- callers and hooks --- */

/*
 * A process's groups as last read, per worker thread.  Reading them costs a
 * read of /proc per request (fuse_req_getgroups), a fifth of the daemon's
 * CPU in `ls -lR` under a policy with [group:] sections; a process's groups
 * rarely change.  Kept a second, keyed by pid, uid and gid, so that a
 * process that changes user or group is read again; one that drops a
 * supplementary group with setgroups() alone keeps it that long
 * (SECURITY.md).  Callers without a pid (tests, the kernel) are not kept.
 */
#define GROUPS_TTL_NS 1000000000LL
#define GROUPS_KEPT 4

struct groups_memo {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int n;
	int64_t at;
	gid_t g[VFS_MAX_GROUPS];
};

static _Thread_local struct groups_memo gmemo[GROUPS_KEPT];
static _Thread_local unsigned gmemo_next;

static int64_t coarse_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static struct groups_memo *gmemo_of(const struct vfs_caller *c, int64_t now)
{
	for (unsigned i = 0; i < GROUPS_KEPT; i++) {
		struct groups_memo *m = &gmemo[i];

		if (m->pid == c->pid && m->uid == c->uid && m->gid == c->gid &&
		    now - m->at < GROUPS_TTL_NS)
			return m;
	}
	return NULL;
}

static int read_groups(const struct vfs_caller *c, gid_t *out)
{
	int64_t now = c->pid > 0 ? coarse_ns() : 0;
	struct groups_memo *m = c->pid > 0 ? gmemo_of(c, now) : NULL;
	int n;

	if (m) {
		memcpy(out, m->g, (size_t)m->n * sizeof(*out));
		return m->n;
	}
	n = c->get_groups ? c->get_groups(c->ctx, out, VFS_MAX_GROUPS) : 0;
	if (c->pid > 0 && n >= 0 && n <= VFS_MAX_GROUPS) {
		m = &gmemo[gmemo_next++ % GROUPS_KEPT];
		*m = (struct groups_memo){ .pid = c->pid, .uid = c->uid,
					   .gid = c->gid, .n = n, .at = now };
		memcpy(m->g, out, (size_t)n * sizeof(*out));
	}
	return n;
}

size_t vfs_caller_groups(const struct vfs_caller *c, const gid_t **out)
{
	struct vfs_groups *g = c->groups;

	*out = NULL;
	if (!g)
		return 0;
	if (g->n < 0) {
		int n = read_groups(c, g->gid);

		g->n = n < 0 ? 0 : n > VFS_MAX_GROUPS ? VFS_MAX_GROUPS : n;
	}
	*out = g->gid;
	return (size_t)g->n;
}

int vfs_allow(struct vfs *v, const struct vfs_caller *c,
	      const struct vfs_req *r)
{
	return v->hooks && v->hooks->allow ?
		       v->hooks->allow(v->hooks_arg, c, r) : 0;
}

int vfs_record(struct vfs *v, const struct vfs_caller *c,
	       const struct vfs_req *r, long result, const void *bytes,
	       size_t len)
{
	vfs_count(v, r->op, result);
	if (v->hooks && v->hooks->record)
		return v->hooks->record(v->hooks_arg, c, r, result, bytes,
					len);
	return 0;
}

int vfs_gate(struct vfs *v, const struct vfs_caller *c, struct vfs_req *r)
{
	int rc = vfs_allow(v, c, r);

	if (rc) {
		r->refused = true;
		(void)vfs_record(v, c, r, rc, NULL, 0);	/* refused anyway */
		r->refused = false;
	}
	return rc;
}

void vfs_set_hooks(struct vfs *v, const struct vfs_hooks *hooks, void *arg)
{
	v->hooks = hooks;
	v->hooks_arg = arg;
}

/* --- the inode table's questions --- */

static bool in_use(void *arg, dev_t dev, ino_t ino)
{
	struct vfs *v = arg;
	uint64_t size;

	return !nodes_size(v->nodes, dev, ino, &size);
}

static void drop_entry(void *arg, uint64_t parent, const char *name)
{
	struct vfs *v = arg;

	if (v->kernel && v->kernel->drop_entry)
		v->kernel->drop_entry(v->karg, parent, name);
}

/* May be called under the table's lock (never the other way round: the
 * ticker lets go of tick_lock before it reaps). */
static void wake_reaper(void *arg)
{
	struct vfs *v = arg;

	pthread_mutex_lock(&v->tick_lock);
	v->reap_asked = true;
	pthread_cond_signal(&v->tick_cond);
	pthread_mutex_unlock(&v->tick_lock);
}

static const struct inodes_ops table_ops = {
	.in_use = in_use,
	.drop_entry = drop_entry,
	.wake_reaper = wake_reaper,
};

struct inode *vfs_inode(struct vfs *v, uint64_t ino)
{
	return inodes_at(v->inodes, ino);
}

int vfs_path(struct vfs *v, uint64_t ino, char *buf, size_t len)
{
	return inodes_path(v->inodes, vfs_inode(v, ino), buf, len);
}

int vfs_paths(struct vfs *v, uint64_t ino,
	      int (*fn)(void *arg, const char *path), void *arg)
{
	return inodes_paths(v->inodes, vfs_inode(v, ino), fn, arg);
}

bool vfs_reclaim(struct vfs *v)
{
	bool freed = closer_drain(v->closer);

	return inodes_reclaim_unlinked(v->inodes) || freed;
}

/* --- attributes --- */

/* The backing's mode and owner, as a header would hold them. */
static struct format_attrs backing_attrs(const struct stat *st)
{
	return (struct format_attrs){ (uint32_t)st->st_mode & 07777u,
				      (uint32_t)st->st_uid,
				      (uint32_t)st->st_gid };
}

/* Shows the authenticated mode and owner a in st: true if they differ. */
static bool show_attrs(struct stat *st, const struct format_attrs *a)
{
	struct format_attrs b = backing_attrs(st);

	st->st_mode = (st->st_mode & S_IFMT) | (mode_t)a->mode;
	st->st_uid = (uid_t)a->uid;
	st->st_gid = (gid_t)a->gid;
	return b.mode != a->mode || b.uid != a->uid || b.gid != a->gid;
}

/*
 * The size, mode and owner in the header of the file on pathfd, into
 * *size and st (a header from before phifs kept mode and owner leaves
 * the backing's).  *sure: st showed them already, nothing changed.
 */
static int header_attrs(struct vfs *v, int pathfd, struct stat *st,
			uint64_t *size, bool *sure)
{
	struct format_attrs a;
	struct cfile *cf;
	int fd, rc, tries = 0;

	*sure = false;
	do
		rc = backing_reopen(pathfd, O_RDONLY, &fd);
	while (inodes_fd_wait(v->inodes, rc, &tries));
	if (rc)
		return rc;
	rc = cfile_open(fd, &v->vol->cv, &cf);
	if (!rc) {
		vfs_report_open(v, NULL, st->st_dev, st->st_ino, cf);
		*size = cfile_size(cf);
		*sure = cfile_attrs(cf, &a) || !show_attrs(st, &a);
		rc = cfile_release(cf);
	} else if (vfs_integrity_error(rc)) {
		/* Shown as size 0, and reported; reading the file then
		 * fails with EIO. */
		vfs_report_at(v, st->st_dev, st->st_ino, rc);
		*size = 0;
		rc = 0;
	}
	close(fd);
	return rc;
}

/* Remembers a size checked now for (st's inode, its ctime). */
static void memo(struct vfs *v, const struct stat *st, uint64_t size)
{
	struct timespec now;

	if (!clock_gettime(CLOCK_REALTIME, &now))
		size_memo_put(v->sizes, st, size, &now);
}

/*
 * The plaintext size of a regular file, always the authenticated one (the
 * kernel bounds reads by it, so a size anyone could set would turn a file
 * cut short into a silently shorter file), and its authenticated mode and
 * owner, written into st (the kernel judges access by them, so a chmod in
 * the backing directory must not open a file to others): its open node's,
 * else a size tag's that verifies under st's mode and owner, else its
 * header's.  Any failure but a damaged header is an error, never a size:
 * the kernel would keep a wrong one for a minute.
 */
static int plain_attrs(struct vfs *v, int pathfd, int dirfd, const char *bname,
		       struct stat *st, uint64_t *size)
{
	uint8_t tag[FORMAT_SIZE_TAG_LEN];
	struct format_attrs a;
	bool known, sure;
	ssize_t n;
	int rc, own = -1;

	if (!nodes_attrs(v->nodes, st->st_dev, st->st_ino, size, &a, &known)) {
		if (known)
			show_attrs(st, &a);
		return 0;
	}
	/* Remembered for this ctime, which any chmod or chown moves. */
	if (size_memo_get(v->sizes, st, size))
		return 0;
	/* The tag sits in the inode: no read of the file's data.  Bound to
	 * st_ino, so one read by name from a renamed file fails here, and
	 * to the mode and owner, so it fails after a chmod in the backing. */
	a = backing_attrs(st);
	n = backing_getxattr(pathfd, dirfd, bname, FORMAT_SIZE_XATTR, tag,
			     sizeof(tag));
	if (n > 0 && !format_size_untag(v->vol->cv.size_key,
					(uint64_t)st->st_ino, &a, tag,
					(size_t)n, size)) {
		memo(v, st, *size);
		return 0;
	}
	if (pathfd < 0) {
		rc = backing_lookup(dirfd, bname, &own);
		if (rc)
			return rc;
		pathfd = own;
	}
	rc = header_attrs(v, pathfd, st, size, &sure);
	if (!rc && sure)
		memo(v, st, *size);
	if (own >= 0)
		close(own);
	return rc;
}

int vfs_mount_sizes(struct vfs *v, int pathfd, int dirfd, const char *bname,
		    struct stat *st)
{
	uint64_t size;
	int rc, own = -1;

	if (S_ISLNK(st->st_mode))
		st->st_size = (off_t)format_symlink_length((size_t)st->st_size);
	/* phifs never makes a real device node (they are records): one in
	 * the backing directory was planted, and leads to no device. */
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		st->st_rdev = 0;
	if (S_ISDIR(st->st_mode))
		return vfs_folder_attrs(v, pathfd, dirfd, bname, st);
	if (!S_ISREG(st->st_mode))
		return 0;
	/* Known by name only (a removal): a record and the header need a
	 * handle; a size tag, the usual way, does not. */
	if (pathfd < 0 && (st->st_mode & S_ISVTX)) {
		rc = backing_lookup(dirfd, bname, &own);
		if (rc)
			return rc;
		pathfd = own;
	}
	/* The mark of a node record; an encrypted file may have it too. */
	rc = st->st_mode & S_ISVTX ? vfs_node_attrs(v, pathfd, st) : -ENODATA;
	if (rc == -ENODATA) {
		rc = plain_attrs(v, pathfd, dirfd, bname, st, &size);
		if (!rc)
			st->st_size = (off_t)size;
	}
	if (own >= 0)
		close(own);
	return rc;
}

int vfs_fd_attrs(struct vfs *v, int pathfd, struct stat *st)
{
	if (fstat(pathfd, st))
		return -errno;
	return vfs_mount_sizes(v, pathfd, -1, NULL, st);
}

static int attrs(struct vfs *v, struct inode *i, struct stat *st)
{
	int rc, fd = inodes_pin(v->inodes, i);

	if (fd == -ESTALE)	/* removed: what it had last, if known */
		return inodes_last(v->inodes, i, st);
	if (fd < 0)
		return fd;
	rc = vfs_fd_attrs(v, fd, st);
	inodes_unpin(v->inodes, i);
	return rc;
}

/* --- lookups --- */

int vfs_name_in(struct vfs *v, struct inode *p, const char *name,
		char bname[NAME_MAX + 1])
{
	return backing_name(name, inodes_is_root(v->inodes, p), bname);
}

int vfs_entry_of(struct vfs *v, struct inode *p, const char *name,
		 const char *bname, struct vfs_entry *e)
{
	struct inode *i;
	int rc, pfd, fd = -1, tries = 0;

	memset(e, 0, sizeof(*e));
	pfd = inodes_pin(v->inodes, p);
	if (pfd < 0)
		return pfd;
	do
		rc = backing_lookup(pfd, bname, &fd);
	while (inodes_fd_wait(v->inodes, rc, &tries));
	if (!rc && fstat(fd, &e->attr))
		rc = -errno;
	if (!rc)
		rc = vfs_mount_sizes(v, fd, pfd, bname, &e->attr);
	inodes_unpin(v->inodes, p);
	if (rc == -ENOENT)	/* gone behind our back: forget the name */
		inodes_unlinked(v->inodes, p, name);
	if (rc) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	rc = inodes_get(v->inodes, fd, &e->attr, p, name, &i);
	if (!rc)
		e->ino = inodes_id(i);
	return rc;
}

int vfs_lookup(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	       const char *name, struct vfs_entry *e)
{
	struct vfs_req r = { .op = VFS_LOOKUP, .ino = parent, .name = name };
	struct inode *p = vfs_inode(v, parent);
	char bname[NAME_MAX + 1];
	int rc = vfs_gate(v, c, &r);

	if (rc)
		return rc;
	rc = vfs_name_in(v, p, name, bname);
	if (!rc)
		rc = vfs_entry_of(v, p, name, bname, e);
	return vfs_made(v, c, &r, rc);
}

void vfs_forget(struct vfs *v, uint64_t ino, uint64_t n)
{
	inodes_forget(v->inodes, vfs_inode(v, ino), n);
}

int vfs_getattr(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		struct stat *st)
{
	struct vfs_req r = { .op = VFS_GETATTR, .ino = ino };
	int rc = vfs_gate(v, c, &r);

	return rc ? rc : vfs_done(v, c, &r, attrs(v, vfs_inode(v, ino), st));
}

/* --- changes to one inode --- */

static int set_times(int pathfd, const struct stat *attr, int set,
		     struct vfs_file *f)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_nsec = UTIME_OMIT } };

	if (set & VFS_SET_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (set & VFS_SET_ATIME)
		tv[0] = attr->st_atim;
	if (set & VFS_SET_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (set & VFS_SET_MTIME)
		tv[1] = attr->st_mtim;
	if (f)
		return vfs_sys(futimens(f->n->fd, tv));
	return backing_utimens(pathfd, tv);
}

static int set_size(struct vfs *v, int pathfd, mode_t type, off_t size,
		    struct vfs_file *f)
{
	struct node *n;
	int rc, fd;

	if (!S_ISREG(type) || size < 0)
		return -EINVAL;
	if (f)
		return cfile_truncate(f->n->cf, (uint64_t)size);
	rc = backing_reopen(pathfd, O_RDWR, &fd);
	if (!rc)
		rc = nodes_get(v->nodes, fd, false, &n);
	if (rc)
		return rc;
	rc = cfile_truncate(n->cf, (uint64_t)size);
	nodes_put(v->nodes, n);
	return rc;
}

/*
 * The node of the file on pathfd, open for writing (to commit a header).
 * A file the daemon itself may not write (not root, mode 0444) is made
 * writable for the open only: a chmod is what would let it write again,
 * and the chmod needs the header.  A crash in between leaves the backing
 * mode wider than the header's, which the next open puts back.
 */
static int node_rw(struct vfs *v, int pathfd, struct node **out)
{
	struct stat st;
	int rc, fd, tries = 0;

	do
		rc = backing_reopen(pathfd, O_RDWR, &fd);
	while (inodes_fd_wait(v->inodes, rc, &tries));
	if (rc == -EACCES && !v->as_root && !fstat(pathfd, &st) &&
	    !backing_chmod(pathfd, (st.st_mode & 07777) | S_IRUSR | S_IWUSR)) {
		rc = backing_reopen(pathfd, O_RDWR, &fd);
		(void)backing_chmod(pathfd, st.st_mode & 07777);
	}
	return rc ? rc : nodes_get(v->nodes, fd, false, out);
}

/* Gives the backing file on pathfd the mode and owner a. */
static int backing_set(int pathfd, const struct format_attrs *a, bool owner)
{
	int rc = 0;

	/* Owner first: a chown clears the set-id bits of the mode. */
	if (owner)
		rc = vfs_sys(fchownat(pathfd, "", (uid_t)a->uid, (gid_t)a->gid,
				      AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
	return rc ? rc : backing_chmod(pathfd, (mode_t)a->mode);
}

/*
 * chmod and chown of an encrypted file: its header authenticates mode and
 * owner, so each change commits a header.  The backing file takes them
 * first, so that what the backing refuses (EPERM) is refused before
 * anything is committed; a commit that fails puts the backing back.
 */
static int set_file_attrs(struct vfs *v, int pathfd, const struct stat *attr,
			  int set, struct vfs_file *f)
{
	const bool owner = set & (VFS_SET_UID | VFS_SET_GID);
	struct format_attrs was, want;
	struct node *n = f ? f->n : NULL;
	struct stat st;
	int rc = 0;

	if (!n)
		rc = node_rw(v, pathfd, &n);
	if (!rc && fstat(pathfd, &st))
		rc = -errno;
	if (rc)
		goto out;
	/* A header from before phifs kept them: the backing's, trusted on
	 * first use. */
	if (cfile_attrs(n->cf, &was))
		was = backing_attrs(&st);
	want = was;
	if (set & VFS_SET_UID)
		want.uid = (uint32_t)attr->st_uid;
	if (set & VFS_SET_GID)
		want.gid = (uint32_t)attr->st_gid;
	if (set & VFS_SET_MODE)
		want.mode = (uint32_t)attr->st_mode & 07777u;
	else if (owner)	/* chown drops set-id bits, as the backing does */
		want.mode &= ~(uint32_t)(S_ISUID | S_ISGID);
	rc = backing_set(pathfd, &want, owner);
	if (!rc)
		rc = cfile_set_attrs(n->cf, &want);
	/* Opened read-only (the daemon may not write it): no header. */
	if (rc == -EBADF)
		rc = -EACCES;
	if (rc)
		(void)backing_set(pathfd, &was, owner);
out:
	if (n && !f) {
		int r = nodes_put(v->nodes, n);

		rc = rc ? rc : r;
	}
	return rc;
}

/* Applies a setattr to the object on fd, of type (S_IFMT bits). */
static int set_attrs(struct vfs *v, int fd, mode_t type,
		     const struct stat *attr, int set, struct vfs_file *f)
{
	const int times = VFS_SET_ATIME | VFS_SET_MTIME | VFS_SET_ATIME_NOW |
			  VFS_SET_MTIME_NOW;
	int rc = 0;

	if ((S_ISREG(type) || S_ISDIR(type)) &&
	    (set & (VFS_SET_MODE | VFS_SET_UID | VFS_SET_GID))) {
		rc = S_ISREG(type) ? set_file_attrs(v, fd, attr, set, f) :
				     vfs_folder_set(v, fd, attr, set);
		set &= ~(VFS_SET_MODE | VFS_SET_UID | VFS_SET_GID);
	}
	/* A device node keeps the mark of its record. */
	if (!rc && (set & VFS_SET_MODE) && !S_ISLNK(type))
		rc = backing_chmod(fd, (attr->st_mode & 07777) |
					       (S_ISCHR(type) || S_ISBLK(type) ?
							S_ISVTX : 0));
	if (!rc && (set & (VFS_SET_UID | VFS_SET_GID)))
		rc = vfs_sys(fchownat(fd, "",
				      set & VFS_SET_UID ? attr->st_uid :
							  (uid_t)-1,
				      set & VFS_SET_GID ? attr->st_gid :
							  (gid_t)-1,
				      AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
	if (!rc && (set & VFS_SET_SIZE))
		rc = set_size(v, fd, type, attr->st_size, f);
	/* A symlink's own times too: utimensat on its O_PATH handle sets
	 * the link's, never its target's (touch -h). */
	if (!rc && (set & times))
		rc = set_times(fd, attr, set, f);
	return rc;
}

int vfs_setattr(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		struct stat *attr, int set, struct vfs_file *f)
{
	struct vfs_req r = { .op = VFS_SETATTR, .ino = ino, .flags = set,
			     .mode = attr->st_mode,
			     .off = (uint64_t)attr->st_size,
			     .opener = f ? &f->opener : NULL };
	struct inode *i = vfs_inode(v, ino);
	int rc = vfs_gate(v, c, &r), fd;

	if (rc)
		return rc;
	fd = rc = inodes_pin(v->inodes, i);
	if (fd >= 0) {
		rc = set_attrs(v, fd, inodes_type(i), attr, set, f);
		vfs_report(v, c, i, f ? f->n->cf : NULL, rc);
		if (!rc)
			rc = vfs_fd_attrs(v, fd, attr);
		inodes_unpin(v->inodes, i);
	}
	return vfs_done(v, c, &r, rc);
}

/* A long target, from the node record on fd. */
static int read_long_link(struct vfs *v, int fd, char *buf, size_t len)
{
	struct format_record r;
	int rc = vfs_node_read(v, fd, &r);

	if (rc == -ENODATA || (!rc && r.kind != FORMAT_RECORD_SYMLINK))
		rc = -EUCLEAN;
	if (!rc && r.len >= len)
		rc = -ENAMETOOLONG;
	if (!rc)
		memcpy(buf, r.target, r.len + 1);
	return rc;
}

/*
 * Targets are sealed (format_symlink_open), the long ones in node records:
 * one planted in the backing directory fails here with EBADMSG, so the
 * kernel never follows it.
 */
static int read_link(struct vfs *v, struct inode *i, char *buf, size_t len)
{
	char sealed[FORMAT_SYMLINK_SEALED_MAX];
	int rc, fd = inodes_pin(v->inodes, i);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = readlinkat(fd, "", sealed, sizeof(sealed) - 1);
	if (n >= 0) {
		sealed[n] = 0;
		rc = format_symlink_open(v->link_key, v->vol->cv.volume_id,
					 sealed, buf, len);
	} else if (errno == EINVAL || errno == ENOENT) {
		rc = read_long_link(v, fd, buf, len);	/* a regular file */
	} else {
		rc = -errno;
	}
	inodes_unpin(v->inodes, i);
	return rc;
}

int vfs_readlink(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		 char *buf, size_t len)
{
	struct vfs_req r = { .op = VFS_READLINK, .ino = ino };
	int rc = vfs_gate(v, c, &r);

	return rc ? rc : vfs_done(v, c, &r,
				  read_link(v, vfs_inode(v, ino), buf, len));
}

int vfs_statfs(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
	       struct statvfs *sv)
{
	struct vfs_req r = { .op = VFS_STATFS, .ino = ino };
	int rc = vfs_gate(v, c, &r);

	if (rc)
		return rc;
	(void)closer_drain(v->closer);	/* df right after rm */
	rc = vfs_sys(fstatvfs(v->vol->backing.rootfd, sv));
	return vfs_done(v, c, &r, rc);
}

/* --- the ticker --- */

/* t plus ms milliseconds. */
static struct timespec after_ms(struct timespec t, long ms)
{
	t.tv_nsec += ms % 1000 * 1000000L;
	t.tv_sec += ms / 1000 + t.tv_nsec / 1000000000L;
	t.tv_nsec %= 1000000000L;
	return t;
}

static bool reached(const struct timespec *now, const struct timespec *t)
{
	return now->tv_sec > t->tv_sec ||
	       (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

/* One tick's work, out of tick_lock; ticks counts them. */
static void tick(struct vfs *v, unsigned ticks)
{
	/*
	 * The kernel reads ahead 128 KiB by default, one READ round trip
	 * each; with 1 MiB a cold sequential read ran about 1.4 times as
	 * fast here.  It caps readahead at what INIT was answered with, so
	 * this runs on the first ticks, once INIT is done.  Without root the
	 * default stays, which is only slower.
	 */
	if (ticks < 2 && v->mountpoint)
		(void)mountinfo_set_readahead(v->mountpoint, READAHEAD_KB);
	(void)nodes_commit_all(v->nodes, vfs_commit_failed, v);
}

void vfs_inval_attrs(struct vfs *v, uint64_t id)
{
	pthread_mutex_lock(&v->tick_lock);
	if (v->n_inval < VFS_INVAL_MAX)
		v->inval[v->n_inval++] = id;
	pthread_cond_signal(&v->tick_cond);
	pthread_mutex_unlock(&v->tick_lock);
}

/* The inval requests queued, out of tick_lock (the kernel's answer may
 * need other workers). */
static void inval_queued(struct vfs *v, const uint64_t *ids, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		if (v->kernel && v->kernel->inval_attrs)
			v->kernel->inval_attrs(v->karg, ids[k]);
}

void vfs_wake_ticker(struct vfs *v)
{
	if (!v->ticker_idle)
		return;
	pthread_mutex_lock(&v->tick_lock);
	pthread_cond_signal(&v->tick_cond);
	pthread_mutex_unlock(&v->tick_lock);
}

/*
 * Waits under tick_lock for the next tick, a reap, or the stop.  With no
 * file open there is no size to commit: then it waits without a timeout,
 * so an idle mount wakes nobody, until an open (vfs_wake_ticker) or a reap
 * request; the readahead tuning has its first ticks either way.
 */
static void ticker_wait(struct vfs *v, const struct timespec *due,
			unsigned ticks)
{
	if (v->reap_asked || v->stop || v->n_inval)
		return;
	if (ticks >= 2) {
		v->ticker_idle = true;
		if (!nodes_count(v->nodes)) {
			pthread_cond_wait(&v->tick_cond, &v->tick_lock);
			v->ticker_idle = false;
			return;
		}
		v->ticker_idle = false;
	}
	pthread_cond_timedwait(&v->tick_cond, &v->tick_lock, due);
}

/*
 * Commits the sizes of open files every COMMIT_INTERVAL_MS, reaps inodes
 * whenever the table asks (reap_asked, set under tick_lock so that no
 * request is lost while this thread is busy), and passes on the kernel
 * invalidations that request handlers may not make themselves.
 */
static void *ticker_main(void *arg)
{
	struct vfs *v = arg;
	struct timespec due, now;
	uint64_t inval[VFS_INVAL_MAX];
	unsigned ticks = 0, n_inval;
	bool reap;

	clock_gettime(CLOCK_MONOTONIC, &now);
	due = after_ms(now, 20);	/* the first as INIT is answered */
	pthread_mutex_lock(&v->tick_lock);
	while (!v->stop) {
		ticker_wait(v, &due, ticks);
		if (v->stop)
			break;
		reap = v->reap_asked;
		v->reap_asked = false;
		n_inval = v->n_inval;
		memcpy(inval, v->inval, n_inval * sizeof(inval[0]));
		v->n_inval = 0;
		pthread_mutex_unlock(&v->tick_lock);
		inval_queued(v, inval, n_inval);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (reached(&now, &due)) {
			tick(v, ticks++);
			due = after_ms(now, COMMIT_INTERVAL_MS);
		}
		if (reap || inodes_reap_due(v->inodes))
			inodes_reap(v->inodes);
		pthread_mutex_lock(&v->tick_lock);
	}
	pthread_mutex_unlock(&v->tick_lock);
	return NULL;
}

/* --- the core's life --- */

int vfs_start(struct vfs *v)
{
	int rc;

	/* Threads start here, not in vfs_new: the daemon forks in between. */
	rc = -pthread_create(&v->ticker, NULL, ticker_main, v);
	v->ticking = !rc;
	if (prefetch_new(VFS_OPEN_READAHEAD, &v->prefetch))
		v->prefetch = NULL;	/* reads just wait for the disk */
	if (closer_new(&v->closer))
		v->closer = NULL;	/* removes close their own */
	return rc;
}

void vfs_stop(struct vfs *v)
{
	if (v->ticking) {
		pthread_mutex_lock(&v->tick_lock);
		v->stop = true;
		pthread_cond_signal(&v->tick_cond);
		pthread_mutex_unlock(&v->tick_lock);
		pthread_join(v->ticker, NULL);
		v->ticking = false;
	}
	prefetch_free(v->prefetch);
	v->prefetch = NULL;
	closer_free(v->closer);
	v->closer = NULL;
	if (v->nodes)
		(void)nodes_commit_all(v->nodes, vfs_commit_failed, v);
}

int vfs_set_mountpoint(struct vfs *v, const char *path)
{
	free(v->mountpoint);
	v->mountpoint = realpath(path, NULL);
	return v->mountpoint ? 0 : -errno;
}

static int locks_init(struct vfs *v)
{
	pthread_condattr_t ca;
	int rc;

	rc = -pthread_condattr_init(&ca);
	if (!rc)
		rc = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!rc)
		rc = -pthread_cond_init(&v->tick_cond, &ca);
	(void)pthread_condattr_destroy(&ca);
	if (!rc)
		rc = -pthread_mutex_init(&v->tick_lock, NULL);
	if (!rc)
		rc = -pthread_mutex_init(&v->open_lock, NULL);
	if (!rc)
		rc = -pthread_mutex_init(&v->auth_lock, NULL);
	return rc;
}

int vfs_new(struct volume *vol, const struct vfs_kernel *kernel, void *karg,
	    struct vfs **out)
{
	struct vfs *v = calloc(1, sizeof(*v));
	struct inodes_limits lim;
	int rc;

	if (!v)
		return -ENOMEM;
	v->vol = vol;
	v->kernel = kernel;
	v->karg = karg;
	v->as_root = geteuid() == 0;
	rc = locks_init(v);
	if (!rc) {
		v->counters = aligned_alloc(64, VFS_STRIPES *
					    sizeof(*v->counters));
		if (v->counters)
			memset(v->counters, 0, VFS_STRIPES *
			       sizeof(*v->counters));
		else
			rc = -ENOMEM;
	}
	if (!rc)
		rc = keys_volume_key(vol->keys, "phifs symlink v1",
				     &v->link_key);
	if (!rc)
		rc = keys_volume_key(vol->keys, "phifs xattr v1",
				     &v->xattr_key);
	if (!rc)
		rc = keys_volume_key(vol->keys, "phifs xattr name v1",
				     &v->xattr_name_key);
	if (!rc)
		rc = keys_volume_key(vol->keys, FOLDERS_LABEL, &v->folder_key);
	if (!rc)
		rc = nodes_new(&vol->cv, &v->nodes);
	if (!rc && !(v->sizes = size_memo_new(SIZE_MEMO_SLOTS)))
		rc = -ENOMEM;
	if (!rc) {
		inodes_default_limits(vol->backing.rootfd, &lim);
		rc = inodes_new(vol->backing.rootfd, &lim, &table_ops, v,
				&v->inodes);
	}
	/* Not marked yet, the volume keeps serving the backing's (told). */
	if (!rc)
		(void)vfs_folders_adopt(v);
	if (rc) {
		vfs_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

void vfs_free(struct vfs *v)
{
	if (!v)
		return;
	vfs_stop(v);
	vfs_close_all(v);
	nodes_free(v->nodes);
	inodes_free(v->inodes);
	size_memo_free(v->sizes);
	crypto_key_free(v->link_key);
	free(v->counters);
	crypto_key_free(v->xattr_key);
	crypto_key_free(v->xattr_name_key);
	crypto_key_free(v->folder_key);
	free(v->mountpoint);
	free(v);
}
