/*
 * Closing the server's large spool files a slice at a time: a spilled
 * spool's file (spool.h) of more than SPOOL_REAP_STEP bytes is not closed
 * by spool_free but shrunk by that much per loop pass, then closed, so
 * that freeing its page cache never holds one pass for long.
 */
#ifndef MAILSNARE_SPOOL_REAP_H
#define MAILSNARE_SPOOL_REAP_H

#include <event2/event.h>

#define SPOOL_REAP_STEP (4u * 1024 * 1024)

struct spool_reap;

/* Installs itself as spool.h's closer; NULL if memory ran out (then
 * spool_free closes every file itself). */
struct spool_reap *spool_reap_new(struct event_base *base);
/* Closes what is left at once, and uninstalls. */
void spool_reap_free(struct spool_reap *r);

#endif
