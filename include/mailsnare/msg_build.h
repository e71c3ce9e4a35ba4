/*
 * Builds a MIME message (RFC 5322, RFC 2045-2047) from the parts of a
 * Mailpit send request: addresses, subject, text and HTML bodies,
 * attachments (inline ones with a Content-ID), extra headers and tags.
 *
 *   text only            text/plain
 *   text and HTML        multipart/alternative
 *   + inline parts       multipart/related around the body
 *   + attachments        multipart/mixed around all of it
 *
 * Text goes as UTF-8 quoted-printable with CRLF line ends, attachments as
 * base64 in 76-character lines; display names and the subject are RFC
 * 2047 encoded when they are not plain ASCII; file names also get RFC
 * 2231's filename*. Boundaries are derived from the seed and checked not
 * to occur in any part.
 *
 * Pure: no I/O, no clock (the caller gives the date and Message-ID).
 */
#ifndef MAILSNARE_MSG_BUILD_H
#define MAILSNARE_MSG_BUILD_H

#include <stddef.h>
#include <stdint.h>

struct msg_build_addr {
	const char *name;            /* NULL or "": none */
	const char *email;
};

struct msg_build_header {
	const char *name, *value;
};

struct msg_build_att {
	const char *filename;        /* NULL: none */
	const char *content_type;    /* NULL: guessed from nothing, application/octet-stream */
	const char *content_id;      /* not NULL: an inline part (cid:) */
	const void *data;
	size_t len;
};

struct msg_build {
	struct msg_build_addr from;
	const struct msg_build_addr *to, *cc, *reply_to;
	size_t nto, ncc, nreply_to;
	const char *subject;
	const char *text, *html;     /* NULL: none */
	const struct msg_build_header *headers;
	size_t nheaders;
	const char *const *tags;     /* written as X-Tags */
	size_t ntags;
	const struct msg_build_att *atts;
	size_t natts;
	const char *date;            /* an RFC 5322 date-time */
	const char *message_id;      /* without the angle brackets */
	uint64_t seed;               /* for the boundaries */
};

/* Limits of what is accepted. */
#define MSG_BUILD_ADDRS_MAX 1000
#define MSG_BUILD_HEADER_MAX 998     /* RFC 5322 §2.1.1 */

/* 0 with *out (malloc'd, *len bytes, NUL-terminated), or -1 with a
 * message in err: an address that is not one, a header name or value
 * that would break the header section (CR, LF, a name outside RFC 5322
 * ftext, a header mailsnare sets itself), or no memory. */
int msg_build(const struct msg_build *b, char **out, size_t *len, char *err, size_t errlen);

/* Is this a plain addr-spec (local@domain, printable ASCII, no spaces,
 * angle brackets, commas or quotes)? */
int msg_build_email_valid(const char *email);

#endif
