/*
 * Shared by the connection layer's own files (conn.c, conn_zlib.c,
 * listener.c), never by a protocol: the connection itself.
 */
#ifndef MAILSNARE_CONN_INTERNAL_H
#define MAILSNARE_CONN_INTERNAL_H

#include <stdbool.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "mailsnare/conn.h"

/* Input is read ahead at most this far while a session is not consuming
 * it (back-pressure on pipelining clients). */
#define CONN_READ_HIGHWATER (256 * 1024)

struct conn_zlib;

struct conn {
	struct server *srv;
	const struct proto *proto;
	void *sess;
	struct bufferevent *bev;
	struct conn_zlib *z;          /* COMPRESS is on */
	struct event *ev_wake;        /* resume input, or finish closing */
	struct conn *prev, *next;
	unsigned timeout;
	bool tls;
	bool paused;
	bool closing;
	bool eof;                     /* the client shut down its side */
	bool skipping;                /* discarding the rest of a too-long line */
	bool want_drain;              /* call proto->drained at the low-water mark */
	bool throttled;               /* input stopped: too much output queued */
	bool handshaking;             /* a TLS handshake is running: login-timeout */
	struct evbuffer_cb_entry *bottom_cb;  /* drains of the socket-level output */
	char peer[INET6_ADDRSTRLEN];
	struct timeval close_started;
};

/* conn.c: the listener hands over an accepted socket (tls: implicit TLS);
 * the session is opened and its greeting sent. */
void conn_accept(struct server *srv, const struct proto *proto, evutil_socket_t fd,
    bool tls, const char *peer, unsigned port);
/* Frees at once, whatever is queued (conn.c's only free path). */
void conn_free(struct conn *c);
/* Applies callbacks, watermarks and the timeout to c->bev after a layer
 * was stacked on it. */
void conn_setup_bev(struct conn *c);

/* conn_zlib.c, for conn.c. */
void conn_zlib_flush(struct conn *c);
bool conn_zlib_pull(struct conn *c);
bool conn_zlib_failed(const struct conn *c);
/* The connection goes: the filter frees the zlib state, perhaps later. */
void conn_zlib_detach(struct conn *c);

#endif
