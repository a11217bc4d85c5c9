/*
 * vfs_report.c — what the operations core tells: the operator's log lines
 * (integrity failures with path and block, backing I/O errors, sizes not
 * committed), the counters every operation passes, and the figures the
 * control plane asks for.  Knows nothing of FUSE or of how the figures
 * are shown.
 */
#include "vfs_impl.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "phifs/log.h"

/* This thread's stripe of the counters, given out in turn. */
static struct vfs_counters *my_counters(struct vfs *v)
{
	static _Atomic unsigned next;
	static _Thread_local unsigned stripe = VFS_STRIPES;

	if (stripe == VFS_STRIPES)
		stripe = atomic_fetch_add_explicit(&next, 1,
						   memory_order_relaxed) %
			 VFS_STRIPES;
	return &v->counters[stripe];
}

/* Counts what the operation did: every one passes here exactly once. */
void vfs_count(struct vfs *v, enum vfs_op op, long result)
{
	struct vfs_counters *n = my_counters(v);
	int e = -1;

	atomic_fetch_add_explicit(&n->ops[op], 1, memory_order_relaxed);
	if (result > 0 && op == VFS_READ)
		atomic_fetch_add_explicit(&n->read, (uint64_t)result,
					  memory_order_relaxed);
	else if (result > 0 && op == VFS_WRITE)
		atomic_fetch_add_explicit(&n->written, (uint64_t)result,
					  memory_order_relaxed);
	if (result == -EIO || vfs_integrity_error(result))
		e = VFS_ERR_EIO;
	else if (result == -ENOSPC || result == -EDQUOT)
		e = VFS_ERR_ENOSPC;
	else if (result == -EACCES || result == -EPERM)
		e = VFS_ERR_EACCES;
	if (e >= 0)
		atomic_fetch_add_explicit(&n->err[e], 1,
					  memory_order_relaxed);
}

/* --- telling the operator --- */

bool vfs_integrity_error(long rc)
{
	return rc == -EBADMSG || rc == -EUCLEAN || rc == -EKEYREJECTED ||
	       rc == -ENOKEY || rc == -EPROTO;
}

/* path, or "inode N" when the core knows no name for it. */
static void name_of(struct vfs *v, dev_t dev, ino_t ino, char *buf,
		    size_t len)
{
	if (inodes_path_of(v->inodes, dev, ino, buf, len))
		snprintf(buf, len, "inode %llu", (unsigned long long)ino);
}

/* Keeps the last VFS_AUTH_KEPT failures for the status (error path only). */
static void remember_auth(struct vfs *v, const char *path, int64_t block)
{
	struct vfs_auth_failure *a;
	size_t n;

	pthread_mutex_lock(&v->auth_lock);
	a = &v->auth[v->auth_next];
	v->auth_next = (v->auth_next + 1) % VFS_AUTH_KEPT;
	v->n_auth++;
	/* Cut to fit: the log line has the whole path. */
	n = strnlen(path, sizeof(a->path) - 1);
	memcpy(a->path, path, n);
	a->path[n] = 0;
	a->block = block;
	a->time = (int64_t)time(NULL);
	pthread_mutex_unlock(&v->auth_lock);
}

static void report_at(struct vfs *v, dev_t dev, ino_t ino, struct cfile *cf,
		      bool size, long rc)
{
	char path[PATH_MAX];
	int64_t block = cf ? cfile_fault(cf) : -1;

	if (rc >= 0 || (!size && !vfs_integrity_error(rc) && rc != -EIO))
		return;
	name_of(v, dev, ino, path, sizeof(path));
	if (!size && vfs_integrity_error(rc))
		remember_auth(v, path, block);
	if (size)
		log_msg(LOG_KIND_SIZE, LOG_ERR, "%s: not committed: %s",
			path, strerror((int)-rc));
	else if (vfs_integrity_error(rc) && block >= 0)
		log_msg(LOG_KIND_INTEGRITY, LOG_ERR,
			"%s: block %lld fails authentication", path,
			(long long)block);
	else if (vfs_integrity_error(rc))
		log_msg(LOG_KIND_INTEGRITY, LOG_ERR,
			"%s: header fails authentication (%s)", path,
			strerror((int)-rc));
	else if (rc == -EIO)
		log_msg(LOG_KIND_IO, LOG_ERR, "%s: backing I/O error", path);
}

void vfs_report(struct vfs *v, struct inode *i, struct cfile *cf, long rc)
{
	report_at(v, inodes_dev(i), inodes_ino(i), cf, false, rc);
}

void vfs_report_at(struct vfs *v, dev_t dev, ino_t ino, long rc)
{
	report_at(v, dev, ino, NULL, false, rc);
}

void vfs_report_xattr(struct vfs *v, struct inode *i, const char *bname)
{
	char path[PATH_MAX];

	name_of(v, inodes_dev(i), inodes_ino(i), path, sizeof(path));
	log_msg(LOG_KIND_INTEGRITY, LOG_ERR,
		"%s: extended attribute %s fails authentication", path, bname);
}

void vfs_report_size(struct vfs *v, struct inode *i, int rc)
{
	report_at(v, inodes_dev(i), inodes_ino(i), NULL, true, rc);
}

void vfs_commit_failed(void *arg, dev_t dev, ino_t ino, int rc)
{
	report_at(arg, dev, ino, NULL, true, rc);
}

/* --- figures --- */

const char *vfs_err_name(enum vfs_err e)
{
	static const char *const names[VFS_ERR_COUNT] = {
		"EIO", "ENOSPC", "EACCES",
	};

	return (unsigned)e < VFS_ERR_COUNT ? names[e] : NULL;
}

static uint64_t list_length(const struct vfs_open *o)
{
	uint64_t n = 0;

	for (; o; o = o->next)
		n++;
	return n;
}

#define RELAXED(x) atomic_load_explicit(&(x), memory_order_relaxed)

void vfs_stats(struct vfs *v, struct vfs_stats *st)
{
	unsigned kept;

	memset(st, 0, sizeof(*st));
	for (int k = 0; k < VFS_STRIPES; k++) {
		struct vfs_counters *n = &v->counters[k];

		for (int op = 0; op < VFS_OP_COUNT; op++)
			st->ops[op] += RELAXED(n->ops[op]);
		st->read_bytes += RELAXED(n->read);
		st->write_bytes += RELAXED(n->written);
		for (int e = 0; e < VFS_ERR_COUNT; e++)
			st->errors[e] += RELAXED(n->err[e]);
	}
	pthread_mutex_lock(&v->auth_lock);
	st->auth_failures = v->n_auth;
	kept = v->n_auth < VFS_AUTH_KEPT ? (unsigned)v->n_auth :
					    VFS_AUTH_KEPT;
	for (unsigned k = 0; k < kept; k++)
		st->auth[k] = v->auth[(v->auth_next + VFS_AUTH_KEPT - 1 - k) %
				      VFS_AUTH_KEPT];
	st->auth_kept = kept;
	pthread_mutex_unlock(&v->auth_lock);
	pthread_mutex_lock(&v->open_lock);
	st->open_files = list_length(v->files);
	st->open_dirs = list_length(v->dirs);
	pthread_mutex_unlock(&v->open_lock);
	st->inodes = inodes_count(v->inodes);
}

int vfs_flush(struct vfs *v)
{
	return nodes_commit_all(v->nodes, vfs_commit_failed, v);
}
