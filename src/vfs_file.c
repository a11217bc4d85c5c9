/*
 * vfs_file.c — the operations core's open files and folders: open and
 * create (a header before a name), read and write through cfile, release,
 * and folder listings.  Knows nothing of FUSE.
 */
#include "vfs_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "phifs/backing.h"

/* A READ this large comes from the kernel's read-ahead of a stream. */
#define STREAM_READ (256 * 1024)

static void track(struct vfs *v, struct vfs_open **list, struct vfs_open *o)
{
	pthread_mutex_lock(&v->open_lock);
	o->next = *list;
	if (o->next)
		o->next->pprev = &o->next;
	o->pprev = list;
	*list = o;
	pthread_mutex_unlock(&v->open_lock);
}

static void untrack(struct vfs *v, struct vfs_open *o)
{
	pthread_mutex_lock(&v->open_lock);
	*o->pprev = o->next;
	if (o->next)
		o->next->pprev = o->pprev;
	pthread_mutex_unlock(&v->open_lock);
}

/*
 * A file handle for c, to be filled in; NULL on ENOMEM.  The opener keeps
 * the groups already asked for, if any: the request that could ask for
 * more is over once the open is answered.
 */
static struct vfs_file *file_new(const struct vfs_caller *c, int flags)
{
	struct vfs_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->flags = flags;
	f->groups.n = 0;
	if (c) {
		f->opener = *c;
		if (c->groups && c->groups->n >= 0)
			f->groups = *c->groups;
	}
	f->opener.get_groups = NULL;
	f->opener.ctx = NULL;
	f->opener.groups = &f->groups;
	return f;
}

/*
 * Opens the backing file read-write whatever the caller asked: a partial
 * block write reads the block first.  Read-only is the fallback for files
 * the daemon itself may not write.  *cold: opened for reading and its
 * first page was not in memory.
 */
static int open_backing(struct vfs *v, struct inode *i, int flags, int *fd,
			bool *cold)
{
	struct stat st;
	char c;
	struct iovec iov = { &c, 1 };
	int rc, tries = 0, pathfd = inodes_pin(v->inodes, i);

	if (pathfd < 0)
		return pathfd;
	if (fstat(pathfd, &st) || !S_ISREG(st.st_mode))
		rc = -EINVAL;
	else
		do
			rc = backing_reopen(pathfd, O_RDWR, fd);
		while (inodes_fd_wait(v->inodes, rc, &tries));
	if ((rc == -EACCES || rc == -EROFS) && (flags & O_ACCMODE) == O_RDONLY)
		rc = backing_reopen(pathfd, O_RDONLY, fd);
	inodes_unpin(v->inodes, i);
	/* The header read would fetch only its own pages from a cold disk,
	 * and the first READ then waits for a second trip: ask for the
	 * start of the file in one go (no wait when it is cached). */
	*cold = false;
	if (!rc && (flags & O_ACCMODE) != O_WRONLY && !(flags & O_TRUNC)) {
		*cold = preadv2(*fd, &iov, 1, 0, RWF_NOWAIT) < 0 &&
			errno == EAGAIN;
		(void)posix_fadvise(*fd, 0, VFS_OPEN_READAHEAD,
				    POSIX_FADV_WILLNEED);
	}
	return rc;
}

/* Is c uid 0, or in group gid?  Asks for the groups only when needed. */
static bool in_group(const struct vfs_caller *c, uint32_t gid)
{
	const gid_t *g;
	size_t n;

	if (c->gid == (gid_t)gid)
		return true;
	n = vfs_caller_groups(c, &g);
	for (size_t k = 0; k < n; k++)
		if (g[k] == (gid_t)gid)
			return true;
	return false;
}

/*
 * The kernel's check (default_permissions) of an open, made again on the
 * mode and owner the header authenticates.  Needed only when the open
 * found the backing's different: the kernel judged by what stat showed,
 * which a size tag of an older mode, put back with that mode, can make
 * the backing's (docs/FORMAT.md, "Size tags").
 */
static int may_open(const struct vfs_caller *c, const struct format_attrs *a,
		    int flags)
{
	unsigned need = 0, bits;

	if ((flags & O_ACCMODE) != O_WRONLY)
		need |= 4;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		need |= 2;
	if (c->uid == 0)
		return 0;
	if (c->uid == (uid_t)a->uid)
		bits = a->mode >> 6;
	else if ((a->mode >> 3 & need) != (a->mode & need) &&
		 in_group(c, a->gid))
		bits = a->mode >> 3;
	else
		bits = a->mode;
	return (bits & need) == need ? 0 : -EACCES;
}

/* Opens the encrypted file of i into f with f->flags. */
static int open_node(struct vfs *v, struct inode *i, struct vfs_file *f)
{
	struct format_attrs a;
	int rc, fd;

	rc = open_backing(v, i, f->flags, &fd, &f->cold);
	if (!rc)
		rc = nodes_get(v->nodes, fd, false, &f->n);
	vfs_report(v, &f->opener, i, NULL, rc);
	if (!rc)
		vfs_report_open(v, i, inodes_dev(i), inodes_ino(i), f->n->cf);
	if (!rc && cfile_attrs_differed(f->n->cf) &&
	    !cfile_attrs(f->n->cf, &a) &&
	    (rc = may_open(&f->opener, &a, f->flags)))
		nodes_put(v->nodes, f->n);
	if (!rc && (f->flags & O_TRUNC)) {
		rc = cfile_truncate(f->n->cf, 0);
		if (rc)
			nodes_put(v->nodes, f->n);
	}
	if (!rc)
		f->i = i;
	return rc;
}

/* The folder and name to tell the read-ahead of, pinned. */
static void hint_of(struct vfs *v, struct vfs_file *f, struct vfs_hint *h)
{
	struct inode *p;

	h->folder = NULL;
	if ((f->flags & O_ACCMODE) == O_WRONLY || !v->prefetch)
		return;
	h->fd = inodes_pin_parent(v->inodes, f->i, &p, h->name);
	if (h->fd >= 0) {
		h->folder = p;
		h->cold = f->cold;
	}
}

int vfs_open(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
	     int flags, struct vfs_file **out, struct vfs_hint *hint)
{
	struct vfs_req r = { .op = VFS_OPEN, .ino = ino, .flags = flags,
			     .opener = c };
	struct vfs_file *f;
	int rc;

	hint->folder = NULL;
	rc = vfs_gate(v, c, &r);
	if (rc)
		return rc;
	f = file_new(c, flags);
	rc = f ? open_node(v, vfs_inode(v, ino), f) : -ENOMEM;
	if (rc) {
		free(f);
	} else {
		hint_of(v, f, hint);
		track(v, &v->files, &f->link);
		vfs_wake_ticker(v);
		*out = f;
	}
	return vfs_made(v, c, &r, rc);
}

void vfs_opened(struct vfs *v, struct vfs_hint *h)
{
	struct inode *p = h->folder;
	char bname[NAME_MAX + 1];

	if (!p)
		return;
	if (!vfs_name_in(v, p, h->name, bname))
		prefetch_opened(v->prefetch, h->fd, inodes_dev(p),
				inodes_ino(p), bname, h->cold);
	inodes_unpin(v->inodes, p);
	h->folder = NULL;
}

/*
 * Creates the file unnamed (O_TMPFILE), writes its header, then links it
 * in: a crash never leaves a named file without a header, and O_EXCL
 * falls out of linkat's EEXIST.
 */
static int create_linked(struct vfs *v, const struct vfs_caller *c, int pfd,
			 const char *bname, mode_t mode, struct node **out)
{
	struct node *n;
	int fd, rc, tries = 0;

	do
		fd = openat(pfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	while (fd < 0 && inodes_fd_wait(v->inodes, -errno, &tries));
	if (fd < 0)
		return -errno;
	vfs_give(v, c, -1, NULL, fd);
	rc = nodes_get(v->nodes, fd, true, &n);
	if (rc)
		return rc;
	rc = vfs_link_in(n->fd, pfd, bname);
	if (rc) {
		nodes_put(v->nodes, n);
		return rc;
	}
	*out = n;
	return 0;
}

/* For file systems without O_TMPFILE: create, then write the header. */
static int create_named(struct vfs *v, const struct vfs_caller *c, int pfd,
			const char *bname, mode_t mode, struct node **out)
{
	int fd, rc, tries = 0;

	do
		fd = openat(pfd, bname, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW |
			    O_CLOEXEC, mode);
	while (fd < 0 && inodes_fd_wait(v->inodes, -errno, &tries));
	if (fd < 0)
		return -errno;
	vfs_give(v, c, -1, NULL, fd);
	rc = nodes_get(v->nodes, fd, true, out);
	if (rc)
		(void)unlinkat(pfd, bname, 0);
	return rc;
}

static int make_node(struct vfs *v, const struct vfs_caller *c,
		     struct inode *p, const char *bname, mode_t mode,
		     struct node **out)
{
	int rc, pfd = inodes_pin(v->inodes, p);

	if (pfd < 0)
		return pfd;
	rc = create_linked(v, c, pfd, bname, mode, out);
	if (rc == -EOPNOTSUPP || rc == -EISDIR)
		rc = create_named(v, c, pfd, bname, mode, out);
	inodes_unpin(v->inodes, p);
	return rc;
}

/* Makes the file into f, or opens the one a racing creator made. */
static int make_or_open(struct vfs *v, const struct vfs_caller *c,
			struct inode *p, const char *name, mode_t mode,
			struct vfs_entry *e, struct vfs_file *f)
{
	char bname[NAME_MAX + 1];
	int rc;

	rc = vfs_name_in(v, p, name, bname);
	if (!rc)
		rc = make_node(v, c, p, bname, mode, &f->n);
	if (rc == -ENOSPC && vfs_reclaim(v))
		rc = make_node(v, c, p, bname, mode, &f->n);
	if (rc == -EEXIST && !(f->flags & O_EXCL)) {
		rc = vfs_entry_of(v, p, name, bname, e);
		if (!rc && (rc = open_node(v, vfs_inode(v, e->ino), f)))
			vfs_forget(v, e->ino, 1);
		return rc;
	}
	if (!rc) {
		rc = vfs_entry_of(v, p, name, bname, e);
		if (rc)
			nodes_put(v->nodes, f->n);
		else
			f->i = vfs_inode(v, e->ino);
	}
	return rc;
}

int vfs_make_file(struct vfs *v, const struct vfs_caller *c, struct inode *p,
		  const char *name, mode_t mode, int flags,
		  struct vfs_entry *e, struct vfs_file **out)
{
	struct vfs_file *f = file_new(c, flags);
	int rc = f ? make_or_open(v, c, p, name, mode, e, f) : -ENOMEM;

	if (!rc && out) {
		track(v, &v->files, &f->link);
		vfs_wake_ticker(v);
		*out = f;
		return 0;
	}
	if (!rc)
		(void)nodes_put(v->nodes, f->n);
	free(f);
	return rc;
}

int vfs_create(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	       const char *name, mode_t mode, int flags, struct vfs_entry *e,
	       struct vfs_file **out)
{
	struct vfs_req r = { .op = VFS_CREATE, .ino = parent, .name = name,
			     .flags = flags, .mode = mode, .opener = c };
	int rc = vfs_gate(v, c, &r);

	return rc ? rc : vfs_made(v, c, &r,
				  vfs_make_file(v, c, vfs_inode(v, parent),
						name, mode, flags, e, out));
}

/* The request of an operation on open file f. */
static struct vfs_req file_req(enum vfs_op op, const struct vfs_file *f,
			       uint64_t off, size_t len)
{
	return (struct vfs_req){ .op = op, .ino = inodes_id(f->i),
				 .flags = f->flags, .off = off, .len = len,
				 .opener = &f->opener };
}

ssize_t vfs_read(struct vfs *v, const struct vfs_caller *c,
		 struct vfs_file *f, void *buf, size_t size, uint64_t off)
{
	struct vfs_req r = file_req(VFS_READ, f, off, size);
	int rc = vfs_gate(v, c, &r);
	ssize_t n;

	if (rc)
		return rc;
	n = cfile_pread(f->n->cf, buf, size, off);
	/* Only read-ahead sends reads this large: have the disk fetch what
	 * it will ask for next. */
	if (n >= STREAM_READ)
		cfile_readahead(f->n->cf, off + (uint64_t)n, (uint64_t)n);
	vfs_report(v, c, f->i, f->n->cf, n);
	/* No plaintext leaves without its record (fail closed). */
	if (vfs_record(v, c, &r, n, buf, n > 0 ? (size_t)n : 0) && n >= 0) {
		explicit_bzero(buf, (size_t)n);
		return -EIO;
	}
	return n;
}

/*
 * Writes all of buf, or as much as fits: a store that is full only for a
 * moment gives a short write first.  Space a delete just freed may wait on
 * the kernel's RELEASE and FORGET, which come asynchronously and other
 * workers serve: reclaim, give them a moment, try again, for up to half a
 * second.  Bytes written, or -errno when none were.
 */
static ssize_t write_retrying(struct vfs *v, struct cfile *cf,
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
		(void)vfs_reclaim(v);
		usleep(25000);
	}
	return (ssize_t)done;
}

ssize_t vfs_write(struct vfs *v, const struct vfs_caller *c,
		  struct vfs_file *f, const void *buf, size_t size,
		  uint64_t off)
{
	struct vfs_req r = file_req(VFS_WRITE, f, off, size);
	int rc = vfs_gate(v, c, &r);
	ssize_t n;

	if (rc)
		return rc;
	/* The kernel serialises writes to one inode, so the size read here
	 * is still the end when the write lands. */
	if (f->flags & O_APPEND)
		r.off = off = cfile_size(f->n->cf);
	n = write_retrying(v, f->n->cf, buf, size, off);
	vfs_report(v, c, f->i, f->n->cf, n);
	/* Written, but unrecorded: the writer is told it failed. */
	if (vfs_record(v, c, &r, n, buf, n > 0 ? (size_t)n : 0) && n >= 0)
		return -EIO;
	return n;
}

/*
 * A reservation that meets ENOSPC may only be waiting for removed files'
 * space, which closes give back: as write_retrying does, reclaim and try
 * again, for up to half a second.
 */
static int fallocate_retrying(struct vfs *v, struct cfile *cf, int mode,
			      uint64_t off, uint64_t len)
{
	int rc, tries = 0;

	while ((rc = cfile_fallocate(cf, mode, off, len)) == -ENOSPC &&
	       tries++ < 20) {
		(void)vfs_reclaim(v);
		usleep(25000);
	}
	return rc;
}

int vfs_fallocate(struct vfs *v, const struct vfs_caller *c,
		  struct vfs_file *f, int mode, uint64_t off, uint64_t len)
{
	struct vfs_req r = file_req(VFS_FALLOCATE, f, off, (size_t)len);
	int rc;

	r.flags = mode;
	rc = vfs_gate(v, c, &r);
	if (rc)
		return rc;
	rc = fallocate_retrying(v, f->n->cf, mode, off, len);
	vfs_report(v, c, f->i, f->n->cf, rc);
	return vfs_done(v, c, &r, rc);
}

int vfs_fsync(struct vfs *v, const struct vfs_caller *c, struct vfs_file *f,
	      bool datasync)
{
	struct vfs_req r = file_req(VFS_FSYNC, f, 0, 0);
	int rc = vfs_gate(v, c, &r);

	if (rc)
		return rc;
	rc = cfile_fsync(f->n->cf, datasync);
	vfs_report_size(v, f->i, rc);
	return vfs_done(v, c, &r, rc);
}

int vfs_release(struct vfs *v, const struct vfs_caller *c,
		struct vfs_file *f)
{
	struct vfs_req r = file_req(VFS_RELEASE, f, 0, 0);
	int rc = nodes_put(v->nodes, f->n), gone;
	struct stat st;

	vfs_report_size(v, f->i, rc);
	/* Closed for the last time after its last name went: let go of it
	 * now, as a removal does, with the attributes it had for
	 * descriptors that still name it.  Before the reply: the kernel
	 * cannot forget the inode until then. */
	gone = inodes_closed(v->inodes, f->i);
	if (gone >= 0) {
		if (!vfs_fd_attrs(v, gone, &st))
			inodes_set_last(v->inodes, f->i, &st);
		closer_put(v->closer, gone);
	}
	if (c)	/* never refused: it ends what was let in */
		(void)vfs_record(v, c, &r, rc, NULL, 0);
	untrack(v, &f->link);
	free(f);
	return rc;
}

/* --- folders --- */

static void dir_close(struct vfs *v, struct vfs_dir *d)
{
	untrack(v, &d->link);
	closedir(d->dp);
	free(d);
}

void vfs_close_all(struct vfs *v)
{
	/* No request is under way: the lists are ours alone. */
	while (v->dirs)
		dir_close(v, (struct vfs_dir *)v->dirs);
	while (v->files) {
		struct vfs_file *f = (struct vfs_file *)v->files;

		untrack(v, &f->link);
		free(f);	/* its node goes with the table */
	}
}

static int open_dir(struct vfs *v, struct inode *i, struct vfs_dir *d)
{
	int fd, rc, pfd = inodes_pin(v->inodes, i);

	if (pfd < 0)
		return pfd;
	rc = backing_reopen(pfd, O_RDONLY | O_DIRECTORY, &fd);
	inodes_unpin(v->inodes, i);
	if (rc)
		return rc;
	d->dp = fdopendir(fd);
	if (!d->dp) {
		rc = -errno;
		close(fd);
	}
	d->i = i;
	return rc;
}

int vfs_opendir(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		struct vfs_dir **out)
{
	struct vfs_req r = { .op = VFS_OPENDIR, .ino = ino };
	struct vfs_dir *d;
	int rc = vfs_gate(v, c, &r);

	if (rc)
		return rc;
	d = calloc(1, sizeof(*d));
	rc = d ? open_dir(v, vfs_inode(v, ino), d) : -ENOMEM;
	if (rc) {
		free(d);
	} else {
		track(v, &v->dirs, &d->link);
		*out = d;
	}
	return vfs_made(v, c, &r, rc);
}

/*
 * Whether the regular backing file name in d has the mark of a node record
 * (vfs_node.c): a device node or a long symlink, whose type only its
 * record tells.  Listings then say "unknown" for it, which makes ls and
 * find ask for its attributes.
 */
static bool node_mark(struct vfs_dir *d, const char *name)
{
	struct stat st;

	return !fstatat(dirfd(d->dp), name, &st, AT_SYMLINK_NOFOLLOW) &&
	       S_ISREG(st.st_mode) && (st.st_mode & S_ISVTX);
}

/* Hands on one entry; false when it did not fit. */
static bool fill_one(struct vfs *v, struct vfs_dir *d, const struct dirent *de,
		     const struct vfs_filler *fill)
{
	struct vfs_entry e;
	const char *n = de->d_name;

	/* Sized first: a lookup taken for an entry that does not fit would
	 * be a reference the kernel never returns. */
	if (!fill->fits(fill->arg, n))
		return false;
	/* "." and ".." and names that no longer resolve go without
	 * attributes (ino 0), which the kernel takes as "none". */
	if (!fill->plus || !strcmp(n, ".") || !strcmp(n, "..") ||
	    vfs_entry_of(v, d->i, n, n, &e)) {
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = de->d_ino;
		e.attr.st_mode = (mode_t)DTTOIF(de->d_type);
		if (de->d_type == DT_REG && node_mark(d, n))
			e.attr.st_mode = 0;	/* unknown: ask stat */
	}
	fill->add(fill->arg, n, &e, de->d_off);
	return true;
}

static int read_dir(struct vfs *v, struct vfs_dir *d, off_t off,
		    const struct vfs_filler *fill)
{
	bool root = inodes_is_root(v->inodes, d->i), some = false;

	if (off != d->off) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->off = off;
	}
	for (;;) {
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry)	/* errno 0 at the end */
				return some ? 0 : -errno;
		}
		if (!backing_is_meta(d->entry->d_name, root)) {
			if (!fill_one(v, d, d->entry, fill))
				return 0;	/* kept for the next call */
			some = true;
		}
		d->off = d->entry->d_off;
		d->entry = NULL;
	}
}

int vfs_readdir(struct vfs *v, const struct vfs_caller *c,
		struct vfs_dir *d, off_t off, const struct vfs_filler *fill)
{
	struct vfs_req r = { .op = VFS_READDIR, .ino = inodes_id(d->i),
			     .off = (uint64_t)off };
	int rc = vfs_gate(v, c, &r);

	return rc ? rc : vfs_done(v, c, &r, read_dir(v, d, off, fill));
}

int vfs_fsyncdir(struct vfs *v, const struct vfs_caller *c,
		 struct vfs_dir *d, bool datasync)
{
	struct vfs_req r = { .op = VFS_FSYNCDIR, .ino = inodes_id(d->i) };
	int fd = dirfd(d->dp), rc = vfs_gate(v, c, &r);

	if (rc)
		return rc;
	rc = vfs_sys(datasync ? fdatasync(fd) : fsync(fd));
	return vfs_done(v, c, &r, rc);
}

void vfs_releasedir(struct vfs *v, const struct vfs_caller *c,
		    struct vfs_dir *d)
{
	struct vfs_req r = { .op = VFS_RELEASEDIR, .ino = inodes_id(d->i) };

	dir_close(v, d);
	(void)vfs_record(v, c, &r, 0, NULL, 0);	/* the same */
}

int vfs_rewrap(struct vfs *v, int fd, uint32_t version)
{
	return nodes_rewrap(v->nodes, fd, version);
}

int vfs_file_setid(struct vfs_file *f)
{
	struct format_attrs a;
	int rc = cfile_attrs(f->n->cf, &a);

	if (rc)
		return rc;
	return (a.mode & (S_ISUID | S_ISGID)) ? 1 : 0;
}
