/*
 * config.h — the daemon's settings from an INI file (--config): the same
 * names as the long options.  The only module that includes inih.
 */
#ifndef PHIFS_CONFIG_H
#define PHIFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Strings are malloc'd; NULL when not set. */
struct config {
	char *key;
	char *options;		/* comma-separated, several lines add up */
	char *policy;
	char *audit_dir;
	char *socket;
	bool foreground;
	bool no_poll;		/* serve with libfuse's loop, which never polls */
};

/*
 * Reads settings from path (top level or section [phifs]) into c, over what
 * c holds.  -EINVAL for an unknown setting or bad value, -errno if the file
 * cannot be read; err then names the file and line.
 */
int config_load(const char *path, struct config *c, char *err,
		size_t err_len);
void config_release(struct config *c);

#endif
