/*
 * test_secmem.c — tests for src/secmem.c: zeroed buffers, reuse of pooled
 * chunks, wipe on free, large buffers, dump exclusion as the kernel reports
 * it in /proc/self/smaps, and many threads allocating at once.
 */
#include "phifs/secmem.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static int all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

Test(secmem, returns_zeroed_16_aligned_buffers_of_every_size)
{
	static const size_t sizes[] = { 1, 15, 32, 40, 48, 49, 100, 1000,
					4000, 4080, 4081, 5000, 65536 };
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *p = secmem_alloc(sizes[i]);

		cr_assert(p, "size %zu", sizes[i]);
		cr_assert_eq((uintptr_t)p % 16, 0, "size %zu", sizes[i]);
		cr_assert(all_zero(p, sizes[i]), "size %zu", sizes[i]);
		memset(p, 0xff, sizes[i]);
		secmem_free(p);
	}
}

Test(secmem, refuses_zero_and_more_than_64_kib)
{
	errno = 0;
	cr_assert_null(secmem_alloc(65537));
	cr_assert_eq(errno, ENOMEM);
	cr_assert_null(secmem_alloc(SIZE_MAX));
	cr_assert_null(secmem_alloc(0));
}

Test(secmem, free_of_null_does_nothing)
{
	secmem_free(NULL);
	secmem_wipe(NULL, 0);
}

#define MANY 3000

Test(secmem, many_small_buffers_are_distinct_and_reused_after_free)
{
	static uint8_t *p[MANY], *q[MANY];
	size_t i, j;

	for (i = 0; i < MANY; i++) {
		p[i] = secmem_alloc(40);
		cr_assert(p[i]);
		memset(p[i], (int)(i & 0xff), 40);
	}
	/* No overlap: every buffer still holds its own pattern. */
	for (i = 0; i < MANY; i++)
		for (j = 0; j < 40; j++)
			cr_assert_eq(p[i][j], (uint8_t)(i & 0xff), "buf %zu",
				     i);
	for (i = 0; i < MANY; i++)
		secmem_free(p[i]);
	/* The pool hands the same chunks out again, zeroed. */
	for (i = 0; i < MANY; i++) {
		q[i] = secmem_alloc(40);
		cr_assert(q[i]);
		cr_assert(all_zero(q[i], 40));
	}
	for (i = 0; i < MANY; i++) {
		int found = 0;

		for (j = 0; j < MANY && !found; j++)
			found = q[i] == p[j];
		cr_assert(found, "buffer %zu is not a reused chunk", i);
	}
	for (i = 0; i < MANY; i++)
		secmem_free(q[i]);
}

Test(secmem, free_wipes_and_a_realloc_in_the_same_class_is_zero)
{
	uint8_t *p = secmem_alloc(40), *q;

	cr_assert(p);
	memset(p, 0xa5, 40);
	secmem_free(p);
	/*
	 * The slab stays mapped, so the freed chunk can be inspected: past
	 * the free-list pointer, not one byte of the secret is left.
	 */
	cr_assert(all_zero(p + sizeof(void *), 40 - sizeof(void *)));
	q = secmem_alloc(33);
	cr_assert_eq(q, p, "the last freed chunk of a class comes back first");
	cr_assert(all_zero(q, 40));
	secmem_free(q);
}

Test(secmem, a_double_free_aborts_instead_of_corrupting_the_pool,
     .signal = SIGABRT)
{
	uint8_t *p = secmem_alloc(40);

	cr_assert(p);
	secmem_free(p);
	secmem_free(p);
}

Test(secmem, freeing_a_foreign_pointer_aborts, .signal = SIGABRT)
{
	static uint8_t not_ours[64];

	secmem_free(not_ours + 32);
}

Test(secmem, large_buffers_are_usable_end_to_end)
{
	size_t sizes[] = { 4096, 10000, 65536 }, i;

	for (i = 0; i < 3; i++) {
		uint8_t *p = secmem_alloc(sizes[i]);

		cr_assert(p);
		memset(p, 0x3c, sizes[i]);
		cr_assert_eq(p[sizes[i] - 1], 0x3c);
		secmem_free(p);
	}
}

Test(secmem, wipe_zeroes_the_given_bytes)
{
	uint8_t b[64];

	memset(b, 0x77, sizeof(b));
	secmem_wipe(b + 8, 48);
	cr_assert_eq(b[7], 0x77);
	cr_assert(all_zero(b + 8, 48));
	cr_assert_eq(b[56], 0x77);
}

/*
 * The VmFlags line of the /proc/self/smaps entry holding addr, or "" if
 * the kernel does not report flags.
 */
static void vmflags_of(const void *addr, char *out, size_t max)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int inside = 0;

	out[0] = '\0';
	cr_assert(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, max, "%s", line + 8);
			break;
		}
	}
	fclose(f);
}

/*
 * ASan intercepts mlock and makes it a successful no-op, so under ASan the
 * pages are never locked although secmem sees no failure.
 */
#ifdef __SANITIZE_ADDRESS__
#define EXPECT_LOCKED() 0
#else
#define EXPECT_LOCKED() (secmem_unlocked_count() == 0)
#endif

static int has_flag(const char *flags, const char *f)
{
	char pat[8];

	snprintf(pat, sizeof(pat), " %s", f);
	return strstr(flags, pat) != NULL;
}

Test(secmem, pages_are_excluded_from_core_dumps_and_locked_if_allowed)
{
	uint8_t *small = secmem_alloc(32), *large = secmem_alloc(20000);
	char flags[512];

	cr_assert(small && large);
	vmflags_of(small, flags, sizeof(flags));
	if (flags[0] == '\0')
		cr_skip_test("no VmFlags in /proc/self/smaps");
	cr_assert(has_flag(flags, "dd"), "small buffer flags:%s", flags);
	if (EXPECT_LOCKED())
		cr_assert(has_flag(flags, "lo"), "small buffer flags:%s",
			  flags);
	vmflags_of(large, flags, sizeof(flags));
	cr_assert(has_flag(flags, "dd"), "large buffer flags:%s", flags);
	if (EXPECT_LOCKED())
		cr_assert(has_flag(flags, "lo"), "large buffer flags:%s",
			  flags);
	secmem_free(small);
	secmem_free(large);
}

/*
 * Drops CAP_IPC_LOCK from the effective set, so that RLIMIT_MEMLOCK binds
 * even when the tests run as root (as in CI containers).  Raw capget/capset:
 * libcap is not a dependency.
 */
static void drop_ipc_lock(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) != 0)
		return;
	d[CAP_IPC_LOCK / 32].effective &= ~(1U << (CAP_IPC_LOCK % 32));
	(void)syscall(SYS_capset, &h, d);
}

Test(secmem, running_out_of_lockable_memory_still_allocates_and_counts)
{
	struct rlimit rl = { 0, 0 };
	uint8_t *p;
	char flags[512];

	/* Each test runs in its own process, so the limit stays here. */
	drop_ipc_lock();
	cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
	cr_assert_eq(secmem_unlocked_count(), 0);
	p = secmem_alloc(20000);
	if (p != NULL && secmem_unlocked_count() == 0)
		cr_skip_test("mlock is not limited here (ASan, CAP_IPC_LOCK)");
	cr_assert(p);
	cr_assert_eq(secmem_unlocked_count(), 1);
	vmflags_of(p, flags, sizeof(flags));
	if (flags[0] != '\0')
		cr_assert(has_flag(flags, "dd"), "flags:%s", flags);
	memset(p, 1, 20000);
	secmem_free(p);
	p = secmem_alloc(64);
	cr_assert(p);
	cr_assert_eq(secmem_unlocked_count(), 2);
	secmem_free(p);
}

static int told;

static void count_told(void)
{
	told++;
}

Test(secmem, a_lock_failure_is_told_once_even_to_a_late_hook)
{
	struct rlimit rl = { 0, 0 };
	uint8_t *p, *q;

	drop_ipc_lock();
	cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
	secmem_on_lock_failure(count_told);
	p = secmem_alloc(20000);
	if (p != NULL && secmem_unlocked_count() == 0)
		cr_skip_test("mlock is not limited here (ASan, CAP_IPC_LOCK)");
	cr_assert(p);
	cr_assert_eq(told, 1);
	q = secmem_alloc(30000);
	cr_assert(q);
	secmem_free(q);
	q = secmem_alloc(64);
	cr_assert(q);
	cr_assert_eq(secmem_unlocked_count(), 3);
	cr_assert_eq(told, 1);
	/* A hook set after the fact hears of it at once (here: not again). */
	secmem_on_lock_failure(count_told);
	cr_assert_eq(told, 1);
	secmem_free(q);
	secmem_free(p);
}

Test(secmem, a_hook_set_after_a_failure_is_told_at_once)
{
	struct rlimit rl = { 0, 0 };
	uint8_t *p;

	drop_ipc_lock();
	cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
	p = secmem_alloc(20000);
	if (p != NULL && secmem_unlocked_count() == 0)
		cr_skip_test("mlock is not limited here (ASan, CAP_IPC_LOCK)");
	cr_assert(p);
	cr_assert_eq(told, 0);
	secmem_on_lock_failure(count_told);
	cr_assert_eq(told, 1);
	secmem_free(p);
}

Test(secmem, harden_process_disables_dumps_and_core_files)
{
	struct rlimit rl;

	cr_assert_eq(secmem_harden_process(), 0);
	cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
	cr_assert_eq(getrlimit(RLIMIT_CORE, &rl), 0);
	cr_assert_eq(rl.rlim_cur, 0);
	cr_assert_eq(rl.rlim_max, 0);
}

#define THREADS 8
#define ROUNDS 20000
#define LIVE 64

static void *churn(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
	uint8_t tag = (uint8_t)(uintptr_t)arg + 1;
	uint8_t *live[LIVE] = { 0 };
	size_t len[LIVE] = { 0 };
	int i, bad = 0;

	for (i = 0; i < ROUNDS && !bad; i++) {
		int s = (int)(tu_rand(&seed) % LIVE);
		size_t j;

		if (live[s] != NULL) {
			for (j = 0; j < len[s]; j++)
				bad |= live[s][j] != tag;
			secmem_free(live[s]);
			live[s] = NULL;
			continue;
		}
		len[s] = 1 + tu_rand(&seed) % (i % 50 == 0 ? 30000 : 3000);
		live[s] = secmem_alloc(len[s]);
		if (live[s] == NULL || !all_zero(live[s], len[s]))
			bad = 1;
		else
			memset(live[s], tag, len[s]);
	}
	for (i = 0; i < LIVE; i++)
		secmem_free(live[i]);
	return (void *)(uintptr_t)bad;
}

Test(secmem, threads_allocating_and_freeing_at_once_never_share_a_buffer)
{
	pthread_t t[THREADS];
	uintptr_t i;

	for (i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, churn, (void *)i), 0);
	for (i = 0; i < THREADS; i++) {
		void *bad;

		pthread_join(t[i], &bad);
		cr_assert_null(bad, "thread %lu saw a foreign or dirty buffer",
			       (unsigned long)i);
	}
}
