/*
 * SMTP session: a state, a transaction object created at MAIL and freed at
 * its end, and one command table. Input arrives through the connection
 * layer as lines (commands, SASL responses) or raw bytes (DATA, BDAT);
 * replies go out through smtp_reply(), which also counts errors.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "mailsnare/chaos.h"
#include "mailsnare/config.h"
#include "mailsnare/deliver.h"
#include "mailsnare/ingest.h"
#include "mailsnare/line_input.h"
#include "mailsnare/log.h"
#include "mailsnare/sasl.h"
#include "mailsnare/smtp.h"
#include "mailsnare/smtp_data.h"
#include "mailsnare/smtp_parse.h"

/* Bytes of a message kept in memory before it is spooled to a file. */
#define SMTP_SPOOL_MEM (256 * 1024)

enum smtp_state {
	S_INIT,   /* greeted, no HELO/EHLO yet */
	S_HELO,   /* ready for a transaction */
	S_MAIL,   /* MAIL accepted */
	S_RCPT,   /* at least one RCPT accepted */
	S_BDAT    /* BDAT chunks under way */
};
#define IN(st) (1u << (st))
#define ANY_STATE (IN(S_INIT) | IN(S_HELO) | IN(S_MAIL) | IN(S_RCPT) | IN(S_BDAT))

/* What the next input is. */
enum smtp_mode {
	M_COMMAND,
	M_SASL,     /* an AUTH exchange waits for the client's response line */
	M_DATA,     /* dot-terminated message data */
	M_BDAT,     /* the bytes of a BDAT chunk */
	M_WAIT,     /* waiting for a commit or an auth-failure delay */
	M_DONE      /* QUIT or fatal error: nothing more is read */
};

struct smtp_tx {
	int64_t inbox_id;
	char mail_from[SMTP_PATH_MAX + 1];
	char **rcpts;
	size_t nrcpts;
	bool smtputf8;
	struct smtp_data dec;
	bool bdat_last;
	/* The message as stored: the Received header, then the data, spooled
	 * and MIME-scanned as it arrives (ingest.h), so that IMAP never
	 * rescans a delivered message (DESIGN §4). */
	struct ingest *in;
	int64_t arrival;                 /* the time in Received: and INTERNALDATE */
	struct store_new_message msg;
	struct deliver_req *req;
};

struct smtp_session {
	struct conn *conn;
	struct server *srv;
	enum smtp_state state;
	enum smtp_mode mode;
	bool esmtp;
	char helo[256];
	bool authed;
	struct store_inbox inbox;        /* valid when authed */
	int64_t default_inbox;           /* id of "dev", looked up once */
	struct auth_session auth;        /* AUTH, and the failure delay */
	unsigned errors;
	struct event *ev_delay;          /* armed by auth.c after a failure */
	uint64_t bdat_size;              /* size of the current chunk */
	uint64_t bdat_left;              /* chunk bytes still to read */
	bool bdat_discard;               /* ... and drop (rejected BDAT) */
	struct smtp_tx *tx;
	struct event *ev_chaos;          /* chaos Delay: the wait before a command */
	bool chaos_waited;               /* ... is over for the next command */
	bool chaos_cut;                  /* chaos Disconnect: cut at the data */
};

struct smtp_cmd {
	enum smtp_verb verb;
	unsigned states;                 /* where it may run */
	const char *out_of_sequence;     /* reply otherwise */
	void (*run)(struct smtp_session *s, const char *args);
};

static void smtp_tx_free(struct smtp_session *s);
static void smtp_bdat_refuse(struct smtp_session *s, const char *args, const char *reply);

/* --- replies -------------------------------------------------------- */

static void smtp_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	char line[SMTP_COMMAND_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	conn_printf(s->conn, "%s\r\n", line);
	log_debug("smtp: %s: >>> %s", conn_peer(s->conn), line);
	if (line[0] != '5')
		return;
	/* Every refused command counts; a client that keeps failing is cut
	 * off. Temporary (4xx) failures are the server's, not the client's. */
	if (++s->errors >= SMTP_MAX_ERRORS && s->mode != M_DONE) {
		conn_printf(s->conn, "421 4.7.0 %s Too many errors, closing connection\r\n",
		    s->srv->cfg->hostname);
		s->mode = M_DONE;
		conn_close(s->conn);
	}
}

/* A chaos trigger fired: it is the reply, in Mailpit's words. */
static bool smtp_chaos(struct smtp_session *s, enum chaos_trigger t, const char *what)
{
	int code = chaos_roll(t);

	if (code == 0)
		return false;
	smtp_reply(s, "%d Chaos %s error", code, what);
	return true;
}

/* --- transaction ---------------------------------------------------- */

static struct smtp_tx *smtp_tx_new(void)
{
	return calloc(1, sizeof(struct smtp_tx));
}

static void smtp_tx_free(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	size_t i;

	if (tx == NULL)
		return;
	if (tx->req)
		deliver_cancel(tx->req);
	for (i = 0; i < tx->nrcpts; i++)
		free(tx->rcpts[i]);
	free(tx->rcpts);
	ingest_free(tx->in);
	free(tx);
	s->tx = NULL;
	if (s->state != S_INIT)
		s->state = S_HELO;
}

static int smtp_tx_add_rcpt(struct smtp_tx *tx, const char *addr)
{
	char **r, *copy;

	if ((copy = strdup(addr)) == NULL)
		return -1;
	/* Grow by doubling; the count is bounded by SMTP_MAX_RCPTS. */
	if ((tx->nrcpts & (tx->nrcpts - 1)) == 0) {
		r = realloc(tx->rcpts, (tx->nrcpts ? tx->nrcpts * 2 : 1) * sizeof(*r));
		if (r == NULL) {
			free(copy);
			return -1;
		}
		tx->rcpts = r;
	}
	tx->rcpts[tx->nrcpts++] = copy;
	return 0;
}

/* Decoded message bytes go to the ingest until the size limit is passed;
 * after that they are counted as consumed but dropped. */
static int smtp_tx_sink(void *arg, const char *buf, size_t len)
{
	struct smtp_session *s = arg;

	ingest_write(s->tx->in, buf, len);
	return 0;
}

/* --- delivery ------------------------------------------------------- */

static const char *smtp_with_protocol(const struct smtp_session *s)
{
	/* RFC 3848 and RFC 6531 §4.3 protocol types. */
	static const char *const names[2][2][2][2] = {
		{ { { "SMTP", "SMTPA" }, { "SMTPS", "SMTPSA" } },
		  { { "SMTP", "SMTPA" }, { "SMTPS", "SMTPSA" } } },
		{ { { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		  { { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } } },
	};
	return names[s->esmtp][s->tx->smtputf8][conn_is_tls(s->conn)][s->authed];
}

/* The Received: header starts the message (RFC 5321 §4.4). */
static int smtp_write_received(struct smtp_session *s, time_t now)
{
	struct smtp_tx *tx = s->tx;
	const char *peer = conn_peer(s->conn);
	char date[64], forpart[SMTP_PATH_MAX + 16] = "", *received;
	struct tm tm;
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (tx->nrcpts == 1)
		snprintf(forpart, sizeof(forpart), "\r\n\tfor <%s>", tx->rcpts[0]);
	n = asprintf(&received,
	    "Received: from %s (%s%s%s)\r\n\tby %s (mailsnare) with %s%s; %s\r\n",
	    s->helo[0] ? s->helo : "unknown", strchr(peer, ':') ? "[IPv6:" : "[", peer, "]",
	    s->srv->cfg->hostname, smtp_with_protocol(s), forpart, date);
	if (n < 0)
		return -1;
	ingest_write(tx->in, received, (size_t)n);
	free(received);
	return 0;
}

static void smtp_delivered(void *arg, int rc, int64_t id)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;

	tx->req = NULL;
	if (rc == STORE_OK) {
		log_info("smtp: %s: stored message %" PRId64 " (%" PRIu64 " bytes, from <%s>, "
		    "%zu rcpt)", conn_peer(s->conn), id, tx->msg.src.size, tx->mail_from,
		    tx->nrcpts);
		smtp_reply(s, "250 2.0.0 Ok: queued as %" PRId64, id);
		s->srv->stats.smtp_accepted++;
		s->srv->stats.smtp_accepted_size += tx->msg.src.size;
	} else if (rc == STORE_FULL || rc == STORE_BUSY) {
		smtp_reply(s, "452 4.3.1 Insufficient system storage");
		s->srv->stats.smtp_rejected++;
	} else {
		smtp_reply(s, "451 4.3.0 Local error in processing");
		s->srv->stats.smtp_rejected++;
	}
	smtp_tx_free(s);
	if (s->mode == M_WAIT)
		s->mode = M_COMMAND;
	conn_resume(s->conn);
}

/* The message data begins: the Received: header is written first, so
 * that the MIME scan sees the message exactly as it will be stored. The
 * size limit is the data's: the header does not count. */
static int smtp_data_begin(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct ingest_options o = { .mem_limit = SMTP_SPOOL_MEM };
	uint64_t before;

	tx->arrival = (int64_t)time(NULL);
	ingest_free(tx->in);
	if ((tx->in = ingest_new(&o)) == NULL ||
	    smtp_write_received(s, (time_t)tx->arrival) < 0)
		return -1;
	before = ingest_size(tx->in);
	ingest_set_max_size(tx->in, before + s->srv->cfg->max_message_size);
	return ingest_status(tx->in) == INGEST_OK ? 0 : -1;
}

/* The message is complete: refuse it for a recorded reason, or hand it
 * to the group commit and wait. */
static void smtp_tx_finish(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	s->mode = M_COMMAND;
	if (smtp_chaos(s, CHAOS_DATA, "data"))
		goto done;
	if (tx->dec.line_too_long) {
		smtp_reply(s, "500 5.5.2 Line too long (RFC 5321 limit is 1000 octets)");
	} else if (ingest_status(tx->in) == INGEST_TOO_BIG) {
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
	} else if (ingest_finish(tx->in, &tx->msg) < 0) {
		smtp_reply(s, "452 4.3.1 Insufficient system storage");
	} else {
		tx->msg.inbox_id = tx->inbox_id;
		tx->msg.mail_from = tx->mail_from;
		tx->msg.rcpts = (const char *const *)tx->rcpts;
		tx->msg.n_rcpts = tx->nrcpts;
		tx->msg.auth_user = s->authed ? s->inbox.name : NULL;
		tx->msg.client_addr = conn_peer(s->conn);
		tx->msg.internal_date = tx->arrival;
		tx->req = deliver_submit(s->srv->deliver, &tx->msg, smtp_delivered, s);
		if (tx->req != NULL) {
			s->mode = M_WAIT;
			conn_pause(s->conn);
			return;
		}
		smtp_reply(s, "451 4.3.0 Local error in processing");
	}
done:
	s->srv->stats.smtp_rejected++;
	smtp_tx_free(s);
}

/* --- message data --------------------------------------------------- */

/* Feeds buffered input to the decoder, at most `limit` bytes. Returns
 * the bytes consumed. */
static size_t smtp_feed(struct smtp_session *s, uint64_t limit)
{
	const char *p;
	size_t used = 0, len;
	ssize_t r;

	while (used < limit && (len = conn_peek(s->conn, &p)) > 0) {
		if (len > limit - used)
			len = (size_t)(limit - used);
		if (s->bdat_discard)
			r = (ssize_t)len;
		else
			r = smtp_data_feed(&s->tx->dec, p, len, smtp_tx_sink, s);
		conn_consume(s->conn, (size_t)r);
		used += (size_t)r;
		/* The decoder stops short only at the end of the data. */
		if ((s->tx && s->tx->dec.done) || (size_t)r < len)
			break;
	}
	return used;
}

/* chaos Disconnect: the first bytes of the data end the connection,
 * without a reply (a server that crashed, a network that broke). */
static bool smtp_chaos_cut(struct smtp_session *s)
{
	if (!s->chaos_cut || conn_input_length(s->conn) == 0)
		return false;
	conn_consume(s->conn, conn_input_length(s->conn));
	s->mode = M_DONE;
	conn_close(s->conn);
	return true;
}

static void smtp_input_data(struct smtp_session *s)
{
	if (smtp_chaos_cut(s))
		return;
	while (conn_input_length(s->conn) > 0) {
		smtp_feed(s, UINT64_MAX);
		if (s->tx->dec.done) {
			smtp_tx_finish(s);
			return;
		}
	}
}

static void smtp_bdat_chunk_done(struct smtp_session *s, uint64_t size)
{
	struct smtp_tx *tx = s->tx;

	s->mode = M_COMMAND;
	if (s->bdat_discard) {
		s->bdat_discard = false;
		return;  /* the rejection was sent with the command */
	}
	if (ingest_status(tx->in) != INGEST_OK) {
		/* RFC 3030 §2: a failed chunk fails the transaction. */
		smtp_reply(s, ingest_status(tx->in) == INGEST_TOO_BIG ?
		    "552 5.3.4 Message size exceeds fixed maximum message size" :
		    "452 4.3.1 Insufficient system storage");
		s->srv->stats.smtp_rejected++;
		smtp_tx_free(s);
	} else if (tx->bdat_last) {
		smtp_data_finish(&tx->dec, smtp_tx_sink, s);
		smtp_tx_finish(s);
	} else {
		smtp_reply(s, "250 2.0.0 %" PRIu64 " octets received", size);
	}
}

static void smtp_input_bdat(struct smtp_session *s)
{
	if (smtp_chaos_cut(s))
		return;
	while (s->bdat_left > 0 && conn_input_length(s->conn) > 0)
		s->bdat_left -= smtp_feed(s, s->bdat_left);
	if (s->bdat_left == 0)
		smtp_bdat_chunk_done(s, s->bdat_size);
}

/* --- commands ------------------------------------------------------- */

static void smtp_helo_reset(struct smtp_session *s, const char *args, bool esmtp)
{
	smtp_tx_free(s);
	s->esmtp = esmtp;
	snprintf(s->helo, sizeof(s->helo), "%.*s", (int)strcspn(args, " "), args);
	for (char *p = s->helo; *p; p++)
		if ((unsigned char)*p < 33 || *p == 127 || *p == '(' || *p == ')')
			*p = '?';
	s->state = S_HELO;
}

static void cmd_helo(struct smtp_session *s, const char *args)
{
	if (*args == '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	smtp_helo_reset(s, args, false);
	smtp_reply(s, "250 %s", s->srv->cfg->hostname);
}

static void cmd_ehlo(struct smtp_session *s, const char *args)
{
	struct conn *c = s->conn;

	if (*args == '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	smtp_helo_reset(s, args, true);
	conn_printf(c, "250-%s greets %s\r\n", s->srv->cfg->hostname, s->helo);
	conn_printf(c, "250-PIPELINING\r\n250-SIZE %" PRIu64 "\r\n", s->srv->cfg->max_message_size);
	conn_printf(c, "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
	    "250-CHUNKING\r\n");
	if (!conn_is_tls(c) && conn_tls_available(c))
		conn_printf(c, "250-STARTTLS\r\n");
	if (!s->authed) {
		char mechs[128];

		auth_mechanisms(auth_plaintext_ok(&s->auth, conn_is_tls(c)), "", mechs,
		    sizeof(mechs));
		conn_printf(c, "250-AUTH %s\r\n", mechs);
	}
	conn_printf(c, "250 HELP\r\n");
}

/* Applies MAIL parameters; returns false after replying to a bad one. */
static bool smtp_mail_params(struct smtp_session *s, const char *params, bool *utf8)
{
	char key[32], value[SMTP_PATH_MAX + 16];
	uint64_t size;
	int r;

	while ((r = smtp_parse_param(&params, key, sizeof(key), value, sizeof(value))) > 0) {
		if (strcmp(key, "SIZE") == 0) {
			if (smtp_parse_u64(value, &size) < 0) {
				smtp_reply(s, "501 5.5.4 Bad SIZE parameter");
				return false;
			}
			if (size > s->srv->cfg->max_message_size) {
				smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
				return false;
			}
		} else if (strcmp(key, "BODY") == 0) {
			if (strcasecmp(value, "7BIT") != 0 && strcasecmp(value, "8BITMIME") != 0) {
				smtp_reply(s, "501 5.5.4 Unsupported BODY type");
				return false;
			}
		} else if (strcmp(key, "SMTPUTF8") == 0 && value[0] == '\0') {
			*utf8 = true;
		} else if (strcmp(key, "AUTH") != 0) {
			/* AUTH=<mailbox> (RFC 4954 §5) is accepted and ignored. */
			smtp_reply(s, "555 5.5.4 Unsupported parameter %s", key);
			return false;
		}
	}
	if (r < 0) {
		smtp_reply(s, "501 5.5.4 Syntax error in parameters");
		return false;
	}
	return true;
}

static bool smtp_path_ok(struct smtp_session *s, enum smtp_path_rc rc, const char *what,
    const char *code)
{
	if (rc == SMTP_PATH_SYNTAX)
		smtp_reply(s, "501 5.5.4 Syntax: %s", what);
	else if (rc != SMTP_PATH_OK)
		smtp_reply(s, "501 %s Bad address syntax", code);
	return rc == SMTP_PATH_OK;
}

/* The inbox this transaction delivers to (DESIGN §3). */
static int smtp_target_inbox(struct smtp_session *s, int64_t *id)
{
	struct store_inbox in = { 0 };
	int rc;

	if (s->authed) {
		*id = s->inbox.id;
		return STORE_OK;
	}
	if (s->default_inbox == 0) {
		rc = store_inbox_ensure(s->srv->store, SMTP_DEFAULT_INBOX,
		    SMTP_DEFAULT_PASSWORD, &in);
		if (rc != STORE_OK)
			return rc;
		s->default_inbox = in.id;
	}
	*id = s->default_inbox;
	return STORE_OK;
}

static void cmd_mail(struct smtp_session *s, const char *args)
{
	struct smtp_path path;
	bool utf8 = false;
	int64_t inbox_id = 0;

	if (s->srv->cfg->smtp_require_auth && !s->authed) {
		smtp_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (smtp_chaos(s, CHAOS_SENDER, "sender"))
		return;
	if (!smtp_path_ok(s, smtp_parse_path(args, "FROM", true, &path), "MAIL FROM:<address>",
	    "5.1.7"))
		return;
	if (!smtp_mail_params(s, path.params, &utf8))
		return;
	if (path.utf8 && !utf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		return;
	}
	if (smtp_target_inbox(s, &inbox_id) != STORE_OK) {
		smtp_reply(s, "451 4.3.0 Local error in processing");
		return;
	}
	if ((s->tx = smtp_tx_new()) == NULL) {
		smtp_reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	s->tx->inbox_id = inbox_id;
	s->tx->smtputf8 = utf8;
	snprintf(s->tx->mail_from, sizeof(s->tx->mail_from), "%s", path.addr);
	s->state = S_MAIL;
	smtp_reply(s, "250 2.1.0 Ok");
}

static void cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_path path;

	if (smtp_chaos(s, CHAOS_RECIPIENT, "recipient"))
		return;
	if (!smtp_path_ok(s, smtp_parse_path(args, "TO", false, &path), "RCPT TO:<address>",
	    "5.1.3"))
		return;
	if (*path.params != '\0') {
		smtp_reply(s, "555 5.5.4 Unsupported RCPT parameters");
		return;
	}
	if (path.utf8 && !s->tx->smtputf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		return;
	}
	if (s->tx->nrcpts >= SMTP_MAX_RCPTS) {
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (smtp_tx_add_rcpt(s->tx, path.addr) < 0) {
		smtp_reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	s->state = S_RCPT;
	smtp_reply(s, "250 2.1.5 Ok");
}

static void cmd_data(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (smtp_data_begin(s) < 0) {
		smtp_reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	smtp_data_init(&s->tx->dec, true);
	s->chaos_cut = chaos_roll(CHAOS_DISCONNECT) != 0;
	s->mode = M_DATA;
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_bdat(struct smtp_session *s, const char *args)
{
	uint64_t size;
	bool last;

	if (smtp_parse_bdat(args, &size, &last) < 0) {
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	if (s->state == S_RCPT) {
		s->chaos_cut = chaos_roll(CHAOS_DISCONNECT) != 0;
		smtp_data_init(&s->tx->dec, false);
		if (smtp_data_begin(s) < 0) {
			smtp_bdat_refuse(s, args, "452 4.3.1 Insufficient system storage");
			return;
		}
	}
	s->state = S_BDAT;
	s->tx->bdat_last = last;
	s->bdat_size = s->bdat_left = size;
	s->mode = M_BDAT;
}

/* A BDAT that is refused still carries its chunk: read and drop it
 * (RFC 3030 §3). */
static void smtp_bdat_refuse(struct smtp_session *s, const char *args, const char *reply)
{
	uint64_t size;
	bool last;

	smtp_reply(s, "%s", reply);
	if (smtp_parse_bdat(args, &size, &last) == 0 && size > 0 && s->mode == M_COMMAND) {
		s->bdat_left = size;
		s->bdat_discard = true;
		s->mode = M_BDAT;
	}
}

static void cmd_rset(struct smtp_session *s, const char *args)
{
	smtp_tx_free(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "221 2.0.0 Bye");
	s->mode = M_DONE;
	conn_close(s->conn);
}

static void cmd_vrfy(struct smtp_session *s, const char *args)
{
	if (*args == '\0')
		smtp_reply(s, "501 5.5.4 Syntax: VRFY address");
	else
		smtp_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message");
}

static void cmd_expn(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "502 5.5.1 EXPN not available");
}

static void cmd_help(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "214 2.0.0 mailsnare traps all mail; commands: HELO EHLO MAIL RCPT "
	    "DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
}

static void cmd_starttls(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (conn_is_tls(s->conn)) {
		smtp_reply(s, "503 5.5.1 TLS already active");
		return;
	}
	if (!conn_tls_available(s->conn)) {
		smtp_reply(s, "454 4.7.0 TLS not available");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	if (conn_starttls(s->conn) < 0) {
		s->mode = M_DONE;
		conn_close(s->conn);
		return;
	}
	/* RFC 3207 §4.2: forget everything learnt before TLS. */
	smtp_tx_free(s);
	s->state = S_INIT;
	s->esmtp = false;
	s->helo[0] = '\0';
	s->authed = false;
}

/* --- AUTH ----------------------------------------------------------- */

static void smtp_auth_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	s->mode = M_COMMAND;
	smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
	conn_resume(s->conn);
}

/* SMTP's reply to each outcome of the shared flow (auth.h); a failure is
 * answered (535) by smtp_auth_delay_done. */
static const char *const smtp_auth_replies[] = {
	[AUTH_CHALLENGE] = "334 ",
	[AUTH_OK] = "235 2.7.0 Authentication successful",
	[AUTH_CANCELLED] = "501 5.0.0 Authentication cancelled",
	[AUTH_MALFORMED] = "501 5.5.2 Cannot decode response",
	[AUTH_TEMPFAIL] = "454 4.7.0 Temporary authentication failure",
	[AUTH_NOMECH] = "504 5.5.4 Unrecognized authentication type",
	[AUTH_NEED_TLS] = "538 5.7.11 Encryption required for requested authentication mechanism",
	[AUTH_TOOLONG] = "500 5.5.6 Authentication exchange line is too long",
};

static void smtp_auth_reply(void *arg, enum auth_rc rc)
{
	struct smtp_session *s = arg;

	s->mode = rc == AUTH_CHALLENGE ? M_SASL : rc == AUTH_FAILED ? M_WAIT : M_COMMAND;
	if (rc == AUTH_FAILED) {
		conn_pause(s->conn);
		return;
	}
	if (rc == AUTH_OK) {
		s->authed = true;
		log_info("smtp: %s: authenticated as %s", conn_peer(s->conn), s->inbox.name);
	}
	smtp_reply(s, "%s%s", smtp_auth_replies[rc], rc == AUTH_CHALLENGE ? s->auth.out : "");
}

static void cmd_auth(struct smtp_session *s, const char *args)
{
	char mechname[32];
	size_t n = strcspn(args, " ");
	const char *initial = args + n;

	if (s->authed) {
		smtp_reply(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (smtp_chaos(s, CHAOS_AUTH, "authentication"))
		return;
	snprintf(mechname, sizeof(mechname), "%.*s", (int)n, args);
	while (*initial == ' ')
		initial++;
	smtp_auth_reply(s, auth_start(&s->auth, conn_is_tls(s->conn), mechname,
	    *initial ? initial : NULL));
}

/* --- dispatch ------------------------------------------------------- */

static const struct smtp_cmd smtp_commands[] = {
	{ SMTP_CMD_HELO, ANY_STATE, NULL, cmd_helo },
	{ SMTP_CMD_EHLO, ANY_STATE, NULL, cmd_ehlo },
	{ SMTP_CMD_MAIL, IN(S_HELO), "503 5.5.1 Nested MAIL command", cmd_mail },
	{ SMTP_CMD_RCPT, IN(S_MAIL) | IN(S_RCPT), "503 5.5.1 Need MAIL command", cmd_rcpt },
	{ SMTP_CMD_DATA, IN(S_RCPT), "503 5.5.1 Need RCPT command", cmd_data },
	{ SMTP_CMD_BDAT, IN(S_RCPT) | IN(S_BDAT), "503 5.5.1 Need RCPT command", cmd_bdat },
	{ SMTP_CMD_RSET, ANY_STATE, NULL, cmd_rset },
	{ SMTP_CMD_NOOP, ANY_STATE, NULL, cmd_noop },
	{ SMTP_CMD_QUIT, ANY_STATE, NULL, cmd_quit },
	{ SMTP_CMD_VRFY, ANY_STATE, NULL, cmd_vrfy },
	{ SMTP_CMD_EXPN, ANY_STATE, NULL, cmd_expn },
	{ SMTP_CMD_HELP, ANY_STATE, NULL, cmd_help },
	{ SMTP_CMD_STARTTLS, IN(S_HELO), "503 5.5.1 STARTTLS not allowed now", cmd_starttls },
	{ SMTP_CMD_AUTH, IN(S_HELO), "503 5.5.1 AUTH not allowed during a transaction", cmd_auth },
};

static const char *smtp_out_of_sequence(const struct smtp_session *s,
    const struct smtp_cmd *cmd)
{
	if (s->state == S_INIT)
		return "503 5.5.1 Send HELO/EHLO first";
	if (s->state == S_BDAT && cmd->verb != SMTP_CMD_BDAT)
		return "503 5.5.1 BDAT transaction in progress";
	return cmd->out_of_sequence;
}

static void smtp_command(void *arg, const char *line, size_t len)
{
	struct smtp_session *s = arg;
	const char *args;
	enum smtp_verb verb = smtp_parse_verb(line, &args);
	const struct smtp_cmd *cmd = NULL;
	size_t i;

	log_debug("smtp: %s: <<< %.*s", conn_peer(s->conn),
	    verb == SMTP_CMD_AUTH ? 4 : (int)len, line);
	if (len > SMTP_COMMAND_LINE_MAX - 2 && verb != SMTP_CMD_AUTH) {
		smtp_reply(s, "500 5.5.2 Line too long");
		return;
	}
	for (i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]); i++)
		if (smtp_commands[i].verb == verb)
			cmd = &smtp_commands[i];
	if (cmd == NULL) {
		smtp_reply(s, "500 5.5.1 Command unrecognized");
		return;
	}
	if (!(cmd->states & IN(s->state))) {
		if (verb == SMTP_CMD_BDAT)
			smtp_bdat_refuse(s, args, smtp_out_of_sequence(s, cmd));
		else
			smtp_reply(s, "%s", smtp_out_of_sequence(s, cmd));
		return;
	}
	cmd->run(s, args);
}

static void smtp_line_too_long(void *arg)
{
	smtp_reply(arg, "500 5.5.2 Line too long");
}

static const struct line_input_ops smtp_line_ops = {
	.max = SMTP_AUTH_LINE_MAX,
	.command = smtp_command,
	.auth_reply = smtp_auth_reply,
	.too_long = smtp_line_too_long,
};

static void smtp_chaos_waited(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	s->chaos_waited = true;
	conn_resume(s->conn);
}

/* chaos Delay: a command that arrived is handled after a timer, so its
 * reply comes that much later and the loop never waits. True while it
 * waits. */
static bool smtp_chaos_wait(struct smtp_session *s)
{
	struct timeval tv;
	int ms;

	if (evtimer_pending(s->ev_chaos, NULL))
		return true;
	if (s->chaos_waited || conn_input_length(s->conn) == 0 ||
	    (ms = chaos_roll(CHAOS_DELAY)) == 0)
		return false;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	conn_pause(s->conn);
	evtimer_add(s->ev_chaos, &tv);
	return true;
}

static void smtp_input(void *arg)
{
	struct smtp_session *s = arg;

	for (;;) {
		switch (s->mode) {
		case M_COMMAND:
		case M_SASL:
			if (smtp_chaos_wait(s) || !line_input(s->conn, &s->auth, &smtp_line_ops, s))
				return;
			s->chaos_waited = false;
			break;
		case M_DATA:
			smtp_input_data(s);
			if (s->mode == M_DATA)
				return;
			break;
		case M_BDAT:
			smtp_input_bdat(s);
			if (s->mode == M_BDAT)
				return;
			break;
		default:
			return;
		}
	}
}

/* --- session lifecycle ---------------------------------------------- */

static void *smtp_open(struct conn *c)
{
	struct smtp_session *s = calloc(1, sizeof(*s));
	int code;

	if (s == NULL)
		return NULL;
	s->conn = c;
	s->srv = conn_server(c);
	s->ev_delay = evtimer_new(s->srv->base, smtp_auth_delay_done, s);
	s->ev_chaos = evtimer_new(s->srv->base, smtp_chaos_waited, s);
	if (s->ev_delay == NULL || s->ev_chaos == NULL) {
		if (s->ev_delay)
			event_free(s->ev_delay);
		if (s->ev_chaos)
			event_free(s->ev_chaos);
		free(s);
		return NULL;
	}
	auth_session_init(&s->auth, &(struct auth_session_params){
	    .proto = "smtp", .store = s->srv->store, .policy = &s->srv->auth,
	    .host = s->srv->cfg->hostname, .allow_plaintext = s->srv->cfg->allow_plaintext_auth,
	    .step_ms = SMTP_AUTH_DELAY_STEP_MS, .max_ms = SMTP_AUTH_DELAY_MAX_MS,
	    .ev_delay = s->ev_delay }, conn_peer(c), &s->inbox);
	conn_set_timeout(c, s->srv->cfg->smtp_timeout);
	if ((code = chaos_roll(CHAOS_CONNECT)) != 0) {
		conn_printf(c, "%d Chaos connect error\r\n", code);
		s->mode = M_DONE;
		conn_close(c);
		return s;
	}
	conn_printf(c, "220 %s ESMTP mailsnare\r\n", s->srv->cfg->hostname);
	return s;
}

static void smtp_timeout(void *arg)
{
	struct smtp_session *s = arg;

	s->mode = M_DONE;
	conn_printf(s->conn, "421 4.4.2 %s Error: timeout exceeded\r\n", s->srv->cfg->hostname);
}

static void smtp_shutdown(void *arg)
{
	struct smtp_session *s = arg;

	s->mode = M_DONE;
	conn_printf(s->conn, "421 4.3.2 %s Service shutting down\r\n", s->srv->cfg->hostname);
	conn_close(s->conn);
}

static void smtp_free(void *arg)
{
	struct smtp_session *s = arg;

	smtp_tx_free(s);
	auth_session_end(&s->auth);
	event_free(s->ev_delay);
	event_free(s->ev_chaos);
	free(s);
}

const struct proto smtp_proto = {
	.name = "smtp",
	.busy_reply = "421 4.3.2 Too many connections, try again later\r\n",
	.open = smtp_open,
	.input = smtp_input,
	.timeout = smtp_timeout,
	.shutdown = smtp_shutdown,
	.free = smtp_free,
};
