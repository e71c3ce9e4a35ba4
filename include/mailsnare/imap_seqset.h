/*
 * IMAP sequence sets (RFC 3501 §9 sequence-set, RFC 9051, RFC 5182 "$"):
 * parsing, evaluation against a mailbox size or highest UID, normalisation
 * to sorted disjoint ranges, iteration and formatting. Pure functions.
 */
#ifndef MAILSNARE_IMAP_SEQSET_H
#define MAILSNARE_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* '*' as an endpoint of a parsed (not yet evaluated) range: above any
 * 32-bit number, so 4294967295 stays an ordinary nz-number. */
#define IMAP_SEQ_STAR ((uint64_t)1 << 32)

struct imap_seq_range {
	uint64_t lo, hi;   /* as sent (lo may exceed hi, may be IMAP_SEQ_STAR);
	                      after evaluation: 1 <= lo <= hi <= UINT32_MAX */
};

struct imap_seqset {
	struct imap_seq_range *ranges;
	size_t count, cap;
	bool saved;        /* "$": the saved search result (SEARCHRES) */
};

enum imap_seq_rc {
	IMAP_SEQ_OK = 0,
	IMAP_SEQ_ERR_SYNTAX,    /* malformed, 0, number over 2^32-1: BAD */
	IMAP_SEQ_ERR_TOO_MANY,  /* more ranges than allowed: BAD */
	IMAP_SEQ_ERR_RANGE,     /* message number beyond the mailbox (out holds the
	                           clamped set if the session wants to be lenient) */
	IMAP_SEQ_ERR_EMPTY,     /* message numbers used on an empty mailbox */
	IMAP_SEQ_ERR_NOMEM
};

enum imap_seq_mode {
	IMAP_SEQ_MSN,   /* message sequence numbers: '*' = message count */
	IMAP_SEQ_UID    /* UIDs: '*' = highest UID; absent UIDs are no error */
};

void imap_seqset_init(struct imap_seqset *set);
void imap_seqset_free(struct imap_seqset *set);
void imap_seqset_clear(struct imap_seqset *set);

/* Parses "1", "1:*", "*:4", "2,4:7,9" or "$"; at most max_ranges ranges. */
enum imap_seq_rc imap_seqset_parse(const char *s, size_t len, size_t max_ranges,
    struct imap_seqset *out);

/* Appends a range (endpoints in any order) without normalising. */
enum imap_seq_rc imap_seqset_add(struct imap_seqset *set, uint64_t lo, uint64_t hi);
/* Sorts and merges overlapping and adjacent ranges. */
void imap_seqset_normalize(struct imap_seqset *set);

/*
 * Resolves '*' to max (message count, or highest UID; 0 = empty mailbox),
 * "$" to *saved (NULL = nothing saved: the empty set), orders each range,
 * and normalises into out (initialised by the caller, cleared here).
 * MSN: any number over max is IMAP_SEQ_ERR_RANGE; anything on an empty
 * mailbox is IMAP_SEQ_ERR_EMPTY. UID: "n:*" always holds the highest UID
 * (RFC 9051 §6.4.8), UIDs over it are dropped, an empty mailbox gives an
 * empty set.
 */
enum imap_seq_rc imap_seqset_eval(const struct imap_seqset *in, enum imap_seq_mode mode,
    uint32_t max, const struct imap_seqset *saved, struct imap_seqset *out);

/* On a normalised set. */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);
uint64_t imap_seqset_count(const struct imap_seqset *set);

/* Formats a normalised set as "1:3,7" (ESEARCH ALL, COPYUID). Returns the
 * length, or the size needed (like snprintf) when it does not fit. */
size_t imap_seqset_format(const struct imap_seqset *set, char *buf, size_t size);

struct imap_seq_iter {
	const struct imap_seqset *set;
	size_t i;
	uint64_t next;
};

void imap_seq_iter_init(struct imap_seq_iter *it, const struct imap_seqset *set);
bool imap_seq_iter_next(struct imap_seq_iter *it, uint32_t *n);

#endif
