/*
 * oldkernel.c — runs a program as if on Linux 6.1: installs the filter of
 * oldkernel_filter.h, then execs its arguments, which inherit the filter.
 * The mount tests run the phifs programs through it when
 * PHIFS_TEST_OLD_KERNEL=1, so that their fallbacks for newer system calls
 * are tested on any kernel.  Knows nothing of phifs.
 *
 * Usage: oldkernel PROGRAM [ARG...]; exits 127 when it cannot run PROGRAM.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "oldkernel_filter.h"

int main(int argc, char **argv)
{
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: oldkernel PROGRAM [ARG...]\n");
		return 2;
	}
	rc = oldkernel_filter_install();
	if (rc) {
		fprintf(stderr, "oldkernel: cannot install the filter: %s\n",
			strerror(-rc));
		return 127;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "oldkernel: %s: %s\n", argv[1], strerror(errno));
	return 127;
}
