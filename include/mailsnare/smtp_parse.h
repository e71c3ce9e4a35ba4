/*
 * SMTP command-line parsing (RFC 5321 §4.1, RFC 1870, RFC 6152, RFC 6531,
 * RFC 4954, RFC 3030). Pure functions over one command line without its
 * CRLF: no sockets, no store.
 */
#ifndef MAILSNARE_SMTP_PARSE_H
#define MAILSNARE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1: 64 local-part, 255 domain, 256 path octets. */
#define SMTP_PATH_MAX 256

enum smtp_verb {
	SMTP_CMD_UNKNOWN = 0,
	SMTP_CMD_HELO, SMTP_CMD_EHLO, SMTP_CMD_MAIL, SMTP_CMD_RCPT, SMTP_CMD_DATA,
	SMTP_CMD_BDAT, SMTP_CMD_RSET, SMTP_CMD_NOOP, SMTP_CMD_QUIT, SMTP_CMD_VRFY,
	SMTP_CMD_EXPN, SMTP_CMD_HELP, SMTP_CMD_STARTTLS, SMTP_CMD_AUTH,
	SMTP_CMD_COUNT
};

/* Splits a command line: returns the verb (case-insensitive) and points
 * *args at its arguments with leading spaces skipped ("" if none). */
enum smtp_verb smtp_parse_verb(const char *line, const char **args);
const char *smtp_verb_name(enum smtp_verb verb);

enum smtp_path_rc {
	SMTP_PATH_OK = 0,
	SMTP_PATH_SYNTAX,   /* not "FROM:<...>" / "TO:<...>" at all (501 5.5.4) */
	SMTP_PATH_BADADDR,  /* the address inside is malformed (501 5.1.7/5.1.3) */
	SMTP_PATH_TOOLONG   /* beyond RFC 5321 limits (501 5.1.7/5.1.3) */
};

struct smtp_path {
	char addr[SMTP_PATH_MAX + 1];  /* mailbox without brackets; "" for <> */
	bool utf8;                     /* has non-ASCII octets (needs SMTPUTF8) */
	const char *params;            /* ESMTP parameters after the path */
};

/*
 * Parses "FROM:<path> params" (keyword "FROM") or "TO:<path> params"
 * (keyword "TO"). Tolerates a space after the colon and, as real clients
 * still send them, a path without angle brackets. An empty path <> is only
 * valid when allow_null. Source routes (@a,@b:) are accepted and dropped
 * (RFC 5321 §4.1.1.3). For RCPT, the bare <postmaster> is valid.
 */
enum smtp_path_rc smtp_parse_path(const char *args, const char *keyword, bool allow_null,
    struct smtp_path *out);

/* Checks a mailbox "local@domain": dot-string or quoted local part,
 * domain name or address literal, UTF-8 allowed. */
bool smtp_mailbox_valid(const char *addr);

/*
 * ESMTP parameters, "KEY[=VALUE]" separated by spaces: each call puts the
 * next into key/value (upper-cased key, value as sent, "" if none) and
 * advances *p. Returns 1 for a parameter, 0 at the end, -1 on syntax error
 * (empty key, key or value too long, control characters).
 */
int smtp_parse_param(const char **p, char *key, size_t keysize, char *value, size_t valuesize);

/* "BDAT size [LAST]": 0 on success. */
int smtp_parse_bdat(const char *args, uint64_t *size, bool *last);

/* Decimal number without sign, no overflow: 0 on success. */
int smtp_parse_u64(const char *s, uint64_t *out);

#endif
