/*
 * POP3 session (RFC 1939, RFC 2449, RFC 2595, RFC 5034): a state
 * (AUTHORIZATION or TRANSACTION; UPDATE happens within QUIT), an input
 * mode, a maildrop snapshot created at login and freed at the end, a
 * streamed RETR/TOP in progress, and one command table. Replies go out
 * through pop3_reply(), which also counts errors.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "mailsnare/apop.h"
#include "mailsnare/config.h"
#include "mailsnare/line_input.h"
#include "mailsnare/log.h"
#include "mailsnare/pop3.h"
#include "mailsnare/pop3_parse.h"
#include "mailsnare/sasl.h"
#include "mailsnare/store.h"

/* A RETR/TOP queues this much, then waits for the output to drain to
 * CONN_WRITE_LOWWATER: a large message is never held whole in memory. */
#define POP3_STREAM_CHUNK (256 * 1024)
/* Failed logins are answered after 100 ms more per failure, at most 3 s. */
#define POP3_AUTH_DELAY_STEP_MS 100
#define POP3_AUTH_DELAY_MAX_MS 3000
/* Room for "<pid.time.random@hostname>". */
#define POP3_TIMESTAMP_MAX 320

enum pop3_state {
	P_AUTHORIZATION,
	P_TRANSACTION
};
#define IN(st) (1u << (st))
#define ANY_STATE (IN(P_AUTHORIZATION) | IN(P_TRANSACTION))

/* What the next input is. */
enum pop3_mode {
	M_COMMAND,
	M_SASL,     /* an AUTH exchange waits for the client's response line */
	M_WAIT,     /* an auth-failure delay runs */
	M_STREAM,   /* a RETR/TOP is being sent; input waits */
	M_DONE      /* QUIT or fatal: nothing more is read */
};

/* The set of inboxes with a session in TRANSACTION (pop3_locks):
 * RFC 1939 §8 lets one session at a time own a maildrop. POP3's own
 * state, not the server's: all sessions run on one thread, and an inbox
 * is named by its store as well, so two servers in one process (unit
 * tests) do not see each other's locks. */
struct pop3_lock {
	const struct store *store;
	int64_t inbox_id;
	struct pop3_lock *next;
};

static struct pop3_lock *pop3_locks;

/* One message of the snapshot; its number is its index + 1. */
struct pop3_msg {
	int64_t id;
	uint32_t uid;
	uint64_t size;
	bool deleted;
};

/* The maildrop as it was at login (RFC 1939 §5: numbers and sizes stay
 * the same for the whole session). */
struct pop3_maildrop {
	struct pop3_msg *msgs;
	uint32_t n, cap;
	uint32_t uidvalidity;
};

/* A RETR or TOP in progress. */
struct pop3_stream {
	const struct pop3_msg *msg;
	uint32_t msgno;
	bool top;
	bool started;                /* the +OK line went out */
	uint64_t offset;             /* next byte of the message to read */
	size_t got;                  /* bytes read by the current step */
	struct pop3_top topc;
	struct pop3_stuff stuff;
};

struct pop3_session {
	struct conn *conn;
	struct server *srv;
	enum pop3_state state;
	enum pop3_mode mode;
	char timestamp[POP3_TIMESTAMP_MAX];  /* the greeting's APOP msg-id */
	char user[SASL_USER_MAX];            /* from USER, "" if none */
	struct store_inbox inbox;            /* valid in TRANSACTION */
	struct auth_session auth;            /* AUTH, APOP, USER/PASS, failure delay */
	struct pop3_maildrop *drop;          /* in TRANSACTION */
	struct pop3_lock lock;               /* linked while in TRANSACTION */
	bool locked;
	struct pop3_stream *stream;
	unsigned errors;
	struct event *ev_delay;              /* armed by auth.c after a failure */
	struct event *ev_pump;               /* re-checks a stream after a flush */
};

struct pop3_cmd {
	enum pop3_verb verb;
	unsigned states;                     /* where it may run */
	const char *out_of_state;            /* reply otherwise */
	void (*run)(struct pop3_session *s, const char *args);
};

/* --- replies -------------------------------------------------------- */

/* Refusals because of the server ([SYS/...]) or of another session
 * ([IN-USE]) are not the client's errors. */
static bool pop3_counts_as_error(const char *line)
{
	return strncmp(line, "-ERR", 4) == 0 && strncmp(line, "-ERR [SYS/", 10) != 0 &&
	    strncmp(line, "-ERR [IN-USE]", 13) != 0;
}

static void pop3_reply(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	conn_printf(s->conn, "%s\r\n", line);
	log_debug("pop3: %s: >>> %s", conn_peer(s->conn), line);
	if (!pop3_counts_as_error(line))
		return;
	/* A client that keeps failing is cut off. */
	if (++s->errors >= POP3_MAX_ERRORS && s->mode != M_DONE) {
		conn_printf(s->conn, "-ERR Too many errors, closing connection\r\n");
		s->mode = M_DONE;
		conn_close(s->conn);
	}
}

/* --- maildrop snapshot and lock --------------------------------------- */

static bool pop3_locked_by_other(struct pop3_session *s, int64_t inbox_id)
{
	for (struct pop3_lock *l = pop3_locks; l; l = l->next)
		if (l->store == s->srv->store && l->inbox_id == inbox_id && l != &s->lock)
			return true;
	return false;
}

static void pop3_lock(struct pop3_session *s)
{
	s->lock.store = s->srv->store;
	s->lock.inbox_id = s->inbox.id;
	s->lock.next = pop3_locks;
	pop3_locks = &s->lock;
	s->locked = true;
}

static void pop3_unlock(struct pop3_session *s)
{
	struct pop3_lock **pp;

	if (!s->locked)
		return;
	for (pp = &pop3_locks; *pp; pp = &(*pp)->next) {
		if (*pp == &s->lock) {
			*pp = s->lock.next;
			break;
		}
	}
	s->locked = false;
}

static void pop3_drop_free(struct pop3_maildrop *d)
{
	if (d == NULL)
		return;
	free(d->msgs);
	free(d);
}

static int pop3_drop_add(const struct store_msg *m, void *arg)
{
	struct pop3_maildrop *d = arg;
	struct pop3_msg *grown;

	if (d->n >= POP3_MSGNO_MAX)
		return 0;  /* beyond any message number a client can send */
	if (d->n == d->cap) {
		uint32_t cap = d->cap ? d->cap * 2 : 64;
		if ((grown = realloc(d->msgs, cap * sizeof(*grown))) == NULL)
			return STORE_ERR;
		d->msgs = grown;
		d->cap = cap;
	}
	d->msgs[d->n++] = (struct pop3_msg){ .id = m->id, .uid = m->uid, .size = m->size };
	return 0;
}

/* The inbox's INBOX as it is now. An inbox without one has no mail. */
static int pop3_drop_load(struct pop3_session *s, struct pop3_maildrop **out)
{
	struct pop3_maildrop *d = calloc(1, sizeof(*d));
	struct store_mailbox mb;
	int rc;

	if (d == NULL)
		return STORE_ERR;
	rc = store_mailbox_get(s->srv->store, s->inbox.id, "INBOX", &mb);
	if (rc == STORE_OK) {
		d->uidvalidity = mb.uidvalidity;
		rc = store_mailbox_foreach(s->srv->store, mb.id, pop3_drop_add, d);
	} else if (rc == STORE_NOTFOUND) {
		rc = STORE_OK;
	}
	if (rc != STORE_OK) {
		pop3_drop_free(d);
		return rc;
	}
	*out = d;
	return STORE_OK;
}

/* Messages and octets not marked as deleted. */
static void pop3_drop_totals(const struct pop3_maildrop *d, uint32_t *count, uint64_t *octets)
{
	*count = 0;
	*octets = 0;
	for (uint32_t i = 0; i < d->n; i++) {
		if (!d->msgs[i].deleted) {
			(*count)++;
			*octets += d->msgs[i].size;
		}
	}
}

/* Credentials were good: lock the maildrop and take the snapshot. */
static void pop3_enter_transaction(struct pop3_session *s)
{
	uint32_t count;
	uint64_t octets;
	int rc;

	s->user[0] = '\0';
	if (pop3_locked_by_other(s, s->inbox.id)) {
		log_info("pop3: %s: inbox %s is in use by another POP3 session",
		    conn_peer(s->conn), s->inbox.name);
		pop3_reply(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session");
		return;
	}
	if ((rc = pop3_drop_load(s, &s->drop)) != STORE_OK) {
		log_warn("pop3: %s: cannot read inbox %s: %s", conn_peer(s->conn), s->inbox.name,
		    store_errmsg(s->srv->store));
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later");
		return;
	}
	pop3_lock(s);
	s->state = P_TRANSACTION;
	conn_set_timeout(s->conn, s->srv->cfg->pop3_timeout);
	pop3_drop_totals(s->drop, &count, &octets);
	log_info("pop3: %s: logged in as %s (%" PRIu32 " messages)", conn_peer(s->conn),
	    s->inbox.name, count);
	pop3_reply(s, "+OK Logged in, %" PRIu32 " messages (%" PRIu64 " octets)", count, octets);
}

/* --- failed logins ---------------------------------------------------- */

static void pop3_auth_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_session *s = arg;

	s->mode = M_COMMAND;
	pop3_reply(s, "-ERR [AUTH] Authentication failed");
	if (s->auth.failures >= POP3_MAX_AUTH_FAILURES && s->mode != M_DONE) {
		conn_printf(s->conn, "-ERR Too many failed logins, closing connection\r\n");
		s->mode = M_DONE;
		conn_close(s->conn);
		return;
	}
	conn_resume(s->conn);
}

/* POP3's reply to each outcome of the shared flow (auth.h) that is one
 * line; success enters TRANSACTION, a failure is answered by
 * pop3_auth_delay_done. RFC 2595 §4 / RFC 3206: clear-text passwords need
 * TLS here. */
static const char *const pop3_auth_replies[] = {
	[AUTH_CANCELLED] = "-ERR Authentication cancelled",
	[AUTH_MALFORMED] = "-ERR Cannot decode the authentication response",
	[AUTH_TEMPFAIL] = "-ERR [SYS/TEMP] Temporary authentication failure",
	[AUTH_NOMECH] = "-ERR Unsupported authentication mechanism",
	[AUTH_NEED_TLS] = "-ERR [AUTH] Plaintext authentication disallowed on non-secure "
	    "connections (use STLS, APOP or AUTH CRAM-MD5)",
	[AUTH_TOOLONG] = "-ERR Authentication exchange line is too long",
};

static void pop3_auth_reply(void *arg, enum auth_rc rc)
{
	struct pop3_session *s = arg;

	s->mode = M_COMMAND;
	if (rc == AUTH_OK) {
		pop3_enter_transaction(s);
	} else if (rc == AUTH_CHALLENGE) {
		/* RFC 5034 §4: "+" SP base64 challenge (empty for PLAIN). */
		s->mode = M_SASL;
		conn_printf(s->conn, "+ %s\r\n", s->auth.out);
	} else if (rc == AUTH_FAILED) {
		s->user[0] = '\0';
		s->mode = M_WAIT;
		conn_pause(s->conn);
	} else {
		pop3_reply(s, "%s", pop3_auth_replies[rc]);
	}
}

static bool pop3_check_plaintext(struct pop3_session *s)
{
	if (auth_plaintext_ok(&s->auth, conn_is_tls(s->conn)))
		return true;
	pop3_auth_reply(s, AUTH_NEED_TLS);
	return false;
}

/* --- AUTHORIZATION commands ------------------------------------------ */

static void cmd_user(struct pop3_session *s, const char *args)
{
	if (!pop3_check_plaintext(s))
		return;
	if (*args == '\0' || strlen(args) >= sizeof(s->user)) {
		pop3_reply(s, "-ERR Syntax: USER name");
		return;
	}
	snprintf(s->user, sizeof(s->user), "%s", args);
	pop3_reply(s, "+OK Send your password");
}

static void cmd_pass(struct pop3_session *s, const char *args)
{
	if (!pop3_check_plaintext(s))
		return;
	if (s->user[0] == '\0') {
		pop3_reply(s, "-ERR Send USER first");
		return;
	}
	/* RFC 1939 §7: the password is the rest of the line, spaces and all. */
	pop3_auth_reply(s, auth_password(&s->auth, s->user, args));
}

static void cmd_apop(struct pop3_session *s, const char *args)
{
	char user[SASL_USER_MAX], digest[64];

	if (pop3_parse_two_words(args, user, sizeof(user), digest, sizeof(digest)) < 0 ||
	    digest[0] == '\0' || strchr(digest, ' ') != NULL) {
		pop3_reply(s, "-ERR Syntax: APOP name digest");
		return;
	}
	pop3_auth_reply(s, auth_apop(&s->auth, s->timestamp, user, digest));
}

/* The mechanisms this connection may use, for CAPA and a bare AUTH. */
static void pop3_mechs(struct pop3_session *s, char *buf, size_t size)
{
	auth_mechanisms(auth_plaintext_ok(&s->auth, conn_is_tls(s->conn)), "", buf, size);
}

static void cmd_auth(struct pop3_session *s, const char *args)
{
	char mechname[32], initial[POP3_AUTH_LINE_MAX], mechs[128];

	if (*args == '\0') {
		/* RFC 1734's listing, which clients still probe with. */
		pop3_mechs(s, mechs, sizeof(mechs));
		conn_printf(s->conn, "+OK Mechanisms follow\r\n");
		for (const char *m = mechs; *m; ) {
			size_t n = strcspn(m, " ");
			conn_printf(s->conn, "%.*s\r\n", (int)n, m);
			m += n + (m[n] == ' ');
		}
		conn_printf(s->conn, ".\r\n");
		return;
	}
	if (pop3_parse_two_words(args, mechname, sizeof(mechname), initial, sizeof(initial)) < 0 ||
	    strchr(initial, ' ') != NULL) {
		pop3_reply(s, "-ERR Syntax: AUTH mechanism [initial-response]");
		return;
	}
	pop3_auth_reply(s, auth_start(&s->auth, conn_is_tls(s->conn), mechname,
	    initial[0] ? initial : NULL));
}

static void cmd_stls(struct pop3_session *s, const char *args)
{
	if (*args != '\0') {
		pop3_reply(s, "-ERR Syntax: STLS");
		return;
	}
	if (conn_is_tls(s->conn)) {
		pop3_reply(s, "-ERR Command not permitted when TLS active");
		return;
	}
	if (!conn_tls_available(s->conn)) {
		pop3_reply(s, "-ERR [SYS/PERM] TLS not available");
		return;
	}
	pop3_reply(s, "+OK Begin TLS negotiation");
	if (conn_starttls(s->conn) < 0) {
		s->mode = M_DONE;
		conn_close(s->conn);
		return;
	}
	/* Only AUTHORIZATION allows STLS; USER is the only state it has. */
	s->user[0] = '\0';
}

/* --- commands in every state ------------------------------------------ */

static void cmd_capa(struct pop3_session *s, const char *args)
{
	struct conn *c = s->conn;

	conn_printf(c, "+OK Capability list follows\r\n");
	conn_printf(c, "TOP\r\nUIDL\r\n");
	char mechs[128];

	pop3_mechs(s, mechs, sizeof(mechs));
	if (auth_plaintext_ok(&s->auth, conn_is_tls(c)))
		conn_printf(c, "USER\r\n");
	conn_printf(c, "SASL %s\r\n", mechs);
	conn_printf(c, "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
	if (s->state == P_AUTHORIZATION && !conn_is_tls(c) && conn_tls_available(c))
		conn_printf(c, "STLS\r\n");
	conn_printf(c, "EXPIRE NEVER\r\nIMPLEMENTATION mailsnare\r\n.\r\n");
}

/* UPDATE (RFC 1939 §6): the deletions of the session, in one transaction.
 * A message already removed by someone else is fine. */
static int pop3_update(struct pop3_session *s, unsigned *deleted)
{
	struct store *st = s->srv->store;
	int rc;

	*deleted = 0;
	if ((rc = store_begin(st)) != STORE_OK)
		return rc;
	for (uint32_t i = 0; i < s->drop->n && rc == STORE_OK; i++) {
		if (!s->drop->msgs[i].deleted)
			continue;
		rc = store_message_del(st, s->drop->msgs[i].id);
		if (rc == STORE_NOTFOUND)
			rc = STORE_OK;
		else if (rc == STORE_OK)
			(*deleted)++;
	}
	if (rc == STORE_OK)
		rc = store_commit(st);
	else
		store_rollback(st);
	return rc;
}

static void cmd_quit(struct pop3_session *s, const char *args)
{
	unsigned deleted = 0;
	int rc;

	if (s->state == P_TRANSACTION) {
		if ((rc = pop3_update(s, &deleted)) != STORE_OK) {
			log_warn("pop3: %s: deleting messages of %s failed: %s", conn_peer(s->conn),
			    s->inbox.name, store_errmsg(s->srv->store));
			pop3_reply(s, "-ERR [SYS/TEMP] Some deleted messages not removed");
		} else {
			if (deleted > 0)
				log_info("pop3: %s: %u messages deleted from %s", conn_peer(s->conn),
				    deleted, s->inbox.name);
			pop3_reply(s, "+OK mailsnare POP3 server signing off (%u messages deleted)",
			    deleted);
		}
		pop3_unlock(s);
	} else {
		pop3_reply(s, "+OK mailsnare POP3 server signing off");
	}
	s->mode = M_DONE;
	conn_close(s->conn);
}

/* --- TRANSACTION commands --------------------------------------------- */

/* Finds message `msgno` of the snapshot; replies and returns NULL if it
 * does not exist or is marked as deleted. */
static struct pop3_msg *pop3_msg_get(struct pop3_session *s, uint32_t msgno)
{
	struct pop3_msg *m;

	if (msgno == 0 || msgno > s->drop->n) {
		pop3_reply(s, "-ERR No such message");
		return NULL;
	}
	m = &s->drop->msgs[msgno - 1];
	if (m->deleted) {
		pop3_reply(s, "-ERR Message %" PRIu32 " already deleted", msgno);
		return NULL;
	}
	return m;
}

/* Parses "msg" with nothing after it; replies on a syntax error. */
static bool pop3_one_msgno(struct pop3_session *s, const char *args, uint32_t *msgno)
{
	if (pop3_parse_msgno(&args, msgno) < 0 || *args != '\0') {
		pop3_reply(s, "-ERR Invalid message number");
		return false;
	}
	return true;
}

static void cmd_stat(struct pop3_session *s, const char *args)
{
	uint32_t count;
	uint64_t octets;

	if (*args != '\0') {
		pop3_reply(s, "-ERR Syntax: STAT");
		return;
	}
	pop3_drop_totals(s->drop, &count, &octets);
	pop3_reply(s, "+OK %" PRIu32 " %" PRIu64, count, octets);
}

/* LIST and UIDL: one message, or every message not marked as deleted. */
static void pop3_scan_listing(struct pop3_session *s, const char *args, bool uidl)
{
	const struct pop3_msg *m;
	uint32_t msgno, count;
	uint64_t octets;

	if (*args != '\0') {
		if (!pop3_one_msgno(s, args, &msgno) || (m = pop3_msg_get(s, msgno)) == NULL)
			return;
		if (uidl)
			pop3_reply(s, "+OK %" PRIu32 " %" PRIu32 ".%" PRIu32, msgno,
			    s->drop->uidvalidity, m->uid);
		else
			pop3_reply(s, "+OK %" PRIu32 " %" PRIu64, msgno, m->size);
		return;
	}
	pop3_drop_totals(s->drop, &count, &octets);
	if (uidl)
		conn_printf(s->conn, "+OK Unique-ID listing follows\r\n");
	else
		conn_printf(s->conn, "+OK %" PRIu32 " messages (%" PRIu64 " octets)\r\n", count,
		    octets);
	for (uint32_t i = 0; i < s->drop->n; i++) {
		m = &s->drop->msgs[i];
		if (m->deleted)
			continue;
		if (uidl)
			conn_printf(s->conn, "%" PRIu32 " %" PRIu32 ".%" PRIu32 "\r\n", i + 1,
			    s->drop->uidvalidity, m->uid);
		else
			conn_printf(s->conn, "%" PRIu32 " %" PRIu64 "\r\n", i + 1, m->size);
	}
	conn_printf(s->conn, ".\r\n");
}

static void cmd_list(struct pop3_session *s, const char *args)
{
	pop3_scan_listing(s, args, false);
}

static void cmd_uidl(struct pop3_session *s, const char *args)
{
	pop3_scan_listing(s, args, true);
}

static void cmd_dele(struct pop3_session *s, const char *args)
{
	struct pop3_msg *m;
	uint32_t msgno;

	if (!pop3_one_msgno(s, args, &msgno) || (m = pop3_msg_get(s, msgno)) == NULL)
		return;
	m->deleted = true;
	pop3_reply(s, "+OK Message %" PRIu32 " deleted", msgno);
}

static void cmd_rset(struct pop3_session *s, const char *args)
{
	uint32_t count;
	uint64_t octets;

	for (uint32_t i = 0; i < s->drop->n; i++)
		s->drop->msgs[i].deleted = false;
	pop3_drop_totals(s->drop, &count, &octets);
	pop3_reply(s, "+OK Maildrop has %" PRIu32 " messages (%" PRIu64 " octets)", count, octets);
}

static void cmd_noop(struct pop3_session *s, const char *args)
{
	pop3_reply(s, "+OK");
}

/* --- RETR and TOP: streamed out of the store ---------------------------- */

static void pop3_stream_step(struct pop3_session *s);

static int pop3_stream_emit(void *arg, const void *buf, size_t len)
{
	struct pop3_session *s = arg;

	conn_write(s->conn, buf, len);
	return 0;
}

/* The +OK goes out with the first bytes, once the message is known to
 * be readable: a message removed meanwhile still gets a clean -ERR. */
static void pop3_stream_begin_reply(struct pop3_session *s)
{
	struct pop3_stream *t = s->stream;

	if (t->started)
		return;
	t->started = true;
	if (t->top)
		pop3_reply(s, "+OK Top of message follows");
	else
		pop3_reply(s, "+OK %" PRIu64 " octets", t->msg->size);
}

/* A positive value no store result uses: TOP has all it needs. */
#define POP3_SINK_STOP 1000

static int pop3_stream_sink(void *arg, const void *buf, size_t len)
{
	struct pop3_session *s = arg;
	struct pop3_stream *t = s->stream;
	size_t n = len;

	pop3_stream_begin_reply(s);
	t->got += len;
	if (t->top)
		n = pop3_top_feed(&t->topc, buf, len);
	pop3_stuff_feed(&t->stuff, buf, n, pop3_stream_emit, s);
	return t->top && t->topc.done ? POP3_SINK_STOP : 0;
}

static void pop3_stream_end(struct pop3_session *s)
{
	free(s->stream);
	s->stream = NULL;
	if (s->mode == M_STREAM)
		s->mode = M_COMMAND;
	conn_resume(s->conn);
}

static void pop3_stream_done(struct pop3_session *s)
{
	struct pop3_stream *t = s->stream;

	pop3_stream_begin_reply(s);
	pop3_stuff_finish(&t->stuff, pop3_stream_emit, s);
	/* RETR makes the message \Seen for IMAP too; TOP does not. */
	if (!t->top && store_message_set_flags(s->srv->store, t->msg->id, STORE_FLAG_SEEN, 0)
	    != STORE_OK)
		log_warn("pop3: %s: cannot set \\Seen on message %" PRId64 ": %s",
		    conn_peer(s->conn), t->msg->id, store_errmsg(s->srv->store));
	pop3_stream_end(s);
}

/* Queues the next chunk of the message, then waits for the output to
 * drain, or finishes the response. */
static void pop3_stream_step(struct pop3_session *s)
{
	struct pop3_stream *t = s->stream;
	int rc;

	t->got = 0;
	rc = store_message_read_range(s->srv->store, t->msg->id, t->offset, POP3_STREAM_CHUNK,
	    pop3_stream_sink, s);
	t->offset += t->got;
	if (rc == POP3_SINK_STOP || (rc == STORE_OK && t->got < POP3_STREAM_CHUNK)) {
		pop3_stream_done(s);
		return;
	}
	if (rc != STORE_OK) {
		log_warn("pop3: %s: reading message %" PRId64 " failed: %s", conn_peer(s->conn),
		    t->msg->id, store_errmsg(s->srv->store));
		if (!t->started) {
			pop3_reply(s, rc == STORE_NOTFOUND ?
			    "-ERR Message %" PRIu32 " was removed by another session" :
			    "-ERR [SYS/TEMP] Cannot read message %" PRIu32, t->msgno);
			pop3_stream_end(s);
			return;
		}
		/* Half a response cannot be taken back: end the session. */
		s->mode = M_DONE;
		conn_close(s->conn);
		return;
	}
	/* Sending is progress: the idle timer starts again. */
	conn_set_timeout(s->conn, s->srv->cfg->pop3_timeout);
	conn_wait_drain(s->conn);
	/* The connection may hand everything to the kernel on its way out of
	 * this callback, leaving no write for the drain callback to follow:
	 * look again once the loop has moved on. */
	event_active(s->ev_pump, EV_TIMEOUT, 0);
}

/* Runs from proto->drained and from ev_pump: steps when the output is
 * low, otherwise keeps waiting for the drain. */
static void pop3_stream_pump(struct pop3_session *s)
{
	if (s->stream == NULL || s->mode != M_STREAM)
		return;
	if (conn_output_pending(s->conn) > CONN_WRITE_LOWWATER) {
		conn_wait_drain(s->conn);
		return;
	}
	pop3_stream_step(s);
}

static void pop3_pump_cb(evutil_socket_t fd, short what, void *arg)
{
	pop3_stream_pump(arg);
}

static void pop3_drained(void *arg)
{
	pop3_stream_pump(arg);
}

static void pop3_stream_start(struct pop3_session *s, uint32_t msgno, bool top, uint64_t lines)
{
	struct pop3_stream *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		pop3_reply(s, "-ERR [SYS/TEMP] Out of memory");
		return;
	}
	t->msg = &s->drop->msgs[msgno - 1];
	t->msgno = msgno;
	t->top = top;
	pop3_top_init(&t->topc, lines);
	pop3_stuff_init(&t->stuff);
	s->stream = t;
	s->mode = M_STREAM;
	conn_pause(s->conn);
	pop3_stream_step(s);
}

static void cmd_retr(struct pop3_session *s, const char *args)
{
	uint32_t msgno;

	if (!pop3_one_msgno(s, args, &msgno) || pop3_msg_get(s, msgno) == NULL)
		return;
	pop3_stream_start(s, msgno, false, 0);
}

static void cmd_top(struct pop3_session *s, const char *args)
{
	uint32_t msgno;
	uint64_t lines;

	if (pop3_parse_msgno(&args, &msgno) < 0 || pop3_parse_count(&args, &lines) < 0 ||
	    *args != '\0') {
		pop3_reply(s, "-ERR Syntax: TOP msg n");
		return;
	}
	if (pop3_msg_get(s, msgno) == NULL)
		return;
	pop3_stream_start(s, msgno, true, lines);
}

/* --- dispatch ------------------------------------------------------- */

#define NOT_AUTHED "-ERR Not logged in (USER/PASS, APOP or AUTH first)"
#define AUTHED "-ERR Already logged in"

static const struct pop3_cmd pop3_commands[] = {
	{ POP3_CMD_USER, IN(P_AUTHORIZATION), AUTHED, cmd_user },
	{ POP3_CMD_PASS, IN(P_AUTHORIZATION), AUTHED, cmd_pass },
	{ POP3_CMD_APOP, IN(P_AUTHORIZATION), AUTHED, cmd_apop },
	{ POP3_CMD_AUTH, IN(P_AUTHORIZATION), AUTHED, cmd_auth },
	{ POP3_CMD_STLS, IN(P_AUTHORIZATION), "-ERR STLS is only allowed before login", cmd_stls },
	{ POP3_CMD_CAPA, ANY_STATE, NULL, cmd_capa },
	{ POP3_CMD_QUIT, ANY_STATE, NULL, cmd_quit },
	{ POP3_CMD_STAT, IN(P_TRANSACTION), NOT_AUTHED, cmd_stat },
	{ POP3_CMD_LIST, IN(P_TRANSACTION), NOT_AUTHED, cmd_list },
	{ POP3_CMD_RETR, IN(P_TRANSACTION), NOT_AUTHED, cmd_retr },
	{ POP3_CMD_DELE, IN(P_TRANSACTION), NOT_AUTHED, cmd_dele },
	{ POP3_CMD_NOOP, IN(P_TRANSACTION), NOT_AUTHED, cmd_noop },
	{ POP3_CMD_RSET, IN(P_TRANSACTION), NOT_AUTHED, cmd_rset },
	{ POP3_CMD_TOP, IN(P_TRANSACTION), NOT_AUTHED, cmd_top },
	{ POP3_CMD_UIDL, IN(P_TRANSACTION), NOT_AUTHED, cmd_uidl },
};

/* Credentials never reach the log. */
static bool pop3_secret_args(enum pop3_verb verb)
{
	return verb == POP3_CMD_PASS || verb == POP3_CMD_AUTH || verb == POP3_CMD_APOP;
}

static void pop3_command(void *arg, const char *line, size_t len)
{
	struct pop3_session *s = arg;
	const char *args;
	enum pop3_verb verb = pop3_parse_verb(line, &args);
	const struct pop3_cmd *cmd = NULL;

	log_debug("pop3: %s: <<< %.*s", conn_peer(s->conn),
	    pop3_secret_args(verb) ? 4 : (int)len, line);
	if (len > POP3_COMMAND_LINE_MAX - 2 && verb != POP3_CMD_AUTH) {
		pop3_reply(s, "-ERR Line too long");
		return;
	}
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++)
		if (pop3_commands[i].verb == verb)
			cmd = &pop3_commands[i];
	if (cmd == NULL) {
		pop3_reply(s, "-ERR Unknown command");
		return;
	}
	if (!(cmd->states & IN(s->state))) {
		pop3_reply(s, "%s", cmd->out_of_state);
		return;
	}
	cmd->run(s, args);
}

static void pop3_line_too_long(void *arg)
{
	pop3_reply(arg, "-ERR Line too long");
}

static const struct line_input_ops pop3_line_ops = {
	.max = POP3_AUTH_LINE_MAX,
	.command = pop3_command,
	.auth_reply = pop3_auth_reply,
	.too_long = pop3_line_too_long,
};

static void pop3_input(void *arg)
{
	struct pop3_session *s = arg;

	while ((s->mode == M_COMMAND || s->mode == M_SASL) && line_input(s->conn, &s->auth, &pop3_line_ops, s))
		;
}

/* --- session lifecycle ---------------------------------------------- */

/* RFC 1939 §7: the APOP timestamp must differ on every connection; the
 * random part makes it unguessable as well. */
static void pop3_make_timestamp(struct pop3_session *s)
{
	unsigned char rnd[8];
	char hex[sizeof(rnd) * 2 + 1];

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + i * 2, 3, "%02x", rnd[i]);
	snprintf(s->timestamp, sizeof(s->timestamp), "<%ld.%lld.%s@%s>", (long)getpid(),
	    (long long)time(NULL), hex, s->srv->cfg->hostname);
}

static void *pop3_open(struct conn *c)
{
	struct pop3_session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->conn = c;
	s->srv = conn_server(c);
	s->ev_delay = evtimer_new(s->srv->base, pop3_auth_delay_done, s);
	s->ev_pump = event_new(s->srv->base, -1, 0, pop3_pump_cb, s);
	if (s->ev_delay == NULL || s->ev_pump == NULL) {
		if (s->ev_delay)
			event_free(s->ev_delay);
		if (s->ev_pump)
			event_free(s->ev_pump);
		free(s);
		return NULL;
	}
	auth_session_init(&s->auth, &(struct auth_session_params){
	    .proto = "pop3", .store = s->srv->store, .policy = &s->srv->auth,
	    .host = s->srv->cfg->hostname, .allow_plaintext = s->srv->cfg->allow_plaintext_auth,
	    .step_ms = POP3_AUTH_DELAY_STEP_MS, .max_ms = POP3_AUTH_DELAY_MAX_MS,
	    .ev_delay = s->ev_delay }, conn_peer(c), &s->inbox);
	pop3_make_timestamp(s);
	/* login-timeout until logged in; pop3-timeout after (pop3_login). */
	conn_set_timeout(c, s->srv->cfg->login_timeout);
	conn_printf(c, "+OK mailsnare POP3 ready %s\r\n", s->timestamp);
	return s;
}

static void pop3_timeout(void *arg)
{
	struct pop3_session *s = arg;

	s->mode = M_DONE;
	conn_printf(s->conn, "-ERR Disconnected for inactivity\r\n");
}

static void pop3_shutdown(void *arg)
{
	struct pop3_session *s = arg;

	s->mode = M_DONE;
	conn_printf(s->conn, "-ERR [SYS/TEMP] server shutting down\r\n");
	conn_close(s->conn);
}

/* A dropped connection ends here: nothing marked for deletion is
 * deleted (RFC 1939 §6 only updates on QUIT). */
static void pop3_free(void *arg)
{
	struct pop3_session *s = arg;

	pop3_unlock(s);
	auth_session_end(&s->auth);
	free(s->stream);
	pop3_drop_free(s->drop);
	event_free(s->ev_delay);
	event_free(s->ev_pump);
	free(s);
}

const struct proto pop3_proto = {
	.name = "pop3",
	.busy_reply = "-ERR [SYS/TEMP] too many connections\r\n",
	.open = pop3_open,
	.input = pop3_input,
	.timeout = pop3_timeout,
	.shutdown = pop3_shutdown,
	.free = pop3_free,
	.drained = pop3_drained,
};
