/*
 * phifsctl_key.c — the `key` commands of the admin CLI: list, add-slot,
 * remove-slot, rotate, rekey, retire.  argv in, one library call (keys,
 * volkeys, volrekey)
 * per step, a table or JSON out, one line on stderr when something fails.
 * Every command but list takes the volume lock, so no daemon mounts the
 * volume half-way through; rotate on a mounted volume asks its daemon
 * (key-rotate on the control socket) and watches its status.  Holds no logic a test would want to reach.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "phifs/ctl.h"
#include "phifs/keys.h"
#include "phifs/volkeys.h"
#include "phifs/volrekey.h"
#include "phifs/volume.h"
#include "phifsctl.h"

enum {
	O_KEY = 1 << 0, O_NEWKEY = 1 << 1, O_JSON = 1 << 2, O_FORCE = 1 << 3,
	O_KEEPOLD = 1 << 4, O_TIMEOUT = 1 << 5,
};

struct key_args {
	const char *key, *new_key;
	bool json, force, keep_old;
	char **pos;		/* BACKING, then the command's arguments */
	int npos;
};

/* One option the command does not take: refused as usage. */
static int bad_option(const char *cmd, char **argv)
{
	return usage("key %s: unknown option '%s'", cmd, argv[optind - 1]);
}

int set_timeout(const char *cmd, const char *s)
{
	char *end;
	long sec = strtol(s, &end, 10);

	if (*end || sec <= 0 || sec > 3600)
		return usage("%s: bad value for --key-timeout: '%s'", cmd, s);
	keys_source_set_timeout((int)sec * 1000);
	return 0;
}

/* "--key SRC [options] BACKING [ARG]" with the options in `allowed`; npos
 * -1 for BACKING and any number of paths. */
static int key_args(int argc, char **argv, unsigned allowed, int npos,
		    struct key_args *a)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, O_KEY },
		{ "new-key", required_argument, NULL, O_NEWKEY },
		{ "json", no_argument, NULL, O_JSON },
		{ "force", no_argument, NULL, O_FORCE },
		{ "keep-old", no_argument, NULL, O_KEEPOLD },
		{ "key-timeout", required_argument, NULL, O_TIMEOUT },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argv[0];
	int c, rc;

	memset(a, 0, sizeof(*a));
	optind = 1;
	opterr = 0;	/* one line, ours, rather than getopt's and ours */
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (c == ':')
			return usage("key %s: %s needs a value", cmd,
				     argv[optind - 1]);
		if (c == '?' || !((unsigned)c & allowed))
			return bad_option(cmd, argv);
		if (c == O_KEY)
			a->key = optarg;
		else if (c == O_NEWKEY)
			a->new_key = optarg;
		else if (c == O_JSON)
			a->json = true;
		else if (c == O_FORCE)
			a->force = true;
		else if (c == O_KEEPOLD)
			a->keep_old = true;
		else if ((rc = set_timeout(cmd, optarg)))
			return rc;
	}
	if (!a->key)
		return usage("key %s: --key SRC is required", cmd);
	if ((allowed & O_NEWKEY) && !a->new_key)
		return usage("key %s: --new-key SRC is required", cmd);
	if (npos < 0 ? argc - optind < 1 : argc - optind != npos)
		return usage("key %s: expected BACKING%s", cmd, npos == 1 ? "" :
			     npos < 0 ? " [PATH...]" :
			     !strcmp(cmd, "retire") ? " VERSION" : " SLOT");
	a->pos = argv + optind;
	a->npos = argc - optind;
	return 0;
}

/* A slot or version number from argv. */
static int number(const char *cmd, const char *what, const char *s,
		  uint32_t *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (!*s || *end || errno || n > UINT32_MAX || *s == '-')
		return usage("key %s: bad %s '%s'", cmd, what, s);
	*out = (uint32_t)n;
	return 0;
}

/*
 * Opens the volume; with `lock`, as the daemon does, so that neither runs
 * while the other changes keys.
 */
static int open_volume(const struct key_args *a, bool lock, const char *cmd,
		       struct volume **vol)
{
	char err[512];
	int rc = volume_open(a->pos[0], a->key, lock, vol, err, sizeof(err));

	if (rc == -EBUSY)
		return fail("%s; key %s works on an unmounted volume only "
			    "(rotate works on a mounted one too), unmount it "
			    "first", err, cmd);
	if (rc)
		return fail("%s", err);
	return 0;
}

static const char *kind_name(enum keys_secret_kind k)
{
	return k == KEYS_SECRET_RAW ? "file" : "passphrase";
}

static void list_json(const struct volkeys_count *c,
		      const struct keys_slot_info *s, size_t ns)
{
	printf("{\"versions\": [");
	for (size_t i = 0; i < c->n; i++)
		printf("%s{\"version\": %" PRIu32 ", \"state\": \"%s\", "
		       "\"files\": %" PRIu64 "}", i ? ", " : "",
		       c->versions[i].version,
		       keys_state_name(c->versions[i].state), c->files[i]);
	printf("], \"slots\": [");
	for (size_t i = 0; i < ns; i++)
		printf("%s{\"slot\": %" PRIu32 ", \"kind\": \"%s\"}",
		       i ? ", " : "", s[i].id, kind_name(s[i].kind));
	printf("]");
	/* Only then: the SPEC's shape is the usual answer. */
	if (c->unreadable)
		printf(", \"unreadable\": %" PRIu64, c->unreadable);
	printf("}\n");
}

static void list_table(const struct volkeys_count *c,
		       const struct keys_slot_info *s, size_t ns)
{
	printf("VERSION  STATE         FILES\n");
	for (size_t i = 0; i < c->n; i++)
		printf("%-8" PRIu32 " %-13s %" PRIu64 "\n",
		       c->versions[i].version,
		       keys_state_name(c->versions[i].state), c->files[i]);
	if (c->unreadable)
		printf("unreadable headers: %" PRIu64 " (first: %s: %s)\n",
		       c->unreadable, c->first_bad, strerror(-c->first_err));
	printf("\nSLOT  KIND\n");
	for (size_t i = 0; i < ns; i++)
		printf("%-5" PRIu32 " %s\n", s[i].id, kind_name(s[i].kind));
}

static int key_list(int argc, char **argv)
{
	struct keys_slot_info s[64];
	struct volkeys_count c = { 0 };
	struct key_args a;
	struct volume *vol = NULL;
	char err[512];
	size_t ns;
	int rc;

	rc = key_args(argc, argv, O_KEY | O_JSON | O_TIMEOUT, 1, &a);
	if (rc || (rc = open_volume(&a, false, "list", &vol)))
		return rc;
	if (volkeys_count(vol, &c, err, sizeof(err))) {
		rc = fail("%s: %s", a.pos[0], err);
		goto out;
	}
	ns = keys_slots(vol->keys, s, 64);
	if (a.json)
		list_json(&c, s, ns < 64 ? ns : 64);
	else {
		list_table(&c, s, ns < 64 ? ns : 64);
		rc = print_audit_fingerprint(vol->keys);
	}
out:
	volkeys_count_release(&c);
	volume_close(vol);
	return rc;
}

static int save(struct volume *vol, const char *backing)
{
	char err[KEYS_ERR_LEN];

	if (keys_save(vol->keys, vol->metafd, err, sizeof(err)))
		return fail("%s: %s", backing, err);
	return 0;
}

static int key_add_slot(int argc, char **argv)
{
	struct keys_secret *sec = NULL;
	struct volume *vol = NULL;
	struct key_args a;
	char err[KEYS_ERR_LEN];
	uint32_t id;
	int rc;

	rc = key_args(argc, argv, O_KEY | O_NEWKEY | O_TIMEOUT, 1, &a);
	if (rc || (rc = open_volume(&a, true, "add-slot", &vol)))
		return rc;
	if (keys_source_load_new(a.new_key, &sec, err, sizeof(err))) {
		rc = fail("--new-key: %s", err);
		goto out;
	}
	rc = keys_add_slot(vol->keys, sec, NULL, &id);
	if (rc) {
		rc = fail("%s: cannot add a key slot: %s", a.pos[0],
			  rc == -ENOSPC ? "all 64 slots in use" :
			  strerror(-rc));
		goto out;
	}
	rc = save(vol, a.pos[0]);
	if (!rc)
		printf("added key slot %" PRIu32 " (%s)\n", id,
		       kind_name(sec->kind));
out:
	keys_secret_free(sec);
	volume_close(vol);
	return rc;
}

static int key_remove_slot(int argc, char **argv)
{
	struct volume *vol = NULL;
	struct key_args a;
	uint32_t id = 0;
	int rc;

	rc = key_args(argc, argv, O_KEY | O_FORCE | O_TIMEOUT, 2, &a);
	if (!rc)
		rc = number("remove-slot", "SLOT", a.pos[1], &id);
	if (rc || (rc = open_volume(&a, true, "remove-slot", &vol)))
		return rc;
	if (keys_slots(vol->keys, NULL, 0) == 1 &&
	    keys_unlocking_slot(vol->keys) == id) {
		rc = fail("%s: slot %" PRIu32 " is the last key slot; without "
			  "it nothing opens the volume", a.pos[0], id);
		goto out;
	}
	if (keys_unlocking_slot(vol->keys) == id && !a.force) {
		rc = fail("%s: slot %" PRIu32 " is the one --key opens; this "
			  "key would no longer unlock the volume (--force to "
			  "remove it anyway)", a.pos[0], id);
		goto out;
	}
	rc = keys_remove_slot(vol->keys, id);
	if (rc) {
		rc = fail("%s: no key slot %" PRIu32, a.pos[0], id);
		goto out;
	}
	rc = save(vol, a.pos[0]);
	if (!rc)
		printf("removed key slot %" PRIu32 "\n", id);
out:
	volume_close(vol);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct show {
	bool tty;
	double start, last;
	long kill_after;	/* test only, see progress() */
	bool kill_at_retire;
};

/*
 * PHIFS_TEST_ROTATE_KILL, for the tests of resuming alone: "N" has the
 * process SIGKILL itself once N files are through the pass, "retire" once
 * the pass is synced and before any version is retired.
 */
static void test_hook(struct show *s, const struct volkeys_progress *p)
{
	uint64_t seen = p->done + p->skipped + p->failed;

	if ((p->phase == VOLKEYS_PASS && s->kill_after >= 0 &&
	     seen >= (uint64_t)s->kill_after) ||
	    (p->phase == VOLKEYS_RETIRING && s->kill_at_retire))
		raise(SIGKILL);
}

static void progress(void *arg, const struct volkeys_progress *p)
{
	struct show *s = arg;
	uint64_t seen = p->done + p->skipped + p->failed;
	double t = now_s(), rate;

	test_hook(s, p);
	if (!s->tty || (t - s->last < 0.1 && p->phase == VOLKEYS_PASS &&
			seen < p->estimate))
		return;
	s->last = t;
	rate = t > s->start ? (double)seen / (t - s->start) : 0;
	fprintf(stderr, "\rrotating to v%" PRIu32 ": %" PRIu64 "/%" PRIu64
		" files, %.0f files/s, ETA %.0f s   ", p->target, seen,
		p->estimate, rate, rate > 0 && p->estimate > seen ?
		(double)(p->estimate - seen) / rate : 0.0);
}

static void rotate_summary(const struct key_args *a,
			   const struct volkeys_progress *p, double secs)
{
	size_t nr = p->nretired < 8 ? p->nretired : 8;

	if (a->json) {
		printf("{\"version\": %" PRIu32 ", \"resumed\": %s, "
		       "\"rewrapped\": %" PRIu64 ", \"skipped\": %" PRIu64
		       ", \"failed\": %" PRIu64 ", \"retired\": [", p->target,
		       p->resumed ? "true" : "false", p->done, p->skipped,
		       p->failed);
		for (size_t i = 0; i < nr; i++)
			printf("%s%" PRIu32, i ? ", " : "", p->retired[i]);
		printf("], \"seconds\": %.3f}\n", secs);
		return;
	}
	printf("%s master key v%" PRIu32 ": %" PRIu64 " file(s) re-wrapped, "
	       "%" PRIu64 " already on it, in %.1f s; ", p->resumed ?
	       "finished rotating to" : "rotated to", p->target, p->done,
	       p->skipped, secs);
	if (!p->nretired)
		printf("%s\n", a->keep_old ? "older versions kept "
		       "decrypt-only (--keep-old)" : "nothing to retire");
	for (size_t i = 0; i < nr; i++)
		printf("%sv%" PRIu32 "%s", i ? ", " : "retired ",
		       p->retired[i], i + 1 == nr ? "\n" : "");
}

/* --- rotate on a mounted volume: the daemon's job, asked and watched --- */

#define ASK_MS 10000
#define POLL_MS 100

/* The daemon's answer to req, or 1 with one line on stderr. */
static int ask_daemon(const char *sock, const char *req, char **answer)
{
	int rc = ctl_request(sock, req, ASK_MS, answer);

	/* A daemon killed while it held our request resets the connection:
	 * gone all the same. */
	if (rc == -ENOENT || rc == -ECONNREFUSED || rc == -ECONNRESET ||
	    rc == -EPIPE)
		return fail("%s: no daemon answers (the volume is locked, "
			    "yet no daemon serves its control socket)", sock);
	if (rc)
		return fail("%s: %s", sock, strerror(-rc));
	return 0;
}

/* The daemon's rotation `id` until it ends, its progress shown meanwhile. */
static int watch_rotation(const char *sock, unsigned id, struct show *s,
			  struct ctl_rotation *r)
{
	static const char req[] = "{\"cmd\":\"status\",\"version\":1}";
	struct timespec pause = { 0, POLL_MS * 1000000L };
	struct volkeys_progress p;
	char *ans = NULL, why[256];
	int rc;

	for (;;) {
		if ((rc = ask_daemon(sock, req, &ans)))
			return rc;
		rc = ctl_msg_rotation(ans, r, why, sizeof(why));
		free(ans);
		if (rc)
			return fail("%s: %s", sock, rc == -ENOENT ?
				    "the daemon shows no rotation" : why);
		if (r->id != id)
			return fail("%s: another rotation (%u) started",
				    sock, r->id);
		if (strcmp(r->state, "running"))
			return 0;
		memset(&p, 0, sizeof(p));
		p.phase = strcmp(r->phase, "retire") ? VOLKEYS_PASS :
						       VOLKEYS_RETIRING;
		p.target = r->target;
		p.estimate = r->total;
		p.done = r->done;
		p.skipped = r->skipped;
		p.failed = r->failed;
		if (p.target)
			progress(s, &p);
		nanosleep(&pause, NULL);
	}
}

/*
 * rotate while mounted: the key is checked here (whoever asks must hold
 * it), the daemon rotates, and the summary is the offline one.
 */
static int rotate_online(const struct key_args *a, struct show *s)
{
	struct ctl_rotation *r = calloc(1, sizeof(*r));
	struct volkeys_progress *p = calloc(1, sizeof(*p));
	char sock[PATH_MAX], err[512], req[96];
	struct volume *vol = NULL;
	char *ans = NULL;
	const char *at;
	unsigned id = 0;
	int rc;

	if (!r || !p) {
		rc = fail("out of memory");
		goto out;
	}
	if (volume_open(a->pos[0], a->key, false, &vol, err, sizeof(err))) {
		rc = fail("%s", err);
		goto out;
	}
	snprintf(sock, sizeof(sock), "%s/%s/%s", a->pos[0], KEYS_DIR,
		 CTL_SOCKET_NAME);
	snprintf(req, sizeof(req), "{\"cmd\":\"key-rotate\",\"version\":1,"
		 "\"keep_old\":%s}", a->keep_old ? "true" : "false");
	if ((rc = ask_daemon(sock, req, &ans)))
		goto out;
	at = strstr(ans, "\"rotation\":");
	if (!strstr(ans, "\"ok\":true") || !at) {
		rc = ctl_msg_rotation(ans, r, err, sizeof(err)) == -EINVAL ?
			fail("%s: %s", a->pos[0], err) :
			fail("%s: %s", sock, ans);
		goto out;
	}
	id = (unsigned)strtoul(at + strlen("\"rotation\":"), NULL, 10);
	if ((rc = watch_rotation(sock, id, s, r)))
		goto out;
	if (s->tty)
		fputc('\n', stderr);
	p->target = r->target;
	p->resumed = r->resumed;
	p->done = r->done;
	p->skipped = r->skipped;
	p->failed = r->failed;
	p->nretired = r->nretired;
	memcpy(p->retired, r->retired, sizeof(p->retired));
	if (!strcmp(r->state, "done"))
		rotate_summary(a, p, r->seconds);
	else
		rc = fail("%s: %s", a->pos[0], r->error);
out:
	free(ans);
	volume_close(vol);
	free(p);
	free(r);
	return rc;
}

static int key_rotate(int argc, char **argv)
{
	const char *env = getenv("PHIFS_TEST_ROTATE_KILL");
	struct show s = { .tty = isatty(STDERR_FILENO), .kill_after = -1 };
	struct volkeys_progress p;
	struct volume *vol = NULL;
	struct key_args a;
	char err[PATH_MAX + 256];
	int rc;

	rc = key_args(argc, argv, O_KEY | O_JSON | O_KEEPOLD | O_TIMEOUT, 1,
		      &a);
	if (rc)
		return rc;
	s.start = s.last = now_s();
	/* Mounted (the lock is held): the daemon does it. */
	rc = volume_open(a.pos[0], a.key, true, &vol, err, sizeof(err));
	if (rc == -EBUSY)
		return rotate_online(&a, &s);
	if (rc)
		return fail("%s", err);
	if (env && !strcmp(env, "retire"))
		s.kill_at_retire = true;
	else if (env)
		s.kill_after = atol(env);
	rc = volkeys_rotate(vol, a.keep_old, progress, &s, &p, err,
			    sizeof(err));
	if (s.tty)
		fputc('\n', stderr);
	if (rc)
		rc = fail("%s: %s", a.pos[0], err);
	else
		rotate_summary(&a, &p, now_s() - s.start);
	volume_close(vol);
	return rc;
}

struct rekey_show {
	bool tty;
	double start, last;
	long kill_after;	/* test only, see rekey_hook() */
	enum volrekey_step kill_step;
};

/*
 * PHIFS_TEST_REKEY_KILL, for the tests of resuming alone: "N" has the
 * process SIGKILL itself once N files are through, "N:copied" once the
 * copy of the file after them is durable beside it, "N:logged" once it is
 * named in the marker too, before its rename.
 */
static void rekey_hook(struct rekey_show *s, const struct volrekey_progress *p)
{
	uint64_t seen = p->done + p->skipped + p->refused + p->failed;

	if (s->kill_after >= 0 && seen >= (uint64_t)s->kill_after &&
	    (p->step == s->kill_step || (s->kill_step == VOLREKEY_FILE &&
					 p->step == VOLREKEY_START)))
		raise(SIGKILL);
}

static void rekey_progress(void *arg, const struct volrekey_progress *p)
{
	struct rekey_show *s = arg;
	uint64_t seen = p->done + p->skipped + p->refused + p->failed;
	double t = now_s(), rate, mib;

	rekey_hook(s, p);
	if (!s->tty || p->step == VOLREKEY_COPIED ||
	    p->step == VOLREKEY_LOGGED || (t - s->last < 0.1 &&
					   seen < p->estimate))
		return;
	s->last = t;
	rate = t > s->start ? (double)seen / (t - s->start) : 0;
	mib = t > s->start ? (double)p->bytes / 1048576.0 / (t - s->start) : 0;
	fprintf(stderr, "\rrekeying: %" PRIu64 "/%" PRIu64 " files, %.1f "
		"MiB/s, ETA %.0f s   ", seen, p->estimate, mib,
		rate > 0 && p->estimate > seen ?
		(double)(p->estimate - seen) / rate : 0.0);
}

static void rekey_summary(const struct key_args *a,
			  const struct volrekey_progress *p, double secs)
{
	if (a->json) {
		printf("{\"resumed\": %s, \"rekeyed\": %" PRIu64 ", "
		       "\"skipped\": %" PRIu64 ", \"refused\": %" PRIu64
		       ", \"failed\": %" PRIu64 ", \"bytes\": %" PRIu64
		       ", \"strays\": %" PRIu64 ", \"seconds\": %.3f}\n",
		       p->resumed ? "true" : "false", p->done, p->skipped,
		       p->refused, p->failed, p->bytes, p->strays, secs);
		return;
	}
	printf("%s %" PRIu64 " file(s) (%.1f MiB) under fresh keys",
	       p->resumed ? "finished rekeying:" : "rekeyed", p->done,
	       (double)p->bytes / 1048576.0);
	if (p->resumed)	/* only a stopped run leaves files done */
		printf(", %" PRIu64 " done before it stopped", p->skipped);
	printf(", %" PRIu64 " hard-linked left, %" PRIu64 " failed, in %.1f s",
	       p->refused, p->failed, secs);
	if (p->strays)
		printf("; %" PRIu64 " stray cop%s removed", p->strays,
		       p->strays == 1 ? "y" : "ies");
	printf("\n");
}

static void rekey_hook_init(struct rekey_show *s)
{
	const char *env = getenv("PHIFS_TEST_REKEY_KILL");
	const char *colon = env ? strchr(env, ':') : NULL;

	s->kill_after = env ? atol(env) : -1;
	s->kill_step = !colon ? VOLREKEY_FILE :
		       !strcmp(colon + 1, "copied") ? VOLREKEY_COPIED :
		       VOLREKEY_LOGGED;
}

static int key_rekey(int argc, char **argv)
{
	struct rekey_show s = { .tty = isatty(STDERR_FILENO) };
	struct volrekey_progress p;
	struct volume *vol = NULL;
	struct key_args a;
	char err[PATH_MAX + 256];
	int rc;

	rc = key_args(argc, argv, O_KEY | O_JSON | O_TIMEOUT, -1, &a);
	if (rc || (rc = open_volume(&a, true, "rekey", &vol)))
		return rc;
	rekey_hook_init(&s);
	s.start = s.last = now_s();
	rc = volrekey_run(vol, a.pos + 1, (size_t)a.npos - 1, rekey_progress,
			  &s, &p, err, sizeof(err));
	if (s.tty && p.step)
		fputc('\n', stderr);
	/* Files left behind still come with the count of those done. */
	if (!rc || rc == -EIO || rc == -EMLINK)
		rekey_summary(&a, &p, now_s() - s.start);
	if (rc)
		rc = fail("%s: %s", a.pos[0], err);
	volume_close(vol);
	return rc;
}

static int key_retire(int argc, char **argv)
{
	struct volume *vol = NULL;
	struct key_args a;
	char err[PATH_MAX + 256];
	uint32_t ver = 0;
	int rc;

	rc = key_args(argc, argv, O_KEY | O_TIMEOUT, 2, &a);
	if (!rc)
		rc = number("retire", "VERSION", a.pos[1], &ver);
	if (rc || (rc = open_volume(&a, true, "retire", &vol)))
		return rc;
	if (volkeys_retire(vol, ver, err, sizeof(err)))
		rc = fail("%s: %s", a.pos[0], err);
	else
		printf("retired master key v%" PRIu32 "; its key is "
		       "destroyed\n", ver);
	volume_close(vol);
	return rc;
}

int cmd_key(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "list", key_list }, { "add-slot", key_add_slot },
		{ "remove-slot", key_remove_slot }, { "rotate", key_rotate },
		{ "rekey", key_rekey }, { "retire", key_retire },
	};

	if (argc < 2)
		return usage("key: expected a subcommand (list, add-slot, "
			     "remove-slot, rotate, rekey, retire)");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	return usage("unknown command 'key %s'", argv[1]);
}
