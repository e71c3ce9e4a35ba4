/*
 * /api/v1/info, /api/v1/webui and the health checks /livez and /readyz.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mailsnare/config.h"
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
	uint64_t total, unread;
};

static int tag_msg_cb(const struct store_msg *m, void *arg)
{
	struct tag_count_ctx *t = arg;
	const char *p = m->keywords, *e;
	char name[256];
	json_t *v;

	t->total++;
	if (!(m->flags & STORE_FLAG_SEEN))
		t->unread++;
	while (p != NULL && *p != '\0') {
		while (*p == ' ')
			p++;
		e = strchrnul(p, ' ');
		if (e > p && (size_t)(e - p) < sizeof(name)) {
			memcpy(name, p, (size_t)(e - p));
			name[e - p] = '\0';
			v = json_object_get(t->counts, name);
			json_object_set_new(t->counts, name,
			    json_integer(v ? json_integer_value(v) + 1 : 1));
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

static int tag_inbox_cb(const struct store_inbox *in, void *arg)
{
	struct tag_count_ctx *t = arg;

	return store_mailbox_list(t->r->srv->store, in->id, tag_mailbox_cb, t);
}

enum http_rc http_api_info(struct http_req *r)
{
	struct tag_count_ctx t = { .r = r, .counts = json_object() };
	const struct config *cfg = r->srv->cfg;
	struct stat sb;
	json_int_t dbsize = 0;
	int rc;

	if (r->inbox_id != 0)
		rc = store_mailbox_list(r->srv->store, r->inbox_id, tag_mailbox_cb, &t);
	else
		rc = store_inbox_foreach(r->srv->store, tag_inbox_cb, &t);
	if (rc < 0 || t.counts == NULL) {
		json_decref(t.counts);
		http_reply_text(r, 500, "store error");
		return HTTP_DONE;
	}
	if (stat(cfg->db, &sb) == 0)
		dbsize = (json_int_t)sb.st_size;
	http_reply_json(r, 200, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:{s:I, s:I, "
	    "s:I, s:I, s:I, s:I, s:I}}",
	    "Version", PACKAGE_VERSION, "LatestVersion", "", "Database", cfg->db,
	    "DatabaseSize", dbsize, "Messages", (json_int_t)t.total,
	    "Unread", (json_int_t)t.unread, "Tags", t.counts,
	    "RuntimeStats",
	    "Uptime", (json_int_t)(time(NULL) - r->hs->started), "Memory", rss_bytes(),
	    "MessagesDeleted", (json_int_t)0, "SMTPAccepted", (json_int_t)0,
	    "SMTPAcceptedSize", (json_int_t)0, "SMTPRejected", (json_int_t)0,
	    "SMTPIgnored", (json_int_t)0));
	return HTTP_DONE;
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
	http_reply_json(r, 200, json_pack("{s:s, s:{s:b, s:s, s:s, s:s, s:s, s:s, s:b}, "
	    "s:b, s:b, s:b, s:b, s:s, s:o, s:o}",
	    "Label", "mailsnare",
	    "MessageRelay", "Enabled", 0, "SMTPServer", "", "ReturnPath", "",
	    "AllowedRecipients", "", "BlockedRecipients", "", "OverrideFrom", "",
	    "PreserveMessageIDs", 0,
	    "SpamAssassin", 0, "ChaosEnabled", 0, "DuplicatesIgnored", 0,
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
