/*
 * sysnames.c — users and groups through getpwnam_r, getgrnam_r,
 * getpwuid_r and getgrouplist: the only place the system's user and group
 * databases are read.  Knows nothing of policies beyond the resolver's
 * shape.
 */
#include "phifs/sysnames.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/types.h>

/* Room for one entry; larger ones (huge groups) are said as -ERANGE. */
#define ENTRY_BUF 16384

const struct policy_resolver sysnames_resolver = {
	.user = sysnames_user_id,
	.group = sysnames_group_id,
};

int sysnames_user_id(void *ctx, const char *name, uint32_t *id)
{
	struct passwd pw, *res = NULL;
	char buf[ENTRY_BUF];
	int e;

	(void)ctx;
	e = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (e)
		return -e;
	if (!res)
		return -ENOENT;
	*id = (uint32_t)pw.pw_uid;
	return 0;
}

int sysnames_group_id(void *ctx, const char *name, uint32_t *id)
{
	struct group gr, *res = NULL;
	char buf[ENTRY_BUF];
	int e;

	(void)ctx;
	e = getgrnam_r(name, &gr, buf, sizeof(buf), &res);
	if (e)
		return -e;
	if (!res)
		return -ENOENT;
	*id = (uint32_t)gr.gr_gid;
	return 0;
}

int sysnames_user_of(uint32_t uid, char *name, size_t len, uint32_t *gid)
{
	struct passwd pw, *res = NULL;
	char buf[ENTRY_BUF];
	int e;

	e = getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res);
	if (e)
		return -e;
	if (!res)
		return -ENOENT;
	if (strlen(pw.pw_name) >= len)
		return -ERANGE;
	strcpy(name, pw.pw_name);
	*gid = (uint32_t)pw.pw_gid;
	return 0;
}

int sysnames_groups_of(const char *user, uint32_t gid, uint32_t *groups,
		       size_t max, size_t *n)
{
	gid_t list[1024];
	int count = (int)(max < 1024 ? max : 1024);

	if (getgrouplist(user, (gid_t)gid, list, &count) < 0)
		return -ERANGE;
	for (int i = 0; i < count; i++)
		groups[i] = (uint32_t)list[i];
	*n = (size_t)count;
	return 0;
}
