/*
 * ctl.h — the daemon's control plane: one thread running a libuv loop that
 * owns the stop and reload signals, the control socket and its commands
 * (docs/CONTROL.md).  The FUSE workers never wait on it.  It asks the
 * daemon for what it needs through struct ctl_ops, which the daemon fills
 * (main.c): it knows nothing of FUSE, and nothing below it knows of it.
 *
 * The pure parts, for tests and phifsctl: ctl_msg_* (requests, answers,
 * the status as JSON, a table or Prometheus text) and ctl_request (a
 * client).  libuv and jansson are included by this module's .c files only.
 */
#ifndef PHIFS_CTL_H
#define PHIFS_CTL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "phifs/vfs.h"

#define CTL_PROTO_VERSION 1
#define CTL_SOCKET_NAME "control.sock"	/* in BACKING/.phifs */
#define CTL_MAX_LINE 4096		/* a request's bytes, its newline too */
#define CTL_MAX_CLIENTS 128		/* at once; more are closed at once */
#define CTL_IDLE_MS 10000		/* a silent connection is closed */
#define CTL_MAX_QUEUED (1u << 20)	/* answers not read yet: then closed */
#define CTL_STOP_REPEAT_MS 100		/* ops->stop again until ctl_free */
#define CTL_MAX_VERSIONS 32

enum ctl_cmd { CTL_STATUS, CTL_FLUSH, CTL_RELOAD, CTL_UNMOUNT,
	       CTL_KEY_ROTATE, CTL_AUDIT_ANCHOR };

/* A checkpoint line of the integrity log, as audit-anchor answers it. */
#define CTL_MAX_ANCHOR 4096

/* A request, parsed. */
struct ctl_req {
	enum ctl_cmd cmd;
	bool keep_old;		/* key-rotate: "keep_old" */
};

/*
 * The last key rotation since the mount (docs/CONTROL.md, `key-rotate`),
 * in the status as "rotation" unless state is empty (none yet).
 */
struct ctl_rotation {
	char state[16];			/* "running", "done", "failed" */
	unsigned id;			/* 1 for the first since the mount */
	char phase[16];			/* "rewrap", "retire" */
	bool keep_old, resumed;
	uint32_t target;		/* the version files move to */
	uint64_t total, done, skipped, failed;
	double seconds;
	char first_failed[PATH_MAX];	/* from the backing root */
	char first_error[128];
	uint32_t retired[8];
	unsigned nretired;		/* may exceed 8 */
	char error[PATH_MAX + 256];	/* why it failed */
};

/* The integrity log's figures (audit_writer_stats), when on is set. */
struct ctl_audit {
	bool on;
	char dir[PATH_MAX];
	uint64_t queued, written, synced, lag_ms;
	uint64_t checkpoint_seq;	/* 0: none yet */
	int64_t checkpoint_ts;
	uint64_t failures, refused, dropped;
	bool failing;
};

/* What `status` answers; the daemon fills it (ctl_ops.status). */
struct ctl_status {
	long pid;
	uint64_t uptime_s;
	char volume[2 * 16 + 1];	/* the volume ID, hex */
	char backing[PATH_MAX];
	char mountpoint[PATH_MAX];
	unsigned nversions;
	struct {
		uint32_t version;
		const char *state;	/* "active", "decrypt-only", ... */
	} versions[CTL_MAX_VERSIONS];
	struct vfs_stats vfs;
	const char *loop;		/* "poll" or "libfuse" */
	unsigned loop_threads, loop_max_threads;
	uint64_t loop_requests;		/* 0 where the loop does not count */
	struct ctl_rotation rotation;
	struct ctl_audit audit;
};

/*
 * The daemon's side, each called on the control thread.  stop begins the
 * clean stop of SIGTERM; it is called again every CTL_STOP_REPEAT_MS until
 * ctl_free, so it must be idempotent.  reload re-reads the reloadable
 * settings and writes the names of those that changed, comma-separated,
 * into changed (empty: none), and sets *policy when it put a re-read
 * access policy in force; 0 or -errno with why in changed (then nothing
 * was put in force).
 */
struct ctl_ops {
	void (*status)(void *arg, struct ctl_status *st);
	/* Whether FUSE requests are still being served (for the watchdog). */
	bool (*serving)(void *arg);
	int (*flush)(void *arg);
	int (*reload)(void *arg, char *changed, size_t len, bool *policy);
	void (*stop)(void *arg);
	/*
	 * Starts a master key rotation on a thread of the daemon's and
	 * returns at once: 0 and its id, or -errno with why in `why`.  NULL:
	 * the command is refused.
	 */
	int (*key_rotate)(void *arg, bool keep_old, unsigned *id, char *why,
			  size_t len);
	/*
	 * Signs a checkpoint of the integrity log now and copies its line
	 * into buf (CTL_MAX_ANCHOR): 0, -ENOENT when no log is kept, or
	 * -errno.  NULL: the command is refused.
	 */
	int (*audit_anchor)(void *arg, char *buf, size_t cap);
};

struct ctl;

/*
 * Blocks SIGTERM, SIGINT, SIGHUP and SIGUSR1 in the calling thread, and so
 * in every thread it starts after; call first, before any thread starts.
 * Until ctl_new those signals wait, pending, for the control thread: none
 * sent during start-up is lost.
 */
void ctl_block_signals(void);

/*
 * Binds the control socket at path (mode 0600; a socket there that nothing
 * answers on is replaced, anything else is refused without following it),
 * and starts the control thread, which takes the signals.  ops and arg
 * must outlive the ctl.  0 or -errno with one line in err.
 */
int ctl_new(const char *path, const struct ctl_ops *ops, void *arg,
	    struct ctl **out, char *err, size_t err_len);
/* Stops the thread, closes every connection, removes the socket. */
void ctl_free(struct ctl *c);

/*
 * How other threads (the FUSE workers) hand the control thread work: fn(arg)
 * runs on the control thread, soon, in the order posted; if ctl_free comes
 * first, on its caller's thread, in ctl_free.  Never waits on the control
 * loop (a short mutex and uv_async_send).  0 or -ENOMEM.  Thread-safe.
 */
int ctl_post(struct ctl *c, void (*fn)(void *arg), void *arg);

/*
 * systemd's notification protocol (sd_notify(3)), when the service manager
 * set NOTIFY_SOCKET; without it these do nothing.  ctl_new reads the
 * environment, and with WATCHDOG_USEC (for this pid) the control loop
 * sends WATCHDOG=1 every half period while ops->serving says yes.
 * ctl_notify sends state ("READY=1\nSTATUS=...") as one datagram; thread-
 * safe.  0 or -errno.
 */
int ctl_notify(struct ctl *c, const char *state);

/*
 * The address in a NOTIFY_SOCKET value: a path, or "@name" for the
 * abstract namespace.  0 and *sa, *len; -EINVAL for anything else.  Pure.
 */
struct sockaddr_un;
int ctl_notify_addr(const char *env, struct sockaddr_un *sa,
		    unsigned *len);

/* --- the messages (pure; ctl_msg.c) --- */

/*
 * Parses one request line (without its newline): 0 and *cmd, or -EINVAL
 * with a one-line reason in err ("not JSON", "unknown command 'x'", ...).
 */
int ctl_msg_parse(const char *line, size_t len, enum ctl_cmd *cmd,
		  char *err, size_t err_len);
/* The same, with the request's other fields. */
int ctl_msg_parse_req(const char *line, size_t len, struct ctl_req *req,
		      char *err, size_t err_len);
/* Answers, each one malloc'd line ending in "\n"; NULL on ENOMEM. */
char *ctl_msg_error(const char *why);
char *ctl_msg_ok(void);
char *ctl_msg_reload(const char *changed, bool policy);
char *ctl_msg_status(const struct ctl_status *st);
/* key-rotate's answer: {"ok": true, "rotation": id}. */
char *ctl_msg_rotate_started(unsigned id);
/* audit-anchor's answer: {"ok": true, "anchor": line}. */
char *ctl_msg_anchor(const char *line);
/*
 * The anchor line of an audit-anchor answer into buf: 0, or -EINVAL with
 * why (the daemon's error, or an answer not understood).
 */
int ctl_msg_anchor_of(const char *answer, char *buf, size_t cap, char *why,
		      size_t why_len);
/*
 * The "rotation" of a status answer into *out: 0, -ENOENT when it has
 * none, -EPROTO when answer is not a status answer, -EINVAL when it is an
 * error answer (why then says so in one line).
 */
int ctl_msg_rotation(const char *answer, struct ctl_rotation *out,
		     char *why, size_t why_len);

enum ctl_format { CTL_FORMAT_TABLE, CTL_FORMAT_PROMETHEUS };
/*
 * Writes a status answer as a table or in Prometheus' text format.  0, or
 * -EPROTO when answer is not a status answer, -EINVAL when it is an error
 * answer; why then says so in one line.
 */
int ctl_msg_format(const char *answer, enum ctl_format fmt, FILE *out,
		   char *why, size_t why_len);

/* --- a client (ctl_client.c) --- */

/*
 * Sends request (one line, without newline) to the socket at path and
 * reads one answer line into *answer (malloc'd, without its newline),
 * waiting at most timeout_ms in all.  0, or -errno: -ENOENT and
 * -ECONNREFUSED when no daemon listens, -ETIMEDOUT.
 */
int ctl_request(const char *path, const char *request, int timeout_ms,
		char **answer);

#endif
