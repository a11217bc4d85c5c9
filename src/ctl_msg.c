/*
 * ctl_msg.c — the control socket's messages (docs/CONTROL.md): parsing a
 * request line, writing answers and the status as JSON, and turning a
 * status answer into a table or Prometheus text for phifsctl.  Pure: no
 * I/O but the FILE it is handed, no sockets, no libuv.
 */
#include "phifs/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Every answer is one line: compact, and a newline would end it. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENSURE_ASCII)

static const struct {
	const char *name;
	enum ctl_cmd cmd;
} commands[] = {
	{ "status", CTL_STATUS },
	{ "flush", CTL_FLUSH },
	{ "reload", CTL_RELOAD },
	{ "unmount", CTL_UNMOUNT },
	{ "key-rotate", CTL_KEY_ROTATE },
	{ "audit-anchor", CTL_AUDIT_ANCHOR },
};

int ctl_msg_parse(const char *line, size_t len, enum ctl_cmd *cmd,
		  char *err, size_t err_len)
{
	struct ctl_req req;
	int rc = ctl_msg_parse_req(line, len, &req, err, err_len);

	if (!rc)
		*cmd = req.cmd;
	return rc;
}

/* The fields a command takes besides cmd and version. */
static int req_fields(json_t *o, struct ctl_req *req, char *err,
		      size_t err_len)
{
	json_t *k = json_object_get(o, "keep_old");

	req->keep_old = false;
	if (req->cmd != CTL_KEY_ROTATE || !k)
		return 0;
	if (!json_is_boolean(k)) {
		snprintf(err, err_len, "\"keep_old\" is true or false");
		return -EINVAL;
	}
	req->keep_old = json_is_true(k);
	return 0;
}

int ctl_msg_parse_req(const char *line, size_t len, struct ctl_req *req,
		      char *err, size_t err_len)
{
	json_error_t je;
	json_t *req_json, *name, *ver;
	int rc = -EINVAL;

	/* JSON_DISALLOW_NULL is not enough for a NUL inside the line. */
	if (memchr(line, 0, len)) {
		snprintf(err, err_len, "not JSON: a NUL byte");
		return -EINVAL;
	}
	req_json = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!req_json) {
		snprintf(err, err_len, "not JSON: %s", je.text);
		return -EINVAL;
	}
	if (!json_is_object(req_json)) {
		snprintf(err, err_len, "a request is a JSON object");
		goto out;
	}
	ver = json_object_get(req_json, "version");
	if (ver && (!json_is_integer(ver) ||
		    json_integer_value(ver) < 1 ||
		    json_integer_value(ver) > CTL_PROTO_VERSION)) {
		snprintf(err, err_len, "protocol version not supported "
			 "(this daemon speaks %d)", CTL_PROTO_VERSION);
		goto out;
	}
	name = json_object_get(req_json, "cmd");
	if (!json_is_string(name)) {
		snprintf(err, err_len, "no \"cmd\" string in the request");
		goto out;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(json_string_value(name), commands[i].name)) {
			req->cmd = commands[i].cmd;
			rc = req_fields(req_json, req, err, err_len);
			goto out;
		}
	/* Quoted with escapes: the name came from the client. */
	{
		char *q = json_dumps(name, JSON_ENCODE_ANY | DUMP_FLAGS);

		snprintf(err, err_len, "unknown command %.64s", q ? q : "");
		free(q);
	}
out:
	json_decref(req_json);
	return rc;
}

/* o as one line with its newline, and lets go of o. */
static char *line_of(json_t *o)
{
	char *s = o ? json_dumps(o, DUMP_FLAGS) : NULL;
	char *l = NULL;

	if (s) {
		size_t n = strlen(s);

		l = malloc(n + 2);
		if (l) {
			memcpy(l, s, n);
			l[n] = '\n';
			l[n + 1] = 0;
		}
	}
	free(s);
	json_decref(o);
	return l;
}

static json_t *answer(bool ok)
{
	return json_pack("{s:b, s:i}", "ok", ok, "version", CTL_PROTO_VERSION);
}

char *ctl_msg_error(const char *why)
{
	json_t *o = answer(false);

	if (o && json_object_set_new(o, "error", json_string(why)))
		json_decref(o), o = NULL;
	return line_of(o);
}

char *ctl_msg_ok(void)
{
	return line_of(answer(true));
}

char *ctl_msg_reload(const char *changed, bool policy)
{
	json_t *o = answer(true), *list = json_array();
	const char *p = changed;

	while (o && list && *p) {
		size_t n = strcspn(p, ",");

		if (n && json_array_append_new(list, json_stringn(p, n)))
			break;
		p += n + (p[n] == ',');
	}
	if (!o || !list || *p ||
	    json_object_set_new(o, "changed", list) ||
	    json_object_set_new(o, "applied", json_false()) ||
	    json_object_set_new(o, "policy", json_boolean(policy))) {
		json_decref(o);
		return NULL;
	}
	return line_of(o);
}

/* json_object_set_new, counting failures in *bad. */
static void put(json_t *o, const char *key, json_t *v, int *bad)
{
	if (!o || !v || json_object_set_new(o, key, v))
		(*bad)++;
}

static json_t *uint_of(uint64_t n)
{
	return json_integer((json_int_t)n);
}

static json_t *status_auth(const struct vfs_stats *vs, int *bad)
{
	json_t *a = json_object(), *last = json_array();

	for (unsigned k = 0; k < vs->auth_kept && last; k++) {
		json_t *e = json_object();

		put(e, "path", json_string(vs->auth[k].path), bad);
		put(e, "block", json_integer(vs->auth[k].block), bad);
		put(e, "time", json_integer(vs->auth[k].time), bad);
		if (!e || json_array_append_new(last, e))
			(*bad)++;
	}
	put(a, "total", uint_of(vs->auth_failures), bad);
	put(a, "last", last, bad);
	return a;
}

static json_t *status_rotation(const struct ctl_rotation *r, int *bad)
{
	json_t *o = json_object(), *ret = json_array();

	put(o, "id", uint_of(r->id), bad);
	put(o, "state", json_string(r->state), bad);
	put(o, "phase", json_string(r->phase), bad);
	put(o, "keep_old", json_boolean(r->keep_old), bad);
	put(o, "resumed", json_boolean(r->resumed), bad);
	put(o, "target", uint_of(r->target), bad);
	put(o, "total", uint_of(r->total), bad);
	put(o, "done", uint_of(r->done), bad);
	put(o, "skipped", uint_of(r->skipped), bad);
	put(o, "failed", uint_of(r->failed), bad);
	put(o, "first_failed", json_string(r->first_failed), bad);
	put(o, "first_error", json_string(r->first_error), bad);
	for (unsigned i = 0; i < r->nretired && i < 8 && ret; i++)
		if (json_array_append_new(ret, uint_of(r->retired[i])))
			(*bad)++;
	put(o, "retired", ret, bad);
	put(o, "nretired", uint_of(r->nretired), bad);
	put(o, "seconds", json_real(r->seconds), bad);
	put(o, "error", json_string(r->error), bad);
	return o;
}

char *ctl_msg_rotate_started(unsigned id)
{
	json_t *o = answer(true);

	if (o && json_object_set_new(o, "rotation", uint_of(id)))
		json_decref(o), o = NULL;
	return line_of(o);
}

char *ctl_msg_anchor(const char *line)
{
	json_t *o = answer(true);

	if (o && json_object_set_new(o, "anchor", json_string(line)))
		json_decref(o), o = NULL;
	return line_of(o);
}

int ctl_msg_anchor_of(const char *ans, char *buf, size_t cap, char *why,
		      size_t why_len)
{
	json_t *o = json_loads(ans, 0, NULL);
	json_t *ok = json_object_get(o, "ok");
	json_t *a = json_object_get(o, "anchor");
	int rc = -EINVAL;

	if (json_is_false(ok))
		snprintf(why, why_len, "%s",
			 json_string_value(json_object_get(o, "error")) ?
			 json_string_value(json_object_get(o, "error")) : "");
	else if (!json_is_true(ok) || !json_is_string(a) ||
		 strlen(json_string_value(a)) >= cap)
		snprintf(why, why_len, "the daemon's answer is not understood");
	else
		rc = 0;
	if (!rc)
		snprintf(buf, cap, "%s", json_string_value(a));
	json_decref(o);
	return rc;
}

static json_t *status_audit(const struct ctl_audit *a, int *bad)
{
	json_t *o = json_object();

	put(o, "dir", json_string(a->dir), bad);
	put(o, "queued", uint_of(a->queued), bad);
	put(o, "written", uint_of(a->written), bad);
	put(o, "synced", uint_of(a->synced), bad);
	put(o, "lag_ms", uint_of(a->lag_ms), bad);
	put(o, "checkpoint_seq", uint_of(a->checkpoint_seq), bad);
	put(o, "checkpoint_ts", json_integer(a->checkpoint_ts), bad);
	put(o, "failures", uint_of(a->failures), bad);
	put(o, "refused", uint_of(a->refused), bad);
	put(o, "dropped", uint_of(a->dropped), bad);
	put(o, "failing", json_boolean(a->failing), bad);
	return o;
}

char *ctl_msg_status(const struct ctl_status *st)
{
	const struct vfs_stats *vs = &st->vfs;
	json_t *o = answer(true), *keys = json_array(), *ops = json_object();
	json_t *bytes = json_object(), *errs = json_object();
	json_t *loop = json_object();
	int bad = 0;

	put(o, "pid", json_integer(st->pid), &bad);
	put(o, "uptime_s", uint_of(st->uptime_s), &bad);
	put(o, "volume", json_string(st->volume), &bad);
	put(o, "backing", json_string(st->backing), &bad);
	put(o, "mountpoint", json_string(st->mountpoint), &bad);
	for (unsigned i = 0; i < st->nversions && keys; i++)
		if (json_array_append_new(keys, json_pack("{s:I, s:s}",
				"version", (json_int_t)st->versions[i].version,
				"state", st->versions[i].state)))
			bad++;
	put(o, "key_versions", keys, &bad);
	put(o, "open_files", uint_of(vs->open_files), &bad);
	put(o, "open_dirs", uint_of(vs->open_dirs), &bad);
	put(o, "inodes", uint_of(vs->inodes), &bad);
	put(bytes, "read", uint_of(vs->read_bytes), &bad);
	put(bytes, "written", uint_of(vs->write_bytes), &bad);
	put(o, "bytes", bytes, &bad);
	for (int op = 0; op < VFS_OP_COUNT; op++)
		put(ops, vfs_op_name(op), uint_of(vs->ops[op]), &bad);
	put(o, "ops", ops, &bad);
	for (int e = 0; e < VFS_ERR_COUNT; e++)
		put(errs, vfs_err_name(e), uint_of(vs->errors[e]), &bad);
	put(o, "errors", errs, &bad);
	put(o, "auth_failures", status_auth(vs, &bad), &bad);
	put(o, "header_fallbacks", uint_of(vs->header_fallbacks), &bad);
	put(o, "size_tag_mismatches", uint_of(vs->size_tag_mismatches), &bad);
	put(o, "attr_mismatches", uint_of(vs->attr_mismatches), &bad);
	put(loop, "kind", json_string(st->loop ? st->loop : "none"), &bad);
	put(loop, "threads", uint_of(st->loop_threads), &bad);
	put(loop, "max_threads", uint_of(st->loop_max_threads), &bad);
	put(loop, "requests", uint_of(st->loop_requests), &bad);
	put(o, "loop", loop, &bad);
	if (st->rotation.state[0])
		put(o, "rotation", status_rotation(&st->rotation, &bad), &bad);
	if (st->audit.on)
		put(o, "audit", status_audit(&st->audit, &bad), &bad);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return line_of(o);
}

/* --- phifsctl's side --- */

static uint64_t num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ?
		       (uint64_t)json_integer_value(v) : 0;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static void print_table(json_t *o, FILE *out)
{
	json_t *v, *e;
	const char *k;
	size_t i;

	fprintf(out, "%-16s %" PRIu64 "\n", "pid", num(o, "pid"));
	fprintf(out, "%-16s %" PRIu64 " s\n", "uptime", num(o, "uptime_s"));
	fprintf(out, "%-16s %s\n", "volume", str(o, "volume"));
	fprintf(out, "%-16s %s\n", "backing", str(o, "backing"));
	fprintf(out, "%-16s %s\n", "mount point", str(o, "mountpoint"));
	fprintf(out, "%-16s", "key versions");
	json_array_foreach(json_object_get(o, "key_versions"), i, e)
		fprintf(out, " v%" PRIu64 " (%s)", num(e, "version"),
			str(e, "state"));
	fprintf(out, "\n%-16s %" PRIu64 " (%" PRIu64 " folders)\n",
		"open files", num(o, "open_files"), num(o, "open_dirs"));
	fprintf(out, "%-16s %" PRIu64 "\n", "inodes held", num(o, "inodes"));
	v = json_object_get(o, "bytes");
	fprintf(out, "%-16s %" PRIu64 " read, %" PRIu64 " written\n",
		"bytes", num(v, "read"), num(v, "written"));
	fprintf(out, "operations\n");
	json_object_foreach(json_object_get(o, "ops"), k, e)
		if (json_integer_value(e))
			fprintf(out, "  %-14s %" PRIu64 "\n", k,
				(uint64_t)json_integer_value(e));
	fprintf(out, "%-16s", "errors");
	json_object_foreach(json_object_get(o, "errors"), k, e)
		fprintf(out, " %s %" PRIu64, k,
			(uint64_t)json_integer_value(e));
	v = json_object_get(o, "auth_failures");
	fprintf(out, "\n%-16s %" PRIu64 "\n", "auth failures",
		num(v, "total"));
	json_array_foreach(json_object_get(v, "last"), i, e) {
		json_t *b = json_object_get(e, "block");

		fprintf(out, "  %s ", str(e, "path"));
		if (json_integer_value(b) >= 0)
			fprintf(out, "block %" JSON_INTEGER_FORMAT,
				json_integer_value(b));
		else
			fputs("header", out);
		fprintf(out, " at %" JSON_INTEGER_FORMAT "\n",
			json_integer_value(json_object_get(e, "time")));
	}
	fprintf(out, "%-16s %" PRIu64 " header slots refused, %" PRIu64
		" size tags disagreeing, %" PRIu64 " modes or owners changed "
		"behind phifs\n", "header notes",
		num(o, "header_fallbacks"), num(o, "size_tag_mismatches"),
		num(o, "attr_mismatches"));
	v = json_object_get(o, "loop");
	fprintf(out, "%-16s %s, %" PRIu64 "/%" PRIu64 " threads, %" PRIu64
		" requests\n", "request loop", str(v, "kind"),
		num(v, "threads"), num(v, "max_threads"),
		num(v, "requests"));
	v = json_object_get(o, "rotation");
	if (v)
		fprintf(out, "%-16s %s, to v%" PRIu64 ": %" PRIu64 "/%" PRIu64
			" files (%" PRIu64 " failed)\n", "key rotation",
			str(v, "state"), num(v, "target"),
			num(v, "done") + num(v, "skipped") + num(v, "failed"),
			num(v, "total"), num(v, "failed"));
	v = json_object_get(o, "audit");
	if (v)
		fprintf(out, "%-16s %s%s\n%-16s %" PRIu64 " queued, lag %"
			PRIu64 " ms, %" PRIu64 " written, %" PRIu64
			" durable\n%-16s seq %" PRIu64 " at %" JSON_INTEGER_FORMAT
			"\n%-16s %" PRIu64 " failures, %" PRIu64 " refused, %"
			PRIu64 " dropped\n", "integrity log", str(v, "dir"),
			json_is_true(json_object_get(v, "failing")) ?
			" (FAILING)" : "", "  records", num(v, "queued"),
			num(v, "lag_ms"), num(v, "written"), num(v, "synced"),
			"  checkpoint", num(v, "checkpoint_seq"),
			json_integer_value(json_object_get(v,
							   "checkpoint_ts")),
			"  failures", num(v, "failures"), num(v, "refused"),
			num(v, "dropped"));
}

/* Prometheus label values escape \, " and newlines. */
static void label(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', out);
		if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

static void metric(FILE *out, const char *name, const char *type,
		   const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(FILE *out, const char *name, const char *vol,
		   const char *lk, const char *lv, uint64_t value)
{
	fprintf(out, "%s{volume=\"", name);
	label(out, vol);
	if (lk) {
		fprintf(out, "\",%s=\"", lk);
		label(out, lv);
	}
	fprintf(out, "\"} %" PRIu64 "\n", value);
}

/* A metric with one unlabelled sample. */
static void single(FILE *out, const char *vol, const char *name,
		   const char *type, const char *help, uint64_t value)
{
	metric(out, name, type, help);
	sample(out, name, vol, NULL, NULL, value);
}

static void print_audit_metrics(json_t *v, const char *vol, FILE *out)
{
	single(out, vol, "phifs_audit_queued", "gauge",
	       "Integrity log records waiting to be written.",
	       num(v, "queued"));
	single(out, vol, "phifs_audit_lag_milliseconds", "gauge",
	       "Age of the oldest integrity log record queued.",
	       num(v, "lag_ms"));
	single(out, vol, "phifs_audit_written_seq", "gauge",
	       "Last integrity log record written.", num(v, "written"));
	single(out, vol, "phifs_audit_synced_seq", "gauge",
	       "Last integrity log record durable.", num(v, "synced"));
	single(out, vol, "phifs_audit_checkpoint_seq", "gauge",
	       "Last signed checkpoint of the integrity log.",
	       num(v, "checkpoint_seq"));
	single(out, vol, "phifs_audit_checkpoint_timestamp_seconds", "gauge",
	       "When the last checkpoint was signed.",
	       num(v, "checkpoint_ts"));
	single(out, vol, "phifs_audit_failures_total", "counter",
	       "Integrity log write or sync errors.", num(v, "failures"));
	single(out, vol, "phifs_audit_refused_total", "counter",
	       "Operations refused because their record could not be kept.",
	       num(v, "refused"));
	single(out, vol, "phifs_audit_dropped_total", "counter",
	       "Records lost under on_failure = allow.", num(v, "dropped"));
	single(out, vol, "phifs_audit_failing", "gauge",
	       "1 while the integrity log cannot keep records.",
	       json_is_true(json_object_get(v, "failing")));
}

static void print_prometheus(json_t *o, FILE *out)
{
	const char *vol = str(o, "volume"), *k;
	json_t *v, *e;
	size_t i;

	single(out, vol, "phifs_uptime_seconds", "gauge",
	       "Seconds since mount.",
	       num(o, "uptime_s"));
	v = json_object_get(o, "bytes");
	single(out, vol, "phifs_read_bytes_total", "counter",
	       "Plaintext bytes read through the mount.",
	       num(v, "read"));
	single(out, vol, "phifs_written_bytes_total", "counter",
	       "Plaintext bytes written through the mount.",
	       num(v, "written"));
	metric(out, "phifs_operations_total", "counter",
	       "Operations served, by kind.");
	json_object_foreach(json_object_get(o, "ops"), k, e)
		sample(out, "phifs_operations_total", vol, "op", k,
		       (uint64_t)json_integer_value(e));
	metric(out, "phifs_errors_total", "counter",
	       "Operations failed, by error.");
	json_object_foreach(json_object_get(o, "errors"), k, e)
		sample(out, "phifs_errors_total", vol, "error", k,
		       (uint64_t)json_integer_value(e));
	single(out, vol, "phifs_auth_failures_total", "counter",
	       "Blocks and headers that failed authentication.",
	       num(json_object_get(o, "auth_failures"), "total"));
	single(out, vol, "phifs_header_fallbacks_total", "counter",
	       "Files opened from the older header slot, the newer refused.",
	       num(o, "header_fallbacks"));
	single(out, vol, "phifs_size_tag_mismatches_total", "counter",
	       "Files whose valid size tag disagreed with the header.",
	       num(o, "size_tag_mismatches"));
	single(out, vol, "phifs_attr_mismatches_total", "counter",
	       "Files whose backing mode or owner was not their header's.",
	       num(o, "attr_mismatches"));
	single(out, vol, "phifs_open_files", "gauge",
	       "Files open now.",
	       num(o, "open_files"));
	single(out, vol, "phifs_inodes", "gauge",
	       "Inodes the kernel holds.",
	       num(o, "inodes"));
	metric(out, "phifs_key_version_info", "gauge",
	       "Master key versions, with their state.");
	json_array_foreach(json_object_get(o, "key_versions"), i, e) {
		char ver[24];

		snprintf(ver, sizeof(ver), "%" PRIu64, num(e, "version"));
		fputs("phifs_key_version_info{volume=\"", out);
		label(out, vol);
		fprintf(out, "\",version=\"%s\",state=\"", ver);
		label(out, str(e, "state"));
		fputs("\"} 1\n", out);
	}
	v = json_object_get(o, "loop");
	single(out, vol, "phifs_loop_requests_total", "counter",
	       "FUSE requests taken by the request loop.",
	       num(v, "requests"));
	single(out, vol, "phifs_loop_threads", "gauge",
	       "Request loop workers.",
	       num(v, "threads"));
	v = json_object_get(o, "audit");
	if (v)
		print_audit_metrics(v, vol, out);
}

int ctl_msg_format(const char *ans, enum ctl_format fmt, FILE *out,
		   char *why, size_t why_len)
{
	json_t *o = json_loads(ans, 0, NULL);
	json_t *ok = json_object_get(o, "ok");
	int rc = -EPROTO;

	if (!json_is_boolean(ok)) {
		snprintf(why, why_len, "the daemon's answer is not understood");
		goto out;
	}
	if (!json_is_true(ok)) {
		snprintf(why, why_len, "%s", str(o, "error"));
		rc = -EINVAL;
		goto out;
	}
	if (!json_is_object(json_object_get(o, "ops"))) {
		snprintf(why, why_len, "the answer is not a status");
		goto out;
	}
	if (fmt == CTL_FORMAT_PROMETHEUS)
		print_prometheus(o, out);
	else
		print_table(o, out);
	rc = 0;
out:
	json_decref(o);
	return rc;
}

/* A string field of o into buf; "" when absent. */
static void str_into(json_t *o, const char *key, char *buf, size_t len)
{
	json_t *v = json_object_get(o, key);

	snprintf(buf, len, "%s", json_is_string(v) ? json_string_value(v) : "");
}

int ctl_msg_rotation(const char *ans, struct ctl_rotation *out, char *why,
		     size_t why_len)
{
	json_t *o = json_loads(ans, 0, NULL), *r, *ret;
	int rc = -EPROTO;

	snprintf(why, why_len, "not a status answer");
	if (!json_is_object(o))
		goto out;
	if (!json_is_true(json_object_get(o, "ok"))) {
		str_into(o, "error", why, why_len);
		rc = -EINVAL;
		goto out;
	}
	if (!json_object_get(o, "pid"))
		goto out;
	r = json_object_get(o, "rotation");
	rc = -ENOENT;
	if (!json_is_object(r))
		goto out;
	memset(out, 0, sizeof(*out));
	str_into(r, "state", out->state, sizeof(out->state));
	str_into(r, "phase", out->phase, sizeof(out->phase));
	str_into(r, "first_failed", out->first_failed,
		 sizeof(out->first_failed));
	str_into(r, "first_error", out->first_error, sizeof(out->first_error));
	str_into(r, "error", out->error, sizeof(out->error));
	out->id = (unsigned)num(r, "id");
	out->keep_old = json_is_true(json_object_get(r, "keep_old"));
	out->resumed = json_is_true(json_object_get(r, "resumed"));
	out->target = (uint32_t)num(r, "target");
	out->total = num(r, "total");
	out->done = num(r, "done");
	out->skipped = num(r, "skipped");
	out->failed = num(r, "failed");
	out->nretired = (unsigned)num(r, "nretired");
	out->seconds = json_number_value(json_object_get(r, "seconds"));
	ret = json_object_get(r, "retired");
	for (size_t i = 0; i < json_array_size(ret) && i < 8; i++)
		out->retired[i] = (uint32_t)json_integer_value(
			json_array_get(ret, i));
	rc = 0;
out:
	json_decref(o);
	return rc;
}
