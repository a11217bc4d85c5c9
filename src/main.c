/*
 * main.c — the phifs daemon's entry point: argv, process hardening, and (once
 * the mount lands) wiring of the FUSE layer to the core library.  Holds no
 * logic of its own.
 */
#include <stdio.h>
#include <string.h>

#include "phifs/secmem.h"

static const char usage_text[] =
	"usage: phifs --key SRC [options] BACKING MOUNTPOINT\n"
	"\n"
	"  -f                  stay in the foreground\n"
	"  --config FILE       INI file holding any of these settings\n"
	"  --policy FILE       access policy\n"
	"  --audit-dir DIR     where the integrity log goes\n"
	"  --socket PATH       control socket\n"
	"  -o OPT[,OPT...]     FUSE mount options\n"
	"\n"
	"This build has the storage core only: mounting is not built yet.\n";

int main(int argc, char **argv)
{
	if (secmem_harden_process())
		fputs("phifs: warning: cannot disable core dumps\n", stderr);
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		puts("phifs " PHIFS_VERSION);
		return 0;
	}
	fputs("phifs: mounting is not built yet; this build has the storage "
	      "core and phifsctl only\n", stderr);
	return 1;
}
