/*
 * webhook-url: for each new message, a POST of its summary JSON (the HTTP
 * API's shape) with User-Agent mailsnare/VERSION, on the loop (curl_loop.h)
 * so delivery never waits for it. At most webhook-limit a second (a token
 * bucket) and WEBHOOK_INFLIGHT_MAX at once: beyond, the event is dropped
 * and counted, never retried. A request takes webhook-timeout at most.
 */
#ifndef MAILSNARE_WEBHOOK_H
#define MAILSNARE_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct curl_loop;
struct event_base;
struct store;
struct webhook;

#define WEBHOOK_INFLIGHT_MAX 32

/* *out NULL (and 0) when no webhook-url is set. -1 with err set if out
 * of memory. */
int webhook_new(struct event_base *base, struct curl_loop *cl, struct store *st,
    const struct config *cfg, struct webhook **out, char *err, size_t errlen);
/* Requests still in flight are abandoned. */
void webhook_free(struct webhook *w);

struct webhook_stats {
	uint64_t sent;                   /* requests answered 2xx */
	uint64_t failed;                 /* no answer in time, or not 2xx */
	uint64_t dropped;                /* events over the limits */
};
void webhook_stats(const struct webhook *w, struct webhook_stats *out);

#endif
