/*
 * Removing the segments of deleted large bodies a step at a time
 * (store_body_purge): deleting a 28 MB body in one statement held the
 * loop for some 80 ms. A timer looks for such bodies every
 * BODY_PURGE_IDLE_MS and, while there are, removes BODY_PURGE_STEP bytes
 * per loop pass.
 */
#ifndef MAILSNARE_BODY_PURGE_H
#define MAILSNARE_BODY_PURGE_H

#include <event2/event.h>

#include "mailsnare/store.h"

#define BODY_PURGE_STEP (1u * 1024 * 1024)
#define BODY_PURGE_IDLE_MS 250

struct body_purge;

/* NULL if memory ran out: the bodies then wait in the store (no message
 * refers to them) for the next server's purge. */
struct body_purge *body_purge_new(struct event_base *base, struct store *st);
void body_purge_free(struct body_purge *p);

#endif
