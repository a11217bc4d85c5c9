/*
 * vfs_tree.c — the operations core's changes to names: making folders,
 * symlinks, FIFOs, device nodes and links (devices and long targets as
 * records, vfs_node.c), removing and renaming.  Files are made in
 * vfs_file.c, with their headers.  Knows nothing of FUSE.
 */
#include "vfs_impl.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "phifs/backing.h"

void vfs_give(struct vfs *v, const struct vfs_caller *c, int dirfd,
	      const char *bname, int fd)
{
	if (!v->as_root)
		return;
	/* Failure leaves root as owner: safe, and visible. */
	if (fd >= 0)
		(void)!fchown(fd, c->uid, c->gid);
	else
		(void)!fchownat(dirfd, bname, c->uid, c->gid,
				AT_SYMLINK_NOFOLLOW);
}

int vfs_link_in(int fd, int dirfd, const char *bname)
{
	char proc[32];
	int rc = vfs_sys(linkat(fd, "", dirfd, bname, AT_EMPTY_PATH));

	if (rc == -ENOENT || rc == -EPERM) {
		/* Without CAP_DAC_READ_SEARCH: the /proc way. */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		rc = vfs_sys(linkat(AT_FDCWD, proc, dirfd, bname,
				    AT_SYMLINK_FOLLOW));
	}
	return rc;
}

/* A folder, symlink (when link), FIFO, socket or node record to make. */
struct made {
	mode_t mode;		/* with its S_IFMT type */
	dev_t rdev;
	const char *link;	/* the sealed target of a symlink */
	const struct format_record *rec;	/* a device or long symlink */
};

/* Makes m as name in p for c, and looks it up into e. */
static int make_entry(struct vfs *v, const struct vfs_caller *c,
		      struct inode *p, const char *name, const struct made *m,
		      struct vfs_entry *e)
{
	char bname[NAME_MAX + 1];
	int rc, pfd;

	rc = vfs_name_in(v, p, name, bname);
	if (rc)
		return rc;
	pfd = inodes_pin(v->inodes, p);
	if (pfd < 0)
		return pfd;
	if (m->rec) {
		rc = vfs_node_make(v, c, pfd, bname, m->mode, m->rec);
		goto made;	/* given to c already */
	}
	if (S_ISDIR(m->mode)) {
		rc = vfs_folder_mkdir(v, c, pfd, bname, m->mode & 07777);
		goto made;	/* given to c already, with its record */
	}
	if (m->link)
		rc = vfs_sys(symlinkat(m->link, pfd, bname));
	else
		rc = vfs_sys(mknodat(pfd, bname, m->mode, m->rdev));
	if (!rc)
		vfs_give(v, c, pfd, bname, -1);
made:
	inodes_unpin(v->inodes, p);
	if (!rc)
		rc = vfs_entry_of(v, p, name, bname, e);
	return rc;
}

int vfs_mknod(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	      const char *name, mode_t mode, dev_t rdev, struct vfs_entry *e)
{
	struct vfs_req r = { .op = VFS_MKNOD, .ino = parent, .name = name,
			     .mode = mode };
	struct format_record rec = { .kind = S_ISBLK(mode) ?
						     FORMAT_RECORD_BLK :
						     FORMAT_RECORD_CHR,
				     .major = major(rdev),
				     .minor = minor(rdev) };
	int rc = vfs_gate(v, c, &r);

	if (rc)
		return rc;
	if (S_ISREG(mode))	/* an empty encrypted file, closed again */
		rc = vfs_make_file(v, c, vfs_inode(v, parent), name,
				   mode & 07777, O_CREAT | O_EXCL | O_WRONLY,
				   e, NULL);
	else if (S_ISFIFO(mode) || S_ISSOCK(mode))
		rc = make_entry(v, c, vfs_inode(v, parent), name,
				&(struct made){ .mode = mode, .rdev = rdev },
				e);
	else if (S_ISCHR(mode) || S_ISBLK(mode))
		/* Sealed records, never real device nodes: the backing
		 * directory holds no device anyone could open. */
		rc = make_entry(v, c, vfs_inode(v, parent), name,
				&(struct made){ .mode = mode & 07777,
						.rec = &rec }, e);
	else
		rc = -EINVAL;
	return vfs_made(v, c, &r, rc);
}

int vfs_mkdir(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	      const char *name, mode_t mode, struct vfs_entry *e)
{
	struct vfs_req r = { .op = VFS_MKDIR, .ino = parent, .name = name,
			     .mode = mode };
	const struct made m = { .mode = S_IFDIR | mode };
	int rc = vfs_gate(v, c, &r);

	return rc ? rc : vfs_made(v, c, &r,
				  make_entry(v, c, vfs_inode(v, parent), name,
					     &m, e));
}

int vfs_symlink(struct vfs *v, const struct vfs_caller *c,
		const char *target, uint64_t parent, const char *name,
		struct vfs_entry *e)
{
	struct vfs_req r = { .op = VFS_SYMLINK, .ino = parent, .name = name,
			     .name2 = target };
	char sealed[FORMAT_SYMLINK_SEALED_MAX];
	struct format_record *rec;
	int rc = vfs_gate(v, c, &r);

	if (rc)
		return rc;
	if (strlen(target) <= FORMAT_SYMLINK_MAX) {
		rc = format_symlink_seal(v->link_key, v->vol->cv.volume_id,
					 target, sealed);
		if (!rc)
			rc = make_entry(v, c, vfs_inode(v, parent), name,
					&(struct made){ .link = sealed }, e);
		return vfs_made(v, c, &r, rc);
	}
	/* Sealed, a long target outgrows a backing symlink's 4095 bytes:
	 * a node record holds it. */
	if (strlen(target) > FORMAT_RECORD_TARGET_MAX)
		return vfs_made(v, c, &r, -ENAMETOOLONG);
	rec = calloc(1, sizeof(*rec));
	if (!rec)
		return vfs_made(v, c, &r, -ENOMEM);
	rec->kind = FORMAT_RECORD_SYMLINK;
	memcpy(rec->target, target, strlen(target) + 1);
	rc = make_entry(v, c, vfs_inode(v, parent), name,
			&(struct made){ .mode = 0644, .rec = rec }, e);
	free(rec);
	return vfs_made(v, c, &r, rc);
}

static int link_entry(struct vfs *v, struct inode *i, struct inode *p,
		      const char *name, struct vfs_entry *e)
{
	char bname[NAME_MAX + 1];
	int rc, fd, pfd;

	rc = vfs_name_in(v, p, name, bname);
	if (rc || (rc = fd = inodes_pin(v->inodes, i)) < 0)
		return rc;
	if ((rc = pfd = inodes_pin(v->inodes, p)) >= 0) {
		rc = vfs_link_in(fd, pfd, bname);
		inodes_unpin(v->inodes, p);
	}
	inodes_unpin(v->inodes, i);
	if (!rc)
		rc = vfs_entry_of(v, p, name, bname, e);
	return rc;
}

int vfs_link(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
	     uint64_t parent, const char *name, struct vfs_entry *e)
{
	struct vfs_req r = { .op = VFS_LINK, .ino = ino, .ino2 = parent,
			     .name2 = name };
	int rc = vfs_gate(v, c, &r);

	return rc ? rc : vfs_made(v, c, &r,
				  link_entry(v, vfs_inode(v, ino),
					     vfs_inode(v, parent), name, e));
}

/*
 * Removes name from p; *st then holds its attributes as the mount showed
 * them (read while it had a name to find its size tag by), and *sized
 * says whether its size could be had.
 */
static int remove_name(struct vfs *v, struct inode *p, const char *name,
		       int flags, struct stat *st, bool *sized)
{
	char bname[NAME_MAX + 1];
	int rc, pfd;

	rc = vfs_name_in(v, p, name, bname);
	if (rc || (rc = pfd = inodes_pin(v->inodes, p)) < 0)
		return rc;
	rc = vfs_sys(fstatat(pfd, bname, st, AT_SYMLINK_NOFOLLOW));
	/* Only for descriptors that outlive the name: no reason to refuse
	 * the removal. */
	*sized = !rc && !vfs_mount_sizes(v, -1, pfd, bname, st);
	if (!rc)
		rc = vfs_sys(unlinkat(pfd, bname, flags));
	inodes_unpin(v->inodes, p);
	if (!rc)
		inodes_unlinked(v->inodes, p, name);
	return rc;
}

static int remove_entry(struct vfs *v, struct inode *p, const char *name,
			int flags)
{
	struct stat st;
	int rc, gone = -1;
	bool sized;

	/* A backing rmdir spins in the kernel while a child's last close
	 * is under way (shrink_dcache_parent waits for dying dentries). */
	if (flags & AT_REMOVEDIR)
		(void)closer_drain(v->closer);
	rc = remove_name(v, p, name, flags, &st, &sized);
	/* Empty but for what a mkdir killed before its rename left? */
	if (rc == -ENOTEMPTY && vfs_folder_sweep(v, p, name))
		rc = remove_name(v, p, name, flags, &st, &sized);
	/* The kernel serialises unlink and link of one inode, so a count of
	 * one before is none now. */
	if (!rc && (S_ISDIR(st.st_mode) || st.st_nlink <= 1)) {
		st.st_nlink = 0;
		gone = inodes_gone(v->inodes, st.st_dev, st.st_ino,
				   sized ? &st : NULL);
	}
	/* The last close frees the file, which takes as long as the unlink:
	 * beside the next request, not in this one.  Queued before the reply,
	 * so that the rmdir of its folder finds it to wait for. */
	if (gone >= 0)
		closer_put(v->closer, gone);
	return rc;
}

/* unlink or rmdir (op), between the hooks. */
static int remove_op(struct vfs *v, const struct vfs_caller *c,
		     enum vfs_op op, uint64_t parent, const char *name)
{
	struct vfs_req r = { .op = op, .ino = parent, .name = name };
	int rc = vfs_gate(v, c, &r);

	return rc ? rc : vfs_done(v, c, &r,
				  remove_entry(v, vfs_inode(v, parent), name,
					       op == VFS_RMDIR ? AT_REMOVEDIR :
								 0));
}

int vfs_unlink(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	       const char *name)
{
	return remove_op(v, c, VFS_UNLINK, parent, name);
}

int vfs_rmdir(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	      const char *name)
{
	return remove_op(v, c, VFS_RMDIR, parent, name);
}

static int rename_entry(struct vfs *v, struct inode *p, const char *name,
			struct inode *q, const char *newname, unsigned flags)
{
	char a[NAME_MAX + 1], b[NAME_MAX + 1];
	int rc, pfd, qfd;

	rc = vfs_name_in(v, p, name, a);
	if (!rc)
		rc = vfs_name_in(v, q, newname, b);
	if (rc || (rc = pfd = inodes_pin(v->inodes, p)) < 0)
		return rc;
	if ((rc = qfd = inodes_pin(v->inodes, q)) >= 0) {
		atomic_fetch_add(&v->renames_begun, 1);
		rc = vfs_sys(renameat2(pfd, a, qfd, b, flags));
		atomic_fetch_add(&v->renames_ended, 1);
		inodes_unpin(v->inodes, q);
	}
	inodes_unpin(v->inodes, p);
	if (!rc)
		inodes_renamed(v->inodes, p, name, q, newname, flags);
	return rc;
}

int vfs_rename(struct vfs *v, const struct vfs_caller *c, uint64_t parent,
	       const char *name, uint64_t newparent, const char *newname,
	       unsigned flags)
{
	struct vfs_req r = { .op = VFS_RENAME, .ino = parent, .name = name,
			     .ino2 = newparent, .name2 = newname,
			     .flags = (int)flags };
	int rc = vfs_gate(v, c, &r);

	return rc ? rc : vfs_done(v, c, &r,
				  rename_entry(v, vfs_inode(v, parent), name,
					       vfs_inode(v, newparent),
					       newname, flags));
}

void vfs_renames(struct vfs *v, uint64_t out[2])
{
	/* Ended first: then a rename seen ended was seen begun too. */
	out[1] = atomic_load(&v->renames_ended);
	out[0] = atomic_load(&v->renames_begun);
}
