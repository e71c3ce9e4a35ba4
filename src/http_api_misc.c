/*
 * /api/v1/info, /api/v1/webui and the health checks /livez and /readyz.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mailsnare/chaos.h"
#include "mailsnare/config.h"
#include "mailsnare/relay.h"
#include "mailsnare/server.h"
#include "http_internal.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

/* Resident memory in bytes (Mailpit's RuntimeStats.Memory), 0 if unknown. */
static json_int_t rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	fclose(f);
	return (json_int_t)rss * sysconf(_SC_PAGESIZE);
}

struct tag_count_ctx {
	struct http_req *r;
	json_t *counts;              /* tag -> count */
};

static void tag_add(json_t *counts, const char *name, json_int_t n)
{
	json_t *v = json_object_get(counts, name);

	json_object_set_new(counts, name, json_integer(v ? json_integer_value(v) + n : n));
}

static int tag_msg_cb(const struct store_msg *m, void *arg)
{
	struct tag_count_ctx *t = arg;
	const char *p = m->keywords, *e;
	char name[256];

	while (p != NULL && *p != '\0') {
		while (*p == ' ')
			p++;
		e = strchrnul(p, ' ');
		if (e > p && (size_t)(e - p) < sizeof(name)) {
			memcpy(name, p, (size_t)(e - p));
			name[e - p] = '\0';
			tag_add(t->counts, name, 1);
		}
		p = e;
	}
	return 0;
}

static int tag_mailbox_cb(const struct store_mailbox *mb, void *arg)
{
	struct tag_count_ctx *t = arg;

	return store_mailbox_foreach(t->r->srv->store, mb->id, tag_msg_cb, t);
}

static int tag_all_cb(const char *name, uint64_t count, void *arg)
{
	struct tag_count_ctx *t = arg;

	if (name[0] != '\\')
		tag_add(t->counts, name, (json_int_t)count);
	return 0;
}

/* Messages per tag: every inbox from the store's kept counts; one inbox
 * by a pass over that inbox's messages (the store keeps no counts per
 * inbox and keyword). */
static int tag_counts(struct http_req *r, json_t *counts)
{
	struct tag_count_ctx t = { .r = r, .counts = counts };

	if (r->inbox_id == 0)
		return store_keyword_counts(r->srv->store, tag_all_cb, &t);
	return store_mailbox_list(r->srv->store, r->inbox_id, tag_mailbox_cb, &t);
}

enum http_rc http_api_info(struct http_req *r)
{
	const struct config *cfg = r->srv->cfg;
	const struct server_stats *st = &r->srv->stats;
	json_t *counts = json_object();
	uint64_t total = 0, unread = 0;
	struct stat sb;
	json_int_t dbsize = 0;

	if (counts == NULL || tag_counts(r, counts) < 0 ||
	    store_scope_counts(r->srv->store, r->inbox_id, &total, &unread) < 0) {
		json_decref(counts);
		http_reply_text(r, 500, "store error");
		return HTTP_DONE;
	}
	if (stat(cfg->db, &sb) == 0)
		dbsize = (json_int_t)sb.st_size;
	http_reply_json(r, 200, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:{s:I, s:I, "
	    "s:I, s:I, s:I, s:I, s:I}}",
	    "Version", PACKAGE_VERSION, "LatestVersion", "", "Database", cfg->db,
	    "DatabaseSize", dbsize, "Messages", (json_int_t)total,
	    "Unread", (json_int_t)unread, "Tags", counts,
	    "RuntimeStats",
	    "Uptime", (json_int_t)(time(NULL) - r->hs->started), "Memory", rss_bytes(),
	    "MessagesDeleted", (json_int_t)st->messages_deleted,
	    "SMTPAccepted", (json_int_t)st->smtp_accepted,
	    "SMTPAcceptedSize", (json_int_t)st->smtp_accepted_size,
	    "SMTPRejected", (json_int_t)st->smtp_rejected,
	    /* Mailpit's ignored duplicates: mailsnare keeps every message. */
	    "SMTPIgnored", (json_int_t)0));
	return HTTP_DONE;
}

/* Mailpit's MessageRelay: what a release would do (the web page shows its
 * button when Enabled). */
static json_t *webui_relay(const struct server *srv)
{
	const struct config *cfg = srv->cfg;
	bool on = srv->relay != NULL;

	return json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:b}", "Enabled", on,
	    "SMTPServer", on ? relay_server(srv->relay) : "",
	    "ReturnPath", on ? cfg->relay_return_path : "",
	    "AllowedRecipients", on ? cfg->relay_allowed : "",
	    "BlockedRecipients", on ? cfg->relay_blocked : "", "OverrideFrom", "",
	    "PreserveMessageIDs", on);
}

/* Ours: where each listener is ("smtp": "127.0.0.1:1025"; those off are
 * left out), for the page's connection settings. */
static json_t *webui_listeners(const struct server *srv)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o != NULL && i < LISTEN_COUNT; i++)
		if (srv->bound[i][0] != '\0')
			json_object_set_new(o, config_listener_name((enum listener_kind)i),
			    json_string(srv->bound[i]));
	return o;
}

/* Ours: who the page is talking as, so it can say so and offer a login. */
static json_t *webui_user(const struct http_req *r)
{
	static const char *const kinds[] = { "anonymous", "admin", "inbox" };

	return json_pack("{s:s, s:s, s:b}", "Kind", kinds[r->who],
	    "Inbox", r->who == HTTP_WHO_INBOX ? r->inbox : "",
	    "AuthRequired", r->srv->cfg->http_require_auth);
}

enum http_rc http_api_webui(struct http_req *r)
{
	http_reply_json(r, 200, json_pack("{s:s, s:o, s:b, s:b, s:b, s:b, s:s, s:o, s:o}",
	    "Label", "mailsnare",
	    "MessageRelay", webui_relay(r->srv),
	    "SpamAssassin", 0, "ChaosEnabled", (int)chaos_enabled(), "DuplicatesIgnored", 0,
	    "HideDeleteAllButton", 0,
	    "Version", PACKAGE_VERSION,
	    "Listeners", webui_listeners(r->srv),
	    "User", webui_user(r)));
	return HTTP_DONE;
}

enum http_rc http_api_livez(struct http_req *r)
{
	http_reply_data(r, 200, "text/plain; charset=utf-8", NULL, 0);
	return HTTP_DONE;
}

enum http_rc http_api_readyz(struct http_req *r)
{
	if (!r->hs->ready) {
		http_reply_text(r, 503, "starting");
		return HTTP_DONE;
	}
	http_reply_data(r, 200, "text/plain; charset=utf-8", NULL, 0);
	return HTTP_DONE;
}
