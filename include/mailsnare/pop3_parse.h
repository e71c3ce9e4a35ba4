/*
 * POP3 pure parts (RFC 1939, RFC 2449, RFC 5034): the command-line parser,
 * the byte-stuffing encoder of multi-line responses, and the TOP line
 * counter. No sockets, no store: bytes in, results out, so each is
 * unit-tested with byte strings split at every offset.
 */
#ifndef MAILSNARE_POP3_PARSE_H
#define MAILSNARE_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 2449 §4: a command line is at most 255 octets including its CRLF. */
#define POP3_COMMAND_LINE_MAX 255
/* SASL responses and AUTH with an initial response may be longer (RFC
 * 5034 §4 only asks clients to keep the AUTH line short); still bounded. */
#define POP3_AUTH_LINE_MAX 2048
/* Message numbers are bounded well below what any client could use. */
#define POP3_MSGNO_MAX 1000000000u

enum pop3_verb {
	POP3_CMD_UNKNOWN = 0,
	POP3_CMD_USER, POP3_CMD_PASS, POP3_CMD_APOP, POP3_CMD_AUTH, POP3_CMD_STLS,
	POP3_CMD_CAPA, POP3_CMD_QUIT, POP3_CMD_STAT, POP3_CMD_LIST, POP3_CMD_RETR,
	POP3_CMD_DELE, POP3_CMD_NOOP, POP3_CMD_RSET, POP3_CMD_TOP, POP3_CMD_UIDL,
	POP3_CMD_COUNT
};

/* Splits a command line (without CRLF): returns the verb (case-insensitive;
 * it must be followed by a space or the end of the line) and points *args
 * at its arguments with leading spaces skipped ("" if none). */
enum pop3_verb pop3_parse_verb(const char *line, const char **args);
const char *pop3_verb_name(enum pop3_verb verb);

/*
 * Reads a message number (1..POP3_MSGNO_MAX, decimal digits only) from *p
 * and advances *p past it and the spaces after it. Returns 0, or -1 on a
 * missing, malformed or out-of-range number.
 */
int pop3_parse_msgno(const char **p, uint32_t *out);
/* A non-negative decimal count (TOP's line count): 0..UINT64_MAX. */
int pop3_parse_count(const char **p, uint64_t *out);

/*
 * Splits "ARG1 [ARG2]" into two words for APOP and AUTH: word1 (up to
 * size1-1 chars) and the rest after one or more spaces (may be ""), with
 * trailing spaces dropped. Returns 0, or -1 if word1 is empty or too long,
 * or rest does not fit.
 */
int pop3_parse_two_words(const char *args, char *word1, size_t size1,
    char *rest, size_t restsize);

/*
 * Byte-stuffing of a multi-line response body (RFC 1939 §3): a line that
 * starts with "." gets another "." in front. The state carries across
 * chunk boundaries, so a message can be fed in any pieces. A line starts
 * at the beginning and after every LF (stored messages end lines in CRLF;
 * a bare LF is treated as a line end too, as line-oriented clients do).
 */
typedef int (*pop3_emit)(void *arg, const void *buf, size_t len);

enum pop3_stuff_state {
	POP3_STUFF_BOL,  /* at the start, or after CRLF */
	POP3_STUFF_LF,   /* after a bare LF: a line start, but not CRLF-ended */
	POP3_STUFF_CR,   /* after a CR */
	POP3_STUFF_MID   /* inside a line */
};

struct pop3_stuff {
	enum pop3_stuff_state state;
};

void pop3_stuff_init(struct pop3_stuff *st);
/* Emits buf with stuffing; a non-zero return from emit stops and is
 * returned. */
int pop3_stuff_feed(struct pop3_stuff *st, const void *buf, size_t len,
    pop3_emit emit, void *arg);
/* Ends the response: CRLF if the data did not end in CRLF, then ".CRLF". */
int pop3_stuff_finish(struct pop3_stuff *st, pop3_emit emit, void *arg);

/*
 * TOP msg n (RFC 1939 §7): the header section, the blank line after it,
 * and then n lines of the body. pop3_top_feed returns how many bytes of
 * buf belong to the response; once `done` is set, nothing more does.
 * A message without a blank line is all header and is sent whole.
 */
enum pop3_top_state {
	POP3_TOP_HDR_BOL,   /* at the start of a header line */
	POP3_TOP_HDR_CR,    /* a CR at the start of a header line */
	POP3_TOP_HDR_MID,   /* inside a header line */
	POP3_TOP_BODY       /* in the body, counting lines */
};

struct pop3_top {
	enum pop3_top_state state;
	uint64_t lines_left;
	bool done;
};

void pop3_top_init(struct pop3_top *t, uint64_t lines);
size_t pop3_top_feed(struct pop3_top *t, const void *buf, size_t len);

#endif
