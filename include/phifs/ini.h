/*
 * ini.h — the project's strict reader of INI files, shared by the settings
 * (config.c) and the access policy (policy.c): it splits text into
 * sections and NAME = VALUE lines and calls back with each and its line
 * number.  Knows nothing of what any section or key means.
 *
 * Not inih: Debian's libinih cuts lines at 200 bytes and goes on with the
 * rest as a line of its own (a key file's long path became a syntax error
 * at a line the file does not have), and it lets a NUL cut a value and a
 * repeated key or section pass; a policy file must report each of those
 * at its own line.  The grammar is inih's, less continuation lines:
 * [section], NAME = VALUE (or NAME: VALUE), ';' or '#' comment lines, a
 * ';' after a blank ending a value, blanks around names and values
 * dropped, a UTF-8 BOM skipped.
 */
#ifndef PHIFS_INI_H
#define PHIFS_INI_H

#include <stddef.h>

/* The longest reason a callback may give, NUL included. */
#define INI_WHY_LEN 256

/*
 * Called for each "[name]" (name trimmed) and each "name = value" (both
 * trimmed, value without its inline comment).  The strings live in the
 * text ini_parse was handed and may be kept as long as it is.  Return 0 to
 * go on; -EINVAL or another -errno with a one-line reason in why (the file
 * and line are added; strerror's when why is left empty), or -ENOMEM (said
 * as such): the parse stops with that code.
 */
struct ini_ops {
	int (*section)(void *ctx, char *name, int line, char *why,
		       size_t why_len);
	int (*key)(void *ctx, char *name, char *value, int line, char *why,
		   size_t why_len);
};

/*
 * Parses text (len bytes, NUL-terminated, changed in place) line by line.
 * path only names the file in messages.  Returns 0; -EINVAL for a syntax
 * error, a NUL byte, a line longer than max_line bytes or what a callback
 * refused, err then "path:line: reason"; -ENOMEM ("path: out of memory")
 * or a callback's other -errno, said as the callback gave it.
 */
int ini_parse(const char *path, char *text, size_t len, size_t max_line,
	      const struct ini_ops *ops, void *ctx, char *err, size_t err_len);

/*
 * Reads all of regular file path (at most max bytes) into *text, malloc'd
 * and NUL-terminated, and its length into *len.  what names the kind of
 * file in the message for a folder ("is a folder, not a WHAT").  Returns
 * 0; -EISDIR, -EINVAL for another file that is not regular, -EFBIG past
 * max, -ENOMEM or the -errno of open or read; err then says why in one
 * line naming path.  A file that grows while read is cut at its size.
 */
int ini_read_file(const char *path, size_t max, const char *what,
		  char **text, size_t *len, char *err, size_t err_len);

#endif
