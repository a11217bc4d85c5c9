/*
 * folders.c — folder records on backing folders (folders.h): the xattr
 * that holds one, and the walk that gives every folder one before a
 * volume is marked.  Knows nothing of FUSE or of the mount's inodes.
 */
#include "phifs/folders.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "phifs/backing.h"
#include "phifs/secmem.h"

int folders_read(const struct folders_key *k, int pathfd, int dirfd,
		 const char *bname, uint64_t ino, struct format_folder *out)
{
	uint8_t rec[FORMAT_FOLDER_LEN + 1];
	ssize_t n;

	n = backing_getxattr(pathfd, dirfd, bname, FORMAT_FOLDER_XATTR, rec,
			     sizeof(rec));
	if (n == -ERANGE)	/* longer than any record */
		return -EUCLEAN;
	if (n < 0)
		return (int)n;
	return format_folder_open(k->key, k->volume_id, ino, rec, (size_t)n,
				  out);
}

int folders_write(const struct folders_key *k, int pathfd, uint64_t ino,
		  const struct format_folder *f)
{
	uint8_t rec[FORMAT_FOLDER_LEN];
	struct stat st;
	int rc;

	rc = format_folder_seal(k->key, k->volume_id, ino, f, rec);
	if (!rc)
		rc = backing_setxattr(pathfd, FORMAT_FOLDER_XATTR, rec,
				      sizeof(rec), 0);
	/* A user xattr needs write access to the folder: a daemon that is
	 * not root makes its own 0555 folder writable for the write only. */
	if (rc == -EACCES && !k->as_root && !fstat(pathfd, &st) &&
	    !backing_chmod(pathfd, (st.st_mode & 07777) | S_IRWXU)) {
		rc = backing_setxattr(pathfd, FORMAT_FOLDER_XATTR, rec,
				      sizeof(rec), 0);
		(void)backing_chmod(pathfd, st.st_mode & 07777);
	}
	return rc;
}

struct format_attrs folders_backing(const struct stat *st)
{
	return (struct format_attrs){ (uint32_t)st->st_mode & 07777u,
				      (uint32_t)st->st_uid,
				      (uint32_t)st->st_gid };
}

int folders_fresh(const struct stat *st, struct format_folder *f)
{
	f->attrs = folders_backing(st);
	return crypto_random(f->id, sizeof(f->id));
}

int folders_put_back(int pathfd, const struct format_attrs *a, bool owner)
{
	int rc = 0;

	/* Owner first: a chown may clear set-id bits the mode gives back. */
	if (owner && fchownat(pathfd, "", (uid_t)a->uid, (gid_t)a->gid,
			      AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
		rc = -errno;
	return rc ? rc : backing_chmod(pathfd, (mode_t)a->mode);
}

static bool same_attrs(const struct format_attrs *a,
		       const struct format_attrs *b)
{
	return a->mode == b->mode && a->uid == b->uid && a->gid == b->gid;
}

/* One folder of the walk, open as fd. */
static int adopt_one(const struct folders_key *k, int fd,
		     struct folders_tally *t)
{
	struct format_folder f;
	struct format_attrs b;
	struct stat st;
	int rc;

	if (fstat(fd, &st))
		return -errno;
	t->folders++;
	b = folders_backing(&st);
	rc = folders_read(k, fd, -1, NULL, (uint64_t)st.st_ino, &f);
	if (!rc && same_attrs(&f.attrs, &b))
		return 0;
	if (!rc) {
		t->restored++;
		return folders_put_back(fd, &f.attrs, f.attrs.uid != b.uid ||
						       f.attrs.gid != b.gid);
	}
	/* A newer phifs's record is not ours to overwrite. */
	if (rc != -ENODATA && rc != -EBADMSG && rc != -EUCLEAN)
		return rc;
	if (rc == -ENODATA)
		t->sealed++;
	else
		t->replaced++;
	rc = folders_fresh(&st, &f);
	return rc ? rc : folders_write(k, fd, (uint64_t)st.st_ino, &f);
}

static int adopt_tree(const struct folders_key *k, int fd, bool root,
		      struct folders_tally *t);

/* The folders in the folder fd, each walked. */
static int adopt_children(const struct folders_key *k, int fd, bool root,
			  struct folders_tally *t)
{
	int first = 0, rc, dfd = dup(fd), child;
	struct dirent *e;
	DIR *d;

	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    backing_is_meta(e->d_name, root) ||
		    (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN))
			continue;
		child = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY |
			       O_NOFOLLOW | O_CLOEXEC);
		if (child < 0) {
			rc = errno == ENOTDIR || errno == ELOOP ||
					     errno == ENOENT ? 0 : -errno;
		} else {
			rc = adopt_tree(k, child, false, t);
			close(child);
		}
		if (rc) {
			t->failed++;
			first = first ? first : rc;
		}
	}
	closedir(d);
	return first;
}

static int adopt_tree(const struct folders_key *k, int fd, bool root,
		      struct folders_tally *t)
{
	int rc = adopt_one(k, fd, t), rc2;

	rc2 = adopt_children(k, fd, root, t);
	return rc ? rc : rc2;
}

int folders_adopt(const struct folders_key *k, int rootfd,
		  struct folders_tally *t)
{
	int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	memset(t, 0, sizeof(*t));
	if (fd < 0)
		return -errno;
	rc = adopt_tree(k, fd, true, t);
	close(fd);
	return rc;
}

int folders_init(struct keys_store *ks, int rootfd, bool as_root)
{
	struct crypto_key *key = NULL;
	struct format_folder f;
	struct stat st;
	int rc;

	if (fstat(rootfd, &st))
		return -errno;
	rc = keys_volume_key(ks, FOLDERS_LABEL, &key);
	if (!rc)
		rc = folders_fresh(&st, &f);
	if (!rc) {
		struct folders_key k = { key, keys_volume_id(ks), as_root };

		rc = folders_write(&k, rootfd, (uint64_t)st.st_ino, &f);
	}
	crypto_key_free(key);
	secmem_wipe(&f, sizeof(f));
	return rc ? rc : keys_set_flags(ks, keys_flags(ks) | KEYS_F_FOLDERS);
}
