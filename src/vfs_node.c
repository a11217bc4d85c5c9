/*
 * vfs_node.c — the operations core's node records: device nodes and
 * symlinks too long for a sealed backing symlink, each stored as a sealed
 * record (format_record_*) in a regular backing file marked with the sticky
 * bit, never as a real device node.  Makes them, reads them, and turns a
 * record's backing attributes into the ones the mount shows.  Knows nothing
 * of FUSE.
 */
#include "vfs_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "phifs/backing.h"
#include "phifs/ioutil.h"

int vfs_node_make(struct vfs *v, const struct vfs_caller *c, int dirfd,
		  const char *bname, mode_t perm,
		  const struct format_record *r)
{
	uint8_t rec[FORMAT_RECORD_MAX];
	ssize_t n = format_record_seal(v->link_key, v->vol->cv.volume_id, r,
				       rec);
	int rc, fd;

	if (n < 0)
		return (int)n;
	fd = openat(dirfd, bname,
		    O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = ioutil_pwrite_all(fd, rec, (size_t)n, 0);
	if (!rc) {
		vfs_give(v, c, dirfd, bname, fd);
		/* The mark last, after the owner (a chown may clear mode
		 * bits): a crash before it leaves a file that reads as a
		 * damaged encrypted one, never a half record. */
		rc = vfs_sys(fchmod(fd, (perm & 07777) | S_ISVTX));
	}
	close(fd);
	if (rc)
		(void)unlinkat(dirfd, bname, 0);
	return rc;
}

int vfs_node_read(struct vfs *v, int pathfd, struct format_record *r)
{
	uint8_t rec[FORMAT_RECORD_MAX + 1];
	size_t got = 0;
	int rc, fd, tries = 0;

	do
		rc = backing_reopen(pathfd, O_RDONLY, &fd);
	while (inodes_fd_wait(v->inodes, rc, &tries));
	if (rc)
		return rc;
	rc = ioutil_read_all(fd, rec, sizeof(rec), &got);
	close(fd);
	if (rc)
		return rc;
	if (!format_record_is(rec, got))
		return -ENODATA;
	return format_record_open(v->link_key, v->vol->cv.volume_id, rec, got,
				  r);
}

int vfs_node_attrs(struct vfs *v, int pathfd, struct stat *st)
{
	static const mode_t types[] = {
		[FORMAT_RECORD_SYMLINK] = S_IFLNK,
		[FORMAT_RECORD_CHR] = S_IFCHR,
		[FORMAT_RECORD_BLK] = S_IFBLK,
	};
	struct format_record r;
	int rc = vfs_node_read(v, pathfd, &r);

	if (rc == -ENODATA || (rc && !vfs_integrity_error(rc)))
		return rc;
	if (rc) {
		/* Forged or damaged: shown as the regular file it is, empty,
		 * whose open fails with EIO, and reported. */
		vfs_report_at(v, st->st_dev, st->st_ino, rc);
		st->st_size = 0;
		return 0;
	}
	st->st_mode = types[r.kind] |
		      (r.kind == FORMAT_RECORD_SYMLINK ? 0777 :
							 st->st_mode & 06777);
	st->st_rdev = r.kind == FORMAT_RECORD_SYMLINK ?
			      0 : makedev(r.major, r.minor);
	st->st_size = (off_t)r.len;
	return 0;
}
