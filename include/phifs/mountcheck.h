/*
 * mountcheck.h — whether a folder may take a phifs mount.  Knows nothing of
 * FUSE sessions or keys.
 */
#ifndef PHIFS_MOUNTCHECK_H
#define PHIFS_MOUNTCHECK_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Refuses a mount point that would hide something or loop into itself: not
 * a folder, the backing folder itself or inside it (the daemon would serve
 * its own mount), holding the backing folder, already the mount point of a
 * FUSE file system, or not empty (its files would be hidden) unless
 * nonempty.  0, or -errno with one line naming the folder in err.
 */
int mountcheck(const char *mountpoint, const char *backing, bool nonempty,
	       char *err, size_t err_len);

#endif
