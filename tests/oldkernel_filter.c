/*
 * oldkernel_filter.c — the seccomp filter of oldkernel_filter.h, in classic
 * BPF so that it needs no libseccomp.  Knows nothing of phifs: it only
 * knows where Linux 6.1's system call table ended.
 */
#include "oldkernel_filter.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>

#if defined(__x86_64__)
#define OLDKERNEL_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define OLDKERNEL_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef OLDKERNEL_ARCH
/* Installs a filter of n instructions. */
static int install(struct sock_filter *code, unsigned short n)
{
	struct sock_fprog prog = { .len = n, .filter = code };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -errno;
	return 0;
}

/* Calls of another ABI (a 32-bit program) are not ours to judge: their
 * numbers mean other calls.  Leaves the call's number loaded. */
#define ARCH_THEN_NR                                                         \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS,                                   \
		 offsetof(struct seccomp_data, arch)),                       \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, OLDKERNEL_ARCH, 1, 0),           \
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                        \
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#endif

int oldkernel_filter_install(void)
{
#ifdef OLDKERNEL_ARCH
	struct sock_filter code[] = {
		ARCH_THEN_NR,
		/* x32 calls on x86_64 carry bit 30: far above any bound
		 * here, and left alone by the second test. */
		BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, OLDKERNEL_LAST_NR, 0, 2),
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 1024, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};

	return install(code, sizeof(code) / sizeof(code[0]));
#else
	return -ENOTSUP;
#endif
}

int oldkernel_filter_fail(long nr, int err)
{
#ifdef OLDKERNEL_ARCH
	struct sock_filter code[] = {
		ARCH_THEN_NR,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K,
			 SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};

	return install(code, sizeof(code) / sizeof(code[0]));
#else
	(void)nr, (void)err;
	return -ENOTSUP;
#endif
}
