/*
 * fs.c — the libfuse adapter (low-level API): each request becomes a caller
 * (fuse_req_ctx, fuse_req_getgroups) and a call into the operations core
 * (vfs.c), and its result a reply.  Holds no logic a test would want: that
 * is in the core, which knows nothing of FUSE.  The only module that
 * includes libfuse, with loop.c.
 */
#include "phifs/fs.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/loop.h"
#include "phifs/vfs.h"

/*
 * How long the kernel may keep names and attributes.  Every change goes
 * through this daemon (one per backing directory, by the lock), and the
 * kernel drops what each change makes stale, so only someone writing to the
 * backing behind its back would see old entries.  A short time costs a
 * LOOKUP per file when a listing is used later: reading a listed tree of
 * 10,000 files sent 9,369 of them at one second.  Under an access policy
 * the daemon keeps nothing by default (fs_set_cache): the kernel answers
 * any user from these caches, and the policy judges each user.
 */
#define CACHE_SECONDS 60.0

struct fs {
	struct vfs *vfs;
	struct fuse_session *se;
	double cache_s;		/* CACHE_SECONDS, or 0; set before mounting */
	bool direct;		/* files opened for direct I/O */
};

static bool direct_of(fuse_req_t req)
{
	return ((struct fs *)fuse_req_userdata(req))->direct;
}

static double cache_of(fuse_req_t req)
{
	return ((struct fs *)fuse_req_userdata(req))->cache_s;
}

static struct vfs *vfs_of(fuse_req_t req)
{
	return ((struct fs *)fuse_req_userdata(req))->vfs;
}

static int req_groups(void *ctx, gid_t *out, size_t max)
{
	return fuse_req_getgroups(ctx, (int)max, out);
}

/* The caller of req; its groups are read into g if the core asks. */
static struct vfs_caller caller_of(fuse_req_t req, struct vfs_groups *g)
{
	const struct fuse_ctx *x = fuse_req_ctx(req);

	g->n = -1;
	return (struct vfs_caller){ .uid = x->uid, .gid = x->gid,
				    .pid = x->pid, .get_groups = req_groups,
				    .ctx = req, .groups = g };
}

#define CALLER(req)                                                         \
	struct vfs_groups groups_;                                           \
	const struct vfs_caller caller = caller_of(req, &groups_)

static struct vfs_file *file_of(const struct fuse_file_info *fi)
{
	return fi ? (struct vfs_file *)(uintptr_t)fi->fh : NULL;
}

static struct vfs_dir *dir_of(const struct fuse_file_info *fi)
{
	return (struct vfs_dir *)(uintptr_t)fi->fh;
}

/* Integrity failures reach applications as EIO; the rest pass through. */
static int errno_of(int rc)
{
	switch (rc) {
	case -EBADMSG:
	case -EUCLEAN:
	case -EKEYREJECTED:
	case -ENOKEY:
	case -EPROTO:
		return EIO;
	}
	return -rc;
}

static void reply_rc(fuse_req_t req, int rc)
{
	fuse_reply_err(req, rc ? errno_of(rc) : 0);
}

static struct fuse_entry_param entry_param(fuse_req_t req,
					   const struct vfs_entry *e)
{
	return (struct fuse_entry_param){ .ino = e->ino, .attr = e->attr,
					  .attr_timeout = cache_of(req),
					  .entry_timeout = cache_of(req) };
}

static void reply_entry(fuse_req_t req, int rc, const struct vfs_entry *e)
{
	struct fuse_entry_param p;

	if (rc) {
		reply_rc(req, rc);
		return;
	}
	p = entry_param(req, e);
	if (fuse_reply_entry(req, &p))	/* interrupted: undo the lookup */
		vfs_forget(vfs_of(req), e->ino, 1);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vfs_entry e;
	CALLER(req);

	reply_entry(req, vfs_lookup(vfs_of(req), &caller, parent, name, &e),
		    &e);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
	vfs_forget(vfs_of(req), ino, n);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *f)
{
	for (size_t k = 0; k < count; k++)
		vfs_forget(vfs_of(req), f[k].ino, f[k].nlookup);
	fuse_reply_none(req);
}

static void reply_attr(fuse_req_t req, int rc, const struct stat *st)
{
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_attr(req, st, cache_of(req));
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;
	CALLER(req);

	(void)fi;
	reply_attr(req, vfs_getattr(vfs_of(req), &caller, ino, &st), &st);
}

/* The kernel's setattr bits go through as they are. */
_Static_assert(FUSE_SET_ATTR_MODE == VFS_SET_MODE &&
	       FUSE_SET_ATTR_UID == VFS_SET_UID &&
	       FUSE_SET_ATTR_GID == VFS_SET_GID &&
	       FUSE_SET_ATTR_SIZE == VFS_SET_SIZE &&
	       FUSE_SET_ATTR_ATIME == VFS_SET_ATIME &&
	       FUSE_SET_ATTR_MTIME == VFS_SET_MTIME &&
	       FUSE_SET_ATTR_ATIME_NOW == VFS_SET_ATIME_NOW &&
	       FUSE_SET_ATTR_MTIME_NOW == VFS_SET_MTIME_NOW,
	       "VFS_SET_* are FUSE_SET_ATTR_*");

static bool caller_in_group(const struct vfs_caller *c, gid_t gid)
{
	const gid_t *g;
	size_t n;

	if (c->gid == gid)
		return true;
	n = vfs_caller_groups(c, &g);
	for (size_t k = 0; k < n; k++)
		if (g[k] == gid)
			return true;
	return false;
}

/*
 * The mode of ino with the set-id bits dropped that Linux drops when
 * someone changes a file (setattr_should_drop_suidgid): set-user-id always;
 * set-group-id with group execute, or else (a mandatory-locking mark) when
 * the caller is not in the file's group nor holds CAP_FSETID.  The kernel
 * asks for a write or a truncation only by a caller without CAP_FSETID, but
 * for every chown: chown says so, and there uid 0 stands for the
 * capability.  *changed: whether any bit was dropped.
 */
static int killed_mode(fuse_req_t req, const struct vfs_caller *c,
		       fuse_ino_t ino, bool chown, mode_t *mode, bool *changed)
{
	struct stat st;
	int rc = vfs_getattr(vfs_of(req), c, ino, &st);

	if (rc)
		return rc;
	*mode = st.st_mode & ~(mode_t)S_ISUID;
	if ((*mode & S_IXGRP) ||
	    ((*mode & S_ISGID) && !(chown && c->uid == 0) &&
	     !caller_in_group(c, st.st_gid)))
		*mode &= ~(mode_t)S_ISGID;
	*changed = *mode != st.st_mode;
	return 0;
}

/*
 * Drops the set-id bits of ino when the kernel leaves it to us (loop.h)
 * on a write or a truncating open, and has the kernel forget the mode it
 * holds, which no reply to these carries: until then it would still run
 * the changed file set-id.  f: the open file.
 */
static int kill_suidgid(fuse_req_t req, const struct vfs_caller *c,
			fuse_ino_t ino, struct vfs_file *f)
{
	struct fs *fs = fuse_req_userdata(req);
	struct stat attr = { 0 };
	bool changed = false;
	int rc;

	if (!loop_kill_suidgid())
		return 0;
	/* The kernel asks on every write by a caller without CAP_FSETID:
	 * the open file's own mode answers most without a getattr. */
	if (f && !vfs_file_setid(f))
		return 0;
	rc = killed_mode(req, c, ino, false, &attr.st_mode, &changed);
	if (rc || !changed)
		return rc;
	rc = vfs_setattr(fs->vfs, c, ino, &attr, VFS_SET_MODE, f);
	if (!rc)
		(void)fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
	return rc;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	bool changed = false;
	mode_t mode;
	int rc = 0;
	CALLER(req);

	/* A truncation or chown the kernel left the set-id bits of to us
	 * (loop.h): the chmod it would have sent with it. */
	if (loop_kill_suidgid() && !(to_set & VFS_SET_MODE))
		rc = killed_mode(req, &caller, ino,
				 to_set & (VFS_SET_UID | VFS_SET_GID), &mode,
				 &changed);
	if (changed) {
		attr->st_mode = mode;
		to_set |= VFS_SET_MODE;
	}
	if (!rc)
		rc = vfs_setattr(vfs_of(req), &caller, ino, attr,
				 to_set & VFS_SET_ALL, file_of(fi));
	reply_attr(req, rc, attr);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char target[PATH_MAX];
	int rc;
	CALLER(req);

	rc = vfs_readlink(vfs_of(req), &caller, ino, target, sizeof(target));
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_readlink(req, target);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct vfs_entry e;
	CALLER(req);

	reply_entry(req, vfs_mknod(vfs_of(req), &caller, parent, name, mode,
				   rdev, &e), &e);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct vfs_entry e;
	CALLER(req);

	reply_entry(req, vfs_mkdir(vfs_of(req), &caller, parent, name, mode,
				   &e), &e);
}

static void fs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
		       const char *name)
{
	struct vfs_entry e;
	CALLER(req);

	reply_entry(req, vfs_symlink(vfs_of(req), &caller, target, parent,
				     name, &e), &e);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct vfs_entry e;
	CALLER(req);

	reply_entry(req, vfs_link(vfs_of(req), &caller, ino, newparent,
				  newname, &e), &e);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	CALLER(req);

	reply_rc(req, vfs_unlink(vfs_of(req), &caller, parent, name));
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	CALLER(req);

	reply_rc(req, vfs_rmdir(vfs_of(req), &caller, parent, name));
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	CALLER(req);

	reply_rc(req, vfs_rename(vfs_of(req), &caller, parent, name,
				 newparent, newname, flags));
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs *v = vfs_of(req);
	struct vfs_hint hint;
	struct vfs_file *f;
	int rc;
	CALLER(req);

	rc = vfs_open(v, &caller, ino, fi->flags, &f, &hint);
	if (!rc && (rc = kill_suidgid(req, &caller, ino, f)))
		(void)vfs_release(v, NULL, f);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	fi->fh = (uintptr_t)f;
	fi->direct_io = direct_of(req);
	if (fuse_reply_open(req, fi))	/* the open was interrupted */
		(void)vfs_release(v, NULL, f);
	vfs_opened(v, &hint);		/* after the reply */
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct vfs *v = vfs_of(req);
	struct fuse_entry_param p;
	struct vfs_entry e;
	struct vfs_file *f;
	int rc;
	CALLER(req);

	rc = vfs_create(v, &caller, parent, name, mode, fi->flags, &e, &f);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	fi->fh = (uintptr_t)f;
	fi->direct_io = direct_of(req);
	p = entry_param(req, &e);
	if (fuse_reply_create(req, &p, fi)) {
		(void)vfs_release(v, NULL, f);
		vfs_forget(v, e.ino, 1);
	}
}

/*
 * A worker thread's read buffer: replies are up to max_read, too large for
 * the stack, and libfuse ends idle workers, so the key frees it with them.
 */
struct read_buf {
	size_t cap;
	uint8_t bytes[];
};

static pthread_key_t read_key;
static pthread_once_t read_once = PTHREAD_ONCE_INIT;

static void read_key_init(void)
{
	if (pthread_key_create(&read_key, free))
		abort();
}

static uint8_t *read_buffer(size_t size)
{
	struct read_buf *b;

	pthread_once(&read_once, read_key_init);
	b = pthread_getspecific(read_key);
	if (b && b->cap >= size)
		return b->bytes;
	free(b);
	b = malloc(sizeof(*b) + size);
	if (b)
		b->cap = size;
	(void)pthread_setspecific(read_key, b);
	return b ? b->bytes : NULL;
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	uint8_t *buf = read_buffer(size);
	ssize_t n;
	CALLER(req);

	(void)ino;
	if (!buf || off < 0) {
		reply_rc(req, buf ? -EINVAL : -ENOMEM);
		return;
	}
	n = vfs_read(vfs_of(req), &caller, file_of(fi), buf, size,
		     (uint64_t)off);
	if (n < 0)
		reply_rc(req, (int)n);
	else
		fuse_reply_buf(req, (const char *)buf, (size_t)n);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n;
	CALLER(req);

	if (off < 0) {
		reply_rc(req, -EINVAL);
		return;
	}
	/* Before the bytes, as file_remove_privs does on ext4. */
	n = kill_suidgid(req, &caller, ino, file_of(fi));
	if (!n)
		n = vfs_write(vfs_of(req), &caller, file_of(fi), buf, size,
			      (uint64_t)off);
	if (n < 0)
		reply_rc(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	CALLER(req);

	(void)ino;
	reply_rc(req, vfs_release(vfs_of(req), &caller, file_of(fi)));
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	CALLER(req);

	(void)ino;
	reply_rc(req, vfs_fsync(vfs_of(req), &caller, file_of(fi), datasync));
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t off, off_t len, struct fuse_file_info *fi)
{
	int rc = -EINVAL;
	CALLER(req);

	(void)ino;
	if (off >= 0 && len > 0)
		rc = vfs_fallocate(vfs_of(req), &caller, file_of(fi), mode,
				   (uint64_t)off, (uint64_t)len);
	/* Never ENOSYS: the kernel would refuse every mode from then on. */
	reply_rc(req, rc == -ENOSYS ? -EOPNOTSUPP : rc);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct vfs *v = vfs_of(req);
	struct vfs_dir *d;
	int rc;
	CALLER(req);

	rc = vfs_opendir(v, &caller, ino, &d);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi))
		vfs_releasedir(v, &caller, d);
}

/* A reply buffer being filled by vfs_readdir. */
struct listing {
	fuse_req_t req;
	char *p;
	size_t left;
	bool plus;
};

static bool listing_fits(void *arg, const char *name)
{
	struct listing *l = arg;

	return (l->plus ? fuse_add_direntry_plus(l->req, NULL, 0, name, NULL, 0)
			: fuse_add_direntry(l->req, NULL, 0, name, NULL, 0)) <=
	       l->left;
}

static void listing_add(void *arg, const char *name, const struct vfs_entry *e,
			off_t next)
{
	struct listing *l = arg;
	struct fuse_entry_param p = entry_param(l->req, e);
	size_t len;

	if (!e->ino)
		p.attr_timeout = p.entry_timeout = 0;
	len = l->plus ? fuse_add_direntry_plus(l->req, l->p, l->left, name,
					       &p, next)
		      : fuse_add_direntry(l->req, l->p, l->left, name,
					  &e->attr, next);
	l->p += len;
	l->left -= len;
}

static void read_dir(fuse_req_t req, size_t size, off_t off,
		     struct fuse_file_info *fi, bool plus)
{
	char *buf = calloc(1, size);
	struct listing l = { req, buf, size, plus };
	const struct vfs_filler fill = { plus, listing_fits, listing_add, &l };
	int rc;
	CALLER(req);

	if (!buf) {
		reply_rc(req, -ENOMEM);
		return;
	}
	rc = vfs_readdir(vfs_of(req), &caller, dir_of(fi), off, &fill);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_buf(req, buf, size - l.left);
	free(buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	read_dir(req, size, off, fi, false);
}

/* Saves `ls -l` and `find | xargs cat` a LOOKUP round trip per entry. */
static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	read_dir(req, size, off, fi, true);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	CALLER(req);

	(void)ino;
	vfs_releasedir(vfs_of(req), &caller, dir_of(fi));
	fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	CALLER(req);

	(void)ino;
	reply_rc(req, vfs_fsyncdir(vfs_of(req), &caller, dir_of(fi),
				   datasync));
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int rc;
	CALLER(req);

	rc = vfs_statfs(vfs_of(req), &caller, ino, &sv);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_statfs(req, &sv);
}

/* --- extended attributes --- */

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	CALLER(req);

	reply_rc(req, vfs_setxattr(vfs_of(req), &caller, ino, name, value,
				   size, flags));
}

/* size 0 asks the length (fuse_reply_xattr); else the bytes. */
static void reply_xattr(fuse_req_t req, ssize_t n, const char *buf,
			size_t size)
{
	if (n < 0)
		reply_rc(req, (int)n);
	else if (!size)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	CALLER(req);

	if (size && !buf)
		reply_rc(req, -ENOMEM);
	else
		reply_xattr(req, vfs_getxattr(vfs_of(req), &caller, ino, name,
					      buf, size), buf, size);
	free(buf);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	CALLER(req);

	if (size && !buf)
		reply_rc(req, -ENOMEM);
	else
		reply_xattr(req, vfs_listxattr(vfs_of(req), &caller, ino, buf,
					       size), buf, size);
	free(buf);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	CALLER(req);

	reply_rc(req, vfs_removexattr(vfs_of(req), &caller, ino, name));
}

/* --- session --- */

static void fs_init(void *data, struct fuse_conn_info *conn)
{
	struct fs *fs = data;

	/* Large writes: fewer round trips, more blocks per syscall. */
	conn->max_write = 1024 * 1024;
	/* Threads start here, not in fs_new: the daemon forks in between.
	 * Without the ticker, sizes reach headers only at close. */
	(void)vfs_start(fs->vfs);
}

static void fs_destroy(void *data)
{
	vfs_stop(((struct fs *)data)->vfs);
}

static const struct fuse_lowlevel_ops ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.release = fs_release,
	.fsync = fs_fsync,
	.fallocate = fs_fallocate,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsyncdir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	/*
	 * No flush: close(2) has nothing to do here that RELEASE does not,
	 * and the kernel, told ENOSYS once, saves a round trip per close.
	 */
};

/* The core asks the kernel to forget an entry (not under any lock: the
 * kernel answers with FORGETs that other workers serve). */
static void drop_entry(void *arg, uint64_t parent, const char *name)
{
	struct fs *fs = arg;

	if (fs->se)
		(void)fuse_lowlevel_notify_inval_entry(fs->se, parent, name,
						       strlen(name));
}

/* The core asks the kernel to forget an inode's attributes (from the
 * ticker, never a request handler); off -1: attributes only. */
static void inval_attrs(void *arg, uint64_t ino)
{
	struct fs *fs = arg;

	if (fs->se)
		(void)fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
}

static const struct vfs_kernel kernel = {
	.drop_entry = drop_entry,
	.inval_attrs = inval_attrs,
};

int fs_new(struct volume *vol, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	int rc;

	if (!fs)
		return -ENOMEM;
	fs->cache_s = CACHE_SECONDS;
	rc = vfs_new(vol, &kernel, fs, &fs->vfs);
	if (rc) {
		free(fs);
		return rc;
	}
	*out = fs;
	return 0;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	vfs_free(fs->vfs);
	free(fs);
}

struct vfs *fs_vfs(struct fs *fs)
{
	return fs->vfs;
}

void fs_set_session(struct fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

void fs_set_cache(struct fs *fs, bool cache)
{
	fs->cache_s = cache ? CACHE_SECONDS : 0;
}

void fs_set_direct_io(struct fs *fs, bool direct)
{
	fs->direct = direct;
}

int fs_set_mountpoint(struct fs *fs, const char *path)
{
	return vfs_set_mountpoint(fs->vfs, path);
}

const struct fuse_lowlevel_ops *fs_operations(bool xattrs)
{
	static struct fuse_lowlevel_ops without;

	if (xattrs)
		return &ops;
	without = ops;
	without.setxattr = NULL;
	without.getxattr = NULL;
	without.listxattr = NULL;
	without.removexattr = NULL;
	return &without;
}
