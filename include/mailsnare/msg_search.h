/*
 * Mailpit's search syntax (the HTTP API's /api/v1/search, DELETE of a
 * search, wait?query=, latest?query=), parsed into a list of terms that
 * all must hold; the store evaluates them (store_query.search,
 * store_message_matches).
 *
 *   terms      space-separated, ANDed; "double quotes" make a phrase (or
 *              a value with spaces: subject:"two words")
 *   -term      negation (also !term), as Mailpit: a lone "-" is a word
 *   to: from: cc: bcc: reply-to: subject: message-id:
 *              substring of that header (addresses: name and address as
 *              decoded); bcc: also the envelope recipients that are not
 *              in To or Cc (where a Bcc recipient shows up)
 *   addressed: any of To, From, Cc, Bcc, Reply-To
 *   tag:NAME   the message has the IMAP keyword NAME (case-insensitive)
 *   is:read is:unread is:tagged has:attachment(s) has:inline(s)
 *   larger:N smaller:N   size in bytes, N as 100, 10kb, 2M, 1.5m (k = 1024)
 *   before:D after:D     arrival time against a date (2024-05-01,
 *              2024-05-01 13:00[:00], 2024-05-01T13:00:00[Z|+02:00]), in
 *              the time zone given to the parser where it names none
 *   inbox:NAME           ours: messages of that inbox
 *   rcpt:ADDR            ours: substring of an SMTP envelope recipient
 *   anything else        a bare word (or phrase) in the subject, the
 *              addresses or the decoded text, through the full-text index
 *              (words match by prefix: "inv" finds "invoice")
 *
 * Case-insensitive for all of Unicode: values are case-folded here
 * (msg_search_fold, a table generated from Unicode's CaseFolding), and
 * the store folds what it compares them with the same way.
 *
 * Pure: no I/O. Bounded: at most MSG_SEARCH_MAX_QUERY bytes of query and
 * MSG_SEARCH_MAX_TERMS terms; beyond, an error.
 */
#ifndef MAILSNARE_MSG_SEARCH_H
#define MAILSNARE_MSG_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSG_SEARCH_MAX_QUERY 4096
#define MSG_SEARCH_MAX_TERMS 32

struct msg_search;                      /* a parsed query, opaque */

/* Parses Mailpit's search syntax. tz: IANA name or "" (UTC) for before:/after: dates.
 * Returns 0, or -1 with a one-line message in err (the API answers 400 with it). */
int msg_search_parse(const char *query, const char *tz, struct msg_search **out,
    char *err, size_t errlen);
void msg_search_free(struct msg_search *s);

/* What one term tests. */
enum msg_search_field {
	MSG_SEARCH_TEXT,            /* bare word or phrase: the full-text index */
	MSG_SEARCH_TO,
	MSG_SEARCH_FROM,
	MSG_SEARCH_CC,
	MSG_SEARCH_BCC,
	MSG_SEARCH_REPLY_TO,
	MSG_SEARCH_ADDRESSED,       /* To, From, Cc, Bcc or Reply-To */
	MSG_SEARCH_SUBJECT,
	MSG_SEARCH_MESSAGE_ID,
	MSG_SEARCH_TAG,             /* text: the keyword, folded */
	MSG_SEARCH_INBOX,           /* text: the inbox name as given (names are exact) */
	MSG_SEARCH_RCPT,            /* an envelope recipient */
	MSG_SEARCH_READ,            /* is:read; is:unread is its negation */
	MSG_SEARCH_TAGGED,          /* is:tagged: any keyword */
	MSG_SEARCH_ATTACHMENT,      /* has:attachment */
	MSG_SEARCH_INLINE,          /* has:inline */
	MSG_SEARCH_LARGER,          /* size > number */
	MSG_SEARCH_SMALLER,         /* size < number */
	MSG_SEARCH_BEFORE,          /* arrival <= number (unix time) */
	MSG_SEARCH_AFTER            /* arrival >= number */
};

struct msg_search_term {
	enum msg_search_field field;
	bool negated;               /* -term / !term */
	bool phrase;                /* TEXT: it was quoted (words in order) */
	const char *text;           /* text fields: NUL-terminated UTF-8, case-folded */
	size_t len;
	int64_t number;             /* LARGER/SMALLER: bytes; BEFORE/AFTER: unix time */
};

/* Whether the terms a message's state can change after delivery (is:read,
 * is:unread, tag:, is:tagged) hold for a message now read or not and
 * carrying these keywords (space-separated, as stored). The other terms
 * test what a message never changes. The search pool's answers are
 * re-checked with it: a snapshot found the ids, the rows are read later. */
bool msg_search_state_holds(const struct msg_search *s, bool read, const char *keywords);

size_t msg_search_nterms(const struct msg_search *s);
const struct msg_search_term *msg_search_term(const struct msg_search *s, size_t i);

/* Case-folds UTF-8 (simple folding, one code point to one): writes at
 * most outlen - 1 bytes and a NUL, never a partial character; invalid
 * bytes are copied as they are. Returns the length written. */
size_t msg_search_fold(const char *in, size_t len, char *out, size_t outlen);
/* Whether hay contains the already-folded needle, hay folded on the fly
 * (no allocation). An empty needle is contained in anything. */
bool msg_search_contains(const char *hay, size_t haylen, const char *needle, size_t nlen);

/* src/msg_search_tz.c, for the parser: a local time (its fields counted
 * as seconds since 1970 as if it were UTC) in the IANA zone tz ("" or
 * "UTC": UTC) to unix time, with that zone's offset at that time (DST
 * included); -1 if tz names no zone. The one part that reads files (the
 * zone database), kept out of the pure parser. */
int msg_search_tz_utc(const char *tz, int64_t local, int64_t *utc);

#endif
