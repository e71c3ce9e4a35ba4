/*
 * Group commit: deliveries submitted during one pass of the event loop are
 * written in one SQLite transaction at the end of the pass, and each
 * submitter is told the result only after the commit. "Acknowledged" thus
 * always means "committed".
 */
#ifndef MAILSNARE_DELIVER_H
#define MAILSNARE_DELIVER_H

#include <stdint.h>
#include <event2/event.h>

#include "mailsnare/store.h"

struct deliver;
struct deliver_req;

/* rc is STORE_OK (id set) or a negative STORE_ error. */
typedef void (*deliver_done_cb)(void *arg, int rc, int64_t id);

struct deliver *deliver_new(struct event_base *base, struct store *st, uint64_t max_messages);
/* Commits what is pending, then frees. */
void deliver_free(struct deliver *d);

/* msg (and what it points to, and its source) must stay valid until cb
 * runs or the request is cancelled. cb never runs from inside submit. */
struct deliver_req *deliver_submit(struct deliver *d, const struct store_new_message *msg,
    deliver_done_cb cb, void *arg);
/* Withdraws a request whose callback has not run (its submitter is gone);
 * the message is not stored. */
void deliver_cancel(struct deliver_req *req);
/* Commits what is pending now (at shutdown). */
void deliver_flush(struct deliver *d);

#endif
