/*
 * SEARCH and UID SEARCH (RFC 3501 §6.4.4): the key tree from
 * imap_search.c evaluated per message of the view. Header keys match the
 * RFC 2047-decoded values, BODY and TEXT the transfer-decoded text of the
 * message's parts; both case-insensitively. ESEARCH result options (RFC
 * 4731) and the saved result "$" of SEARCHRES (RFC 5182), kept as UIDs so
 * that expunges drop out of it by themselves. SORT and THREAD
 * (imap_cmd_sort.c) evaluate their criteria with imap_search_step too.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/imap_search.h"
#include "mailsnare/mime.h"
#include "mailsnare/mime_decode.h"
#include "imap_session.h"

/* What one message needs for the keys asked, loaded on first use. */
struct search_msg {
	struct imap_session *s;
	struct imap_msg *m;
	size_t seq;
	char *hdr;                 /* the top-level header */
	size_t hdr_len;
	struct mime_part *tree;
	bool hdr_done;
	/* BODY and TEXT: matched over the text by a scan of its own, which
	 * may take several slices (imap_search_text.c); until it has run, a
	 * key that needs the text says so here and counts as false. */
	const struct imap_text_scan *scan;
	bool needs_text;
};

static void search_msg_free(struct search_msg *sm)
{
	free(sm->hdr);
	mime_part_free(sm->tree);
}

static const struct mime_part *sm_tree(struct search_msg *sm)
{
	if (sm->tree == NULL)
		sm->tree = imap_msg_tree(sm->s, sm->m);
	return sm->tree;
}

static bool sm_header(struct search_msg *sm)
{
	const struct mime_part *root;

	if (!sm->hdr_done) {
		sm->hdr_done = true;
		if ((root = sm_tree(sm)) != NULL) {
			sm->hdr = imap_msg_read(sm->s, sm->m, root->hdr_off, root->hdr_size);
			sm->hdr_len = sm->hdr ? (size_t)root->hdr_size : 0;
		}
	}
	return sm->hdr != NULL;
}

/* One unfolded field value against needle. FROM, TO, CC and BCC match
 * the addresses as parsed (comments and folding gone: "<user (c)@ (c)
 * domain.org>" is user@domain.org) and the display names, as Dovecot
 * does; a value that is not all addresses ("Mailer Daemon") also as the
 * decoded text, as every other field. */
static bool value_match(const char *raw, bool address, const char *needle, size_t nlen)
{
	size_t len = strlen(raw), dlen;
	bool exact = false, hit = false;
	char *dec;

	if (address && (dec = imap_search_address_text(raw, len, &dlen, &exact)) != NULL) {
		hit = mime_search_match(dec, dlen, needle, nlen);
		free(dec);
		if (hit || exact)
			return hit;
	}
	dec = mime_header_decode(raw, len, &dlen);
	hit = dec != NULL && mime_search_match(dec, dlen, needle, nlen);
	free(dec);
	return hit;
}

/* Does any field `name` (NULL: every field) contain needle, decoded? */
static bool header_match(struct search_msg *sm, const char *name, bool address,
    const char *needle, size_t nlen)
{
	struct mime_field f;
	size_t pos = 0;
	bool hit = false;

	if (!sm_header(sm))
		return false;
	while (!hit && mime_header_next(sm->hdr, sm->hdr_len, &pos, &f)) {
		if (name && (strlen(name) != f.name_len || strncasecmp(f.name, name, f.name_len)))
			continue;
		/* HEADER field "" matches any message that has the field. */
		if (nlen == 0)
			return true;
		char *raw = mime_header_unfold(f.value, f.value_len, MIME_MAX_VALUE);
		hit = raw != NULL && value_match(raw, address, needle, nlen);
		free(raw);
	}
	return hit;
}

static bool body_match(struct search_msg *sm, const struct imap_search_node *n)
{
	if (sm->scan == NULL) {
		sm->needs_text = true;
		return false;
	}
	return imap_text_scan_found(sm->scan, n);
}

/* "Tue, 1 Jul 2003 10:52:37 +0200" -> the date, ignoring time and zone. */
static bool sent_date(struct search_msg *sm, struct imap_date *d)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	char buf[128], mon[4];
	struct mime_field f;
	size_t pos = 0;
	const char *p;
	int day, year;

	if (!sm_header(sm))
		return false;
	while (mime_header_next(sm->hdr, sm->hdr_len, &pos, &f)) {
		if (f.name_len != 4 || strncasecmp(f.name, "Date", 4) != 0)
			continue;
		snprintf(buf, sizeof(buf), "%.*s", (int)f.value_len, f.value);
		p = strchr(buf, ',') ? strchr(buf, ',') + 1 : buf;
		if (sscanf(p, "%d %3s %d", &day, mon, &year) != 3)
			return false;
		for (char *c = mon; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		const char *m = strstr(months, mon);
		if (m == NULL || (m - months) % 3 != 0)
			return false;
		if (year < 100)
			year += year < 50 ? 2000 : 1900;
		d->year = year;
		d->month = (int)(m - months) / 3 + 1;
		d->day = day;
		return imap_date_valid(year, d->month, day);
	}
	return false;
}

static int date_cmp(const struct imap_date *a, const struct imap_date *b)
{
	int64_t x = imap_date_days(a), y = imap_date_days(b);

	return x < y ? -1 : x > y;
}

static bool keyword_has(const char *list, const char *kw)
{
	size_t n = strlen(kw);
	const char *p = list;

	while (p && *p) {
		size_t l = strcspn(p, " ");
		if (l == n && strncasecmp(p, kw, n) == 0)
			return true;
		p += l;
		p += strspn(p, " ");
	}
	return false;
}

static bool eval(struct search_msg *sm, const struct imap_search_node *n);

static bool eval_flags(const struct imap_msg *m, enum imap_search_key k, bool *out)
{
	static const struct { enum imap_search_key key; unsigned bit; bool set; } t[] = {
		{ IMAP_SK_ANSWERED, STORE_FLAG_ANSWERED, true },
		{ IMAP_SK_DELETED, STORE_FLAG_DELETED, true },
		{ IMAP_SK_DRAFT, STORE_FLAG_DRAFT, true },
		{ IMAP_SK_FLAGGED, STORE_FLAG_FLAGGED, true },
		{ IMAP_SK_SEEN, STORE_FLAG_SEEN, true },
		{ IMAP_SK_RECENT, IMAP_FLAG_RECENT, true },
		{ IMAP_SK_UNANSWERED, STORE_FLAG_ANSWERED, false },
		{ IMAP_SK_UNDELETED, STORE_FLAG_DELETED, false },
		{ IMAP_SK_UNDRAFT, STORE_FLAG_DRAFT, false },
		{ IMAP_SK_UNFLAGGED, STORE_FLAG_FLAGGED, false },
		{ IMAP_SK_UNSEEN, STORE_FLAG_SEEN, false },
		{ IMAP_SK_OLD, IMAP_FLAG_RECENT, false },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (t[i].key == k) {
			*out = ((m->flags & t[i].bit) != 0) == t[i].set;
			return true;
		}
	}
	return false;
}

static bool eval_dates(struct search_msg *sm, const struct imap_search_node *n, bool *out)
{
	struct imap_date d;
	int c;

	switch (n->key) {
	case IMAP_SK_BEFORE: case IMAP_SK_ON: case IMAP_SK_SINCE:
		imap_date_of_time(sm->m->internal_date, 0, &d);
		break;
	case IMAP_SK_SENTBEFORE: case IMAP_SK_SENTON: case IMAP_SK_SENTSINCE:
		if (!sent_date(sm, &d)) {
			*out = false;
			return true;
		}
		break;
	default:
		return false;
	}
	c = date_cmp(&d, &n->date);
	if (n->key == IMAP_SK_BEFORE || n->key == IMAP_SK_SENTBEFORE)
		*out = c < 0;
	else if (n->key == IMAP_SK_ON || n->key == IMAP_SK_SENTON)
		*out = c == 0;
	else
		*out = c >= 0;
	return true;
}

static bool eval_text(struct search_msg *sm, const struct imap_search_node *n)
{
	static const struct {
		enum imap_search_key key;
		const char *field;
		bool address;
	} f[] = {
		{ IMAP_SK_BCC, "Bcc", true }, { IMAP_SK_CC, "Cc", true },
		{ IMAP_SK_FROM, "From", true }, { IMAP_SK_SUBJECT, "Subject", false },
		{ IMAP_SK_TO, "To", true },
	};
	size_t i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (f[i].key == n->key)
			return header_match(sm, f[i].field, f[i].address, n->str, n->len);
	/* HEADER matches the field's text, whatever the field (Dovecot too). */
	if (n->key == IMAP_SK_HEADER)
		return header_match(sm, n->field, false, n->str, n->len);
	if (n->key == IMAP_SK_BODY)
		return body_match(sm, n);
	/* TEXT: header or body. */
	return header_match(sm, NULL, false, n->str, n->len) || body_match(sm, n);
}

static bool eval(struct search_msg *sm, const struct imap_search_node *n)
{
	const struct imap_msg *m = sm->m;
	bool r;
	size_t i;

	if (eval_flags(m, n->key, &r) || eval_dates(sm, n, &r))
		return r;
	switch (n->key) {
	case IMAP_SK_ALL:
		return true;
	case IMAP_SK_NEW:
		return (m->flags & IMAP_FLAG_RECENT) && !(m->flags & STORE_FLAG_SEEN);
	case IMAP_SK_KEYWORD:
		return keyword_has(m->keywords, n->str);
	case IMAP_SK_UNKEYWORD:
		return !keyword_has(m->keywords, n->str);
	case IMAP_SK_LARGER:
		return m->size > n->number;
	case IMAP_SK_SMALLER:
		return m->size < n->number;
	case IMAP_SK_MODSEQ:
		return m->modseq >= n->number;
	case IMAP_SK_SEQSET:
		return imap_seqset_contains(&n->set, (uint32_t)sm->seq);
	case IMAP_SK_UID:
		return imap_seqset_contains(&n->set, m->uid);
	case IMAP_SK_NOT:
		return !eval(sm, &n->children[0]);
	case IMAP_SK_OR:
		return eval(sm, &n->children[0]) || eval(sm, &n->children[1]);
	case IMAP_SK_AND:
		for (i = 0; i < n->nchildren; i++)
			if (!eval(sm, &n->children[i]))
				return false;
		return true;
	default:
		return eval_text(sm, n);
	}
}

/* Resolves the sequence sets of the tree against the view, in place. "$"
 * becomes the saved result: UIDs, whatever numbers the key used. */
static bool resolve_sets(struct imap_session *s, struct imap_search_node *n)
{
	struct imap_seqset out;
	size_t i;

	if (n->key == IMAP_SK_SEQSET || n->key == IMAP_SK_UID) {
		bool uid = n->key == IMAP_SK_UID || n->set.saved;
		uint32_t max = imap_view_star(s, uid);
		enum imap_seq_rc rc;
		imap_seqset_init(&out);
		/* Numbers beyond the mailbox simply match nothing in SEARCH. */
		rc = imap_seqset_eval(&n->set, uid ? IMAP_SEQ_UID : IMAP_SEQ_MSN, max,
		    &s->search_saved, &out);
		if (rc != IMAP_SEQ_OK && rc != IMAP_SEQ_ERR_RANGE && rc != IMAP_SEQ_ERR_EMPTY) {
			imap_seqset_free(&out);
			return false;
		}
		imap_seqset_free(&n->set);
		n->set = out;
		n->key = uid ? IMAP_SK_UID : IMAP_SK_SEQSET;
	}
	for (i = 0; i < n->nchildren; i++)
		if (!resolve_sets(s, &n->children[i]))
			return false;
	return true;
}

static bool iter_add(struct imap_search_iter *it, size_t i)
{
	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 64, *p;
		if ((p = realloc(it->idx, cap * sizeof(*p))) == NULL)
			return false;
		it->idx = p;
		it->cap = cap;
	}
	it->idx[it->n++] = i;
	return true;
}

/* Goes on with the text scan of message it->next (begun at need): 1
 * once done, 0 when the budget ran out first, -1 on no memory. */
static int iter_scan(struct imap_search_iter *it, struct imap_search *q,
    struct search_msg *sm, uint64_t budget, uint64_t *cost)
{
	int rc;

	if (it->scan_state == IMAP_SCAN_NONE) {
		if (it->scan == NULL && (it->scan = imap_text_scan_new(&q->root)) == NULL)
			return -1;
		imap_text_scan_reset(it->scan);
		it->scan_state = IMAP_SCAN_BEGUN;
	}
	rc = imap_text_scan_step(sm->s, it->scan, sm->m, budget > *cost ? budget - *cost : 0,
	    cost);
	if (rc == 1)
		it->scan_state = IMAP_SCAN_DONE;
	return rc;
}

/*
 * Evaluates from it->next on until the view ends (1) or the slice is
 * spent (0); -1 on no memory. A message whose result depends on BODY or
 * TEXT is evaluated twice: once without its text (which tells whether
 * the text is needed at all), then after the text scan, which may span
 * slices; it->next stays on it meanwhile.
 */
int imap_search_step(struct imap_session *s, struct imap_search *q, struct imap_search_iter *it,
    uint64_t budget)
{
	uint64_t cost = 0;
	int rc;

	while (it->next < s->view->n) {
		size_t i = it->next;
		struct search_msg sm = { .s = s, .m = &s->view->msgs[i], .seq = i + 1 };
		bool hit;

		if (it->scan_state == IMAP_SCAN_BEGUN &&
		    (rc = iter_scan(it, q, &sm, budget, &cost)) != 1)
			return rc;
		if (it->scan_state == IMAP_SCAN_DONE)
			sm.scan = it->scan;
		hit = !sm.m->gone && eval(&sm, &q->root);
		cost += IMAP_SLICE_MSG_COST + sm.hdr_len + (sm.tree ? IMAP_SLICE_TREE_COST : 0);
		search_msg_free(&sm);
		if (sm.needs_text && sm.scan == NULL) {
			if ((rc = iter_scan(it, q, &sm, budget, &cost)) != 1)
				return rc;
			continue;       /* evaluated again, with the text */
		}
		it->scan_state = IMAP_SCAN_NONE;
		it->next++;
		if (hit && !iter_add(it, i))
			return -1;
		if (cost >= budget)
			return it->next >= s->view->n;
	}
	return 1;
}

void imap_search_iter_free(struct imap_search_iter *it)
{
	free(it->idx);
	imap_text_scan_free(it->scan);
	memset(it, 0, sizeof(*it));
}

bool imap_search_resolve(struct imap_session *s, struct imap_search *q)
{
	return resolve_sets(s, &q->root);
}

/* ---- SEARCHRES: the saved result, as UIDs (RFC 5182) -------------------- */

void imap_search_saved_reset(struct imap_session *s)
{
	imap_seqset_free(&s->search_saved);
	imap_seqset_init(&s->search_saved);
}

enum imap_seq_rc imap_search_saved_set(struct imap_session *s, bool uid, struct imap_seqset *out)
{
	const struct imap_view *v = s->view;

	imap_seqset_clear(out);
	for (size_t i = 0; v && i < v->n; i++) {
		if (!imap_seqset_contains(&s->search_saved, v->msgs[i].uid))
			continue;
		if (imap_seqset_add(out, uid ? v->msgs[i].uid : i + 1,
		    uid ? v->msgs[i].uid : i + 1) != IMAP_SEQ_OK)
			return IMAP_SEQ_ERR_NOMEM;
	}
	imap_seqset_normalize(out);
	return IMAP_SEQ_OK;
}

/* Saves the messages idx[0..n) (or the first and last only, for SAVE with
 * MIN and/or MAX alone, RFC 5182 §2.1). */
static void save_result(struct imap_session *s, unsigned ret, const size_t *idx, size_t n)
{
	bool ends = (ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX)) &&
	    !(ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT));

	imap_search_saved_reset(s);
	for (size_t i = 0; i < n; i++) {
		if (ends && !((i == 0 && (ret & IMAP_SEARCH_RET_MIN)) ||
		    (i == n - 1 && (ret & IMAP_SEARCH_RET_MAX))))
			continue;
		uint32_t uid = s->view->msgs[idx[i]].uid;
		if (imap_seqset_add(&s->search_saved, uid, uid) != IMAP_SEQ_OK) {
			imap_search_saved_reset(s);
			return;
		}
	}
	imap_seqset_normalize(&s->search_saved);
}

/* With a MODSEQ key (RFC 7162 §3.1.5): the highest mod-sequence of the
 * messages reported (only the first and last for MIN/MAX alone, RFC 4731
 * §3.2). ret 0 is a plain SEARCH: all of them. */
static uint64_t highest_modseq(struct imap_session *s, unsigned ret, const size_t *idx,
    size_t n)
{
	bool ends = (ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX)) &&
	    !(ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT));
	uint64_t hi = 0;

	for (size_t i = 0; i < n; i++) {
		if (ends && !((i == 0 && (ret & IMAP_SEARCH_RET_MIN)) ||
		    (i == n - 1 && (ret & IMAP_SEARCH_RET_MAX))))
			continue;
		if (s->view->msgs[idx[i]].modseq > hi)
			hi = s->view->msgs[idx[i]].modseq;
	}
	return hi;
}

/* "* ESEARCH (TAG "a") UID MIN 2 MAX 7 COUNT 3 ALL 2,4:7" (RFC 4731). */
static void send_esearch(struct imap_session *s, const char *tag, bool uid, unsigned ret,
    bool modseq, const size_t *idx, size_t n)
{
	const struct imap_view *v = s->view;
	struct imap_seqset all;
	char *buf;
	size_t len;

#define NUM(i) (uid ? v->msgs[idx[i]].uid : (uint32_t)(idx[i] + 1))
	imap_printf(s, "* ESEARCH (TAG \"%s\")%s", tag, uid ? " UID" : "");
	if (n > 0 && (ret & IMAP_SEARCH_RET_MIN))
		imap_printf(s, " MIN %u", NUM(0));
	if (n > 0 && (ret & IMAP_SEARCH_RET_MAX))
		imap_printf(s, " MAX %u", NUM(n - 1));
	if (ret & IMAP_SEARCH_RET_COUNT)
		imap_printf(s, " COUNT %zu", n);
	if (n > 0 && (ret & IMAP_SEARCH_RET_ALL)) {
		imap_seqset_init(&all);
		for (size_t i = 0; i < n; i++)
			(void)imap_seqset_add(&all, NUM(i), NUM(i));
		imap_seqset_normalize(&all);
		len = imap_seqset_format(&all, NULL, 0);
		if ((buf = malloc(len + 1)) != NULL) {
			imap_seqset_format(&all, buf, len + 1);
			imap_printf(s, " ALL %s", buf);
			free(buf);
		}
		imap_seqset_free(&all);
	}
#undef NUM
	if (n > 0 && modseq)
		imap_printf(s, " MODSEQ %llu", (unsigned long long)highest_modseq(s, ret, idx, n));
	imap_printf(s, "\r\n");
}

/* Did a SEARCH that failed to parse ask for SAVE? */
static bool wanted_save(const struct imap_command *cmd)
{
	struct imap_error err = { 0 };
	unsigned ret = 0;

	return cmd->nargs >= 2 && imap_arg_equals(&cmd->args[0], "RETURN") &&
	    imap_search_parse_return(&cmd->args[1], &ret, &err) && (ret & IMAP_SEARCH_RET_SAVE);
}

void imap_search_reply_error(struct imap_session *s, const char *tag,
    const struct imap_error *err, const char *what)
{
	const char *code = imap_err_resp_code(err->code);

	imap_tagged(s, tag, imap_err_is_no(err->code) ? "NO" : "BAD", "%s%s%s%s",
	    code ? "[" : "", code ? code : "", code ? "] " : "",
	    err->msg[0] ? err->msg : what);
}

/* The replies of a finished search. */
static void search_reply(struct imap_session *s, const struct imap_command *cmd,
    struct imap_search *q, const size_t *idx, size_t n)
{
	size_t i;

	if (q->ret & IMAP_SEARCH_RET_SAVE)
		save_result(s, q->ret, idx, n);
	/* IMAP4rev2 (RFC 9051 §6.4.4) answers every SEARCH with ESEARCH. */
	if (s->rev2 && !q->esearch) {
		q->esearch = true;
		q->ret = IMAP_SEARCH_RET_ALL;
	}
	if (!q->esearch) {
		imap_printf(s, "* SEARCH");
		for (i = 0; i < n; i++)
			imap_printf(s, " %u", cmd->uid ? s->view->msgs[idx[i]].uid :
			    (unsigned)(idx[i] + 1));
		if (n > 0 && q->modseq)
			imap_printf(s, " (MODSEQ %llu)",
			    (unsigned long long)highest_modseq(s, 0, idx, n));
		imap_printf(s, "\r\n");
	} else if (q->ret != IMAP_SEARCH_RET_SAVE) {
		/* SAVE alone suppresses the ESEARCH response. */
		send_esearch(s, cmd->tag, cmd->uid, q->ret, q->modseq, idx, n);
	}
	imap_tagged(s, cmd->tag, "OK", "SEARCH completed");
}

/* A SEARCH going on in slices (struct imap_pending). */
struct search_job {
	const struct imap_command *cmd;
	struct imap_search q;
	struct imap_search_iter it;
};

static void search_job_free(void *arg)
{
	struct search_job *job = arg;

	imap_search_iter_free(&job->it);
	imap_search_free(&job->q);
	free(job);
}

/* One slice; the replies once the view is done. */
static enum imap_cont search_cont(struct imap_session *s, void *arg)
{
	struct search_job *job = arg;
	int rc = imap_search_step(s, &job->q, &job->it, IMAP_SLICE_BYTES);

	if (rc == 0)
		return IMAP_CONT_YIELD;
	if (rc < 0) {
		if (job->q.ret & IMAP_SEARCH_RET_SAVE)
			imap_search_saved_reset(s);
		imap_tagged(s, job->cmd->tag, "NO", "[SERVERBUG] Search failed");
	} else {
		search_reply(s, job->cmd, &job->q, job->it.idx, job->it.n);
	}
	return IMAP_CONT_DONE;
}

void imap_cmd_search(struct imap_session *s, const struct imap_command *cmd)
{
	struct imap_search_limits lim = { 32, 10000, 0 };
	struct imap_error err = { 0 };
	struct search_job *job = calloc(1, sizeof(*job));

	if (job == NULL) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	job->cmd = cmd;
	if (!imap_search_parse(cmd->args, cmd->nargs, &lim, &job->q, &err)) {
		/* RFC 5182: a NO empties the saved result, a BAD leaves it. */
		if (imap_err_is_no(err.code) && wanted_save(cmd))
			imap_search_saved_reset(s);
		imap_search_reply_error(s, cmd->tag, &err, "Invalid search");
		free(job);
		return;
	}
	if (job->q.modseq)
		imap_condstore_enable(s);   /* RFC 7162 §3.1: SEARCH MODSEQ */
	if (!resolve_sets(s, &job->q.root)) {
		if (job->q.ret & IMAP_SEARCH_RET_SAVE)
			imap_search_saved_reset(s);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Search failed");
		search_job_free(job);
		return;
	}
	/* Small mailboxes finish in the first slice, as before. */
	if (search_cont(s, job) == IMAP_CONT_DONE) {
		search_job_free(job);
		return;
	}
	imap_pending_start(s, cmd, IMAP_CONT_YIELD, search_cont, search_job_free, job);
}
