/*
 * FETCH attribute lists (RFC 3501 §6.4.5 and §9, RFC 3516 BINARY,
 * RFC 7162 MODSEQ/CHANGEDSINCE/VANISHED): from the generic argument tree
 * to a list of attributes with parsed sections, partials and the name to
 * echo in the FETCH response. Pure; never touches a mailbox.
 */
#ifndef MAILSNARE_IMAP_FETCHATTR_H
#define MAILSNARE_IMAP_FETCHATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailsnare/imap_parse.h"

#define IMAP_SECTION_MAX_PARTS 32

enum imap_fetch_item {
	IMAP_FETCH_FLAGS,
	IMAP_FETCH_INTERNALDATE,
	IMAP_FETCH_RFC822_SIZE,
	IMAP_FETCH_ENVELOPE,
	IMAP_FETCH_BODY,           /* non-extensible BODYSTRUCTURE */
	IMAP_FETCH_BODYSTRUCTURE,
	IMAP_FETCH_UID,
	IMAP_FETCH_RFC822,         /* = BODY[], sets \Seen */
	IMAP_FETCH_RFC822_HEADER,  /* = BODY.PEEK[HEADER] */
	IMAP_FETCH_RFC822_TEXT,    /* = BODY[TEXT], sets \Seen */
	IMAP_FETCH_MODSEQ,
	IMAP_FETCH_BODY_SECTION,   /* BODY[...] / BODY.PEEK[...] */
	IMAP_FETCH_BINARY,         /* BINARY[...] / BINARY.PEEK[...] */
	IMAP_FETCH_BINARY_SIZE     /* BINARY.SIZE[...] */
};

enum imap_section_text {
	IMAP_SECTION_ALL,          /* BODY[] or BODY[1.2]: the whole part */
	IMAP_SECTION_HEADER,
	IMAP_SECTION_HEADER_FIELDS,
	IMAP_SECTION_HEADER_FIELDS_NOT,
	IMAP_SECTION_TEXT,
	IMAP_SECTION_MIME          /* only after a part number */
};

struct imap_section {
	uint32_t part[IMAP_SECTION_MAX_PARTS];
	unsigned nparts;
	enum imap_section_text text;
	const char **fields;       /* HEADER.FIELDS[.NOT]: names as sent (they
	                              point into the command's arguments) */
	size_t nfields;
};

struct imap_fetch_att {
	enum imap_fetch_item item;
	bool peek;                 /* BODY.PEEK / BINARY.PEEK: no \Seen */
	struct imap_section section;
	bool partial;
	uint32_t offset, length;   /* <offset.length> */
	char *echo;                /* response name: "BODY[HEADER.FIELDS (From)]<0>" */
};

struct imap_fetch {
	struct imap_fetch_att *atts;
	size_t count;
	bool sets_seen;            /* a body item without PEEK: set \Seen */
	bool changedsince_set;
	uint64_t changedsince;     /* FETCH modifier CHANGEDSINCE (RFC 7162) */
	bool vanished;             /* UID FETCH modifier VANISHED (QRESYNC) */
};

/*
 * Parses FETCH's arguments after the sequence set: a macro (ALL, FAST,
 * FULL), one attribute, or a list of attributes, then optionally a list of
 * modifiers. uid says whether it is UID FETCH (VANISHED needs it). The
 * result refers to strings of the command, which must outlive it.
 * CHANGEDSINCE adds MODSEQ. Returns false with err set (BAD).
 */
bool imap_fetch_parse(const struct imap_arg *args, size_t nargs, bool uid,
    struct imap_fetch *out, struct imap_error *err);
void imap_fetch_free(struct imap_fetch *f);

/* Adds an attribute if missing (UID for UID FETCH, FLAGS after \Seen). */
bool imap_fetch_ensure(struct imap_fetch *f, enum imap_fetch_item item);

/* Parses the contents of one BODY[...]/BINARY[...] argument; on success
 * the caller frees out->fields. */
bool imap_fetch_parse_section(const struct imap_arg *sect, bool binary,
    struct imap_section *out, const char **errmsg);

#endif
