/*
 * test_config.c — tests for src/config.c: every setting from an INI file,
 * from -o lists and as the command line gives it, errors that name the file
 * and line, options that add up, -o words that are not ours handed on.
 */
#include "phifs/config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char path[64];

static void write_ini(const char *text)
{
	int fd;

	strcpy(path, "/tmp/phifs-config-XXXXXX");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void drop_ini(void)
{
	if (*path)
		unlink(path);
}

TestSuite(config, .fini = drop_ini);

static void assert_all_set(const struct config *c)
{
	cr_assert_str_eq(c->key, "file:/k");
	cr_assert_str_eq(c->policy, "/p.ini");
	cr_assert_str_eq(c->audit_dir, "/audit");
	cr_assert_str_eq(c->socket, "/s.sock");
	cr_assert_str_eq(c->options, "allow_other,ro");
}

Test(config, every_setting_loads_from_the_phifs_section)
{
	struct config c = { 0 };
	char err[256] = "";

	write_ini("[phifs]\nkey = file:/k\npolicy = /p.ini\n"
		  "audit_dir = /audit\nsocket = /s.sock\n"
		  "options = allow_other\n"
		  "options = ro\nforeground = yes\npoll = no\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
	assert_all_set(&c);
	cr_assert(c.foreground);
	cr_assert(c.no_poll);
	config_release(&c);
}

Test(config, settings_load_from_the_top_level_too)
{
	struct config c = { 0 };
	char err[256] = "";

	write_ini("; a comment\nkey = file:/k\naudit-dir = /audit\n"
		  "foreground = true\npoll = 1\n[phifs]\nsocket = /s\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.key, "file:/k");
	cr_assert_str_eq(c.audit_dir, "/audit");
	cr_assert_str_eq(c.socket, "/s");
	cr_assert(c.foreground);
	cr_assert_not(c.no_poll);
	config_release(&c);
}

Test(config, a_later_file_or_the_command_line_wins_over_an_earlier_one)
{
	struct config c = { 0 };
	char err[256] = "";

	write_ini("key = file:/a\nforeground = yes\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
	drop_ini();
	write_ini("key = file:/b\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.key, "file:/b");
	cr_assert_eq(config_set(&c, "key", "file:/c", err, sizeof(err)), 0);
	cr_assert_eq(config_set(&c, "foreground", "no", err, sizeof(err)), 0);
	cr_assert_str_eq(c.key, "file:/c");
	cr_assert_not(c.foreground);
	config_release(&c);
}

/* Loads text of len bytes; returns config_load's answer, err filled. */
static int load_n(const char *text, size_t len, char *err, size_t err_len)
{
	struct config c = { 0 };
	int fd, rc;

	drop_ini();
	strcpy(path, "/tmp/phifs-config-XXXXXX");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	err[0] = 0;
	rc = config_load(path, &c, err, err_len);
	config_release(&c);
	return rc;
}

/* Expects text to be refused with "PATH:line: why". */
static void assert_refused(const char *text, size_t len, int line,
			   const char *why)
{
	char err[512], want[512];

	cr_assert_eq(load_n(text, len, err, sizeof(err)), -EINVAL, "%s",
		     err);
	snprintf(want, sizeof(want), "%s:%d: %s", path, line, why);
	cr_assert_str_eq(err, want);
}

Test(config, a_setting_or_section_given_twice_is_refused_with_both_lines)
{
	static const char t1[] = "key = file:/a\nkey = file:/b\n";
	static const char t2[] = "audit_dir = /a\n\naudit-dir = /b\n";
	static const char t3[] = "key = file:/a\n[phifs]\nkey = file:/b\n";
	static const char t4[] = "poll = yes\nno_poll = yes\n";
	static const char t5[] = "[phifs]\nkey = file:/a\n[phifs]\n";
	static const char ok[] = "options = ro\noptions = allow_other\n"
				 "[phifs]\noptions = noatime\n";
	char err[256];

	assert_refused(t1, strlen(t1), 2, "'key' given twice (first at line 1)");
	assert_refused(t2, strlen(t2), 3,
		       "'audit-dir' given twice (first at line 1)");
	assert_refused(t3, strlen(t3), 3, "'key' given twice (first at line 1)");
	assert_refused(t4, strlen(t4), 2,
		       "'no_poll' given twice (first at line 1)");
	assert_refused(t5, strlen(t5), 3,
		       "section [phifs] given twice (first at line 1)");
	cr_assert_eq(load_n(ok, strlen(ok), err, sizeof(err)), 0, "%s", err);
}

Test(config, a_nul_byte_is_refused_with_its_line)
{
	static const char t[] = "foreground = yes\nkey = file:/a\0b\n";

	assert_refused(t, sizeof(t) - 1, 2, "NUL byte in the line");
}

Test(config, lines_as_long_as_a_long_path_load_and_longer_are_refused)
{
	size_t plen = 4095, llen = CONFIG_MAX_LINE + 1;
	char *text = malloc(llen + 64), err[512];
	struct config c = { 0 };
	size_t n;
	int fd;

	cr_assert_not_null(text);
	/* A key file path of PATH_MAX - 1 bytes, then a line after it. */
	n = (size_t)sprintf(text, "; first\nkey = file:/");
	memset(text + n, 'p', plen - 1);
	n += plen - 1;
	n += (size_t)sprintf(text + n, "\nforeground = yes\n");
	write_ini("");
	fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, n), (ssize_t)n);
	close(fd);
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strlen(c.key), strlen("file:") + plen);
	cr_assert(c.foreground);
	config_release(&c);

	n = (size_t)sprintf(text, "foreground = yes\nkey = file:/");
	memset(text + n, 'p', llen - 12);
	n += llen - 12;
	text[n++] = '\n';
	snprintf(err, sizeof(err), "line longer than %d bytes",
		 CONFIG_MAX_LINE);
	assert_refused(text, n, 2, err);
	free(text);
}

Test(config, a_folder_or_fifo_as_config_is_named_as_such)
{
	struct config c = { 0 };
	char err[256], want[300], dir[] = "/tmp/phifs-config-d-XXXXXX";
	char fifo[64];

	alarm(10);	/* a hang fails as a crash */
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(config_load(dir, &c, err, sizeof(err)), -EISDIR);
	snprintf(want, sizeof(want), "%s: is a folder, not a config file",
		 dir);
	cr_assert_str_eq(err, want);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert_eq(config_load(fifo, &c, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: not a regular file", fifo);
	cr_assert_str_eq(err, want);
	unlink(fifo);
	rmdir(dir);
	config_release(&c);
}

Test(config, every_setting_can_be_set_as_the_command_line_gives_it)
{
	struct config c = { 0 };
	char err[256] = "";

	cr_assert_eq(config_set(&c, "key", "file:/k", err, sizeof(err)), 0);
	cr_assert_eq(config_set(&c, "policy", "/p.ini", err, sizeof(err)), 0);
	cr_assert_eq(config_set(&c, "audit-dir", "/audit", err, sizeof(err)),
		     0);
	cr_assert_eq(config_set(&c, "socket", "/s.sock", err, sizeof(err)), 0);
	cr_assert_eq(config_set(&c, "options", "allow_other", err,
				sizeof(err)), 0);
	cr_assert_eq(config_set(&c, "options", "ro", err, sizeof(err)), 0);
	/* Switches come bare: -f, --no-poll. */
	cr_assert_eq(config_set(&c, "foreground", NULL, err, sizeof(err)), 0);
	cr_assert_eq(config_set(&c, "no-poll", NULL, err, sizeof(err)), 0);
	assert_all_set(&c);
	cr_assert(c.foreground);
	cr_assert(c.no_poll);
	config_release(&c);
}

Test(config, an_o_list_sets_ours_and_hands_the_rest_to_fuse)
{
	struct config c = { 0 };
	char err[256] = "";

	cr_assert_eq(config_set(&c, "options",
				"allow_other,key=file:/k,policy=/p.ini,,"
				"audit_dir=/audit,no_poll,socket=/s.sock,ro",
				err, sizeof(err)), 0, "%s", err);
	assert_all_set(&c);
	cr_assert(c.no_poll);
	cr_assert_not(c.foreground);
	config_release(&c);
}

Test(config, o_words_that_are_not_o_settings_go_to_fuse_as_they_are)
{
	struct config c = { 0 };
	char err[256] = "";

	/* foreground and options are not -o settings: FUSE judges them. */
	cr_assert_eq(config_set(&c, "options",
				"foreground,options=x,frob=1,keyx=2", err,
				sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.options, "foreground,options=x,frob=1,keyx=2");
	cr_assert_null(c.key);
	config_release(&c);
}

Test(config, options_lines_in_a_file_add_up_and_may_hold_our_settings)
{
	struct config c = { 0 };
	char err[256] = "";

	write_ini("[phifs]\noptions = allow_other\noptions = no_poll,ro\n"
		  "options = key=file:/k\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.options, "allow_other,ro");
	cr_assert_str_eq(c.key, "file:/k");
	cr_assert(c.no_poll);
	config_release(&c);
}

Test(config, an_unknown_setting_is_named_with_file_and_line)
{
	struct config c = { 0 };
	char err[256] = "", want[128];

	write_ini("[phifs]\nkey = file:/k\nfrobs = 3\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:3: unknown setting 'frobs'", path);
	cr_assert_str_eq(err, want);
	config_release(&c);
	cr_assert_eq(config_set(&c, "frobs", "3", err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "unknown setting 'frobs'");
}

Test(config, a_bad_bool_is_named_with_file_and_line)
{
	struct config c = { 0 };
	char err[256] = "", want[128];

	write_ini("foreground = no\npoll = often\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: bad value for 'poll'", path);
	cr_assert_str_eq(err, want);
	cr_assert_eq(config_set(&c, "options", "ro,no_poll=maybe", err,
				sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "bad value for 'no_poll'");
	cr_assert_eq(config_set(&c, "foreground", "", err, sizeof(err)),
		     -EINVAL);
	config_release(&c);
}

Test(config, the_first_bad_line_gives_the_reason)
{
	struct config c = { 0 };
	char err[256] = "", want[128];

	write_ini("a = 1\nforeground = maybe\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:1: unknown setting 'a'", path);
	cr_assert_str_eq(err, want);
	config_release(&c);
}

Test(config, another_section_and_a_syntax_error_are_refused)
{
	struct config c = { 0 };
	char err[256] = "", want[128];

	write_ini("[other]\nkey = file:/k\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:1: unknown section [other]", path);
	cr_assert_str_eq(err, want);
	config_release(&c);
	unlink(path);
	write_ini("[phifs]\nkey\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: syntax error", path);
	cr_assert_str_eq(err, want);
	config_release(&c);
}

Test(config, key_timeout_is_whole_seconds_from_one_to_a_day)
{
	static const char *const bad[] = { "0", "-1", "5s", "", " 5",
					   "86401", "99999999999999999999" };
	struct config c = { 0 };
	char err[256] = "";

	cr_assert_eq(config_set(&c, "key-timeout", "5", err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(c.key_timeout, 5);
	cr_assert_eq(config_set(&c, "options", "key_timeout=86400", err,
				sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.key_timeout, 86400);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(config_set(&c, "key_timeout", bad[i], err,
					sizeof(err)), -EINVAL, "%s", bad[i]);
		cr_assert_str_eq(err, "bad value for 'key_timeout'");
	}
	cr_assert_eq(c.key_timeout, 86400);
	write_ini("[phifs]\nkey_timeout = 7\n");
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.key_timeout, 7);
	config_release(&c);
}

Test(config, a_string_setting_given_bare_is_refused)
{
	struct config c = { 0 };
	char err[256] = "";

	cr_assert_eq(config_set(&c, "options", "key", err, sizeof(err)),
		     -EINVAL);
	cr_assert_str_eq(err, "bad value for 'key'");
	cr_assert_null(c.key);
	config_release(&c);
}

Test(config, an_unreadable_file_is_named)
{
	struct config c = { 0 };
	char err[256] = "";

	cr_assert_eq(config_load("/nonexistent/phifs.conf", &c, err,
				 sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "/nonexistent/phifs.conf") &&
		  strstr(err, strerror(ENOENT)), "%s", err);
}

#define REFUSED(t, line, why) assert_refused(t, sizeof(t) - 1, line, why)

Test(config, the_audit_section_sets_the_log_and_names_its_mistakes)
{
	static const char text[] =
		"[phifs]\nkey = file:/k\n"
		"[audit]\ndir = /var/log/phifs\nsync = always\n"
		"on_failure = allow\nsegment_size = 1048576\n"
		"segment_age = 60\ncheckpoint_records = 500\n"
		"checkpoint_ms = 250\nreads = strict\n";
	struct config c = { 0 };
	char err[256];

	write_ini(text);
	cr_assert_eq(config_load(path, &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(c.key, "file:/k");
	cr_expect_str_eq(c.audit_dir, "/var/log/phifs");
	cr_expect_str_eq(config_audit_syncs[c.audit_sync], "always");
	cr_expect_str_eq(config_audit_failures[c.audit_on_failure], "allow");
	cr_expect_eq(c.audit_segment_size, 1048576);
	cr_expect_eq(c.audit_segment_age, 60);
	cr_expect_eq(c.audit_checkpoint_records, 500);
	cr_expect_eq(c.audit_checkpoint_ms, 250);
	cr_expect_str_eq(config_audit_reads[c.audit_reads], "strict");
	cr_expect_eq(c.audit_paths, 0, "plain by default");
	config_release(&c);

	REFUSED("[audit]\nsync = sometimes\n", 2,
		       "bad value for 'sync' (batch, always or none)");
	REFUSED("[audit]\npaths = hashed\n", 2,
		       "bad value for 'paths' (plain or pseudonymous)");
	REFUSED("[audit]\ncheckpoint_ms = 0\n", 2,
		       "bad value for 'checkpoint_ms'");
	REFUSED("[audit]\nkey = file:/k\n", 2,
		       "unknown setting 'key' in [audit]");
	REFUSED("sync = always\n", 1, "unknown setting 'sync'");
	REFUSED("audit_dir = /a\n[audit]\ndir = /b\n", 3,
		       "'dir' given twice (first at line 1)");
	REFUSED("[audit]\n[audit]\n", 2,
		       "section [audit] given twice (first at line 1)");
}

Test(config, names_take_dash_and_underscore_alike)
{
	cr_assert_eq(config_find("audit-dir"), config_find("audit_dir"));
	cr_assert_eq(config_find("no-poll"), config_find("no_poll"));
	cr_assert_not_null(config_find("key"));
	cr_assert_null(config_find("ke"));
	cr_assert_null(config_find("keys"));
	cr_assert_null(config_find(""));
}

Test(config, the_table_is_well_formed)
{
	const struct config_setting *s;

	for (s = config_settings; s->name; s++) {
		cr_assert(s->offset + sizeof(bool) <= sizeof(struct config));
		/* A setting on the command line says what it does. */
		if (s->long_opt || s->short_opt)
			cr_assert(s->help && *s->help, "%s", s->name);
		cr_assert_eq(s->section ? config_find_in(s->section, s->name) :
				      config_find(s->name), s, "%s", s->name);
		/* a section's settings come from its file only */
		cr_assert(!s->section || (!s->long_opt && !s->by_o &&
					  !s->short_opt), "%s", s->name);
		cr_assert_lt(s - config_settings, CONFIG_MAX_SETTINGS);
	}
}

#if !defined(__SANITIZE_ADDRESS__)
/* The address space this process uses now, from /proc/self/status. */
static size_t vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[128];
	size_t kb = 0;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
			break;
	fclose(f);
	cr_assert_gt(kb, 0);
	return kb * 1024;
}
#endif

/* Out of memory used to read "bad value for 'key'": a wrong lead. */
Test(config, out_of_memory_is_said_as_such)
{
#if defined(__SANITIZE_ADDRESS__)
	cr_skip_test("AddressSanitizer reserves address space: no limit here");
#else
	size_t big = 64u << 20;
	char *value = malloc(big + 1), why[128] = "";
	struct config c = { 0 };
	struct rlimit lim;

	cr_assert_not_null(value);
	memset(value, 'k', big);
	value[big] = '\0';
	cr_assert_eq(getrlimit(RLIMIT_AS, &lim), 0);
	lim.rlim_cur = vm_size() + (16u << 20);
	cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
	cr_expect_eq(config_set(&c, "key", value, why, sizeof(why)), -ENOMEM);
	cr_expect_str_eq(why, "out of memory");
	config_release(&c);
	free(value);
#endif
}
