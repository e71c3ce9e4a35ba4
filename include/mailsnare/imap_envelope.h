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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct evbuffer;
struct mime_part;

/*
 * A growing byte buffer. FETCH builds each response in one and hands it
 * to the connection in one write: an evbuffer append costs a lock and a
 * callback each, and ENVELOPE/BODYSTRUCTURE are hundreds of small pieces.
 * An allocation failure sets `failed`; later appends are ignored.
 */
struct imap_buf {
	char *p;
	size_t len, cap;
	bool failed;
};

/* Room for n more bytes; false (and failed set) if memory ran out. */
bool imap_buf_grow(struct imap_buf *b, size_t n);
void imap_buf_free(struct imap_buf *b);

static inline void imap_buf_add(struct imap_buf *b, const void *d, size_t n)
{
	if (n == 0 || (n > b->cap - b->len && !imap_buf_grow(b, n)))
		return;
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static inline void imap_buf_addc(struct imap_buf *b, char c)
{
	if (b->len == b->cap && !imap_buf_grow(b, 1))
		return;
	b->p[b->len++] = c;
}

#define IMAP_BUF_LIT(b, s) imap_buf_add(b, s, sizeof(s) - 1)

/* A decimal number. */
void imap_buf_num(struct imap_buf *b, uint64_t v);
/* An nstring (see imap_envelope_write_nstring); a NUL-terminated one. */
void imap_buf_nstring(struct imap_buf *b, const char *s, size_t len);
void imap_buf_cstring(struct imap_buf *b, const char *s);

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
/* The same into a buffer (what FETCH uses); false if memory ran out. */
bool imap_envelope_format(const struct mime_part *msg, struct imap_buf *b);

/* Just one address list, "((...)(...))" or NIL (for tests and SEARCH). */
int imap_envelope_write_addresses(const char *value, struct evbuffer *out);

#endif
