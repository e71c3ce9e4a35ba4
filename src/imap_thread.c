/*
 * THREAD (RFC 5256 ORDEREDSUBJECT and REFERENCES) and its response text,
 * in steps: see imap_sort.h. The algorithms are a plan of phases, each
 * resumable at the message, node or reference it had come to when the
 * budget ran out; its state lives in struct imap_thread_job.
 */
#include "mailsnare/imap_sort.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE ((size_t)-1)

/* Work units (imap_sort.h) of the steps that cost more than a comparison
 * does, from their cost per unit measured with bench/sort_steps.c: a
 * slice's units then take about as long in every phase. */
#define COST_ID 6          /* a Message-ID hashed, looked up and entered */
#define COST_REF 4         /* a reference hashed, looked up and linked */
#define WALK_PER_UNIT 4    /* steps up the tree to see whether a link loops */
#define COST_KID 2         /* a child appended to its parent's list */
#define COST_SUBJECT 3     /* a thread subject hashed and looked up */
#define COST_NUMBER 4      /* a message number written */
#define COST_FREE 3        /* a node's list of children freed */

static void spend(uint64_t *budget, uint64_t n)
{
	*budget = *budget > n ? *budget - n : 0;
}

/* ---- message ids -------------------------------------------------------- */

/* imap_sort_next_msgid over value[0..n): the length is the caller's, so a
 * long References value is not measured again for each of its ids. */
static bool next_msgid(const char *value, size_t n, size_t *pos, const char **id, size_t *len)
{
	size_t i = *pos;

	while (i < n) {
		const char *lt = memchr(value + i, '<', n - i);
		size_t j;

		if (lt == NULL)
			break;
		i = (size_t)(lt - value) + 1;
		for (j = i; j < n && value[j] != '>' && value[j] != '<' && value[j] != ' ' &&
		    value[j] != '\t' && value[j] != '\r' && value[j] != '\n'; j++)
			;
		if (j < n && value[j] == '>' && j > i) {
			*id = value + i - 1;
			*len = j - i + 2;
			*pos = j + 1;
			return true;
		}
	}
	*pos = n;
	return false;
}

bool imap_sort_next_msgid(const char *value, size_t *pos, const char **id, size_t *len)
{
	return next_msgid(value, value ? strlen(value) : 0, pos, id, len);
}

/* ---- the thread tree ---------------------------------------------------- */

static size_t node_new(struct imap_thread *t, long msg)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct imap_thread_node *p = realloc(t->nodes, cap * sizeof(*p));
		if (p == NULL)
			return NONE;
		t->nodes = p;
		t->cap = cap;
	}
	t->nodes[t->n] = (struct imap_thread_node){ .msg = msg, .parent = NONE };
	return t->n++;
}

static bool kid_add(struct imap_thread_node *p, size_t kid)
{
	if (p->nkids == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4;
		size_t *k = realloc(p->kids, cap * sizeof(*k));
		if (k == NULL)
			return false;
		p->kids = k;
		p->cap = cap;
	}
	p->kids[p->nkids++] = kid;
	return true;
}

static bool adopt(struct imap_thread *t, size_t parent, size_t kid)
{
	t->nodes[kid].parent = parent;
	return kid_add(&t->nodes[parent], kid);
}

void imap_thread_free(struct imap_thread *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->nodes[i].kids);
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}

/* Is a below b (or b itself)? under[b] counts the nodes whose parent b
 * is: none, and only b itself is (the common case of a new reply, which
 * would otherwise walk up its whole thread). The steps walked are added
 * to *steps. */
static bool below(const struct imap_thread *t, const size_t *under, size_t a, size_t b,
    uint64_t *steps)
{
	if (a != b && under[b] == 0)
		return false;
	for (size_t x = a; x != NONE; x = t->nodes[x].parent, (*steps)++)
		if (x == b)
			return true;
	return false;
}

/* The thread subject of a child of the root. */
static const char *thread_subject(const struct imap_thread *t, const struct imap_thread_msg *msgs,
    size_t x)
{
	const struct imap_thread_node *p = &t->nodes[x];
	const char *s;

	if (p->msg < 0)
		p = p->nkids > 0 ? &t->nodes[p->kids[0]] : NULL;
	s = p && p->msg >= 0 ? msgs[p->msg].subject : NULL;
	return s ? s : "";
}

static bool is_reply(const struct imap_thread *t, const struct imap_thread_msg *msgs, size_t x)
{
	return t->nodes[x].msg >= 0 && msgs[t->nodes[x].msg].reply;
}

/* ---- a map from message ids (or subjects) to nodes ---------------------- */

/* Chains hold entry index + 1, 0 ending them: calloc'd buckets need no
 * pass of their own to be filled. */
struct idmap {
	struct ident { const char *id; size_t len, node, next; } *e;
	size_t n, cap;
	size_t *bucket, nbucket;
};

static bool idmap_init(struct idmap *m, size_t want)
{
	memset(m, 0, sizeof(*m));
	m->nbucket = 16;
	while (m->nbucket < want)
		m->nbucket *= 2;
	return (m->bucket = calloc(m->nbucket, sizeof(*m->bucket))) != NULL;
}

static void idmap_free(struct idmap *m)
{
	free(m->e);
	free(m->bucket);
	memset(m, 0, sizeof(*m));
}

static size_t id_hash(const char *s, size_t len)
{
	size_t h = 5381;

	for (size_t i = 0; i < len; i++)
		h = h * 33 + (unsigned char)s[i];
	return h;
}

static size_t id_slot(const struct idmap *m, const char *id, size_t len)
{
	for (size_t i = m->bucket[id_hash(id, len) & (m->nbucket - 1)]; i != 0; i = m->e[i - 1].next)
		if (m->e[i - 1].len == len && memcmp(m->e[i - 1].id, id, len) == 0)
			return i - 1;
	return NONE;
}

static size_t id_find(const struct idmap *m, const char *id, size_t len)
{
	size_t i = id_slot(m, id, len);

	return i == NONE ? NONE : m->e[i].node;
}

static bool id_add(struct idmap *m, const char *id, size_t len, size_t node)
{
	size_t b = id_hash(id, len) & (m->nbucket - 1);

	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct ident *e = realloc(m->e, cap * sizeof(*e));
		if (e == NULL)
			return false;
		m->e = e;
		m->cap = cap;
	}
	m->e[m->n] = (struct ident){ id, len, node, m->bucket[b] };
	m->bucket[b] = ++m->n;
	return true;
}

/* ---- the job ------------------------------------------------------------ */

enum phase {
	PH_NODES, PH_IDS, PH_LINK, PH_GATHER, PH_PRUNE, PH_DATE, PH_SUBJ_PICK, PH_SUBJ_MERGE,
	PH_OS_SORT, PH_OS_LINK, PH_FORMAT, PH_FREE, PH_DONE
};

/* REFERENCES: (1) links, (2) gather, (3) prune, (4) sort, (5) merge by
 * subject, (6) sort again. ORDEREDSUBJECT: sort by subject and date, the
 * first of each subject the parent of the others, their children sorted. */
static const enum phase references_plan[] = {
	PH_NODES, PH_IDS, PH_LINK, PH_GATHER, PH_PRUNE, PH_DATE, PH_SUBJ_PICK, PH_SUBJ_MERGE,
	PH_DATE, PH_FORMAT, PH_FREE, PH_DONE
};
static const enum phase subject_plan[] = {
	PH_NODES, PH_OS_SORT, PH_OS_LINK, PH_DATE, PH_FORMAT, PH_FREE, PH_DONE
};

/* Sort keys of the nodes: a message's sent date and its index; a dummy
 * takes those of its first child. */
struct tkey {
	int64_t date;
	long idx;
};

struct outbuf {
	char *p;
	size_t len, cap;
	bool failed;
};

struct frame {
	size_t node, next;
	bool close;
};

/* The response text being written: the frames of the nodes whose
 * children are being written, and the chain of single children being
 * written (NONE when none is). */
struct fmt {
	const struct imap_thread *t;
	const struct imap_thread_msg *msgs;
	struct outbuf o;
	struct frame *stack;
	size_t sp, chain;
	bool first;               /* nothing of the chain written yet */
};

struct imap_thread_job {
	const struct imap_thread_msg *msgs;
	size_t n;
	const enum phase *plan;
	size_t step;              /* of plan */
	bool entered;             /* the phase has set itself up */
	bool tree_only;           /* stop before the text (imap_thread_build) */
	size_t pos;               /* the phase's message, node or entry */
	struct imap_thread t;
	struct idmap m;
	/* PH_LINK: the references of message pos being linked; how many
	 * nodes each node is the parent of */
	size_t *under, nunder;
	const char *refs, *id;
	size_t refs_len, rpos, id_len, prev;
	bool linking, have_id, only_first;
	/* PH_PRUNE and PH_DATE: the nodes in post-order (children first) */
	size_t *order, *stack, *next, norder, sp;
	bool walking, ordered;
	/* PH_PRUNE: the children node pos had, being put back */
	size_t *old, nold, oj;
	bool detached;
	/* PH_DATE, PH_OS_SORT: the sort keys, a sort in progress */
	struct tkey *keys;
	size_t *scratch, *idx, head;
	struct imap_msort ms;
	bool sorting;
	/* PH_SUBJ_*: the root's children as they were, where each is in that
	 * list, and where each is in the root's rebuilt list */
	size_t *roots, nroot, *rootidx, *newpos;
	struct fmt f;
	bool formatting;
	char *text;
	size_t text_len;
};

/* ---- (NODES) one node per message, node 0 the root ---------------------- */

static int ph_nodes(struct imap_thread_job *j, uint64_t *budget)
{
	if (!j->entered) {
		j->t.cap = j->n + 1;
		if ((j->t.nodes = malloc(j->t.cap * sizeof(*j->t.nodes))) == NULL) {
			j->t.cap = 0;
			return -1;
		}
	}
	for (; j->t.n <= j->n; spend(budget, 1)) {
		if (*budget == 0)
			return 0;
		(void)node_new(&j->t, j->t.n == 0 ? -1 : (long)(j->t.n - 1));
	}
	return 1;
}

/* ---- (1) links from References ------------------------------------------ */

/* Message ids to their messages. A duplicate or missing Message-ID: the
 * message's own, nobody can refer to it. */
static int ph_ids(struct imap_thread_job *j, uint64_t *budget)
{
	const char *id;
	size_t len, pos;

	if (!j->entered && !idmap_init(&j->m, j->n * 4))
		return -1;
	for (; j->pos < j->n; j->pos++, spend(budget, COST_ID)) {
		const char *v = j->msgs[j->pos].message_id;

		if (*budget == 0)
			return 0;
		pos = 0;
		if (next_msgid(v, v ? strlen(v) : 0, &pos, &id, &len) && id_find(&j->m, id, len) == NONE &&
		    !id_add(&j->m, id, len, j->pos + 1))
			return -1;
	}
	return 1;
}

/* The node of a referenced id: its message, or a dummy made for it. */
static size_t ref_node(struct imap_thread_job *j, const char *id, size_t len)
{
	size_t x = id_find(&j->m, id, len);

	if (x != NONE)
		return x;
	if (j->nunder == j->t.n) {
		size_t *u = realloc(j->under, 2 * j->nunder * sizeof(*u));
		if (u == NULL)
			return NONE;
		memset(u + j->nunder, 0, j->nunder * sizeof(*u));
		j->under = u;
		j->nunder *= 2;
	}
	if ((x = node_new(&j->t, -1)) != NONE && !id_add(&j->m, id, len, x))
		x = NONE;
	return x;
}

/* Sets (or clears, p = NONE) the parent of x, keeping the counts. */
static void set_parent(struct imap_thread_job *j, size_t x, size_t p)
{
	if (j->t.nodes[x].parent != NONE)
		j->under[j->t.nodes[x].parent]--;
	j->t.nodes[x].parent = p;
	if (p != NONE)
		j->under[p]++;
}

/* Message pos's references: the References ids, else the first id of
 * In-Reply-To. */
static void link_begin(struct imap_thread_job *j)
{
	const struct imap_thread_msg *msg = &j->msgs[j->pos];

	j->refs = msg->references;
	j->refs_len = j->refs ? strlen(j->refs) : 0;
	j->rpos = 0;
	j->only_first = false;
	j->have_id = next_msgid(j->refs, j->refs_len, &j->rpos, &j->id, &j->id_len);
	if (!j->have_id) {
		j->refs = msg->in_reply_to;
		j->refs_len = j->refs ? strlen(j->refs) : 0;
		j->rpos = 0;
		j->only_first = true;
		j->have_id = next_msgid(j->refs, j->refs_len, &j->rpos, &j->id, &j->id_len);
	}
	j->prev = NONE;
	j->linking = true;
}

static int ph_link(struct imap_thread_job *j, uint64_t *budget)
{
	struct imap_thread *t = &j->t;
	uint64_t steps;
	size_t x, cur;

	if (!j->entered) {
		j->nunder = t->n;
		if ((j->under = calloc(j->nunder, sizeof(*j->under))) == NULL)
			return -1;
	}
	while (j->pos < j->n) {
		if (*budget == 0)
			return 0;
		if (!j->linking)
			link_begin(j);
		/* (A) each reference the parent of the next, without loops and
		 * without changing a parent once set */
		while (j->have_id) {
			if (*budget == 0)
				return 0;
			if ((x = ref_node(j, j->id, j->id_len)) == NONE)
				return -1;
			steps = 0;
			if (j->prev != NONE && x != j->prev && t->nodes[x].parent == NONE &&
			    !below(t, j->under, j->prev, x, &steps))
				set_parent(j, x, j->prev);
			spend(budget, COST_REF + steps / WALK_PER_UNIT);
			j->prev = x;
			j->have_id = !j->only_first &&
			    next_msgid(j->refs, j->refs_len, &j->rpos, &j->id, &j->id_len);
		}
		/* (B) the last reference is the message's parent */
		cur = j->pos + 1;
		steps = 0;
		set_parent(j, cur, NONE);
		if (j->prev != NONE && !below(t, j->under, j->prev, cur, &steps))
			set_parent(j, cur, j->prev);
		spend(budget, 1 + steps / WALK_PER_UNIT);
		j->linking = false;
		j->pos++;
	}
	idmap_free(&j->m);
	free(j->under);
	j->under = NULL;
	return 1;
}

/* ---- (2) gather: parentless nodes under the root, children lists -------- */

static int ph_gather(struct imap_thread_job *j, uint64_t *budget)
{
	struct imap_thread *t = &j->t;

	if (!j->entered)
		j->pos = 1;
	for (; j->pos < t->n; j->pos++, spend(budget, COST_KID)) {
		struct imap_thread_node *x = &t->nodes[j->pos];

		if (*budget == 0)
			return 0;
		if (x->parent == NONE)
			x->parent = 0;
		if (!kid_add(&t->nodes[x->parent], j->pos))
			return -1;
	}
	return 1;
}

/* ---- the nodes in post-order, for (3) and (4) ---------------------------- */

static void walk_free(struct imap_thread_job *j)
{
	free(j->order);
	free(j->stack);
	free(j->next);
	j->order = j->stack = j->next = NULL;
	j->walking = j->ordered = false;
}

/* j->order[0..norder): the tree from the root, children before their
 * parent. 1 once it is there, 0 budget spent, -1 no memory. */
static int walk_step(struct imap_thread_job *j, uint64_t *budget)
{
	const struct imap_thread *t = &j->t;

	if (j->ordered)
		return 1;
	if (!j->walking) {
		j->order = malloc(t->n * sizeof(*j->order));
		j->stack = malloc(t->n * sizeof(*j->stack));
		j->next = calloc(t->n, sizeof(*j->next));
		if (j->order == NULL || j->stack == NULL || j->next == NULL)
			return -1;
		j->norder = j->sp = 0;
		j->stack[j->sp++] = 0;
		j->walking = true;
	}
	for (; j->sp > 0; spend(budget, 1)) {
		size_t x = j->stack[j->sp - 1];

		if (*budget == 0)
			return 0;
		if (j->next[x] < t->nodes[x].nkids) {
			j->stack[j->sp++] = t->nodes[x].kids[j->next[x]++];
		} else {
			j->order[j->norder++] = x;
			j->sp--;
		}
	}
	free(j->stack);
	free(j->next);
	j->stack = j->next = NULL;
	j->ordered = true;
	return 1;
}

/* ---- (3) prune: dummies without children go; a dummy's children take
 * its place unless that would put several of them under the root ---------- */

/* Child oj of node x (the old list) goes back, or its children do. */
static bool prune_kid(struct imap_thread_job *j, size_t x, uint64_t *budget)
{
	struct imap_thread *t = &j->t;
	struct imap_thread_node *c = &t->nodes[j->old[j->oj]];
	bool ok = true;

	spend(budget, COST_KID * (1 + c->nkids));
	if (c->msg >= 0 || (x == 0 && c->nkids > 1))
		return kid_add(&t->nodes[x], j->old[j->oj]);
	for (size_t k = 0; ok && k < c->nkids; k++) {
		t->nodes[c->kids[k]].parent = x;
		ok = kid_add(&t->nodes[x], c->kids[k]);
	}
	c->nkids = 0;
	return ok;
}

static int ph_prune(struct imap_thread_job *j, uint64_t *budget)
{
	int r = walk_step(j, budget);

	if (r <= 0)
		return r;
	for (; j->pos < j->norder; j->pos++) {
		size_t x = j->order[j->pos];
		struct imap_thread_node *p = &j->t.nodes[x];

		if (*budget == 0)
			return 0;
		if (!j->detached) {
			j->old = p->kids;
			j->nold = p->nkids;
			p->kids = NULL;
			p->nkids = p->cap = 0;
			j->oj = 0;
			j->detached = true;
			spend(budget, 1);
		}
		for (; j->oj < j->nold; j->oj++) {
			if (*budget == 0)
				return 0;
			if (!prune_kid(j, x, budget))
				return -1;
		}
		free(j->old);
		j->old = NULL;
		j->detached = false;
	}
	walk_free(j);
	return 1;
}

/* ---- (4) every set of siblings by sent date, the youngest level first --- */

static int tkey_cmp(size_t x, size_t y, void *arg)
{
	const struct tkey *k = arg;
	const struct tkey *a = &k[x], *b = &k[y];

	if (a->date != b->date)
		return a->date < b->date ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static void date_free(struct imap_thread_job *j)
{
	walk_free(j);
	free(j->keys);
	free(j->scratch);
	j->keys = NULL;
	j->scratch = NULL;
	j->sorting = false;
}

static int ph_date(struct imap_thread_job *j, uint64_t *budget)
{
	struct imap_thread *t = &j->t;
	int r;

	if (!j->entered) {
		j->keys = calloc(t->n ? t->n : 1, sizeof(*j->keys));
		j->scratch = malloc((t->n ? t->n : 1) * sizeof(*j->scratch));
		if (j->keys == NULL || j->scratch == NULL)
			return -1;
	}
	if ((r = walk_step(j, budget)) <= 0)
		return r;
	for (; j->pos < j->norder; j->pos++, spend(budget, 1)) {
		struct imap_thread_node *x = &t->nodes[j->order[j->pos]];

		if (*budget == 0)
			return 0;
		if (x->nkids > 1) {
			if (!j->sorting)
				imap_msort_init(&j->ms, x->kids, j->scratch, x->nkids, tkey_cmp, j->keys);
			j->sorting = true;
			if (!imap_msort_step(&j->ms, budget))
				return 0;
			j->sorting = false;
		}
		if (x->msg >= 0)
			j->keys[j->order[j->pos]] = (struct tkey){ j->msgs[x->msg].date, x->msg };
		else if (x->nkids > 0)
			j->keys[j->order[j->pos]] = j->keys[x->kids[0]];
	}
	date_free(j);
	return 1;
}

/* ---- (5) threads under the root with the same subject merged ------------ */

static void subj_free(struct imap_thread_job *j)
{
	free(j->roots);
	free(j->rootidx);
	free(j->newpos);
	j->roots = j->rootidx = j->newpos = NULL;
	idmap_free(&j->m);
}

/* The cost of a subject: hashing and comparing it. */
static uint64_t subj_cost(size_t len)
{
	return COST_SUBJECT + len / 32;
}

/* (B) one root per subject: a dummy, else one that is no reply. */
static int ph_subj_pick(struct imap_thread_job *j, uint64_t *budget)
{
	struct imap_thread *t = &j->t;

	if (!j->entered) {
		size_t n = t->n;

		j->nroot = t->nodes[0].nkids;
		j->roots = malloc((j->nroot + 1) * sizeof(*j->roots));
		j->rootidx = malloc(n * sizeof(*j->rootidx));
		j->newpos = malloc(n * sizeof(*j->newpos));
		if (j->roots == NULL || j->rootidx == NULL || j->newpos == NULL ||
		    !idmap_init(&j->m, j->nroot * 2))
			return -1;
		if (j->nroot > 0)
			memcpy(j->roots, t->nodes[0].kids, j->nroot * sizeof(*j->roots));
	}
	for (; j->pos < j->nroot; j->pos++) {
		size_t r = j->roots[j->pos], slot, at;
		const char *s = thread_subject(t, j->msgs, r);
		size_t len = strlen(s);

		if (*budget == 0)
			return 0;
		spend(budget, subj_cost(len));
		j->rootidx[r] = j->pos;
		if (len == 0)
			continue;
		if ((slot = id_slot(&j->m, s, len)) == NONE) {
			if (!id_add(&j->m, s, len, r))
				return -1;
			continue;
		}
		at = j->m.e[slot].node;
		if (t->nodes[at].msg >= 0 && (t->nodes[r].msg < 0 ||
		    (is_reply(t, j->msgs, at) && !is_reply(t, j->msgs, r))))
			j->m.e[slot].node = r;
	}
	/* (C) rebuilds the root's children from what stays */
	t->nodes[0].nkids = 0;
	return 1;
}

/* Two messages of one subject, neither a reply of the other: a new dummy
 * d holds both, in the place of `at` under the root (its new place if it
 * is there already, else at the end); `at` must not come back. */
static bool subj_pair(struct imap_thread_job *j, size_t at, size_t c, size_t slot)
{
	struct imap_thread *t = &j->t;
	size_t d = node_new(t, -1), i = j->pos, ai;

	if (d == NONE)
		return false;
	t->nodes[d].parent = 0;
	ai = j->rootidx[at];
	if (ai < i) {
		t->nodes[0].kids[j->newpos[at]] = d;
	} else {
		if (!kid_add(&t->nodes[0], d))
			return false;
		j->roots[ai] = NONE;
	}
	/* the root a subject maps to is in that subject's entry only */
	j->m.e[slot].node = d;
	return adopt(t, d, at) && adopt(t, d, c);
}

/* Root child c: stays under the root, or goes under the root of its
 * subject, or is paired with it under a new dummy. */
static bool subj_merge_one(struct imap_thread_job *j, size_t c, uint64_t *budget)
{
	struct imap_thread *t = &j->t;
	const char *s = thread_subject(t, j->msgs, c);
	size_t len = strlen(s), slot = len ? id_slot(&j->m, s, len) : NONE, at;
	bool ok = true;

	spend(budget, subj_cost(len));
	if (slot == NONE || (at = j->m.e[slot].node) == c) {
		j->newpos[c] = t->nodes[0].nkids;
		return kid_add(&t->nodes[0], c);
	}
	if (t->nodes[at].msg < 0 && t->nodes[c].msg < 0) {
		spend(budget, t->nodes[c].nkids);
		for (size_t k = 0; ok && k < t->nodes[c].nkids; k++)
			ok = adopt(t, at, t->nodes[c].kids[k]);
		t->nodes[c].nkids = 0;
		return ok;
	}
	if (t->nodes[at].msg < 0 || (is_reply(t, j->msgs, c) && !is_reply(t, j->msgs, at)))
		return adopt(t, at, c);
	return subj_pair(j, at, c, slot);
}

static int ph_subj_merge(struct imap_thread_job *j, uint64_t *budget)
{
	for (; j->pos < j->nroot; j->pos++) {
		size_t c = j->roots[j->pos];

		if (*budget == 0)
			return 0;
		if (c == NONE) {
			spend(budget, 1);   /* merged under a dummy already */
			continue;
		}
		if (!subj_merge_one(j, c, budget))
			return -1;
	}
	subj_free(j);
	return 1;
}

/* ---- ORDEREDSUBJECT ------------------------------------------------------ */

static const char *subject_of(const struct imap_thread_msg *m)
{
	return m->subject ? m->subject : "";
}

static int subj_cmp(size_t a, size_t b, void *arg)
{
	const struct imap_thread_msg *msgs = arg;
	int c = strcmp(subject_of(&msgs[a]), subject_of(&msgs[b]));

	if (c != 0)
		return c;
	if (msgs[a].date != msgs[b].date)
		return msgs[a].date < msgs[b].date ? -1 : 1;
	return a < b ? -1 : a > b;
}

/* By base subject, then sent date. */
static int ph_os_sort(struct imap_thread_job *j, uint64_t *budget)
{
	if (!j->entered) {
		j->idx = malloc((j->n ? j->n : 1) * sizeof(*j->idx));
		j->scratch = malloc((j->n ? j->n : 1) * sizeof(*j->scratch));
		if (j->idx == NULL || j->scratch == NULL)
			return -1;
		for (size_t i = 0; i < j->n; i++)
			j->idx[i] = i;
		imap_msort_init(&j->ms, j->idx, j->scratch, j->n, subj_cmp, (void *)j->msgs);
	}
	if (!imap_msort_step(&j->ms, budget))
		return 0;
	free(j->scratch);
	j->scratch = NULL;
	return 1;
}

/* The first of each subject holds the others as its children. */
static int ph_os_link(struct imap_thread_job *j, uint64_t *budget)
{
	if (!j->entered)
		j->head = NONE;
	for (; j->pos < j->n; j->pos++, spend(budget, 1)) {
		size_t i = j->pos, x = j->idx[i] + 1;

		if (*budget == 0)
			return 0;
		if (i > 0 && strcmp(subject_of(&j->msgs[j->idx[i - 1]]),
		    subject_of(&j->msgs[j->idx[i]])) != 0)
			j->head = NONE;
		if (j->head == NONE) {
			j->head = x;
			if (!adopt(&j->t, 0, x))
				return -1;
		} else if (!adopt(&j->t, j->head, x)) {
			return -1;
		}
	}
	free(j->idx);
	j->idx = NULL;
	return 1;
}

/* ---- THREAD response text ---------------------------------------------- */

static void out_add(struct outbuf *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < o->len + n + 1)
			cap *= 2;
		char *p = realloc(o->p, cap);
		if (p == NULL) {
			o->failed = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static bool fmt_begin(struct fmt *f, const struct imap_thread *t,
    const struct imap_thread_msg *msgs)
{
	memset(f, 0, sizeof(*f));
	f->t = t;
	f->msgs = msgs;
	f->chain = NONE;
	if ((f->stack = malloc((t->n + 1) * sizeof(*f->stack))) == NULL)
		return false;
	out_add(&f->o, "", 0);
	f->stack[f->sp++] = (struct frame){ 0, 0, false };
	return !f->o.failed;
}

static void fmt_free(struct fmt *f)
{
	free(f->stack);
	free(f->o.p);
	memset(f, 0, sizeof(*f));
}

/* One member of a chain "a b c": the next of it, or its end; if it
 * branches, " " and a frame for the branches. */
static void fmt_chain(struct fmt *f)
{
	const struct imap_thread_node *p = &f->t->nodes[f->chain];
	char num[16];

	if (p->msg >= 0) {
		int n = snprintf(num, sizeof(num), "%s%u", f->first ? "" : " ", f->msgs[p->msg].id);
		out_add(&f->o, num, (size_t)n);
		f->first = false;
	}
	if (p->nkids == 0) {
		out_add(&f->o, ")", 1);
		f->chain = NONE;
	} else if (p->nkids == 1) {
		f->chain = p->kids[0];
	} else {
		if (!f->first)
			out_add(&f->o, " ", 1);
		f->stack[f->sp++] = (struct frame){ f->chain, 0, true };
		f->chain = NONE;
	}
}

/* 1 when the text is complete (f->o.p), 0 budget spent, -1 no memory. */
static int fmt_step(struct fmt *f, uint64_t *budget)
{
	for (; (f->chain != NONE || f->sp > 0) && !f->o.failed; spend(budget, 1)) {
		struct frame *fr;

		if (*budget == 0)
			return 0;
		if (f->chain != NONE) {
			if (f->t->nodes[f->chain].msg >= 0)
				spend(budget, COST_NUMBER - 1);
			fmt_chain(f);
			continue;
		}
		fr = &f->stack[f->sp - 1];
		if (fr->next < f->t->nodes[fr->node].nkids) {
			out_add(&f->o, "(", 1);
			f->chain = f->t->nodes[fr->node].kids[fr->next++];
			f->first = true;
		} else {
			if (fr->close)
				out_add(&f->o, ")", 1);
			f->sp--;
		}
	}
	return f->o.failed ? -1 : 1;
}

char *imap_thread_format(const struct imap_thread *t, const struct imap_thread_msg *msgs)
{
	struct fmt f;
	uint64_t budget = UINT64_MAX;
	char *text;

	if (!fmt_begin(&f, t, msgs) || fmt_step(&f, &budget) != 1) {
		fmt_free(&f);
		return NULL;
	}
	text = f.o.p;
	f.o.p = NULL;
	fmt_free(&f);
	return text;
}

static int ph_format(struct imap_thread_job *j, uint64_t *budget)
{
	int r;

	if (!j->entered) {
		j->formatting = true;
		if (!fmt_begin(&j->f, &j->t, j->msgs))
			return -1;
	}
	if ((r = fmt_step(&j->f, budget)) <= 0)
		return r;
	j->text = j->f.o.p;
	j->text_len = j->f.o.len;
	j->f.o.p = NULL;
	fmt_free(&j->f);
	j->formatting = false;
	return 1;
}

/* The tree, a node's children at a time: freeing n lists is not free. */
static int ph_free(struct imap_thread_job *j, uint64_t *budget)
{
	for (; j->pos < j->t.n; j->pos++, spend(budget, COST_FREE)) {
		if (*budget == 0)
			return 0;
		free(j->t.nodes[j->pos].kids);
		j->t.nodes[j->pos].kids = NULL;   /* imap_thread_end may come first */
	}
	free(j->t.nodes);
	memset(&j->t, 0, sizeof(j->t));
	return 1;
}

/* ---- driving the plan ---------------------------------------------------- */

struct imap_thread_job *imap_thread_begin(const struct imap_thread_msg *msgs, size_t n,
    enum imap_thread_alg alg)
{
	struct imap_thread_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->msgs = msgs;
	j->n = n;
	j->plan = alg == IMAP_THREAD_REFERENCES ? references_plan : subject_plan;
	return j;
}

static int phase_run(struct imap_thread_job *j, enum phase ph, uint64_t *budget)
{
	switch (ph) {
	case PH_NODES: return ph_nodes(j, budget);
	case PH_IDS: return ph_ids(j, budget);
	case PH_LINK: return ph_link(j, budget);
	case PH_GATHER: return ph_gather(j, budget);
	case PH_PRUNE: return ph_prune(j, budget);
	case PH_DATE: return ph_date(j, budget);
	case PH_SUBJ_PICK: return ph_subj_pick(j, budget);
	case PH_SUBJ_MERGE: return ph_subj_merge(j, budget);
	case PH_OS_SORT: return ph_os_sort(j, budget);
	case PH_OS_LINK: return ph_os_link(j, budget);
	case PH_FORMAT: return ph_format(j, budget);
	case PH_FREE: return ph_free(j, budget);
	case PH_DONE: break;
	}
	return 1;
}

int imap_thread_step(struct imap_thread_job *j, uint64_t *budget)
{
	for (;;) {
		enum phase ph = j->plan[j->step];
		int r;

		if (ph == PH_DONE || (j->tree_only && ph == PH_FORMAT))
			return 1;
		if (*budget == 0)
			return 0;
		if ((r = phase_run(j, ph, budget)) <= 0) {
			j->entered = true;
			return r;
		}
		j->step++;
		j->entered = false;
		j->pos = 0;
	}
}

char *imap_thread_take_text(struct imap_thread_job *j, size_t *len)
{
	char *text = j->text;

	*len = j->text_len;
	j->text = NULL;
	j->text_len = 0;
	return text;
}

void imap_thread_end(struct imap_thread_job *j)
{
	if (j == NULL)
		return;
	imap_thread_free(&j->t);
	idmap_free(&j->m);
	free(j->under);
	date_free(j);
	free(j->old);
	free(j->idx);
	free(j->roots);
	free(j->rootidx);
	free(j->newpos);
	if (j->formatting)
		fmt_free(&j->f);
	free(j->text);
	free(j);
}

bool imap_thread_build(const struct imap_thread_msg *msgs, size_t n, enum imap_thread_alg alg,
    struct imap_thread *out)
{
	struct imap_thread_job *j = imap_thread_begin(msgs, n, alg);
	uint64_t budget = UINT64_MAX;
	bool ok;

	memset(out, 0, sizeof(*out));
	if (j == NULL)
		return false;
	j->tree_only = true;
	if ((ok = imap_thread_step(j, &budget) == 1)) {
		*out = j->t;
		memset(&j->t, 0, sizeof(j->t));
	}
	imap_thread_end(j);
	return ok;
}
