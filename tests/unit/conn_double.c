/*
 * The connection API over memory: input is one growing buffer the session
 * reads from the front of, output one buffer the test takes. The line
 * reader keeps conn.c's contract (CRLF or LF, a too-long line reported
 * once and the rest of it discarded as it arrives). No TLS, no deflate:
 * conn_starttls and conn_compress fail, as on a server without them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <event2/event.h>

#include "mailsnare/config.h"
#include "mailsnare/deliver.h"
#include "mailsnare/server.h"
#include "mailsnare/smtp.h"
#include "mailsnare/store.h"
#include "conn_double.h"

struct cd_server {
	struct server srv;        /* first: the struct server * is ours */
	struct config cfg;
	char dir[64], db[96];
};

struct conn {
	struct server *srv;
	const struct proto *proto;
	void *sess;
	char *in;
	size_t inlen, incap;
	char *out;
	size_t outlen, outcap, outtaken;
	unsigned timeout;
	bool tls, paused, closed, skipping, full, wake, running, want_drain;
};

static void cd_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		if ((*buf = realloc(*buf, *cap)) == NULL)
			abort();
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
}

struct conn *cd_open(struct server *srv, const struct proto *proto, bool tls)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		abort();
	c->srv = srv;
	c->proto = proto;
	c->tls = tls;
	if ((c->sess = proto->open(c)) == NULL) {
		free(c->in);
		free(c->out);
		free(c);
		return NULL;
	}
	return c;
}

void cd_run(struct conn *c)
{
	/* conn.c calls input from the event loop, never from inside itself. */
	if (c->running)
		return;
	c->running = true;
	do {
		c->wake = false;
		if (!c->closed && !c->paused)
			c->proto->input(c->sess);
		/* All output is taken at once: a streaming session goes on. */
		while (c->want_drain && !c->closed) {
			c->want_drain = false;
			c->proto->drained(c->sess);
		}
	} while (c->wake && !c->closed && !c->paused);
	c->running = false;
}

void cd_feed(struct conn *c, const char *bytes, size_t len)
{
	cd_append(&c->in, &c->inlen, &c->incap, bytes, len);
	cd_run(c);
}

const char *cd_output(struct conn *c)
{
	const char *p;

	cd_append(&c->out, &c->outlen, &c->outcap, "", 0);
	p = c->out + c->outtaken;
	c->outtaken = c->outlen;
	return p;
}

size_t cd_input_left(struct conn *c) { return c->inlen; }
bool cd_closed(struct conn *c) { return c->closed; }
bool cd_paused(struct conn *c) { return c->paused; }
void cd_set_output_full(struct conn *c, bool full) { c->full = full; }

void cd_free(struct conn *c)
{
	c->proto->free(c->sess);
	free(c->in);
	free(c->out);
	free(c);
}

/* ---- the API ---------------------------------------------------------- */

struct server *conn_server(struct conn *c) { return c->srv; }
const char *conn_peer(struct conn *c) { (void)c; return "127.0.0.1"; }
bool conn_is_tls(struct conn *c) { return c->tls; }
bool conn_tls_available(struct conn *c) { (void)c; return false; }
void conn_set_timeout(struct conn *c, unsigned seconds) { c->timeout = seconds; }
size_t conn_output_pending(struct conn *c) { (void)c; return 0; }
void conn_flush(struct conn *c) { (void)c; }
bool conn_output_full(struct conn *c) { return c->full; }
int conn_starttls(struct conn *c) { (void)c; return -1; }
int conn_compress(struct conn *c) { (void)c; return -1; }
bool conn_is_compressed(struct conn *c) { (void)c; return false; }
void conn_pause(struct conn *c) { c->paused = true; }
void conn_close(struct conn *c) { c->closed = true; }

/* cd_run calls proto->drained (not from here: no recursion). */
void conn_wait_drain(struct conn *c)
{
	c->want_drain = c->proto->drained != NULL;
}

void conn_resume(struct conn *c)
{
	if (!c->paused || c->closed)
		return;
	c->paused = false;
	c->wake = true;
}

/* As a later pass of the loop would: cd_run calls input again. */
void conn_input_later(struct conn *c)
{
	if (!c->closed)
		c->wake = true;
}

void conn_write(struct conn *c, const void *buf, size_t len)
{
	cd_append(&c->out, &c->outlen, &c->outcap, buf, len);
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	conn_write(c, s, (size_t)n);
	free(s);
}

size_t conn_input_length(struct conn *c) { return c->inlen; }

size_t conn_peek(struct conn *c, const char **data)
{
	*data = c->inlen ? c->in : NULL;
	return c->inlen;
}

void conn_consume(struct conn *c, size_t n)
{
	if (n > c->inlen)
		n = c->inlen;
	memmove(c->in, c->in + n, c->inlen - n);
	c->inlen -= n;
}

enum conn_line conn_readline(struct conn *c, char *buf, size_t bufsize, size_t *len)
{
	const char *nl;
	size_t pos, eol;

	if (c->full)
		return CONN_LINE_NONE;
	for (;;) {
		nl = c->inlen ? memchr(c->in, '\n', c->inlen) : NULL;
		if (c->skipping) {
			if (nl == NULL) {
				conn_consume(c, c->inlen);
				return CONN_LINE_NONE;
			}
			conn_consume(c, (size_t)(nl - c->in) + 1);
			c->skipping = false;
			continue;
		}
		if (nl == NULL) {
			if (c->inlen < bufsize)
				return CONN_LINE_NONE;
			conn_consume(c, c->inlen);
			c->skipping = true;
			return CONN_LINE_TOOLONG;
		}
		eol = (size_t)(nl - c->in) + 1;
		pos = eol - 1;
		if (pos > 0 && c->in[pos - 1] == '\r')
			pos--;
		if (pos >= bufsize) {
			conn_consume(c, eol);
			return CONN_LINE_TOOLONG;
		}
		memcpy(buf, c->in, pos);
		buf[pos] = '\0';
		*len = pos;
		conn_consume(c, eol);
		return CONN_LINE_OK;
	}
}

/* ---- the server fixture ------------------------------------------------ */

struct server *cd_server_new(void)
{
	struct cd_server *cs = calloc(1, sizeof(*cs));
	struct config_flag flags[] = { { "config", "" } };
	char *envp[] = { NULL };
	struct config_error cerr;
	struct store_inbox in;
	char err[256];

	if (cs == NULL)
		abort();
	if (config_load(&cs->cfg, flags, 1, envp, &cerr) < 0) {
		fprintf(stderr, "config: %s\n", cerr.msg);
		abort();
	}
	snprintf(cs->cfg.hostname, sizeof(cs->cfg.hostname), "mx.test");
	snprintf(cs->dir, sizeof(cs->dir), "/tmp/test_session_XXXXXX");
	if (mkdtemp(cs->dir) == NULL)
		abort();
	snprintf(cs->db, sizeof(cs->db), "%s/mail.db", cs->dir);
	cs->srv.cfg = &cs->cfg;
	cs->srv.auth.accept_any = cs->cfg.auth_accept_any;
	cs->srv.store = store_open(&(struct store_options){ .path = cs->db,
	    .durability = cs->cfg.durability, .err = err, .errlen = sizeof(err) });
	if (cs->srv.store == NULL) {
		fprintf(stderr, "store: %s\n", err);
		abort();
	}
	if (store_inbox_ensure(cs->srv.store, SMTP_DEFAULT_INBOX, SMTP_DEFAULT_PASSWORD, &in) < 0 ||
	    (cs->srv.base = event_base_new()) == NULL ||
	    (cs->srv.deliver = deliver_new(cs->srv.base, cs->srv.store,
	    cs->cfg.max_messages)) == NULL)
		abort();
	return &cs->srv;
}

void cd_server_free(struct server *srv)
{
	struct cd_server *cs = (struct cd_server *)srv;
	char path[128];

	deliver_free(srv->deliver);
	store_close(srv->store);
	event_base_free(srv->base);
	config_free(&cs->cfg);
	/* The store's files: the database and its WAL companions. */
	unlink(cs->db);
	snprintf(path, sizeof(path), "%s-wal", cs->db);
	unlink(path);
	snprintf(path, sizeof(path), "%s-shm", cs->db);
	unlink(path);
	rmdir(cs->dir);
	free(cs);
}

struct conn *cd_start(const struct proto *proto)
{
	struct server *srv = cd_server_new();
	struct conn *c = cd_open(srv, proto, false);

	if (c == NULL)
		abort();
	return c;
}

void cd_stop(struct conn *c)
{
	struct server *srv = c->srv;

	cd_free(c);
	cd_server_free(srv);
}
