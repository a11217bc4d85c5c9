/*
 * errmsg.h — the one-line messages for humans that fallible calls leave in
 * a caller's buffer beside their -errno: what went wrong, naming the file or
 * setting at fault.  Never key material.
 */
#ifndef PHIFS_ERRMSG_H
#define PHIFS_ERRMSG_H

#include <stddef.h>

/* Formats into err (if err and len); returns rc, for "return errmsg(...)". */
int errmsg(char *err, size_t len, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
