/*
 * log.c — the daemon's log lines: syslog and stderr, a fixed window per
 * message kind, one mutex.  Knows nothing of FUSE, volumes or keys: it
 * formats what it is given, and callers give no secrets.
 */
#include "phifs/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LINE_MAX_LEN 480

static const char *const kind_name[LOG_KIND_NR] = {
	[LOG_KIND_LIFECYCLE] = "lifecycle",
	[LOG_KIND_AUTH] = "auth",
	[LOG_KIND_IO] = "io",
	[LOG_KIND_SIZE] = "size",
	[LOG_KIND_KEY] = "key",
	[LOG_KIND_INTEGRITY] = "integrity",
};

struct window {
	bool started;		/* start holds a time */
	uint64_t start;		/* ns */
	unsigned int lines;	/* written in this window */
	unsigned int dropped;	/* suppressed in this window */
	int worst;		/* the most urgent priority dropped */
};

/*
 * lock protects everything below, and is held while a line is written so
 * that a "suppressed" line comes right before the line that follows it.
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool opened, to_stderr;
static struct window win[LOG_KIND_NR];
static void (*sink)(int, const char *);
static uint64_t (*clock_fn)(void);

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Called with lock held. */
static void emit(int priority, const char *line)
{
	if (sink) {
		sink(priority, line);
		return;
	}
	syslog(priority, "%s", line);
	if (to_stderr)
		fprintf(stderr, "phifs: %s\n", line);
}

/* Called with lock held: the count of what a window dropped, if any. */
static void report_dropped(enum log_kind kind)
{
	struct window *w = &win[kind];
	char line[64];

	if (!w->dropped)
		return;
	snprintf(line, sizeof(line), "%u %s messages suppressed", w->dropped,
		 kind_name[kind]);
	emit(w->worst, line);
	w->dropped = 0;
}

void log_open(bool stderr_too)
{
	pthread_mutex_lock(&lock);
	if (!sink)
		openlog("phifs", LOG_PID, LOG_DAEMON);
	to_stderr = stderr_too;
	memset(win, 0, sizeof(win));
	opened = true;
	pthread_mutex_unlock(&lock);
}

void log_detached(void)
{
	pthread_mutex_lock(&lock);
	to_stderr = false;
	pthread_mutex_unlock(&lock);
}

void log_msg(enum log_kind kind, int priority, const char *fmt, ...)
{
	char line[LINE_MAX_LEN + 1];
	struct window *w;
	va_list ap;
	uint64_t now;

	if ((unsigned int)kind >= LOG_KIND_NR)
		kind = LOG_KIND_LIFECYCLE;	/* still say it */
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One line each: a name with a newline must not forge a second. */
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';

	pthread_mutex_lock(&lock);
	if (!opened)
		goto out;
	now = (clock_fn ? clock_fn : mono_ns)();
	w = &win[kind];
	if (!w->started || now - w->start >= LOG_WINDOW_NS) {
		report_dropped(kind);
		w->started = true;
		w->start = now;
		w->lines = 0;
	}
	if (w->lines >= LOG_BURST) {
		if (!w->dropped++ || priority < w->worst)
			w->worst = priority;
		goto out;
	}
	w->lines++;
	emit(priority, line);
out:
	pthread_mutex_unlock(&lock);
}

void log_close(void)
{
	pthread_mutex_lock(&lock);
	if (opened) {
		for (int k = 0; k < LOG_KIND_NR; k++)
			report_dropped(k);
		if (!sink)
			closelog();
		opened = false;
	}
	pthread_mutex_unlock(&lock);
}

void log_set_sink(void (*fn)(int priority, const char *line))
{
	pthread_mutex_lock(&lock);
	sink = fn;
	pthread_mutex_unlock(&lock);
}

void log_set_clock(uint64_t (*now_ns)(void))
{
	pthread_mutex_lock(&lock);
	clock_fn = now_ns;
	pthread_mutex_unlock(&lock);
}
