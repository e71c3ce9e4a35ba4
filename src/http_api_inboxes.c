/*
 * Inboxes over HTTP (beyond Mailpit, the same as `mailsnare inbox ...`):
 * GET/POST /api/v1/inboxes, DELETE /api/v1/inboxes/{Name}, and the prefix
 * /api/v1/inboxes/{Name}/... that scopes any other endpoint to one inbox.
 *
 * Who may do what: the admin (http-admin) and, unless http-require-auth
 * is on, an anonymous client (the local default, as the CLI) manage every
 * inbox; an inbox's own credentials see that inbox only and manage none.
 * A password is shown to the admin and to the inbox itself, never to an
 * anonymous client.
 */
#include <stdio.h>
#include <string.h>

#include "mailsnare/auth.h"
#include "mailsnare/server.h"
#include "http_internal.h"

#define INBOXES_PREFIX "/api/v1/inboxes/"

static bool may_manage(const struct http_req *r)
{
	return r->who == HTTP_WHO_ADMIN || r->who == HTTP_WHO_ANON;
}

static json_t *inbox_json(const struct http_req *r, const struct store_inbox *in)
{
	json_t *o = json_object();

	json_object_set_new(o, "Name", json_string(in->name));
	json_object_set_new(o, "Messages", json_integer((json_int_t)in->messages));
	json_object_set_new(o, "Created", http_json_time(in->created));
	if (r->who == HTTP_WHO_ADMIN || r->who == HTTP_WHO_INBOX)
		json_object_set_new(o, "Password", json_string(in->password));
	return o;
}

struct list_ctx {
	const struct http_req *r;
	json_t *list;
};

static int list_cb(const struct store_inbox *in, void *arg)
{
	struct list_ctx *l = arg;

	if (l->r->who != HTTP_WHO_INBOX || in->id == l->r->inbox_id)
		json_array_append_new(l->list, inbox_json(l->r, in));
	return 0;
}

enum http_rc http_api_inboxes_get(struct http_req *r)
{
	struct list_ctx l = { r, json_array() };
	json_t *o;

	if (store_inbox_foreach(r->srv->store, list_cb, &l) < 0) {
		json_decref(l.list);
		http_reply_text(r, 500, "store error");
		return HTTP_DONE;
	}
	o = json_object();
	json_object_set_new(o, "total", json_integer((json_int_t)json_array_size(l.list)));
	json_object_set_new(o, "inboxes", l.list);
	http_reply_json(r, 200, o);
	return HTTP_DONE;
}

/* {Name, Password}: Password may be left out, and one is made. */
enum http_rc http_api_inboxes_post(struct http_req *r)
{
	char generated[AUTH_PASSWORD_GENERATED_LEN + 1], msg[STORE_NAME_MAX + 128];
	json_t *body, *jname, *jpass;
	const char *name, *pass, *why;
	struct store_inbox in;
	int rc;

	if (!may_manage(r)) {
		http_reply_text(r, 403, "inbox credentials cannot manage inboxes");
		return HTTP_DONE;
	}
	if ((body = http_json_body(r)) == NULL)
		return HTTP_DONE;
	jname = json_object_get(body, "Name");
	jpass = json_object_get(body, "Password");
	name = json_is_string(jname) ? json_string_value(jname) : NULL;
	pass = json_is_string(jpass) ? json_string_value(jpass) : NULL;
	if (name == NULL) {
		http_reply_error(r, "Name: want a string");
		goto out;
	}
	if ((why = store_inbox_name_check(name, json_string_length(jname))) != NULL) {
		snprintf(msg, sizeof(msg), "Name: %s (want 1..%d bytes of UTF-8 without '/', "
		    "control characters or spaces at either end)", why, STORE_NAME_MAX - 1);
		http_reply_error(r, msg);
		goto out;
	}
	if (jpass != NULL && !json_is_null(jpass) &&
	    (pass == NULL || strlen(pass) != json_string_length(jpass) ||
	    !auth_password_valid(pass))) {
		snprintf(msg, sizeof(msg), "Password: want 1..%d characters without control "
		    "characters", STORE_PASS_MAX - 1);
		http_reply_error(r, msg);
		goto out;
	}
	if (pass == NULL) {
		if (auth_random_password(generated, sizeof(generated)) < 0) {
			http_reply_text(r, 500, "no randomness for a password");
			goto out;
		}
		pass = generated;
	}
	rc = store_inbox_add(r->srv->store, name, pass, &in);
	if (rc == STORE_EXISTS) {
		http_reply_text(r, 409, "inbox exists");
	} else if (rc != STORE_OK) {
		http_reply_text(r, 500, "store error");
	} else {
		/* The creator sees the password it set or was given. */
		json_t *o = inbox_json(r, &in);
		json_object_set_new(o, "Password", json_string(in.password));
		http_reply_json(r, 200, o);
	}
out:
	json_decref(body);
	return HTTP_DONE;
}

enum http_rc http_api_inboxes_delete(struct http_req *r)
{
	int rc;

	if (!may_manage(r)) {
		http_reply_text(r, 403, "inbox credentials cannot manage inboxes");
		return HTTP_DONE;
	}
	rc = store_inbox_del(r->srv->store, r->args[0]);
	if (rc == STORE_NOTFOUND)
		http_reply_404(r);
	else if (rc != STORE_OK)
		http_reply_text(r, 500, "store error");
	else
		http_reply_ok(r);
	return HTTP_DONE;
}

int http_inbox_prefix(struct http_req *r)
{
	const char *name = r->path + strlen(INBOXES_PREFIX), *rest;
	size_t n;

	if (strncmp(r->path, INBOXES_PREFIX, strlen(INBOXES_PREFIX)) != 0 ||
	    (rest = strchr(name, '/')) == NULL || rest[1] == '\0')
		return 0;
	n = (size_t)(rest - name);
	if (n == 0 || n >= sizeof(r->scope))
		return -1;
	memcpy(r->scope, name, n);
	r->scope[n] = '\0';
	/* "/api/v1/inboxes/NAME/messages" -> "/api/v1/messages"; the rest may
	 * not name inboxes again. */
	memmove(r->path + strlen("/api/v1"), rest, strlen(rest) + 1);
	return strncmp(r->path, INBOXES_PREFIX, strlen(INBOXES_PREFIX)) == 0 ||
	    strcmp(r->path, "/api/v1/inboxes") == 0 ? -1 : 0;
}

bool http_inbox_scope(struct http_req *r)
{
	struct store_inbox in;
	int rc;

	if (r->scope[0] == '\0')
		return true;
	/* An inbox's credentials reach their own inbox only: another name is
	 * not found, as any foreign message is. */
	if (r->who == HTTP_WHO_INBOX && strcmp(r->scope, r->inbox) != 0) {
		http_reply_404(r);
		return false;
	}
	rc = store_inbox_get(r->srv->store, r->scope, &in);
	if (rc == STORE_NOTFOUND) {
		http_reply_404(r);
		return false;
	}
	if (rc != STORE_OK) {
		http_reply_text(r, 500, "store error");
		return false;
	}
	r->inbox_id = in.id;
	snprintf(r->inbox, sizeof(r->inbox), "%s", in.name);
	return true;
}
