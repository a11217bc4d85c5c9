/*
 * test_sysnames.c — tests for src/sysnames.c against this system's own
 * databases: root is uid 0 and group 0 everywhere, and a name no system
 * holds resolves to nothing.
 */
#include "phifs/sysnames.h"

#include <criterion/criterion.h>
#include <errno.h>

Test(sysnames, root_resolves_both_ways)
{
	uint32_t id = 99, gid = 99;
	char name[64];

	cr_expect_eq(sysnames_user_id(NULL, "root", &id), 0);
	cr_expect_eq(id, 0);
	id = 99;
	cr_expect_eq(sysnames_group_id(NULL, "root", &id), 0);
	cr_expect_eq(id, 0);
	cr_assert_eq(sysnames_user_of(0, name, sizeof(name), &gid), 0);
	cr_expect_str_eq(name, "root");
	cr_expect_eq(gid, 0);
}

Test(sysnames, unknown_names_and_uids_are_enoent)
{
	uint32_t id = 7, gid = 7;
	char name[64];

	cr_expect_eq(sysnames_user_id(NULL, "no-such-user-here", &id),
		     -ENOENT);
	cr_expect_eq(sysnames_group_id(NULL, "no-such-group-here", &id),
		     -ENOENT);
	cr_expect_eq(id, 7);
	cr_expect_eq(sysnames_user_of(3999999999u, name, sizeof(name), &gid),
		     -ENOENT);
}

Test(sysnames, a_name_longer_than_the_room_is_erange)
{
	uint32_t gid;
	char name[3];

	cr_expect_eq(sysnames_user_of(0, name, sizeof(name), &gid), -ERANGE);
}

Test(sysnames, the_groups_hold_the_primary_one_and_fit_or_say_so)
{
	uint32_t groups[64];
	size_t n = 0;
	bool found = false;

	cr_assert_eq(sysnames_groups_of("root", 12345, groups, 64, &n), 0);
	for (size_t i = 0; i < n; i++)
		found |= groups[i] == 12345;
	cr_expect(found);
	cr_expect_eq(sysnames_groups_of("root", 12345, groups, 0, &n),
		     -ERANGE);
}

Test(sysnames, the_resolver_is_the_two_lookups)
{
	cr_expect_eq(sysnames_resolver.user, sysnames_user_id);
	cr_expect_eq(sysnames_resolver.group, sysnames_group_id);
}
