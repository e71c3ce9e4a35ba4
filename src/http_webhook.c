/*
 * The webhook (webhook.h). The store's notification of a new message is
 * where the limits are applied (a token bucket of webhook-limit a second,
 * a bounded queue); the summary is built and posted from the loop, a few
 * per pass, with the HTTP API's own summary builder (http_json_summary).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "mailsnare/config.h"
#include "mailsnare/curl_loop.h"
#include "mailsnare/id_queue.h"
#include "mailsnare/log.h"
#include "mailsnare/webhook.h"
#include "http_internal.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

#define WEBHOOK_SLICE 16                 /* requests started per pass */
#define WEBHOOK_REPORT_S 1               /* drops are logged once a second */

struct webhook_req {
	struct webhook *w;
	CURL *easy;
	char *body;
	int64_t id;
	struct webhook_req *prev, *next;
};

struct webhook {
	struct curl_loop *cl;
	struct store *st;
	const struct config *cfg;
	struct event *ev_work, *ev_report;
	struct curl_slist *headers;
	char agent[64];
	struct id_queue queue;
	/* The token bucket, in thousandths of a request. */
	uint64_t tokens, last_ms;
	struct webhook_req *reqs;
	unsigned nreqs;
	struct webhook_stats stats;
	uint64_t dropped_reported;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One request's worth of the bucket, if there is one. */
static bool webhook_take(struct webhook *w)
{
	uint64_t limit = w->cfg->webhook_limit, now = now_ms(), cap = limit * 1000;

	if (limit == 0)
		return true;
	w->tokens += (now - w->last_ms) * limit;
	if (w->tokens > cap)
		w->tokens = cap;
	w->last_ms = now;
	if (w->tokens < 1000)
		return false;
	w->tokens -= 1000;
	return true;
}

static void webhook_drop(struct webhook *w)
{
	struct timeval tv = { WEBHOOK_REPORT_S, 0 };

	w->stats.dropped++;
	if (!evtimer_pending(w->ev_report, NULL))
		evtimer_add(w->ev_report, &tv);
}

static void webhook_report(evutil_socket_t fd, short what, void *arg)
{
	struct webhook *w = arg;

	(void)fd;
	(void)what;
	log_warn("webhook: %llu new-message events dropped (webhook-limit %u a second, "
	    "%d requests at once at most); %llu in all",
	    (unsigned long long)(w->stats.dropped - w->dropped_reported), w->cfg->webhook_limit,
	    WEBHOOK_INFLIGHT_MAX, (unsigned long long)w->stats.dropped);
	w->dropped_reported = w->stats.dropped;
}

static void req_free(struct webhook_req *q)
{
	struct webhook *w = q->w;

	if (q->prev)
		q->prev->next = q->next;
	else
		w->reqs = q->next;
	if (q->next)
		q->next->prev = q->prev;
	w->nreqs--;
	curl_easy_cleanup(q->easy);
	free(q->body);
	free(q);
}

static void webhook_done(void *arg, CURL *easy, CURLcode rc)
{
	struct webhook_req *q = arg;
	struct webhook *w = q->w;
	long code = 0;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_OK && code >= 200 && code < 300) {
		w->stats.sent++;
	} else {
		w->stats.failed++;
		if (rc != CURLE_OK)
			log_warn("webhook: message %lld: %s", (long long)q->id, curl_easy_strerror(rc));
		else
			log_warn("webhook: message %lld: HTTP status %ld", (long long)q->id, code);
	}
	req_free(q);
}

/* The receiver's reply body: only its status matters. */
static size_t webhook_discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static CURL *webhook_easy(struct webhook *w, struct webhook_req *q)
{
	CURL *e = curl_easy_init();

	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, w->cfg->webhook_url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)w->cfg->webhook_timeout);
	curl_easy_setopt(e, CURLOPT_USERAGENT, w->agent);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, w->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(q->body));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, webhook_discard);
	return e;
}

/* Builds and posts the summary of message id (gone again: nothing). */
static void webhook_post(struct webhook *w, int64_t id)
{
	struct webhook_req *q;
	struct http_msg m;
	json_t *j;

	if (w->nreqs >= WEBHOOK_INFLIGHT_MAX) {
		webhook_drop(w);
		return;
	}
	if (http_msg_load(w->st, id, 0, &m) != STORE_OK)
		return;
	j = http_json_summary(w->st, &m);
	http_msg_free(&m);
	if (j == NULL || (q = calloc(1, sizeof(*q))) == NULL) {
		json_decref(j);
		return;
	}
	q->w = w;
	q->id = id;
	q->body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (q->body == NULL || (q->easy = webhook_easy(w, q)) == NULL ||
	    curl_loop_add(w->cl, q->easy, webhook_done, q) < 0) {
		if (q->easy)
			curl_easy_cleanup(q->easy);
		free(q->body);
		free(q);
		return;
	}
	q->next = w->reqs;
	if (w->reqs)
		w->reqs->prev = q;
	w->reqs = q;
	w->nreqs++;
}

static void webhook_work(evutil_socket_t fd, short what, void *arg)
{
	struct webhook *w = arg;
	size_t done = 0;
	int64_t id;

	(void)fd;
	(void)what;
	while (done++ < WEBHOOK_SLICE && id_queue_peek(&w->queue, &id)) {
		id_queue_pop(&w->queue);
		webhook_post(w, id);
	}
	/* The next slice on the next loop pass, after the sockets: an
	 * event_active from its own callback would run it again at once. */
	if (w->queue.n > 0)
		event_add(w->ev_work, &(struct timeval){ 0, 0 });
}

static void webhook_store_cb(void *arg, enum store_change what, int64_t inbox_id,
    int64_t mailbox_id, int64_t message_id)
{
	struct webhook *w = arg;

	(void)inbox_id;
	(void)mailbox_id;
	if (what != STORE_CHANGE_NEW || !id_queue_first_sight(&w->queue, message_id))
		return;
	if (!webhook_take(w) || !id_queue_push(&w->queue, message_id)) {
		webhook_drop(w);
		return;
	}
	event_active(w->ev_work, EV_TIMEOUT, 0);
}

int webhook_new(struct event_base *base, struct curl_loop *cl, struct store *st,
    const struct config *cfg, struct webhook **out, char *err, size_t errlen)
{
	struct webhook *w;
	struct curl_slist *h;

	*out = NULL;
	if (cfg->webhook_url[0] == '\0')
		return 0;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		goto oom;
	*out = w;
	w->cl = cl;
	w->st = st;
	w->cfg = cfg;
	w->last_ms = now_ms();
	w->tokens = (uint64_t)cfg->webhook_limit * 1000;
	snprintf(w->agent, sizeof(w->agent), "mailsnare/%s", PACKAGE_VERSION);
	/* No "Expect: 100-continue" wait before the body. */
	if ((h = curl_slist_append(NULL, "Content-Type: application/json")) == NULL ||
	    (w->headers = curl_slist_append(h, "Expect:")) == NULL) {
		curl_slist_free_all(h);
		goto oom;
	}
	if ((w->ev_work = event_new(base, -1, 0, webhook_work, w)) == NULL ||
	    (w->ev_report = evtimer_new(base, webhook_report, w)) == NULL ||
	    store_subscribe(st, webhook_store_cb, w) < 0)
		goto oom;
	return 0;
oom:
	snprintf(err, errlen, "webhook: out of memory");
	webhook_free(*out);
	*out = NULL;
	return -1;
}

void webhook_free(struct webhook *w)
{
	if (w == NULL)
		return;
	store_unsubscribe(w->st, webhook_store_cb, w);
	while (w->reqs != NULL) {
		curl_loop_remove(w->cl, w->reqs->easy);
		req_free(w->reqs);
	}
	if (w->ev_work)
		event_free(w->ev_work);
	if (w->ev_report)
		event_free(w->ev_report);
	curl_slist_free_all(w->headers);
	free(w);
}

void webhook_stats(const struct webhook *w, struct webhook_stats *out)
{
	*out = w->stats;
}
