/*
 * cfixture.c — the cfile tests' volume (cfixture.h).
 */
#include "cfixture.h"

#include <criterion/criterion.h>
#include <string.h>

#include "testutil.h"

struct cfile_volume cf_vol;
static struct crypto_key *kek;
static uint8_t volid[FORMAT_ID_LEN];

static const struct crypto_key *kek_of(void *arg, uint32_t v)
{
	(void)arg;
	return v == 1 ? kek : NULL;
}

void cf_setup(uint8_t id0, uint8_t id1)
{
	kek = crypto_key_random();
	cr_assert(kek);
	memset(volid, 0, sizeof(volid));
	volid[0] = id0;
	volid[1] = id1;
	cf_vol = (struct cfile_volume){ .volume_id = volid, .kek = kek_of,
					.active_version = 1,
					.journal_dirfd = -1 };
}

void cf_teardown(void)
{
	crypto_key_free(kek);
	kek = NULL;
}

struct cfile *cf_new(const char *name, int *fd)
{
	struct cfile *f;

	*fd = tu_memfd(name);
	cr_assert_eq(cfile_create(*fd, &cf_vol, &f), 0);
	return f;
}

struct cfile *cf_reopen(struct cfile *f, int fd)
{
	struct cfile *g;

	cr_assert_eq(cfile_release(f), 0);
	cr_assert_eq(cfile_open(fd, &cf_vol, &g), 0);
	return g;
}
