/*
 * RFC 5322 / MIME header-field parsing over raw bytes, for the MIME scanner
 * (mime.h), the IMAP ENVELOPE/BODYSTRUCTURE writers and IMAP SEARCH/FETCH:
 *
 *  - iterating the fields of a header block, unfolding values;
 *  - Content-Type / Content-Disposition values: a token, then parameters
 *    with RFC 2231 continuations (name*0, name*1*) and charsets
 *    (name*=charset'lang'%XX) resolved;
 *  - RFC 5322 address lists: groups, quoted local parts, comments, routes;
 *  - RFC 2047 encoded words decoded to UTF-8 (for SEARCH);
 *  - BODY[HEADER.FIELDS (..)] / HEADER.FIELDS.NOT filtering.
 *
 * Pure: no I/O, no globals. Strings returned are malloc'd and NUL-terminated
 * (a NUL byte inside a header value ends it); free them with free() or the
 * matching *_free function.
 */
#ifndef MAILSNARE_MIME_HEADER_H
#define MAILSNARE_MIME_HEADER_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/* One field of a header block: name and raw value (after the colon, still
 * folded), and the exact bytes of the whole field including its line end. */
struct mime_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
	const char *start;
	size_t len;
};

/* Steps to the next field of hdr[0..len) from *pos (start at 0). Lines
 * without a colon are skipped; the empty line ends the block. Returns false
 * at the end. CRLF and bare LF line ends are both accepted. */
bool mime_header_next(const char *hdr, size_t len, size_t *pos, struct mime_field *f);

/* The value unfolded (CR and LF removed, the WSP after them kept), leading
 * and trailing white space trimmed, truncated to max bytes. malloc'd. */
char *mime_header_unfold(const char *value, size_t len, size_t max);

/* A MIME parameter. When the value came in RFC 2231 extended syntax,
 * charset is non-NULL (possibly "") and value holds the percent-decoded
 * bytes in that charset; lang is the language tag or NULL. */
struct mime_param {
	char *name; /* lowercased, without '*' suffixes */
	char *value;
	char *charset;
	char *lang;
};

void mime_params_free(struct mime_param *params, size_t n);

/*
 * Parses `token *(";" attribute "=" value)` (Content-Type, Content-
 * Disposition). *token gets the leading token lowercased (for Content-Type
 * "type/subtype", split by the caller) or NULL if there is none. Parameters
 * are resolved per RFC 2231; the first occurrence of a name wins, and an
 * RFC 2231 form wins over a plain one. Returns the parameter count.
 */
size_t mime_header_parse_params(const char *value, size_t len, char **token,
    struct mime_param **params);

/* Content-Type: *type and *subtype lowercased, or both NULL if the value is
 * not "type/subtype". Returns the parameter count. */
size_t mime_header_parse_content_type(const char *value, size_t len, char **type,
    char **subtype, struct mime_param **params);

/* One entry of an address list, as IMAP ENVELOPE lists them: a mailbox
 * (mailbox and host set), a group start (mailbox = group name, host NULL)
 * or a group end (mailbox and host NULL). name and adl may be NULL. */
struct mime_address {
	char *name;
	char *adl;
	char *mailbox;
	char *host;
};

/* Parses an RFC 5322 address list (groups, quoted strings, comments,
 * obsolete routes). A comment stands in for a missing display name. A
 * mailbox without a domain gets host "MISSING_DOMAIN", an empty local part
 * "MISSING_MAILBOX" (as Dovecot does). At most max entries. Returns the
 * count and *out (NULL when there is none; free with
 * mime_addresses_free). */
size_t mime_address_parse(const char *value, size_t len, size_t max, struct mime_address **out);
void mime_addresses_free(struct mime_address *a, size_t n);

/* Decodes RFC 2047 encoded words (B and Q, any charset iconv knows; UTF-8,
 * US-ASCII and ISO-8859-1 without iconv) to UTF-8; white space between
 * adjacent encoded words is dropped; other text is kept as is. The input
 * should be unfolded. Returns a malloc'd string, length in *outlen. */
char *mime_header_decode(const char *value, size_t len, size_t *outlen);

/* Converts text in `charset` (NULL or "" means as is) to UTF-8: body text
 * for SEARCH. Unknown charsets keep their bytes; bytes iconv cannot
 * convert become U+FFFD. malloc'd, length in *outlen; NULL on failure. */
char *mime_charset_to_utf8(const char *charset, const char *in, size_t len, size_t *outlen);

/*
 * BODY[HEADER.FIELDS (names)] and HEADER.FIELDS.NOT: appends to out the
 * exact bytes of every field of hdr[0..len) whose name is (exclude=false)
 * or is not (exclude=true) one of names (case-insensitive), then "\r\n".
 * hdr may include its terminating empty line. Returns the bytes appended,
 * or -1 if out refused them.
 */
long mime_header_filter(const char *hdr, size_t len, const char *const *names, size_t nnames,
    bool exclude, struct evbuffer *out);

#endif
