/*
 * POST /api/v1/message/{ID}/release {"To": ["a@b", ...]}: Mailpit's
 * release, sent on through relay.h on the loop; the reply waits for the
 * upstream's answer. 200 "ok" once it accepted the message; 400 with the
 * reason when the relay is off or a recipient is refused (nothing sent);
 * 404 for no such message in scope; 502 when the upstream failed; 503
 * when RELAY_JOBS_MAX releases are already under way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/relay.h"
#include "mailsnare/server.h"
#include "http_internal.h"

static int scope_cb(const struct store_message_info *m, void *arg)
{
	*(int64_t *)arg = m->inbox_id;
	return 0;
}

/* The message of {ID} in the request's scope: 0, or -1 with 404 sent. */
static int release_message(struct http_req *r, int64_t *id)
{
	int64_t inbox_id = 0;

	if (http_resolve_id(r, r->args[0], id) != STORE_OK ||
	    store_message_get_info(r->srv->store, *id, scope_cb, &inbox_id) != STORE_OK ||
	    inbox_id == 0 || (r->inbox_id != 0 && inbox_id != r->inbox_id)) {
		http_reply_404(r);
		return -1;
	}
	return 0;
}

/* "To" as strings into to[0..*n): -1 with 400 sent if it is not that. */
static int release_to(struct http_req *r, json_t *body, const char **to, size_t *n)
{
	json_t *list = json_object_get(body, "To"), *v;
	size_t i;

	*n = 0;
	if (list == NULL || !json_is_array(list) || json_array_size(list) == 0) {
		http_reply_error(r, "No valid addresses found (want {\"To\": [\"address\", ...]})");
		return -1;
	}
	if (json_array_size(list) > RELAY_RCPTS_MAX) {
		char msg[64];

		snprintf(msg, sizeof(msg), "too many recipients (at most %d)", RELAY_RCPTS_MAX);
		http_reply_error(r, msg);
		return -1;
	}
	json_array_foreach(list, i, v) {
		if (!json_is_string(v)) {
			http_reply_error(r, "To: want an array of addresses");
			return -1;
		}
		to[(*n)++] = json_string_value(v);
	}
	return 0;
}

static void release_cleanup(struct http_req *r)
{
	if (r->cleanup_arg != NULL)
		relay_cancel(r->cleanup_arg);
	r->cleanup_arg = NULL;
}

static void release_done(void *arg, enum relay_status st, const char *err)
{
	struct http_req *r = arg;

	r->cleanup_arg = NULL;               /* the job is over */
	http_req_done(r);
	if (st == RELAY_OK)
		http_reply_ok(r);
	else
		http_reply_text(r, 502, err);
	http_req_free(r);
}

static int release_code(enum relay_status st)
{
	switch (st) {
	case RELAY_NOTFOUND:
		return 404;
	case RELAY_BUSY:
		return 503;
	case RELAY_FAILED:
		return 500;
	default:
		return 400;
	}
}

enum http_rc http_api_message_release(struct http_req *r)
{
	const char *to[RELAY_RCPTS_MAX];
	char err[RELAY_ERR_MAX];
	struct relay_job *job;
	enum relay_status st;
	json_t *body;
	int64_t id;
	size_t n;

	if (release_message(r, &id) < 0)
		return HTTP_DONE;
	if (r->srv->relay == NULL) {
		http_reply_error(r, "message relay is not enabled (set relay-host)");
		return HTTP_DONE;
	}
	if ((body = http_json_body(r)) == NULL)
		return HTTP_DONE;
	if (release_to(r, body, to, &n) < 0) {
		json_decref(body);
		return HTTP_DONE;
	}
	job = relay_start(r->srv->relay, r->srv->store, id, to, n, release_done, r, &st, err,
	    sizeof(err));
	json_decref(body);
	if (job == NULL) {
		http_reply_text(r, release_code(st), err);
		return HTTP_DONE;
	}
	r->cleanup = release_cleanup;
	r->cleanup_arg = job;
	http_req_defer(r);
	return HTTP_DEFERRED;
}
