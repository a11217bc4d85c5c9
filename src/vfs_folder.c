/*
 * vfs_folder.c — the operations core's folders: the mode and owner the
 * mount shows for a folder are its sealed record's (folders.h), not the
 * backing folder's, which anyone who can write the backing directory can
 * change; mkdir, chmod and chown write the record; and a volume whose
 * folders do not all carry one yet is given them when first served, then
 * marked.  Knows nothing of FUSE.
 */
#include "vfs_impl.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "phifs/backing.h"
#include "phifs/log.h"

static struct folders_key key_of(struct vfs *v)
{
	return (struct folders_key){ v->folder_key, v->vol->cv.volume_id,
				     v->as_root };
}

static bool same_attrs(const struct format_attrs *a,
		       const struct format_attrs *b)
{
	return a->mode == b->mode && a->uid == b->uid && a->gid == b->gid;
}

static void show(struct stat *st, const struct format_attrs *a)
{
	st->st_mode = (st->st_mode & S_IFMT) | (mode_t)a->mode;
	st->st_uid = (uid_t)a->uid;
	st->st_gid = (gid_t)a->gid;
}

/*
 * What a marked volume serves for a folder without a good record: no
 * access for anyone but the daemon's own user (and root), who may seal a
 * new record with a chmod or chown through the mount.
 */
static struct format_attrs safe_attrs(void)
{
	return (struct format_attrs){ 0, (uint32_t)geteuid(),
				      (uint32_t)getegid() };
}

/* Gives the backing folder the record's mode and owner where we may. */
static bool put_back(int pathfd, int dirfd, const char *bname,
		     const struct format_attrs *a, const struct stat *st)
{
	bool owner = a->uid != (uint32_t)st->st_uid ||
		     a->gid != (uint32_t)st->st_gid;
	int rc, own = -1;

	if (pathfd < 0) {
		if (backing_lookup(dirfd, bname, &own))
			return false;
		pathfd = own;
	}
	rc = folders_put_back(pathfd, a, owner);
	if (own >= 0)
		close(own);
	return !rc;
}

int vfs_folder_attrs(struct vfs *v, int pathfd, int dirfd, const char *bname,
		     struct stat *st)
{
	const struct folders_key k = key_of(v);
	struct format_attrs b = folders_backing(st), safe;
	struct format_folder f;
	struct timespec now;
	uint64_t agreed;
	int rc;

	/* Remembered for this ctime: the backing was the record's. */
	if (size_memo_get(v->sizes, st, &agreed))
		return 0;
	rc = folders_read(&k, pathfd, dirfd, bname, (uint64_t)st->st_ino, &f);
	if (!rc && same_attrs(&f.attrs, &b)) {
		if (!clock_gettime(CLOCK_REALTIME, &now))
			size_memo_put(v->sizes, st, 0, &now);
		return 0;
	}
	if (!rc) {
		bool back = put_back(pathfd, dirfd, bname, &f.attrs, st);

		show(st, &f.attrs);
		vfs_report_folder(v, st->st_dev, st->st_ino, 0, &b, &f.attrs,
				  back);
		return 0;
	}
	/* Not marked yet: the backing's, as before records. */
	if (!atomic_load(&v->folders_marked))
		return 0;
	if (rc != -ENODATA && !vfs_integrity_error(rc))
		return rc;
	safe = safe_attrs();
	show(st, &safe);
	vfs_report_folder(v, st->st_dev, st->st_ino, rc, &b, &safe, false);
	return 0;
}

/* The record in force for the folder on pathfd (st its backing stat). */
static int current(struct vfs *v, int pathfd, const struct stat *st,
		   struct format_folder *f)
{
	const struct folders_key k = key_of(v);
	int rc = folders_read(&k, pathfd, -1, NULL, (uint64_t)st->st_ino, f);

	if (!rc)
		return 0;
	if (atomic_load(&v->folders_marked) && rc != -ENODATA &&
	    !vfs_integrity_error(rc))
		return rc;
	/* None that opens: what the mount showed, under a new ID. */
	rc = folders_fresh(st, f);
	if (!rc && atomic_load(&v->folders_marked))
		f->attrs = safe_attrs();
	return rc;
}

int vfs_folder_set(struct vfs *v, int pathfd, const struct stat *attr,
		   int set)
{
	const struct folders_key k = key_of(v);
	const bool owner = set & (VFS_SET_UID | VFS_SET_GID);
	struct format_attrs was;
	bool chown;
	struct format_folder f;
	struct stat st;
	int rc;

	if (fstat(pathfd, &st))
		return -errno;
	rc = current(v, pathfd, &st, &f);
	if (rc)
		return rc;
	was = folders_backing(&st);
	if (set & VFS_SET_UID)
		f.attrs.uid = (uint32_t)attr->st_uid;
	if (set & VFS_SET_GID)
		f.attrs.gid = (uint32_t)attr->st_gid;
	if (set & VFS_SET_MODE)
		f.attrs.mode = (uint32_t)attr->st_mode & 07777u;
	/*
	 * The backing first, so that what it refuses (EPERM) is refused
	 * before the record changes; a record that cannot be written puts
	 * the backing back.  Its owner is set whenever it is not the
	 * record's, as after a chown in the backing.
	 */
	chown = owner || f.attrs.uid != was.uid || f.attrs.gid != was.gid;
	rc = folders_put_back(pathfd, &f.attrs, chown);
	if (!rc)
		rc = folders_write(&k, pathfd, (uint64_t)st.st_ino, &f);
	if (rc)
		(void)folders_put_back(pathfd, &was, chown);
	return rc;
}

int vfs_folder_made(struct vfs *v, int dirfd, const char *bname)
{
	const struct folders_key k = key_of(v);
	struct format_folder f;
	struct stat st;
	int rc, fd;

	rc = backing_lookup(dirfd, bname, &fd);
	if (rc)
		return rc;
	rc = fstat(fd, &st) ? -errno : folders_fresh(&st, &f);
	if (!rc)
		rc = folders_write(&k, fd, (uint64_t)st.st_ino, &f);
	close(fd);
	/* A file system without user xattrs has unmarked volumes only. */
	if (rc == -EOPNOTSUPP && !atomic_load(&v->folders_marked))
		rc = 0;
	return rc;
}

/* A fresh temporary name for a folder being made. */
static int temp_name(char out[BACKING_MKDIR_NAME_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t n = sizeof(BACKING_MKDIR_PREFIX) - 1;
	uint8_t r[16];
	int rc = crypto_random(r, sizeof(r));

	memcpy(out, BACKING_MKDIR_PREFIX, n);
	for (size_t k = 0; k < sizeof(r); k++) {
		out[n + 2 * k] = hex[r[k] >> 4];
		out[n + 2 * k + 1] = hex[r[k] & 15];
	}
	out[n + 32] = 0;
	return rc;
}

/* The way without a temporary name, for backings without NOREPLACE. */
static int mkdir_direct(struct vfs *v, const struct vfs_caller *c, int dirfd,
			const char *bname, mode_t mode)
{
	int rc = vfs_sys(mkdirat(dirfd, bname, mode));

	if (rc)
		return rc;
	vfs_give(v, c, dirfd, bname, -1);
	rc = vfs_folder_made(v, dirfd, bname);
	if (rc)
		(void)unlinkat(dirfd, bname, AT_REMOVEDIR);
	return rc;
}

int vfs_folder_mkdir(struct vfs *v, const struct vfs_caller *c, int dirfd,
		     const char *bname, mode_t mode)
{
	char tmp[BACKING_MKDIR_NAME_LEN + 1];
	int rc = temp_name(tmp);

	if (!rc)
		rc = vfs_sys(mkdirat(dirfd, tmp, mode));
	if (rc)
		return rc;
	vfs_give(v, c, dirfd, tmp, -1);
	rc = vfs_folder_made(v, dirfd, tmp);
	if (!rc)
		rc = vfs_sys(renameat2(dirfd, tmp, dirfd, bname,
				       RENAME_NOREPLACE));
	if (rc)
		(void)unlinkat(dirfd, tmp, AT_REMOVEDIR);
	return rc == -EINVAL ? mkdir_direct(v, c, dirfd, bname, mode) : rc;
}

/* Removes the mkdir temporaries in the folder fd. */
static bool sweep_in(int fd)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	struct dirent *e;
	bool swept = false;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return false;
	}
	while ((e = readdir(d)))
		if (backing_is_mkdir_temp(e->d_name) &&
		    !unlinkat(fd, e->d_name, AT_REMOVEDIR))
			swept = true;
	closedir(d);
	return swept;
}

bool vfs_folder_sweep(struct vfs *v, struct inode *p, const char *name)
{
	char bname[NAME_MAX + 1];
	int pfd, fd = -1;
	bool swept = false;

	if (vfs_name_in(v, p, name, bname))
		return false;
	pfd = inodes_pin(v->inodes, p);
	if (pfd < 0)
		return false;
	fd = openat(pfd, bname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	inodes_unpin(v->inodes, p);
	if (fd >= 0) {
		swept = sweep_in(fd);
		close(fd);
	}
	return swept;
}

static int set_mark(struct keys_store *ks, void *arg, char *err,
		    size_t err_len)
{
	(void)arg;
	(void)err;
	(void)err_len;
	return keys_set_flags(ks, keys_flags(ks) | KEYS_F_FOLDERS);
}

int vfs_folders_adopt(struct vfs *v)
{
	const struct folders_key k = key_of(v);
	struct folders_tally t;
	char err[KEYS_ERR_LEN] = "";
	int rc;

	if (keys_flags(v->vol->keys) & KEYS_F_FOLDERS) {
		atomic_store(&v->folders_marked, true);
		return 0;
	}
	rc = folders_adopt(&k, v->vol->backing.rootfd, &t);
	if (!rc)
		rc = volume_keys_change(v->vol, set_mark, NULL, err,
					sizeof(err));
	if (rc) {
		log_msg(LOG_KIND_INTEGRITY, LOG_WARNING,
			"folder records: %llu of %llu folders could not be "
			"given one (%s); folders without one keep showing "
			"the backing's mode and owner", (unsigned long long)
			t.failed, (unsigned long long)t.folders,
			*err ? err : strerror(-rc));
		return rc;
	}
	atomic_store(&v->folders_marked, true);
	if (t.sealed || t.replaced || t.restored)
		log_msg(LOG_KIND_INTEGRITY, t.replaced || t.restored ?
				LOG_WARNING : LOG_INFO,
			"folder records: %llu folders walked; %llu given the "
			"backing's mode and owner (trust on first use), %llu "
			"whose record did not open given it too, %llu put "
			"back to their record's; the volume is now marked",
			(unsigned long long)t.folders,
			(unsigned long long)t.sealed,
			(unsigned long long)t.replaced,
			(unsigned long long)t.restored);
	return 0;
}
