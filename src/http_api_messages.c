/*
 * /api/v1/messages: the listing (GET), read state (PUT) and deletes
 * (DELETE), in the request's scope (one inbox, or every inbox).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>

#include "mailsnare/msg_search.h"
#include "mailsnare/server.h"
#include "http_internal.h"

#define LIST_LIMIT_DEFAULT 50
/* A page of at most this many summaries; start + limit rows are read. */
#define LIST_LIMIT_MAX 5000
#define LIST_START_MAX 1000000
/* Read-state changes and deletes by ID in one request. */
#define IDS_MAX 100000

/* --- numbers and times in the query ----------------------------------------- */

/* A page parameter: absent or 0 is the default (as Mailpit's
 * getStartLimit), beyond max is max; not a number: -1 (400, as the
 * swagger document says). */
static int query_uint(struct http_req *r, const char *name, unsigned def, unsigned max,
    unsigned *out)
{
	const char *v = http_query(r, name);
	char *end;
	unsigned long n;

	*out = def;
	if (v == NULL || v[0] == '\0')
		return 0;
	if (v[0] < '0' || v[0] > '9')
		return -1;
	n = strtoul(v, &end, 10);
	if (*end != '\0')
		return -1;
	if (n != 0)
		*out = n > max ? max : (unsigned)n;
	return 0;
}

/* RFC 3339 ("2024-01-02T15:04:05Z", "+02:00", fractions) or unix seconds. */
static int parse_time(const char *v, int64_t *t)
{
	struct tm tm = { 0 };
	const char *p;
	char *end;
	long long n;
	int sign, hh, mm;

	n = strtoll(v, &end, 10);
	if (end != v && *end == '\0') {
		*t = n;
		return 0;
	}
	if ((p = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return -1;
	if (*p == '.')
		while (*++p >= '0' && *p <= '9')
			;
	*t = (int64_t)timegm(&tm);
	if (*p == 'Z' || *p == 'z')
		return p[1] == '\0' ? 0 : -1;
	if ((*p != '+' && *p != '-') || sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 ||
	    strlen(p) != 6)
		return -1;
	sign = *p == '-' ? -1 : 1;
	*t -= sign * (hh * 3600 + mm * 60);
	return 0;
}

/* --- counts and tags of the scope ---------------------------------------------- */

struct tag_ctx {
	struct http_req *r;
	json_t *set;                 /* tag -> true */
};

static int tag_name_cb(const char *name, void *arg)
{
	struct tag_ctx *t = arg;

	if (name[0] != '\\')
		json_object_set_new(t->set, name, json_true());
	return 0;
}

static int tag_mailbox_cb(const struct store_mailbox *mb, void *arg)
{
	struct tag_ctx *t = arg;

	return store_mailbox_keywords(t->r->srv->store, mb->id, tag_name_cb, t);
}

static int tag_all_cb(const char *name, uint64_t count, void *arg)
{
	json_t *arr = arg;

	(void)count;
	if (name[0] != '\\')
		json_array_append_new(arr, json_string(name));
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every keyword used in the scope, sorted (Mailpit's "tags"). Every
 * inbox: the store's keyword counts (a row per keyword); one inbox: the
 * keywords of its mailboxes (what that inbox holds). */
json_t *http_scope_tags(struct http_req *r)
{
	struct tag_ctx t = { .r = r };
	json_t *arr = json_array(), *v;
	const char **names;
	const char *k;
	size_t n = 0, i;

	if (arr == NULL)
		return NULL;
	if (r->inbox_id == 0) {
		(void)store_keyword_counts(r->srv->store, tag_all_cb, arr);
		return arr;
	}
	if ((t.set = json_object()) == NULL)
		return arr;
	(void)store_mailbox_list(r->srv->store, r->inbox_id, tag_mailbox_cb, &t);
	if ((names = calloc(json_object_size(t.set) + 1, sizeof(*names))) == NULL)
		goto out;
	json_object_foreach(t.set, k, v)
		names[n++] = k;
	qsort(names, n, sizeof(*names), str_cmp);
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_string(names[i]));
	free(names);
out:
	json_decref(t.set);
	return arr;
}

/* --- GET ---------------------------------------------------------------------- */

struct page_ctx {
	struct http_req *r;
	json_t *messages;
	const struct msg_search *recheck;  /* the pool's search, or NULL */
};

static int page_cb(const struct store_message_info *i, void *arg)
{
	struct page_ctx *p = arg;
	struct http_msg m;
	json_t *s;

	if (http_msg_load(p->r->srv->store, i->id, 0, &m) != STORE_OK)
		return 0;      /* gone meanwhile */
	/* The pool found the ids in its own snapshot: a message read or
	 * retagged since shows its state now, which must still match. */
	if (p->recheck != NULL && !msg_search_state_holds(p->recheck,
	    (m.flags & STORE_FLAG_SEEN) != 0, m.keywords)) {
		http_msg_free(&m);
		return 0;
	}
	s = http_json_summary(p->r->srv->store, &m);
	http_msg_free(&m);
	if (s != NULL)
		json_array_append_new(p->messages, s);
	return 0;
}

/* The query's search (Mailpit's syntax), or NULL for an empty one; -1
 * with a 400 sent if it does not parse. */
static int parse_search(struct http_req *r, const char *text, struct msg_search **out)
{
	char err[256], msg[300];

	*out = NULL;
	if (text == NULL || text[strspn(text, " \t")] == '\0')
		return 0;
	if (msg_search_parse(text, http_query(r, "tz"), out, err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "Error: %s", err);
		http_reply_error(r, msg);
		return -1;
	}
	return 0;
}

/* The listing envelope of GET /api/v1/messages and /api/v1/search. The
 * scope's counts are the store's kept ones; the page is read from the
 * id index with start= skipped inside the query; a search's own counts
 * come from the pass that finds its page. */
static void list_send(struct http_req *r, unsigned start, json_t *messages,
    bool filtered, uint64_t matching, uint64_t matching_unread)
{
	uint64_t total = 0, unread = 0;

	if (store_scope_counts(r->srv->store, r->inbox_id, &total, &unread) < 0) {
		json_decref(messages);
		http_reply_text(r, 500, "store error");
		return;
	}
	if (!filtered) {
		matching = total;
		matching_unread = unread;
	}
	http_reply_json(r, 200, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
	    "total", (json_int_t)total, "unread", (json_int_t)unread,
	    "count", (json_int_t)json_array_size(messages),
	    "messages_count", (json_int_t)matching,
	    "messages_unread", (json_int_t)matching_unread,
	    "start", (json_int_t)start, "tags", http_scope_tags(r), "messages", messages));
}

/* A search that ran on the pool (http_pool.c): the page's rows read and
 * re-checked on the loop. */
static void list_pool_done(struct http_req *r, int rc, const struct store_search_part *res,
    const struct msg_search *search, union http_pool_then then)
{
	struct page_ctx p = { .r = r, .recheck = search };
	unsigned start = then.start;

	if (rc == STORE_OK && (p.messages = json_array()) != NULL &&
	    (res->nids <= start || store_message_rows(r->srv->store, res->ids + start,
	    res->nids - start, page_cb, &p) >= 0))
		list_send(r, start, p.messages, true, res->n, res->n - res->seen);
	else {
		json_decref(p.messages);
		http_reply_text(r, 500, "store error");
	}
	http_req_free(r);
}

/* search: the parsed query (freed here), or NULL. */
static enum http_rc list_reply(struct http_req *r, struct msg_search *search)
{
	struct store_query q = { .inbox_id = r->inbox_id, .search = search };
	struct page_ctx p = { .r = r };
	uint64_t matching = 0, matching_unread = 0;
	const char *before = http_query(r, "before");
	unsigned start, limit;
	bool filtered;
	int64_t t;

	if (query_uint(r, "start", 0, LIST_START_MAX, &start) < 0 ||
	    query_uint(r, "limit", LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit) < 0) {
		msg_search_free(search);
		http_reply_error(r, "invalid start or limit");
		return HTTP_DONE;
	}
	if (before != NULL && before[0] != '\0') {
		if (parse_time(before, &t) < 0) {
			msg_search_free(search);
			http_reply_error(r, "invalid before: want an RFC 3339 time");
			return HTTP_DONE;
		}
		q.date_max = t - 1;
	}
	filtered = search != NULL || q.date_max != 0;
	q.limit = limit;
	q.offset = start;
	if (filtered && http_pool_search(r, &q, &search, list_pool_done,
	    (union http_pool_then){ .start = start }))
		return HTTP_DEFERRED;
	if ((p.messages = json_array()) == NULL ||
	    store_message_query_counted(r->srv->store, &q, page_cb, &p,
	        filtered ? &matching : NULL, filtered ? &matching_unread : NULL) < 0) {
		json_decref(p.messages);
		msg_search_free(search);
		http_reply_text(r, 500, "store error");
		return HTTP_DONE;
	}
	msg_search_free(search);
	list_send(r, start, p.messages, filtered, matching, matching_unread);
	return HTTP_DONE;
}

enum http_rc http_api_messages_get(struct http_req *r)
{
	return list_reply(r, NULL);
}

enum http_rc http_api_search_get(struct http_req *r)
{
	const char *text = http_query(r, "query");
	struct msg_search *s;

	if (text == NULL || text[strspn(text, " \t")] == '\0') {
		http_reply_error(r, "Error: no search query");
		return HTTP_DONE;
	}
	if (parse_search(r, text, &s) < 0)
		return HTTP_DONE;
	return list_reply(r, s);
}

/* --- request bodies ------------------------------------------------------------- */

/* The JSON body (an object), or NULL with a 400 sent. Empty body: {}. */
json_t *http_json_body(struct http_req *r)
{
	json_error_t e;
	size_t len;
	char *text, msg[256];
	json_t *j;

	if ((text = http_body(r, &len)) == NULL) {
		http_reply_text(r, 500, "out of memory");
		return NULL;
	}
	if (len > HTTP_BODY_MAX) {
		free(text);
		http_reply_text(r, 413, "request body too large");
		return NULL;
	}
	j = len == 0 ? json_object() : json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
	free(text);
	if (j == NULL) {
		snprintf(msg, sizeof(msg), "invalid JSON: %s (line %d, column %d)", e.text, e.line,
		    e.column);
		http_reply_error(r, msg);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		http_reply_error(r, "invalid JSON: want an object");
		return NULL;
	}
	return j;
}

/* The IDs array: NULL if absent or null, -1 (400 sent) if malformed. */
static int json_ids(struct http_req *r, json_t *body, json_t **ids)
{
	json_t *v;
	size_t i;

	*ids = json_object_get(body, "IDs");
	if (*ids == NULL || json_is_null(*ids)) {
		*ids = NULL;
		return 0;
	}
	if (!json_is_array(*ids) || json_array_size(*ids) > IDS_MAX)
		goto bad;
	json_array_foreach(*ids, i, v)
		if (!json_is_string(v))
			goto bad;
	return 0;
bad:
	http_reply_error(r, "IDs: want an array of message IDs (strings)");
	return -1;
}

/* --- PUT: read state, DELETE ------------------------------------------------------ */

/* PUT {IDs, Read} or {Search, Read}; neither: every message of the
 * scope. Done in slices (http_bulk.c); "ok" after the last. */
enum http_rc http_api_messages_put(struct http_req *r)
{
	json_t *body = http_json_body(r), *ids, *jread, *search;
	struct store_query q = { .inbox_id = r->inbox_id };
	struct msg_search *ms = NULL;
	enum http_bulk_op op;
	enum http_rc rc = HTTP_DONE;

	if (body == NULL)
		return HTTP_DONE;
	if (json_ids(r, body, &ids) < 0)
		goto out;
	jread = json_object_get(body, "Read");
	search = json_object_get(body, "Search");
	if (jread != NULL && !json_is_boolean(jread) && !json_is_null(jread)) {
		http_reply_error(r, "Read: want true or false");
		goto out;
	}
	op = json_is_true(jread) ? HTTP_BULK_READ : HTTP_BULK_UNREAD;
	if (search != NULL && !json_is_string(search) && !json_is_null(search)) {
		http_reply_error(r, "Search: want a string");
		goto out;
	}
	if (json_is_string(search) && json_string_length(search) > 0) {
		if (ids != NULL && json_array_size(ids) > 0) {
			http_reply_error(r, "You may specify either IDs or a search query, not both");
			goto out;
		}
		if (parse_search(r, json_string_value(search), &ms) < 0)
			goto out;
	} else if (ids != NULL && json_array_size(ids) > 0) {
		rc = http_bulk_ids(r, ids, op);
		goto out;
	}
	/* A search, or neither: those of it not so already. */
	if (op == HTTP_BULK_READ)
		q.flags_clear = STORE_FLAG_SEEN;
	else
		q.flags_set = STORE_FLAG_SEEN;
	rc = http_bulk_query(r, &q, ms, op);
out:
	json_decref(body);
	return rc;
}

/* DELETE {IDs}; no body or no IDs: every message of the scope. */
enum http_rc http_api_messages_delete(struct http_req *r)
{
	json_t *body = http_json_body(r), *ids;
	struct store_query q = { .inbox_id = r->inbox_id };
	enum http_rc rc = HTTP_DONE;

	if (body == NULL)
		return HTTP_DONE;
	if (json_ids(r, body, &ids) == 0)
		rc = ids != NULL && json_array_size(ids) > 0 ?
		    http_bulk_ids(r, ids, HTTP_BULK_DELETE) :
		    http_bulk_query(r, &q, NULL, HTTP_BULK_DELETE);
	json_decref(body);
	return rc;
}

enum http_rc http_api_search_delete(struct http_req *r)
{
	const char *text = http_query(r, "query");
	struct store_query q = { .inbox_id = r->inbox_id };
	struct msg_search *s;

	if (text == NULL || text[strspn(text, " \t")] == '\0') {
		http_reply_error(r, "Error: no search query");
		return HTTP_DONE;
	}
	if (parse_search(r, text, &s) < 0)
		return HTTP_DONE;
	return http_bulk_query(r, &q, s, HTTP_BULK_DELETE);
}
