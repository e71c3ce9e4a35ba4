/*
 * Retention (max-age): messages of every INBOX older than max-age are
 * pruned on a timer, in bounded steps (store_prune_older), and the pages
 * they freed are given back to the file system with SQLite's incremental
 * vacuum, a bounded number per loop pass. IMAP sessions see the pruned
 * messages expunged and HTTP clients get `prune` events, through the
 * store's change notifications.
 */
#ifndef MAILSNARE_RETENTION_H
#define MAILSNARE_RETENTION_H

#include <stdint.h>

struct event_base;
struct store;
struct retention;

/* Pages given back per step (a few milliseconds of work). */
#define RETENTION_VACUUM_STEP 256
/* The timer's period: a tenth of max-age, within these bounds. */
#define RETENTION_PERIOD_MIN_S 1
#define RETENTION_PERIOD_MAX_S 60
/* A database from before auto_vacuum is converted at start (a VACUUM)
 * up to this size; a larger one is left as it is, with a warning. */
#define RETENTION_CONVERT_MAX (64ULL * 1024 * 1024)

/* NULL when max_age is 0 (nothing to do) or memory ran out; *err set in
 * the latter case only. Its events run at `priority`. */
struct retention *retention_new(struct event_base *base, struct store *st, uint64_t max_age,
    int priority, int *err);
void retention_free(struct retention *r);

#endif
