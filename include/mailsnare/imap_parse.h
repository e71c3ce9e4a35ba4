/*
 * IMAP command assembly and generic argument parsing (RFC 3501 §9,
 * RFC 9051 §9, RFC 7888 LITERAL+/LITERAL-, RFC 3516 literal8).
 *
 * Bytes in, a command (tag, verb, argument tree) or an error out. Never
 * touches a mailbox, never does I/O, keeps no global state.
 *
 * The reader is fed whatever arrived from the socket. It stops at each
 * event the session must act on and says how many bytes it consumed; the
 * caller drains those and feeds the rest again later. Splitting the input
 * at any byte offset gives the same events and the same commands.
 */
#ifndef MAILSNARE_IMAP_PARSE_H
#define MAILSNARE_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_TAG_MAX 64          /* longer tags are refused (untagged BAD) */
#define IMAP_VERB_MAX 32         /* "UID FETCH" and the like fit */
#define IMAP_ERRMSG_MAX 96
#define IMAP_LITERAL_MINUS_MAX 4096  /* RFC 7888 §4: LITERAL- bound */

/* Bounds of one command; all are enforced before memory is committed. */
struct imap_limits {
	size_t max_line;         /* octets of one line (between literals), CRLF excluded */
	uint64_t max_literal;    /* octets of one literal ({n}, {n+}, ~{n}) */
	uint64_t max_nonsync;    /* largest {n+}: UINT64_MAX with LITERAL+,
	                            IMAP_LITERAL_MINUS_MAX with LITERAL-, 0 = none */
	size_t max_command;      /* all lines and literals of a command together */
	unsigned max_depth;      /* nesting of parenthesised lists */
	unsigned max_args;       /* argument nodes in the whole tree */
	bool allow_8bit_quoted;  /* 8-bit octets in quoted strings (UTF8=ACCEPT) */
	/* When set and true at the time a command is parsed, quoted strings
	 * must be valid UTF-8 (RFC 6855 §3, RFC 9051 uQUOTED-CHAR): a tagged
	 * BAD otherwise. It points at the session's own flag so that ENABLE
	 * UTF8=ACCEPT (or IMAP4rev2) takes effect from the next command on. */
	const bool *utf8_quoted;
};

/* Dovecot's default imap_max_line_length: ID with RFC 2971's own bounds
 * (30 pairs of 1,024-octet values) fits in one line with room to spare. */
#define IMAP_LINE_MAX_DEFAULT (64u * 1024)

/* 64 KiB lines, 32 MB literals, LITERAL+, depth 16, 10000 args, 8-bit
 * quoted, no UTF-8 check. */
void imap_limits_default(struct imap_limits *lim);

/* Valid UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above
 * U+10FFFF)? */
bool imap_utf8_valid(const void *s, size_t len);

enum imap_err {
	IMAP_ERR_NONE = 0,
	IMAP_ERR_SYNTAX,          /* tagged BAD */
	IMAP_ERR_BAD_TAG,         /* no usable tag: untagged "* BAD" */
	IMAP_ERR_LINE_TOO_LONG,   /* BAD [TOOBIG]; the rest of the command is skipped */
	IMAP_ERR_LITERAL_TOO_BIG, /* NO [TOOBIG] before a sync literal is read (no "+") */
	IMAP_ERR_NONSYNC_TOO_BIG, /* BAD [TOOBIG] (LITERAL-); its data is skipped */
	IMAP_ERR_NONSYNC_REFUSED, /* {n+} when non-sync literals are off: BAD */
	IMAP_ERR_COMMAND_TOO_BIG, /* all parts together over max_command: BAD [TOOBIG] */
	IMAP_ERR_TOO_DEEP,        /* lists nested over max_depth: BAD */
	IMAP_ERR_TOO_MANY_ARGS,   /* more than max_args nodes: BAD */
	IMAP_ERR_BADCHARSET,      /* SEARCH CHARSET not supported: NO [BADCHARSET (UTF-8 US-ASCII)] */
	IMAP_ERR_NOMEM
};

struct imap_error {
	enum imap_err code;
	char tag[IMAP_TAG_MAX + 1];   /* "" when unknown: reply untagged */
	char msg[IMAP_ERRMSG_MAX];    /* short text to put after BAD/NO */
};

/* Names the response code an error maps to ("TOOBIG", "BADCHARSET (UTF-8
 * US-ASCII)") or NULL, and whether it is a NO rather than a BAD. */
const char *imap_err_resp_code(enum imap_err code);
bool imap_err_is_no(enum imap_err code);

enum imap_arg_type {
	IMAP_ARG_ATOM,      /* also NIL, numbers, seq-sets, \Flags, wildcards */
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,   /* {n}, {n+}, or ~{n} (see IMAP_AF_LITERAL8) */
	IMAP_ARG_LIST,      /* ( ... ) */
	IMAP_ARG_SECTION    /* BODY[...]<...> and its BINARY/PEEK relatives */
};

/* What an atom-like token or string holds (imap_arg.flags). */
#define IMAP_AF_WILDCARD  0x01u   /* '*' or '%' (list-wildcards, seq-set '*') */
#define IMAP_AF_RESP      0x02u   /* ']' (allowed in astring only) */
#define IMAP_AF_FLAG      0x04u   /* starts with '\' (flag / flag-extension) */
#define IMAP_AF_8BIT      0x08u   /* octets >= 0x80 */
#define IMAP_AF_NUL       0x10u   /* a NUL octet (literal8 only is allowed that) */
#define IMAP_AF_LITERAL8  0x20u   /* ~{n} */
#define IMAP_AF_NONSYNC   0x40u   /* {n+} */
#define IMAP_AF_STREAMED  0x80u   /* its octets went to the reader's sink: str is "", len
                                     says how many there were (never a string) */

struct imap_arg {
	enum imap_arg_type type;
	unsigned flags;
	const char *str;            /* NUL-terminated value; name before '[' for a SECTION */
	size_t len;                 /* octets of str (binary-safe for literals) */
	const struct imap_arg *list; /* LIST children; SECTION: contents of [...] */
	size_t count;
	const char *partial;        /* SECTION: text after ']' ("" or "<o.n>") */
};

struct imap_command {
	char tag[IMAP_TAG_MAX + 1];
	char verb[IMAP_VERB_MAX + 1]; /* upper-cased; "UID FETCH" for UID commands */
	bool uid;
	const struct imap_arg *args;  /* arguments after the verb */
	size_t nargs;
	/* private */
	char *raw;                    /* the command as assembled */
	char *pool;                   /* unescaped values */
	struct imap_arg *nodes;       /* every list's children, one allocation */
};

void imap_command_free(struct imap_command *cmd);

enum imap_read_rc {
	IMAP_READ_MORE = 0,   /* everything consumed, feed more when it comes */
	IMAP_READ_CONTINUE,   /* a sync literal was accepted: send "+ ..." now */
	IMAP_READ_COMMAND,    /* a command is complete: imap_reader_take() */
	IMAP_READ_ERROR       /* imap_reader_error(): reply; the reader goes on */
};

struct imap_reader;

struct imap_reader *imap_reader_new(const struct imap_limits *lim);
void imap_reader_free(struct imap_reader *r);
/* Limits may change between commands (after ENABLE, AUTHENTICATE, ...). */
void imap_reader_set_limits(struct imap_reader *r, const struct imap_limits *lim);

/*
 * Consumes bytes up to the next event, sets *consumed, and returns it.
 * After IMAP_READ_ERROR the bytes of the failed command that are still to
 * come are skipped by later calls (up to the end of its line, and over the
 * data of non-synchronising literals); a refused sync literal ends the
 * command at once, since the client waits for "+" that never comes.
 * An empty line is ignored.
 */
enum imap_read_rc imap_reader_feed(struct imap_reader *r, const void *data, size_t len,
    size_t *consumed);

/* The complete command after IMAP_READ_COMMAND; the caller frees it. */
struct imap_command *imap_reader_take(struct imap_reader *r);
const struct imap_error *imap_reader_error(const struct imap_reader *r);
/*
 * Literals that do not wait in memory (APPEND's messages: a 30 MB message
 * goes to a spool as it arrives). When a literal is accepted, open() is
 * asked with the command so far (cmd[0..len), ending with the literal's
 * "{n}" announcement, CRLF excluded), its size and whether it is a
 * literal8; if it returns true, the literal's octets go to data() as they
 * come (in pieces of any size) instead of into the command, and its
 * argument gets IMAP_AF_STREAMED. The sink keeps what it took in order;
 * the command that comes out (or the error, after which it is dropped)
 * is the one they belong to. Limits apply as to any literal.
 */
struct imap_literal_sink {
	bool (*open)(void *arg, const char *cmd, size_t len, uint64_t size, bool literal8);
	void (*data)(void *arg, const void *buf, size_t len);
	void *arg;
};
/* NULL: no sink (every literal is kept in the command). */
void imap_reader_set_sink(struct imap_reader *r, const struct imap_literal_sink *sink);

/* After IMAP_READ_CONTINUE: the size of the literal being read. */
uint64_t imap_reader_literal_size(const struct imap_reader *r);
/* Tag and verb of the command being assembled ("" if not yet known), so a
 * session may refuse a command before sending "+". */
const char *imap_reader_tag(const struct imap_reader *r);
const char *imap_reader_verb(const struct imap_reader *r);
/* True between commands (nothing of a command buffered or skipped). */
bool imap_reader_idle(const struct imap_reader *r);

/*
 * Parses one complete command held in memory (lines with CRLF or LF and
 * literal data following each "{n}" line, no continuation handshake).
 * Handy for tests and for the session's own synthesized commands.
 */
int imap_parse_command(const struct imap_limits *lim, const void *data, size_t len,
    struct imap_command **out, struct imap_error *err);

/* Character classes of RFC 3501 §9. */
bool imap_is_atom_char(unsigned char c);
bool imap_is_astring_char(unsigned char c);
bool imap_is_tag_char(unsigned char c);
bool imap_is_list_char(unsigned char c);

/* Typed access to arguments; each returns false if the form does not fit. */
bool imap_arg_is_nil(const struct imap_arg *a);
bool imap_arg_atom(const struct imap_arg *a, const char **s);
bool imap_arg_astring(const struct imap_arg *a, const char **s, size_t *len);
bool imap_arg_string(const struct imap_arg *a, const char **s, size_t *len);
bool imap_arg_nstring(const struct imap_arg *a, const char **s, size_t *len);
bool imap_arg_list_mailbox(const struct imap_arg *a, const char **s, size_t *len);
bool imap_arg_list(const struct imap_arg *a, const struct imap_arg **items, size_t *n);
bool imap_arg_number(const struct imap_arg *a, uint32_t *out);      /* nz-number too */
bool imap_arg_number64(const struct imap_arg *a, uint64_t *out);    /* 63-bit modseq */
/* A flag: \Seen, \Answered, ..., \Extension or a keyword atom; \* only if
 * allow_perm (PERMANENTFLAGS), \Recent never for STORE (caller's choice). */
bool imap_arg_flag(const struct imap_arg *a, bool allow_perm, const char **s);
bool imap_arg_equals(const struct imap_arg *a, const char *word); /* atom, case-insens. */

/* Decimal without sign, up to max: true on success (number, nz-number). */
bool imap_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out);

/* Mailbox names: INBOX is case-insensitive (RFC 3501 §5.1), also as the
 * first level of a hierarchy with delimiter delim. Writes the canonical
 * name ("INBOX", "INBOX/sub") into out; false if it does not fit. */
bool imap_mailbox_is_inbox(const char *name);
bool imap_mailbox_canonical(const char *name, char delim, char *out, size_t outsize);

#endif
