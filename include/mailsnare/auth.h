/* Checking credentials against the inboxes, for every protocol: plain
 * passwords and SASL exchanges, auth-accept-any. */
#ifndef MAILSNARE_AUTH_H
#define MAILSNARE_AUTH_H

#include <stdbool.h>
#include <sys/time.h>

#include "mailsnare/sasl.h"
#include "mailsnare/store.h"

struct auth_policy {
	bool accept_any;     /* any credentials; the user names the inbox, created on use */
};

/* Verifies a finished SASL exchange. Returns STORE_OK with *inbox set,
 * STORE_NOTFOUND for bad credentials (unknown user or wrong password),
 * or a negative STORE_ error. */
int auth_check_sasl(struct store *st, const struct auth_policy *pol,
    const struct sasl *s, struct store_inbox *inbox);

/* The same for a user name and password (POP3 USER/PASS, IMAP LOGIN). */
int auth_check_password(struct store *st, const struct auth_policy *pol,
    const char *user, const char *password, struct store_inbox *inbox);

/* How long to wait before answering the n-th failed login on a
 * connection: step_ms more per failure, at most max_ms. The wait runs on
 * a timer, so other clients are not held up. */
void auth_failure_delay(unsigned failures, unsigned step_ms, unsigned max_ms,
    struct timeval *tv);

#endif
