/* The SMTP trap (RFC 5321 with AUTH, STARTTLS, SIZE, 8BITMIME, PIPELINING,
 * ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING): every accepted message is
 * stored, nothing is relayed. */
#ifndef MAILSNARE_SMTP_H
#define MAILSNARE_SMTP_H

#include "mailsnare/server.h"

/* RFC 5321 §4.5.3.1.4: 512 octets including CRLF. */
#define SMTP_COMMAND_LINE_MAX 512
/* RFC 4954 §4: AUTH lines may be longer to carry an initial response. */
#define SMTP_AUTH_LINE_MAX 12288
#define SMTP_MAX_RCPTS 1000
#define SMTP_MAX_ERRORS 20
/* Failed AUTH: 200 ms more per failure on the connection, at most 5 s. */
#define SMTP_AUTH_DELAY_STEP_MS 200
#define SMTP_AUTH_DELAY_MAX_MS 5000
/* The default inbox for sessions without AUTH (DESIGN §3). */
#define SMTP_DEFAULT_INBOX "dev"
#define SMTP_DEFAULT_PASSWORD "dev"

extern const struct proto smtp_proto;

#endif
