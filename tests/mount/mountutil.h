/*
 * mountutil.h — helpers for the mount end-to-end tests: throw-away volumes
 * (key, backing directory, mount point under one mkdtemp folder), running
 * phifs and phifsctl, mounting, unmounting and killing the daemon, and a
 * clean-up that always runs.  It knows nothing of the on-disk format beyond
 * the offsets the tests need, and nothing of phifs internals: it drives the
 * programs the way a user would.
 *
 * Clean-up happens three ways, so no test leaves a mount or a daemon behind:
 * mu_cleanup_all() is the suites' .fini (Criterion runs it after a failed
 * assertion too), mu_skip() runs it before skipping (Criterion does not run
 * .fini for a skipped test), and each volume has a guardian process that
 * unmounts, kills and removes whatever is left when the test process dies
 * without cleaning up (a crash or a Criterion timeout).
 *
 * The helpers are for the test's main thread: they assert with Criterion.
 */
#ifndef PHIFS_MOUNTUTIL_H
#define PHIFS_MOUNTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MU_BS 4096		/* plaintext block, docs/FORMAT.md */
#define MU_SB 4124		/* stored block */
#define MU_HDR 1024		/* header region */
/* Backing offset of data block i, for the first 32768 blocks. */
#define MU_BLOCK_OFF(i) ((off_t)MU_HDR + (off_t)(i) * MU_SB)

struct mu_vol {
	char dir[64];		/* the mkdtemp folder holding all below */
	char key[128];		/* key file */
	char backing[128];	/* backing directory */
	char mnt[128];		/* mount point */
	pid_t daemon;		/* the daemon serving mnt; 0 when none */
	bool daemon_is_child;	/* daemon is ours to waitpid */
	bool mounted;
	char err[2048];		/* stderr of the last phifs run */
	int guard_fd;		/* write end of the guardian's pipe */
	pid_t guard;
};

/*
 * Skips the test (after cleaning up) unless /dev/fuse can be opened and a
 * FUSE mount can be made, and unless the phifs under test can mount at all.
 * Call first in every test.
 */
void mu_require_fuse(void);

/* Cleans up every volume, then skips the test with the reason. */
void mu_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* The suites' .fini: unmounts, kills and removes every volume. */
void mu_cleanup_all(void);

/*
 * A new volume: folder, key (phifsctl keygen), backing (phifsctl init) and
 * an empty mount point.  With tmpfs_bytes > 0 the backing directory lives on
 * a tmpfs of that size (skips the test when tmpfs cannot be mounted).
 */
struct mu_vol *mu_vol_new(size_t tmpfs_bytes);

/* "v->mnt/rel" or "v->backing/rel" in a static ring of buffers. */
const char *mu_m(const struct mu_vol *v, const char *rel);
const char *mu_b(const struct mu_vol *v, const char *rel);

/*
 * Runs phifs --key file:KEY [-f] [extra...] BACKING MNT and returns its exit
 * status (128 + signal when killed, -1 when it hung and was killed), with its
 * stderr in v->err.  On success v->daemon is set and v->mnt is mounted.  In
 * the foreground (-f) it waits until the mount shows up instead.  key, backing
 * and mnt default to the volume's own when NULL.
 */
int mu_phifs(struct mu_vol *v, bool foreground, const char *key,
	     const char *backing, const char *mnt, const char *const *extra);
/* mu_phifs() with the volume's own key and paths, asserting success. */
void mu_mount(struct mu_vol *v);
void mu_mount_fg(struct mu_vol *v);
/*
 * mu_mount without the integrity log, for tests of the space the files
 * take on a small store: a log there fills it too, and then (fail
 * closed) refuses reads and writes with EIO, as test_mount_audit shows.
 */
void mu_mount_no_audit(struct mu_vol *v);

/*
 * fusermount3 -u with retries, umount -l as a last resort; then waits for the
 * daemon to exit and asserts it exited 0 without sanitizer reports.
 */
void mu_unmount(struct mu_vol *v);

/*
 * SIGTERM to the daemon; waits for it, and asserts it exited 0 without
 * sanitizer reports and took its mount with it.
 */
void mu_terminate(struct mu_vol *v);
/* The same, for a daemon told to stop some other way (after: how). */
void mu_wait_exit(struct mu_vol *v, const char *after);
/* kill -9 the daemon and reap it; the mount is left dead (ENOTCONN). */
void mu_kill9(struct mu_vol *v);
/* Unmounts a mount whose daemon is dead. */
void mu_unmount_dead(struct mu_vol *v);

/* phifsctl keygen PATH, asserting success. */
void mu_keygen(struct mu_vol *v, const char *path);

/* How many live processes (other than this one) name s on their command line. */
int mu_procs_with(const char *s);

/* Whether path is a mount point in /proc/self/mountinfo. */
bool mu_is_mounted(const char *path);

/* Number of lines in s, counting a last line without '\n'. */
int mu_lines(const char *s);

/* Deterministic bytes from a seed, for contents that can be checked later. */
void mu_fill(uint8_t *buf, size_t len, uint64_t seed);
/* Writes a whole file (O_CREAT|O_TRUNC), asserting success. */
void mu_write_file(const char *path, const void *buf, size_t len);
/*
 * Reads a whole file into a malloc'd buffer; returns 0 or -errno.  *len gets
 * the bytes read before any error.
 */
int mu_read_file(const char *path, uint8_t **buf, size_t *len);
/* Reads [off, off + len) exactly: 0, -errno, or -EPIPE for a short read. */
int mu_pread_exact(int fd, void *buf, size_t len, off_t off);

/* rm -rf that does not cross into other mounts; never fails. */
void mu_rm_rf(const char *path);

/* The seed: PHIFS_TEST_SEED from the environment, or from the clock. */
uint64_t mu_seed(void);

#endif
