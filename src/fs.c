/*
 * fs.c — the FUSE operations: each translates a request into calls on the
 * backing directory (backing.c), the open-file table (nodes.c) and the
 * encrypted files (cfile.c), and their result into a reply.  Holds no logic
 * a test would want to reach without a mount.
 */
#include "phifs/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "phifs/backing.h"
#include "phifs/cfile.h"
#include "phifs/nodes.h"

/* How often the sizes of open files reach their headers. */
#define COMMIT_INTERVAL_MS 1000

struct fs {
	struct volume *vol;
	struct nodes *nodes;
	struct crypto_key *link_key;	/* seals symlink targets */
	bool as_root;		/* give created files to the caller */
	pthread_t ticker;
	pthread_mutex_t tick_lock;	/* protects stop */
	pthread_cond_t tick_cond;
	bool stop;
	bool ticking;
};

struct dir_handle {
	DIR *dp;
	bool root;
};

static struct fs *fs_self(void)
{
	return fuse_get_context()->private_data;
}

static const struct backing *bk(void)
{
	return &fs_self()->vol->backing;
}

static struct node *node_of(const struct fuse_file_info *fi)
{
	return (struct node *)(uintptr_t)fi->fh;
}

/* Integrity failures reach applications as EIO; the rest pass through. */
static int reply(int rc)
{
	switch (rc) {
	case -EBADMSG:
	case -EUCLEAN:
	case -EKEYREJECTED:
	case -ENOKEY:
	case -EPROTO:
		return -EIO;
	}
	return rc;
}

static int sys(int r)
{
	return r < 0 ? -errno : 0;
}

/* Hands a new object to the user who made it (root daemon only). */
static void give(int dirfd, const char *name, int fd)
{
	struct fuse_context *c = fuse_get_context();

	if (!fs_self()->as_root)
		return;
	/* Failure leaves root as owner: safe, and visible to the user. */
	if (fd >= 0)
		(void)!fchown(fd, c->uid, c->gid);
	else
		(void)!fchownat(dirfd, name, c->uid, c->gid,
				AT_SYMLINK_NOFOLLOW);
}

/*
 * The plaintext size of a backing file: an open file's own, else its
 * header's.  Always the authenticated size: the kernel bounds reads by it,
 * so a size from anything an attacker can set would turn a file cut short
 * into a silently shorter file instead of an EIO.
 */
static uint64_t plain_size(const struct backing_path *p, const struct stat *st)
{
	struct cfile *cf;
	uint64_t size = 0;
	int fd;

	if (!nodes_size(fs_self()->nodes, st->st_dev, st->st_ino, &size))
		return size;
	if (backing_openat(p, O_RDONLY, 0, &fd))
		return 0;
	/* A header that does not authenticate shows as size 0; reading the
	 * file then fails with EIO, which is where the damage is reported. */
	if (!cfile_open(fd, &fs_self()->vol->cv, &cf)) {
		size = cfile_size(cf);
		cfile_release(cf);
	}
	close(fd);
	return size;
}

static int fs_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	struct backing_path p;
	int rc;

	if (fi) {
		struct node *n = node_of(fi);

		if (fstat(n->fd, st))
			return -errno;
		st->st_size = (off_t)cfile_size(n->cf);
		return 0;
	}
	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	rc = sys(fstatat(p.dirfd, p.name, st, AT_SYMLINK_NOFOLLOW));
	if (!rc && S_ISREG(st->st_mode))
		st->st_size = (off_t)plain_size(&p, st);
	if (!rc && S_ISLNK(st->st_mode))
		st->st_size = (off_t)format_symlink_length((size_t)st->st_size);
	backing_path_release(&p);
	return rc;
}

static int fs_access(const char *path, int mask)
{
	struct backing_path p;
	struct stat st;
	int rc;

	(void)mask;	/* default_permissions: the kernel checks the bits */
	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	rc = sys(fstatat(p.dirfd, p.name, &st, AT_SYMLINK_NOFOLLOW));
	backing_path_release(&p);
	return rc;
}

/*
 * Targets are sealed (format_symlink_open): one planted in the backing
 * directory fails here with EIO, so the kernel never follows it.
 */
static int fs_readlink(const char *path, char *buf, size_t size)
{
	char sealed[FORMAT_SYMLINK_SEALED_MAX];
	struct backing_path p;
	ssize_t n;
	int rc;

	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	n = readlinkat(p.dirfd, p.name, sealed, sizeof(sealed) - 1);
	rc = n < 0 ? -errno : 0;
	backing_path_release(&p);
	if (rc)
		return rc;
	sealed[n] = 0;
	return reply(format_symlink_open(fs_self()->link_key,
					 fs_self()->vol->cv.volume_id, sealed,
					 buf, size));
}

static int fs_mkdir(const char *path, mode_t mode)
{
	struct backing_path p;
	int rc;

	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	rc = sys(mkdirat(p.dirfd, p.name, mode));
	if (!rc)
		give(p.dirfd, p.name, -1);
	backing_path_release(&p);
	return rc;
}

static int unlink_common(const char *path, int flags)
{
	struct backing_path p;
	int rc;

	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	rc = sys(unlinkat(p.dirfd, p.name, flags));
	backing_path_release(&p);
	return rc;
}

static int fs_unlink(const char *path)
{
	return unlink_common(path, 0);
}

static int fs_rmdir(const char *path)
{
	return unlink_common(path, AT_REMOVEDIR);
}

static int fs_symlink(const char *target, const char *path)
{
	char sealed[FORMAT_SYMLINK_SEALED_MAX];
	struct backing_path p;
	int rc;

	rc = format_symlink_seal(fs_self()->link_key,
				 fs_self()->vol->cv.volume_id, target, sealed);
	if (rc)
		return rc;
	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	rc = sys(symlinkat(sealed, p.dirfd, p.name));
	if (!rc)
		give(p.dirfd, p.name, -1);
	backing_path_release(&p);
	return rc;
}

/* Resolves two paths for the calls that take two. */
static int resolve2(const char *a, const char *b, struct backing_path *pa,
		    struct backing_path *pb)
{
	int rc = backing_resolve(bk(), a, pa);

	if (rc)
		return rc;
	rc = backing_resolve(bk(), b, pb);
	if (rc)
		backing_path_release(pa);
	return rc;
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	struct backing_path a, b;
	int rc;

	rc = resolve2(from, to, &a, &b);
	if (rc)
		return rc;
	rc = sys(renameat2(a.dirfd, a.name, b.dirfd, b.name, flags));
	backing_path_release(&a);
	backing_path_release(&b);
	return rc;
}

static int fs_link(const char *from, const char *to)
{
	struct backing_path a, b;
	int rc;

	rc = resolve2(from, to, &a, &b);
	if (rc)
		return rc;
	rc = sys(linkat(a.dirfd, a.name, b.dirfd, b.name, 0));
	backing_path_release(&a);
	backing_path_release(&b);
	return rc;
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct backing_path p;
	int rc;

	if (fi)
		return sys(fchmod(node_of(fi)->fd, mode));
	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	rc = sys(fchmodat(p.dirfd, p.name, mode, AT_SYMLINK_NOFOLLOW));
	backing_path_release(&p);
	return rc;
}

static int fs_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	struct backing_path p;
	int rc;

	if (fi)
		return sys(fchown(node_of(fi)->fd, uid, gid));
	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	rc = sys(fchownat(p.dirfd, p.name, uid, gid, AT_SYMLINK_NOFOLLOW));
	backing_path_release(&p);
	return rc;
}

static int fs_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	struct backing_path p;
	int rc;

	if (fi)
		return sys(futimens(node_of(fi)->fd, tv));
	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	rc = sys(utimensat(p.dirfd, p.name, tv, AT_SYMLINK_NOFOLLOW));
	backing_path_release(&p);
	return rc;
}

/*
 * Opens the backing file read-write whatever the caller asked: a partial
 * block write reads the block first.  Read-only is the fallback for
 * files the daemon itself may not write.
 */
static int open_backing(const struct backing_path *p, int flags, int *fd)
{
	int rc = backing_openat(p, O_RDWR, 0, fd);

	if ((rc == -EACCES || rc == -EROFS) && (flags & O_ACCMODE) == O_RDONLY)
		rc = backing_openat(p, O_RDONLY, 0, fd);
	return rc;
}

static int open_node(const char *path, int flags, struct node **out)
{
	struct backing_path p;
	int rc, fd;

	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	rc = open_backing(&p, flags, &fd);
	backing_path_release(&p);
	if (!rc)
		rc = nodes_get(fs_self()->nodes, fd, false, out);
	return reply(rc);
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct node *n;
	int rc;

	if (size < 0)
		return -EINVAL;
	if (fi)
		return reply(cfile_truncate(node_of(fi)->cf, (uint64_t)size));
	rc = open_node(path, O_RDWR, &n);
	if (rc)
		return rc;
	rc = reply(cfile_truncate(n->cf, (uint64_t)size));
	nodes_put(fs_self()->nodes, n);
	return rc;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct node *n;
	int rc;

	rc = open_node(path, fi->flags, &n);
	if (rc)
		return rc;
	if (fi->flags & O_TRUNC) {
		rc = reply(cfile_truncate(n->cf, 0));
		if (rc) {
			nodes_put(fs_self()->nodes, n);
			return rc;
		}
	}
	fi->fh = (uintptr_t)n;
	return 0;
}

/*
 * Creates the file unnamed (O_TMPFILE), writes its header, then links it
 * in: a crash never leaves a named file without a header, and O_EXCL
 * falls out of linkat's EEXIST.
 */
static int create_linked(const struct backing_path *p, mode_t mode,
			 struct node **out)
{
	char proc[64];
	struct node *n;
	int fd, rc;

	fd = openat(p->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	give(-1, NULL, fd);
	rc = nodes_get(fs_self()->nodes, fd, true, &n);
	if (rc)
		return rc;
	rc = sys(linkat(n->fd, "", p->dirfd, p->name, AT_EMPTY_PATH));
	if (rc == -ENOENT || rc == -EPERM) {
		/* Without CAP_DAC_READ_SEARCH: the /proc way. */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", n->fd);
		rc = sys(linkat(AT_FDCWD, proc, p->dirfd, p->name,
				AT_SYMLINK_FOLLOW));
	}
	if (rc) {
		nodes_put(fs_self()->nodes, n);
		return rc;
	}
	*out = n;
	return 0;
}

/* For file systems without O_TMPFILE: create, then write the header. */
static int create_named(const struct backing_path *p, mode_t mode,
			struct node **out)
{
	int fd, rc;

	rc = backing_openat(p, O_CREAT | O_EXCL | O_RDWR, (int)mode, &fd);
	if (rc)
		return rc;
	give(-1, NULL, fd);
	rc = nodes_get(fs_self()->nodes, fd, true, out);
	if (rc)
		(void)unlinkat(p->dirfd, p->name, 0);
	return rc;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct backing_path p;
	struct node *n;
	int rc;

	rc = backing_resolve(bk(), path, &p);
	if (rc)
		return rc;
	rc = create_linked(&p, mode, &n);
	if (rc == -EOPNOTSUPP || rc == -EISDIR)
		rc = create_named(&p, mode, &n);
	backing_path_release(&p);
	/* Lost a race with another creator: open theirs, unless O_EXCL. */
	if (rc == -EEXIST && !(fi->flags & O_EXCL))
		return fs_open(path, fi);
	if (rc)
		return reply(rc);
	fi->fh = (uintptr_t)n;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	ssize_t n;

	(void)path;
	if (off < 0)
		return -EINVAL;
	n = cfile_pread(node_of(fi)->cf, buf, size, (uint64_t)off);
	return n < 0 ? reply((int)n) : (int)n;
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct cfile *cf = node_of(fi)->cf;
	ssize_t n;

	(void)path;
	if (off < 0)
		return -EINVAL;
	/* The kernel serialises writes to one inode, so the size read here
	 * is still the end when the write lands. */
	if (fi->flags & O_APPEND)
		off = (off_t)cfile_size(cf);
	n = cfile_pwrite(cf, buf, size, (uint64_t)off);
	return n < 0 ? reply((int)n) : (int)n;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	return sys(fstatvfs(bk()->rootfd, sv));
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	return reply(nodes_put(fs_self()->nodes, node_of(fi)));
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	return reply(cfile_fsync(node_of(fi)->cf, datasync));
}

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct backing_path p;
	struct dir_handle *d;
	int rc, fd;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	rc = backing_resolve(bk(), path, &p);
	if (!rc) {
		rc = backing_openat(&p, O_RDONLY | O_DIRECTORY, 0, &fd);
		d->root = !strcmp(p.name, ".");
		backing_path_release(&p);
	}
	if (!rc) {
		d->dp = fdopendir(fd);
		if (!d->dp) {
			rc = -errno;
			close(fd);
		}
	}
	if (rc) {
		free(d);
		return rc;
	}
	fi->fh = (uintptr_t)d;
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	struct dirent *e;

	(void)path;
	(void)off;
	(void)flags;
	rewinddir(d->dp);
	errno = 0;
	while ((e = readdir(d->dp))) {
		struct stat st = { .st_ino = e->d_ino,
				   .st_mode = (mode_t)DTTOIF(e->d_type) };

		if (backing_is_meta(e->d_name, d->root))
			continue;
		if (fill(buf, e->d_name, &st, 0, 0))
			break;
	}
	return -errno;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;

	(void)path;
	closedir(d->dp);
	free(d);
	return 0;
}

static int fs_fsyncdir(const char *path, int datasync,
		       struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;

	(void)path;
	return sys(datasync ? fdatasync(dirfd(d->dp)) : fsync(dirfd(d->dp)));
}

/* Commits the sizes of open files every COMMIT_INTERVAL_MS. */
static void *ticker_main(void *arg)
{
	struct fs *fs = arg;
	struct timespec at;

	pthread_mutex_lock(&fs->tick_lock);
	while (!fs->stop) {
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_nsec += COMMIT_INTERVAL_MS % 1000 * 1000000L;
		at.tv_sec += COMMIT_INTERVAL_MS / 1000 + at.tv_nsec / 1000000000L;
		at.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&fs->tick_cond, &fs->tick_lock, &at);
		if (fs->stop)
			break;
		pthread_mutex_unlock(&fs->tick_lock);
		(void)nodes_commit_all(fs->nodes);
		pthread_mutex_lock(&fs->tick_lock);
	}
	pthread_mutex_unlock(&fs->tick_lock);
	return NULL;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct fs *fs = fuse_get_context()->private_data;
	pthread_condattr_t ca;

	/* Paths are only a way in: open files are reached by handle, so an
	 * unlinked open file keeps working without .fuse_hidden renames. */
	cfg->use_ino = 1;
	cfg->nullpath_ok = 1;
	cfg->hard_remove = 1;
	/* Large writes: fewer round trips, more blocks per syscall. */
	conn->max_write = 1024 * 1024;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->tick_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&fs->tick_lock, NULL);
	fs->ticking = !pthread_create(&fs->ticker, NULL, ticker_main, fs);
	return fs;
}

static void fs_destroy(void *data)
{
	struct fs *fs = data;

	if (fs->ticking) {
		pthread_mutex_lock(&fs->tick_lock);
		fs->stop = true;
		pthread_cond_signal(&fs->tick_cond);
		pthread_mutex_unlock(&fs->tick_lock);
		pthread_join(fs->ticker, NULL);
		fs->ticking = false;
	}
	(void)nodes_commit_all(fs->nodes);
}

static const struct fuse_operations ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.getattr = fs_getattr,
	.access = fs_access,
	.readlink = fs_readlink,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.truncate = fs_truncate,
	.utimens = fs_utimens,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.statfs = fs_statfs,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsyncdir,
	/* No xattr or fallocate ops: the kernel then answers EOPNOTSUPP
	 * for all of them, consistently, and stores nothing in the clear. */
};

int fs_new(struct volume *vol, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	int rc;

	if (!fs)
		return -ENOMEM;
	rc = keys_volume_key(vol->keys, "phifs symlink v1", &fs->link_key);
	if (!rc)
		rc = nodes_new(&vol->cv, &fs->nodes);
	if (rc) {
		crypto_key_free(fs->link_key);
		free(fs);
		return rc;
	}
	fs->vol = vol;
	fs->as_root = geteuid() == 0;
	*out = fs;
	return 0;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	if (fs->ticking)
		fs_destroy(fs);
	nodes_free(fs->nodes);
	crypto_key_free(fs->link_key);
	free(fs);
}

const struct fuse_operations *fs_operations(void)
{
	return &ops;
}
