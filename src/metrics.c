/*
 * The process's counters and their Prometheus text exposition (format
 * 0.0.4: "# HELP", "# TYPE", then `name{label="value"} number` lines).
 * Counters only grow; gauges (current connections, messages, sizes) are
 * read at scrape time from what is already counted or indexed.
 */
#include "mailsnare/metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/buffer.h>

#include "mailsnare/server.h"
#include "mailsnare/store.h"

struct metrics metrics;

static const char *const proto_names[METRICS_NPROTO] = {
	[METRICS_SMTP] = "smtp", [METRICS_POP3] = "pop3", [METRICS_IMAP] = "imap",
	[METRICS_HTTP] = "http",
};

/* Commit latency bucket bounds: 0.5 ms to 5 s, in microseconds. */
static const uint64_t commit_bounds_us[METRICS_COMMIT_BUCKETS] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000,
};

enum metrics_proto metrics_proto_of(const char *name)
{
	for (int i = 0; i < METRICS_NPROTO; i++)
		if (strcmp(proto_names[i], name) == 0)
			return (enum metrics_proto)i;
	return METRICS_NPROTO;
}

void metrics_conn_open(const char *proto)
{
	enum metrics_proto p = metrics_proto_of(proto);

	if (p == METRICS_NPROTO)
		return;
	metrics.conn_total[p]++;
	metrics.conn_current[p]++;
}

void metrics_conn_close(const char *proto)
{
	enum metrics_proto p = metrics_proto_of(proto);

	if (p != METRICS_NPROTO && metrics.conn_current[p] > 0)
		metrics.conn_current[p]--;
}

void metrics_auth_failure(const char *proto)
{
	enum metrics_proto p = metrics_proto_of(proto);

	if (p != METRICS_NPROTO)
		metrics.auth_failures[p]++;
}

void metrics_commit(uint64_t us)
{
	metrics.commits++;
	metrics.commit_us_sum += us;
	for (int i = 0; i < METRICS_COMMIT_BUCKETS; i++) {
		if (us <= commit_bounds_us[i]) {
			metrics.commit_buckets[i]++;
			return;
		}
	}
}

/* ---- the exposition ---- */

static void head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct evbuffer *out, const char *name, const char *type, const char *help,
    uint64_t v)
{
	head(out, name, type, help);
	evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void per_proto(struct evbuffer *out, const char *name, const char *type,
    const char *help, const uint64_t *v)
{
	head(out, name, type, help);
	for (int i = 0; i < METRICS_NPROTO; i++)
		evbuffer_add_printf(out, "%s{protocol=\"%s\"} %" PRIu64 "\n", name, proto_names[i],
		    v[i]);
}

/* A label value: backslash, quote and newline escaped (inbox names are
 * UTF-8 without control characters, but may hold both of the others). */
static void label_value(struct evbuffer *out, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add(out, "\\", 1);
		if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

struct inbox_lines {
	struct evbuffer *messages, *unread;
	const char *only;             /* NULL: every inbox */
};

static int inbox_line(const char *name, int64_t messages, int64_t unread, void *arg)
{
	struct inbox_lines *l = arg;

	if (l->only != NULL && strcmp(l->only, name) != 0)
		return 0;
	evbuffer_add_printf(l->messages, "mailsnare_inbox_messages{inbox=\"");
	label_value(l->messages, name);
	evbuffer_add_printf(l->messages, "\"} %" PRId64 "\n", messages);
	evbuffer_add_printf(l->unread, "mailsnare_inbox_unread{inbox=\"");
	label_value(l->unread, name);
	evbuffer_add_printf(l->unread, "\"} %" PRId64 "\n", unread);
	return 0;
}

static int render_inboxes(struct evbuffer *out, struct store *st, const char *only)
{
	struct inbox_lines l = { evbuffer_new(), evbuffer_new(), only };
	int rc = -1;

	if (l.messages != NULL && l.unread != NULL &&
	    store_inbox_counts(st, inbox_line, &l) == STORE_OK) {
		head(out, "mailsnare_inbox_messages", "gauge", "Messages in the inbox, all mailboxes.");
		evbuffer_add_buffer(out, l.messages);
		head(out, "mailsnare_inbox_unread", "gauge", "Messages in the inbox without \\\\Seen.");
		evbuffer_add_buffer(out, l.unread);
		rc = 0;
	}
	if (l.messages)
		evbuffer_free(l.messages);
	if (l.unread)
		evbuffer_free(l.unread);
	return rc;
}

static void render_store(struct evbuffer *out, const struct store_space *sp, const char *db)
{
	char wal[4200];
	struct stat sb;
	uint64_t disk = 0;

	if (stat(db, &sb) == 0)
		disk += (uint64_t)sb.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", db);
	if (stat(wal, &sb) == 0)
		disk += (uint64_t)sb.st_size;
	one(out, "mailsnare_store_size_bytes", "gauge",
	    "The database and its write-ahead log on disk.", disk);
	one(out, "mailsnare_store_pages", "gauge", "Pages of the database.", (uint64_t)sp->pages);
	one(out, "mailsnare_store_free_pages", "gauge",
	    "Free pages of the database, not yet given back.", (uint64_t)sp->free_pages);
	one(out, "mailsnare_store_page_size_bytes", "gauge", "The database's page size.",
	    (uint64_t)sp->page_size);
}

static void render_commits(struct evbuffer *out)
{
	uint64_t cum = 0;

	head(out, "mailsnare_store_commit_seconds", "histogram",
	    "Time of each group commit of deliveries.");
	for (int i = 0; i < METRICS_COMMIT_BUCKETS; i++) {
		cum += metrics.commit_buckets[i];
		evbuffer_add_printf(out, "mailsnare_store_commit_seconds_bucket{le=\"%g\"} %" PRIu64
		    "\n", (double)commit_bounds_us[i] / 1e6, cum);
	}
	evbuffer_add_printf(out, "mailsnare_store_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
	    "mailsnare_store_commit_seconds_sum %.6f\n"
	    "mailsnare_store_commit_seconds_count %" PRIu64 "\n",
	    metrics.commits, (double)metrics.commit_us_sum / 1e6, metrics.commits);
}

static void render_smtp(struct evbuffer *out, const struct server_stats *ss)
{
	one(out, "mailsnare_smtp_accepted_total", "counter", "Messages accepted over SMTP.",
	    ss->smtp_accepted);
	one(out, "mailsnare_smtp_rejected_total", "counter",
	    "SMTP transactions refused at or after their data.", ss->smtp_rejected);
	one(out, "mailsnare_smtp_received_bytes_total", "counter",
	    "Bytes of the messages accepted over SMTP.", ss->smtp_accepted_size);
	one(out, "mailsnare_messages_deleted_total", "counter",
	    "Messages removed from the store (deleted, expunged, pruned; not moved).",
	    ss->messages_deleted);
}

int metrics_render(struct evbuffer *out, const struct metrics_source *src)
{
	struct store_space sp;
	time_t now = time(NULL);

	if (store_space(src->st, &sp) != STORE_OK || render_inboxes(out, src->st, src->inbox) < 0)
		return -1;
	one(out, "mailsnare_uptime_seconds", "gauge", "Seconds since the server started.",
	    (uint64_t)(now > metrics.started ? now - metrics.started : 0));
	per_proto(out, "mailsnare_connections", "gauge", "Open connections.", metrics.conn_current);
	per_proto(out, "mailsnare_connections_total", "counter", "Connections accepted.",
	    metrics.conn_total);
	per_proto(out, "mailsnare_auth_failures_total", "counter", "Failed logins.",
	    metrics.auth_failures);
	render_smtp(out, src->stats);
	one(out, "mailsnare_chaos_triggered_total", "counter", "Faults injected by chaos.",
	    metrics.chaos_triggered);
	one(out, "mailsnare_pruned_age_total", "counter", "Messages pruned by max-age.",
	    metrics.pruned_age);
	render_store(out, &sp, src->db);
	render_commits(out);
	return 0;
}
