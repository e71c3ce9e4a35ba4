/*
 * The HTTP listeners (http, https): libevent's evhttp on the server's
 * event_base, serving Mailpit's v1 API over the store (src/http*.c).
 * Connections count in max-clients like every other listener's.
 */
#ifndef MAILSNARE_HTTP_H
#define MAILSNARE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct server;
struct http_server;

/* Mailpit caps request bodies at this; POST /api/v1/send takes up to the
 * message size (as base64 JSON). */
#define HTTP_BODY_MAX (5 * 1024 * 1024)
/* Request line and header section, together (431 beyond); the request
 * line alone, with its CRLF (414 beyond): twice nginx's 8 KiB, and room
 * for a search query at its bound (4,096 bytes) all percent-encoded. */
#define HTTP_HEADERS_MAX (64 * 1024)
#define HTTP_LINE_MAX (16 * 1024)
/* Seconds a connection answered with a limit's error (Connection: close)
 * is read and dropped before it is closed: a close with unread input
 * resets the connection, and the client may lose the reply. */
#define HTTP_LINGER_S 2
/* Seconds a connection may be idle (keep-alive) or a request take to
 * arrive. */
#define HTTP_IDLE_TIMEOUT 60
/* A request on its way must bring HTTP_MIN_RATE bytes a second over every
 * HTTP_SLOW_S seconds (slowloris); the input a connection may hold while
 * its request is being answered (pipelined requests never read). */
#define HTTP_SLOW_S 10
#define HTTP_MIN_RATE 1024
#define HTTP_INPUT_MAX (256 * 1024)

/* Checks the http-* keys; NULL with a message naming the key in err. */
struct http_server *http_server_new(struct server *srv, char *err, size_t errlen);
/* Binds one listener (tls: the https one) on addr; the bound address goes
 * into bound. 0, or -1 with err. */
int http_server_listen(struct http_server *hs, const char *addr, bool tls, char *bound,
    size_t boundlen, char *err, size_t errlen);
/* Every listener is up: /readyz answers 200 from now on. */
void http_server_ready(struct http_server *hs);
/* Stops accepting and closes every HTTP connection (server_stop). */
void http_server_stop(struct http_server *hs);
/* A slice of the search index ran for parked searches (serve.c):
 * caught_up, the backlog is gone and they go on; otherwise those parked
 * for too long go on anyway (http_park.c). hs may be NULL. */
void http_server_index_slice(struct http_server *hs, bool caught_up);
void http_server_free(struct http_server *hs);

#endif
