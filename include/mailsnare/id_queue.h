/*
 * A bounded FIFO of message ids: what a store notification hands to a
 * worker on the loop (relay_auto.c, http_webhook.c), so the notification
 * itself stays cheap and the queue never grows without bound.
 */
#ifndef MAILSNARE_ID_QUEUE_H
#define MAILSNARE_ID_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_QUEUE_MAX 1024

struct id_queue {
	int64_t ids[ID_QUEUE_MAX];
	size_t head, n;
	int64_t newest;                    /* the highest id ever seen */
};

/* The store's ids only grow (AUTOINCREMENT): a STORE_CHANGE_NEW whose id
 * is not above every one seen before is a message that moved (IMAP MOVE,
 * a renamed INBOX's messages), not one that arrived. Records it. */
static inline bool id_queue_first_sight(struct id_queue *q, int64_t id)
{
	if (id <= q->newest)
		return false;
	q->newest = id;
	return true;
}

/* false if full (the id is not queued). */
static inline bool id_queue_push(struct id_queue *q, int64_t id)
{
	if (q->n == ID_QUEUE_MAX)
		return false;
	q->ids[(q->head + q->n++) % ID_QUEUE_MAX] = id;
	return true;
}

/* The oldest id, left in place; false if empty. */
static inline bool id_queue_peek(const struct id_queue *q, int64_t *id)
{
	if (q->n == 0)
		return false;
	*id = q->ids[q->head];
	return true;
}

static inline void id_queue_pop(struct id_queue *q)
{
	q->head = (q->head + 1) % ID_QUEUE_MAX;
	q->n--;
}

#endif
