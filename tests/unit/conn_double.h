/*
 * A test double of the connection API (include/mailsnare/conn.h) over
 * memory buffers, linked instead of conn.c into the session unit tests:
 * a test opens a session on a struct server of its own, feeds it byte
 * strings and reads back exactly what the session queued.
 */
#ifndef CONN_DOUBLE_H
#define CONN_DOUBLE_H

#include <stdbool.h>
#include <stddef.h>

#include "mailsnare/conn.h"

/* Opens a session of proto as a connection from 127.0.0.1 would
 * (proto->open, which queues the greeting). NULL if open refused. */
struct conn *cd_open(struct server *srv, const struct proto *proto, bool tls);
/* Appends bytes to the input and lets the session consume them, as the
 * event loop would (again while a conn_resume asks for it). */
void cd_feed(struct conn *c, const char *bytes, size_t len);
#define cd_feeds(c, s) cd_feed((c), (s), strlen(s))
/* Runs the session's input again (after a deliver_flush resumed it). */
void cd_run(struct conn *c);
/* What the session wrote since the last call, NUL-terminated; valid until
 * the next call or cd_free. */
const char *cd_output(struct conn *c);
/* Input the session has not consumed. */
size_t cd_input_left(struct conn *c);
bool cd_closed(struct conn *c);
bool cd_paused(struct conn *c);
/* Makes conn_output_full() answer full (a client that does not read). */
void cd_set_output_full(struct conn *c, bool full);
/* proto->free, then the connection. */
void cd_free(struct conn *c);

#endif

/* A server for sessions: config defaults (no config file) with hostname
 * "mx.test", a fresh store in a temporary directory with the default
 * inbox dev/dev, a deliver queue and an event base (for the sessions'
 * timers; nothing runs it: tests call deliver_flush). */
struct server *cd_server_new(void);
void cd_server_free(struct server *srv);
/* A server of its own and one plain session of proto on it (the greeting
 * is in cd_output); cd_stop frees both. Aborts on failure. */
struct conn *cd_start(const struct proto *proto);
void cd_stop(struct conn *c);
