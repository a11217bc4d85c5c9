/*
 * test_log.c — tests for src/log.c through its sink and clock hooks: the
 * line as written, the rate limit per kind, the "suppressed" count when the
 * window reopens or at close, and many threads logging at once.
 */
#include "phifs/log.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINES 256

static char lines[MAX_LINES][512];
static int prio[MAX_LINES];
static int nlines;
static uint64_t fake_now;

static void sink(int priority, const char *line)
{
	/* Called under log.c's lock: no lock of our own needed. */
	if (nlines < MAX_LINES) {
		prio[nlines] = priority;
		snprintf(lines[nlines], sizeof(lines[0]), "%s", line);
	}
	nlines++;
}

static uint64_t clock_ns(void)
{
	return fake_now;
}

static void setup(void)
{
	log_set_sink(sink);
	log_set_clock(clock_ns);
	fake_now = 5;
	nlines = 0;
	log_open(true);
}

static void teardown(void)
{
	log_close();
}

TestSuite(log, .init = setup, .fini = teardown);

Test(log, a_message_is_one_line_as_formatted)
{
	log_msg(LOG_KIND_LIFECYCLE, LOG_INFO, "mounted %s on %s, pid %d",
		"/b", "/m", 42);
	cr_assert_eq(nlines, 1);
	cr_assert_str_eq(lines[0], "mounted /b on /m, pid 42");
	cr_assert_eq(prio[0], LOG_INFO);
}

Test(log, line_breaks_in_the_text_cannot_forge_a_second_line)
{
	log_msg(LOG_KIND_IO, LOG_ERR, "read %s failed", "a\nphifs: fake\r");
	cr_assert_eq(nlines, 1);
	cr_assert_str_eq(lines[0], "read a phifs: fake  failed");
}

Test(log, a_long_message_is_cut)
{
	char big[2000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	log_msg(LOG_KIND_IO, LOG_ERR, "%s", big);
	cr_assert_eq(nlines, 1);
	cr_assert_eq(strlen(lines[0]), 480);
}

Test(log, a_kind_gets_ten_lines_a_window_then_a_count_when_it_reopens)
{
	for (int i = 0; i < 25; i++)
		log_msg(LOG_KIND_IO, i == 20 ? LOG_ERR : LOG_WARNING,
			"io %d", i);
	cr_assert_eq(nlines, LOG_BURST);
	cr_assert_str_eq(lines[9], "io 9");
	/* Still inside the window: still counted, not written. */
	fake_now += LOG_WINDOW_NS - 1;
	log_msg(LOG_KIND_IO, LOG_WARNING, "io late");
	cr_assert_eq(nlines, LOG_BURST);
	fake_now += 1;
	log_msg(LOG_KIND_IO, LOG_WARNING, "io again");
	cr_assert_eq(nlines, LOG_BURST + 2);
	cr_assert_str_eq(lines[10], "16 io messages suppressed");
	/* The count goes at the most urgent priority it hides. */
	cr_assert_eq(prio[10], LOG_ERR);
	cr_assert_str_eq(lines[11], "io again");
}

Test(log, kinds_are_limited_apart)
{
	for (int i = 0; i < 30; i++)
		log_msg(LOG_KIND_SIZE, LOG_WARNING, "size %d", i);
	log_msg(LOG_KIND_KEY, LOG_WARNING, "a key could not be locked");
	cr_assert_eq(nlines, LOG_BURST + 1);
	cr_assert_str_eq(lines[LOG_BURST], "a key could not be locked");
}

Test(log, close_reports_what_is_still_suppressed)
{
	for (int i = 0; i < 12; i++)
		log_msg(LOG_KIND_AUTH, LOG_NOTICE, "denied %d", i);
	cr_assert_eq(nlines, LOG_BURST);
	log_close();
	cr_assert_eq(nlines, LOG_BURST + 1);
	cr_assert_str_eq(lines[LOG_BURST], "2 auth messages suppressed");
	/* Closed: nothing more, and a second close is harmless. */
	log_msg(LOG_KIND_AUTH, LOG_NOTICE, "after");
	cr_assert_eq(nlines, LOG_BURST + 1);
}

Test(log, nothing_is_suppressed_below_the_limit)
{
	for (int w = 0; w < 3; w++) {
		for (int i = 0; i < LOG_BURST; i++)
			log_msg(LOG_KIND_IO, LOG_INFO, "w%d %d", w, i);
		fake_now += LOG_WINDOW_NS;
	}
	cr_assert_eq(nlines, 3 * LOG_BURST);
	for (int i = 0; i < nlines; i++)
		cr_assert_null(strstr(lines[i], "suppressed"), "%s", lines[i]);
}

static void *flood(void *arg)
{
	for (int i = 0; i < 1000; i++)
		log_msg((enum log_kind)((long)arg % LOG_KIND_NR), LOG_INFO,
			"thread %ld line %d", (long)arg, i);
	return NULL;
}

Test(log, many_threads_share_the_limit)
{
	pthread_t t[8];

	for (long i = 0; i < 8; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, flood, (void *)i), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	/* The clock stood still: one window, ten lines per kind. */
	cr_assert_eq(nlines, LOG_KIND_NR * LOG_BURST);
	log_close();
	/* Every kind overflowed: one count line each. */
	cr_assert_eq(nlines, LOG_KIND_NR * (LOG_BURST + 1));
}
