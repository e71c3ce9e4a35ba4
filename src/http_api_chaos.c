/*
 * GET and PUT /api/v1/chaos (Mailpit's): the chaos triggers as JSON,
 * {"Sender": {"ErrorCode": 451, "Probability": 5}, ...}, with mailsnare's
 * own triggers beside Mailpit's three (chaos.h) and Delay as
 * {"Milliseconds": ..., "Probability": ...}. As Mailpit: 400 unless chaos
 * is enabled at start, and a PUT sets every trigger, a missing one to
 * its default code with probability 0. The triggers are the server's,
 * so an inbox's credentials may read them but not set them (403).
 */
#include <stdio.h>

#include "mailsnare/chaos.h"
#include "http_internal.h"

static const char *code_key(enum chaos_trigger t)
{
	return t == CHAOS_DELAY ? "Milliseconds" : "ErrorCode";
}

static json_t *chaos_json(const struct chaos_config *c)
{
	json_t *o = json_object();

	for (int i = 0; i < CHAOS_NTRIGGERS; i++)
		json_object_set_new(o, chaos_trigger_name((enum chaos_trigger)i),
		    json_pack("{s:i, s:i}", code_key((enum chaos_trigger)i), c->rules[i].code,
		    "Probability", c->rules[i].probability));
	return o;
}

static bool chaos_on(struct http_req *r)
{
	if (chaos_enabled())
		return true;
	http_reply_error(r, "Chaos is not enabled (start mailsnare with chaos = yes)");
	return false;
}

enum http_rc http_api_chaos_get(struct http_req *r)
{
	struct chaos_config c;

	if (!chaos_on(r))
		return HTTP_DONE;
	chaos_get(&c);
	http_reply_json(r, 200, chaos_json(&c));
	return HTTP_DONE;
}

/* A JSON integer as an int; anything beyond any valid value becomes -1,
 * which every check refuses. */
static int small_int(json_t *v)
{
	json_int_t n = json_integer_value(v);

	return n < -1000000 || n > 1000000 ? -1 : (int)n;
}

/* One trigger of the body into c; false with the 400 sent. */
static bool chaos_rule_from(struct http_req *r, json_t *body, enum chaos_trigger t,
    struct chaos_config *c)
{
	json_t *o = json_object_get(body, chaos_trigger_name(t)), *code, *prob;
	const char *why;
	char msg[160];

	if (o == NULL || json_is_null(o))
		return true;
	code = json_object_get(o, code_key(t));
	prob = json_object_get(o, "Probability");
	if (!json_is_object(o) || (code != NULL && !json_is_integer(code)) ||
	    (prob != NULL && !json_is_integer(prob))) {
		snprintf(msg, sizeof(msg), "%s: want {\"%s\": integer, \"Probability\": integer}",
		    chaos_trigger_name(t), code_key(t));
		http_reply_error(r, msg);
		return false;
	}
	/* Mailpit: an ErrorCode of 0 (or none) is the default code. */
	if (code != NULL && (small_int(code) != 0 || t == CHAOS_DELAY))
		c->rules[t].code = small_int(code);
	c->rules[t].probability = prob ? small_int(prob) : 0;
	if ((why = chaos_rule_problem(t, c->rules[t].code, c->rules[t].probability)) != NULL) {
		snprintf(msg, sizeof(msg), "%s: %s", chaos_trigger_name(t), why);
		http_reply_error(r, msg);
		return false;
	}
	return true;
}

enum http_rc http_api_chaos_put(struct http_req *r)
{
	struct chaos_config c;
	json_t *body;

	if (!chaos_on(r))
		return HTTP_DONE;
	/* The triggers are the whole server's: an inbox's login, which sees
	 * only its own mail, may not change them for the others. */
	if (r->who == HTTP_WHO_INBOX) {
		http_reply_text(r, 403, "chaos is server-wide: only the admin (or an anonymous "
		    "client without http-require-auth) may set it");
		return HTTP_DONE;
	}
	if ((body = http_json_body(r)) == NULL)
		return HTTP_DONE;
	chaos_config_default(&c);
	for (int i = 0; i < CHAOS_NTRIGGERS; i++) {
		if (!chaos_rule_from(r, body, (enum chaos_trigger)i, &c)) {
			json_decref(body);
			return HTTP_DONE;
		}
	}
	json_decref(body);
	chaos_set(&c);
	http_reply_json(r, 200, chaos_json(&c));
	return HTTP_DONE;
}
