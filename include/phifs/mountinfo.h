/*
 * mountinfo.h — what the kernel says of a mount in /proc/self/mountinfo,
 * and the one tuning the daemon applies to its own mount (readahead, in
 * sysfs).  Knows nothing of FUSE or the volume.
 */
#ifndef PHIFS_MOUNTINFO_H
#define PHIFS_MOUNTINFO_H

#include <stdbool.h>
#include <stdio.h>

/*
 * The device (major:minor) of the newest mount on path, read from f (a
 * mountinfo stream): 0, or -ENOENT.  Never stat(2) a FUSE mount from its
 * own daemon: a thread waiting on its own mount's answer when the daemon
 * is killed keeps the process, and so the mount, alive.
 */
int mountinfo_dev(FILE *f, const char *path, unsigned *maj, unsigned *min);

/*
 * The file system type ("ext4", "fuse.phifs") of the newest mount on path,
 * read from f, into type (cut to len - 1 bytes): 0, or -ENOENT when path is
 * no mount point.
 */
int mountinfo_type(FILE *f, const char *path, char *type, size_t len);

/* Sets the readahead of the mount on path (absolute) to kb KiB: 0 or
 * -errno (writing sysfs needs root). */
int mountinfo_set_readahead(const char *path, unsigned kb);

#endif
