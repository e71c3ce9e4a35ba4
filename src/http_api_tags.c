/*
 * /api/v1/tags: Mailpit's tags are the messages' IMAP keywords, so an
 * IMAP client sees (and sets) them too. GET lists them, PUT {IDs, Tags}
 * sets exactly these tags on the messages, PUT /tags/{Tag} {Name}
 * renames one, DELETE /tags/{Tag} removes it from every message, all in
 * the request's scope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/msg_search.h"
#include "mailsnare/server.h"
#include "http_internal.h"

#define TAGS_MAX 100
#define TAG_LEN_MAX 128
#define TAG_IDS_MAX 100000

/* An IMAP keyword is an atom (RFC 3501 §9): no space, no controls, none
 * of ( ) { % * " \ ]. */
bool http_tag_valid(const char *t)
{
	size_t n = strlen(t), i;

	if (n == 0 || n > TAG_LEN_MAX)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c <= 0x20 || c == 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

static enum http_rc bad_tag(struct http_req *r, const char *t)
{
	char msg[TAG_LEN_MAX + 96];

	snprintf(msg, sizeof(msg), "invalid tag name '%.*s' (letters, digits and -._+:@!$ only)",
	    TAG_LEN_MAX, t);
	http_reply_error(r, msg);
	return HTTP_DONE;
}

enum http_rc http_api_tags_get(struct http_req *r)
{
	http_reply_json(r, 200, http_scope_tags(r));
	return HTTP_DONE;
}

/* Replaces the keywords of message id by tags[0..n) (system flags stay). */
static int set_tags(struct http_req *r, int64_t id, const char *const *tags, size_t n)
{
	char kw[4096], *p, *save = NULL;
	const char *old[TAGS_MAX * 4];
	unsigned flags, in_use;
	uint64_t modseq;
	struct http_msg m;
	size_t nold = 0;
	int rc;

	if ((rc = http_msg_load(r->srv->store, id, r->inbox_id, &m)) != STORE_OK)
		return rc;
	rc = store_mailbox_keywords_room(r->srv->store, m.mailbox_id, tags, n, &in_use);
	http_msg_free(&m);
	if (rc != STORE_OK)
		return rc;
	if ((rc = store_message_state(r->srv->store, id, &flags, kw, sizeof(kw), &modseq)) !=
	    STORE_OK)
		return rc;
	for (p = strtok_r(kw, " ", &save); p != NULL && nold < sizeof(old) / sizeof(old[0]);
	    p = strtok_r(NULL, " ", &save))
		old[nold++] = p;
	if (nold > 0 && (rc = store_message_store(r->srv->store, id, STORE_FLAGS_REMOVE, 0, old,
	    nold, 0, &modseq)) != STORE_OK)
		return rc;
	if (n == 0)
		return STORE_OK;
	return store_message_store(r->srv->store, id, STORE_FLAGS_ADD, 0, tags, n, 0, &modseq);
}

enum http_rc http_api_tags_put(struct http_req *r)
{
	json_t *body = http_json_body(r), *ids, *tags, *v;
	const char *list[TAGS_MAX];
	size_t n = 0, i;
	int64_t id;
	int rc;

	if (body == NULL)
		return HTTP_DONE;
	ids = json_object_get(body, "IDs");
	tags = json_object_get(body, "Tags");
	if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > TAG_IDS_MAX) {
		http_reply_error(r, "IDs: want an array of message IDs");
		goto out;
	}
	if (tags != NULL && !json_is_null(tags) &&
	    (!json_is_array(tags) || json_array_size(tags) > TAGS_MAX)) {
		http_reply_error(r, "Tags: want an array of tag names");
		goto out;
	}
	json_array_foreach(tags, i, v) {
		if (!json_is_string(v) || !http_tag_valid(json_string_value(v))) {
			bad_tag(r, json_is_string(v) ? json_string_value(v) : "");
			goto out;
		}
		list[n++] = json_string_value(v);
	}
	json_array_foreach(ids, i, v) {
		if (!json_is_string(v) || http_resolve_id(r, json_string_value(v), &id) != STORE_OK)
			continue;
		rc = set_tags(r, id, list, n);
		if (rc == STORE_LIMIT) {
			http_reply_error(r, "too many distinct tags in the mailbox (max-keywords)");
			goto out;
		}
		if (rc < 0) {
			http_reply_text(r, 500, "store error");
			goto out;
		}
	}
	http_reply_ok(r);
out:
	json_decref(body);
	return HTTP_DONE;
}

static int tag_id_cb(const struct store_message_info *i, void *arg)
{
	json_t *arr = arg;

	return json_array_append_new(arr, json_integer(i->id)) < 0 ? STORE_ERR : 0;
}

/* The ids of the scope's messages with keyword `tag`. */
static json_t *tagged_ids(struct http_req *r, const char *tag)
{
	struct store_query q = { .inbox_id = r->inbox_id };
	char text[TAG_LEN_MAX + 8], err[128];
	struct msg_search *s = NULL;
	json_t *arr = json_array();

	snprintf(text, sizeof(text), "tag:%s", tag);
	if (arr == NULL || msg_search_parse(text, NULL, &s, err, sizeof(err)) < 0) {
		json_decref(arr);
		return NULL;
	}
	q.search = s;
	if (store_message_query(r->srv->store, &q, tag_id_cb, arr, NULL) < 0) {
		json_decref(arr);
		arr = NULL;
	}
	msg_search_free(s);
	return arr;
}

/* Removes `from` from each message of ids, and adds `to` if not NULL. */
static int retag(struct http_req *r, json_t *ids, const char *from, const char *to)
{
	const char *kw[1];
	uint64_t modseq;
	json_t *v;
	size_t i;
	int rc;

	json_array_foreach(ids, i, v) {
		int64_t id = json_integer_value(v);
		kw[0] = from;
		rc = store_message_store(r->srv->store, id, STORE_FLAGS_REMOVE, 0, kw, 1, 0, &modseq);
		if (rc == STORE_OK && to != NULL) {
			kw[0] = to;
			rc = store_message_store(r->srv->store, id, STORE_FLAGS_ADD, 0, kw, 1, 0,
			    &modseq);
		}
		if (rc < 0)
			return rc;
	}
	return STORE_OK;
}

enum http_rc http_api_tag_rename(struct http_req *r)
{
	json_t *body = http_json_body(r), *name, *ids = NULL;
	const char *to;

	if (body == NULL)
		return HTTP_DONE;
	name = json_object_get(body, "Name");
	if (!json_is_string(name)) {
		http_reply_error(r, "Name: want the new tag name");
		goto out;
	}
	to = json_string_value(name);
	if (!http_tag_valid(r->args[0]) || !http_tag_valid(to)) {
		bad_tag(r, http_tag_valid(to) ? r->args[0] : to);
		goto out;
	}
	if ((ids = tagged_ids(r, r->args[0])) == NULL || retag(r, ids, r->args[0], to) < 0)
		http_reply_text(r, 500, "store error");
	else
		http_reply_ok(r);
out:
	json_decref(ids);
	json_decref(body);
	return HTTP_DONE;
}

enum http_rc http_api_tag_delete(struct http_req *r)
{
	json_t *ids;

	if (!http_tag_valid(r->args[0]))
		return bad_tag(r, r->args[0]);
	if ((ids = tagged_ids(r, r->args[0])) == NULL || retag(r, ids, r->args[0], NULL) < 0)
		http_reply_text(r, 500, "store error");
	else
		http_reply_ok(r);
	json_decref(ids);
	return HTTP_DONE;
}
