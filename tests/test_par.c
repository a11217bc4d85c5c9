/*
 * test_par.c — par_for: every index exactly once, with the helper or
 * without it, from many callers at once and in a forked child; errors
 * come back from either half.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "phifs/par.h"

#define MAXN 4096

struct marks {
	atomic_int seen[MAXN];
	atomic_int other_thread;	/* calls not on the caller's thread */
	pthread_t caller;
	size_t fail_at;			/* an index that fails, or MAXN */
};

static int mark(void *arg, size_t lo, size_t hi)
{
	struct marks *m = arg;
	int rc = 0;

	if (!pthread_equal(pthread_self(), m->caller))
		atomic_fetch_add(&m->other_thread, 1);
	for (size_t i = lo; i < hi; i++) {
		atomic_fetch_add(&m->seen[i], 1);
		if (i == m->fail_at && !rc)
			rc = i < MAXN / 2 ? -EIO : -EBADMSG;
	}
	return rc;
}

static struct marks *marks_new(void)
{
	struct marks *m = calloc(1, sizeof(*m));

	cr_assert(m);
	m->caller = pthread_self();
	m->fail_at = MAXN;
	return m;
}

static bool each_once(struct marks *m, size_t n)
{
	for (size_t i = 0; i < MAXN; i++)
		if (atomic_load(&m->seen[i]) != (i < n ? 1 : 0))
			return false;
	return true;
}

Test(par, covers_every_index_once_for_any_length)
{
	static const size_t ns[] = { 0, 1, 2, 15, 16, 17, 64, 1000, MAXN };

	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		struct marks *m = marks_new();

		cr_assert_eq(par_for(mark, m, ns[k], 16), 0);
		cr_assert(each_once(m, ns[k]), "n = %zu", ns[k]);
		free(m);
	}
}

Test(par, a_long_loop_is_shared_with_another_thread)
{
	int shared = 0;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		cr_skip_test("one CPU: par_for never starts a helper");
	/* Nobody else uses the helper in this process: it must take half. */
	for (int k = 0; k < 10; k++) {
		struct marks *m = marks_new();

		cr_assert_eq(par_for(mark, m, 1000, 16), 0);
		shared += atomic_load(&m->other_thread);
		free(m);
	}
	cr_assert_eq(shared, 10);
}

Test(par, a_short_loop_stays_on_the_caller)
{
	struct marks *m = marks_new();

	cr_assert_eq(par_for(mark, m, 15, 16), 0);
	cr_assert_eq(atomic_load(&m->other_thread), 0);
	free(m);
}

Test(par, an_error_in_either_half_is_returned_and_both_halves_finish)
{
	struct marks *m = marks_new();

	m->fail_at = 10;	/* first half */
	cr_assert_eq(par_for(mark, m, MAXN, 16), -EIO);
	cr_assert(each_once(m, MAXN));
	free(m);

	m = marks_new();
	m->fail_at = MAXN - 1;	/* second half */
	cr_assert_eq(par_for(mark, m, MAXN, 16), -EBADMSG);
	cr_assert(each_once(m, MAXN));
	free(m);
}

static void *caller_thread(void *arg)
{
	bool *ok = arg;

	*ok = true;
	for (int k = 0; k < 200 && *ok; k++) {
		struct marks *m = marks_new();

		*ok = par_for(mark, m, 1 + (size_t)k * 17 % MAXN, 16) == 0 &&
		      each_once(m, 1 + (size_t)k * 17 % MAXN);
		free(m);
	}
	return NULL;
}

Test(par, many_callers_at_once_each_get_their_whole_loop)
{
	pthread_t t[6];
	bool ok[6];

	for (int i = 0; i < 6; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, caller_thread,
					    &ok[i]), 0);
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		cr_assert(ok[i], "caller %d", i);
	}
}

Test(par, a_forked_child_gets_a_helper_of_its_own)
{
	struct marks *m = marks_new();
	int status;
	pid_t pid;

	cr_assert_eq(par_for(mark, m, 1000, 16), 0);	/* helper started */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct marks *c = marks_new();

		_exit(par_for(mark, c, 1000, 16) == 0 && each_once(c, 1000) ?
		      0 : 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(m);
}
