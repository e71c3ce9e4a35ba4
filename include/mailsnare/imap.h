/* IMAP4rev1 (RFC 3501) on the shared mailstore. */
#ifndef MAILSNARE_IMAP_H
#define MAILSNARE_IMAP_H

#include "mailsnare/server.h"

/* Before login: a literal or a whole command of at most this (LOGIN,
 * AUTHENTICATE, ID need no more); the command line bound is the same. */
#define IMAP_PREAUTH_LITERAL_MAX (8 * 1024)
#define IMAP_PREAUTH_COMMAND_MAX (128 * 1024)
#define IMAP_MAX_BAD_COMMANDS 20
#define IMAP_MAX_AUTH_FAILURES 10
/* Failed login: 200 ms more per failure on the connection, at most 5 s. */
#define IMAP_AUTH_DELAY_STEP_MS 200
#define IMAP_AUTH_DELAY_MAX_MS 5000

extern const struct proto imap_proto;

/* Modified UTF-7 (RFC 3501 §5.1.3) <-> UTF-8 mailbox names. Return the
 * length written (NUL-terminated), or -1 if malformed or too long. */
int imap_mutf7_to_utf8(const char *in, size_t len, char *out, size_t outsize);
int imap_utf8_to_mutf7(const char *in, char *out, size_t outsize);

#endif
