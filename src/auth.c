/*
 * The authentication flow shared by SMTP, POP3 and IMAP (and HTTP Basic
 * through auth_check_password): credential checks, the SASL exchange, the
 * delay before a failure is answered and the failure budget per client
 * address. No protocol replies here: the caller maps enum auth_rc.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "mailsnare/apop.h"
#include "mailsnare/auth.h"
#include "mailsnare/log.h"
#include "mailsnare/metrics.h"

/* --- credential checks ----------------------------------------------- */

/*
 * auth-accept-any: a name that is not an inbox yet becomes one, with the
 * password given; an inbox that exists keeps its password, which must
 * match as without auth-accept-any. Mechanisms that never reveal the
 * password (CRAM-MD5, APOP) verify against an existing inbox the same
 * way, and an inbox they create gets its own name as password.
 *
 * Returns STORE_OK with *inbox set and *created telling whether it is new,
 * STORE_NOTFOUND for a name that cannot be an inbox, or an error.
 */
static int accept_any_inbox(struct store *st, const char *user, const char *password,
    struct store_inbox *inbox, bool *created)
{
	int rc = store_inbox_get(st, user, inbox);

	*created = false;
	if (rc != STORE_NOTFOUND)
		return rc;
	if (!store_inbox_name_valid(user)) {
		log_info("auth-accept-any: refused inbox name: %s",
		    store_inbox_name_check(user, strlen(user)));
		return STORE_NOTFOUND;
	}
	rc = store_inbox_add(st, user, password, inbox);
	if (rc == STORE_EXISTS)   /* another process (the CLI) made it meanwhile */
		return store_inbox_get(st, user, inbox);
	*created = rc == STORE_OK;
	return rc;
}

int auth_check_password(struct store *st, const struct auth_policy *pol,
    const char *user, const char *password, struct store_inbox *inbox)
{
	bool created;
	int rc;

	if (pol->accept_any)
		rc = accept_any_inbox(st, user, password, inbox, &created);
	else
		rc = store_inbox_get(st, user, inbox);
	if (rc != STORE_OK)
		return rc;
	return sasl_streq_ct(inbox->password, password) ? STORE_OK : STORE_NOTFOUND;
}

/* The inbox for a digest mechanism: *verify says whether the digest must
 * still be checked against inbox->password. */
static int digest_inbox(struct store *st, const struct auth_policy *pol, const char *user,
    struct store_inbox *inbox, bool *verify)
{
	bool created = false;
	int rc;

	if (pol->accept_any)
		rc = accept_any_inbox(st, user, user, inbox, &created);
	else
		rc = store_inbox_get(st, user, inbox);
	*verify = !created;
	return rc;
}

int auth_check_sasl(struct store *st, const struct auth_policy *pol,
    const struct sasl *s, struct store_inbox *inbox)
{
	bool verify;
	int rc;

	/* Acting for another identity (PLAIN authzid) is not offered. */
	if (s->authzid[0] != '\0' && strcmp(s->authzid, s->user) != 0)
		return STORE_NOTFOUND;
	if (s->mech != SASL_MECH_CRAM_MD5)
		return auth_check_password(st, pol, s->user, s->pass, inbox);
	rc = digest_inbox(st, pol, s->user, inbox, &verify);
	if (rc != STORE_OK)
		return rc;
	return !verify || sasl_verify(s, inbox->password) ? STORE_OK : STORE_NOTFOUND;
}

unsigned auth_failure_delay_ms(unsigned failures, unsigned step_ms, unsigned max_ms)
{
	if (step_ms == 0)
		return 0;
	return failures > max_ms / step_ms ? max_ms : step_ms * failures;
}

/* --- the failure budget per address ---------------------------------- */

#define LEVEL_ONE 1000u

/* The budget in level units (1/1000 failure). Past twice the budget more
 * failures add nothing, so an address is back under its budget about a
 * minute after it stopped. */
static uint64_t level_budget(const struct auth_budget *b)
{
	return (uint64_t)(b->failures ? b->failures : AUTH_BUDGET_FAILURES) * LEVEL_ONE;
}

static void budget_drain(const struct auth_budget *b, struct auth_budget_entry *e,
    uint64_t now_ms)
{
	uint64_t drained;

	if (now_ms <= e->level_at)
		return;
	drained = (now_ms - e->level_at) * level_budget(b) / AUTH_BUDGET_WINDOW_MS;
	e->level = drained >= e->level ? 0 : e->level - (uint32_t)drained;
	e->level_at = now_ms;
}

/* The entry of addr, or the one to give it: a free or expired entry,
 * else the least recently charged. */
static struct auth_budget_entry *budget_find(struct auth_budget *b, const char *addr,
    uint64_t now_ms)
{
	struct auth_budget_entry *victim = NULL, *e;
	size_t i;

	for (i = 0; i < AUTH_BUDGET_ADDRS; i++) {
		e = &b->e[i];
		if (e->addr[0] != '\0' && strcmp(e->addr, addr) == 0)
			return e;
		if (victim != NULL && victim->addr[0] == '\0')
			continue;
		if (e->addr[0] != '\0') {
			budget_drain(b, e, now_ms);
			if (e->level == 0 && e->next_ms <= now_ms)
				e->addr[0] = '\0';   /* expired */
		}
		if (victim == NULL || e->addr[0] == '\0' || e->last_ms < victim->last_ms)
			victim = e;
	}
	memset(victim, 0, sizeof(*victim));
	snprintf(victim->addr, sizeof(victim->addr), "%s", addr);
	victim->level_at = now_ms;
	return victim;
}

unsigned auth_budget_charge(struct auth_budget *b, const char *addr, uint64_t now_ms,
    unsigned conn_delay_ms)
{
	struct auth_budget_entry *e = budget_find(b, addr, now_ms);
	uint64_t at = now_ms + conn_delay_ms;

	budget_drain(b, e, now_ms);
	e->last_ms = now_ms;
	if (e->level < 2 * level_budget(b))
		e->level += LEVEL_ONE;
	if (e->level <= level_budget(b))
		return conn_delay_ms;
	/* Over the budget: one answer per slot for the whole address. */
	if (e->next_ms > at)
		at = e->next_ms;
	if (at > now_ms + AUTH_BUDGET_MAX_DELAY_MS)
		at = now_ms + AUTH_BUDGET_MAX_DELAY_MS;
	e->next_ms = at + AUTH_BUDGET_SPACING_MS;
	return (unsigned)(at - now_ms);
}

/* --- the session ------------------------------------------------------ */

void auth_session_init(struct auth_session *as, const struct auth_session_params *p,
    const char *addr, struct store_inbox *inbox)
{
	memset(as, 0, sizeof(*as));
	as->p = *p;
	snprintf(as->addr, sizeof(as->addr), "%s", addr);
	as->inbox = inbox;
	sasl_reset(&as->sasl);
}

void auth_session_end(struct auth_session *as)
{
	as->active = false;
	sasl_reset(&as->sasl);
	as->out[0] = '\0';
}

bool auth_plaintext_ok(const struct auth_session *as, bool tls)
{
	return tls || as->p.allow_plaintext;
}

void auth_mechanisms(bool plaintext_ok, const char *prefix, char *buf, size_t size)
{
	sasl_mech_list(plaintext_ok, prefix, buf, size);
}

static uint64_t auth_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

enum auth_rc auth_fail(struct auth_session *as)
{
	unsigned ms = auth_failure_delay_ms(++as->failures, as->p.step_ms, as->p.max_ms);
	struct timeval tv;

	ms = auth_budget_charge(&as->p.policy->budget, as->addr, auth_now_ms(), ms);
	metrics_auth_failure(as->p.proto);
	log_info("%s: %s: authentication failed", as->p.proto, as->addr);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(as->p.ev_delay, &tv);
	return AUTH_FAILED;
}

/* The result of a credential check (STORE_OK, STORE_NOTFOUND or an error). */
static enum auth_rc auth_result(struct auth_session *as, int rc)
{
	if (rc == STORE_OK)
		return AUTH_OK;
	if (rc == STORE_NOTFOUND)
		return auth_fail(as);
	return AUTH_TEMPFAIL;
}

static enum auth_rc auth_sasl_result(struct auth_session *as, enum sasl_rc rc)
{
	int crc;

	switch (rc) {
	case SASL_CONTINUE:
		as->active = true;
		return AUTH_CHALLENGE;
	case SASL_DONE:
		crc = auth_check_sasl(as->p.store, as->p.policy, &as->sasl, as->inbox);
		auth_session_end(as);
		return auth_result(as, crc);
	case SASL_CANCELLED:
		auth_session_end(as);
		return AUTH_CANCELLED;
	default:
		auth_session_end(as);
		return AUTH_MALFORMED;
	}
}

enum auth_rc auth_start(struct auth_session *as, bool tls, const char *name,
    const char *initial)
{
	enum sasl_mech mech = sasl_mech_parse(name);

	auth_session_end(as);
	if (mech == SASL_MECH_NONE)
		return AUTH_NOMECH;
	if (sasl_mech_plaintext(mech) && !auth_plaintext_ok(as, tls))
		return AUTH_NEED_TLS;
	return auth_sasl_result(as, sasl_start(&as->sasl, mech, initial, as->p.host,
	    as->out, sizeof(as->out)));
}

enum auth_rc auth_step(struct auth_session *as, const char *line)
{
	return auth_sasl_result(as, sasl_step(&as->sasl, line, as->out, sizeof(as->out)));
}

enum auth_rc auth_password(struct auth_session *as, const char *user, const char *pass)
{
	return auth_result(as, auth_check_password(as->p.store, as->p.policy, user, pass,
	    as->inbox));
}

/* With auth-accept-any, as CRAM-MD5: an existing inbox's password is
 * verified, a new inbox gets its name as password. */
enum auth_rc auth_apop(struct auth_session *as, const char *timestamp, const char *user,
    const char *digest)
{
	bool verify;
	int rc = digest_inbox(as->p.store, as->p.policy, user, as->inbox, &verify);

	if (rc == STORE_OK && verify && !apop_verify(timestamp, as->inbox->password, digest))
		rc = STORE_NOTFOUND;
	return auth_result(as, rc);
}

int auth_random_password(char *out, size_t len)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	const size_t n = sizeof(alphabet) - 1;
	size_t have = 0;

	if (len <= AUTH_PASSWORD_GENERATED_LEN)
		return -1;
	while (have < AUTH_PASSWORD_GENERATED_LEN) {
		unsigned char buf[32];

		if (RAND_bytes(buf, sizeof(buf)) != 1)
			return -1;
		for (size_t i = 0; i < sizeof(buf) && have < AUTH_PASSWORD_GENERATED_LEN; i++)
			if (buf[i] < 256 - 256 % n)
				out[have++] = alphabet[buf[i] % n];
	}
	out[have] = '\0';
	return 0;
}

bool auth_password_valid(const char *pw)
{
	size_t len = strlen(pw);

	if (len == 0 || len >= STORE_PASS_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)pw[i] < 0x20 || pw[i] == 0x7f)
			return false;
	return true;
}
