/*
 * fs.c — the FUSE operations (libfuse's low-level API): each translates a
 * request into calls on the backing directory (backing.c), the open-file
 * table (nodes.c) and the encrypted files (cfile.c), and their result into a
 * reply.  Holds no logic a test would want to reach without a mount.
 *
 * Inodes are the backing inodes: one `struct inode` per backing (dev, ino),
 * holding an O_PATH handle, so hard links are one inode to the kernel and an
 * unlinked open file stays reachable.
 */
#include "phifs/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "phifs/backing.h"
#include "phifs/cfile.h"
#include "phifs/nodes.h"

/* How often the sizes of open files reach their headers. */
#define COMMIT_INTERVAL_MS 1000
/* How long the kernel may keep names and attributes: every change goes
 * through this daemon, so only other writers to the backing would notice. */
#define CACHE_SECONDS 1.0
#define INODE_BUCKETS 4096u

struct inode {
	int fd;			/* O_PATH handle on the backing object */
	dev_t dev;
	ino_t ino;
	mode_t type;		/* S_IFMT bits */
	uint64_t nlookup;	/* under fs->ilock, as are parent and name */
	fuse_ino_t parent;	/* where the kernel last found it: a hint */
	char *name;
	struct inode *next;
};

struct fs {
	struct volume *vol;
	struct nodes *nodes;
	struct crypto_key *link_key;	/* seals symlink targets */
	bool as_root;		/* give created objects to the caller */
	struct inode root;
	pthread_mutex_t ilock;	/* protects inodes and every nlookup */
	struct inode *inodes[INODE_BUCKETS];
	_Atomic size_t ninodes;	/* changed under ilock */
	size_t inode_high;	/* ask the kernel to forget above this */
	struct fuse_session *se;
	pthread_t ticker;
	pthread_mutex_t tick_lock;	/* protects stop */
	pthread_cond_t tick_cond;
	bool stop;
	bool ticking;
};

struct dir_handle {
	DIR *dp;
	bool root;
	off_t off;		/* position dp is at */
	struct dirent *entry;	/* read but not yet replied */
};

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct inode *inode_of(struct fs *fs, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &fs->root : (struct inode *)(uintptr_t)ino;
}

static struct node *node_of(const struct fuse_file_info *fi)
{
	return (struct node *)(uintptr_t)fi->fh;
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

static int sys(int r)
{
	return r < 0 ? -errno : 0;
}

/* --- inodes --- */

static unsigned ibucket(dev_t dev, ino_t ino)
{
	return (unsigned)((ino * 0x9E3779B97F4A7C15ULL ^ dev) % INODE_BUCKETS);
}

/* Remembers where the kernel found i (for inode_reap); under ilock. */
static void inode_hint(struct inode *i, fuse_ino_t parent, const char *name)
{
	char *copy;

	if (!name || (i->name && i->parent == parent && !strcmp(i->name, name)))
		return;
	copy = strdup(name);
	if (!copy)
		return;
	free(i->name);
	i->name = copy;
	i->parent = parent;
}

/*
 * The inode of the backing object on pathfd (which this takes over), with
 * one more lookup counted; found as name in parent.
 */
static int inode_get(struct fs *fs, int pathfd, const struct stat *st,
		     fuse_ino_t parent, const char *name, struct inode **out)
{
	struct inode *i;

	pthread_mutex_lock(&fs->ilock);
	if (st->st_dev == fs->root.dev && st->st_ino == fs->root.ino) {
		i = &fs->root;
	} else {
		for (i = fs->inodes[ibucket(st->st_dev, st->st_ino)]; i;
		     i = i->next)
			if (i->dev == st->st_dev && i->ino == st->st_ino)
				break;
	}
	if (i) {
		i->nlookup++;
		if (i != &fs->root)
			inode_hint(i, parent, name);
		pthread_mutex_unlock(&fs->ilock);
		close(pathfd);
		*out = i;
		return 0;
	}
	i = calloc(1, sizeof(*i));
	if (!i) {
		pthread_mutex_unlock(&fs->ilock);
		close(pathfd);
		return -ENOMEM;
	}
	i->fd = pathfd;
	i->dev = st->st_dev;
	i->ino = st->st_ino;
	i->type = st->st_mode & S_IFMT;
	i->nlookup = 1;
	inode_hint(i, parent, name);
	i->next = fs->inodes[ibucket(i->dev, i->ino)];
	fs->inodes[ibucket(i->dev, i->ino)] = i;
	if (++fs->ninodes > fs->inode_high)
		pthread_cond_signal(&fs->tick_cond);	/* wake the reaper */
	pthread_mutex_unlock(&fs->ilock);
	*out = i;
	return 0;
}

static void inode_forget(struct fs *fs, struct inode *i, uint64_t n)
{
	struct inode **pp;

	pthread_mutex_lock(&fs->ilock);
	if (i == &fs->root || (i->nlookup -= n) > 0) {
		pthread_mutex_unlock(&fs->ilock);
		return;
	}
	for (pp = &fs->inodes[ibucket(i->dev, i->ino)]; *pp != i;
	     pp = &(*pp)->next)
		;
	*pp = i->next;
	fs->ninodes--;
	pthread_mutex_unlock(&fs->ilock);
	close(i->fd);
	free(i->name);
	free(i);
}

/*
 * Every inode the kernel remembers holds an O_PATH handle here, and the
 * kernel remembers a whole untarred source tree, more than the open-file
 * limit allows.  Above inode_high, ask the kernel to drop entries of files
 * nobody has open, and of folders; it then forgets them and their handles
 * close.  (A folder is forgotten only after its cached children, and each
 * child has its own handle.)
 */
static void inode_reap(struct fs *fs)
{
	struct { fuse_ino_t parent; char *name; } drop[256];
	size_t n = 0, want;
	uint64_t size;

	pthread_mutex_lock(&fs->ilock);
	want = fs->ninodes > fs->inode_high ? fs->ninodes - fs->inode_high / 2 :
					      0;
	for (unsigned b = 0; b < INODE_BUCKETS && n < want && n < 256; b++)
		for (struct inode *i = fs->inodes[b]; i && n < 256; i = i->next)
			if (i->name && (i->type == S_IFDIR ||
					nodes_size(fs->nodes, i->dev, i->ino,
						   &size))) {
				drop[n].parent = i->parent;
				drop[n++].name = strdup(i->name);
			}
	pthread_mutex_unlock(&fs->ilock);
	/* Not under ilock: the kernel answers with FORGETs we must serve. */
	for (size_t k = 0; k < n; k++) {
		if (drop[k].name && fs->se)
			(void)fuse_lowlevel_notify_inval_entry(
				fs->se, drop[k].parent, drop[k].name,
				strlen(drop[k].name));
		free(drop[k].name);
	}
}

/*
 * Frees the space of files that are gone (no name left, no open handle)
 * but whose inode the kernel has not forgotten yet: our O_PATH handle keeps
 * their blocks until its FORGET arrives, which may be after the next write
 * is refused for want of space.  Returns whether it freed anything.
 */
static bool reclaim_unlinked(struct fs *fs)
{
	bool freed = false;
	uint64_t size;

	pthread_mutex_lock(&fs->ilock);
	for (unsigned b = 0; b < INODE_BUCKETS; b++) {
		for (struct inode *i = fs->inodes[b]; i; i = i->next) {
			struct stat st;
			int fd;

			if (fstat(i->fd, &st) || st.st_nlink || !S_ISREG(st.st_mode) ||
			    !st.st_blocks ||
			    !nodes_size(fs->nodes, st.st_dev, st.st_ino, &size) ||
			    backing_reopen(i->fd, O_WRONLY, &fd))
				continue;
			freed |= !ftruncate(fd, 0);
			close(fd);
		}
	}
	pthread_mutex_unlock(&fs->ilock);
	return freed;
}

/* --- attributes --- */

/*
 * The plaintext size of a regular file, always the authenticated one (the
 * kernel bounds reads by it, so a size anyone could set would turn a file
 * cut short into a silently shorter file): its open node's, else its size
 * tag's, else its header's.
 */
static uint64_t plain_size(struct fs *fs, struct inode *i, const struct stat *st)
{
	uint8_t tag[FORMAT_SIZE_TAG_LEN];
	struct cfile *cf;
	uint64_t size = 0;
	char proc[32];
	ssize_t n;
	int fd;

	if (!nodes_size(fs->nodes, st->st_dev, st->st_ino, &size))
		return size;
	/* The tag sits in the inode: no read of the file's data. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", i->fd);
	n = getxattr(proc, FORMAT_SIZE_XATTR, tag, sizeof(tag));
	if (n > 0 && !format_size_untag(fs->vol->cv.size_key,
					(uint64_t)st->st_ino, tag, (size_t)n,
					&size))
		return size;
	if (backing_reopen(i->fd, O_RDONLY, &fd))
		return 0;
	/* A header that does not authenticate shows as size 0; reading the
	 * file then fails with EIO, which is where the damage is reported. */
	if (!cfile_open(fd, &fs->vol->cv, &cf)) {
		size = cfile_size(cf);
		cfile_release(cf);
	}
	close(fd);
	return size;
}

/* The sizes a user of the mount must see, in backing attributes. */
static void mount_sizes(struct fs *fs, struct inode *i, struct stat *st)
{
	if (S_ISREG(st->st_mode))
		st->st_size = (off_t)plain_size(fs, i, st);
	else if (S_ISLNK(st->st_mode))
		st->st_size = (off_t)format_symlink_length((size_t)st->st_size);
}

static int attrs(struct fs *fs, struct inode *i, struct stat *st)
{
	if (fstat(i->fd, st))
		return -errno;
	mount_sizes(fs, i, st);
	return 0;
}

/* Looks name up in parent and replies with its entry. */
static int lookup_entry(struct fs *fs, fuse_ino_t pino, const char *name,
			const char *bname, struct fuse_entry_param *e)
{
	struct inode *parent = inode_of(fs, pino);
	struct inode *i;
	int rc, fd;

	memset(e, 0, sizeof(*e));
	rc = backing_lookup(parent->fd, bname, &fd);
	if (rc)
		return rc;
	if (fstat(fd, &e->attr)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = inode_get(fs, fd, &e->attr, pino, name, &i);
	if (rc)
		return rc;
	mount_sizes(fs, i, &e->attr);	/* e->attr is fresh from fstat */
	e->ino = (uintptr_t)i;
	e->attr_timeout = CACHE_SECONDS;
	e->entry_timeout = CACHE_SECONDS;
	return 0;
}

/* Translates a name in parent: the one place names cross over. */
static int name_in(struct fs *fs, fuse_ino_t parent, const char *name,
		   char bname[NAME_MAX + 1])
{
	(void)fs;
	return backing_name(name, parent == FUSE_ROOT_ID, bname);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	char bname[NAME_MAX + 1];
	int rc;

	rc = name_in(fs, parent, name, bname);
	if (!rc)
		rc = lookup_entry(fs, parent, name, bname, &e);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_entry(req, &e);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
	inode_forget(fs_of(req), inode_of(fs_of(req), ino), n);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *f)
{
	for (size_t k = 0; k < count; k++)
		inode_forget(fs_of(req), inode_of(fs_of(req), f[k].ino),
			     f[k].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct stat st;
	int rc;

	(void)fi;
	rc = attrs(fs, inode_of(fs, ino), &st);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_attr(req, &st, CACHE_SECONDS);
}

/* Opens the node (encrypted file) of inode i for a size change. */
static int node_for(struct fs *fs, struct inode *i, struct fuse_file_info *fi,
		    struct node **out, bool *temp)
{
	int fd, rc;

	*temp = !fi;
	if (fi) {
		*out = node_of(fi);
		return 0;
	}
	rc = backing_reopen(i->fd, O_RDWR, &fd);
	if (!rc)
		rc = nodes_get(fs->nodes, fd, false, out);
	return rc;
}

static int set_times(struct inode *i, struct stat *attr, int to_set,
		     struct fuse_file_info *fi)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_nsec = UTIME_OMIT } };
	char proc[32];

	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (fi)
		return sys(futimens(node_of(fi)->fd, tv));
	/* utimensat on an O_PATH handle goes through /proc; for a symlink
	 * that would reach its target, so links keep their times. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", i->fd);
	return sys(utimensat(AT_FDCWD, proc, tv, 0));
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *i = inode_of(fs, ino);
	struct stat st;
	char proc[32];
	int rc = 0;

	if (fstat(i->fd, &st)) {
		reply_rc(req, -errno);
		return;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", i->fd);
	if (to_set & FUSE_SET_ATTR_MODE)
		rc = S_ISLNK(st.st_mode) ? 0 :
		     sys(chmod(proc, attr->st_mode & 07777));
	if (!rc && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		rc = sys(fchownat(i->fd, "",
				  to_set & FUSE_SET_ATTR_UID ? attr->st_uid :
							       (uid_t)-1,
				  to_set & FUSE_SET_ATTR_GID ? attr->st_gid :
							       (gid_t)-1,
				  AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
	if (!rc && (to_set & FUSE_SET_ATTR_SIZE)) {
		struct node *n;
		bool temp;

		rc = S_ISREG(st.st_mode) ? 0 : -EINVAL;
		if (!rc && attr->st_size < 0)
			rc = -EINVAL;
		if (!rc)
			rc = node_for(fs, i, fi, &n, &temp);
		if (!rc) {
			rc = cfile_truncate(n->cf, (uint64_t)attr->st_size);
			if (temp)
				nodes_put(fs->nodes, n);
		}
	}
	if (!rc && !S_ISLNK(st.st_mode) &&
	    (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
		       FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)))
		rc = set_times(i, attr, to_set, fi);
	if (!rc)
		rc = attrs(fs, i, &st);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_attr(req, &st, CACHE_SECONDS);
}

/*
 * Targets are sealed (format_symlink_open): one planted in the backing
 * directory fails here with EIO, so the kernel never follows it.
 */
static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	char sealed[FORMAT_SYMLINK_SEALED_MAX], target[FORMAT_SYMLINK_MAX + 1];
	ssize_t n;
	int rc;

	n = readlinkat(inode_of(fs, ino)->fd, "", sealed, sizeof(sealed) - 1);
	if (n < 0) {
		reply_rc(req, -errno);
		return;
	}
	sealed[n] = 0;
	rc = format_symlink_open(fs->link_key, fs->vol->cv.volume_id, sealed,
				 target, sizeof(target));
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_readlink(req, target);
}

/* Hands a new object to the user who made it (root daemon only). */
static void give(fuse_req_t req, int dirfd, const char *bname)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);

	if (fs_of(req)->as_root)
		/* Failure leaves root as owner: safe, and visible. */
		(void)!fchownat(dirfd, bname, c->uid, c->gid,
				AT_SYMLINK_NOFOLLOW);
}

/* Replies to mkdir, symlink, mknod and link with the new entry. */
static void reply_made(fuse_req_t req, fuse_ino_t parent, const char *name,
		       const char *bname, int rc)
{
	struct fuse_entry_param e;

	if (!rc)
		rc = lookup_entry(fs_of(req), parent, name, bname, &e);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_entry(req, &e);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct fs *fs = fs_of(req);
	struct inode *p = inode_of(fs, parent);
	char bname[NAME_MAX + 1];
	int rc;

	rc = name_in(fs, parent, name, bname);
	if (!rc)
		rc = sys(mkdirat(p->fd, bname, mode));
	if (!rc)
		give(req, p->fd, bname);
	reply_made(req, parent, name, bname, rc);
}

static void fs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
		       const char *name)
{
	struct fs *fs = fs_of(req);
	struct inode *p = inode_of(fs, parent);
	char bname[NAME_MAX + 1], sealed[FORMAT_SYMLINK_SEALED_MAX];
	int rc;

	rc = name_in(fs, parent, name, bname);
	if (!rc)
		rc = format_symlink_seal(fs->link_key, fs->vol->cv.volume_id,
					 target, sealed);
	if (!rc)
		rc = sys(symlinkat(sealed, p->fd, bname));
	if (!rc)
		give(req, p->fd, bname);
	reply_made(req, parent, name, bname, rc);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct fs *fs = fs_of(req);
	struct inode *i = inode_of(fs, ino), *p = inode_of(fs, newparent);
	char bname[NAME_MAX + 1], proc[32];
	int rc;

	rc = name_in(fs, newparent, newname, bname);
	if (!rc)
		rc = sys(linkat(i->fd, "", p->fd, bname, AT_EMPTY_PATH));
	if (rc == -ENOENT || rc == -EPERM) {
		/* Without CAP_DAC_READ_SEARCH: the /proc way. */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", i->fd);
		rc = sys(linkat(AT_FDCWD, proc, p->fd, bname,
				AT_SYMLINK_FOLLOW));
	}
	reply_made(req, newparent, newname, bname, rc);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
			 int flags)
{
	struct fs *fs = fs_of(req);
	char bname[NAME_MAX + 1];
	int rc;

	rc = name_in(fs, parent, name, bname);
	if (!rc)
		rc = sys(unlinkat(inode_of(fs, parent)->fd, bname, flags));
	reply_rc(req, rc);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 0);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, AT_REMOVEDIR);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct fs *fs = fs_of(req);
	char a[NAME_MAX + 1], b[NAME_MAX + 1];
	int rc;

	rc = name_in(fs, parent, name, a);
	if (!rc)
		rc = name_in(fs, newparent, newname, b);
	if (!rc)
		rc = sys(renameat2(inode_of(fs, parent)->fd, a,
				   inode_of(fs, newparent)->fd, b, flags));
	reply_rc(req, rc);
}

/* --- files --- */

/*
 * Opens the backing file read-write whatever the caller asked: a partial
 * block write reads the block first.  Read-only is the fallback for files
 * the daemon itself may not write.
 */
static int open_backing(struct inode *i, int flags, int *fd)
{
	int rc = backing_reopen(i->fd, O_RDWR, fd);

	if ((rc == -EACCES || rc == -EROFS) && (flags & O_ACCMODE) == O_RDONLY)
		rc = backing_reopen(i->fd, O_RDONLY, fd);
	return rc;
}

/* Opens the encrypted file of inode i for a handle with open(2) flags. */
static int open_node(struct fs *fs, struct inode *i, int flags,
		     struct node **out)
{
	struct node *n;
	int rc, fd;

	rc = open_backing(i, flags, &fd);
	if (!rc)
		rc = nodes_get(fs->nodes, fd, false, &n);
	if (!rc && (flags & O_TRUNC)) {
		rc = cfile_truncate(n->cf, 0);
		if (rc)
			nodes_put(fs->nodes, n);
	}
	if (!rc)
		*out = n;
	return rc;
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *n;
	struct stat st;
	int rc;

	if (fstat(inode_of(fs, ino)->fd, &st) || !S_ISREG(st.st_mode)) {
		reply_rc(req, -EINVAL);
		return;
	}
	rc = open_node(fs, inode_of(fs, ino), fi->flags, &n);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	fi->fh = (uintptr_t)n;
	if (fuse_reply_open(req, fi))
		nodes_put(fs->nodes, n);	/* the open was interrupted */
}

/*
 * Creates the file unnamed (O_TMPFILE), writes its header, then links it
 * in: a crash never leaves a named file without a header, and O_EXCL
 * falls out of linkat's EEXIST.
 */
static int create_linked(fuse_req_t req, struct inode *p, const char *bname,
			 mode_t mode, struct node **out)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct fs *fs = fs_of(req);
	char proc[32];
	struct node *n;
	int fd, rc;

	fd = openat(p->fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (fs->as_root)
		(void)!fchown(fd, c->uid, c->gid);
	rc = nodes_get(fs->nodes, fd, true, &n);
	if (rc)
		return rc;
	rc = sys(linkat(n->fd, "", p->fd, bname, AT_EMPTY_PATH));
	if (rc == -ENOENT || rc == -EPERM) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", n->fd);
		rc = sys(linkat(AT_FDCWD, proc, p->fd, bname,
				AT_SYMLINK_FOLLOW));
	}
	if (rc) {
		nodes_put(fs->nodes, n);
		return rc;
	}
	*out = n;
	return 0;
}

/* For file systems without O_TMPFILE: create, then write the header. */
static int create_named(fuse_req_t req, struct inode *p, const char *bname,
			mode_t mode, struct node **out)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct fs *fs = fs_of(req);
	int fd, rc;

	fd = openat(p->fd, bname, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW |
		    O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (fs->as_root)
		(void)!fchown(fd, c->uid, c->gid);
	rc = nodes_get(fs->nodes, fd, true, out);
	if (rc)
		(void)unlinkat(p->fd, bname, 0);
	return rc;
}

static int make_file(fuse_req_t req, struct inode *p, const char *bname,
		     mode_t mode, struct node **out)
{
	int rc = create_linked(req, p, bname, mode, out);

	if (rc == -EOPNOTSUPP || rc == -EISDIR)
		rc = create_named(req, p, bname, mode, out);
	return rc;
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *p = inode_of(fs, parent);
	struct fuse_entry_param e;
	char bname[NAME_MAX + 1];
	struct node *n = NULL;
	int rc;

	rc = name_in(fs, parent, name, bname);
	if (!rc)
		rc = make_file(req, p, bname, mode, &n);
	if (rc == -ENOSPC && reclaim_unlinked(fs))
		rc = make_file(req, p, bname, mode, &n);
	if (rc == -EEXIST && !(fi->flags & O_EXCL)) {
		/* Lost a race with another creator: open theirs. */
		rc = lookup_entry(fs, parent, name, bname, &e);
		if (!rc) {
			rc = open_node(fs, inode_of(fs, e.ino), fi->flags, &n);
			if (rc)
				inode_forget(fs, inode_of(fs, e.ino), 1);
		}
	} else if (!rc) {
		rc = lookup_entry(fs, parent, name, bname, &e);
		if (rc)
			nodes_put(fs->nodes, n);
	}
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	fi->fh = (uintptr_t)n;
	if (fuse_reply_create(req, &e, fi)) {
		nodes_put(fs->nodes, n);
		inode_forget(fs, inode_of(fs, e.ino), 1);
	}
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct fs *fs = fs_of(req);
	struct inode *p = inode_of(fs, parent);
	char bname[NAME_MAX + 1];
	struct node *n;
	int rc;

	rc = name_in(fs, parent, name, bname);
	if (!rc && S_ISREG(mode)) {
		rc = make_file(req, p, bname, mode & 07777, &n);
		if (!rc)
			nodes_put(fs->nodes, n);
	} else if (!rc && (S_ISFIFO(mode) || S_ISSOCK(mode))) {
		rc = sys(mknodat(p->fd, bname, mode, rdev));
		if (!rc)
			give(req, p->fd, bname);
	} else if (!rc) {
		rc = -EPERM;	/* device nodes: nothing to encrypt, no need */
	}
	reply_made(req, parent, name, bname, rc);
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

	(void)ino;
	if (!buf || off < 0) {
		reply_rc(req, buf ? -EINVAL : -ENOMEM);
		return;
	}
	n = cfile_pread(node_of(fi)->cf, buf, size, (uint64_t)off);
	if (n < 0)
		reply_rc(req, (int)n);
	else
		fuse_reply_buf(req, (const char *)buf, (size_t)n);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct cfile *cf = node_of(fi)->cf;
	ssize_t n;

	(void)ino;
	if (off < 0) {
		reply_rc(req, -EINVAL);
		return;
	}
	/* The kernel serialises writes to one inode, so the size read here
	 * is still the end when the write lands. */
	if (fi->flags & O_APPEND)
		off = (off_t)cfile_size(cf);
	n = cfile_pwrite(cf, buf, size, (uint64_t)off);
	/* Space a delete just freed may wait on the kernel's RELEASE and
	 * FORGET, which come asynchronously and other workers serve:
	 * reclaim, give them a moment, try again, for up to half a second. */
	for (int tries = 0; n == -ENOSPC && tries < 20; tries++) {
		(void)reclaim_unlinked(fs_of(req));
		usleep(25000);
		n = cfile_pwrite(cf, buf, size, (uint64_t)off);
	}
	if (n < 0)
		reply_rc(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	reply_rc(req, nodes_put(fs_of(req)->nodes, node_of(fi)));
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino;
	reply_rc(req, cfile_fsync(node_of(fi)->cf, datasync));
}

/* --- folders --- */

static void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct dir_handle *d = calloc(1, sizeof(*d));
	int fd, rc;

	if (!d) {
		reply_rc(req, -ENOMEM);
		return;
	}
	rc = backing_reopen(inode_of(fs, ino)->fd, O_RDONLY | O_DIRECTORY, &fd);
	if (!rc) {
		d->dp = fdopendir(fd);
		if (!d->dp) {
			rc = -errno;
			close(fd);
		}
	}
	if (rc) {
		free(d);
		reply_rc(req, rc);
		return;
	}
	d->root = ino == FUSE_ROOT_ID;
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi)) {
		closedir(d->dp);
		free(d);
	}
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = calloc(1, size), *p = buf;
	size_t left = size;
	int err = 0;

	(void)ino;
	if (!buf) {
		reply_rc(req, -ENOMEM);
		return;
	}
	if (off != d->off) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->off = off;
	}
	for (;;) {
		struct stat st;
		size_t len;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				err = errno;	/* 0 at the end of the folder */
				break;
			}
		}
		if (backing_is_meta(d->entry->d_name, d->root)) {
			d->off = d->entry->d_off;
			d->entry = NULL;
			continue;
		}
		memset(&st, 0, sizeof(st));
		st.st_ino = d->entry->d_ino;
		st.st_mode = (mode_t)DTTOIF(d->entry->d_type);
		len = fuse_add_direntry(req, p, left, d->entry->d_name, &st,
					d->entry->d_off);
		if (len > left)
			break;	/* keep the entry for the next call */
		p += len;
		left -= len;
		d->off = d->entry->d_off;
		d->entry = NULL;
	}
	if (err && p == buf)
		reply_rc(req, -err);
	else
		fuse_reply_buf(req, buf, size - left);
	free(buf);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;

	(void)ino;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	int fd = dirfd(d->dp);

	(void)ino;
	reply_rc(req, sys(datasync ? fdatasync(fd) : fsync(fd)));
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	if (fstatvfs(fs_of(req)->root.fd, &sv))
		reply_rc(req, -errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* --- session --- */

/*
 * Commits the sizes of open files every COMMIT_INTERVAL_MS, and reaps
 * inodes when inode_get says there are too many.
 */
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
		if (fs->ninodes > fs->inode_high)	/* a hint: no lock */
			inode_reap(fs);
		pthread_mutex_lock(&fs->tick_lock);
	}
	pthread_mutex_unlock(&fs->tick_lock);
	return NULL;
}

static void fs_init(void *data, struct fuse_conn_info *conn)
{
	struct fs *fs = data;

	/* Large writes: fewer round trips, more blocks per syscall. */
	conn->max_write = 1024 * 1024;
	fs->ticking = !pthread_create(&fs->ticker, NULL, ticker_main, fs);
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
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsyncdir,
	.statfs = fs_statfs,
	/* No xattr or fallocate ops: the kernel then answers EOPNOTSUPP
	 * for all of them, consistently, and stores nothing in the clear. */
};

int fs_new(struct volume *vol, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	pthread_condattr_t ca;
	struct rlimit lim;
	struct stat st;
	int rc;

	if (!fs)
		return -ENOMEM;
	fs->root.fd = -1;
	rc = keys_volume_key(vol->keys, "phifs symlink v1", &fs->link_key);
	if (!rc)
		rc = nodes_new(&vol->cv, &fs->nodes);
	if (!rc)
		rc = backing_reopen(vol->backing.rootfd, O_PATH, &fs->root.fd);
	if (!rc && fstat(fs->root.fd, &st))
		rc = -errno;
	if (rc) {
		fs_free(fs);
		return rc;
	}
	fs->root.dev = st.st_dev;
	fs->root.ino = st.st_ino;
	fs->root.nlookup = 1;
	fs->vol = vol;
	fs->as_root = geteuid() == 0;
	fs->inode_high = getrlimit(RLIMIT_NOFILE, &lim) ? 512 :
			 lim.rlim_cur / 2 > 64 ? lim.rlim_cur / 2 : 64;
	pthread_mutex_init(&fs->ilock, NULL);
	pthread_mutex_init(&fs->tick_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->tick_cond, &ca);
	pthread_condattr_destroy(&ca);
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
	for (unsigned b = 0; b < INODE_BUCKETS; b++) {
		while (fs->inodes[b]) {
			struct inode *i = fs->inodes[b];

			fs->inodes[b] = i->next;
			close(i->fd);
			free(i->name);
			free(i);
		}
	}
	if (fs->root.fd >= 0)
		close(fs->root.fd);
	crypto_key_free(fs->link_key);
	free(fs);
}

void fs_set_session(struct fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

const struct fuse_lowlevel_ops *fs_operations(void)
{
	return &ops;
}
