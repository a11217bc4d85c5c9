/*
 * vfs_xattr.c — the operations core's extended attributes: user.* names
 * and values, each sealed (format_xattr_*) into one backing xattr of the
 * same object under an opaque name, so the backing shows neither.  Other
 * namespaces (security, trusted, system) are not stored.  Knows nothing of
 * FUSE.
 */
#include "vfs_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "phifs/backing.h"

#define USER_PREFIX "user."

/*
 * Only user.* is stored.  The others belong to the kernel or to root and
 * mean something only to the host they were set on (an SELinux label, a
 * file capability, an ACL phifs would not enforce), so they are refused
 * with EOPNOTSUPP, the answer of a file system without them, which cp -a
 * and rsync -X take as "nothing to copy".  This is answered before the
 * hooks are asked: it touches nothing, and the kernel asks for
 * security.capability before every write, which would fill the log.  So is
 * a name with nothing after "user.".
 */
static int namespace_ok(const char *name)
{
	if (strncmp(name, USER_PREFIX, sizeof(USER_PREFIX) - 1))
		return -EOPNOTSUPP;
	/* "user." alone names nothing, as Linux says. */
	return name[sizeof(USER_PREFIX) - 1] ? 0 : -EINVAL;
}

/* The sealed attribute bname of the object on fd into *out (malloc'd). */
static ssize_t read_sealed(int fd, const char *bname, uint8_t **out)
{
	uint8_t *buf = malloc(FORMAT_XATTR_SEALED_MAX);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = backing_getxattr(fd, -1, NULL, bname, buf,
			     FORMAT_XATTR_SEALED_MAX);
	/* Longer than any sealed attribute: not one. */
	if (n == -ERANGE)
		n = -EBADMSG;
	if (n < 0) {
		free(buf);
		return n;
	}
	*out = buf;
	return n;
}

/*
 * Opens the attribute bname of inode i (on fd) into name and value (room
 * for FORMAT_XATTR_VALUE_MAX): the value's length or -errno.  One that
 * fails authentication is reported and gives -EBADMSG.
 */
static ssize_t open_attr(struct vfs *v, struct inode *i, int fd,
			 const char *bname, char name[FORMAT_XATTR_NAME_MAX + 1],
			 uint8_t *value)
{
	uint8_t *sealed = NULL;
	ssize_t n = read_sealed(fd, bname, &sealed);

	if (n >= 0) {
		n = format_xattr_open(v->xattr_key, v->vol->cv.volume_id,
				      (uint64_t)inodes_ino(i), bname, sealed,
				      (size_t)n, name, value);
		free(sealed);
	}
	if (n == -EBADMSG)
		vfs_report_xattr(v, i, bname);
	return n;
}

static int set_attr(struct vfs *v, struct inode *i, const char *name,
		    const void *value, size_t size, int flags)
{
	char bname[FORMAT_XATTR_BNAME_MAX];
	uint8_t *sealed;
	ssize_t n;
	int rc, fd;

	if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	if (size > FORMAT_XATTR_VALUE_MAX)
		return -E2BIG;
	rc = format_xattr_bname(v->xattr_name_key, (uint64_t)inodes_ino(i),
				name, bname);
	if (rc)
		return rc;
	sealed = malloc(FORMAT_XATTR_OVERHEAD + strlen(name) + size);
	if (!sealed)
		return -ENOMEM;
	n = format_xattr_seal(v->xattr_key, v->vol->cv.volume_id,
			      (uint64_t)inodes_ino(i), bname, name, value, size,
			      sealed);
	fd = rc = n < 0 ? (int)n : inodes_pin(v->inodes, i);
	if (fd >= 0) {
		/* One name per attribute: the backing's own CREATE and
		 * REPLACE checks are the caller's, and atomic. */
		rc = backing_setxattr(fd, bname, sealed, (size_t)n, flags);
		inodes_unpin(v->inodes, i);
	}
	free(sealed);
	return rc;
}

/* Pins i, with room for one value in *value: the fd, or -errno. */
static int pin_value(struct vfs *v, struct inode *i, uint8_t **value)
{
	int fd;

	*value = malloc(FORMAT_XATTR_VALUE_MAX);
	if (!*value)
		return -ENOMEM;
	fd = inodes_pin(v->inodes, i);
	if (fd < 0) {
		free(*value);
		*value = NULL;
	}
	return fd;
}

static void unpin_value(struct vfs *v, struct inode *i, uint8_t *value)
{
	inodes_unpin(v->inodes, i);
	explicit_bzero(value, FORMAT_XATTR_VALUE_MAX);
	free(value);
}

static ssize_t get_attr(struct vfs *v, struct inode *i, const char *name,
			void *buf, size_t size)
{
	char bname[FORMAT_XATTR_BNAME_MAX], found[FORMAT_XATTR_NAME_MAX + 1];
	uint8_t *value;
	ssize_t n;
	int fd, rc;

	rc = format_xattr_bname(v->xattr_name_key, (uint64_t)inodes_ino(i),
				name, bname);
	if (rc)
		return rc;
	fd = pin_value(v, i, &value);
	if (fd < 0)
		return fd;
	n = open_attr(v, i, fd, bname, found, value);
	if (n >= 0 && strcmp(found, name)) {
		vfs_report_xattr(v, i, bname);
		n = -EBADMSG;
	}
	/* As Linux: size 0 asks the length, a short buffer is ERANGE. */
	if (n >= 0 && size && (size_t)n > size)
		n = -ERANGE;
	else if (n > 0 && size)
		memcpy(buf, value, (size_t)n);
	unpin_value(v, i, value);
	return n;
}

/* The backing names of the object on fd into *out (malloc'd). */
static ssize_t backing_names(int fd, char **out)
{
	char *buf = NULL, *p;
	ssize_t n;

	for (;;) {
		n = backing_listxattr(fd, NULL, 0);
		if (n <= 0)
			break;
		p = realloc(buf, (size_t)n);
		if (!p) {
			n = -ENOMEM;
			break;
		}
		buf = p;
		n = backing_listxattr(fd, buf, (size_t)n);
		if (n != -ERANGE)	/* not grown in between */
			break;
	}
	if (n < 0) {
		free(buf);
		return n;
	}
	*out = buf;
	return n;
}

/*
 * Only sealed attributes that open are listed: the size tag, attributes
 * set on the backing directly, and forged or copied ones (reported) are
 * not.
 */
static ssize_t list_attrs(struct vfs *v, struct inode *i, char *buf,
			  size_t size)
{
	char name[FORMAT_XATTR_NAME_MAX + 1], *names = NULL;
	uint8_t *value;
	ssize_t n, got, rc = 0, total = 0;
	int fd = pin_value(v, i, &value);

	if (fd < 0)
		return fd;
	n = backing_names(fd, &names);
	for (ssize_t at = 0; at < n; at += (ssize_t)strlen(names + at) + 1) {
		size_t len;

		if (!format_xattr_is(names + at))
			continue;
		got = open_attr(v, i, fd, names + at, name, value);
		if (got == -EBADMSG || got == -ENODATA)	/* or removed */
			continue;
		if (got < 0) {
			rc = got;
			break;
		}
		len = strlen(name) + 1;
		if (size && (size_t)total + len > size) {
			rc = -ERANGE;
			break;
		}
		if (size)
			memcpy(buf + total, name, len);
		total += (ssize_t)len;
	}
	unpin_value(v, i, value);
	free(names);
	return n < 0 ? n : rc < 0 ? rc : total;
}

static int remove_attr(struct vfs *v, struct inode *i, const char *name)
{
	char bname[FORMAT_XATTR_BNAME_MAX];
	int rc, fd;

	rc = format_xattr_bname(v->xattr_name_key, (uint64_t)inodes_ino(i),
				name, bname);
	if (rc)
		return rc;
	fd = inodes_pin(v->inodes, i);
	if (fd < 0)
		return fd;
	rc = backing_removexattr(fd, bname);
	inodes_unpin(v->inodes, i);
	return rc;
}

int vfs_setxattr(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		 const char *name, const void *value, size_t size, int flags)
{
	struct vfs_req r = { .op = VFS_SETXATTR, .ino = ino, .name = name,
			     .len = size, .flags = flags };
	int rc = namespace_ok(name);

	if (!rc)
		rc = vfs_gate(v, c, &r);
	if (rc)
		return rc;
	rc = set_attr(v, vfs_inode(v, ino), name, value, size, flags);
	return vfs_done(v, c, &r, rc);
}

ssize_t vfs_getxattr(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		     const char *name, void *buf, size_t size)
{
	struct vfs_req r = { .op = VFS_GETXATTR, .ino = ino, .name = name,
			     .len = size };
	int rc = namespace_ok(name);
	ssize_t n;

	if (!rc)
		rc = vfs_gate(v, c, &r);
	if (rc)
		return rc;
	n = get_attr(v, vfs_inode(v, ino), name, buf, size);
	if (vfs_record(v, c, &r, n, NULL, 0) && n >= 0) {
		if (buf && size)
			explicit_bzero(buf, size);
		return -EIO;
	}
	return n;
}

ssize_t vfs_listxattr(struct vfs *v, const struct vfs_caller *c,
		      uint64_t ino, char *buf, size_t size)
{
	struct vfs_req r = { .op = VFS_LISTXATTR, .ino = ino, .len = size };
	int rc = vfs_gate(v, c, &r);
	ssize_t n;

	if (rc)
		return rc;
	n = list_attrs(v, vfs_inode(v, ino), buf, size);
	if (vfs_record(v, c, &r, n, NULL, 0) && n >= 0)
		return -EIO;
	return n;
}

int vfs_removexattr(struct vfs *v, const struct vfs_caller *c, uint64_t ino,
		    const char *name)
{
	struct vfs_req r = { .op = VFS_REMOVEXATTR, .ino = ino, .name = name };
	int rc = namespace_ok(name);

	if (!rc)
		rc = vfs_gate(v, c, &r);
	if (rc)
		return rc;
	rc = remove_attr(v, vfs_inode(v, ino), name);
	return vfs_done(v, c, &r, rc);
}
