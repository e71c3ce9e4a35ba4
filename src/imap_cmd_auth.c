/*
 * IMAP commands of any state and of the not-authenticated state:
 * CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN, AUTHENTICATE, and the
 * session-wide ENABLE, NAMESPACE and IDLE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/auth.h"
#include "mailsnare/log.h"
#include "imap_session.h"

void imap_cmd_capability(struct imap_session *s, const struct imap_command *cmd)
{
	imap_send_capability(s);
	imap_tagged(s, cmd->tag, "OK", "CAPABILITY completed");
}

void imap_cmd_noop(struct imap_session *s, const struct imap_command *cmd)
{
	/* Also picks up changes made by other processes (the CLI). */
	imap_view_sync(s, true);
	imap_tagged(s, cmd->tag, "OK", "NOOP completed");
}

void imap_cmd_logout(struct imap_session *s, const struct imap_command *cmd)
{
	imap_printf(s, "* BYE mailsnare logging out\r\n");
	imap_tagged(s, cmd->tag, "OK", "LOGOUT completed");
	s->state = IMAP_LOGOUT;
	s->mode = IMAP_M_DONE;
	conn_close(s->conn);
}

/* RFC 2971: id_params_list ::= "(" #(string SPACE nstring) ")" / nil. */
static bool id_params_valid(const struct imap_arg *a)
{
	const struct imap_arg *items;
	const char *str;
	size_t n, i;

	if (imap_arg_is_nil(a))
		return true;
	if (!imap_arg_list(a, &items, &n) || n % 2 != 0)
		return false;
	for (i = 0; i < n; i += 2)
		if (!imap_arg_string(&items[i], &str, NULL) ||
		    !imap_arg_nstring(&items[i + 1], &str, NULL))
			return false;
	return true;
}

/* RFC 2971's bounds (30 pairs, 30-octet fields, 1,024-octet values) bind
 * the client; like Dovecot, a client that goes over them is answered all
 * the same: the line bound (64 KiB) is what protects the server. */
void imap_cmd_id(struct imap_session *s, const struct imap_command *cmd)
{
	if (cmd->nargs != 1 || !id_params_valid(&cmd->args[0])) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: ID (\"field\" \"value\" ...) or ID NIL");
		return;
	}
	imap_printf(s, "* ID (\"name\" \"mailsnare\" \"vendor\" \"mailsnare\")\r\n");
	imap_tagged(s, cmd->tag, "OK", "ID completed");
}

void imap_cmd_starttls(struct imap_session *s, const struct imap_command *cmd)
{
	if (conn_is_tls(s->conn) || !conn_tls_available(s->conn)) {
		imap_tagged(s, cmd->tag, "BAD", "TLS not available");
		return;
	}
	imap_tagged(s, cmd->tag, "OK", "Begin TLS negotiation now");
	if (conn_starttls(s->conn) < 0) {
		s->mode = IMAP_M_DONE;
		conn_close(s->conn);
	}
}

/* The session's share of the auth flow, set up on first use (imap_open
 * does not know it yet). */
static struct auth_session *imap_auth(struct imap_session *s)
{
	if (s->auth.p.store == NULL)
		auth_session_init(&s->auth, &(struct auth_session_params){
		    .proto = "imap", .store = s->srv->store, .policy = &s->srv->auth,
		    .host = s->srv->cfg->hostname,
		    .allow_plaintext = s->srv->cfg->allow_plaintext_auth,
		    .step_ms = IMAP_AUTH_DELAY_STEP_MS, .max_ms = IMAP_AUTH_DELAY_MAX_MS,
		    .ev_delay = s->ev_delay }, conn_peer(s->conn), &s->inbox);
	return &s->auth;
}

void imap_auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	s->mode = IMAP_M_COMMAND;
	imap_tagged(s, s->pending_tag, "NO", "[AUTHENTICATIONFAILED] Invalid credentials");
	if (s->auth.failures >= IMAP_MAX_AUTH_FAILURES) {
		imap_printf(s, "* BYE Too many failed logins\r\n");
		s->mode = IMAP_M_DONE;
		conn_close(s->conn);
	}
	conn_resume(s->conn);
}

/* IMAP's tagged response to each outcome of the shared flow (auth.h)
 * that is one line; a failure is answered by imap_auth_delay_cb. */
static const struct { const char *status, *text; } imap_auth_replies[] = {
	[AUTH_NOMECH] = { "NO", "Unsupported authentication mechanism" },
	[AUTH_CANCELLED] = { "BAD", "Authentication cancelled" },
	[AUTH_MALFORMED] = { "BAD", "Invalid SASL response" },
	[AUTH_TEMPFAIL] = { "NO", "[UNAVAILABLE] Temporary authentication failure" },
};

/* mech is the mechanism as the client named it, or "LOGIN" for the command. */
static void imap_auth_reply(struct imap_session *s, const char *tag, const char *mech,
    enum auth_rc rc)
{
	char caps[512];

	s->mode = IMAP_M_COMMAND;
	/* AUTHENTICATE keeps its tag there already. */
	if (tag != s->pending_tag)
		snprintf(s->pending_tag, sizeof(s->pending_tag), "%s", tag);
	if (rc == AUTH_CHALLENGE) {
		s->mode = IMAP_M_AUTHENTICATE;
		imap_printf(s, "+ %s\r\n", s->auth.out);
	} else if (rc == AUTH_FAILED) {
		s->mode = IMAP_M_WAIT;
		conn_pause(s->conn);
	} else if (rc == AUTH_OK) {
		s->state = IMAP_AUTH;
		log_info("imap: %s: logged in as %s", conn_peer(s->conn), s->inbox.name);
		imap_capability_string(s, caps, sizeof(caps));
		imap_tagged(s, tag, "OK", "[CAPABILITY %s] Logged in", caps);
	} else if (rc == AUTH_NEED_TLS) {
		imap_tagged(s, tag, "NO", "[PRIVACYREQUIRED] %s needs TLS first", mech);
	} else {
		imap_tagged(s, tag, imap_auth_replies[rc].status, "%s", imap_auth_replies[rc].text);
	}
}

void imap_cmd_login(struct imap_session *s, const struct imap_command *cmd)
{
	struct auth_session *as = imap_auth(s);
	char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
	const char *u, *p;
	size_t ul, pl;

	if (cmd->nargs != 2 || !imap_arg_astring(&cmd->args[0], &u, &ul) ||
	    !imap_arg_astring(&cmd->args[1], &p, &pl)) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: LOGIN user password");
		return;
	}
	if (!auth_plaintext_ok(as, conn_is_tls(s->conn))) {
		imap_auth_reply(s, cmd->tag, "LOGIN", AUTH_NEED_TLS);
		return;
	}
	if (ul >= sizeof(user) || pl >= sizeof(pass)) {
		imap_auth_reply(s, cmd->tag, "LOGIN", auth_fail(as));
		return;
	}
	memcpy(user, u, ul);
	user[ul] = '\0';
	memcpy(pass, p, pl);
	pass[pl] = '\0';
	imap_auth_reply(s, cmd->tag, "LOGIN", auth_password(as, user, pass));
	memset(pass, 0, sizeof(pass));
}

void imap_cmd_authenticate(struct imap_session *s, const struct imap_command *cmd)
{
	char initial[SASL_OUT_MAX * 4];
	const char *ir = NULL;

	if (cmd->nargs < 1 || cmd->nargs > 2 || cmd->args[0].type != IMAP_ARG_ATOM) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: AUTHENTICATE mechanism [initial]");
		return;
	}
	if (cmd->nargs == 2) {   /* SASL-IR (RFC 4959) */
		snprintf(initial, sizeof(initial), "%.*s", (int)cmd->args[1].len, cmd->args[1].str);
		ir = initial;
	}
	imap_auth_reply(s, cmd->tag, cmd->args[0].str,
	    auth_start(imap_auth(s), conn_is_tls(s->conn), cmd->args[0].str, ir));
}

void imap_auth_line(struct imap_session *s, const char *line)
{
	imap_auth_reply(s, s->pending_tag, NULL, auth_step(&s->auth, line));
}

/* RFC 5161: the reply names what this command newly enabled. */
void imap_cmd_enable(struct imap_session *s, const struct imap_command *cmd)
{
	char enabled[160] = "";
	size_t i;

	if (cmd->nargs == 0) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: ENABLE capability...");
		return;
	}
	for (i = 0; i < cmd->nargs; i++) {
		bool qresync = imap_arg_equals(&cmd->args[i], "QRESYNC");
		if (imap_arg_equals(&cmd->args[i], "IMAP4rev2") && !s->rev2) {
			/* RFC 9051: no \Recent, ESEARCH for SEARCH, UTF-8 names. */
			s->rev2 = s->utf8 = true;
			strcat(enabled, " IMAP4rev2");
		} else if (imap_arg_equals(&cmd->args[i], "UTF8=ACCEPT") && !s->utf8) {
			/* RFC 6855: UTF-8 mailbox names and quoted strings from now on. */
			s->utf8 = true;
			strcat(enabled, " UTF8=ACCEPT");
		} else if (imap_arg_equals(&cmd->args[i], "CONDSTORE") && !s->condstore) {
			s->condstore = true;
			strcat(enabled, " CONDSTORE");
		} else if (qresync && !s->qresync) {
			/* QRESYNC implies CONDSTORE (RFC 7162 §3.2.3). */
			if (!s->condstore)
				strcat(enabled, " CONDSTORE");
			s->condstore = s->qresync = true;
			strcat(enabled, " QRESYNC");
		}
	}
	imap_printf(s, "* ENABLED%s\r\n", enabled);
	imap_tagged(s, cmd->tag, "OK", "ENABLE completed");
}

void imap_cmd_namespace(struct imap_session *s, const struct imap_command *cmd)
{
	imap_printf(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	imap_tagged(s, cmd->tag, "OK", "NAMESPACE completed");
}

void imap_cmd_idle(struct imap_session *s, const struct imap_command *cmd)
{
	snprintf(s->pending_tag, sizeof(s->pending_tag), "%s", cmd->tag);
	s->mode = IMAP_M_IDLE;
	imap_printf(s, "+ idling\r\n");
	imap_view_sync(s, true);
}

void imap_idle_line(struct imap_session *s, const char *line)
{
	s->mode = IMAP_M_COMMAND;
	if (strcasecmp(line, "DONE") != 0) {
		imap_tagged(s, s->pending_tag, "BAD", "Expected DONE");
		return;
	}
	imap_tagged(s, s->pending_tag, "OK", "IDLE terminated");
}
