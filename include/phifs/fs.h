/*
 * fs.h — the libfuse adapter of one volume: the low-level operations table,
 * whose handlers turn each request into a call on the operations core
 * (vfs.h) and its result into a reply.  With loop.h, the only header that
 * includes libfuse.
 */
#ifndef PHIFS_FS_H
#define PHIFS_FS_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>

#include "phifs/vfs.h"
#include <stdbool.h>

#include "phifs/volume.h"

struct fs;

/* vol is borrowed: it must outlive the fs. */
int fs_new(struct volume *vol, struct fs **out);
/* Commits and closes every open file.  NULL does nothing. */
void fs_free(struct fs *fs);
/* The operations core under fs, for its figures (the control plane). */
struct vfs *fs_vfs(struct fs *fs);
/* The session, for asking the kernel to forget inodes (before mounting). */
void fs_set_session(struct fs *fs, struct fuse_session *se);
/*
 * Whether the kernel may keep names and attributes for a while (the
 * default) and answer any process from them, or must ask for each lookup
 * and stat (timeouts of 0, as under an access policy: docs/POLICY.md).
 * Before mounting only.
 */
void fs_set_cache(struct fs *fs, bool cache);

/*
 * Whether files are opened for direct I/O: the page cache then serves no
 * read, so every read(2) reaches the daemon (and the integrity log,
 * `reads = strict`), at the cost of the kernel's read-ahead and caching.
 * Before mounting only.
 */
void fs_set_direct_io(struct fs *fs, bool direct);
/* The mount point's absolute path (copied), for tuning the mount's
 * readahead once the kernel has answered INIT. */
int fs_set_mountpoint(struct fs *fs, const char *path);
/*
 * Pass with the struct fs as user data to fuse_session_new().  Without
 * xattrs the table has no extended-attribute handlers: the kernel is told
 * ENOSYS once and stops asking, which also spares every write the
 * security.capability lookup it sends first when the handlers exist.
 */
const struct fuse_lowlevel_ops *fs_operations(bool xattrs);

#endif
