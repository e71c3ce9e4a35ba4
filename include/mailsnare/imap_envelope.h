/*
 * IMAP ENVELOPE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) from the raw fields the
 * MIME scanner kept (mime.h), and the IMAP string quoting both ENVELOPE and
 * BODYSTRUCTURE use.
 *
 * Output goes to a libevent struct evbuffer (the IMAP session writes to
 * evbuffers). Functions return 0, or -1 if the evbuffer refused data.
 */
#ifndef MAILSNARE_IMAP_ENVELOPE_H
#define MAILSNARE_IMAP_ENVELOPE_H

#include <stddef.h>

struct evbuffer;
struct mime_part;

/* Strings longer than this are sent as literals. */
#define IMAP_QUOTED_MAX 1024

/*
 * An IMAP nstring: NIL for s == NULL; a quoted string (with \\ and \"
 * escapes) when s is 7-bit without CR, LF or NUL and at most
 * IMAP_QUOTED_MAX bytes; otherwise a literal "{n}\r\n" + the bytes.
 */
int imap_envelope_write_nstring(struct evbuffer *out, const char *s, size_t len);
/* The same for a NUL-terminated string (NULL -> NIL). */
int imap_envelope_write_cstring(struct evbuffer *out, const char *s);

/*
 * Appends "(date subject from sender reply-to to cc bcc in-reply-to
 * message-id)" for msg, a message node (the root, or the child of a
 * message/rfc822 part; see mime_part_message). Address fields are parsed
 * per RFC 5322 into ((name adl mailbox host) ...) lists with group markers;
 * an absent or empty field is NIL; Sender and Reply-To default to From.
 * Strings are as they stand in the header (not RFC 2047 decoded).
 */
int imap_envelope_write(const struct mime_part *msg, struct evbuffer *out);

/* Just one address list, "((...)(...))" or NIL (for tests and SEARCH). */
int imap_envelope_write_addresses(const char *value, struct evbuffer *out);

#endif
