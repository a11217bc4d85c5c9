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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "phifs/backing.h"
#include "phifs/cfile.h"
#include "phifs/closer.h"
#include "phifs/nodes.h"
#include "phifs/prefetch.h"
#include "phifs/sizememo.h"

/* How often the sizes of open files reach their headers. */
#define COMMIT_INTERVAL_MS 1000
/*
 * How long the kernel may keep names and attributes.  Every change goes
 * through this daemon (one per backing directory, by the lock), and the
 * kernel drops what each change makes stale, so only someone writing to the
 * backing behind its back would see old entries.  A short time costs a
 * LOOKUP per file when a listing is used later: reading a listed tree of
 * 10,000 files sent 9,369 of them at one second.
 */
#define CACHE_SECONDS 60.0
#define INODE_BUCKETS 256u	/* to start with; doubles as inodes come */
/* Sizes remembered: a folder's worth, listed then removed (320 KiB). */
#define SIZE_MEMO_SLOTS 8192u
#define READAHEAD_KB "1024"
/* Bytes of a backing file fetched together with its header on open. */
#define OPEN_READAHEAD (128 * 1024)
/* A READ this large comes from the kernel's read-ahead of a stream. */
#define STREAM_READ (256 * 1024)

struct inode {
	int fd;			/* O_PATH handle on the backing object, or -1
				 * while parked; under fs->ilock, as are: */
	unsigned pins;		/* users of fd right now (inode_pin) */
	struct file_handle *fh;	/* opens fd again; set when first parked */
	dev_t dev;
	ino_t ino;
	mode_t type;		/* S_IFMT bits */
	uint64_t nlookup;	/* under fs->ilock, as are parent and name */
	fuse_ino_t parent;	/* where the kernel last found it: a hint */
	dev_t pdev;		/* that parent's backing object */
	ino_t pino;
	char *name;
	bool gone;		/* unlinked: out of the table, no handle */
	struct stat *last;	/* when gone: its attributes, or NULL */
	struct inode *next;	/* in its bucket, or in fs->gone */
	struct inode **pprev;	/* what points at it in fs->gone */
};

struct fs {
	struct volume *vol;
	struct nodes *nodes;
	struct size_memo *sizes;	/* verified from size tags */
	struct crypto_key *link_key;	/* seals symlink targets */
	bool as_root;		/* give created objects to the caller */
	struct inode root;
	pthread_mutex_t ilock;	/* protects inodes and every nlookup */
	struct inode **inodes;	/* nbuckets chains */
	unsigned nbuckets;	/* a power of two */
	struct inode *gone;	/* removed objects the kernel still knows */
	_Atomic size_t ninodes;	/* changed under ilock */
	size_t inode_high;	/* ask the kernel to forget above this */
	size_t nfds;		/* inodes' open handles, under ilock */
	size_t fd_high;		/* park handles above this */
	unsigned park_next;	/* bucket inode_park looks at next */
	bool can_park;		/* file handles work (CAP_DAC_READ_SEARCH) */
	struct fuse_session *se;
	struct prefetch *prefetch;	/* NULL until INIT, or when it failed */
	struct closer *closer;	/* the same; closes removed files' handles */
	char *mountpoint;	/* absolute; NULL when not told */
	pthread_t ticker;
	pthread_mutex_t tick_lock;	/* protects stop and reap_asked */
	pthread_cond_t tick_cond;
	bool stop;
	bool reap_asked;
	bool ticking;
	pthread_mutex_t dir_lock;	/* protects dirs */
	struct dir_handle *dirs;	/* open folders: the kernel need not
					 * release them all before we exit */
};

struct dir_handle {
	DIR *dp;
	bool root;
	off_t off;		/* position dp is at */
	struct dirent *entry;	/* read but not yet replied */
	struct dir_handle *next, **pprev;	/* in fs->dirs */
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

static unsigned ibucket(const struct fs *fs, dev_t dev, ino_t ino)
{
	return (unsigned)((ino * 0x9E3779B97F4A7C15ULL ^ dev) &
			  (fs->nbuckets - 1));
}

/*
 * Doubles the buckets once there are two inodes a bucket: an untarred
 * source tree is 80,000 inodes, and every lookup walks a chain.  Keeps
 * the old table if memory is short.  Under ilock.
 */
static void inode_rehash(struct fs *fs)
{
	unsigned n = fs->nbuckets * 2, old = fs->nbuckets;
	struct inode **t = calloc(n, sizeof(*t)), **was = fs->inodes;

	if (!t)
		return;
	fs->inodes = t;
	fs->nbuckets = n;
	for (unsigned b = 0; b < old; b++) {
		while (was[b]) {
			struct inode *i = was[b];
			unsigned nb = ibucket(fs, i->dev, i->ino);

			was[b] = i->next;
			i->next = t[nb];
			t[nb] = i;
		}
	}
	free(was);
}

/* Asks the ticker to reap inodes; ilock may be held (never the other way
 * round: the ticker lets go of tick_lock before it takes ilock). */
static void wake_reaper(struct fs *fs)
{
	pthread_mutex_lock(&fs->tick_lock);
	fs->reap_asked = true;
	pthread_cond_signal(&fs->tick_cond);
	pthread_mutex_unlock(&fs->tick_lock);
}

/*
 * At the open-file limit: the reaper has the kernel forget inodes, and the
 * FORGETs that close their handles come to other workers, so a request
 * that met EMFILE waits a moment and tries again, for up to 200 ms, as a
 * write that meets ENOSPC does.  Whether to try again.
 */
static bool fd_wait(struct fs *fs, int rc, int *tries)
{
	if ((rc != -EMFILE && rc != -ENFILE) || (*tries)++ == 40)
		return false;
	wake_reaper(fs);
	usleep(5000);
	return true;
}

/*
 * Remembers where the kernel found i (for inode_reap and read-ahead);
 * under ilock, while the request naming parent holds it.
 */
static void inode_hint(struct fs *fs, struct inode *i, fuse_ino_t parent,
		       const char *name)
{
	const struct inode *p;
	char *copy;

	if (!name || (i->name && i->parent == parent && !strcmp(i->name, name)))
		return;
	p = inode_of(fs, parent);
	copy = strdup(name);
	if (!copy)
		return;
	free(i->name);
	i->name = copy;
	i->parent = parent;
	i->pdev = p->dev;
	i->pino = p->ino;
}

static void inode_free(struct inode *i)
{
	if (i->fd >= 0)
		close(i->fd);
	free(i->fh);
	free(i->name);
	free(i->last);
	free(i);
}

/* A file handle for the object on fd, or NULL. */
static struct file_handle *handle_of(int fd)
{
	struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ), *small;
	int mount_id;

	if (!h)
		return NULL;
	h->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", h, &mount_id, AT_EMPTY_PATH)) {
		free(h);
		return NULL;
	}
	small = realloc(h, sizeof(*h) + h->handle_bytes);
	return small ? small : h;
}

/* Closes i's handle if nobody needs it now; under ilock. */
static bool inode_park_one(struct fs *fs, struct inode *i)
{
	uint64_t size;

	/* An open file may be unlinked, and then has no handle to reopen
	 * by; a handle from another file system would not resolve. */
	if (i->fd < 0 || i->pins || i->dev != fs->root.dev ||
	    !nodes_size(fs->nodes, i->dev, i->ino, &size))
		return false;
	if (!i->fh && !(i->fh = handle_of(i->fd)))
		return false;
	close(i->fd);
	i->fd = -1;
	fs->nfds--;
	return true;
}

/*
 * The kernel may remember more objects than the open-file limit allows
 * handles (a listed folder of 20,000 files), so above fd_high the handles
 * of inodes nobody uses are closed, round robin, down to 3/4 of it, and
 * opened again from their file handles when next needed; under ilock.
 */
static void inode_park(struct fs *fs)
{
	size_t target = fs->fd_high / 4 * 3;

	if (!fs->can_park)
		return;
	for (unsigned k = 0; k < fs->nbuckets && fs->nfds > target; k++) {
		unsigned b = fs->park_next++ & (fs->nbuckets - 1);

		for (struct inode *i = fs->inodes[b]; i && fs->nfds > target;
		     i = i->next)
			(void)inode_park_one(fs, i);
	}
}

/* Opens parked i again; -ESTALE when its object is gone or replaced. */
static int inode_unpark(struct fs *fs, struct inode *i)
{
	struct stat st;
	int fd;

	fd = open_by_handle_at(fs->vol->backing.rootfd, i->fh,
			       O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESTALE : -errno;
	if (fstat(fd, &st) || st.st_dev != i->dev || st.st_ino != i->ino) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/*
 * The O_PATH handle of i, kept open until inode_unpin(): the fd, or
 * -errno.  Every use of an inode's handle goes through here.
 */
static int inode_pin(struct fs *fs, struct inode *i)
{
	int fd;

	pthread_mutex_lock(&fs->ilock);
	if (i->fd >= 0) {
		i->pins++;
		fd = i->fd;
		pthread_mutex_unlock(&fs->ilock);
		return fd;
	}
	if (i->gone) {
		pthread_mutex_unlock(&fs->ilock);
		return -ESTALE;
	}
	pthread_mutex_unlock(&fs->ilock);
	/* fh is set before fd is -1, and freed only with i. */
	fd = inode_unpark(fs, i);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&fs->ilock);
	if (i->gone) {
		pthread_mutex_unlock(&fs->ilock);
		close(fd);
		return -ESTALE;
	}
	if (i->fd >= 0) {	/* another thread was quicker */
		close(fd);
	} else {
		i->fd = fd;
		fs->nfds++;
	}
	i->pins++;
	fd = i->fd;
	if (fs->nfds > fs->fd_high)
		inode_park(fs);
	pthread_mutex_unlock(&fs->ilock);
	return fd;
}

static void inode_unpin(struct fs *fs, struct inode *i)
{
	pthread_mutex_lock(&fs->ilock);
	i->pins--;
	pthread_mutex_unlock(&fs->ilock);
}

/* The inode of backing object (dev, ino), or NULL; under ilock. */
static struct inode *inode_find(struct fs *fs, dev_t dev, ino_t ino)
{
	struct inode *i;

	if (dev == fs->root.dev && ino == fs->root.ino)
		return &fs->root;
	for (i = fs->inodes[ibucket(fs, dev, ino)]; i; i = i->next)
		if (i->dev == dev && i->ino == ino)
			break;
	return i;
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
	i = inode_find(fs, st->st_dev, st->st_ino);
	if (i) {
		i->nlookup++;
		if (i != &fs->root)
			inode_hint(fs, i, parent, name);
		if (i->fd < 0) {	/* parked: saves a reopen */
			if (++fs->nfds > fs->fd_high)
				inode_park(fs);	/* i->fd < 0: not i */
			i->fd = pathfd;
			pathfd = -1;
		}
		pthread_mutex_unlock(&fs->ilock);
		if (pathfd >= 0)
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
	inode_hint(fs, i, parent, name);
	if (++fs->nfds > fs->fd_high)
		inode_park(fs);		/* before i is in the table */
	i->next = fs->inodes[ibucket(fs, i->dev, i->ino)];
	fs->inodes[ibucket(fs, i->dev, i->ino)] = i;
	if (++fs->ninodes > 2 * (size_t)fs->nbuckets)
		inode_rehash(fs);
	if (fs->ninodes > fs->inode_high)
		wake_reaper(fs);
	pthread_mutex_unlock(&fs->ilock);
	*out = i;
	return 0;
}

/* Takes i out of the table; under ilock. */
static void inode_unhash(struct fs *fs, struct inode *i)
{
	struct inode **pp;

	for (pp = &fs->inodes[ibucket(fs, i->dev, i->ino)]; *pp != i;
	     pp = &(*pp)->next)
		;
	*pp = i->next;
	fs->ninodes--;
	if (i->fd >= 0)
		fs->nfds--;
}

static void inode_forget(struct fs *fs, struct inode *i, uint64_t n)
{
	pthread_mutex_lock(&fs->ilock);
	if (i == &fs->root || (i->nlookup -= n) > 0) {
		pthread_mutex_unlock(&fs->ilock);
		return;
	}
	if (i->gone) {
		*i->pprev = i->next;
		if (i->next)
			i->next->pprev = i->pprev;
		pthread_mutex_unlock(&fs->ilock);
		inode_free(i);
		return;
	}
	inode_unhash(fs, i);
	pthread_mutex_unlock(&fs->ilock);
	inode_free(i);
}

/*
 * The object of i was removed (its last name, or a folder): close its
 * handle now instead of at the kernel's FORGET, which comes late.  Until
 * then the handle would keep the file's space, and the backing folder
 * would drag the entry along (every rmdir walks the dentries still held
 * under it).  Out of the table too: once its handle is closed, a new file
 * may get the same inode number, and must get an inode of its own.  Under
 * ilock; not for an open file or an inode in use.  Returns the handle for
 * the caller to close once out of the lock (the last close frees the file,
 * which takes a while), or -1.  last: its attributes, when known.
 */
static int inode_gone(struct fs *fs, struct inode *i, const struct stat *last)
{
	uint64_t size;
	int fd = i->fd;

	if (i == &fs->root || i->pins ||
	    !nodes_size(fs->nodes, i->dev, i->ino, &size))
		return -1;
	/* Its attributes, for a descriptor that still names it (an O_PATH
	 * one does) and asks; without them that gets ESTALE. */
	if (last && (i->last = malloc(sizeof(*i->last))))
		*i->last = *last;
	inode_unhash(fs, i);
	i->fd = -1;
	i->gone = true;
	i->next = fs->gone;
	if (fs->gone)
		fs->gone->pprev = &i->next;
	i->pprev = &fs->gone;
	fs->gone = i;
	return fd;
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
	for (unsigned b = 0; b < fs->nbuckets && n < want && n < 256; b++)
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
 * is refused for want of space; and waits for the closer, whose queue
 * holds removed files' last handles.  Returns whether it freed anything.
 */
static bool reclaim_unlinked(struct fs *fs)
{
	bool freed = closer_drain(fs->closer);
	uint64_t size;

	pthread_mutex_lock(&fs->ilock);
	for (unsigned b = 0; b < fs->nbuckets; b++) {
		for (struct inode *i = fs->inodes[b]; i; i = i->next) {
			struct stat st;
			int fd;

			if (i->fd < 0 || i->pins || fstat(i->fd, &st) ||
			    st.st_nlink || !S_ISREG(st.st_mode) ||
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
static uint64_t plain_size(struct fs *fs, int pathfd, int dirfd,
			   const char *bname, const struct stat *st)
{
	uint8_t tag[FORMAT_SIZE_TAG_LEN];
	struct cfile *cf;
	uint64_t size = 0;
	ssize_t n;
	int fd;

	if (!nodes_size(fs->nodes, st->st_dev, st->st_ino, &size))
		return size;
	if (size_memo_get(fs->sizes, st, &size))
		return size;
	/* The tag sits in the inode: no read of the file's data.  Bound to
	 * st_ino, so one read by name from a renamed file fails here. */
	n = backing_getxattr(pathfd, dirfd, bname, FORMAT_SIZE_XATTR, tag,
			     sizeof(tag));
	if (n > 0 && !format_size_untag(fs->vol->cv.size_key,
					(uint64_t)st->st_ino, tag, (size_t)n,
					&size)) {
		struct timespec now;

		if (!clock_gettime(CLOCK_REALTIME, &now))
			size_memo_put(fs->sizes, st, size, &now);
		return size;
	}
	if (backing_reopen(pathfd, O_RDONLY, &fd))
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
/* dirfd and bname: where pathfd was found, when known (else -1, NULL). */
static void mount_sizes(struct fs *fs, int pathfd, int dirfd,
			const char *bname, struct stat *st)
{
	if (S_ISREG(st->st_mode))
		st->st_size = (off_t)plain_size(fs, pathfd, dirfd, bname, st);
	else if (S_ISLNK(st->st_mode))
		st->st_size = (off_t)format_symlink_length((size_t)st->st_size);
}

/* The attributes of the object on pathfd, as the mount shows them. */
static int fd_attrs(struct fs *fs, int pathfd, struct stat *st)
{
	if (fstat(pathfd, st))
		return -errno;
	mount_sizes(fs, pathfd, -1, NULL, st);
	return 0;
}

static int attrs(struct fs *fs, struct inode *i, struct stat *st)
{
	int rc, fd = inode_pin(fs, i);

	if (fd == -ESTALE) {	/* removed: what it had last, if known */
		pthread_mutex_lock(&fs->ilock);
		if (i->gone && i->last) {
			*st = *i->last;
			fd = 0;
		}
		pthread_mutex_unlock(&fs->ilock);
		return fd;
	}
	if (fd < 0)
		return fd;
	rc = fd_attrs(fs, fd, st);
	inode_unpin(fs, i);
	return rc;
}

/* Looks name up in parent and replies with its entry. */
static int lookup_entry(struct fs *fs, fuse_ino_t pino, const char *name,
			const char *bname, struct fuse_entry_param *e)
{
	struct inode *parent = inode_of(fs, pino), *i;
	int rc, pfd, fd, tries = 0;

	memset(e, 0, sizeof(*e));
	pfd = inode_pin(fs, parent);
	if (pfd < 0)
		return pfd;
	do
		rc = backing_lookup(pfd, bname, &fd);
	while (fd_wait(fs, rc, &tries));
	if (!rc && fstat(fd, &e->attr)) {
		rc = -errno;
		close(fd);
	}
	if (!rc)
		mount_sizes(fs, fd, pfd, bname, &e->attr);
	inode_unpin(fs, parent);
	if (rc)
		return rc;
	rc = inode_get(fs, fd, &e->attr, pino, name, &i);
	if (rc)
		return rc;
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

/* The node (encrypted file) on pathfd, for a size change. */
static int node_for(struct fs *fs, int pathfd, struct fuse_file_info *fi,
		    struct node **out, bool *temp)
{
	int fd, rc;

	*temp = !fi;
	if (fi) {
		*out = node_of(fi);
		return 0;
	}
	rc = backing_reopen(pathfd, O_RDWR, &fd);
	if (!rc)
		rc = nodes_get(fs->nodes, fd, false, out);
	return rc;
}

static int set_times(int pathfd, struct stat *attr, int to_set,
		     struct fuse_file_info *fi)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT },
				  { .tv_nsec = UTIME_OMIT } };

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
	return backing_utimens(pathfd, tv);
}

/* Applies a SETATTR to the object on fd, of type (S_IFMT bits). */
static int set_attrs(struct fs *fs, int fd, mode_t type,
		     struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	int rc = 0;

	if (to_set & FUSE_SET_ATTR_MODE)
		rc = S_ISLNK(type) ? 0 :
		     backing_chmod(fd, attr->st_mode & 07777);
	if (!rc && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		rc = sys(fchownat(fd, "",
				  to_set & FUSE_SET_ATTR_UID ? attr->st_uid :
							       (uid_t)-1,
				  to_set & FUSE_SET_ATTR_GID ? attr->st_gid :
							       (gid_t)-1,
				  AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
	if (!rc && (to_set & FUSE_SET_ATTR_SIZE)) {
		struct node *n;
		bool temp;

		rc = S_ISREG(type) ? 0 : -EINVAL;
		if (!rc && attr->st_size < 0)
			rc = -EINVAL;
		if (!rc)
			rc = node_for(fs, fd, fi, &n, &temp);
		if (!rc) {
			rc = cfile_truncate(n->cf, (uint64_t)attr->st_size);
			if (temp)
				nodes_put(fs->nodes, n);
		}
	}
	if (!rc && !S_ISLNK(type) &&
	    (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
		       FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)))
		rc = set_times(fd, attr, to_set, fi);
	return rc;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *i = inode_of(fs, ino);
	int rc, fd = inode_pin(fs, i);

	if (fd < 0) {
		reply_rc(req, fd);
		return;
	}
	rc = set_attrs(fs, fd, i->type, attr, to_set, fi);
	if (!rc)
		rc = fd_attrs(fs, fd, attr);
	inode_unpin(fs, i);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_attr(req, attr, CACHE_SECONDS);
}

/*
 * Targets are sealed (format_symlink_open): one planted in the backing
 * directory fails here with EIO, so the kernel never follows it.
 */
static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	char sealed[FORMAT_SYMLINK_SEALED_MAX], target[FORMAT_SYMLINK_MAX + 1];
	int rc, fd = inode_pin(fs, inode_of(fs, ino));
	ssize_t n;

	if (fd < 0) {
		reply_rc(req, fd);
		return;
	}
	n = readlinkat(fd, "", sealed, sizeof(sealed) - 1);
	rc = n < 0 ? -errno : 0;
	inode_unpin(fs, inode_of(fs, ino));
	if (rc) {
		reply_rc(req, rc);
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

/* A folder, symlink (when link), FIFO or socket to make (make_entry). */
struct made {
	mode_t mode;		/* with its S_IFMT type */
	dev_t rdev;
	const char *link;	/* the sealed target of a symlink */
};

/* Makes m as bname in parent and gives it to the caller. */
static int make_entry(fuse_req_t req, fuse_ino_t parent, const char *bname,
		      const struct made *m)
{
	struct inode *p = inode_of(fs_of(req), parent);
	int rc, pfd = inode_pin(fs_of(req), p);

	if (pfd < 0)
		return pfd;
	if (m->link)
		rc = sys(symlinkat(m->link, pfd, bname));
	else if (S_ISDIR(m->mode))
		rc = sys(mkdirat(pfd, bname, m->mode & 07777));
	else
		rc = sys(mknodat(pfd, bname, m->mode, m->rdev));
	if (!rc)
		give(req, pfd, bname);
	inode_unpin(fs_of(req), p);
	return rc;
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	char bname[NAME_MAX + 1];
	int rc;

	rc = name_in(fs_of(req), parent, name, bname);
	if (!rc)
		rc = make_entry(req, parent, bname,
				&(struct made){ .mode = S_IFDIR | mode });
	reply_made(req, parent, name, bname, rc);
}

static void fs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
		       const char *name)
{
	struct fs *fs = fs_of(req);
	char bname[NAME_MAX + 1], sealed[FORMAT_SYMLINK_SEALED_MAX];
	int rc;

	rc = name_in(fs, parent, name, bname);
	if (!rc)
		rc = format_symlink_seal(fs->link_key, fs->vol->cv.volume_id,
					 target, sealed);
	if (!rc)
		rc = make_entry(req, parent, bname,
				&(struct made){ .link = sealed });
	reply_made(req, parent, name, bname, rc);
}

/* Links the object on fd (a handle) in as bname in dirfd. */
static int link_in(int fd, int dirfd, const char *bname)
{
	char proc[32];
	int rc = sys(linkat(fd, "", dirfd, bname, AT_EMPTY_PATH));

	if (rc == -ENOENT || rc == -EPERM) {
		/* Without CAP_DAC_READ_SEARCH: the /proc way. */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		rc = sys(linkat(AT_FDCWD, proc, dirfd, bname,
				AT_SYMLINK_FOLLOW));
	}
	return rc;
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct fs *fs = fs_of(req);
	struct inode *i = inode_of(fs, ino), *p = inode_of(fs, newparent);
	char bname[NAME_MAX + 1];
	int rc, fd, pfd;

	rc = name_in(fs, newparent, newname, bname);
	if (!rc && (rc = fd = inode_pin(fs, i)) >= 0) {
		if ((rc = pfd = inode_pin(fs, p)) >= 0) {
			rc = link_in(fd, pfd, bname);
			inode_unpin(fs, p);
		}
		inode_unpin(fs, i);
	}
	reply_made(req, newparent, newname, bname, rc);
}

/* Keeps the attributes of removed inode i, read from its handle fd. */
static void keep_last_attrs(struct fs *fs, struct inode *i, int fd)
{
	struct stat *st = malloc(sizeof(*st));

	if (st && fd_attrs(fs, fd, st)) {
		free(st);
		return;
	}
	pthread_mutex_lock(&fs->ilock);
	i->last = st;
	pthread_mutex_unlock(&fs->ilock);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
			 int flags)
{
	struct fs *fs = fs_of(req);
	struct inode *p = inode_of(fs, parent);
	char bname[NAME_MAX + 1];
	struct inode *i;
	struct stat st;
	int rc, pfd, gone = -1;

	/* A backing rmdir spins in the kernel while a child's last close
	 * is under way (shrink_dcache_parent waits for dying dentries). */
	if (flags & AT_REMOVEDIR)
		(void)closer_drain(fs->closer);
	rc = name_in(fs, parent, name, bname);
	if (!rc && (rc = pfd = inode_pin(fs, p)) >= 0) {
		/* Its attributes as the mount shows them, while it has a
		 * name to find its size tag by. */
		rc = sys(fstatat(pfd, bname, &st, AT_SYMLINK_NOFOLLOW));
		if (!rc)
			mount_sizes(fs, -1, pfd, bname, &st);
		if (!rc)
			rc = sys(unlinkat(pfd, bname, flags));
		inode_unpin(fs, p);
	}
	/* The kernel serialises unlink and link of one inode, so a count of
	 * one before is none now. */
	if (!rc && (S_ISDIR(st.st_mode) || st.st_nlink <= 1)) {
		st.st_nlink = 0;
		pthread_mutex_lock(&fs->ilock);
		i = inode_find(fs, st.st_dev, st.st_ino);
		if (i)
			gone = inode_gone(fs, i, &st);
		pthread_mutex_unlock(&fs->ilock);
	}
	/* The last close frees the file, which takes as long as the unlink:
	 * beside the next request, not in this one.  Queued before the reply,
	 * so that the rmdir of its folder finds it to wait for. */
	if (gone >= 0)
		closer_put(fs->closer, gone);
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
	struct inode *p = inode_of(fs, parent), *q = inode_of(fs, newparent);
	char a[NAME_MAX + 1], b[NAME_MAX + 1];
	int rc, pfd, qfd;

	rc = name_in(fs, parent, name, a);
	if (!rc)
		rc = name_in(fs, newparent, newname, b);
	if (!rc && (rc = pfd = inode_pin(fs, p)) >= 0) {
		if ((rc = qfd = inode_pin(fs, q)) >= 0) {
			rc = sys(renameat2(pfd, a, qfd, b, flags));
			inode_unpin(fs, q);
		}
		inode_unpin(fs, p);
	}
	reply_rc(req, rc);
}

/* --- files --- */

/*
 * Opens the backing file read-write whatever the caller asked: a partial
 * block write reads the block first.  Read-only is the fallback for files
 * the daemon itself may not write.
 */
/* *cold: opened for reading and its first page was not in memory. */
static int open_backing(struct fs *fs, struct inode *i, int flags, int *fd,
			bool *cold)
{
	struct stat st;
	char c;
	struct iovec v = { &c, 1 };
	int rc, tries = 0, pathfd = inode_pin(fs, i);

	if (pathfd < 0)
		return pathfd;
	if (fstat(pathfd, &st) || !S_ISREG(st.st_mode))
		rc = -EINVAL;
	else
		do
			rc = backing_reopen(pathfd, O_RDWR, fd);
		while (fd_wait(fs, rc, &tries));
	if ((rc == -EACCES || rc == -EROFS) && (flags & O_ACCMODE) == O_RDONLY)
		rc = backing_reopen(pathfd, O_RDONLY, fd);
	inode_unpin(fs, i);
	/* The header read would fetch only its own pages from a cold disk,
	 * and the first READ then waits for a second trip: ask for the
	 * start of the file in one go (no wait when it is cached). */
	*cold = false;
	if (!rc && (flags & O_ACCMODE) != O_WRONLY && !(flags & O_TRUNC)) {
		*cold = preadv2(*fd, &v, 1, 0, RWF_NOWAIT) < 0 &&
			errno == EAGAIN;
		(void)posix_fadvise(*fd, 0, OPEN_READAHEAD, POSIX_FADV_WILLNEED);
	}
	return rc;
}

/* Opens the encrypted file of inode i for a handle with open(2) flags. */
static int open_node(struct fs *fs, struct inode *i, int flags,
		     struct node **out, bool *cold)
{
	struct node *n;
	int rc, fd;

	rc = open_backing(fs, i, flags, &fd, cold);
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

/* Where an opened file was last found, for the read-ahead. */
struct found_in {
	dev_t pdev;
	ino_t pino;
	char name[NAME_MAX + 1];	/* "" when unknown */
};

static void found_in(struct fs *fs, struct inode *i, struct found_in *f)
{
	pthread_mutex_lock(&fs->ilock);
	f->name[0] = '\0';
	if (i->name && strlen(i->name) <= NAME_MAX) {
		strcpy(f->name, i->name);
		f->pdev = i->pdev;
		f->pino = i->pino;
	}
	pthread_mutex_unlock(&fs->ilock);
}

/*
 * Tells the read-ahead that a file was opened for reading, naming it
 * within its folder.  A parked or forgotten folder is skipped: this is only
 * a hint.
 */
static void opened_for_reading(struct fs *fs, const struct found_in *f,
			       bool cold)
{
	char bname[NAME_MAX + 1];
	struct inode *p = NULL;
	int pfd = -1;

	if (!f->name[0])
		return;
	pthread_mutex_lock(&fs->ilock);
	p = inode_find(fs, f->pdev, f->pino);
	if (p && p->fd >= 0) {
		p->pins++;
		pfd = p->fd;
	}
	pthread_mutex_unlock(&fs->ilock);
	if (pfd < 0)
		return;
	if (!backing_name(f->name, p == &fs->root, bname))
		prefetch_opened(fs->prefetch, pfd, p->dev, p->ino, bname, cold);
	inode_unpin(fs, p);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *i = inode_of(fs, ino);
	struct found_in where;
	struct node *n;
	bool cold;
	int rc;

	rc = open_node(fs, i, fi->flags, &n, &cold);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	fi->fh = (uintptr_t)n;
	/* Once replied to, i may be forgotten at any moment. */
	where.name[0] = '\0';
	if ((fi->flags & O_ACCMODE) != O_WRONLY)
		found_in(fs, i, &where);
	if (fuse_reply_open(req, fi))
		nodes_put(fs->nodes, n);	/* the open was interrupted */
	else
		opened_for_reading(fs, &where, cold);	/* after the reply */
}

/*
 * Creates the file unnamed (O_TMPFILE), writes its header, then links it
 * in: a crash never leaves a named file without a header, and O_EXCL
 * falls out of linkat's EEXIST.
 */
static int create_linked(fuse_req_t req, int pfd, const char *bname,
			 mode_t mode, struct node **out)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct fs *fs = fs_of(req);
	struct node *n;
	int fd, rc, tries = 0;

	do
		fd = openat(pfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	while (fd < 0 && fd_wait(fs, -errno, &tries));
	if (fd < 0)
		return -errno;
	if (fs->as_root)
		(void)!fchown(fd, c->uid, c->gid);
	rc = nodes_get(fs->nodes, fd, true, &n);
	if (rc)
		return rc;
	rc = link_in(n->fd, pfd, bname);
	if (rc) {
		nodes_put(fs->nodes, n);
		return rc;
	}
	*out = n;
	return 0;
}

/* For file systems without O_TMPFILE: create, then write the header. */
static int create_named(fuse_req_t req, int pfd, const char *bname,
			mode_t mode, struct node **out)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct fs *fs = fs_of(req);
	int fd, rc, tries = 0;

	do
		fd = openat(pfd, bname, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW |
			    O_CLOEXEC, mode);
	while (fd < 0 && fd_wait(fs, -errno, &tries));
	if (fd < 0)
		return -errno;
	if (fs->as_root)
		(void)!fchown(fd, c->uid, c->gid);
	rc = nodes_get(fs->nodes, fd, true, out);
	if (rc)
		(void)unlinkat(pfd, bname, 0);
	return rc;
}

static int make_file(fuse_req_t req, struct inode *p, const char *bname,
		     mode_t mode, struct node **out)
{
	struct fs *fs = fs_of(req);
	int rc, pfd = inode_pin(fs, p);

	if (pfd < 0)
		return pfd;
	rc = create_linked(req, pfd, bname, mode, out);
	if (rc == -EOPNOTSUPP || rc == -EISDIR)
		rc = create_named(req, pfd, bname, mode, out);
	inode_unpin(fs, p);
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
	bool cold;
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
			rc = open_node(fs, inode_of(fs, e.ino), fi->flags, &n,
				       &cold);
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
		rc = make_entry(req, parent, bname,
				&(struct made){ .mode = mode, .rdev = rdev });
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
	/* Only read-ahead sends reads this large: have the disk fetch what
	 * it will ask for next.  Before the reply, after which the file may
	 * be released. */
	if (n >= STREAM_READ)
		cfile_readahead(node_of(fi)->cf, (uint64_t)off + (uint64_t)n,
				(uint64_t)n);
	if (n < 0)
		reply_rc(req, (int)n);
	else
		fuse_reply_buf(req, (const char *)buf, (size_t)n);
}

/*
 * Writes all of buf, or as much as fits: a store that is full only for a
 * moment gives a short write first.  Space a delete just freed may wait on
 * the kernel's RELEASE and FORGET, which come asynchronously and other
 * workers serve: reclaim, give them a moment, try again, for up to half a
 * second.  Bytes written, or -errno when none were.
 */
static ssize_t write_retrying(struct fs *fs, struct cfile *cf,
			      const char *buf, size_t size, uint64_t off)
{
	size_t done = 0;
	int tries = 0;

	while (done < size) {
		ssize_t n = cfile_pwrite(cf, buf + done, size - done,
					 off + done);

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n != -ENOSPC || tries++ == 20)
			return done ? (ssize_t)done : n;
		(void)reclaim_unlinked(fs);
		usleep(25000);
	}
	return (ssize_t)done;
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
	n = write_retrying(fs_of(req), cf, buf, size, (uint64_t)off);
	if (n < 0)
		reply_rc(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *i = inode_of(fs, ino);
	int rc = nodes_put(fs->nodes, node_of(fi)), gone = -1, fd = -1;
	struct stat st;

	/* Closed for the last time after its last name went: as in
	 * remove_entry, let go of it now.  (A parked handle holds nothing.) */
	pthread_mutex_lock(&fs->ilock);
	if (i->fd >= 0) {
		i->pins++;
		fd = i->fd;
	}
	pthread_mutex_unlock(&fs->ilock);
	if (fd >= 0) {
		bool removed = !fstat(fd, &st) && st.st_nlink == 0;

		pthread_mutex_lock(&fs->ilock);
		if (--i->pins == 0 && removed && !i->gone)
			gone = inode_gone(fs, i, NULL);
		pthread_mutex_unlock(&fs->ilock);
	}
	/* Before the reply: the kernel cannot forget i until then. */
	if (gone >= 0) {
		keep_last_attrs(fs, i, gone);
		closer_put(fs->closer, gone);	/* as in remove_entry */
	}
	reply_rc(req, rc);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino;
	reply_rc(req, cfile_fsync(node_of(fi)->cf, datasync));
}

/* --- folders --- */

static void dir_track(struct fs *fs, struct dir_handle *d)
{
	pthread_mutex_lock(&fs->dir_lock);
	d->next = fs->dirs;
	if (d->next)
		d->next->pprev = &d->next;
	d->pprev = &fs->dirs;
	fs->dirs = d;
	pthread_mutex_unlock(&fs->dir_lock);
}

static void dir_close(struct fs *fs, struct dir_handle *d)
{
	pthread_mutex_lock(&fs->dir_lock);
	*d->pprev = d->next;
	if (d->next)
		d->next->pprev = d->pprev;
	pthread_mutex_unlock(&fs->dir_lock);
	closedir(d->dp);
	free(d);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct dir_handle *d = calloc(1, sizeof(*d));
	int fd, pfd, rc;

	if (!d) {
		reply_rc(req, -ENOMEM);
		return;
	}
	pfd = inode_pin(fs, inode_of(fs, ino));
	rc = pfd < 0 ? pfd : backing_reopen(pfd, O_RDONLY | O_DIRECTORY, &fd);
	if (pfd >= 0)
		inode_unpin(fs, inode_of(fs, ino));
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
	dir_track(fs, d);
	if (fuse_reply_open(req, fi))
		dir_close(fs, d);
}

/* An entry with its attributes and a lookup reference, for READDIRPLUS;
 * "." and ".." and names that no longer resolve go without (ino 0), which
 * the kernel takes as "no attributes", not as an error. */
static size_t add_entry_plus(fuse_req_t req, fuse_ino_t dir,
			     const struct dirent *de, char *p, size_t left)
{
	struct fuse_entry_param e;
	const char *n = de->d_name;

	/* Sized first: a lookup taken for an entry that does not fit would
	 * be a reference the kernel never returns. */
	if (fuse_add_direntry_plus(req, NULL, 0, n, NULL, 0) > left)
		return left + 1;
	if (!strcmp(n, ".") || !strcmp(n, "..") ||
	    lookup_entry(fs_of(req), dir, n, n, &e)) {
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = de->d_ino;
		e.attr.st_mode = (mode_t)DTTOIF(de->d_type);
	}
	return fuse_add_direntry_plus(req, p, left, n, &e, de->d_off);
}

static size_t add_entry(fuse_req_t req, const struct dirent *de, char *p,
			size_t left)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_ino = de->d_ino;
	st.st_mode = (mode_t)DTTOIF(de->d_type);
	return fuse_add_direntry(req, p, left, de->d_name, &st, de->d_off);
}

static void read_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi, bool plus)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = calloc(1, size), *p = buf;
	size_t left = size;
	int err = 0;

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
		len = plus ? add_entry_plus(req, ino, d->entry, p, left)
			   : add_entry(req, d->entry, p, left);
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

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	read_dir(req, ino, size, off, fi, false);
}

/* Saves `ls -l` and `find | xargs cat` a LOOKUP round trip per entry. */
static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	read_dir(req, ino, size, off, fi, true);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;

	(void)ino;
	dir_close(fs_of(req), d);
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
	(void)closer_drain(fs_of(req)->closer);	/* df right after rm */
	if (fstatvfs(fs_of(req)->root.fd, &sv))
		reply_rc(req, -errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* --- session --- */

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++, o++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				    (s[3] - '0'));
			s += 3;
		} else {
			*o = *s;
		}
	}
	*o = 0;
}

/*
 * The device of the newest mount on path, from mountinfo.  Never stat(2)
 * the mount from the daemon: a thread waiting on its own mount's answer
 * when the daemon is killed keeps the process, and so the mount, alive.
 */
static bool mount_dev(const char *path, unsigned *maj, unsigned *min)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *mp = NULL;
	size_t cap = 0;
	bool found = false;
	unsigned a, b;

	if (!f)
		return false;
	while (getline(&line, &cap, f) > 0) {
		free(mp);
		mp = NULL;
		if (sscanf(line, "%*u %*u %u:%u %*s %ms", &a, &b, &mp) != 3)
			continue;
		unescape(mp);
		if (!strcmp(mp, path)) {
			*maj = a;
			*min = b;
			found = true;
		}
	}
	free(mp);
	free(line);
	fclose(f);
	return found;
}

/*
 * The kernel reads ahead 128 KiB by default, one READ round trip each; with
 * 1 MiB a cold sequential read ran about 1.4 times as fast here.  The kernel
 * caps readahead at what INIT was answered with, so this runs once INIT is
 * done, on the first ticks.  Writing sysfs needs root; without it the
 * default stays, which is only slower.
 */
static void tune_readahead(struct fs *fs)
{
	unsigned maj, min;
	char path[64];
	int fd;

	if (!fs->mountpoint || !mount_dev(fs->mountpoint, &maj, &min))
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 maj, min);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)!write(fd, READAHEAD_KB, strlen(READAHEAD_KB));
	close(fd);
}

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

/*
 * Commits the sizes of open files every COMMIT_INTERVAL_MS, and reaps
 * inodes whenever inode_get asks (reap_asked, set under tick_lock so that
 * no request is lost while this thread is busy).
 */
static void *ticker_main(void *arg)
{
	struct fs *fs = arg;
	struct timespec due, now;
	unsigned ticks = 0;
	bool reap;

	clock_gettime(CLOCK_MONOTONIC, &now);
	due = after_ms(now, 20);	/* the first comes as INIT is answered */
	pthread_mutex_lock(&fs->tick_lock);
	while (!fs->stop) {
		if (!fs->reap_asked)
			pthread_cond_timedwait(&fs->tick_cond, &fs->tick_lock,
					       &due);
		if (fs->stop)
			break;
		reap = fs->reap_asked;
		fs->reap_asked = false;
		pthread_mutex_unlock(&fs->tick_lock);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (reached(&now, &due)) {
			if (ticks++ < 2)	/* again, in case INIT came after */
				tune_readahead(fs);
			(void)nodes_commit_all(fs->nodes);
			due = after_ms(now, COMMIT_INTERVAL_MS);
		}
		if (reap || fs->ninodes > fs->inode_high)  /* a hint: no lock */
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
	/* Threads start here, not in fs_new: the daemon forks in between. */
	if (prefetch_new(OPEN_READAHEAD, &fs->prefetch))
		fs->prefetch = NULL;	/* reads just wait for the disk */
	if (closer_new(&fs->closer))
		fs->closer = NULL;	/* removes close their own */
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
	prefetch_free(fs->prefetch);
	fs->prefetch = NULL;
	closer_free(fs->closer);
	fs->closer = NULL;
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
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsyncdir,
	.statfs = fs_statfs,
	/*
	 * No flush: close(2) has nothing to do here that RELEASE does not,
	 * and the kernel, told ENOSYS once, saves a round trip per close.
	 * No xattr or fallocate ops: the kernel then answers EOPNOTSUPP
	 * for all of them, consistently, and stores nothing in the clear.
	 */
};

/* Whether file handles open again here (CAP_DAC_READ_SEARCH, and a
 * backing file system that exports them). */
static bool can_park(struct fs *fs)
{
	struct file_handle *h = handle_of(fs->root.fd);
	int fd = h ? open_by_handle_at(fs->vol->backing.rootfd, h,
				       O_PATH | O_CLOEXEC) : -1;

	free(h);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

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
	if (!rc && !(fs->sizes = size_memo_new(SIZE_MEMO_SLOTS)))
		rc = -ENOMEM;
	fs->nbuckets = INODE_BUCKETS;
	if (!rc && !(fs->inodes = calloc(fs->nbuckets, sizeof(*fs->inodes))))
		rc = -ENOMEM;
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
	fs->root.type = S_IFDIR;
	fs->vol = vol;
	fs->as_root = geteuid() == 0;
	fs->fd_high = getrlimit(RLIMIT_NOFILE, &lim) ? 512 :
		      lim.rlim_cur / 2 > 64 ? lim.rlim_cur / 2 : 64;
	/* The variable lets tests reach the path of daemons without the
	 * capability, which only ever makes things slower. */
	fs->can_park = !getenv("PHIFS_NO_FILE_HANDLES") && can_park(fs);
	/* Parking bounds the handles; the reaper then only bounds memory. */
	fs->inode_high = fs->can_park ? 1u << 20 : fs->fd_high;
	pthread_mutex_init(&fs->ilock, NULL);
	pthread_mutex_init(&fs->tick_lock, NULL);
	pthread_mutex_init(&fs->dir_lock, NULL);
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
	prefetch_free(fs->prefetch);
	closer_free(fs->closer);
	nodes_free(fs->nodes);
	size_memo_free(fs->sizes);
	for (unsigned b = 0; fs->inodes && b < fs->nbuckets; b++) {
		while (fs->inodes[b]) {
			struct inode *i = fs->inodes[b];

			fs->inodes[b] = i->next;
			inode_free(i);
		}
	}
	while (fs->gone) {
		struct inode *i = fs->gone;

		fs->gone = i->next;
		inode_free(i);
	}
	while (fs->dirs)
		dir_close(fs, fs->dirs);
	if (fs->root.fd >= 0)
		close(fs->root.fd);
	free(fs->inodes);
	crypto_key_free(fs->link_key);
	free(fs->mountpoint);
	free(fs);
}

void fs_set_session(struct fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

int fs_set_mountpoint(struct fs *fs, const char *path)
{
	free(fs->mountpoint);
	fs->mountpoint = realpath(path, NULL);
	return fs->mountpoint ? 0 : -errno;
}

const struct fuse_lowlevel_ops *fs_operations(void)
{
	return &ops;
}
