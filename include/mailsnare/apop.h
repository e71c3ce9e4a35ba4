/*
 * APOP (RFC 1939 §7): the client proves knowledge of the password with
 * MD5(timestamp || password) in lowercase hex, where the timestamp is the
 * "<...>" msg-id of the server's greeting. Pure: no store, no sockets.
 */
#ifndef MAILSNARE_APOP_H
#define MAILSNARE_APOP_H

#include <stdbool.h>

#define APOP_DIGEST_HEX 33   /* 32 hex digits and a NUL */

/* MD5 of timestamp followed by password as 32 lowercase hex digits into
 * hex; "" if the digest could not be computed. */
void apop_digest_hex(const char *timestamp, const char *password,
    char hex[APOP_DIGEST_HEX]);

/* true if digest (the client's hex, either case) is the digest of
 * timestamp and password. Constant time in the password and digest
 * contents. */
bool apop_verify(const char *timestamp, const char *password, const char *digest);

#endif
