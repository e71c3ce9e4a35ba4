/* Credential checks shared by every protocol. */
#include <string.h>

#include "mailsnare/auth.h"
#include "mailsnare/log.h"

int auth_check_password(struct store *st, const struct auth_policy *pol,
    const char *user, const char *password, struct store_inbox *inbox)
{
	int rc;

	if (pol->accept_any) {
		if (!store_inbox_name_valid(user))
			return STORE_NOTFOUND;
		return store_inbox_ensure(st, user, password, inbox);
	}
	rc = store_inbox_get(st, user, inbox);
	if (rc != STORE_OK)
		return rc;
	return sasl_streq_ct(inbox->password, password) ? STORE_OK : STORE_NOTFOUND;
}

int auth_check_sasl(struct store *st, const struct auth_policy *pol,
    const struct sasl *s, struct store_inbox *inbox)
{
	int rc;

	/* Acting for another identity (PLAIN authzid) is not offered. */
	if (s->authzid[0] != '\0' && strcmp(s->authzid, s->user) != 0)
		return STORE_NOTFOUND;
	if (s->mech != SASL_MECH_CRAM_MD5)
		return auth_check_password(st, pol, s->user, s->pass, inbox);
	if (pol->accept_any) {
		/* CRAM-MD5 never reveals the password: an inbox created here
		 * gets its own name as password (documented in README). */
		if (!store_inbox_name_valid(s->user))
			return STORE_NOTFOUND;
		return store_inbox_ensure(st, s->user, s->user, inbox);
	}
	rc = store_inbox_get(st, s->user, inbox);
	if (rc != STORE_OK)
		return rc;
	return sasl_verify(s, inbox->password) ? STORE_OK : STORE_NOTFOUND;
}

void auth_failure_delay(unsigned failures, unsigned step_ms, unsigned max_ms,
    struct timeval *tv)
{
	unsigned ms = failures > max_ms / step_ms ? max_ms : step_ms * failures;

	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}
