/*
 * volume.c — opens a volume: backing root, .phifs folder, the single-daemon
 * lock and the keystore.  Knows nothing of FUSE or of files' contents.
 */
#include "phifs/volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/errmsg.h"

/* A snapshot no longer in force, kept for workers that may still use it. */
struct volume_keys_old {
	struct keys_store *ks;
	struct volume_keys_old *next;
};

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
	struct keys_store *ks = NULL;
	char kerr[KEYS_ERR_LEN];
	int rc;

	if (!v)
		return errmsg(err, err_len, -ENOMEM, "out of memory");
	if (pthread_mutex_init(&v->keys_lock, NULL)) {
		free(v);
		return errmsg(err, err_len, -ENOMEM, "out of memory");
	}
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
	rc = keys_load(v->metafd, sec, &ks, kerr, sizeof(kerr));
	if (rc) {
		rc = errmsg(err, err_len, rc, "%s: %s", dir, kerr);
		goto out;
	}
	v->keys = ks;
	rc = keys_volume_key(ks, "phifs size v1", &v->size_key);
	if (rc) {
		rc = errmsg(err, err_len, rc, "%s: %s", dir, strerror(-rc));
		goto out;
	}
	v->cv = (struct cfile_volume){
		.volume_id = keys_volume_id(ks),	/* the same in all */
		.kek = volume_kek,
		.kek_arg = v,
		.active_version = keys_active_version(ks),
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
	while (v->old) {
		struct volume_keys_old *o = v->old;

		v->old = o->next;
		keys_free(o->ks);	/* wipes */
		free(o);
	}
	pthread_mutex_destroy(&v->keys_lock);
	if (v->journalfd >= 0)
		close(v->journalfd);
	if (v->lockfd >= 0)
		close(v->lockfd);	/* the lock goes with it */
	if (v->metafd >= 0)
		close(v->metafd);
	backing_close(&v->backing);
	free(v);
}

const struct crypto_key *volume_kek(void *arg, uint32_t version)
{
	struct volume *v = arg;

	return keys_kek(atomic_load_explicit(&v->keys, memory_order_acquire),
			version);
}

/*
 * Why keep every old snapshot until unmount rather than free it after a
 * grace period: cv.kek hands out a pointer into the snapshot that the
 * caller uses after the call, so no cheap count could tell when the last
 * user has let go.  A rotation adds one small store; rotations are rare.
 */
int volume_keys_change(struct volume *v,
		       int (*change)(struct keys_store *ks, void *arg,
				     char *err, size_t err_len),
		       void *arg, char *err, size_t err_len)
{
	struct volume_keys_old *o = calloc(1, sizeof(*o));
	struct keys_store *cur, *next = NULL;
	int rc;

	if (!o)
		return errmsg(err, err_len, -ENOMEM, "out of memory");
	pthread_mutex_lock(&v->keys_lock);
	cur = v->keys;
	rc = keys_copy(cur, &next);
	if (rc) {
		rc = errmsg(err, err_len, rc, "keystore: out of memory");
		goto out;
	}
	rc = change(next, arg, err, err_len);
	if (!rc && keys_save(next, v->metafd, err, err_len))
		rc = -EIO;
	if (rc)
		goto out;
	o->ks = cur;
	o->next = v->old;
	v->old = o;
	o = NULL;	/* kept */
	atomic_store_explicit(&v->keys, next, memory_order_release);
	/* After the store: whoever sees the new version finds its KEK. */
	v->cv.active_version = keys_active_version(next);
	next = NULL;	/* published */
out:
	pthread_mutex_unlock(&v->keys_lock);
	keys_free(next);
	free(o);
	return rc;
}

/*
 * Reads the start of name in dirfd into buf (4096 bytes, aligned) past the
 * page cache where it can, so that the check leaves cold files cold for
 * the read-ahead, which starts on a cold first page.  Bytes read, or -1.
 */
static ssize_t read_head(int dirfd, const char *name, uint8_t *buf)
{
	const int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
	int fd = openat(dirfd, name, flags | O_DIRECT);
	ssize_t n;

	if (fd < 0 && errno == EINVAL)	/* no O_DIRECT here (tmpfs) */
		fd = openat(dirfd, name, flags);
	if (fd < 0)
		return -1;
	n = pread(fd, buf, 4096, 0);
	close(fd);
	return n;
}

/* The volume ID in a file's header (either slot), if it has a header. */
static bool header_volume(int dirfd, const char *name,
			  uint8_t id[FORMAT_ID_LEN])
{
	struct format_header h;
	uint8_t *buf;
	bool found = false;
	ssize_t n;

	if (posix_memalign((void **)&buf, 4096, 4096))
		return false;
	n = read_head(dirfd, name, buf);
	for (int k = 0; k < 2 && !found; k++) {
		size_t at = (size_t)k * FORMAT_SLOT_STRIDE;

		found = n >= (ssize_t)(at + FORMAT_SLOT_SIZE) &&
			!format_slot_parse(buf + at, &h);
	}
	free(buf);
	if (found)
		memcpy(id, h.volume_id, FORMAT_ID_LEN);
	return found;
}

struct sample {
	const uint8_t *ours;
	uint8_t foreign[FORMAT_ID_LEN];
	unsigned read, mine;
};

/* Samples the regular files of folder dirfd; returns its subfolders'
 * names in subs (up to n), for one more level. */
static size_t sample_folder(int dirfd, bool root, struct sample *s,
			    char subs[][NAME_MAX + 1], size_t n)
{
	DIR *d = fdopendir(dup(dirfd));
	struct dirent *de;
	size_t nsub = 0;

	if (!d)
		return 0;
	while (s->read < VOLUME_SAMPLE && (de = readdir(d))) {
		uint8_t id[FORMAT_ID_LEN];

		if (de->d_name[0] == '.' &&
		    (!de->d_name[1] || !strcmp(de->d_name, "..") ||
		     (root && !strcmp(de->d_name, BACKING_META))))
			continue;
		if (de->d_type == DT_DIR && nsub < n)
			snprintf(subs[nsub++], NAME_MAX + 1, "%s", de->d_name);
		if (de->d_type != DT_REG ||
		    !header_volume(dirfd, de->d_name, id))
			continue;
		s->read++;
		if (!memcmp(id, s->ours, FORMAT_ID_LEN))
			s->mine++;
		else
			memcpy(s->foreign, id, FORMAT_ID_LEN);
	}
	closedir(d);
	return nsub;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int volume_check_files(const struct volume *v, char *err, size_t err_len)
{
	struct sample s = { .ours = v->cv.volume_id };
	char subs[VOLUME_SAMPLE][NAME_MAX + 1];
	char a[2 * FORMAT_ID_LEN + 1], b[2 * FORMAT_ID_LEN + 1];
	size_t nsub;

	nsub = sample_folder(v->backing.rootfd, true, &s, subs, VOLUME_SAMPLE);
	for (size_t k = 0; k < nsub && s.read < VOLUME_SAMPLE; k++) {
		int fd = openat(v->backing.rootfd, subs[k], O_RDONLY |
				O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0)
			continue;
		(void)sample_folder(fd, false, &s, NULL, 0);
		close(fd);
	}
	if (!s.read || s.mine)
		return 0;
	hex(s.foreign, FORMAT_ID_LEN, a);
	hex(s.ours, FORMAT_ID_LEN, b);
	return errmsg(err, err_len, -EXDEV, "files belong to volume %s, but "
		      "the keystore is volume %s's (a keystore from another "
		      "volume?)", a, b);
}
