/*
 * fuzz_ctlmsg.c — libFuzzer harness: arbitrary bytes as a control socket
 * request line, and as a daemon's answer for phifsctl to format.  Parsing
 * must accept or refuse with a one-line reason, never crash; formatting
 * must print or refuse.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phifs/ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum ctl_cmd cmd;
	char why[512], *text;
	FILE *out;

	if (ctl_msg_parse((const char *)data, size, &cmd, why, sizeof(why)) &&
	    (!why[0] || strchr(why, '\n')))
		abort();	/* a refusal says why, in one line */
	text = malloc(size + 1);
	out = fopen("/dev/null", "w");
	if (text && out) {
		memcpy(text, data, size);
		text[size] = 0;
		(void)ctl_msg_format(text, CTL_FORMAT_TABLE, out, why,
				     sizeof(why));
		(void)ctl_msg_format(text, CTL_FORMAT_PROMETHEUS, out, why,
				     sizeof(why));
	}
	if (out)
		fclose(out);
	free(text);
	return 0;
}
