/*
 * Release: a trapped message sent on to a real SMTP server (relay-host and
 * the other relay-* keys), with libcurl's SMTP client. The bytes sent are
 * the stored message with one Received: line added at the top; MAIL FROM
 * is relay-return-path, else the message's envelope sender. Recipients
 * are checked against relay-allowed-recipients and
 * relay-blocked-recipients before anything is sent: one refused
 * recipient refuses the release.
 *
 * The server runs each release on a thread of its own and hears of its end
 * on the loop (libcurl's SMTP blocks, even under the multi interface: see
 * relay.c); the CLI, its own process, waits for it (relay_send_sync).
 */
#ifndef MAILSNARE_RELAY_H
#define MAILSNARE_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct event_base;
struct store;
struct relay;
struct relay_job;

#define RELAY_RCPTS_MAX 100          /* recipients of one release */
#define RELAY_ADDR_MAX 320           /* an addr-spec, with its NUL */
#define RELAY_ERR_MAX 512
#define RELAY_JOBS_MAX 16            /* releases in progress at once (server) */

enum relay_status {
	RELAY_OK,
	RELAY_REFUSED,                   /* a recipient not allowed, or not an address */
	RELAY_NOTFOUND,                  /* no such message */
	RELAY_BUSY,                      /* RELAY_JOBS_MAX in progress: try later */
	RELAY_FAILED                     /* the upstream (or the store) failed */
};

/* *out NULL (and 0) when no relay-host is set: the feature is off.
 * base: the server's loop, or NULL for relay_send_sync only. -1 with err
 * set if a pattern does not compile. cfg must outlive the relay. */
int relay_new(const struct config *cfg, struct event_base *base, struct relay **out,
    char *err, size_t errlen);
/* Releases still in progress are stopped and waited for (about a second);
 * their callbacks never run. */
void relay_free(struct relay *r);
/* "host:port", as the web UI shows it. */
const char *relay_server(const struct relay *r);

/* "a@b" or "Name <a@b>" to the bare address in out (RELAY_ADDR_MAX);
 * -1 if it is no address. */
int relay_address(const char *in, char *out);
/* RELAY_OK if the bare address may be released to, else RELAY_REFUSED
 * with why in err (Mailpit's wording: "... does not match the allowlist"). */
enum relay_status relay_check_rcpt(const struct relay *r, const char *addr, char *err,
    size_t errlen);

/* The release ended: RELAY_OK (the upstream accepted it) or RELAY_FAILED
 * with err. */
typedef void (*relay_done_cb)(void *arg, enum relay_status st, const char *err);

/*
 * Starts releasing message id to rcpts[0..n) (addresses as relay_address
 * takes them). Every recipient is checked first. Returns the job, or NULL
 * with *st (RELAY_REFUSED, RELAY_NOTFOUND, RELAY_BUSY, RELAY_FAILED) and
 * err set; nothing was sent then. cb (may be NULL) never runs from
 * inside; how the release ended is logged either way.
 */
struct relay_job *relay_start(struct relay *r, struct store *st, int64_t id,
    const char *const *rcpts, size_t n, relay_done_cb cb, void *arg,
    enum relay_status *status, char *err, size_t errlen);
/* The caller no longer wants to hear: the transfer is stopped (without
 * the final dot, so the upstream accepts nothing). */
void relay_cancel(struct relay_job *j);

/* The same from start to end, waiting (the CLI). */
enum relay_status relay_send_sync(struct relay *r, struct store *st, int64_t id,
    const char *const *rcpts, size_t n, char *err, size_t errlen);

/* relay-auto: messages that match the search are released to their
 * envelope recipients at delivery (those the rules allow). */
struct relay_auto;
struct relay_auto *relay_auto_new(struct event_base *base, struct relay *r, struct store *st,
    const char *query, char *err, size_t errlen);
void relay_auto_free(struct relay_auto *a);

#endif
