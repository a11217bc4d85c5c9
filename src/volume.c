/*
 * volume.c — opens a volume: backing root, .phifs folder, the single-daemon
 * lock and the keystore.  Knows nothing of FUSE or of files' contents.
 */
#include "phifs/volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/errmsg.h"

/* Takes the lock or says who holds it; writes our pid into it. */
static int take_lock(struct volume *v, const char *dir, char *err,
		     size_t len)
{
	char pid[32] = "";
	int fd, n;

	fd = openat(v->metafd, VOLUME_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0)
		return errmsg(err, len, -errno, "%s/%s/%s: %s", dir,
			      BACKING_META, VOLUME_LOCK, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;

		n = (int)pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		close(fd);
		if (e == EWOULDBLOCK)
			return errmsg(err, len, -EBUSY,
				      "%s: already mounted by another phifs "
				      "(pid %s)", dir, *pid ? pid : "?");
		return errmsg(err, len, -e, "%s/%s/%s: %s", dir, BACKING_META,
			      VOLUME_LOCK, strerror(e));
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)n, 0) != n) {
		int e = errno;

		close(fd);
		return errmsg(err, len, -e, "%s/%s/%s: %s", dir, BACKING_META,
			      VOLUME_LOCK, strerror(e));
	}
	v->lockfd = fd;
	return 0;
}

/* Whether folder dirfd holds nothing; false when it cannot tell. */
static bool folder_empty(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *e;
	bool empty = d != NULL;

	if (!d && fd >= 0)
		close(fd);
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = false;
			break;
		}
	if (d)
		closedir(d);
	return empty;
}

/* The folder of in-place rewrite journals, made on first use. */
static int open_journal(struct volume *v, const char *dir, char *err,
			size_t len)
{
	if (mkdirat(v->metafd, VOLUME_JOURNAL, 0700) && errno != EEXIST)
		return errmsg(err, len, -errno, "%s/%s/%s: %s", dir,
			      BACKING_META, VOLUME_JOURNAL, strerror(errno));
	v->journalfd = openat(v->metafd, VOLUME_JOURNAL, O_RDONLY |
			      O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (v->journalfd < 0)
		return errmsg(err, len, -errno, "%s/%s/%s: %s", dir,
			      BACKING_META, VOLUME_JOURNAL, strerror(errno));
	v->journals = !folder_empty(v->journalfd);
	return 0;
}

int volume_open(const char *dir, const char *keyspec, bool lock,
		struct volume **out, char *err, size_t err_len)
{
	struct keys_secret *sec = NULL;
	struct volume *v = calloc(1, sizeof(*v));
	char kerr[KEYS_ERR_LEN];
	int rc;

	if (!v)
		return errmsg(err, err_len, -ENOMEM, "out of memory");
	v->metafd = v->lockfd = v->journalfd = -1;
	v->backing.rootfd = -1;
	rc = backing_open(&v->backing, dir);
	if (rc) {
		rc = errmsg(err, err_len, rc, "%s: %s", dir, strerror(-rc));
		goto out;
	}
	v->metafd = openat(v->backing.rootfd, BACKING_META,
			   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (v->metafd < 0) {
		rc = errmsg(err, err_len, -errno, "%s: not a phifs volume "
			    "(no %s folder; run phifsctl init)", dir,
			    BACKING_META);
		goto out;
	}
	if (lock && (rc = take_lock(v, dir, err, err_len)))
		goto out;
	rc = open_journal(v, dir, err, err_len);
	if (rc)
		goto out;
	rc = keys_source_load(keyspec, &sec, kerr, sizeof(kerr));
	if (rc) {
		rc = errmsg(err, err_len, rc, "%s", kerr);
		goto out;
	}
	rc = keys_load(v->metafd, sec, &v->keys, kerr, sizeof(kerr));
	if (rc) {
		rc = errmsg(err, err_len, rc, "%s: %s", dir, kerr);
		goto out;
	}
	rc = keys_volume_key(v->keys, "phifs size v1", &v->size_key);
	if (rc) {
		rc = errmsg(err, err_len, rc, "%s: %s", dir, strerror(-rc));
		goto out;
	}
	v->cv = (struct cfile_volume){
		.volume_id = keys_volume_id(v->keys),
		.kek = keys_kek_fn,
		.kek_arg = v->keys,
		.active_version = keys_active_version(v->keys),
		.journal_dirfd = v->journalfd,
		.journals = &v->journals,
		.size_key = v->size_key,
	};
	*out = v;
	v = NULL;	/* transferred */
out:
	keys_secret_free(sec);
	volume_close(v);
	return rc;
}

void volume_close(struct volume *v)
{
	if (!v)
		return;
	crypto_key_free(v->size_key);
	keys_free(v->keys);
	if (v->journalfd >= 0)
		close(v->journalfd);
	if (v->lockfd >= 0)
		close(v->lockfd);	/* the lock goes with it */
	if (v->metafd >= 0)
		close(v->metafd);
	backing_close(&v->backing);
	free(v);
}
