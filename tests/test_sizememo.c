/*
 * test_sizememo.c — the verified-size memo: it returns a size only for the
 * inode and ctime it was verified at, and never remembers a ctime that has
 * not settled.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "phifs/sizememo.h"

static struct stat file(ino_t ino, time_t sec, long nsec)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_dev = 42;
	st.st_ino = ino;
	st.st_ctim.tv_sec = sec;
	st.st_ctim.tv_nsec = nsec;
	return st;
}

static const struct timespec now = { 1000000, 0 };

Test(sizememo, gives_back_a_settled_size_for_the_same_inode_and_ctime)
{
	struct size_memo *m = size_memo_new(64);
	struct stat st = file(7, now.tv_sec - 10, 5);
	uint64_t size = 0;

	cr_assert(m);
	cr_assert_not(size_memo_get(m, &st, &size));
	size_memo_put(m, &st, 12345, &now);
	cr_assert(size_memo_get(m, &st, &size));
	cr_assert_eq(size, 12345);
	size_memo_free(m);
}

Test(sizememo, a_changed_ctime_or_another_inode_misses)
{
	struct size_memo *m = size_memo_new(64);
	struct stat st = file(7, now.tv_sec - 10, 5), other;
	uint64_t size = 0;

	size_memo_put(m, &st, 12345, &now);
	other = file(7, now.tv_sec - 10, 6);	/* a nanosecond later */
	cr_assert_not(size_memo_get(m, &other, &size));
	other = file(7, now.tv_sec - 9, 5);
	cr_assert_not(size_memo_get(m, &other, &size));
	other = file(7, now.tv_sec - 10, 5);
	other.st_dev = 43;
	cr_assert_not(size_memo_get(m, &other, &size));
	/* Inodes 7 and 7 + 64k may share a slot; neither gives the other's. */
	for (ino_t i = 8; i < 8 + 4096; i++) {
		other = file(i, now.tv_sec - 10, 5);
		cr_assert_not(size_memo_get(m, &other, &size));
	}
	size_memo_free(m);
}

Test(sizememo, a_ctime_within_the_settling_time_is_not_remembered)
{
	struct size_memo *m = size_memo_new(64);
	struct stat fresh = file(7, now.tv_sec - SIZE_MEMO_SETTLE + 1, 0);
	struct stat future = file(8, now.tv_sec + 100, 0);
	uint64_t size = 0;

	size_memo_put(m, &fresh, 1, &now);
	size_memo_put(m, &future, 1, &now);
	cr_assert_not(size_memo_get(m, &fresh, &size));
	cr_assert_not(size_memo_get(m, &future, &size));
	size_memo_free(m);
}

Test(sizememo, a_newer_entry_in_the_same_slot_replaces_the_older)
{
	struct size_memo *m = size_memo_new(1);	/* one slot for all */
	struct stat a = file(7, now.tv_sec - 10, 0);
	struct stat b = file(8, now.tv_sec - 10, 0);
	uint64_t size = 0;

	size_memo_put(m, &a, 1, &now);
	size_memo_put(m, &b, 2, &now);
	cr_assert_not(size_memo_get(m, &a, &size));
	cr_assert(size_memo_get(m, &b, &size));
	cr_assert_eq(size, 2);
	size_memo_free(m);
}

Test(sizememo, refuses_a_slot_count_that_is_not_a_power_of_two)
{
	cr_assert_null(size_memo_new(0));
	cr_assert_null(size_memo_new(100));
}
