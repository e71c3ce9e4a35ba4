/* `mailsnare serve`: opens the store, prepares TLS and inboxes, binds the
 * listeners and runs the reactor until SIGINT/SIGTERM. */
#ifndef MAILSNARE_SERVE_H
#define MAILSNARE_SERVE_H

#include "mailsnare/config.h"

/* Returns the process exit status (0 after a clean shutdown, 1 if the
 * server could not start). */
int serve_run(const struct config *cfg);

#endif
