/* The POP3 server (RFC 1939 with RFC 2449 CAPA and response codes, RFC
 * 2595 STLS, RFC 5034 SASL AUTH, APOP) on the shared mailstore: the
 * maildrop is a snapshot of the inbox's INBOX taken at login. */
#ifndef MAILSNARE_POP3_H
#define MAILSNARE_POP3_H

#include "mailsnare/server.h"

/* After this many failed logins or refused commands the session ends. */
#define POP3_MAX_AUTH_FAILURES 10
#define POP3_MAX_ERRORS 20

extern const struct proto pop3_proto;

#endif
