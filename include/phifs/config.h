/*
 * config.h — the daemon's settings and the one table that names them, for
 * all three places they come from: the INI file (--config), fstab-style -o
 * options and the command line.  Knows nothing of what the settings do
 * nor of getopt.
 */
#ifndef PHIFS_CONFIG_H
#define PHIFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strings are malloc'd; NULL when not set. */
struct config {
	char *key;
	char *options;		/* FUSE's, comma-separated; they add up */
	char *policy;
	char *audit_dir;
	char *socket;
	unsigned key_timeout;	/* seconds; 0: keysrc's default */
	bool foreground;
	bool no_poll;		/* libfuse's loop, which never polls */
	bool no_xattr;		/* refuse extended attributes (ENOSYS) */
	bool nonempty;		/* may mount over a folder with files */
	bool policy_cache;	/* under a policy, the kernel's caches kept */
	bool no_audit;		/* keep no integrity log */
	/* [audit]; choices are indexes into the config_audit_* lists, the
	 * default 0; a count of 0 is the writer's default */
	unsigned audit_sync;
	unsigned audit_on_failure;
	unsigned audit_reads;
	unsigned audit_paths;
	uint64_t audit_segment_size;	/* bytes */
	unsigned audit_segment_age;	/* seconds */
	uint64_t audit_checkpoint_records;
	uint64_t audit_checkpoint_ms;
};

/* The names each [audit] choice takes, in index order, NULL-ended. */
extern const char *const config_audit_syncs[];	/* batch always none */
extern const char *const config_audit_failures[];	/* deny allow */
extern const char *const config_audit_reads[];	/* normal strict */
extern const char *const config_audit_paths[];	/* plain pseudonymous */

#define CONFIG_SECONDS_MAX 86400
/* A config file's longest line: a key file's path of PATH_MAX and more. */
#define CONFIG_MAX_LINE 8192
#define CONFIG_MAX_FILE (1 << 20)
/* The settings table's size at most, for per-setting arrays. */
#define CONFIG_MAX_SETTINGS 32

enum config_kind {
	CONFIG_STRING,		/* the last one given wins */
	CONFIG_BOOL,		/* yes/no, true/false, 1/0; bare is yes */
	CONFIG_NOT_BOOL,	/* as CONFIG_BOOL, stored negated (poll) */
	CONFIG_OPTIONS,		/* a mount option list; see config_set */
	CONFIG_SECONDS,		/* unsigned, 1 to CONFIG_SECONDS_MAX */
	CONFIG_COUNT,		/* uint64_t, 1 and up */
	CONFIG_CHOICE,		/* unsigned: the index of one of choices */
};

/*
 * One setting.  In names '-' and '_' are the same, so audit_dir is also
 * audit-dir; on the command line it is --audit-dir.
 */
struct config_setting {
	const char *name;	/* INI name; the -o name if by_o */
	enum config_kind kind;
	size_t offset;		/* of the field in struct config */
	bool by_o;		/* may come in -o as name=value, bools bare */
	bool long_opt;		/* may come as --name in argv */
	char short_opt;		/* -X on the command line, or 0 */
	const char *arg;	/* the value's placeholder in --help, or NULL */
	const char *help;	/* for --help; later lines are indented */
	const char *section;	/* "audit": only in that section of the
				 * file; NULL: top level, [phifs], -o, argv */
	const char *const *choices;	/* CONFIG_CHOICE's names */
};

/* Every setting, ended by an entry whose name is NULL.  Read-only. */
extern const struct config_setting config_settings[];

/*
 * The setting called name ('-' and '_' alike), or NULL: at the top level,
 * and in a section of the file (config_find_in, "audit").
 */
const struct config_setting *config_find(const char *name);
const struct config_setting *config_find_in(const char *section,
					    const char *name);

/*
 * Sets name to value in c, over what c holds.  value NULL means given bare
 * (a command-line switch, a -o word without '='): yes for a bool, an error
 * otherwise.  For "options" the value is a comma-separated list whose
 * elements naming a by_o setting (key=file:..., no_poll) set it, and whose
 * others are appended to c->options for FUSE: mount(8) passes an fstab
 * line's options this way.
 *
 * Returns 0; -EINVAL for an unknown name or a bad value, -ENOMEM; why then
 * says so in one line ("unknown setting 'x'", "bad value for 'x'", "out of
 * memory").  Not thread-safe for one c.
 */
int config_set(struct config *c, const char *name, const char *value,
	       char *why, size_t why_len);
/* config_set for a setting of section (NULL: the top level). */
int config_set_in(struct config *c, const char *section, const char *name,
		  const char *value, char *why, size_t why_len);

/*
 * Reads settings from path (top level or section [phifs], and the [audit]
 * section's own) into c, over what
 * c holds.  -EINVAL for an unknown setting or section, a bad value, a
 * syntax error, a NUL byte, a line longer than CONFIG_MAX_LINE, a setting
 * given twice in the file (options lines excepted: they add up) or [phifs]
 * given twice; -EISDIR for a folder, -EINVAL for another file that is not
 * regular, -EFBIG past CONFIG_MAX_FILE, -ENOMEM, or -errno if the file
 * cannot be read.  err then says why in one line, naming the file and, for
 * its contents, the line.  On an error c may hold the lines before it.
 */
int config_load(const char *path, struct config *c, char *err,
		size_t err_len);

/* Frees c's strings and zeroes it. */
void config_release(struct config *c);

#endif
