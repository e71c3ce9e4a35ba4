/* SORT keys and THREAD algorithms (RFC 5256, RFC 5957): see imap_sort.h. */
#include "mailsnare/imap_sort.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/imap_date.h"
#include "mailsnare/mime_decode.h"
#include "mailsnare/mime_header.h"

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

/* ---- merge sort in steps ------------------------------------------------ */

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Positions at the start of the pair of runs at lo. */
static void msort_pair(struct imap_msort *ms, size_t lo)
{
	ms->lo = ms->i = ms->k = lo;
	ms->j = min_size(lo + ms->width, ms->n);
}

void imap_msort_init(struct imap_msort *ms, size_t *v, size_t *tmp, size_t n,
    imap_msort_cmp cmp, void *arg)
{
	*ms = (struct imap_msort){ .v = v, .tmp = tmp, .n = n, .cmp = cmp, .arg = arg,
	    .width = 1 };
	msort_pair(ms, 0);
}

/* Takes up to *budget elements of the current pair of runs from src to
 * dst; true when the pair is merged. */
static bool msort_merge(struct imap_msort *ms, const size_t *src, size_t *dst,
    uint64_t *budget)
{
	size_t mid = min_size(ms->lo + ms->width, ms->n);
	size_t hi = min_size(ms->lo + 2 * ms->width, ms->n), take;

	while (ms->k < hi && *budget > 0) {
		if (ms->i == mid || ms->j == hi) {
			/* one run is used up: the rest of the other as it is */
			size_t *from = ms->i == mid ? &ms->j : &ms->i;
			take = (size_t)(hi - ms->k < *budget ? hi - ms->k : *budget);
			memcpy(dst + ms->k, src + *from, take * sizeof(*dst));
			*from += take;
			ms->k += take;
			*budget -= take;
			break;
		}
		/* <= keeps equal elements in their order: stable */
		if (ms->cmp(src[ms->i], src[ms->j], ms->arg) <= 0)
			dst[ms->k++] = src[ms->i++];
		else
			dst[ms->k++] = src[ms->j++];
		(*budget)--;
	}
	return ms->k >= hi;
}

bool imap_msort_step(struct imap_msort *ms, uint64_t *budget)
{
	while (ms->width < ms->n) {
		const size_t *src = ms->in_tmp ? ms->tmp : ms->v;
		size_t *dst = ms->in_tmp ? ms->v : ms->tmp;

		while (ms->lo < ms->n) {
			if (!msort_merge(ms, src, dst, budget))
				return false;
			msort_pair(ms, ms->k);
		}
		ms->in_tmp = !ms->in_tmp;
		ms->width = ms->width > ms->n / 2 ? ms->n : ms->width * 2;
		msort_pair(ms, 0);
	}
	/* An odd number of passes leaves the result in tmp: copied back, as
	 * many elements as the budget has left each time. */
	while (ms->in_tmp) {
		size_t take = (size_t)(ms->n - ms->k < *budget ? ms->n - ms->k : *budget);

		memcpy(ms->v + ms->k, ms->tmp + ms->k, take * sizeof(*ms->v));
		ms->k += take;
		*budget -= take;
		if (ms->k < ms->n)
			return false;
		ms->in_tmp = false;
	}
	return true;
}

/* ---- SORT in steps ------------------------------------------------------ */

struct imap_sort_order {
	const struct imap_sort_msg *msgs;
	struct sort_ctx ctx;
	size_t *idx, *tmp;
	struct imap_msort ms;
};

static int order_cmp(size_t a, size_t b, void *arg)
{
	const struct imap_sort_order *o = arg;

	return imap_sort_compare(&o->msgs[a], &o->msgs[b], o->ctx.crit, o->ctx.ncrit);
}

struct imap_sort_order *imap_sort_order_begin(const struct imap_sort_msg *msgs, size_t n,
    const struct imap_sort_crit *crit, size_t ncrit)
{
	struct imap_sort_order *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return NULL;
	o->msgs = msgs;
	o->ctx = (struct sort_ctx){ crit, ncrit };
	o->idx = malloc((n ? n : 1) * sizeof(*o->idx));
	o->tmp = malloc((n ? n : 1) * sizeof(*o->tmp));
	if (o->idx == NULL || o->tmp == NULL) {
		imap_sort_order_end(o);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		o->idx[i] = i;
	imap_msort_init(&o->ms, o->idx, o->tmp, n, order_cmp, o);
	return o;
}

const size_t *imap_sort_order_step(struct imap_sort_order *o, uint64_t *budget)
{
	return imap_msort_step(&o->ms, budget) ? o->idx : NULL;
}

void imap_sort_order_end(struct imap_sort_order *o)
{
	if (o == NULL)
		return;
	free(o->idx);
	free(o->tmp);
	free(o);
}
