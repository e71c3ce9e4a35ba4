/*
 * The server: one event_base, the listeners on it (listener.c) and the
 * shared state every session reaches through conn_server(). Accepted
 * sockets become connections (conn.h); this header is about accepting,
 * max-clients and stopping.
 */
#ifndef MAILSNARE_SERVER_H
#define MAILSNARE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "mailsnare/auth.h"     /* struct auth_policy is held by value */
#include "mailsnare/conn.h"
#include "mailsnare/config.h"   /* LISTEN_COUNT, CONFIG_ADDR_MAX */

struct config;
struct curl_loop;
struct deliver;
struct event_base;
struct http_server;
struct listener;
struct relay;
struct relay_auto;
struct ssl_ctx_st;              /* OpenSSL's SSL_CTX */
struct store;
struct webhook;

/* What the server counted since it started (Mailpit's RuntimeStats in
 * /api/v1/info). */
struct server_stats {
	uint64_t smtp_accepted;           /* messages stored from SMTP ... */
	uint64_t smtp_accepted_size;      /* ... and their bytes */
	uint64_t smtp_rejected;           /* transactions refused at or after the data */
	uint64_t messages_deleted;        /* removed from the store (not moved) */
};

struct server {
	struct event_base *base;
	const struct config *cfg;
	struct store *store;
	struct deliver *deliver;
	struct auth_policy auth;
	struct ssl_ctx_st *ssl_ctx;       /* NULL if TLS is unavailable */
	struct listener *listeners;
	struct http_server *http;         /* the http/https listeners, or NULL */
	struct curl_loop *curl;           /* outbound transfers (relay, webhook) */
	struct relay *relay;              /* NULL: no relay-host */
	struct relay_auto *relay_auto;    /* NULL: no relay-auto */
	struct webhook *webhook;          /* NULL: no webhook-url */
	struct serve_index *index;        /* the search index's slices (serve.c) */
	struct search_pool *search;       /* the HTTP API's searches; NULL: on the loop */
	unsigned nconns;
	bool stopping;
	struct conn *conns;               /* all live connections */
	struct server_stats stats;
	/* Where each listener kind is bound ("127.0.0.1:1025"), "" if off:
	 * the web page shows it (GET /api/v1/webui). */
	char bound[LISTEN_COUNT][CONFIG_ADDR_MAX];
};

/* Binds a listener for proto on addr ("host:port"); implicit_tls speaks
 * TLS from the first byte. Writes the bound address ("127.0.0.1:1025",
 * "[::1]:1025") into bound. 0, or -1 with a message in err. */
int server_listen(struct server *srv, const struct proto *proto, const char *addr,
    bool implicit_tls, char *bound, size_t boundlen, char *err, size_t errlen);
/* Stops accepting, asks every session to shut down, and ends the loop
 * once they are gone (or after a grace period). */
void server_stop(struct server *srv);
/* Frees the listeners (after the loop ended). */
void server_free_listeners(struct server *srv);

#endif
