/*
 * LIST and LSUB: RFC 3501 §6.3.8-9, extended by LIST-EXTENDED (RFC 5258:
 * selection and return options, several patterns), LIST-STATUS (RFC
 * 5819), SPECIAL-USE (RFC 6154) and CHILDREN (RFC 3348).
 *
 * A LIST works in slices across loop passes (struct imap_pending, struct
 * list_job): it reads the inbox's mailboxes and subscriptions a page at a
 * time, sorts them (a merge sort that can stop after any move), marks
 * what lies below each, then matches and answers. A slice is worth
 * LIST_SLICE_STEPS matcher steps (the other work counted in their
 * equivalents) or LIST_SLICE_NS, whichever comes first, and the answer
 * waits while the client has not read what was sent.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailsnare/imap_match.h"
#include "imap_session.h"

#define LIST_MAX_PATTERNS 16
/* A slice: this many steps of the matcher (an octet of a name against a
 * position of a pattern), a few milliseconds; an entry costs
 * LIST_ENTRY_STEPS besides (about 1 us of CPU on the project's VM), a
 * STATUS reply from the kept counts LIST_COUNTS_STEPS (one row: 3-4 us),
 * one counted over the messages LIST_STATUS_STEPS (and more: a mailbox of
 * 20,000 messages is a few ms of one slice by itself). */
#define LIST_SLICE_STEPS (1u << 20)
#define LIST_ENTRY_STEPS 256u
#define LIST_COUNTS_STEPS 2048u
#define LIST_STATUS_STEPS 16384u
/* Reading: rows per store query, and what a row costs (about 1 us). */
#define LIST_PAGE_ROWS 256u
#define LIST_ROW_STEPS 1024u
/* A move or comparison of the sort, the merge of equal names. */
#define LIST_SORT_STEPS 16u
/* And whatever the steps say, a slice ends after LIST_SLICE_NS. */
#define LIST_SLICE_NS (2u * 1000 * 1000)
#define LIST_CLOCK_EVERY 32u

enum {
	SEL_SUBSCRIBED = 1 << 0,
	SEL_REMOTE = 1 << 1,
	SEL_RECURSIVE = 1 << 2,
	SEL_SPECIAL_USE = 1 << 3,
	RET_SUBSCRIBED = 1 << 4,
	RET_CHILDREN = 1 << 5,
	RET_SPECIAL_USE = 1 << 6,
	RET_STATUS = 1 << 7
};

struct list_req {
	unsigned opts;
	const struct imap_arg *status;     /* RETURN (STATUS (items)) */
	bool status_counted;               /* all of them in store_mailbox_counts */
	char ref[STORE_MAILBOX_NAME_MAX];
	char pat[LIST_MAX_PATTERNS][2 * STORE_MAILBOX_NAME_MAX];
	size_t npat;        /* patterns that can match something */
	size_t given;       /* patterns in the command, those that cannot too */
	bool nothing;       /* the reference is no valid name: nothing matches */
};

/* What LIST reports on: existing mailboxes, subscribed names, and the
 * parents of subscribed names (which may be neither). */
struct entry {
	char *name;          /* malloc'd: small entries sort fast */
	char special_use[16];
	int64_t mb_id;       /* if it exists */
	bool exists, subscribed;
	/* Below it: an existing mailbox, a subscribed name, a subscribed name
	 * no pattern lists (set per command: see mark_unlisted). */
	bool child_exists, child_subscribed, child_unlisted;
};

struct entries {
	struct entry *e;
	size_t n, cap;
};

/* Adds to *steps what the matcher may take (name length by pattern
 * length, for each pattern tried). */
static bool any_match(const struct list_req *r, const char *name, uint64_t *steps)
{
	size_t i, n = strlen(name);

	for (i = 0; i < r->npat; i++) {
		*steps += (uint64_t)n * (strlen(r->pat[i]) + 1);
		if (imap_list_match(r->pat[i], name))
			return true;
	}
	return false;
}

static void entries_free(struct entries *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
	memset(l, 0, sizeof(*l));
}

/* Names in hierarchy order: '/' sorts below every other octet, so the
 * names under "a" follow "a" in one run ("a", "a/b", "a-b", not "a",
 * "a-b", "a/b"). */
static int name_cmp(const char *x, const char *y)
{
	const unsigned char *a = (const unsigned char *)x, *b = (const unsigned char *)y;

	for (; *a && *a == *b; a++, b++)
		;
	if (*a == *b)
		return 0;
	if (*a == '/')
		return *b == '\0' ? 1 : -1;
	if (*b == '/')
		return *a == '\0' ? -1 : 1;
	return *a < *b ? -1 : 1;
}

static int entry_cmp(const void *a, const void *b)
{
	return name_cmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* Appends; duplicates are merged once everything is in (merge_step):
 * looking each name up as it came made LIST quadratic. */
static struct entry *entry_add(struct entries *l, const char *name)
{
	struct entry *p;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		if ((p = realloc(l->e, cap * sizeof(*p))) == NULL)
			return NULL;
		l->e = p;
		l->cap = cap;
	}
	p = &l->e[l->n];
	memset(p, 0, sizeof(*p));
	if ((p->name = strdup(name)) == NULL)
		return NULL;
	l->n++;
	return p;
}

static struct entry *entry_find(const struct entries *l, const char *name)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = name_cmp(l->e[mid].name, name);
		if (c == 0)
			return &l->e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int entry_mailbox(const struct store_mailbox *mb, void *arg)
{
	struct entry *e = entry_add(arg, mb->name);

	if (e == NULL)
		return STORE_FULL;
	e->exists = true;
	e->mb_id = mb->id;
	snprintf(e->special_use, sizeof(e->special_use), "%s", mb->special_use);
	return 0;
}

static int entry_subscribed(const char *name, void *arg)
{
	struct entries *l = arg;
	char parent[STORE_MAILBOX_NAME_MAX];
	struct entry *e = entry_add(l, name);
	char *p;

	if (e == NULL)
		return STORE_FULL;
	e->subscribed = true;
	/* Every superior of a subscribed name, so that LSUB and
	 * RECURSIVEMATCH can report a parent that is neither subscribed nor
	 * a mailbox. */
	snprintf(parent, sizeof(parent), "%s", name);
	while ((p = strrchr(parent, '/')) != NULL) {
		*p = '\0';
		if (parent[0] != '\0' && entry_add(l, parent) == NULL)
			return STORE_FULL;
	}
	return 0;
}

/* Calls mark(e) for every superior of name that is an entry. */
static void mark_superiors(struct entries *l, const char *name, void (*mark)(struct entry *))
{
	char parent[STORE_MAILBOX_NAME_MAX];
	struct entry *e;
	char *p;

	snprintf(parent, sizeof(parent), "%s", name);
	while ((p = strrchr(parent, '/')) != NULL) {
		*p = '\0';
		if ((e = entry_find(l, parent)) != NULL)
			mark(e);
	}
}

static void mark_exists(struct entry *e)
{
	e->child_exists = true;
}

static void mark_subscribed(struct entry *e)
{
	e->child_subscribed = true;
}

static void mark_unlisted_one(struct entry *e)
{
	e->child_unlisted = true;
}

bool imap_mailbox_has_children(struct imap_session *s, const char *name)
{
	bool yes = false;

	/* One look at the index: reading every name was O(n log n) per DELETE. */
	return store_mailbox_has_children(s->srv->store, s->inbox.id, name, &yes) == STORE_OK &&
	    yes;
}
/* ---- parsing -------------------------------------------------------------- */

static bool opt_word(const struct imap_arg *a, const char *const *words, const unsigned *bits,
    size_t n, unsigned *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (imap_arg_equals(a, words[i])) {
			*out |= bits[i];
			return true;
		}
	}
	return false;
}

static bool parse_selection(const struct imap_arg *list, struct list_req *r)
{
	static const char *const w[] = { "SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE" };
	static const unsigned b[] = { SEL_SUBSCRIBED, SEL_REMOTE, SEL_RECURSIVE, SEL_SPECIAL_USE };
	size_t i;

	for (i = 0; i < list->count; i++)
		if (!opt_word(&list->list[i], w, b, 4, &r->opts))
			return false;
	/* RFC 5258 §3.1: RECURSIVEMATCH needs an option it can refine. */
	return !(r->opts & SEL_RECURSIVE) || (r->opts & (SEL_SUBSCRIBED | SEL_SPECIAL_USE));
}

/* Whether the store keeps every item asked counted (store_mailbox_counts:
 * one row), or some must be counted over the messages (RECENT, DELETED,
 * SIZE: O(messages) per mailbox). */
static bool status_counted(const struct imap_arg *items)
{
	static const char *const kept[] = { "MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY",
		"HIGHESTMODSEQ" };
	size_t i, k;

	for (i = 0; i < items->count; i++) {
		for (k = 0; k < sizeof(kept) / sizeof(kept[0]); k++)
			if (imap_arg_equals(&items->list[i], kept[k]))
				break;
		if (k == sizeof(kept) / sizeof(kept[0]))
			return false;
	}
	return true;
}

static bool parse_return(const struct imap_arg *list, struct list_req *r)
{
	static const char *const w[] = { "SUBSCRIBED", "CHILDREN", "SPECIAL-USE" };
	static const unsigned b[] = { RET_SUBSCRIBED, RET_CHILDREN, RET_SPECIAL_USE };
	size_t i;

	for (i = 0; i < list->count; i++) {
		if (opt_word(&list->list[i], w, b, 3, &r->opts))
			continue;
		if (!imap_arg_equals(&list->list[i], "STATUS") || i + 1 >= list->count ||
		    !imap_status_items_valid(&list->list[i + 1]))
			return false;
		r->opts |= RET_STATUS;
		r->status = &list->list[++i];
		r->status_counted = status_counted(r->status);
	}
	return true;
}

static bool add_pattern(struct imap_session *s, const struct imap_arg *a, struct list_req *r)
{
	char pat[STORE_MAILBOX_NAME_MAX];
	const char *str;
	size_t len;

	if (r->given >= LIST_MAX_PATTERNS || !imap_arg_list_mailbox(a, &str, &len) ||
	    memchr(str, '\0', len) != NULL)
		return false;
	r->given++;
	pat[0] = '\0';
	/* Not modified UTF-7 (or too long): a valid list-mailbox all the
	 * same, that no name matches; not a BAD (Dovecot does the same). */
	if (len > 0 && !imap_arg_mailbox(s, a, pat, sizeof(pat)))
		return true;
	/* The reference is a prefix, unless the pattern starts at the root. */
	snprintf(r->pat[r->npat++], sizeof(r->pat[0]), "%s%s", pat[0] == '/' ? "" : r->ref, pat);
	return true;
}

static bool parse_list(struct imap_session *s, const struct imap_command *cmd,
    struct list_req *r)
{
	const struct imap_arg *a = cmd->args;
	size_t n = cmd->nargs, i = 0;
	const char *str;
	size_t len;

	if (n > 0 && a[0].type == IMAP_ARG_LIST && !parse_selection(&a[i++], r))
		return false;
	if (i + 2 > n || !imap_arg_list_mailbox(&a[i], &str, &len) ||
	    memchr(str, '\0', len) != NULL)
		return false;
	if (len > 0 && !imap_arg_mailbox(s, &a[i], r->ref, sizeof(r->ref))) {
		r->ref[0] = '\0';
		r->nothing = true;
	}
	i++;
	if (a[i].type == IMAP_ARG_LIST) {
		for (size_t k = 0; k < a[i].count; k++)
			if (!add_pattern(s, &a[i].list[k], r))
				return false;
	} else if (!add_pattern(s, &a[i], r)) {
		return false;
	}
	i++;
	if (i + 2 == n && imap_arg_equals(&a[i], "RETURN") && a[i + 1].type == IMAP_ARG_LIST)
		return parse_return(&a[i + 1], r);
	return i == n;
}

/* ---- output ---------------------------------------------------------------- */

static void list_attrs(const struct list_req *r, const struct entries *l, const struct entry *e,
    char *buf, size_t size)
{
	size_t n = 0;

#define ATTR(cond, text) \
	if (cond) \
		n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? " " : "", text)
	/* In the order of RFC 5258's examples: (\Subscribed \NonExistent). */
	ATTR(e->subscribed && (r->opts & (SEL_SUBSCRIBED | RET_SUBSCRIBED)), "\\Subscribed");
	ATTR(!e->exists, "\\NonExistent");
	ATTR(e->exists, e->child_exists ? "\\HasChildren" : "\\HasNoChildren");
	ATTR(e->special_use[0], e->special_use);
#undef ATTR
}

static void list_entry(struct imap_session *s, const struct list_req *r,
    const struct entries *l, const struct entry *e, bool childinfo)
{
	char attrs[128] = "";

	list_attrs(r, l, e, attrs, sizeof(attrs));
	imap_printf(s, "* LIST (%s) \"/\" ", attrs);
	imap_write_mailbox(s, e->name);
	/* RFC 5258 §3.5: a parent listed for its subscribed children. */
	if (childinfo)
		imap_printf(s, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	imap_printf(s, "\r\n");
	if ((r->opts & RET_STATUS) && e->exists) {
		struct store_mailbox mb = { .id = e->mb_id, .inbox_id = s->inbox.id };
		struct store_mailbox_status st;
		snprintf(mb.name, sizeof(mb.name), "%s", e->name);
		/* A mailbox deleted since it was read has no STATUS line. */
		if (!r->status_counted)
			(void)imap_status_write(s, &mb, r->status);
		else if (store_mailbox_counts(s->srv->store, mb.id, &st) == STORE_OK)
			imap_status_reply(s, &mb, r->status, &st);
	}
}

/* RFC 5258 §3 (SUBSCRIBED, RECURSIVEMATCH) and RFC 9051 §6.3.9's table:
 * a subscribed name is listed whether or not it exists, with CHILDINFO if
 * it has subscribed children; a parent that is not subscribed only for a
 * subscribed child the patterns do not list themselves. */
static bool list_subscribed(const struct list_req *r, const struct entries *l,
    const struct entry *e, bool *childinfo)
{
	bool recursive = (r->opts & SEL_RECURSIVE) != 0;

	if (e->subscribed) {
		*childinfo = recursive && e->child_subscribed;
		return true;
	}
	*childinfo = recursive && e->child_unlisted;
	return *childinfo;
}

/* One entry of a LIST, if it is to be listed. */
static void list_one(struct imap_session *s, const struct list_req *r, const struct entries *l,
    const struct entry *e, uint64_t *steps)
{
	bool childinfo = false;

	if (!any_match(r, e->name, steps))
		return;
	if ((r->opts & SEL_SPECIAL_USE) && !e->special_use[0])
		return;
	if (r->opts & SEL_SUBSCRIBED) {
		if (!list_subscribed(r, l, e, &childinfo))
			return;
	} else if (!e->exists) {
		return;
	}
	list_entry(s, r, l, e, childinfo);
	if ((r->opts & RET_STATUS) && e->exists)
		*steps += r->status_counted ? LIST_COUNTS_STEPS : LIST_STATUS_STEPS;
}

/* RFC 3501 §6.3.9: subscribed names, existing or not; a parent that is not
 * subscribed itself, when the pattern's final "%" stops at it above a
 * subscribed child, as \Noselect (as Dovecot: only for a final "%"). */
static void lsub_one(struct imap_session *s, const struct list_req *r, bool parents,
    const struct entry *e, uint64_t *steps)
{
	if (!any_match(r, e->name, steps))
		return;
	if (e->subscribed)
		imap_printf(s, "* LSUB () \"/\" ");
	else if (parents && e->child_unlisted)
		imap_printf(s, "* LSUB (\\Noselect) \"/\" ");
	else
		return;
	imap_write_mailbox(s, e->name);
	imap_printf(s, "\r\n");
}

/* A LIST or LSUB going on in slices, each phase resumable where the
 * last slice stopped (job->next):
 * - PH_MAILBOXES, PH_SUBSCRIPTIONS: the names, a page at a time, after
 *   the last one read (job->after): a name created, deleted or renamed
 *   meanwhile is either read or not, never twice;
 * - PH_SORT: a merge sort into hierarchy order (name_cmp; the store's
 *   order is bytewise), a run of moves per slice;
 * - PH_MERGE: each name once; PH_CHILDREN: what lies below each;
 * - PH_UNLISTED: the superiors of subscribed names no pattern matches
 *   are marked (the reason to list a superior for it: RFC 3501 §6.3.9
 *   for LSUB, RFC 5258 §3.5 for RECURSIVEMATCH, which lists such a parent
 *   only when the child is not listed too), if needed;
 * - PH_ANSWER: the entries are answered. */
enum list_phase {
	PH_MAILBOXES, PH_SUBSCRIPTIONS, PH_SORT, PH_MERGE, PH_CHILDREN, PH_UNLISTED, PH_ANSWER
};

/* A bottom-up merge sort that can stop after any move: runs of `width`
 * from src are merged pairwise into dst, then the roles swap. */
struct msort {
	struct entry *tmp;
	size_t width, lo, i, j, k;
	bool in_run;
};

struct list_job {
	const struct imap_command *cmd;
	struct list_req *r;
	bool lsub, parents;       /* parents: marking needed */
	enum list_phase phase;
	struct entries l;
	struct msort sort;
	char after[STORE_MAILBOX_NAME_MAX];   /* the last name of the last page */
	size_t next, kept;
};

/* What one slice may spend: matcher steps (and their equivalents), and
 * LIST_SLICE_NS of time, looked at every LIST_CLOCK_EVERY checks: a step
 * count alone is only a guess at what a store query or a STATUS costs. */
struct budget {
	uint64_t steps;
	struct timespec t0;
	unsigned checks;
	bool over;
};

static uint64_t ns_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)(t.tv_sec - t0->tv_sec) * 1000000000u + (uint64_t)t.tv_nsec -
	    (uint64_t)t0->tv_nsec;
}

static bool spent(struct budget *b)
{
	if (!b->over && b->steps >= LIST_SLICE_STEPS)
		b->over = true;
	if (!b->over && ++b->checks % LIST_CLOCK_EVERY == 0 && ns_since(&b->t0) >= LIST_SLICE_NS)
		b->over = true;
	return b->over;
}

static void list_job_free(void *arg)
{
	struct list_job *job = arg;

	entries_free(&job->l);
	free(job->sort.tmp);
	free(job->r);
	free(job);
}

static int page_mailbox(const struct store_mailbox *mb, void *arg)
{
	struct list_job *job = arg;

	snprintf(job->after, sizeof(job->after), "%s", mb->name);
	return entry_mailbox(mb, &job->l);
}

static int page_subscribed(const char *name, void *arg)
{
	struct list_job *job = arg;

	snprintf(job->after, sizeof(job->after), "%s", name);
	return entry_subscribed(name, &job->l);
}

/* Pages of mailboxes, then of subscriptions; the next phase once a page
 * comes short. A store failure lists nothing (and says OK, as before). */
static void read_step(struct imap_session *s, struct list_job *job, struct budget *b)
{
	unsigned rows = 0;
	int rc;

	while (job->phase <= PH_SUBSCRIPTIONS && !spent(b)) {
		if (job->phase == PH_MAILBOXES)
			rc = store_mailbox_page(s->srv->store, s->inbox.id, job->after,
			    LIST_PAGE_ROWS, page_mailbox, job, &rows);
		else
			rc = store_subscription_page(s->srv->store, s->inbox.id, job->after,
			    LIST_PAGE_ROWS, page_subscribed, job, &rows);
		b->steps += (uint64_t)rows * LIST_ROW_STEPS;
		if (rc != STORE_OK) {
			entries_free(&job->l);
			job->phase = PH_ANSWER;
		} else if (rows < LIST_PAGE_ROWS) {
			job->after[0] = '\0';
			job->phase++;
		}
	}
}

/* The merge sort, from where it stopped; true when job->l is in order. */
static bool sort_step(struct list_job *job, struct budget *b)
{
	struct msort *m = &job->sort;
	size_t n = job->l.n;

	if (n < 2)
		return true;
	if (m->tmp == NULL && m->width == 0) {
		if ((m->tmp = malloc(n * sizeof(*m->tmp))) == NULL) {
			qsort(job->l.e, n, sizeof(job->l.e[0]), entry_cmp);  /* in one go */
			return true;
		}
		m->width = 1;
	}
	while (m->width < n) {
		struct entry *src = job->l.e, *dst = m->tmp;
		while (m->lo < n) {
			size_t mid = n - m->lo > m->width ? m->lo + m->width : n;
			size_t hi = n - mid > m->width ? mid + m->width : n;
			if (!m->in_run) {
				m->i = m->lo;
				m->j = mid;
				m->k = m->lo;
				m->in_run = true;
			}
			for (; m->k < hi; m->k++) {
				if (spent(b))
					return false;
				b->steps += LIST_SORT_STEPS;
				if (m->i < mid && (m->j >= hi || name_cmp(src[m->i].name, src[m->j].name) <= 0))
					dst[m->k] = src[m->i++];
				else
					dst[m->k] = src[m->j++];
			}
			m->in_run = false;
			m->lo = hi;
		}
		job->l.e = dst;
		m->tmp = src;
		m->width *= 2;
		m->lo = 0;
	}
	free(m->tmp);
	m->tmp = NULL;
	job->l.cap = n;
	return true;
}

/* Equal names (a mailbox that is subscribed, a superior of several) made
 * one, from job->next on into job->kept; true when done. */
static bool merge_step(struct list_job *job, struct budget *b)
{
	struct entries *l = &job->l;

	for (; job->next < l->n; job->next++) {
		struct entry *e = &l->e[job->next];
		if (spent(b))
			return false;
		b->steps += LIST_SORT_STEPS;
		if (job->kept > 0 && strcmp(l->e[job->kept - 1].name, e->name) == 0) {
			struct entry *keep = &l->e[job->kept - 1];
			keep->subscribed |= e->subscribed;
			if (e->exists) {
				keep->exists = true;
				keep->mb_id = e->mb_id;
				memcpy(keep->special_use, e->special_use, sizeof(keep->special_use));
			}
			free(e->name);
			continue;
		}
		if (job->kept != job->next)
			l->e[job->kept] = *e;
		job->kept++;
	}
	l->n = job->kept;
	return true;
}

/* What lies below each entry, from job->next on; true when done. */
static bool children_step(struct list_job *job, struct budget *b)
{
	while (job->next < job->l.n) {
		const struct entry *e = &job->l.e[job->next];
		if (spent(b))
			return false;
		b->steps += LIST_ENTRY_STEPS;
		job->next++;
		if (e->exists)
			mark_superiors(&job->l, e->name, mark_exists);
		if (e->subscribed)
			mark_superiors(&job->l, e->name, mark_subscribed);
	}
	return true;
}

/* The marking of PH_UNLISTED, from job->next on; true when done. */
static bool mark_step(struct list_job *job, struct budget *b)
{
	while (job->next < job->l.n && !spent(b)) {
		const struct entry *e = &job->l.e[job->next++];
		b->steps += LIST_ENTRY_STEPS;
		if (e->subscribed && !any_match(job->r, e->name, &b->steps))
			mark_superiors(&job->l, e->name, mark_unlisted_one);
	}
	return job->next >= job->l.n;
}

/* The phases before the answer; true when they are done. */
static bool prepare_step(struct imap_session *s, struct list_job *job, struct budget *b)
{
	bool done = true;

	read_step(s, job, b);
	while (done && job->phase > PH_SUBSCRIPTIONS && job->phase < PH_ANSWER) {
		switch (job->phase) {
		case PH_SORT:
			done = sort_step(job, b);
			break;
		case PH_MERGE:
			done = merge_step(job, b);
			break;
		case PH_CHILDREN:
			done = children_step(job, b);
			break;
		default:
			done = !job->parents || mark_step(job, b);
			break;
		}
		if (done) {
			job->phase++;
			job->next = job->kept = 0;
		}
	}
	return job->phase == PH_ANSWER;
}

static enum imap_cont list_cont(struct imap_session *s, void *arg)
{
	struct list_job *job = arg;
	struct budget b = { 0 };

	clock_gettime(CLOCK_MONOTONIC, &b.t0);
	if (!prepare_step(s, job, &b))
		return IMAP_CONT_YIELD;
	while (job->next < job->l.n) {
		if (spent(&b))
			return IMAP_CONT_YIELD;
		if (conn_output_pending(s->conn) >= IMAP_SLICE_OUTPUT)
			return IMAP_CONT_OUTPUT;
		const struct entry *e = &job->l.e[job->next++];
		b.steps += LIST_ENTRY_STEPS;
		if (job->lsub)
			lsub_one(s, job->r, job->parents, e, &b.steps);
		else
			list_one(s, job->r, &job->l, e, &b.steps);
	}
	imap_tagged(s, job->cmd->tag, "OK", "%s completed", job->cmd->verb);
	return IMAP_CONT_DONE;
}

/* Reads, sorts and answers what fits in this pass; the rest later. Takes
 * r. */
static void list_start(struct imap_session *s, const struct imap_command *cmd,
    struct list_req *r, bool lsub)
{
	struct list_job *job = calloc(1, sizeof(*job));
	size_t n = strlen(r->pat[0]);
	enum imap_cont rc;

	if (job == NULL) {
		free(r);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	job->cmd = cmd;
	job->r = r;
	job->lsub = lsub;
	job->parents = lsub ? n > 0 && r->pat[0][n - 1] == '%' : (r->opts & SEL_RECURSIVE) != 0;
	rc = list_cont(s, job);
	if (rc == IMAP_CONT_DONE)
		list_job_free(job);
	else
		imap_pending_start(s, cmd, rc, list_cont, list_job_free, job);
}

void imap_cmd_list(struct imap_session *s, const struct imap_command *cmd)
{
	bool lsub = strcmp(cmd->verb, "LSUB") == 0;
	struct list_req *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	if (!parse_list(s, cmd, r) || (lsub && (r->opts || r->given != 1))) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %s reference mailbox", cmd->verb);
	} else if (r->nothing || r->npat == 0) {
		imap_tagged(s, cmd->tag, "OK", "%s completed", cmd->verb);
	} else if (!lsub && r->npat == 1 && strcmp(r->pat[0], r->ref) == 0 && r->opts == 0) {
		/* RFC 3501 §6.3.8: an empty pattern asks for the delimiter. */
		imap_printf(s, "* LIST (\\Noselect) \"/\" \"\"\r\n");
		imap_tagged(s, cmd->tag, "OK", "LIST completed");
	} else {
		list_start(s, cmd, r, lsub);
		return;
	}
	free(r);
}
