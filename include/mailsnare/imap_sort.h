/*
 * SORT and THREAD (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO): the sort
 * keys of a message (base subject, sent date, address keys), their
 * comparison, and the ORDEREDSUBJECT and REFERENCES threading algorithms
 * with the THREAD response text. Pure: no I/O, no session; the caller
 * collects the header values of the messages and hands them in.
 *
 * String keys are compared as octets after folding: ASCII letters to upper
 * case (as the titlecase of i;unicode-casemap does) and the one-to-one
 * UTF-8 case pairs of mime_fold_utf8. That is an approximation of
 * i;unicode-casemap (RFC 5051) without its decomposition step.
 */
#ifndef MAILSNARE_IMAP_SORT_H
#define MAILSNARE_IMAP_SORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailsnare/imap_search.h"

/* Folds s[0..len) for comparison as described above, into a malloc'd
 * NUL-terminated string; NULL only when memory runs out. */
char *imap_sort_fold(const char *s, size_t len);

/*
 * The base subject of RFC 5256 §2.1 of a raw Subject value (NULL: no
 * Subject, gives ""): RFC 2047 words decoded, white space runs made one
 * space, then the "(fwd)" trailers, "Re:"/"Fw:"/"Fwd:" leaders, "[blob]"
 * prefixes and "[fwd: ...]" wrappers removed, folded as imap_sort_fold
 * does. *reply (may be NULL) tells whether a subj-refwd, a "(fwd)" trailer
 * or a "[fwd: ...]" wrapper was removed (the message is a reply or a
 * forward, RFC 5256 §3 step 5). malloc'd; NULL when memory runs out.
 */
char *imap_sort_base_subject(const char *subject, bool *reply);

/* An RFC 5322 date-time (also the obsolete forms: two-digit years, named
 * zones, comments, missing seconds or day name) to UTC seconds since the
 * epoch. false when it cannot be parsed. */
bool imap_sort_parse_date(const char *value, int64_t *t);

/* The key of an address header value: FROM, TO and CC sort on the
 * addr-mailbox (local part) of the first address; DISPLAYFROM and
 * DISPLAYTO (display = true) on the decoded display name of the first
 * address, or its addr-spec "mailbox@host" when it has none (RFC 5957).
 * No value or no address gives "". Folded; malloc'd, NULL on no memory. */
char *imap_sort_address_key(const char *value, bool display);

/* What the sort criteria compare, per message. */
struct imap_sort_msg {
	uint32_t seq;             /* message sequence number: the final tie-break */
	uint32_t id;              /* what the response names (MSN or UID) */
	int64_t arrival;          /* INTERNALDATE */
	int64_t date;             /* sent date (INTERNALDATE if no usable Date:) */
	uint64_t size;            /* RFC822.SIZE */
	const char *keys[IMAP_SORT_DISPLAYTO + 1];  /* string keys by criterion;
	                                               NULL counts as "" */
};

/* Orders two messages by the criteria, then by sequence number. */
int imap_sort_compare(const struct imap_sort_msg *a, const struct imap_sort_msg *b,
    const struct imap_sort_crit *crit, size_t ncrit);
/* Sorts msgs[0..n) in place, in one go. */
void imap_sort_msgs(struct imap_sort_msg *msgs, size_t n, const struct imap_sort_crit *crit,
    size_t ncrit);

/*
 * Work in steps. What may take long (ordering, threading, formatting) goes
 * on for a budget of work units per call, *budget counted down, and is
 * called again until it is done; the caller gives a loop pass's worth
 * (IMAP_SLICE_STEPS). A unit is one comparison of two keys (with the move
 * of one element), one node, reference or list entry visited, or one
 * message number written: each a few to a hundred nanoseconds. A call may
 * go past its budget by one node's children spliced or adopted (pointer
 * moves) and one walk up the tree (its depth), never more.
 */

/* Bottom-up merge sort of size_t elements: stable, so with a comparison
 * that orders all elements it gives what any correct sort does. tmp is
 * scratch of n elements; the state is carried between steps. */
typedef int (*imap_msort_cmp)(size_t a, size_t b, void *arg);
struct imap_msort {
	size_t *v, *tmp, n;
	imap_msort_cmp cmp;
	void *arg;
	size_t width;         /* of the runs being merged */
	size_t lo, i, j, k;   /* the pair of runs at lo: their heads, the output */
	bool in_tmp;          /* the runs of this width are in tmp */
};
void imap_msort_init(struct imap_msort *ms, size_t *v, size_t *tmp, size_t n,
    imap_msort_cmp cmp, void *arg);
/* true when v[0..n) is sorted. */
bool imap_msort_step(struct imap_msort *ms, uint64_t *budget);

/* The SORT order of msgs[0..n) (which must stay in place), in steps:
 * begin (NULL on no memory), step until it gives the order (indexes into
 * msgs, the same as imap_sort_msgs would put them; owned by o), end. */
struct imap_sort_order;
struct imap_sort_order *imap_sort_order_begin(const struct imap_sort_msg *msgs, size_t n,
    const struct imap_sort_crit *crit, size_t ncrit);
const size_t *imap_sort_order_step(struct imap_sort_order *o, uint64_t *budget);
void imap_sort_order_end(struct imap_sort_order *o);

/* One message for threading, given in ascending sequence-number order. */
struct imap_thread_msg {
	uint32_t id;              /* what the response names (MSN or UID) */
	int64_t date;             /* sent date */
	const char *subject;      /* base subject (imap_sort_base_subject); NULL = "" */
	bool reply;               /* its subject marked a reply or forward */
	const char *message_id;   /* raw Message-ID value, or NULL */
	const char *references;   /* raw References value, or NULL */
	const char *in_reply_to;  /* raw In-Reply-To value, or NULL */
};

/* The thread forest: node 0 is the root; a node is a message (msg >= 0,
 * an index into the input) or a dummy (msg = -1). Children in order. */
struct imap_thread_node {
	long msg;
	size_t parent;
	size_t *kids;
	size_t nkids, cap;
};

struct imap_thread {
	struct imap_thread_node *nodes;
	size_t n, cap;
};

/* Threads msgs[0..n) with algorithm alg into *out (free with
 * imap_thread_free), in one go. false only when memory runs out. */
bool imap_thread_build(const struct imap_thread_msg *msgs, size_t n, enum imap_thread_alg alg,
    struct imap_thread *out);
void imap_thread_free(struct imap_thread *t);

/* The THREAD response data, "(2)(3 6 (4 23)(44 7 96))" ("" for no
 * messages), naming messages by their id. malloc'd; NULL on no memory. */
char *imap_thread_format(const struct imap_thread *t, const struct imap_thread_msg *msgs);

/* The same in steps (see above), from msgs (which must stay in place) to
 * the response data: begin (NULL on no memory); step: 1 done, 0 the
 * budget is spent (call again), -1 no memory; then take the text
 * (malloc'd, *len its length, NULL if not done) and end. */
struct imap_thread_job;
struct imap_thread_job *imap_thread_begin(const struct imap_thread_msg *msgs, size_t n,
    enum imap_thread_alg alg);
int imap_thread_step(struct imap_thread_job *j, uint64_t *budget);
char *imap_thread_take_text(struct imap_thread_job *j, size_t *len);
void imap_thread_end(struct imap_thread_job *j);

/* The first msg-id "<...>" of a Message-ID, In-Reply-To or References
 * value from *pos on: its bounds in value, *pos moved past it. false when
 * there is none. */
bool imap_sort_next_msgid(const char *value, size_t *pos, const char **id, size_t *len);

#endif
