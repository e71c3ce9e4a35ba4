/*
 * Counters for GET /metrics (Prometheus' text exposition format 0.0.4).
 * The server is one process with one reactor, so the counters are plain
 * process-wide integers bumped where things happen (a connection opens,
 * a login fails, a message is accepted, a commit ends): nothing is
 * computed at scrape time but a few indexed counts of the store.
 */
#ifndef MAILSNARE_METRICS_H
#define MAILSNARE_METRICS_H

#include <stdint.h>
#include <time.h>

struct evbuffer;
struct server_stats;
struct store;

enum metrics_proto { METRICS_SMTP, METRICS_POP3, METRICS_IMAP, METRICS_HTTP, METRICS_NPROTO };

/* Upper bounds of the commit latency histogram, in microseconds. */
#define METRICS_COMMIT_BUCKETS 12

struct metrics {
	time_t started;
	uint64_t conn_total[METRICS_NPROTO];
	uint64_t conn_current[METRICS_NPROTO];
	uint64_t auth_failures[METRICS_NPROTO];
	uint64_t chaos_triggered;
	uint64_t commits, commit_us_sum;
	uint64_t commit_buckets[METRICS_COMMIT_BUCKETS];   /* not cumulative */
	uint64_t pruned_age;                               /* by max-age */
};

extern struct metrics metrics;

/* The protocol of a struct proto's name ("smtp", "pop3", "imap", "http");
 * METRICS_NPROTO for any other. */
enum metrics_proto metrics_proto_of(const char *name);
void metrics_conn_open(const char *proto);
void metrics_conn_close(const char *proto);
void metrics_auth_failure(const char *proto);
/* A commit of the group commit took us microseconds. */
void metrics_commit(uint64_t us);

/* What a scrape shows besides these counters. */
struct metrics_source {
	const struct server_stats *stats;   /* SMTP and deletions (server.h) */
	struct store *st;
	const char *db;                     /* its file, for the size on disk */
	const char *inbox;                  /* only this inbox's numbers, or NULL */
};

/* The exposition: every counter, the server's stats, the store's per
 * inbox numbers and size. 0, or -1 if the store failed (then nothing is
 * written). */
int metrics_render(struct evbuffer *out, const struct metrics_source *src);

#endif
