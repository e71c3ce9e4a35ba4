/*
 * IMAP BODY and BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) from a
 * MIME part tree (mime.h), formatted as Dovecot does: lowercase types,
 * "charset" "us-ascii" added to text parts without a charset, "7bit" when
 * Content-Transfer-Encoding is absent, RFC 2231 parameters sent as
 * "name*" "charset'lang'%XX..", a multipart without any body part shown
 * with one empty text/plain part.
 *
 * Output goes to a libevent struct evbuffer; returns 0, or -1 if the
 * evbuffer refused data.
 */
#ifndef MAILSNARE_IMAP_BODYSTRUCTURE_H
#define MAILSNARE_IMAP_BODYSTRUCTURE_H

#include <stdbool.h>

struct evbuffer;
struct mime_part;

/*
 * Appends the parenthesised body of part (normally the root of a tree) to
 * out: with extended=true the BODYSTRUCTURE form (extension data: MD5,
 * disposition, language, location for single parts; parameters,
 * disposition, language, location for multiparts), otherwise BODY.
 */
int imap_bodystructure_write(const struct mime_part *part, bool extended, struct evbuffer *out);

/* The same into a buffer (what FETCH uses); false if memory ran out. */
struct imap_buf;
bool imap_bodystructure_format(const struct mime_part *part, bool extended, struct imap_buf *b);

#endif
