/* `mailsnare serve`: opens the store, prepares TLS and inboxes, binds the
 * listeners and runs the reactor until SIGINT/SIGTERM. */
#ifndef MAILSNARE_SERVE_H
#define MAILSNARE_SERVE_H

#include <stdbool.h>

#include "mailsnare/config.h"

/* Returns the process exit status (0 after a clean shutdown, 1 if the
 * server could not start). */
int serve_run(const struct config *cfg);

struct server;
/* Runs the search index's slices back to back from the next loop pass
 * (an HTTP search waits for them); false when they are not running (the
 * caller indexes synchronously instead). */
bool serve_index_hurry(struct server *srv);

#endif
