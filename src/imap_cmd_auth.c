/*
 * IMAP commands of the not-authenticated state: STARTTLS, LOGIN and
 * AUTHENTICATE (with SASL-IR), mapping the shared auth flow (auth.c) to
 * IMAP's replies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/auth.h"
#include "mailsnare/log.h"
#include "imap_session.h"

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
	[AUTH_TOOLONG] = { "BAD", "Authentication exchange line is too long" },
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
