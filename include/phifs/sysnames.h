/*
 * sysnames.h — users and groups from the system's databases (passwd and
 * group, through NSS): names to ids for a policy's [user:NAME] and
 * [group:NAME], and a uid's name, primary group and groups.  Knows nothing
 * of what the ids are used for.  Thread-safe (the _r calls).
 */
#ifndef PHIFS_SYSNAMES_H
#define PHIFS_SYSNAMES_H

#include <stddef.h>
#include <stdint.h>

#include "phifs/policy.h"

/* Resolves names through sysnames_user_id and sysnames_group_id. */
extern const struct policy_resolver sysnames_resolver;

/*
 * The uid or gid called name: 0 and *id; -ENOENT for none; -ERANGE for an
 * entry too large to read, or the lookup's -errno.  ctx is unused.
 */
int sysnames_user_id(void *ctx, const char *name, uint32_t *id);
int sysnames_group_id(void *ctx, const char *name, uint32_t *id);

/*
 * uid's name (in name, len bytes) and primary group: 0, -ENOENT for a uid
 * without an entry, -ERANGE for a name longer than len, or -errno.
 */
int sysnames_user_of(uint32_t uid, char *name, size_t len, uint32_t *gid);

/*
 * The groups user belongs to, gid among them, at most max in groups: 0 and
 * *n; -ERANGE if there are more than max.
 */
int sysnames_groups_of(const char *user, uint32_t gid, uint32_t *groups,
		       size_t max, size_t *n);

#endif
