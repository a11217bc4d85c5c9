/*
 * test_loop.c — the request loop's answer to security.capability
 * (loop.h): learnt from the file system's "none", given again only to the
 * same question.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "phifs/loop.h"

/* A GETXATTR request for name, as the kernel lays it out. */
static size_t getxattr_req(uint8_t *buf, size_t room, uint32_t opcode,
			   uint64_t unique, const char *name)
{
	struct fuse_in_header h = { .opcode = opcode, .unique = unique };
	struct fuse_getxattr_in g = { .size = 0 };
	size_t len = sizeof(h) + sizeof(g) + strlen(name) + 1;

	cr_assert_leq(len, room);
	h.len = (uint32_t)len;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &g, sizeof(g));
	memcpy(buf + sizeof(h) + sizeof(g), name, strlen(name) + 1);
	return len;
}

static struct fuse_out_header err_reply(uint64_t unique, int err)
{
	return (struct fuse_out_header){ .len = sizeof(struct fuse_out_header),
					 .error = -err, .unique = unique };
}

Test(loop, learns_none_for_security_capability_only)
{
	uint8_t req[256];
	size_t n = getxattr_req(req, sizeof(req), FUSE_GETXATTR, 7,
				"security.capability");
	struct fuse_out_header out = err_reply(7, EOPNOTSUPP);

	cr_assert_eq(loop_cap_learn(req, n, &out), -EOPNOTSUPP);
	out = err_reply(7, ENODATA);
	cr_assert_eq(loop_cap_learn(req, n, &out), -ENODATA);
	/* Anything else may depend on the inode or the caller. */
	out = err_reply(7, EACCES);
	cr_assert_eq(loop_cap_learn(req, n, &out), 0);
	out = err_reply(7, 0);
	cr_assert_eq(loop_cap_learn(req, n, &out), 0);
	/* Another request's reply. */
	out = err_reply(8, EOPNOTSUPP);
	cr_assert_eq(loop_cap_learn(req, n, &out), 0);
	/* Another name, or another operation. */
	n = getxattr_req(req, sizeof(req), FUSE_GETXATTR, 7, "user.x");
	out = err_reply(7, ENODATA);
	cr_assert_eq(loop_cap_learn(req, n, &out), 0);
	n = getxattr_req(req, sizeof(req), FUSE_REMOVEXATTR, 7,
			 "security.capability");
	out = err_reply(7, EOPNOTSUPP);
	cr_assert_eq(loop_cap_learn(req, n, &out), 0);
}

Test(loop, answers_only_the_same_question)
{
	uint8_t req[256];
	struct fuse_out_header out;
	size_t n = getxattr_req(req, sizeof(req), FUSE_GETXATTR, 42,
				"security.capability");

	cr_assert_not(loop_cap_reply(0, req, n, &out), "nothing learnt yet");
	cr_assert(loop_cap_reply(-EOPNOTSUPP, req, n, &out));
	cr_assert_eq(out.len, sizeof(out));
	cr_assert_eq(out.error, -EOPNOTSUPP);
	cr_assert_eq(out.unique, 42);
	/* Cut short: the name does not end inside the request. */
	cr_assert_not(loop_cap_reply(-EOPNOTSUPP, req, n - 1, &out));
	n = getxattr_req(req, sizeof(req), FUSE_GETXATTR, 42,
			 "security.capabilityx");
	cr_assert_not(loop_cap_reply(-EOPNOTSUPP, req, n, &out));
	n = getxattr_req(req, sizeof(req), FUSE_GETXATTR, 42, "security.selinux");
	cr_assert_not(loop_cap_reply(-EOPNOTSUPP, req, n, &out));
	n = getxattr_req(req, sizeof(req), FUSE_GETXATTR, 42, "user.a");
	cr_assert_not(loop_cap_reply(-EOPNOTSUPP, req, n, &out));
	n = getxattr_req(req, sizeof(req), FUSE_LISTXATTR, 42,
			 "security.capability");
	cr_assert_not(loop_cap_reply(-EOPNOTSUPP, req, n, &out));
}
