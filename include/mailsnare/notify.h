/* Readiness and stopping notifications to systemd (sd_notify(3)'s
 * protocol, without libsystemd): a datagram to $NOTIFY_SOCKET. */
#ifndef MAILSNARE_NOTIFY_H
#define MAILSNARE_NOTIFY_H

/* Sends state ("READY=1", "STOPPING=1", ...) if $NOTIFY_SOCKET is set.
 * 0 if sent or nothing to do, -1 if the socket could not be reached (the
 * server keeps running: a unit of Type=notify then times out, loudly). */
int notify_systemd(const char *state);

#endif
