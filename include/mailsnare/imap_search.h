/*
 * SEARCH programs into an AST (RFC 3501 §6.4.4 and §9, RFC 9051, RFC 4731
 * ESEARCH RETURN, RFC 5182 SEARCHRES "$" and SAVE, RFC 7162 MODSEQ), SORT
 * criteria (RFC 5256, RFC 5267 ESORT) and THREAD algorithms. Parsing only
 * (and the text an address key matches, a pure function): evaluation
 * belongs to the session and the store.
 */
#ifndef MAILSNARE_IMAP_SEARCH_H
#define MAILSNARE_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailsnare/imap_date.h"
#include "mailsnare/imap_parse.h"
#include "mailsnare/imap_seqset.h"

enum imap_search_key {
	/* no argument */
	IMAP_SK_ALL, IMAP_SK_ANSWERED, IMAP_SK_DELETED, IMAP_SK_DRAFT, IMAP_SK_FLAGGED,
	IMAP_SK_NEW, IMAP_SK_OLD, IMAP_SK_RECENT, IMAP_SK_SEEN, IMAP_SK_UNANSWERED,
	IMAP_SK_UNDELETED, IMAP_SK_UNDRAFT, IMAP_SK_UNFLAGGED, IMAP_SK_UNSEEN,
	/* str: a flag keyword */
	IMAP_SK_KEYWORD, IMAP_SK_UNKEYWORD,
	/* str (astring, len) */
	IMAP_SK_BCC, IMAP_SK_BODY, IMAP_SK_CC, IMAP_SK_FROM, IMAP_SK_SUBJECT,
	IMAP_SK_TEXT, IMAP_SK_TO,
	IMAP_SK_HEADER,                 /* field, str */
	/* date */
	IMAP_SK_BEFORE, IMAP_SK_ON, IMAP_SK_SINCE,
	IMAP_SK_SENTBEFORE, IMAP_SK_SENTON, IMAP_SK_SENTSINCE,
	/* number */
	IMAP_SK_LARGER, IMAP_SK_SMALLER,
	IMAP_SK_MODSEQ,                 /* number; field/modseq_type if given */
	/* set (as sent, evaluated later with imap_seqset_eval) */
	IMAP_SK_SEQSET, IMAP_SK_UID,
	/* children */
	IMAP_SK_AND,                    /* parenthesised group, and the program */
	IMAP_SK_OR,                     /* exactly two */
	IMAP_SK_NOT                     /* exactly one */
};

enum imap_modseq_type { IMAP_MODSEQ_ANY, IMAP_MODSEQ_PRIV, IMAP_MODSEQ_SHARED, IMAP_MODSEQ_ALL };

struct imap_search_node {
	enum imap_search_key key;
	const char *str;                /* points into the command's arguments */
	size_t len;
	const char *field;              /* HEADER field; MODSEQ entry name */
	struct imap_date date;
	uint64_t number;
	enum imap_modseq_type modseq_type;
	struct imap_seqset set;
	struct imap_search_node *children;
	size_t nchildren;
};

/* ESEARCH RETURN options (RFC 4731, RFC 5182 SAVE). */
#define IMAP_SEARCH_RET_MIN   0x01u
#define IMAP_SEARCH_RET_MAX   0x02u
#define IMAP_SEARCH_RET_ALL   0x04u
#define IMAP_SEARCH_RET_COUNT 0x08u
#define IMAP_SEARCH_RET_SAVE  0x10u

struct imap_search {
	struct imap_search_node root;   /* IMAP_SK_AND of the program's keys */
	bool esearch;                   /* RETURN was given: answer with ESEARCH */
	unsigned ret;                   /* RET_* bits; RETURN () means ALL */
	bool utf8;                      /* CHARSET UTF-8 (or none given) */
	bool modseq;                    /* a MODSEQ key: reply with (MODSEQ n) */
	bool uses_saved;                /* "$" somewhere in the program */
};

/* Parse options: SEARCH allows RETURN and an optional CHARSET; SORT and
 * THREAD pass IMAP_SEARCH_CHARSET_REQUIRED (and no RETURN: their caller
 * parses it before the criteria). */
#define IMAP_SEARCH_CHARSET_REQUIRED 0x01u
#define IMAP_SEARCH_NO_RETURN        0x02u

struct imap_search_limits {
	unsigned max_depth;             /* nesting of (), NOT and OR */
	size_t max_ranges;              /* ranges of one sequence set */
	unsigned flags;                 /* IMAP_SEARCH_* */
};

/*
 * Parses SEARCH's arguments: [RETURN (opts)] [CHARSET cs] key *(SP key).
 * Errors: IMAP_ERR_SYNTAX (BAD), IMAP_ERR_BADCHARSET (NO [BADCHARSET
 * (UTF-8 US-ASCII)]), IMAP_ERR_TOO_DEEP. The result refers to the
 * command's strings; free it with imap_search_free.
 */
bool imap_search_parse(const struct imap_arg *args, size_t nargs,
    const struct imap_search_limits *lim, struct imap_search *out, struct imap_error *err);
void imap_search_free(struct imap_search *s);

/*
 * The text SEARCH FROM, TO, CC and BCC match in one (unfolded) address
 * header value, as Dovecot matches the address list it parsed and wrote
 * back: "name <mailbox@host>" or "mailbox@host" per address, ", " between
 * them, a group as "name: ...;". Comments, quoting and the white space
 * allowed inside an addr-spec are gone; names are RFC 2047-decoded.
 * *exact is false when some address lacked its local part or domain (the
 * value is not all addresses: the caller may also match it as text).
 * malloc'd, length in *outlen; NULL on no memory.
 */
char *imap_search_address_text(const char *value, size_t len, size_t *outlen, bool *exact);

/* "RETURN (...)" options list alone (for ESORT too); false on BAD. */
bool imap_search_parse_return(const struct imap_arg *list, unsigned *ret, struct imap_error *err);

enum imap_sort_key {
	IMAP_SORT_ARRIVAL, IMAP_SORT_CC, IMAP_SORT_DATE, IMAP_SORT_FROM,
	IMAP_SORT_SIZE, IMAP_SORT_SUBJECT, IMAP_SORT_TO,
	IMAP_SORT_DISPLAYFROM, IMAP_SORT_DISPLAYTO   /* RFC 5957 */
};

struct imap_sort_crit {
	enum imap_sort_key key;
	bool reverse;
};

/* "(REVERSE DATE SUBJECT)": at most max criteria into out[]. */
bool imap_sort_parse(const struct imap_arg *list, struct imap_sort_crit *out, size_t max,
    size_t *n, struct imap_error *err);

enum imap_thread_alg { IMAP_THREAD_ORDEREDSUBJECT, IMAP_THREAD_REFERENCES };

bool imap_thread_parse(const struct imap_arg *a, enum imap_thread_alg *alg,
    struct imap_error *err);

#endif
