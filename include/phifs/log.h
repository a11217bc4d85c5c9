/*
 * log.h — what the daemon tells its operator: one line per event to syslog
 * (ident "phifs", with the pid, facility daemon; journald takes it from
 * there) and, until the daemon detaches, to stderr too.  Each kind of
 * message is rate-limited on its own, so that a flood of I/O errors cannot
 * drown a key warning.  Knows nothing of what the events mean; callers
 * never pass key material, and nothing here could tell it from text.
 */
#ifndef PHIFS_LOG_H
#define PHIFS_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>	/* the priorities: LOG_ERR, LOG_WARNING, LOG_INFO */

enum log_kind {
	LOG_KIND_LIFECYCLE,	/* mount, unmount, signals */
	LOG_KIND_AUTH,		/* keys refused, access denied */
	LOG_KIND_IO,		/* backing-store errors */
	LOG_KIND_SIZE,		/* sizes that did not verify */
	LOG_KIND_KEY,		/* key handling: memory not locked */
	LOG_KIND_INTEGRITY,	/* data that failed authentication */
	LOG_KIND_NR
};

/* Per kind: at most LOG_BURST lines in a window of LOG_WINDOW_NS. */
#define LOG_BURST	10
#define LOG_WINDOW_NS	(10ULL * 1000000000ULL)

/*
 * Starts logging: syslog always, stderr too if to_stderr (the foreground,
 * or a daemon that has not detached yet).  Call once, before log_msg.
 */
void log_open(bool to_stderr);

/* The daemon left its terminal: stop writing to stderr. */
void log_detached(void);

/*
 * Logs one line at priority (LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO)
 * under kind's rate limit.  Line breaks and other control characters in
 * the text become spaces, and it is cut at 480 bytes.  Past LOG_BURST lines
 * in one window, lines of that kind are counted and dropped; the next line
 * after the window is preceded by "N KIND messages suppressed".  Before
 * log_open, or after log_close, does nothing.  Thread-safe.
 */
void log_msg(enum log_kind kind, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Reports what is still suppressed and closes syslog; log_msg then does
 * nothing until the next log_open.
 */
void log_close(void);

/*
 * For tests: lines go to sink instead of syslog and stderr (NULL: back to
 * them), and time comes from now_ns (monotonic nanoseconds; NULL: the
 * clock).  Call before log_open.  sink runs with the log's lock held, so
 * lines reach it one at a time, in order.
 */
void log_set_sink(void (*sink)(int priority, const char *line));
void log_set_clock(uint64_t (*now_ns)(void));

#endif
