/* Builds "t VERB <input>\r\n" and parses it with the generic parser, so
 * the FETCH and SEARCH targets get an argument tree made of fuzzed bytes. */
#ifndef MAILSNARE_FUZZ_IMAP_ARGS_H
#define MAILSNARE_FUZZ_IMAP_ARGS_H

#include "mailsnare/imap_parse.h"
#include "fuzz.h"

static inline struct imap_command *fuzz_imap_command(const char *verb, const uint8_t *d,
    size_t n)
{
	struct imap_limits lim;
	struct imap_command *cmd = NULL;
	struct imap_error err;
	struct fbuf b = { 0 };

	imap_limits_default(&lim);
	fbuf_adds(&b, "t ");
	fbuf_adds(&b, verb);
	fbuf_adds(&b, " ");
	fbuf_add(&b, d, n);
	fbuf_adds(&b, "\r\n");
	if (imap_parse_command(&lim, b.p, b.len, &cmd, &err) != 0)
		cmd = NULL;
	fbuf_free(&b);
	return cmd;
}

#endif
