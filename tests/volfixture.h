/*
 * volfixture.h — a fresh phifs volume for tests of the layers above a
 * volume (the operations core, the access hook): a random key in a file
 * beside the folder, a keystore made with it, the volume opened.  Knows
 * nothing of mounts.
 */
#ifndef PHIFS_VOLFIXTURE_H
#define PHIFS_VOLFIXTURE_H

#include <stddef.h>

#include "phifs/volume.h"

/*
 * Makes the empty folder dir a volume whose key goes to "<dir>.key"
 * (named in keyfile, len bytes) and opens it; Criterion asserts on error.
 */
struct volume *vf_make(const char *dir, char *keyfile, size_t len);

#endif
