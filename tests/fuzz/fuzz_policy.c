/*
 * fuzz_policy.c — libFuzzer harness: arbitrary bytes as a policy file.
 * The parse must accept, or refuse with one line naming the file; a
 * policy it accepts must decide, for callers and paths drawn from a fixed
 * set, without crashing, and a decision must say what decided.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every name resolves, to its length: no system database is read. */
static int any_name(void *ctx, const char *name, uint32_t *id)
{
	(void)ctx;
	*id = (uint32_t)strlen(name);
	return 0;
}

static const struct policy_resolver resolver = { any_name, any_name, NULL };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = {
		"/", "/a", "/a/b", "/patients/7/chart", "/1/2/3/4/5/6",
		"/x/y/x/y/z", "/billing", "/r/home/..b",
	};
	static const uint32_t groups[] = { 0, 1, 2, 3, 7, 2000 };
	struct policy_decision d;
	struct policy *p = NULL;
	char err[POLICY_ERR_LEN], line[1024];
	int rc;

	rc = policy_parse("f.ini", (const char *)data, size, &resolver, &p,
			  err, sizeof(err));
	if (rc) {
		if (p || strncmp(err, "f.ini:", 6) || strchr(err, '\n'))
			abort();	/* refused: one line, naming the file */
		return 0;
	}
	for (uint32_t uid = 0; uid < 4; uid++) {
		struct policy_caller c = { .uid = uid * 7, .gid = uid,
					   .groups = groups, .ngroups = uid,
					   .user = uid ? "ann" : NULL };

		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			for (int op = POLICY_READ; op <= POLICY_TRAVERSE;
			     op++) {
				policy_decide(p, &c, (enum policy_op)op,
					      paths[i], &d);
				if (!d.role && !d.rule)
					abort();
				policy_decision_format(&d, line,
						       sizeof(line));
			}
		}
	}
	policy_free(p);
	return 0;
}
