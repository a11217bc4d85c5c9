/*
 * oldkernel_filter.h — makes this process, and every program it execs, see
 * the system calls of Linux 6.1 (Debian 12's kernel) only: a seccomp filter
 * answers ENOSYS to every call numbered after 6.1's last, as 6.1 itself
 * would.  For tests, so that the fallbacks for newer calls (getxattrat,
 * fchmodat2, ...) run on a newer kernel.  Knows nothing of phifs.
 */
#ifndef PHIFS_OLDKERNEL_FILTER_H
#define PHIFS_OLDKERNEL_FILTER_H

/*
 * The last system call number of Linux 6.1 (set_mempolicy_home_node).  Since
 * Linux 5.1 every architecture numbers new calls alike, so one bound serves
 * x86_64 and aarch64.
 */
#define OLDKERNEL_LAST_NR 450

/*
 * Installs the filter (after PR_SET_NO_NEW_PRIVS, which it needs unless the
 * caller has CAP_SYS_ADMIN, and which cannot be undone).  It is inherited by
 * threads made afterwards, children and exec'd programs, and cannot be
 * removed.  Returns 0, -ENOTSUP on an architecture it does not know, or
 * -errno from prctl.
 */
int oldkernel_filter_install(void);

/*
 * For fault tests: makes system call nr fail with err in this process
 * (and its threads and children) from now on; the same terms.
 */
int oldkernel_filter_fail(long nr, int err);

#endif
