/*
 * cfixture.h — the volume that the cfile tests open files in: one master
 * key version (1) with a random KEK, a volume ID of the test's choosing,
 * no journal folder and no size key unless the test sets them.  Files on
 * memfds, created and reopened with Criterion asserts.  Knows nothing of
 * keystores or mounts.
 */
#ifndef PHIFS_CFIXTURE_H
#define PHIFS_CFIXTURE_H

#include <stdint.h>

#include "phifs/cfile.h"

/* The volume; tests may change its journal folder and size key. */
extern struct cfile_volume cf_vol;

/* Makes cf_vol, its volume ID starting with id0, id1; a suite's .init. */
void cf_setup(uint8_t id0, uint8_t id1);
/* Frees the KEK; a suite's .fini. */
void cf_teardown(void);
/* A new empty encrypted file on a fresh memfd named name, in *fd. */
struct cfile *cf_new(const char *name, int *fd);
/* Releases f and opens the file on fd again. */
struct cfile *cf_reopen(struct cfile *f, int fd);

#endif
