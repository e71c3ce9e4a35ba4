/*
 * Listeners on one event_base: binding, accepting (max-clients), and
 * stopping the server. Accepted sockets are handed to conn.c.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "mailsnare/config.h"
#include "mailsnare/deliver.h"
#include "mailsnare/http.h"
#include "mailsnare/log.h"
#include "mailsnare/server.h"
#include "conn_internal.h"

/* How long shutdown waits for sessions to finish. */
#define SERVER_STOP_GRACE_SEC 10

struct listener {
	struct server *srv;
	const struct proto *proto;
	struct evconnlistener *evl;
	bool implicit_tls;
	struct listener *next;
};

static void sockaddr_to_text(const struct sockaddr *sa, char *host, size_t hostlen,
    unsigned *port)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, hostlen);
		*port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, hostlen);
		*port = ntohs(s4->sin_port);
	}
}

static void listener_refuse(struct listener *l, evutil_socket_t fd)
{
	const char *reply = l->proto->busy_reply;

	/* Best effort: a full server does not wait on a client. */
	if (reply && !l->implicit_tls)
		(void)send(fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
	evutil_closesocket(fd);
}

static void listener_acceptcb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;
	char peer[INET6_ADDRSTRLEN];
	unsigned port;

	if (srv->stopping || srv->nconns >= srv->cfg->max_clients) {
		log_warn("%s: refusing connection: %u clients (max-clients)",
		    l->proto->name, srv->nconns);
		listener_refuse(l, fd);
		return;
	}
	sockaddr_to_text(sa, peer, sizeof(peer), &port);
	conn_accept(srv, l->proto, fd, l->implicit_tls, peer, port);
}

static int listener_bind(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen,
    char *err, size_t errlen)
{
	char host[CONFIG_ADDR_MAX], port[16];
	struct addrinfo hints = { 0 }, *res;
	int rc;

	if (config_split_hostport(addr, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err, errlen, "invalid address '%s'", addr);
		return -1;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", addr, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void format_bound(evutil_socket_t fd, char *bound, size_t boundlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	unsigned port;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(bound, boundlen, "?");
		return;
	}
	sockaddr_to_text((struct sockaddr *)&ss, host, sizeof(host), &port);
	if (ss.ss_family == AF_INET6)
		snprintf(bound, boundlen, "[%s]:%u", host, port);
	else
		snprintf(bound, boundlen, "%s:%u", host, port);
}

int server_listen(struct server *srv, const struct proto *proto, const char *addr,
    bool implicit_tls, char *bound, size_t boundlen, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct listener *l;

	if (implicit_tls && srv->ssl_ctx == NULL) {
		snprintf(err, errlen, "TLS is not available");
		return -1;
	}
	if (listener_bind(addr, &ss, &sslen, err, errlen) < 0)
		return -1;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->srv = srv;
	l->proto = proto;
	l->implicit_tls = implicit_tls;
	l->evl = evconnlistener_new_bind(srv->base, listener_acceptcb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
	    (struct sockaddr *)&ss, sslen);
	if (l->evl == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
		free(l);
		return -1;
	}
	format_bound(evconnlistener_get_fd(l->evl), bound, boundlen);
	l->next = srv->listeners;
	srv->listeners = l;
	return 0;
}

static void server_grace_expired(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	log_warn("shutdown: %u connection(s) did not finish in time", srv->nconns);
	event_base_loopexit(srv->base, NULL);
}

void server_stop(struct server *srv)
{
	struct timeval grace = { SERVER_STOP_GRACE_SEC, 0 };
	struct listener *l;
	struct conn *c, *next;

	if (srv->stopping)
		return;
	srv->stopping = true;
	for (l = srv->listeners; l; l = l->next)
		evconnlistener_disable(l->evl);
	/* Acknowledge what is already written before telling anyone goodbye. */
	if (srv->deliver)
		deliver_flush(srv->deliver);
	for (c = srv->conns; c; c = next) {
		next = c->next;
		if (!c->closing)
			c->proto->shutdown(c->sess);
	}
	http_server_stop(srv->http);
	if (srv->nconns == 0)
		event_base_loopexit(srv->base, NULL);
	else
		event_base_once(srv->base, -1, EV_TIMEOUT, server_grace_expired, srv, &grace);
}

void server_free_listeners(struct server *srv)
{
	struct listener *l;

	while ((l = srv->listeners) != NULL) {
		srv->listeners = l->next;
		evconnlistener_free(l->evl);
		free(l);
	}
	/* Connections still open after the grace period are dropped now. */
	while (srv->conns)
		conn_free(srv->conns);
}
