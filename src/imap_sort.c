/* SORT keys and THREAD algorithms (RFC 5256, RFC 5957): see imap_sort.h. */
#include "mailsnare/imap_sort.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/imap_date.h"
#include "mailsnare/mime_decode.h"
#include "mailsnare/mime_header.h"

#define NONE ((size_t)-1)

/* ---- string keys ------------------------------------------------------- */

char *imap_sort_fold(const char *s, size_t len)
{
	char *out = malloc(len + 1);

	if (out == NULL)
		return NULL;
	mime_fold_utf8(s, len, out);
	for (size_t i = 0; i < len; i++)
		if (out[i] >= 'a' && out[i] <= 'z')
			out[i] = (char)(out[i] - 32);
	out[len] = '\0';
	return out;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP: its length at s[0..len), or 0. */
static size_t blob_len(const char *s, size_t len)
{
	size_t i = 1;

	if (len == 0 || s[0] != '[')
		return 0;
	while (i < len && s[i] != '[' && s[i] != ']')
		i++;
	if (i >= len || s[i] != ']')
		return 0;
	i++;
	while (i < len && is_wsp(s[i]))
		i++;
	return i;
}

/* subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":", after any
 * number of blobs (subj-leader): its length, or 0. Input is folded. */
static size_t refwd_len(const char *s, size_t len)
{
	size_t i = 0, b;

	while ((b = blob_len(s + i, len - i)) > 0)
		i += b;
	if (len - i >= 2 && strncmp(s + i, "RE", 2) == 0)
		i += 2;
	else if (len - i >= 2 && strncmp(s + i, "FW", 2) == 0)
		i += len - i >= 3 && s[i + 2] == 'D' ? 3 : 2;
	else
		return 0;
	while (i < len && is_wsp(s[i]))
		i++;
	i += blob_len(s + i, len - i);
	return i < len && s[i] == ':' ? i + 1 : 0;
}

/* RFC 5256 §2.1 steps 2 to 6 over the folded text t[*b..*e). */
static void extract_base(const char *t, size_t *b, size_t *e, bool *reply)
{
	for (;;) {
		/* (2) trailers: "(fwd)" and white space */
		for (;;) {
			if (*e > *b && is_wsp(t[*e - 1])) {
				(*e)--;
			} else if (*e - *b >= 5 && strncmp(t + *e - 5, "(FWD)", 5) == 0) {
				*e -= 5;
				*reply = true;
			} else {
				break;
			}
		}
		/* (3) leaders, (4) a blob that is not all there is, (5) repeat */
		bool found = true;
		while (found) {
			size_t n;

			found = false;
			for (;;) {
				if (*b < *e && is_wsp(t[*b])) {
					(*b)++;
				} else if ((n = refwd_len(t + *b, *e - *b)) > 0) {
					*b += n;
					*reply = true;
				} else {
					break;
				}
				found = true;
			}
			n = blob_len(t + *b, *e - *b);
			if (n > 0 && *b + n < *e) {
				*b += n;
				found = true;
			}
		}
		/* (6) "[fwd: ... ]" */
		if (*e - *b >= 6 && strncmp(t + *b, "[FWD:", 5) == 0 && t[*e - 1] == ']') {
			*b += 5;
			(*e)--;
			*reply = true;
			continue;
		}
		return;
	}
}

char *imap_sort_base_subject(const char *subject, bool *reply)
{
	char *dec, *folded, *out;
	size_t dlen = 0, o = 0, b = 0, e;
	bool r = false;

	if (reply)
		*reply = false;
	if (subject == NULL)
		return strdup("");
	if ((dec = mime_header_decode(subject, strlen(subject), &dlen)) == NULL)
		return NULL;
	/* (1) tabs and line ends to spaces, runs of spaces to one */
	for (size_t i = 0; i < dlen; i++) {
		char c = dec[i] == '\t' || dec[i] == '\r' || dec[i] == '\n' ? ' ' : dec[i];
		if (c == ' ' && o > 0 && dec[o - 1] == ' ')
			continue;
		dec[o++] = c;
	}
	folded = imap_sort_fold(dec, o);
	free(dec);
	if (folded == NULL)
		return NULL;
	e = o;
	extract_base(folded, &b, &e, &r);
	if (reply)
		*reply = r;
	out = strndup(folded + b, e - b);
	free(folded);
	return out;
}

char *imap_sort_address_key(const char *value, bool display)
{
	struct mime_address *a = NULL;
	char *key = NULL, *tmp = NULL;
	size_t n, len;

	if (value == NULL || (n = mime_address_parse(value, strlen(value), 1, &a)) == 0) {
		mime_addresses_free(a, 0);
		return strdup("");
	}
	if (display && a[0].name && a[0].name[0]) {
		tmp = mime_header_decode(a[0].name, strlen(a[0].name), &len);
	} else if (display && a[0].mailbox && a[0].host) {
		if (asprintf(&tmp, "%s@%s", a[0].mailbox, a[0].host) < 0)
			tmp = NULL;
	} else {
		tmp = strdup(a[0].mailbox ? a[0].mailbox : "");
	}
	if (tmp != NULL)
		key = imap_sort_fold(tmp, strlen(tmp));
	free(tmp);
	mime_addresses_free(a, n);
	return key;
}

/* ---- sent date ---------------------------------------------------------- */

struct lex {
	const char *p, *end;
};

/* Skips white space and (nested) comments. */
static void lex_skip(struct lex *x)
{
	while (x->p < x->end) {
		if (*x->p == ' ' || *x->p == '\t' || *x->p == '\r' || *x->p == '\n') {
			x->p++;
		} else if (*x->p == '(') {
			int depth = 0;
			do {
				if (*x->p == '\\' && x->p + 1 < x->end)
					x->p++;
				else if (*x->p == '(')
					depth++;
				else if (*x->p == ')')
					depth--;
				x->p++;
			} while (x->p < x->end && depth > 0);
		} else {
			return;
		}
	}
}

static bool lex_number(struct lex *x, int maxdigits, int *out, int *ndigits)
{
	int v = 0, n = 0;

	lex_skip(x);
	while (x->p < x->end && *x->p >= '0' && *x->p <= '9' && n < maxdigits) {
		v = v * 10 + (*x->p++ - '0');
		n++;
	}
	if (ndigits)
		*ndigits = n;
	*out = v;
	return n > 0;
}

static size_t lex_word(struct lex *x, char *buf, size_t size)
{
	size_t n = 0;

	lex_skip(x);
	while (x->p < x->end && ((*x->p >= 'a' && *x->p <= 'z') || (*x->p >= 'A' && *x->p <= 'Z'))) {
		if (n + 1 < size)
			buf[n++] = *x->p;
		x->p++;
	}
	buf[n] = '\0';
	return n;
}

static bool lex_char(struct lex *x, char c)
{
	lex_skip(x);
	if (x->p < x->end && *x->p == c) {
		x->p++;
		return true;
	}
	return false;
}

/* The zone in minutes east of UTC; unknown or missing zones are UTC. */
static int parse_zone(struct lex *x)
{
	static const struct { const char *name; int hours; } names[] = {
		{ "UT", 0 }, { "GMT", 0 }, { "Z", 0 }, { "EST", -5 }, { "EDT", -4 },
		{ "CST", -6 }, { "CDT", -5 }, { "MST", -7 }, { "MDT", -6 }, { "PST", -8 },
		{ "PDT", -7 },
	};
	char w[8];
	int sign = 0, v, n;

	lex_skip(x);
	if (x->p < x->end && (*x->p == '+' || *x->p == '-')) {
		sign = *x->p++ == '-' ? -1 : 1;
		if (!lex_number(x, 4, &v, &n) || n != 4 || v % 100 >= 60)
			return 0;
		return sign * (v / 100 * 60 + v % 100);
	}
	if (lex_word(x, w, sizeof(w)) == 0)
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(w, names[i].name) == 0)
			return names[i].hours * 60;
	return 0;   /* military zones and the rest: -0000, RFC 5322 §4.3 */
}

bool imap_sort_parse_date(const char *value, int64_t *t)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	struct lex x;
	struct imap_date d;
	char w[16];
	int day, year, ny, hh, mm, ss = 0, zone;
	const char *save;

	if (value == NULL)
		return false;
	x.p = value;
	x.end = value + strlen(value);
	/* [day-of-week ","] */
	save = x.p;
	if (lex_word(&x, w, sizeof(w)) > 0)
		(void)lex_char(&x, ',');
	else
		x.p = save;
	if (!lex_number(&x, 2, &day, NULL))
		return false;
	(void)lex_char(&x, '-');
	if (lex_word(&x, w, sizeof(w)) < 3)
		return false;
	w[3] = '\0';
	for (char *c = w; *c; c++)
		*c = (char)(*c | 0x20);
	const char *m = strstr(months, w);
	if (m == NULL || (m - months) % 3 != 0)
		return false;
	(void)lex_char(&x, '-');
	if (!lex_number(&x, 4, &year, &ny))
		return false;
	if (ny == 2)
		year += year < 50 ? 2000 : 1900;
	else if (ny == 3)
		year += 1900;
	if (!lex_number(&x, 2, &hh, NULL) || !lex_char(&x, ':') || !lex_number(&x, 2, &mm, NULL))
		return false;
	if (lex_char(&x, ':') && !lex_number(&x, 2, &ss, NULL))
		return false;
	zone = parse_zone(&x);
	d.year = year;
	d.month = (int)(m - months) / 3 + 1;
	d.day = day;
	if (!imap_date_valid(year, d.month, day) || hh > 23 || mm > 59 || ss > 60)
		return false;
	*t = imap_date_days(&d) * 86400 + hh * 3600 + mm * 60 + ss - (int64_t)zone * 60;
	return true;
}

/* ---- SORT --------------------------------------------------------------- */

static int cmp_i64(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

int imap_sort_compare(const struct imap_sort_msg *a, const struct imap_sort_msg *b,
    const struct imap_sort_crit *crit, size_t ncrit)
{
	for (size_t i = 0; i < ncrit; i++) {
		enum imap_sort_key k = crit[i].key;
		int c;

		switch (k) {
		case IMAP_SORT_ARRIVAL:
			c = cmp_i64(a->arrival, b->arrival);
			break;
		case IMAP_SORT_DATE:
			c = cmp_i64(a->date, b->date);
			break;
		case IMAP_SORT_SIZE:
			c = a->size < b->size ? -1 : a->size > b->size;
			break;
		default:
			c = strcmp(a->keys[k] ? a->keys[k] : "", b->keys[k] ? b->keys[k] : "");
			c = c < 0 ? -1 : c > 0;
			break;
		}
		if (c != 0)
			return crit[i].reverse ? -c : c;
	}
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

struct sort_ctx {
	const struct imap_sort_crit *crit;
	size_t ncrit;
};

static int sort_cmp(const void *x, const void *y, void *arg)
{
	const struct sort_ctx *c = arg;

	return imap_sort_compare(x, y, c->crit, c->ncrit);
}

void imap_sort_msgs(struct imap_sort_msg *msgs, size_t n, const struct imap_sort_crit *crit,
    size_t ncrit)
{
	struct sort_ctx c = { crit, ncrit };

	if (n > 1)
		qsort_r(msgs, n, sizeof(*msgs), sort_cmp, &c);
}

/* ---- message ids -------------------------------------------------------- */

bool imap_sort_next_msgid(const char *value, size_t *pos, const char **id, size_t *len)
{
	size_t n = value ? strlen(value) : 0, i = *pos;

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

void imap_thread_free(struct imap_thread *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->nodes[i].kids);
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}

/* The nodes from `from` down in post-order (children before their
 * parent), malloc'd, *count of them; NULL on no memory. */
static size_t *post_order(const struct imap_thread *t, size_t from, size_t *count)
{
	size_t *order = malloc(t->n * sizeof(*order)), *stack = malloc(t->n * sizeof(*stack));
	size_t *next = calloc(t->n, sizeof(*next));
	size_t sp = 0, n = 0;

	if (order == NULL || stack == NULL || next == NULL) {
		free(order);
		order = NULL;
		goto out;
	}
	stack[sp++] = from;
	while (sp > 0) {
		size_t x = stack[sp - 1];
		if (next[x] < t->nodes[x].nkids) {
			stack[sp++] = t->nodes[x].kids[next[x]++];
		} else {
			order[n++] = x;
			sp--;
		}
	}
out:
	free(stack);
	free(next);
	*count = n;
	return order;
}

/* Sort keys of the nodes: a message's sent date and its index; a dummy
 * takes those of its first child. */
struct tkey {
	int64_t date;
	long idx;
};

static int tkey_cmp(const void *x, const void *y, void *arg)
{
	const struct tkey *k = arg;
	const struct tkey *a = &k[*(const size_t *)x], *b = &k[*(const size_t *)y];

	if (a->date != b->date)
		return a->date < b->date ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Sorts every set of siblings by sent date, the youngest level first. */
static bool sort_by_date(struct imap_thread *t, const struct imap_thread_msg *msgs)
{
	size_t n, *order = post_order(t, 0, &n);
	struct tkey *k = calloc(t->n ? t->n : 1, sizeof(*k));

	if (order == NULL || k == NULL) {
		free(order);
		free(k);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		struct imap_thread_node *x = &t->nodes[order[i]];
		if (x->nkids > 1)
			qsort_r(x->kids, x->nkids, sizeof(size_t), tkey_cmp, k);
		if (x->msg >= 0)
			k[order[i]] = (struct tkey){ msgs[x->msg].date, x->msg };
		else if (x->nkids > 0)
			k[order[i]] = k[x->kids[0]];
	}
	free(order);
	free(k);
	return true;
}

/* A map from message ids to nodes. */
struct idmap {
	struct ident { const char *id; size_t len, node, next; } *e;
	size_t n, cap;
	size_t *bucket, nbucket;
};

static size_t id_hash(const char *s, size_t len)
{
	size_t h = 5381;

	for (size_t i = 0; i < len; i++)
		h = h * 33 + (unsigned char)s[i];
	return h;
}

static size_t id_slot(const struct idmap *m, const char *id, size_t len)
{
	for (size_t i = m->bucket[id_hash(id, len) & (m->nbucket - 1)]; i != NONE; i = m->e[i].next)
		if (m->e[i].len == len && memcmp(m->e[i].id, id, len) == 0)
			return i;
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
	m->bucket[b] = m->n++;
	return true;
}

/* The node of a referenced id: its message, or a dummy made for it. */
static size_t ref_node(struct imap_thread *t, struct idmap *m, const char *id, size_t len)
{
	size_t x = id_find(m, id, len);

	if (x == NONE && (x = node_new(t, -1)) != NONE && !id_add(m, id, len, x))
		x = NONE;
	return x;
}

/* Is a below b (or b itself)? */
static bool below(const struct imap_thread *t, size_t a, size_t b)
{
	for (size_t x = a; x != NONE; x = t->nodes[x].parent)
		if (x == b)
			return true;
	return false;
}

/* (1) parent/child links from References (or In-Reply-To). */
static bool link_references(struct imap_thread *t, const struct imap_thread_msg *msgs,
    size_t n, struct idmap *m)
{
	const char *id;
	size_t len, pos;

	for (size_t i = 0; i < n; i++) {
		pos = 0;
		/* A duplicate or missing Message-ID: unique, nobody can refer to it. */
		if (imap_sort_next_msgid(msgs[i].message_id, &pos, &id, &len) &&
		    id_find(m, id, len) == NONE && !id_add(m, id, len, i + 1))
			return false;
	}
	for (size_t i = 0; i < n; i++) {
		const char *refs = msgs[i].references;
		size_t prev = NONE, cur = i + 1, x;
		bool only_first = false;

		/* The References ids, else the first id of In-Reply-To. */
		pos = 0;
		if (!imap_sort_next_msgid(refs, &pos, &id, &len)) {
			refs = msgs[i].in_reply_to;
			only_first = true;
			pos = 0;
			if (!imap_sort_next_msgid(refs, &pos, &id, &len))
				refs = NULL;
		}
		/* (A) each reference the parent of the next, without loops and
		 * without changing a parent once set */
		if (refs != NULL) {
			do {
				if ((x = ref_node(t, m, id, len)) == NONE)
					return false;
				if (prev != NONE && x != prev && t->nodes[x].parent == NONE &&
				    !below(t, prev, x))
					t->nodes[x].parent = prev;
				prev = x;
			} while (!only_first && imap_sort_next_msgid(refs, &pos, &id, &len));
		}
		/* (B) the last reference is the message's parent */
		t->nodes[cur].parent = NONE;
		if (prev != NONE && !below(t, prev, cur))
			t->nodes[cur].parent = prev;
	}
	return true;
}

/* (2) parentless nodes under the root; children lists from the links. */
static bool gather(struct imap_thread *t)
{
	for (size_t i = 1; i < t->n; i++) {
		if (t->nodes[i].parent == NONE)
			t->nodes[i].parent = 0;
		if (!kid_add(&t->nodes[t->nodes[i].parent], i))
			return false;
	}
	return true;
}

/* (3) dummies without children go; a dummy's children take its place
 * unless that would put several of them under the root. */
static bool prune(struct imap_thread *t)
{
	size_t n, *order = post_order(t, 0, &n);

	if (order == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		size_t x = order[i];
		struct imap_thread_node *p = &t->nodes[x];
		size_t *old = p->kids, nold = p->nkids;

		p->kids = NULL;
		p->nkids = p->cap = 0;
		for (size_t j = 0; j < nold; j++) {
			struct imap_thread_node *c = &t->nodes[old[j]];
			bool ok = true;

			if (c->msg >= 0 || (x == 0 && c->nkids > 1)) {
				ok = kid_add(p, old[j]);
			} else {
				for (size_t k = 0; ok && k < c->nkids; k++) {
					t->nodes[c->kids[k]].parent = x;
					ok = kid_add(p, c->kids[k]);
				}
				c->nkids = 0;
			}
			if (!ok) {
				free(old);
				free(order);
				return false;
			}
		}
		free(old);
	}
	free(order);
	return true;
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

static bool adopt(struct imap_thread *t, size_t parent, size_t kid)
{
	t->nodes[kid].parent = parent;
	return kid_add(&t->nodes[parent], kid);
}

/* (5) threads under the root with the same subject merged. */
static bool merge_subjects(struct imap_thread *t, const struct imap_thread_msg *msgs)
{
	struct idmap m = { 0 };
	size_t nroot = t->nodes[0].nkids, *roots = malloc((nroot + 1) * sizeof(*roots));
	bool ok = roots != NULL;

	m.nbucket = 16;
	while (m.nbucket < nroot * 2)
		m.nbucket *= 2;
	if (ok && (m.bucket = malloc(m.nbucket * sizeof(*m.bucket))) == NULL)
		ok = false;
	if (!ok) {
		free(roots);
		return false;
	}
	for (size_t i = 0; i < m.nbucket; i++)
		m.bucket[i] = NONE;
	if (nroot > 0)
		memcpy(roots, t->nodes[0].kids, nroot * sizeof(*roots));
	/* (B) one message per subject: a dummy, else one that is no reply */
	for (size_t i = 0; ok && i < nroot; i++) {
		const char *s = thread_subject(t, msgs, roots[i]);
		size_t len = strlen(s), slot, at;

		if (len == 0)
			continue;
		if ((slot = id_slot(&m, s, len)) == NONE) {
			ok = id_add(&m, s, len, roots[i]);
			continue;
		}
		at = m.e[slot].node;
		if (t->nodes[at].msg >= 0 && (t->nodes[roots[i]].msg < 0 ||
		    (is_reply(t, msgs, at) && !is_reply(t, msgs, roots[i]))))
			m.e[slot].node = roots[i];
	}
	/* (C) merge; the root's children are rebuilt from what stays */
	t->nodes[0].nkids = 0;
	for (size_t i = 0; ok && i < nroot; i++) {
		size_t c = roots[i], at, e;
		const char *s;
		size_t len;

		if (c == NONE)
			continue;   /* merged under a dummy already */
		s = thread_subject(t, msgs, c);
		len = strlen(s);
		if (len == 0 || (at = id_find(&m, s, len)) == c) {
			ok = kid_add(&t->nodes[0], c);
			continue;
		}
		if (t->nodes[at].msg < 0 && t->nodes[c].msg < 0) {
			for (size_t k = 0; ok && k < t->nodes[c].nkids; k++)
				ok = adopt(t, at, t->nodes[c].kids[k]);
			t->nodes[c].nkids = 0;
		} else if (t->nodes[at].msg < 0 || (is_reply(t, msgs, c) && !is_reply(t, msgs, at))) {
			ok = adopt(t, at, c);
		} else {
			size_t d = node_new(t, -1);
			if (d == NONE) {
				ok = false;
				break;
			}
			/* d takes at's place under the root (at's new place if it
			 * is there already, else at the end) */
			bool placed = false;
			for (size_t k = 0; k < t->nodes[0].nkids; k++) {
				if (t->nodes[0].kids[k] == at) {
					t->nodes[0].kids[k] = d;
					placed = true;
				}
			}
			t->nodes[d].parent = 0;
			ok = (placed || kid_add(&t->nodes[0], d)) && adopt(t, d, at) && adopt(t, d, c);
			for (e = 0; e < m.n; e++)
				if (m.e[e].node == at)
					m.e[e].node = d;
			/* at not yet met in this loop: it must not come back */
			for (size_t k = i + 1; k < nroot; k++)
				if (roots[k] == at)
					roots[k] = NONE;
		}
	}
	free(roots);
	free(m.e);
	free(m.bucket);
	return ok;
}

static bool thread_references(struct imap_thread *t, const struct imap_thread_msg *msgs,
    size_t n)
{
	struct idmap m = { 0 };
	bool ok;

	m.nbucket = 16;
	while (m.nbucket < n * 4)
		m.nbucket *= 2;
	if ((m.bucket = malloc(m.nbucket * sizeof(*m.bucket))) == NULL)
		return false;
	for (size_t i = 0; i < m.nbucket; i++)
		m.bucket[i] = NONE;
	ok = link_references(t, msgs, n, &m);
	free(m.e);
	free(m.bucket);
	return ok && gather(t) && prune(t) && sort_by_date(t, msgs) &&
	    merge_subjects(t, msgs) && sort_by_date(t, msgs);
}

static int subj_cmp(const void *x, const void *y, void *arg)
{
	const struct imap_thread_msg *msgs = arg;
	size_t a = *(const size_t *)x, b = *(const size_t *)y;
	int c = strcmp(msgs[a].subject ? msgs[a].subject : "", msgs[b].subject ? msgs[b].subject : "");

	if (c != 0)
		return c;
	if (msgs[a].date != msgs[b].date)
		return msgs[a].date < msgs[b].date ? -1 : 1;
	return a < b ? -1 : a > b;
}

/* ORDEREDSUBJECT: by base subject, then sent date; the first of each
 * subject holds the others as its children. */
static bool thread_orderedsubject(struct imap_thread *t, const struct imap_thread_msg *msgs,
    size_t n)
{
	size_t *idx = malloc((n ? n : 1) * sizeof(*idx)), head = NONE;
	bool ok = idx != NULL;

	for (size_t i = 0; ok && i < n; i++)
		idx[i] = i;
	if (ok && n > 1)
		qsort_r(idx, n, sizeof(*idx), subj_cmp, (void *)msgs);
	for (size_t i = 0; ok && i < n; i++) {
		size_t x = idx[i] + 1;
		if (i > 0 && strcmp(msgs[idx[i - 1]].subject ? msgs[idx[i - 1]].subject : "",
		    msgs[idx[i]].subject ? msgs[idx[i]].subject : "") != 0)
			head = NONE;
		if (head == NONE) {
			head = x;
			ok = adopt(t, 0, x);
		} else {
			ok = adopt(t, head, x);
		}
	}
	free(idx);
	return ok && sort_by_date(t, msgs);
}

bool imap_thread_build(const struct imap_thread_msg *msgs, size_t n, enum imap_thread_alg alg,
    struct imap_thread *out)
{
	bool ok = true;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; ok && i <= n; i++)
		ok = node_new(out, i == 0 ? -1 : (long)(i - 1)) != NONE;
	if (ok)
		ok = alg == IMAP_THREAD_REFERENCES ? thread_references(out, msgs, n)
		    : thread_orderedsubject(out, msgs, n);
	if (!ok)
		imap_thread_free(out);
	return ok;
}

/* ---- THREAD response text ---------------------------------------------- */

struct outbuf {
	char *p;
	size_t len, cap;
	bool failed;
};

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

struct frame {
	size_t node, next;
	bool close;
};

/* Writes the members of x up to its first branching (or its end): a chain
 * "a b c", then, if it branches, " " and a frame pushed for the branches.
 * Returns whether a frame was pushed. */
static bool members(const struct imap_thread *t, const struct imap_thread_msg *msgs, size_t x,
    struct outbuf *o, struct frame *stack, size_t *sp, bool close)
{
	char num[16];
	bool first = true;

	for (;;) {
		const struct imap_thread_node *p = &t->nodes[x];
		if (p->msg >= 0) {
			int n = snprintf(num, sizeof(num), "%s%u", first ? "" : " ", msgs[p->msg].id);
			out_add(o, num, (size_t)n);
			first = false;
		}
		if (p->nkids == 0)
			return false;
		if (p->nkids == 1) {
			x = p->kids[0];
			continue;
		}
		if (!first)
			out_add(o, " ", 1);
		stack[(*sp)++] = (struct frame){ x, 0, close };
		return true;
	}
}

char *imap_thread_format(const struct imap_thread *t, const struct imap_thread_msg *msgs)
{
	struct outbuf o = { 0 };
	struct frame *stack = malloc((t->n + 1) * sizeof(*stack));
	size_t sp = 0;

	if (stack == NULL)
		return NULL;
	out_add(&o, "", 0);
	stack[sp++] = (struct frame){ 0, 0, false };
	while (sp > 0 && !o.failed) {
		struct frame *f = &stack[sp - 1];
		if (f->next < t->nodes[f->node].nkids) {
			size_t kid = t->nodes[f->node].kids[f->next++];
			out_add(&o, "(", 1);
			if (!members(t, msgs, kid, &o, stack, &sp, true))
				out_add(&o, ")", 1);
		} else {
			if (f->close)
				out_add(&o, ")", 1);
			sp--;
		}
	}
	free(stack);
	if (o.failed) {
		free(o.p);
		return NULL;
	}
	return o.p;
}
