/*
 * volfixture.c — a fresh volume for tests (volfixture.h).
 */
#include "volfixture.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "phifs/crypto.h"
#include "phifs/keys.h"

/* Writes a random raw key to path, mode 0400. */
static void write_key(const char *path)
{
	uint8_t key[32];
	int fd;

	cr_assert_eq(crypto_random(key, sizeof(key)), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0400);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, key, sizeof(key)), (ssize_t)sizeof(key));
	close(fd);
}

struct volume *vf_make(const char *dir, char *keyfile, size_t len)
{
	struct keys_secret *sec;
	struct keys_store *ks;
	struct volume *vol;
	char err[256], spec[128];
	int fd, mfd;

	snprintf(keyfile, len, "%s.key", dir);
	write_key(keyfile);
	snprintf(spec, sizeof(spec), "file:%s", keyfile);
	cr_assert_eq(keys_source_load(spec, &sec, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(keys_create(sec, NULL, &ks), 0);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_eq(mkdirat(fd, KEYS_DIR, 0700), 0);
	mfd = openat(fd, KEYS_DIR, O_RDONLY | O_DIRECTORY);
	cr_assert_eq(keys_save(ks, mfd, err, sizeof(err)), 0, "%s", err);
	close(mfd);
	close(fd);
	keys_free(ks);
	keys_secret_free(sec);
	cr_assert_eq(volume_open(dir, spec, false, &vol, err, sizeof(err)), 0,
		     "%s", err);
	return vol;
}
