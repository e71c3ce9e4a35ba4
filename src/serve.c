/*
 * `mailsnare serve`: everything that happens once at start and once at
 * exit, around the reactor.
 */
#include <errno.h>
#include <libgen.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "mailsnare/chaos.h"
#include "mailsnare/config.h"
#include "mailsnare/curl_loop.h"
#include "mailsnare/deliver.h"
#include "mailsnare/http.h"
#include "mailsnare/imap.h"
#include "mailsnare/log.h"
#include "mailsnare/metrics.h"
#include "mailsnare/notify.h"
#include "mailsnare/pop3.h"
#include "mailsnare/relay.h"
#include "mailsnare/retention.h"
#include "mailsnare/serve.h"
#include "mailsnare/server.h"
#include "mailsnare/smtp.h"
#include "mailsnare/spool_reap.h"
#include "mailsnare/body_purge.h"
#include "mailsnare/search_pool.h"
#include "mailsnare/store.h"
#include "mailsnare/tls.h"
#include "mailsnare/webhook.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

/* Priorities of the base: connections run at 1 (the default), the group
 * commit at 2, after every connection callback of a loop pass. */
#define SERVE_PRIORITIES 3

struct serve_listener {
	enum listener_kind kind;
	const struct proto *proto;
	bool implicit_tls;
};

/* Listeners this version serves; the others are logged as skipped. */
static const struct serve_listener serve_listeners[] = {
	{ LISTEN_SMTP, &smtp_proto, false },
	{ LISTEN_SMTPS, &smtp_proto, true },
	{ LISTEN_POP3, &pop3_proto, false },
	{ LISTEN_POP3S, &pop3_proto, true },
	{ LISTEN_IMAP, &imap_proto, false },
	{ LISTEN_IMAPS, &imap_proto, true },
};

/* epoll's changelist folds the enable/disable pairs that bufferevents make
 * within one loop pass into one epoll_ctl, or none. */
static struct event_base *serve_event_base(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;

	if (ec == NULL)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

static int serve_inboxes(struct store *st, const struct config *cfg)
{
	struct store_inbox in;
	size_t i;

	if (store_inbox_ensure(st, SMTP_DEFAULT_INBOX, SMTP_DEFAULT_PASSWORD, &in) < 0)
		return -1;
	for (i = 0; i < cfg->n_inboxes; i++) {
		const struct config_inbox *ci = &cfg->inboxes[i];
		if (store_inbox_ensure(st, ci->name, ci->password, &in) < 0 ||
		    store_inbox_set_password(st, ci->name, ci->password) < 0) {
			fprintf(stderr, "mailsnare: inbox '%s': %s\n", ci->name, store_errmsg(st));
			return -1;
		}
	}
	return 0;
}

/* The configured pair, or one generated next to the db on first start. */
static SSL_CTX *serve_tls(const struct config *cfg)
{
	char cert[PATH_MAX + 32], key[PATH_MAX + 32], dir[PATH_MAX], err[512];
	SSL_CTX *ctx;

	if (cfg->tls_cert[0] != '\0') {
		snprintf(cert, sizeof(cert), "%s", cfg->tls_cert);
		/* config_load makes sure the key comes with the certificate. */
		snprintf(key, sizeof(key), "%s", cfg->tls_key);
	} else {
		/* dirname() may return a static "." rather than edit dir. */
		snprintf(dir, sizeof(dir), "%s", cfg->db);
		const char *parent = dirname(dir);
		snprintf(cert, sizeof(cert), "%s/mailsnare-cert.pem", parent);
		snprintf(key, sizeof(key), "%s/mailsnare-key.pem", parent);
		if (tls_ensure_selfsigned(cert, key, err, sizeof(err)) < 0) {
			fprintf(stderr, "mailsnare: cannot create a TLS certificate: %s\n", err);
			return NULL;
		}
	}
	if ((ctx = tls_server_ctx_new(cert, key, err, sizeof(err))) == NULL)
		fprintf(stderr, "mailsnare: tls-cert %s: %s\n", cert, err);
	return ctx;
}

static bool serve_has_listener(size_t kind)
{
	size_t i;

	for (i = 0; i < sizeof(serve_listeners) / sizeof(serve_listeners[0]); i++)
		if ((size_t)serve_listeners[i].kind == kind)
			return true;
	return false;
}

/* The web interface and API: evhttp, not struct conn (src/http.c). Some
 * fixtures wait for the line that says where it is. */
static int serve_bind_http(struct server *srv, FILE *ready)
{
	static const enum listener_kind kinds[] = { LISTEN_HTTP, LISTEN_HTTPS };
	char bound[CONFIG_ADDR_MAX], err[512];
	const struct config *cfg = srv->cfg;
	size_t i;

	for (i = 0; i < 2; i++) {
		const char *name = config_listener_name(kinds[i]);
		bool tls = kinds[i] == LISTEN_HTTPS;
		if (strcmp(cfg->listen[kinds[i]], "off") == 0)
			continue;
		if (srv->http == NULL && (srv->http = http_server_new(srv, err, sizeof(err))) == NULL) {
			fprintf(stderr, "mailsnare: %s\n", err);
			return -1;
		}
		if (http_server_listen(srv->http, cfg->listen[kinds[i]], tls, bound, sizeof(bound),
		    err, sizeof(err)) < 0) {
			fprintf(stderr, "mailsnare: %s: %s\n", name, err);
			return -1;
		}
		printf("%-6s %s (%sweb and API: %s://%s/)\n", name, bound, tls ? "TLS, " : "",
		    name, bound);
		fprintf(ready, "%s %s\n", name, bound);
		snprintf(srv->bound[kinds[i]], sizeof(srv->bound[kinds[i]]), "%s", bound);
	}
	return 0;
}

static int serve_bind(struct server *srv, FILE *ready)
{
	char bound[CONFIG_ADDR_MAX], err[512];
	const struct config *cfg = srv->cfg;
	size_t i;

	for (i = 0; i < sizeof(serve_listeners) / sizeof(serve_listeners[0]); i++) {
		const struct serve_listener *sl = &serve_listeners[i];
		const char *name = config_listener_name(sl->kind);
		if (strcmp(cfg->listen[sl->kind], "off") == 0)
			continue;
		if (server_listen(srv, sl->proto, cfg->listen[sl->kind], sl->implicit_tls,
		    bound, sizeof(bound), err, sizeof(err)) < 0) {
			fprintf(stderr, "mailsnare: %s: %s\n", name, err);
			return -1;
		}
		printf("%-6s %s%s\n", name, bound, sl->implicit_tls ? " (TLS)" : "");
		fprintf(ready, "%s %s\n", name, bound);
		snprintf(srv->bound[sl->kind], sizeof(srv->bound[sl->kind]), "%s", bound);
	}
	if (serve_bind_http(srv, ready) < 0)
		return -1;
	for (i = LISTEN_POP3; i < LISTEN_COUNT; i++)
		if (strcmp(cfg->listen[i], "off") != 0 && !serve_has_listener(i) &&
		    i != LISTEN_HTTP && i != LISTEN_HTTPS)
			log_info("%s: not implemented in this version; listener skipped",
			    config_listener_name(i));
	return 0;
}

static void serve_print_credentials(const struct config *cfg)
{
	size_t i;

	printf("inbox  %s: username %s, password %s\n", SMTP_DEFAULT_INBOX,
	    SMTP_DEFAULT_INBOX, SMTP_DEFAULT_PASSWORD);
	for (i = 0; i < cfg->n_inboxes; i++)
		printf("inbox  %s: username %s, password %s\n", cfg->inboxes[i].name,
		    cfg->inboxes[i].name, cfg->inboxes[i].password);
	if (cfg->auth_accept_any)
		printf("auth-accept-any: any username/password is accepted\n");
	fflush(stdout);
}

/* The ready file appears whole (rename) once every listener is bound and
 * the listeners and credentials are on stdout. */
static int serve_listen_all(struct server *srv)
{
	const char *path = srv->cfg->ready_file;
	char tmp[PATH_MAX + 8];
	FILE *ready;
	int rc;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path[0] ? path : "/dev/null");
	ready = fopen(path[0] ? tmp : "/dev/null", "w");
	if (ready == NULL) {
		fprintf(stderr, "mailsnare: ready-file %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	/* A ready file left by a killed run must not announce old ports. */
	if (path[0])
		unlink(path);
	rc = serve_bind(srv, ready);
	if (fclose(ready) != 0)
		rc = -1;
	/* On stdout before the ready file appears: whoever waits for the
	 * file then finds the listener lines (they were still in stdio's
	 * buffer, a file or a pipe's, when the file came). */
	if (rc == 0)
		serve_print_credentials(srv->cfg);
	if (rc == 0 && path[0] && rename(tmp, path) < 0) {
		fprintf(stderr, "mailsnare: ready-file %s: %s\n", path, strerror(errno));
		rc = -1;
	}
	return rc;
}

/* Many idle clients need many descriptors: take the hard limit. */
static void serve_raise_nofile(const struct config *cfg)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)cfg->max_clients + 64)
		log_warn("max-clients %u exceeds the open-file limit %llu", cfg->max_clients,
		    (unsigned long long)rl.rlim_cur);
}

static void serve_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	log_info("signal %d: shutting down", (int)sig);
	(void)notify_systemd("STOPPING=1");
	server_stop(srv);
}

/* SIGHUP reloads nothing: the log is stderr (the journal under systemd,
 * nothing to re-open) and the configuration is read once, at start. It is
 * caught so that a stray HUP (a closed terminal, `kill -HUP`) does not kill
 * the server by the default action. */
static void serve_sighup(evutil_socket_t sig, short what, void *arg)
{
	log_info("SIGHUP: nothing to reload (restart to apply a new configuration)");
}

/* The CLI writes to the same database from its own process; sessions hear
 * of it through this poll (an idling IMAP client within half a second). */
#define SERVE_EXTERNAL_POLL_MS 500

static void serve_poll_external(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	(void)store_poll_external(srv->store);
}

/* The search index (store_index_pending): new messages, then the
 * back-fill of those stored before it existed, a slice per loop pass at
 * the lowest priority, after every connection's callbacks, until none is
 * left. Deliveries (ours, or another process's) wake it once the store
 * has been quiet for SERVE_INDEX_QUIET_MS: indexing costs 3x-10x what
 * storing a message does (FTS5), and a burst of mail is taken at full
 * speed and indexed after it. An HTTP search that finds a backlog is
 * parked (http_park.c) and asks for the slices now, back to back
 * (serve_index_hurry); it is woken once the backlog is gone. Any other
 * search indexes what is still waiting first (store_fts_catch_up). */
#define SERVE_INDEX_SLICE 32
#define SERVE_INDEX_QUIET_MS 500

struct serve_index {
	struct server *srv;
	struct event *ev;
	bool hurry;           /* a search waits: no quiet period */
};

/* The next slice after this loop pass's I/O: an event made active from
 * its own callback would run again in the same pass, before any other
 * client's (libevent empties a priority's queue before it polls). */
static void serve_index_again(struct serve_index *ix)
{
	struct timeval now = { 0, 0 };

	(void)event_add(ix->ev, &now);
}

static void serve_index_slice(evutil_socket_t fd, short what, void *arg)
{
	struct serve_index *ix = arg;
	unsigned done = 0;
	bool more = false;

	(void)fd;
	(void)what;
	if (store_index_pending(ix->srv->store, SERVE_INDEX_SLICE, &done, &more) != STORE_OK) {
		log_warn("store: search index back-fill: %s", store_errmsg(ix->srv->store));
		more = false;
	} else if (more)
		serve_index_again(ix);
	if (!ix->hurry)
		return;
	/* Parked searches go on once nothing new waits (the back-fill of
	 * older mail may go on), or when the slices stop for any reason:
	 * their own catch-up does the rest. */
	if (!more || !store_index_backlog(ix->srv->store))
		ix->hurry = false;
	http_server_index_slice(ix->srv->http, !ix->hurry);
}

bool serve_index_hurry(struct server *srv)
{
	if (srv->index == NULL || srv->index->ev == NULL)
		return false;
	srv->index->hurry = true;
	serve_index_again(srv->index);
	return true;
}

static void serve_index_wake(void *arg, enum store_change what, int64_t inbox_id,
    int64_t mailbox_id, int64_t message_id)
{
	struct serve_index *ix = arg;
	struct timeval quiet = { 0, SERVE_INDEX_QUIET_MS * 1000 };

	(void)inbox_id;
	(void)mailbox_id;
	(void)message_id;
	/* While a search waits the slices go on, deliveries or not. */
	if ((what == STORE_CHANGE_NEW || what == STORE_CHANGE_EXTERNAL) && !ix->hurry)
		(void)event_add(ix->ev, &quiet);
}

/* What the server sends out: releases (relay-host, relay-auto; each on a
 * thread of its own, relay.c says why) and the webhook (on curl_loop).
 * config_load made sure relay-auto comes with relay-host. */
static int serve_outbound(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	char err[512] = "";

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (srv->curl = curl_loop_new(srv->base)) == NULL) {
		fprintf(stderr, "mailsnare: cannot set up libcurl\n");
		return -1;
	}
	if (relay_new(cfg, srv->base, &srv->relay, err, sizeof(err)) < 0)
		goto fail;
	if (srv->relay != NULL && cfg->relay_auto[0] != '\0' &&
	    (srv->relay_auto = relay_auto_new(srv->base, srv->relay, srv->store, cfg->relay_auto,
	    err, sizeof(err))) == NULL)
		goto fail;
	if (webhook_new(srv->base, srv->curl, srv->store, cfg, &srv->webhook, err,
	    sizeof(err)) < 0)
		goto fail;
	if (srv->relay != NULL)
		printf("relay  %s (release%s)\n", relay_server(srv->relay),
		    srv->relay_auto ? "; relay-auto on" : "");
	if (srv->webhook != NULL)
		printf("webhook %s\n", cfg->webhook_url);
	return 0;
fail:
	fprintf(stderr, "mailsnare: %s\n", err);
	return -1;
}

/* After the HTTP server: a release it waits for is cancelled with it. */
static void serve_outbound_free(struct server *srv)
{
	relay_auto_free(srv->relay_auto);
	webhook_free(srv->webhook);
	relay_free(srv->relay);
	curl_loop_free(srv->curl);
	if (srv->curl != NULL)
		curl_global_cleanup();
}

static int serve_start(struct server *srv);

/* The signal events go in before the listeners (and the ready file):
 * a SIGTERM right after the ready file appears is a clean stop, not a
 * kill by the default action. */
static int serve_loop(struct server *srv)
{
	struct event *sigint, *sigterm, *sighup, *poll;
	struct timeval tv = { 0, SERVE_EXTERNAL_POLL_MS * 1000 };
	struct serve_index ix = { srv, NULL, false };
	int rc = -1;

	sigint = evsignal_new(srv->base, SIGINT, serve_signal, srv);
	sigterm = evsignal_new(srv->base, SIGTERM, serve_signal, srv);
	sighup = evsignal_new(srv->base, SIGHUP, serve_sighup, srv);
	poll = event_new(srv->base, -1, EV_PERSIST, serve_poll_external, srv);
	if (sigint == NULL || sigterm == NULL || sighup == NULL || poll == NULL ||
	    evsignal_add(sigint, NULL) < 0 || evsignal_add(sigterm, NULL) < 0 ||
	    evsignal_add(sighup, NULL) < 0 || event_add(poll, &tv) < 0) {
		fprintf(stderr, "mailsnare: cannot install signal handlers\n");
		goto out;
	}
	if (serve_start(srv) < 0)
		goto out;
	if ((ix.ev = event_new(srv->base, -1, 0, serve_index_slice, &ix)) != NULL) {
		(void)event_priority_set(ix.ev, SERVE_PRIORITIES - 1);
		event_active(ix.ev, EV_TIMEOUT, 0);
		if (store_subscribe(srv->store, serve_index_wake, &ix) != STORE_OK)
			log_warn("store: search index: %s", store_errmsg(srv->store));
		srv->index = &ix;
	}
	event_base_dispatch(srv->base);
	rc = 0;
out:
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	if (sighup)
		event_free(sighup);
	if (poll)
		event_free(poll);
	srv->index = NULL;
	if (ix.ev) {
		store_unsubscribe(srv->store, serve_index_wake, &ix);
		event_free(ix.ev);
	}
	return rc;
}

/* Listeners up, ready file written, credentials shown. */
static int serve_start(struct server *srv)
{
	if (serve_listen_all(srv) < 0)
		return -1;
	http_server_ready(srv->http);
	log_info("ready");
	/* Type=notify: systemd starts dependent units only now. */
	if (notify_systemd("READY=1") < 0)
		log_warn("NOTIFY_SOCKET: cannot notify readiness: %s", strerror(errno));
	return 0;
}

/* chaos-triggers was checked by config_load; giving it enables chaos. */
static void serve_chaos(const struct config *cfg)
{
	struct chaos_config c;
	char err[256];

	chaos_config_default(&c);
	(void)chaos_parse(cfg->chaos_triggers, &c, err, sizeof(err));
	chaos_setup(cfg->chaos || cfg->chaos_triggers[0] != '\0', &c, cfg->chaos_seed);
}

int serve_run(const struct config *cfg)
{
	struct server srv = { .cfg = cfg };
	struct spool_reap *reap = NULL;
	struct retention *ret = NULL;
	struct body_purge *purge = NULL;
	char err[512];
	int status = 1, rerr = 0;

	log_set_level(cfg->log_level);
	metrics.started = time(NULL);
	serve_chaos(cfg);
	signal(SIGPIPE, SIG_IGN);
	/* Past a file-size limit, writes fail with EFBIG (452 4.3.1) instead
	 * of the signal killing the server. */
	signal(SIGXFSZ, SIG_IGN);
	serve_raise_nofile(cfg);
	/* SQLite takes and frees a 64 KiB buffer around every savepoint;
	 * with the default trim threshold each message then moves the heap
	 * top twice (brk). Keeping 2 MiB of free heap avoids that. */
	mallopt(M_TRIM_THRESHOLD, 2 * 1024 * 1024);
	srv.auth.accept_any = cfg->auth_accept_any;
	srv.auth.budget.failures = cfg->auth_fail_limit;
	if ((srv.store = store_open(&(struct store_options){ .path = cfg->db,
	    .durability = cfg->durability, .defer_index = true,
	    .err = err, .errlen = sizeof(err),
	    .limits = { cfg->max_mailboxes, cfg->max_subscriptions, cfg->max_keywords } })) == NULL) {
		fprintf(stderr, "mailsnare: %s: %s\n", cfg->db, err);
		return 1;
	}
	if ((srv.base = serve_event_base()) == NULL ||
	    event_base_priority_init(srv.base, SERVE_PRIORITIES) < 0)
		goto out;
	if (serve_inboxes(srv.store, cfg) < 0 || (srv.ssl_ctx = serve_tls(cfg)) == NULL)
		goto out;
	if ((srv.deliver = deliver_new(srv.base, srv.store, cfg->max_messages)) == NULL)
		goto out;
	/* Without it (no memory) spool files are closed at once. */
	reap = spool_reap_new(srv.base);
	if ((ret = retention_new(srv.base, srv.store, cfg->max_age, SERVE_PRIORITIES - 1,
	    &rerr)) == NULL && rerr)
		goto out;
	/* Without it deleted large bodies wait in the store (unseen). */
	purge = body_purge_new(srv.base, srv.store);
	printf("mailsnare %s: trapping mail in %s\n", PACKAGE_VERSION, cfg->db);
	if (serve_outbound(&srv) < 0)
		goto out;
	if (search_pool_new(srv.base, cfg, cfg->search_threads, &srv.search, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "mailsnare: search threads: %s\n", err);
		goto out;
	}
	if (serve_loop(&srv) == 0)
		status = 0;
out:
	server_free_listeners(&srv);
	http_server_free(srv.http);
	search_pool_free(srv.search);     /* after the requests that wait for it */
	serve_outbound_free(&srv);
	retention_free(ret);
	deliver_free(srv.deliver);
	body_purge_free(purge);
	store_close(srv.store);
	spool_reap_free(reap);
	if (srv.ssl_ctx)
		SSL_CTX_free(srv.ssl_ctx);
	if (srv.base)
		event_base_free(srv.base);
	if (cfg->ready_file[0] && status == 0)
		unlink(cfg->ready_file);
	log_info("stopped");
	return status;
}
