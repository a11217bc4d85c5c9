/*
 * vfs_report.c — what the operations core tells: the operator's log lines
 * (integrity failures with path and block, backing I/O errors, sizes not
 * committed, header slots refused, size tags that disagree, modes
 * and owners changed behind our back, folder records missing or forged), the
 * counters every operation passes, and the figures the control plane asks
 * for.  Knows nothing of FUSE or of how the figures are shown.
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

/* path, or "inode N" when the core knows no name for it (false). */
static bool name_of(struct vfs *v, dev_t dev, ino_t ino, char *buf,
		    size_t len)
{
	if (!inodes_path_of(v->inodes, dev, ino, buf, len))
		return true;
	snprintf(buf, len, "inode %llu", (unsigned long long)ino);
	return false;
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

/* The hooks hear of a failed authentication, with the path if known. */
static void tell_hooks(struct vfs *v, const struct vfs_caller *c,
		       const char *path, bool named, int64_t block)
{
	if (v->hooks && v->hooks->integrity)
		v->hooks->integrity(v->hooks_arg, c, named ? path : "",
				    block);
}

static void report_at(struct vfs *v, const struct vfs_caller *c, dev_t dev,
		      ino_t ino, struct cfile *cf, bool size, long rc)
{
	char path[PATH_MAX];
	int64_t block = cf ? cfile_fault(cf) : -1;
	bool named;

	if (rc >= 0 || (!size && !vfs_integrity_error(rc) && rc != -EIO))
		return;
	named = name_of(v, dev, ino, path, sizeof(path));
	if (!size && vfs_integrity_error(rc)) {
		remember_auth(v, path, block);
		tell_hooks(v, c, path, named, block);
	}
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

void vfs_report(struct vfs *v, const struct vfs_caller *c, struct inode *i,
		struct cfile *cf, long rc)
{
	report_at(v, c, inodes_dev(i), inodes_ino(i), cf, false, rc);
}

void vfs_report_at(struct vfs *v, dev_t dev, ino_t ino, long rc)
{
	report_at(v, NULL, dev, ino, NULL, false, rc);
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
	report_at(v, NULL, inodes_dev(i), inodes_ino(i), NULL, true, rc);
}

void vfs_commit_failed(void *arg, dev_t dev, ino_t ino, int rc)
{
	report_at(arg, NULL, dev, ino, NULL, true, rc);
}

/* --- what an open found in a header --- */

static bool same_told(const struct vfs_told *a, const struct vfs_told *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->seq == b->seq &&
	       a->refused == b->refused && a->tag == b->tag &&
	       a->tag_size == b->tag_size && a->attrs == b->attrs &&
	       !memcmp(&a->backing, &b->backing, sizeof(a->backing));
}

/*
 * Whether finding t is to be told: the first time (then each counter in
 * counts, NULL ends it, goes up by one), and once more when it was told
 * without a name (a getattr before the lookup that names the file was
 * done) and now has one.
 */
static bool told_once(struct vfs *v, const struct vfs_told *t,
		      uint64_t *const counts[])
{
	bool tell = true;
	unsigned k;

	pthread_mutex_lock(&v->auth_lock);
	for (k = 0; k < VFS_TOLD_KEPT; k++)
		if (same_told(&v->told[k], t))
			break;
	if (k < VFS_TOLD_KEPT) {
		tell = t->named && !v->told[k].named;
		v->told[k].named |= t->named;
	} else {
		v->told[v->told_next] = *t;
		v->told_next = (v->told_next + 1) % VFS_TOLD_KEPT;
		for (; *counts; counts++)
			++**counts;
	}
	pthread_mutex_unlock(&v->auth_lock);
	return tell;
}

/* Whether n on (dev, ino) is to be told (told_once). */
static bool to_tell(struct vfs *v, dev_t dev, ino_t ino,
		    const struct cfile_note *n, bool named)
{
	/* A refused slot is one finding whatever the tag says: the tag
	 * that the first writable open set again must not tell it twice. */
	bool fb = n->pick.refused >= 0;
	struct vfs_told t = {
		.dev = dev, .ino = ino, .seq = n->seq,
		.refused = n->pick.refused, .tag = fb ? 0 : (int)n->tag,
		.tag_size = fb ? 0 : n->tag_size, .attrs = n->attrs_differ,
		.backing = n->attrs_differ ? n->backing :
					     (struct format_attrs){ 0 },
		.named = named,
	};
	uint64_t *counts[4];
	int c = 0;

	if (fb)
		counts[c++] = &v->n_fallbacks;
	if (n->tag == CFILE_TAG_DIFFERS)
		counts[c++] = &v->n_tag_mismatches;
	if (n->attrs_differ)
		counts[c++] = &v->n_attr_mismatches;
	counts[c] = NULL;
	return told_once(v, &t, counts);
}

static const char *tag_fate(const struct cfile_note *n)
{
	if (n->tag != CFILE_TAG_DIFFERS)
		return "";
	return n->tag_removed ? "; the tag is removed" :
				"; the tag stays (it cannot be removed here)";
}

/*
 * A refused slot.  Without a tag it may be a header write torn by a
 * crash; a tag that verifies rules that out, since the first commit of an
 * open removes the tag before it writes a header.
 */
static void tell_fallback(const char *path, const struct cfile_note *n)
{
	char seq[24] = "unreadable";

	if (n->pick.refused_seq_known)
		snprintf(seq, sizeof(seq), "%llu",
			 (unsigned long long)n->pick.refused_seq);
	if (n->tag == CFILE_TAG_NONE)
		log_msg(LOG_KIND_INTEGRITY, LOG_WARNING,
			"%s: header slot %d (seq %s) fails authentication "
			"(%s); using slot %d (seq %llu, %llu bytes): expected "
			"after a crash during a header write, otherwise "
			"damage or tampering", path, n->pick.refused, seq,
			strerror(-n->pick.refused_rc), n->pick.slot,
			(unsigned long long)n->seq,
			(unsigned long long)n->size);
	else
		log_msg(LOG_KIND_INTEGRITY, LOG_ERR,
			"%s: header slot %d (seq %s) fails authentication "
			"(%s) under a valid size tag (%llu bytes), so not a "
			"crash: damage or tampering; using slot %d (seq %llu, "
			"%llu bytes)%s", path, n->pick.refused, seq,
			strerror(-n->pick.refused_rc),
			(unsigned long long)n->tag_size, n->pick.slot,
			(unsigned long long)n->seq,
			(unsigned long long)n->size, tag_fate(n));
}

/* A mode or owner changed in the backing directory, behind our back. */
static void tell_attrs(const char *path, const struct cfile_note *n)
{
	log_msg(LOG_KIND_INTEGRITY, LOG_ERR,
		"%s: backing file has mode %04o, owner %u:%u but the header "
		"says %04o, %u:%u: changed behind phifs's back; serving the "
		"header's%s", path, (unsigned)n->backing.mode,
		(unsigned)n->backing.uid, (unsigned)n->backing.gid,
		(unsigned)n->attrs.mode, (unsigned)n->attrs.uid,
		(unsigned)n->attrs.gid,
		n->attrs_restored ? ", and gave them back to the backing file" :
				    " (the backing file keeps its own: "
				    "phifs may not change them)");
}

void vfs_report_open(struct vfs *v, struct inode *i, dev_t dev, ino_t ino,
		     struct cfile *cf)
{
	char path[PATH_MAX];
	struct cfile_note n;

	if (!cfile_take_note(cf, &n))
		return;
	/* The kernel may hold the tag's size, or the backing's mode, from
	 * a lookup: once we serve the header's, it must ask again. */
	if (i && (n.tag == CFILE_TAG_DIFFERS || n.attrs_differ))
		vfs_inval_attrs(v, inodes_id(i));
	if (!to_tell(v, dev, ino, &n, name_of(v, dev, ino, path,
					      sizeof(path))))
		return;
	if (n.attrs_differ)
		tell_attrs(path, &n);
	if (n.pick.refused >= 0)
		tell_fallback(path, &n);
	else if (n.tag == CFILE_TAG_DIFFERS)
		log_msg(LOG_KIND_INTEGRITY, LOG_ERR,
			"%s: size tag says %llu bytes but the header (slot %d, "
			"seq %llu) says %llu: the tag was put back or planted, "
			"not a crash; serving the header's size%s", path,
			(unsigned long long)n.tag_size, n.pick.slot,
			(unsigned long long)n.seq, (unsigned long long)n.size,
			tag_fate(&n));
}

/* --- folders --- */

/* The seq a folder's findings are kept under: no header reaches it. */
#define FOLDER_SEQ UINT64_MAX

/* Whether a folder's finding is to be told: as to_tell, for folders. */
static bool folder_to_tell(struct vfs *v, dev_t dev, ino_t ino, int rc,
			   const struct format_attrs *b, bool named)
{
	struct vfs_told t = {
		.dev = dev, .ino = ino, .seq = FOLDER_SEQ, .refused = rc,
		.attrs = rc == 0, .backing = *b, .named = named,
	};
	uint64_t *counts[2] = { rc ? NULL : &v->n_attr_mismatches, NULL };

	return told_once(v, &t, counts);
}

void vfs_report_folder(struct vfs *v, dev_t dev, ino_t ino, int rc,
		       const struct format_attrs *b,
		       const struct format_attrs *a, bool restored)
{
	char path[PATH_MAX];
	bool named = name_of(v, dev, ino, path, sizeof(path));

	if (!folder_to_tell(v, dev, ino, rc, b, named))
		return;
	if (rc) {
		remember_auth(v, path, -1);
		log_msg(LOG_KIND_INTEGRITY, LOG_ERR,
			"%s: folder record %s on a volume whose folders all "
			"carry one: removed or tampered with; serving mode "
			"%04o, owner %u:%u (the backing has %04o, %u:%u) until "
			"a chmod or chown through the mount seals a new one",
			path, rc == -ENODATA ? "is missing" :
					       "fails authentication",
			(unsigned)a->mode, (unsigned)a->uid, (unsigned)a->gid,
			(unsigned)b->mode, (unsigned)b->uid, (unsigned)b->gid);
		return;
	}
	log_msg(LOG_KIND_INTEGRITY, LOG_ERR,
		"%s: backing folder has mode %04o, owner %u:%u but its record "
		"says %04o, %u:%u: changed behind phifs's back; serving the "
		"record's%s", path, (unsigned)b->mode, (unsigned)b->uid,
		(unsigned)b->gid, (unsigned)a->mode, (unsigned)a->uid,
		(unsigned)a->gid,
		restored ? ", and gave them back to the backing folder" :
			   " (the backing folder keeps its own: phifs may "
			   "not change them)");
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
	st->header_fallbacks = v->n_fallbacks;
	st->size_tag_mismatches = v->n_tag_mismatches;
	st->attr_mismatches = v->n_attr_mismatches;
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
