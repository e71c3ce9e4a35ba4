/*
 * MIME structure of a stored message (RFC 5322, RFC 2045/2046), computed
 * once at delivery by an incremental scanner and kept in the store as a
 * compact blob; IMAP FETCH BODY[section], ENVELOPE and BODYSTRUCTURE, POP3
 * TOP and the HTTP API read byte ranges of the stored message from it.
 *
 *   struct mime_scan *sc = mime_scan_new();
 *   mime_scan_feed(sc, chunk, n);      // any number of times, any split
 *   struct mime_part *root = mime_scan_finish(sc);   // frees sc
 *   mime_tree_serialize(root, &blob, &bloblen);      // -> store column
 *   root2 = mime_tree_parse(blob, bloblen);          // <- store column
 *   mime_part_free(root);
 *
 * The tree: the root is the message itself (its header is the message
 * header, its body the message body). A multipart part has its body parts
 * as children; a message/rfc822 part has exactly one child, the embedded
 * message (header and body of the inner message, flag MIME_PART_MESSAGE).
 * Offsets are absolute byte offsets in the stored message. Body sizes
 * follow RFC 2046: the line end before a boundary line belongs to the
 * boundary, not to the part. body_lines counts LF bytes of the body (as
 * Dovecot does).
 *
 * Memory stays bounded whatever the input: the scanner keeps one header of
 * at most MIME_MAX_HEADER bytes at a time (a field that does not fit is
 * skipped, offsets stay right), never a body; lines may be of any length.
 * Beyond MIME_MAX_DEPTH nested multipart/message parts, or for a multipart
 * without a usable boundary, the part is an opaque text/plain leaf
 * (MIME_PART_OPAQUE). Beyond MIME_MAX_PARTS parts, further boundaries of
 * the innermost multipart are body text.
 *
 * Pure: no I/O, no globals.
 */
#ifndef MAILSNARE_MIME_H
#define MAILSNARE_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailsnare/mime_header.h"

#define MIME_MAX_DEPTH 32
#define MIME_MAX_HEADER (64 * 1024)
#define MIME_MAX_PARTS 5000
#define MIME_MAX_BOUNDARY 200     /* RFC 2046 allows 70 */
#define MIME_MAX_VALUE (16 * 1024) /* a stored field value */

/* ENVELOPE source fields, in RFC 3501 order. */
enum mime_env_field {
	MIME_ENV_DATE,
	MIME_ENV_SUBJECT,
	MIME_ENV_FROM,
	MIME_ENV_SENDER,
	MIME_ENV_REPLY_TO,
	MIME_ENV_TO,
	MIME_ENV_CC,
	MIME_ENV_BCC,
	MIME_ENV_IN_REPLY_TO,
	MIME_ENV_MESSAGE_ID,
	MIME_ENV_COUNT
};

enum mime_part_flags {
	MIME_PART_MESSAGE = 1 << 0,   /* root or embedded message: env[] valid */
	MIME_PART_MULTIPART = 1 << 1, /* children are its body parts */
	MIME_PART_RFC822 = 1 << 2,    /* message/rfc822: one child, the message */
	MIME_PART_OPAQUE = 1 << 3,    /* too deep or no boundary: a leaf */
	MIME_PART_HDR_TRUNCATED = 1 << 4, /* fields skipped: MIME_MAX_HEADER */
	MIME_PART_NO_BLANK = 1 << 5,  /* header not ended by an empty line */
};

struct mime_part {
	uint64_t hdr_off, hdr_size;   /* header incl. its empty line */
	uint64_t body_off, body_size;
	uint64_t body_lines;
	uint32_t flags;

	char *type, *subtype;         /* lowercased; never NULL */
	struct mime_param *params;    /* Content-Type parameters */
	uint32_t nparams;
	char *id, *description, *encoding, *md5, *language, *location;
	char *disposition;            /* lowercased token */
	struct mime_param *disp_params;
	uint32_t ndisp_params;
	/* MIME_PART_MESSAGE only: the fields as they stand, unfolded; NULL
	 * if absent. */
	char *env[MIME_ENV_COUNT];

	struct mime_part *parent, *children, *next;
	uint32_t nchildren;
};

struct mime_scan;

struct mime_scan *mime_scan_new(void);
/* Never fails on malformed input; input after an allocation failure is
 * ignored and finish returns NULL. */
void mime_scan_feed(struct mime_scan *sc, const void *buf, size_t len);
/* Ends the input, frees the scanner, returns the tree (NULL only if memory
 * ran out). */
struct mime_part *mime_scan_finish(struct mime_scan *sc);
/* Frees a scanner without a result. */
void mime_scan_abort(struct mime_scan *sc);

/* One-shot scan of a whole message in memory. */
struct mime_part *mime_scan_buffer(const void *buf, size_t len);

void mime_part_free(struct mime_part *root);

/* The parameter `name` (lowercase) of a Content-Type, or NULL. */
const struct mime_param *mime_part_param(const struct mime_part *p, const char *name);

/*
 * Section numbers (RFC 3501 §6.4.5): "1.2.3" (digits and dots only; ""
 * is the root). In a multipart, n is its n-th body part; a message/rfc822
 * part's numbers are those of its embedded message; the only part of a
 * non-multipart message is "1" (that message node itself). Returns the
 * part, or NULL if the section does not exist or is malformed. For
 * BODY[n] use body_off/body_size, for BODY[n.MIME] hdr_off/hdr_size.
 */
const struct mime_part *mime_part_find(const struct mime_part *root, const char *section,
    size_t len);

/* For BODY[n.HEADER] and BODY[n.TEXT] (n not empty): the message whose
 * header and body they are, the one p encapsulates if p is message/rfc822,
 * otherwise NULL (also for a message node itself: "1.1" of a message/rfc822
 * part holding a message/rfc822 message is that inner part, and its HEADER
 * is the header of the message it holds). BODY[HEADER] is the root's. */
const struct mime_part *mime_part_message(const struct mime_part *p);

/* The message whose HEADER, HEADER.FIELDS[.NOT] or TEXT the section
 * prefix names (RFC 3501 §6.4.5): the root for "", else the message the
 * message/rfc822 part `section` encapsulates, at any depth; NULL if there
 * is no such part or it is not message/rfc822 (Dovecot answers an empty
 * string then). */
const struct mime_part *mime_section_message(const struct mime_part *root, const char *section,
    size_t len);

/* The envelope value of a message node (MIME_PART_MESSAGE), or NULL. */
const char *mime_part_env(const struct mime_part *msg, enum mime_env_field f);

/*
 * Blob form for the store: versioned, little-endian varints and
 * length-prefixed strings, parts in pre-order. serialize returns false
 * only when memory runs out (*buf is malloc'd). parse accepts exactly what
 * serialize writes and rejects truncated, garbled or inconsistent input
 * (offsets outside their parent, wrong child counts, over-deep trees).
 */
bool mime_tree_serialize(const struct mime_part *root, unsigned char **buf, size_t *len);
struct mime_part *mime_tree_parse(const void *blob, size_t len);

#endif
