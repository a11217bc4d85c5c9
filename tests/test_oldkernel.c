/*
 * test_oldkernel.c — the test helper that makes a process see Linux 6.1's
 * system calls only (tests/oldkernel_filter.c, and the oldkernel wrapper
 * that the mount tests run phifs through): newer calls answer ENOSYS,
 * older ones still work, and a program the wrapper runs inherits the
 * filter.  Criterion runs each test in a process of its own, so a filter
 * installed here ends with its test.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oldkernel_filter.h"

/* Numbers from the common table (the same on x86_64 and aarch64). */
#define NR_FCHMODAT2 452	/* Linux 6.6 */
#define NR_SETXATTRAT 463	/* Linux 6.13, as the three below */
#define NR_GETXATTRAT 464
#define NR_LISTXATTRAT 465
#define NR_REMOVEXATTRAT 466

Test(oldkernel, calls_after_linux_6_1_answer_enosys)
{
	static const long nrs[] = { NR_FCHMODAT2, NR_SETXATTRAT, NR_GETXATTRAT,
				    NR_LISTXATTRAT, NR_REMOVEXATTRAT,
				    OLDKERNEL_LAST_NR + 1, 1023 };
	char buf[64];

	cr_assert_eq(oldkernel_filter_install(), 0);
	for (size_t i = 0; i < sizeof(nrs) / sizeof(nrs[0]); i++) {
		/* Arguments that no call could act on: only ENOSYS is
		 * the filter's answer. */
		errno = 0;
		cr_assert_eq(syscall(nrs[i], -1, "", 0, buf, NULL, 0), -1,
			     "system call %ld", nrs[i]);
		cr_assert_eq(errno, ENOSYS, "system call %ld: %s", nrs[i],
			     strerror(errno));
	}
}

Test(oldkernel, calls_of_linux_6_1_still_work)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH };
	long fd;

	cr_assert_eq(oldkernel_filter_install(), 0);
	/* openat2 (Linux 5.6), which phifs needs. */
	fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof(how));
	cr_assert_geq(fd, 0, "openat2: %s", strerror(errno));
	close((int)fd);
	cr_assert_eq(getpid(), (pid_t)syscall(SYS_getpid));
}

Test(oldkernel, the_wrapper_hands_the_filter_to_the_program_it_runs)
{
	char wrapper[4096], out[] = "/tmp/phifs-oldkernel-XXXXXX", buf[8192];
	int fd = mkstemp(out), status;
	ssize_t n;
	pid_t pid;

	cr_assert_geq(fd, 0);
	snprintf(wrapper, sizeof(wrapper), "%s/oldkernel", PHIFS_BIN_DIR);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(fd, STDOUT_FILENO);
		execl(wrapper, wrapper, "cat", "/proc/self/status",
		      (char *)NULL);
		_exit(126);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "%s cat /proc/self/status: status %#x", wrapper, status);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(out);
	cr_assert_gt(n, 0);
	buf[n] = 0;
	/* Mode 2 is SECCOMP_MODE_FILTER. */
	cr_assert(strstr(buf, "\nSeccomp:\t2\n"), "cat ran without the filter:"
		  "\n%s", buf);
	cr_assert(strstr(buf, "\nNoNewPrivs:\t1\n"));
}
