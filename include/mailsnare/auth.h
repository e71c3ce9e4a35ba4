/*
 * One authentication flow for every protocol (as Dovecot's login-common):
 * the credential checks against the inboxes, auth-accept-any, the SASL
 * exchange, the delay before a failure is answered, and the failure
 * budget per client address. A protocol keeps only the mapping of an
 * `enum auth_rc` to its own replies.
 */
#ifndef MAILSNARE_AUTH_H
#define MAILSNARE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "mailsnare/sasl.h"
#include "mailsnare/store.h"

struct event;

/*
 * Failed logins counted per client address, across every connection and
 * protocol, as a leaky bucket: each failure adds one, and the level drains
 * by the budget (key auth-fail-limit, default AUTH_BUDGET_FAILURES) a
 * minute. While the level is under the budget (a fixture that mistyped a few times, the test
 * suite's deliberate failures), only the connection's own delay applies.
 * Beyond it, the failures of that address are answered one at a time,
 * AUTH_BUDGET_SPACING_MS apart, whatever connection they come on: 20-50
 * connections guessing in parallel get at most 1000 / AUTH_BUDGET_SPACING_MS
 * answers a second between them. Successes are never delayed nor counted.
 * The table is bounded: the least recently failing address makes room.
 */
#define AUTH_BUDGET_ADDRS 1024
#define AUTH_BUDGET_FAILURES 20
#define AUTH_BUDGET_WINDOW_MS 60000
#define AUTH_BUDGET_SPACING_MS 250
/* A failure is never held longer than this (clients give up). */
#define AUTH_BUDGET_MAX_DELAY_MS 30000
#define AUTH_ADDR_MAX 64

struct auth_budget_entry {
	char addr[AUTH_ADDR_MAX];    /* "" if free */
	uint64_t last_ms;            /* its last failure (least recent makes room) */
	uint64_t level_at;           /* ms when level was last brought up to date */
	uint32_t level;              /* failures, in 1/1000 */
	uint64_t next_ms;            /* earliest answer for a failure beyond the budget */
};

struct auth_budget {
	unsigned failures;           /* a minute; 0: AUTH_BUDGET_FAILURES */
	struct auth_budget_entry e[AUTH_BUDGET_ADDRS];
};

/* Counts a failure of addr at now_ms (a monotonic clock) and returns how
 * long (ms) to wait before answering it: the larger of conn_delay_ms and
 * the address's next free slot. */
unsigned auth_budget_charge(struct auth_budget *b, const char *addr, uint64_t now_ms,
    unsigned conn_delay_ms);

struct auth_policy {
	bool accept_any;     /* any credentials; the user names the inbox, created on use */
	struct auth_budget budget;
};

/* Verifies a finished SASL exchange. Returns STORE_OK with *inbox set,
 * STORE_NOTFOUND for bad credentials (unknown user or wrong password),
 * or a negative STORE_ error. */
int auth_check_sasl(struct store *st, const struct auth_policy *pol,
    const struct sasl *s, struct store_inbox *inbox);

/* The same for a user name and password (POP3 USER/PASS, IMAP LOGIN, and
 * HTTP Basic): no protocol in it. */
int auth_check_password(struct store *st, const struct auth_policy *pol,
    const char *user, const char *password, struct store_inbox *inbox);

/* Inbox passwords made by mailsnare (CLI `inbox add`, the HTTP API): 16
 * characters of [a-z0-9] from OpenSSL's generator. 0, or -1 if len is too
 * small or there is no randomness. */
#define AUTH_PASSWORD_GENERATED_LEN 16
int auth_random_password(char *out, size_t len);
/* A password a user may set: 1..STORE_PASS_MAX - 1 characters, no
 * control characters (it travels in SASL, LOGIN and config lines). */
bool auth_password_valid(const char *password);

/* How long to wait before answering the n-th failed login on a
 * connection: step_ms more per failure, at most max_ms. */
unsigned auth_failure_delay_ms(unsigned failures, unsigned step_ms, unsigned max_ms);

/* What happened, for the protocol to answer. */
enum auth_rc {
	AUTH_CHALLENGE,   /* send as->out (base64, may be ""); the next line goes to auth_step */
	AUTH_OK,          /* authenticated: *as->inbox is filled in */
	AUTH_FAILED,      /* bad credentials: pause input; the owner's delay timer
	                   * fires when the failure may be answered */
	AUTH_CANCELLED,   /* the client sent "*" */
	AUTH_MALFORMED,   /* bad base64 or message format */
	AUTH_TEMPFAIL,    /* the store failed (or out of memory) */
	AUTH_NOMECH,      /* auth_start: unknown mechanism */
	AUTH_NEED_TLS,    /* auth_start: a plaintext mechanism before TLS */
	AUTH_TOOLONG      /* a response line beyond the protocol's bound ended the
	                   * exchange (line_input.h) */
};

/* What a protocol tells the flow once. */
struct auth_session_params {
	const char *proto;             /* "smtp", for the log */
	struct store *store;
	struct auth_policy *policy;
	const char *host;              /* in the CRAM-MD5 challenge */
	bool allow_plaintext;          /* allow-plaintext-auth */
	unsigned step_ms, max_ms;      /* the per-connection failure delay */
	/* The failure timer on the server's event_base, created by the
	 * protocol with its own callback (which sends the failure reply);
	 * armed here. */
	struct event *ev_delay;
};

struct auth_session {
	struct auth_session_params p;
	char addr[AUTH_ADDR_MAX];      /* client address, for the budget */
	struct store_inbox *inbox;     /* filled in on AUTH_OK */
	bool active;                   /* a SASL exchange waits for a line */
	struct sasl sasl;
	unsigned failures;             /* on this connection */
	char out[SASL_OUT_MAX];        /* the challenge on AUTH_CHALLENGE */
};

void auth_session_init(struct auth_session *as, const struct auth_session_params *p,
    const char *addr, struct store_inbox *inbox);
/* Ends an exchange in progress and wipes what it held. */
void auth_session_end(struct auth_session *as);

/* TLS, or allow-plaintext-auth: may passwords be sent as they are? */
bool auth_plaintext_ok(const struct auth_session *as, bool tls);
/* The mechanisms to advertise, each as prefix + name, separated by a
 * space ("PLAIN LOGIN CRAM-MD5", or with prefix "AUTH=" for IMAP). */
void auth_mechanisms(bool plaintext_ok, const char *prefix, char *buf, size_t size);

/* A SASL exchange: mechanism name as the client sent it, and its initial
 * response (base64, "=" for empty) or NULL. */
enum auth_rc auth_start(struct auth_session *as, bool tls, const char *mech,
    const char *initial);
/* The client's next line (without CRLF) while as->active. */
enum auth_rc auth_step(struct auth_session *as, const char *line);
/* A user name and password (LOGIN, USER/PASS). */
enum auth_rc auth_password(struct auth_session *as, const char *user, const char *pass);
/* APOP (RFC 1939 §7) against the greeting's timestamp. */
enum auth_rc auth_apop(struct auth_session *as, const char *timestamp, const char *user,
    const char *digest);
/* Counts a failure without a check (credentials that cannot be valid). */
enum auth_rc auth_fail(struct auth_session *as);

#endif
