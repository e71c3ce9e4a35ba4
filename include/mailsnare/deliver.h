/*
 * The one submit path into the store, for every route a message comes in
 * by (SMTP DATA and BDAT, IMAP APPEND and MULTIAPPEND, the HTTP send API).
 *
 * Group commit: deliveries submitted during one pass of the event loop are
 * written in one SQLite transaction at the end of the pass, and each
 * submitter is told the result only after the commit. "Acknowledged" thus
 * always means "committed". A message of 256 KiB or more
 * has its body copied in ahead of it, a bounded step per loop pass, each
 * its own short transaction; the message row (and the acknowledgement)
 * follows with the first batch after its body is in.
 *
 * A submitter prepares each message with ingest.h (spool, MIME scan, the
 * list columns), fills in where it goes and its envelope, and submits:
 *
 *   struct store_new_message m = { 0 };
 *   ingest_finish(in, &m);                 // structure, headers, bytes
 *   m.inbox_id = inbox;                    // its INBOX, or with
 *   m.mailbox_id = mailbox;                //   a mailbox id (APPEND)
 *   m.flags = ...; m.internal_date = ...;  // and the envelope fields
 *   req = deliver_submit(d, &m, done, arg);
 *   ...                                    // later, after COMMIT:
 *   done(arg, STORE_OK, id)                // then free m and in
 */
#ifndef MAILSNARE_DELIVER_H
#define MAILSNARE_DELIVER_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#include "mailsnare/store.h"

struct deliver;
struct deliver_req;

/* rc is STORE_OK (id set) or a negative STORE_ error (STORE_FULL and
 * STORE_BUSY: try again later). */
typedef void (*deliver_done_cb)(void *arg, int rc, int64_t id);

/* What a stored message of a group became (the store's id, and its UID in
 * the mailbox: IMAP's APPENDUID, RFC 4315). */
struct deliver_result {
	int64_t id;
	uint32_t uid;
};
/* rc as above; res[0..n) set when it is STORE_OK. */
typedef void (*deliver_group_cb)(void *arg, int rc, const struct deliver_result *res,
    size_t n);

/* max_messages: INBOXes (not other mailboxes) are pruned to this many
 * messages after each delivery; 0 = no limit. */
struct deliver *deliver_new(struct event_base *base, struct store *st, uint64_t max_messages);
/* Commits what is pending, then frees. */
void deliver_free(struct deliver *d);

/*
 * Submits one message. msg (and what it points to, and its source) must
 * stay valid until cb runs or the request is cancelled. cb never runs from
 * inside submit. NULL if memory ran out (nothing was submitted).
 */
struct deliver_req *deliver_submit(struct deliver *d, const struct store_new_message *msg,
    deliver_done_cb cb, void *arg);
/*
 * Submits msgs[0..n) (n >= 1) to be stored together or not at all (IMAP
 * MULTIAPPEND, RFC 3502), in that order; cb gets each one's id and UID.
 * The same lifetime rules as deliver_submit, for the array too.
 */
struct deliver_req *deliver_submit_group(struct deliver *d,
    const struct store_new_message *const *msgs, size_t n, deliver_group_cb cb, void *arg);
/* Withdraws a request whose callback has not run (its submitter is gone);
 * the message is not stored. */
void deliver_cancel(struct deliver_req *req);
/* Commits what is pending now (at shutdown). */
void deliver_flush(struct deliver *d);

#endif
